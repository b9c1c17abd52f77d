"""Where facefind keeps things, and the knobs of the face pipeline."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from . import limits
from .errors import InvalidValue

if TYPE_CHECKING:
    from .faces.onnx import RecognizerSpec

APP = "facefind"
ENGINES = ("auto", "openvino", "opencv")


def default_db_path() -> Path:
    """`FACEFIND_DB`, else `catalog.db` in the per-user data directory."""
    env = os.environ.get("FACEFIND_DB")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP)) / "catalog.db"


DEFAULT_MAX_PIXELS = 89_478_485


DEFAULT_MAX_FILE_BYTES = 512 * 2**20


def max_pixels_from_environment() -> int:
    """FACEFIND_MAX_PIXELS (e.g. 200000000 or 200_000_000), else DEFAULT_MAX_PIXELS."""
    return _from_environment(limits.MAX_PIXELS, DEFAULT_MAX_PIXELS)


def max_file_bytes_from_environment() -> int:
    """FACEFIND_MAX_FILE_BYTES, else DEFAULT_MAX_FILE_BYTES."""
    return _from_environment(limits.MAX_FILE_BYTES, DEFAULT_MAX_FILE_BYTES)


def _from_environment(limit: limits.Limit, default: int) -> int:
    text = os.environ.get(limit.option, "").strip()
    if not text:
        return default
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise InvalidValue(f"{limit.option}={text!r}: {limit.wanted()}") from None
    try:
        return limit.check(value)
    except InvalidValue:
        raise InvalidValue(f"{limit.option}={text!r}: {limit.wanted()}") from None


def model_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP)) / "models"


def vectors_dir(db: str | Path) -> Path:
    """Where this machine keeps the vector index of a catalog: beside a catalog file
    (<db>.vectors/); for a database server, in FACEFIND_VECTORS or the per-user cache, one folder
    per database. Each machine keeps its own copy in step with the catalog (vectors/store.py)."""
    if isinstance(db, Path):
        return Path(f"{db}.vectors")
    import hashlib

    root = Path(os.environ.get("FACEFIND_VECTORS") or Path(platformdirs.user_cache_dir(APP)) / "vectors")
    return root / hashlib.sha256(str(db).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Settings:
    """Face pipeline parameters. Defaults were chosen by measurement on ../shared/datasets."""

    # Detection runs on a copy downscaled to this longest side; chips are cut from full resolution.
    detect_max_side: int = 1280
    # JPEGs are decoded at the smallest size (DCT scaling: 1/2, 1/4, 1/8) that keeps twice
    # detect_max_side, so the one resize to the detector's size still averages 2x2 pixels or more
    # and the detector sees what it saw in a full decode (at 1x, faces moved by a few pixels and
    # their embeddings by up to cosine 0.96). A face's chip is cut from that decode unless the face
    # is smaller there than chip_from_reduced_px (shorter box side), then from the photo decoded in
    # full. reduced_decode=False decodes every photo in full (the way before; for benchmarks).
    # docs/design.md "Decoding camera photos", bench/ingest_bench.py --camera.
    reduced_decode: bool = True
    chip_from_reduced_px: int = 64
    detect_score_threshold: float = 0.6
    # Faces smaller than this (shorter box side, in original pixels) or below min_quality are
    # stored but excluded from search unless asked for.
    min_face_px: int = 32
    min_quality: float = 0.25
    # Embed the mirrored chip too and average: +1 point TAR at FMR 1e-4 (identity-bootstrap CI
    # excludes 0) for twice the embedding time (bench/pipeline_bench.py, docs/pipeline.md). It
    # changes the embeddings, so it has its own model id (sface-2021dec-flip) and calibration:
    # a catalog indexed without it must be re-indexed to be searched with it.
    flip_average: bool = False
    # With flip_average: the five landmarks averaged with those YuNet finds on the mirrored face
    # (mirrored back), so the chip moves less with the detector's noise; one small detection more
    # per face. Its own model id (sface-2021dec-mirror), the recognizer of new catalogs: fewer
    # people missed at search's decision on lfw_dev (docs/benchmarks.md, "The default recognizer").
    mirror_landmarks: bool = False
    # Query faces under these get a warning with the reason (faces.quality.warnings); the cuts
    # are where recognition measurably breaks (bench/pipeline_bench.py, docs/pipeline.md).
    warn_face_px: int = 32
    warn_sharpness: float = 20.0
    warn_yaw: float = 0.6
    # People: faces are linked when their similarity has at most this false-match rate (1e-4 gave
    # the best BCubed F1 over ../shared/datasets, bench/people_bench.py); a new person needs
    # at least people_min_faces faces.
    people_max_fmr: float = 1e-4
    people_min_faces: int = 2
    # The rate is per pair of faces, so a catalog of n faces expects about n * FMR chance links per
    # face: links use at most people_false_links / n (0.05: lfw_dev's 7,736 faces link at FMR
    # 6.5e-6, BCubed precision 0.83 -> 0.99; docs/design.md "People"). Groups whose parts are
    # linked by less than people_min_link_density of their face pairs are split (no chaining).
    people_false_links: float = 0.05
    people_min_link_density: float = 0.01
    # Background faces (people/background.py): shorter side under this, or under this share of the
    # largest face in the photo (lfw_dev: 99.9% of subjects above both, docs/design.md).
    background_face_px: int = 40
    background_face_ratio: float = 0.7
    # Data minimisation: faces under this many pixels get no template at all (0: every face does);
    # a catalog setting, `facefind people min-template PX`.
    min_template_px: int = 0
    # Refuse images larger than this many pixels (decompression bombs) or with absurd sides.
    # Default: Pillow's own bomb limit (~9459x9459, 89 MP); FACEFIND_MAX_PIXELS raises it.
    max_image_pixels: int = field(default_factory=lambda: max_pixels_from_environment())
    max_image_side: int = 40_000
    # No photo file is larger; stops endless or huge reads. FACEFIND_MAX_FILE_BYTES raises it.
    max_file_bytes: int = field(default_factory=lambda: max_file_bytes_from_environment())
    max_aspect_ratio: float = 20.0
    # What runs the built-in YuNet and SFace: "auto" (OpenVINO when installed, else OpenCV's DNN),
    # "openvino" or "opencv" (faces/opencv.py `engine`; FACEFIND_ENGINE sets it).
    engine: str = field(default_factory=lambda: os.environ.get("FACEFIND_ENGINE", "auto"))
    # The registered recognizer in use (`facefind models use`); None is the built-in SFace. Kept
    # here so worker processes, which get the settings, load the same model as the parent.
    recognizer: RecognizerSpec | None = None

    @property
    def decode_min_side(self) -> int:
        """The longer side a photo is decoded at, at least (see reduced_decode)."""
        return 2 * self.detect_max_side

    def searchable(self, size_px: float, quality: float) -> bool:
        return size_px >= self.min_face_px and quality >= self.min_quality
