"""Write redacted copies of photos: hide faces, strip metadata, never overwrite, one manifest each.

An output is the photo's pixels (EXIF orientation applied) with every hidden face covered, encoded
afresh by OpenCV: no EXIF, XMP or IPTC block is carried over, so GPS positions and face regions
(XMP-mwg-rs, Microsoft's and Apple's region tags) never reach a published file. Outputs and
manifests are written to a temporary file in the output folder and then linked to their name,
which fails if the name exists: a file already there is never replaced, and an interrupted run
leaves no half-written photo under a real name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel

from ..errors import FacefindError, InvalidValue
from ..filemodes import FILE_MODE, make_folder
from ..paths import for_json
from ..results import Box

STYLES = ("blur", "pixelate", "fill")
KEEPS = ("consented", "none")
MANIFEST_VERSION = 1
# Encoders of the outputs by extension; any other input is written as PNG.
WRITABLE = {".jpg": ".jpg", ".jpeg": ".jpeg", ".jpe": ".jpg", ".png": ".png", ".webp": ".webp",
            ".bmp": ".bmp", ".tif": ".tif", ".tiff": ".tiff"}  # fmt: skip
MANIFEST_SUFFIX = ".manifest.json"
# Reasons no decision or drawing may override: the person said no, or their consent does not cover it.
VETO = ("optout", "withheld")


class ManifestFace(BaseModel):
    box: Box
    decision: Literal["kept", "hidden"]
    reason: str  # consent, optout, withheld, unknown, small, keep-none, reviewer
    score: float | None = None  # the detector's; none for a box a reviewer drew
    person_id: int | None = None
    consent_id: int | None = None
    similarity: float | None = None


class Manifest(BaseModel):
    version: int = MANIFEST_VERSION
    input: str
    input_sha256: str
    output: str
    width: int
    height: int
    keep: str
    style: str
    margin: float
    metadata: str = "stripped"
    faces: list[ManifestFace]


class Redacted(BaseModel):
    input: str
    output: str
    manifest: str
    faces: int
    kept: int
    hidden: int
    kept_persons: list[int]
    audit_seq: int | None = None


class RedactedVideo(BaseModel):
    input: str
    output: str
    manifest: str
    frames: int
    tracks: int
    kept: int
    hidden: int
    kept_persons: list[int]
    fps_processed: float
    audit_seq: int | None = None


class RedactError(BaseModel):
    path: str
    error: str


class RedactReport(BaseModel):
    out: str
    keep: str
    style: str
    photos: list[Redacted]
    videos: list[RedactedVideo] = []
    errors: list[RedactError]


def check_style(style: str, keep: str, margin: float) -> None:
    if style not in STYLES:
        raise InvalidValue(f"--style {style!r}: choose one of {', '.join(STYLES)}")
    if keep not in KEEPS:
        raise InvalidValue(f"--keep {keep!r}: choose consented (keep faces with publication consent) or none")
    if not (0.0 <= margin <= 2.0):
        raise InvalidValue(f"--margin {margin}: give a number from 0 to 2 (e.g. 0.2: a fifth more)")


# A hidden box overlapping a kept face this much (IoU) may be the same face: the hidden one wins.
SAME_FACE_IOU = 0.3


# The blur style's blob is computed at most this many pixels across, then drawn to its size.
BLUR_SIDE = 64


def _pixels(b: Box, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    dx, dy = b.w * margin / 2, b.h * margin / 2
    x0, y0 = max(0, int(np.floor(b.x - dx))), max(0, int(np.floor(b.y - dy)))
    x1, y1 = min(width, int(np.ceil(b.x + b.w + dx))), min(height, int(np.ceil(b.y + b.h + dy)))
    return x0, y0, x1, y1


def draw(
    image: np.ndarray, faces: list[ManifestFace], style: str, margin: float, fill: int = 0
) -> np.ndarray:
    """A copy of `image` with every hidden face (grown by `margin` of its size) covered (`fill`:
    the value the fill style writes; a video's planes of colour difference take 128).

    A kept face's own box (without margin) is then restored: what it shows is the consented
    person's face, recognised as such, and a hidden box reaching into it is a neighbour's margin
    or a false detection (texture, a blurred crowd). It is not restored where a hidden face may
    be the same face (SAME_FACE_IOU) or was recognised as opted out or withheld."""
    out = image.copy()
    height, width = out.shape[:2]
    hidden = [f for f in faces if f.decision == "hidden"]
    for b in (f.box for f in hidden):
        x0, y0, x1, y1 = _pixels(b, margin, width, height)
        if x1 <= x0 or y1 <= y0:
            continue
        region = out[y0:y1, x0:x1]
        if style == "fill":
            region[:] = fill
        elif style == "pixelate":
            # About 6 blocks across the face: no feature survives, the scene still reads.
            cells = max(1, min(6, x1 - x0)), max(1, min(6, y1 - y0))
            small = cv2.resize(region, cells, interpolation=cv2.INTER_AREA)
            region[:] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        else:
            # Pixelate first, then blur: a blur alone of a small kernel can be partly undone.
            cells = max(1, min(4, x1 - x0)), max(1, min(4, y1 - y0))
            small = cv2.resize(region, cells, interpolation=cv2.INTER_AREA)
            # The blur of those cells is smooth: made at most BLUR_SIDE pixels across, then drawn
            # up (a face of 900 px: 0.2 ms instead of 30, the same blob).
            w, h = x1 - x0, y1 - y0
            f = min(1.0, BLUR_SIDE / max(w, h))
            size = max(1, round(w * f)), max(1, round(h * f))
            coarse = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
            k = max(3, (max(size) // 4) | 1)
            blurred = cv2.GaussianBlur(coarse, (k, k), 0)
            if size != (w, h):
                blurred = cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR)
            region[:] = blurred
    for kept in (f.box for f in faces if f.decision == "kept"):
        if not any(
            overlaps(h.box, kept) >= SAME_FACE_IOU or (h.reason in VETO and overlaps(h.box, kept) > 0)
            for h in hidden
        ):
            x0, y0, x1, y1 = _pixels(kept, 0.0, width, height)
            out[y0:y1, x0:x1] = image[y0:y1, x0:x1]
    return out


def encode(image: np.ndarray, suffix: str) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if suffix in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(suffix, image, params)
    if not ok:  # pragma: no cover - OpenCV encodes any 8-bit BGR array in these formats
        raise FacefindError(f"could not encode the output as {suffix}")
    return data.tobytes()


def output_name(source: Path, root: Path | None) -> Path:
    """The output's path relative to the output folder: the photo's path under the folder given
    (or its name for a file given alone), written in a format OpenCV encodes."""
    relative = source.relative_to(root) if root is not None else Path(source.name)
    return relative.with_suffix(WRITABLE.get(source.suffix.lower(), ".png"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_out_folder(out: Path) -> None:
    """Make the output folder (private, if new) and refuse one that cannot be written, before
    any photo is read."""
    if out.exists() and not out.is_dir():
        raise FacefindError(f"--out {out} is a file; give a folder for the redacted copies")
    try:
        make_folder(out)
        probe = out / f".facefind-probe.{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        os.unlink(probe)
    except OSError as err:
        raise FacefindError(
            f"--out {out} cannot be written ({err.strerror}); give a folder you may write to"
        ) from None


def write_new(path: Path, data: bytes) -> None:
    """Write `path`, which must not exist, so that it either appears whole or not at all."""
    try:
        make_folder(path.parent)
    except OSError as err:
        raise FacefindError(f"cannot make the folder {path.parent}: {err.strerror}") from None
    if path.exists() or path.is_symlink():
        raise FacefindError(f"{path} exists; it is never overwritten: choose another --out or move it")
    temp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(temp, path)  # fails if `path` appeared meanwhile: nothing is replaced
    except FileExistsError:
        raise FacefindError(
            f"{path} exists; it is never overwritten: choose another --out or move it"
        ) from None
    except OSError as err:
        raise FacefindError(f"cannot write {path}: {err.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def write_pair(output: Path, image: bytes, manifest: Manifest) -> Path:
    """The output and its manifest (`<output>.manifest.json`), both or neither."""
    manifest_path = output.with_name(output.name + MANIFEST_SUFFIX)
    for p in (output, manifest_path):
        if p.exists() or p.is_symlink():
            raise FacefindError(f"{p} exists; it is never overwritten: choose another --out or move it")
    text = json.dumps(for_json(manifest.model_dump()), indent=1, ensure_ascii=False) + "\n"
    write_new(output, image)
    try:
        write_new(manifest_path, text.encode())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(output)
        raise
    return manifest_path


def read_manifest(path: Path) -> Manifest:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise FacefindError(f"cannot read the manifest {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise FacefindError(f"{path} is not a manifest (not UTF-8 text)") from None
    try:
        manifest = Manifest.model_validate_json(text)
    except ValueError as err:
        first = str(err).splitlines()[1:3]
        raise FacefindError(f"{path} is not a redaction manifest: {' '.join(first)}") from None
    if manifest.version != MANIFEST_VERSION:
        raise FacefindError(
            f"{path}: manifest version {manifest.version}; this facefind reads {MANIFEST_VERSION}"
        )
    return manifest


def overlaps(a: Box, b: Box) -> float:
    """IoU of two boxes."""
    iw = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    ih = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = iw * ih
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0
