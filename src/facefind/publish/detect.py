"""Face detection tuned for recall, for redaction: a missed face is a person exposed.

Indexing wants faces good enough to recognise; redaction wants every face, however small or
poor. The same YuNet model runs at a low score threshold on several scales of the photo (a
shrunk copy for faces that fill it, the photo itself, and enlarged copies for faces of 10-40
pixels); the detections of all passes are merged by non-maximum suppression. Large passes run
in overlapping tiles, so memory stays bounded whatever the photo's size, and a pass is skipped
when it would exceed `max_pass_pixels`. bench/redact_bench.py measured each choice on
wider_dev (docs/benchmarks.md, "Redaction").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import models
from ..faces.backend import Detection
from ..faces.opencv import detections

# Columns of YuNet's rows that are positions (not the width and height): x's and y's.
_XS = [0, 4, 6, 8, 10, 12]
_YS = [1, 5, 7, 9, 11, 13]


@dataclass(frozen=True)
class RecallSettings:
    # Score 0.18 rather than 0.2, and 1.25x rather than 1.5x: 6 more faces of 20-40 px of 922 on
    # wider_dev and more in every band, 11% less time, 5 more false detections a photo
    # (bench/redact_bench.py --small-ablation; docs/benchmarks.md "Redaction").
    threshold: float = 0.18
    # Scales of the photo, relative to its own pixels: 0.5 for faces that fill it, 1.25 and 2 for
    # faces of 10-40 px (YuNet's smallest anchors are about 10 px).
    scales: tuple[float, ...] = (0.5, 1.0, 1.25, 2.0)
    # Each pass keeps the faces it is there for: an enlarged pass those at most `enlarged_max`
    # pixels high in the enlarged copy (larger boxes there are mostly texture blown up: 10 more
    # false detections a photo on wider_dev, for 0.2 points of recall of faces of 40 px and up),
    # a shrunk pass those at least `shrunk_min` high in the shrunk copy.
    enlarged_max: float = 256
    shrunk_min: float = 64
    # Detect on the mirrored photo too (merged with the rest).
    flip: bool = False
    nms_iou: float = 0.4
    # A pass is cut into tiles of this side (with `tile_overlap` pixels shared by neighbours).
    tile: int = 2048
    tile_overlap: int = 128
    # Enlarged passes above this many pixels are skipped (a 24 MP photo is searched at 1x, not 2x).
    max_pass_pixels: int = 40_000_000


class RecallDetector:
    def __init__(self, settings: RecallSettings | None = None, model: Path | None = None) -> None:
        self.settings = settings or RecallSettings()
        path = model or models.resolve(models.YUNET)
        self._yunet = cv2.FaceDetectorYN.create(str(path), "", (320, 320), self.settings.threshold, 0.3, 5000)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Every face found in a BGR image, as boxes in its pixels with landmarks and score."""
        return detections(self.rows(image))

    def rows(self, image: np.ndarray) -> np.ndarray:
        """YuNet's rows (x, y, w, h, 5 landmarks, score) of every pass, merged."""
        s = self.settings
        h, w = image.shape[:2]
        found = []
        for scale in s.scales:
            if scale > 1 and h * w * scale * scale > s.max_pass_pixels:
                continue
            found.append(self._kept(self._pass(image, scale), scale))
            if s.flip:
                rows = self._pass(cv2.flip(image, 1), scale)
                rows[:, 0] = w - rows[:, 0] - rows[:, 2]
                rows[:, 4:14:2] = w - rows[:, 4:14:2]
                rows[:, [4, 5, 6, 7]] = rows[:, [6, 7, 4, 5]]  # the eyes swap
                rows[:, [10, 11, 12, 13]] = rows[:, [12, 13, 10, 11]]  # and the mouth corners
                found.append(self._kept(rows, scale))
        return merge(np.vstack(found), s.nms_iou)

    def _kept(self, rows: np.ndarray, scale: float) -> np.ndarray:
        if scale > 1:
            return rows[rows[:, 3] * scale <= self.settings.enlarged_max]
        if scale < 1:
            return rows[rows[:, 3] * scale >= self.settings.shrunk_min]
        return rows

    def _pass(self, image: np.ndarray, scale: float) -> np.ndarray:
        h, w = image.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if scale == 1.0:
            scaled = image
        else:
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            scaled = cv2.resize(image, size, interpolation=interpolation)
        out = []
        for x0, y0, tile in _tiles(scaled, self.settings.tile, self.settings.tile_overlap):
            self._yunet.setInputSize((tile.shape[1], tile.shape[0]))
            _, rows = self._yunet.detect(tile)
            if rows is None:
                continue
            rows = np.asarray(rows, np.float32).copy()
            rows[:, _XS] += x0
            rows[:, _YS] += y0
            out.append(rows)
        if not out:
            return np.zeros((0, 15), np.float32)
        rows = np.vstack(out)
        rows[:, 0:14:2] *= w / size[0]  # x, width and the landmarks' x
        rows[:, 1:14:2] *= h / size[1]
        return rows


def _tiles(image: np.ndarray, side: int, overlap: int) -> list[tuple[int, int, np.ndarray]]:
    h, w = image.shape[:2]
    if h <= side and w <= side:
        return [(0, 0, image)]
    step = side - overlap
    xs = list(range(0, max(1, w - overlap), step))
    ys = list(range(0, max(1, h - overlap), step))
    return [(x, y, image[y : y + side, x : x + side]) for y in ys for x in xs]


def merge(rows: np.ndarray, iou: float) -> np.ndarray:
    """Non-maximum suppression over detections of several passes (highest score wins)."""
    if len(rows) == 0:
        return np.zeros((0, 15), np.float32)
    keep = cv2.dnn.NMSBoxes(rows[:, :4].tolist(), rows[:, 14].tolist(), 0.0, iou)
    return rows[np.asarray(keep, np.int64).ravel()]
