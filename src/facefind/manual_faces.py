"""Faces a user adds by drawing a box on an indexed photo, and detections they remove as "not a face".

A manual face is embedded like a detected one: the detector is run again on the box with a
margin around it (half the box's longer side), and if it finds a face overlapping the box (IoU at
least MATCH_IOU) its five landmarks align the face; otherwise (a face the detector cannot see:
turned away, half hidden, very small) the landmarks are those of the recognizer's 112x112
alignment template stretched over the box, a centred alignment that assumes an upright face
filling the box. Quality is assessed as for any face, so a poor manual face is searched only with
`--include-low-quality`, like a poor detected one. The face is marked manual (`manual_faces`) and
joins a person (`person`, pinned) or is clustered as a new face. It is refused if it matches an
opt-out, as indexing would refuse it.

"Not a face" deletes the face (tombstoned: the vector index drops it) and remembers its box on
the photo's content hash (`not_faces`): when the photo is analysed again (re-index of a changed
file, another collection holding the same photo), a detection overlapping that box (IoU at least
MATCH_IOU) is not stored.
A manual face is dropped with the other faces of its photo when the photo changes and is analysed
again (its box may no longer fit); add it again then.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .faces import Face, FaceBackend
from .faces.backend import Detection
from .faces.quality import assess
from .settings import Settings

MATCH_IOU = 0.5  # a detection is "the same face" as a box when they overlap this much
MARGIN = 0.5  # of the box's longer side, around the box, when detecting in it again
# ArcFace / SFace five-point template in a 112x112 chip: eyes, nose tip, mouth corners.
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)

Box = tuple[float, float, float, float]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def marked(box: Sequence[float], marks: list[Box]) -> bool:
    """Does `box` overlap a box marked "not a face" on the same photo?"""
    return any(iou(box, m) >= MATCH_IOU for m in marks)


def detection_for_box(backend: FaceBackend, image: np.ndarray, box: Box) -> tuple[Detection, str]:
    """The detection to align the face in `box` with, and where its landmarks came from
    ("detector" or "centred")."""
    x, y, w, h = box
    height, width = image.shape[:2]
    margin = MARGIN * max(w, h)
    x0, y0 = max(0, int(x - margin)), max(0, int(y - margin))
    x1, y1 = min(width, int(np.ceil(x + w + margin))), min(height, int(np.ceil(y + h + margin)))
    found = backend.detect(np.ascontiguousarray(image[y0:y1, x0:x1])) if x1 > x0 and y1 > y0 else []
    shifted = [
        Detection(
            (d.box[0] + x0, d.box[1] + y0, d.box[2], d.box[3]),
            d.landmarks + np.array([x0, y0], np.float32),
            d.score,
        )
        for d in found
    ]
    best = max(shifted, key=lambda d: iou(d.box, box), default=None)
    if best is not None and iou(best.box, box) >= MATCH_IOU:
        return Detection(box, best.landmarks.astype(np.float32), best.score), "detector"
    landmarks = TEMPLATE / 112.0 * np.array([w, h], np.float32) + np.array([x, y], np.float32)
    return Detection(box, landmarks.astype(np.float32), 0.0), "centred"


def embed_box(backend: FaceBackend, image: np.ndarray, box: Box, settings: Settings) -> tuple[Face, str]:
    """The face in `box`, embedded like a detected face, and where its alignment came from."""
    detection, source = detection_for_box(backend, image, box)
    chip = backend.align(image, detection)
    (embedding,) = backend.embed([chip])
    quality = assess(detection, chip)
    usable = settings.searchable(quality.size_px, quality.score)
    return Face(detection, quality, embedding, backend.model_id, usable), source


def parse_box(text: str, shape: tuple[int, ...] | None = None) -> Box:
    """ "x,y,w,h" in pixels of the photo as stored (EXIF orientation applied)."""
    from .errors import InvalidValue

    parts = text.replace(" ", "").split(",")
    try:
        x, y, w, h = (float(p) for p in parts)
    except ValueError:
        raise InvalidValue(f"--box {text!r}: give x,y,w,h in pixels, e.g. --box 120,80,96,110") from None
    if not all(np.isfinite([x, y, w, h])) or w < 8 or h < 8 or x < 0 or y < 0:
        raise InvalidValue(f"--box {text!r}: x and y at least 0, width and height at least 8 pixels")
    if shape is not None and (x + w > shape[1] or y + h > shape[0]):
        raise InvalidValue(f"--box {text!r} reaches outside the photo ({shape[1]}x{shape[0]} pixels)")
    return x, y, w, h
