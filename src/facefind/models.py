"""Model files: found in FACEFIND_MODELS or the user cache, else downloaded and sha256-verified."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelUnavailable
from .settings import model_cache_dir


@dataclass(frozen=True)
class ModelFile:
    name: str
    url: str
    sha256: str
    size: int


# OpenCV Zoo at the commits that hold these exact files (Git LFS pointers with these sha256 and
# sizes): the Zoo later replaced face_recognition_sface_2021dec.onnx on its main branch with
# another file of the same name (24,227,283 bytes), whose embeddings the shipped calibration
# does not describe.
_ZOO = "https://github.com/opencv/opencv_zoo/raw/{commit}/models"
YUNET = ModelFile(
    "face_detection_yunet_2023mar.onnx",
    _ZOO.format(commit="82b38c8f98e7b52aa171400f3e4c722352d0669f")
    + "/face_detection_yunet/face_detection_yunet_2023mar.onnx",
    "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    232_589,
)
SFACE = ModelFile(
    "face_recognition_sface_2021dec.onnx",
    _ZOO.format(commit="edef535367a4f8053b5bfb7580935c83772a9639")
    + "/face_recognition_sface/face_recognition_sface_2021dec.onnx",
    "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
    38_696_353,
)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(model: ModelFile, *, download: bool = True, cache_dir: Path | None = None) -> Path:
    """Path to a usable copy of `model`.

    Looks in $FACEFIND_MODELS, then the per-user cache; downloads into the cache from the
    official URL when allowed. Files are checked by size; downloads by sha256 as well.
    """
    places: list[Path] = []
    env = os.environ.get("FACEFIND_MODELS")
    if env:
        places.append(Path(env).expanduser() / model.name)
    cache = cache_dir or model_cache_dir()
    places.append(cache / model.name)
    for path in places:
        if path.is_file():
            if path.stat().st_size != model.size:
                raise ModelUnavailable(
                    f"{path} has {path.stat().st_size} bytes, expected {model.size}: "
                    f"it is damaged or a different model. Delete it, or point FACEFIND_MODELS "
                    f"at a folder holding the official {model.name}."
                )
            return path
    if not download:
        raise ModelUnavailable(_missing_message(model, places, "downloads are disabled"))
    try:
        return fetch(model, cache)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise ModelUnavailable(_missing_message(model, places, f"download failed: {err}")) from None


def fetch(model: ModelFile, cache: Path, url: str | None = None) -> Path:
    """Download `model` into `cache`, keeping it only if its sha256 matches."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / model.name
    fd, tmp_name = tempfile.mkstemp(dir=cache, prefix=f".{model.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url or model.url, timeout=60) as resp:
            for block in iter(lambda: resp.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != model.sha256:
            raise ModelUnavailable(
                f"downloaded {model.name} from {url or model.url} but its sha256 is "
                f"{digest.hexdigest()}, not the published {model.sha256}; the file was deleted. "
                f"Try again later, or put the official file in a folder named by FACEFIND_MODELS."
            )
        os.replace(tmp, target)
        return target
    finally:
        tmp.unlink(missing_ok=True)


def _missing_message(model: ModelFile, places: list[Path], why: str) -> str:
    looked = ", ".join(str(p) for p in places)
    return (
        f"model file {model.name} not found (looked in {looked}) and {why}. "
        f"Set FACEFIND_MODELS to a folder holding {model.name} (sha256 {model.sha256[:12]}...), "
        f"or connect to the internet once so facefind can download it from {model.url}."
    )
