"""OpenCV Zoo backend: YuNet detector + SFace recognizer (128-d), via cv2.FaceDetectorYN/SF."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .. import models
from ..settings import Settings
from .backend import Detection

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

MODEL_ID = "sface-2021dec"
# Embeddings averaged with those of the mirrored chip are a different embedding space: their own
# model id keeps them apart from plain ones (and picks their own shipped calibration).
FLIP_SUFFIX = "-flip"
# A tight crop (the face fills the photo) can defeat the detector; retrying on a copy with a
# border costs one more small detection and only runs when nothing was found.
RETRY_MAX_SIDE = 640
# SFace's chip is 112 pixels: a face is cut from a copy where it is at most twice that.
ALIGN_MAX_FACE = 224


def model_files() -> tuple[Path, Path]:
    return models.resolve(models.YUNET), models.resolve(models.SFACE)


class OpenCVBackend:
    model_id = MODEL_ID
    dim = 128

    def __init__(
        self,
        settings: Settings | None = None,
        detector_path: Path | None = None,
        recognizer_path: Path | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.flip = self.settings.flip_average
        self.model_id = MODEL_ID + (FLIP_SUFFIX if self.flip else "")
        if detector_path is None or recognizer_path is None:
            detector_path, recognizer_path = model_files()
        self._detector = cv2.FaceDetectorYN.create(
            str(detector_path), "", (320, 320), self.settings.detect_score_threshold, 0.3, 5000
        )
        self._recognizer = cv2.FaceRecognizerSF.create(str(recognizer_path), "")

    def detect(self, image: np.ndarray) -> list[Detection]:
        rows = self._detect_rows(image, self.settings.detect_max_side, pad=0.0)
        if len(rows) == 0:
            rows = self._detect_rows(image, RETRY_MAX_SIDE, pad=0.5)
        return detections(rows)

    def _detect_rows(self, image: np.ndarray, max_side: int, pad: float) -> np.ndarray:
        h, w = image.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        small = (
            image
            if scale == 1.0
            else cv2.resize(
                image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            )
        )
        border = round(pad * max(small.shape[:2]))
        if border:
            small = cv2.copyMakeBorder(small, border, border, border, border, cv2.BORDER_CONSTANT)
        self._detector.setInputSize((small.shape[1], small.shape[0]))
        _, rows = self._detector.detect(small)
        if rows is None:
            return np.zeros((0, 15), np.float32)
        rows = np.asarray(rows, np.float32).copy()
        rows[:, :14] -= border  # every coordinate is x or y; both shift by the border
        rows[:, 2:4] += border  # width and height do not shift
        rows[:, :14] *= np.float32(1.0 / scale)
        return rows

    def align(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        image, detection = _shrunk_around(image, detection)
        row = np.array([[*detection.box, *detection.landmarks.reshape(-1), detection.score]], np.float32)
        return np.asarray(self._recognizer.alignCrop(image, row))

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        feats = self._features(chips)
        if not self.flip:
            return _unit(feats)
        # mean of the two unit vectors (bench/pipeline_bench.py: flip_mean; a raw sum is the same)
        mirrored = self._features([cv2.flip(chip, 1) for chip in chips])
        return _unit(_unit(feats) + _unit(mirrored))

    def _features(self, chips: list[np.ndarray]) -> np.ndarray:
        return np.vstack(
            [np.asarray(self._recognizer.feature(chip), np.float32).reshape(1, -1) for chip in chips]
        )


def _shrunk_around(image: np.ndarray, d: Detection) -> tuple[np.ndarray, Detection]:
    """The face's surroundings area-averaged down until the face is at most ALIGN_MAX_FACE pixels,
    and the detection in that copy. alignCrop samples bilinearly without averaging: from a face 4x
    the chip or more it picks scattered pixels (aliasing), and the chip then depends on the
    resolution it was cut from: embeddings of one face (192-256 px in the smaller copy) cut from
    a 24 MP photo and from the same photo decoded at 1/4 or 1/8 agreed to cosine 0.995 (median;
    0.974 for the worst tenth), 0.999 (0.994) with this (docs/design.md, camera photos)."""
    x, y, w, h = d.box
    side = max(w, h)
    f = side / ALIGN_MAX_FACE
    if f <= 1.0:
        return image, d
    height, width = image.shape[:2]
    left, top = max(0, int(x - side)), max(0, int(y - side))
    right, bottom = min(width, int(x + w + side) + 1), min(height, int(y + h + side) + 1)
    if right <= left or bottom <= top:
        return image, d
    crop = image[top:bottom, left:right]
    small = cv2.resize(
        crop,
        (max(1, round(crop.shape[1] / f)), max(1, round(crop.shape[0] / f))),
        interpolation=cv2.INTER_AREA,
    )
    fx, fy = crop.shape[1] / small.shape[1], crop.shape[0] / small.shape[0]
    marks = (d.landmarks - np.array([left, top], np.float32) + 0.5) / np.array([fx, fy], np.float32) - 0.5
    moved = Detection(
        box=((x - left + 0.5) / fx - 0.5, (y - top + 0.5) / fy - 0.5, w / fx, h / fy),
        landmarks=marks.astype(np.float32),
        score=d.score,
    )
    return small, moved


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)).astype(np.float32)


def detections(rows: np.ndarray) -> list[Detection]:
    """YuNet's output rows (box, five landmarks, score) as `Detection`s."""
    return [
        Detection(
            box=(float(r[0]), float(r[1]), float(r[2]), float(r[3])),
            landmarks=r[4:14].reshape(5, 2).astype(np.float32),
            score=float(r[14]),
        )
        for r in rows
    ]
