"""OpenCV Zoo backend: YuNet detector + SFace recognizer (128-d), via cv2.FaceDetectorYN/SF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .. import models
from ..errors import InvalidValue, ModelUnavailable
from ..settings import ENGINES, Settings
from .backend import Detection

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

MODEL_ID = "sface-2021dec"
# Embeddings averaged with those of the mirrored chip are a different embedding space: their own
# model id keeps them apart from plain ones (and picks their own shipped calibration).
FLIP_SUFFIX = "-flip"
# Flip averaging with landmarks averaged with the mirrored face's (Settings.mirror_landmarks).
MIRROR_SUFFIX = "-mirror"
# The mirrored face is found again in a crop spanning the face and MIRROR_MARGIN of it each way
# (an LFW photo: the whole photo), shrunk to at most MIRROR_MAX_SIDE.
MIRROR_MARGIN, MIRROR_MAX_SIDE = 1.0, 240
MIRRORED_POINTS = [1, 0, 2, 4, 3]  # the five points' order in a mirrored face (eyes and mouth corners swap)
# A tight crop (the face fills the photo) can defeat the detector; retrying on a copy with a
# border costs one more small detection and only runs when nothing was found.
RETRY_MAX_SIDE = 640
# SFace's chip is 112 pixels: a face is cut from a copy where it is at most twice that.
ALIGN_MAX_FACE = 224
CHIP = 112
# Chips per forward pass of SFace: a photo's faces and their mirror images go through the network
# together (NCHW batch), this many at most: OpenCV keeps the buffers of the largest batch it ran
# (~7 MB a chip), and more chips a pass save little more time (docs/benchmarks.md, "The embedding
# in batches").
EMBED_BATCH = 4


def model_files() -> tuple[Path, Path]:
    return models.resolve(models.YUNET), models.resolve(models.SFACE)


def builtin_model_id(settings: Settings) -> str:
    """The id of the built-in SFace's embeddings under `settings` (each variant its own space)."""
    if settings.mirror_landmarks:
        return MODEL_ID + MIRROR_SUFFIX
    return MODEL_ID + (FLIP_SUFFIX if settings.flip_average else "")


class OpenCVBackend:
    model_id = MODEL_ID
    dim = 128

    def __init__(
        self,
        settings: Settings | None = None,
        detector_path: Path | None = None,
        recognizer_path: Path | None = None,
        *,
        sface_embeddings: bool = True,  # False: a subclass embeds with a model of its own
    ) -> None:
        self.settings = settings or Settings()
        self.mirror = self.settings.mirror_landmarks
        self.flip = self.settings.flip_average or self.mirror
        self.model_id = builtin_model_id(self.settings)
        if detector_path is None or recognizer_path is None:
            detector_path, recognizer_path = model_files()
        self.engine = engine(self.settings)
        self._detector = cv2.FaceDetectorYN.create(
            str(detector_path), "", (320, 320), self.settings.detect_score_threshold, 0.3, 5000
        )
        # FaceRecognizerSF is kept for its alignCrop only (SFace's 5-point alignment). Its
        # feature() runs SFace one chip a call; SFace runs here as a network of its own instead,
        # a batch of chips a forward pass (same vectors: tests/test_embed_batch.py). Its
        # constructor insists on loading a network, which alignCrop never uses: it gets the small
        # YuNet file, not a second copy of SFace (62 MB more per worker).
        self._aligner = cv2.FaceRecognizerSF.create(str(detector_path), "")
        self._sface: Any = None
        if sface_embeddings and self.engine == "openvino":
            from . import openvino

            self._sface = openvino.SFace(recognizer_path)
        elif sface_embeddings:
            self._sface = _CvNet(cv2.dnn.readNetFromONNX(str(recognizer_path)))

    def detect(self, image: np.ndarray) -> list[Detection]:
        rows = self._detect_rows(image, self.settings.detect_max_side, pad=0.0)
        if len(rows) == 0:
            rows = self._detect_rows(image, RETRY_MAX_SIDE, pad=0.5)
        return detections(rows)

    def _detect_rows(self, image: np.ndarray, max_side: int, pad: float) -> np.ndarray:
        small, scale = _shrunk(image, max_side)
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
        rows[:, :14] /= np.asarray(scale * 7, np.float32)  # x, y, w, h and 5 landmarks: (sx, sy) pairs
        return rows

    def align(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        if self.mirror:
            detection = self._mirror_averaged(image, detection)
        image, detection = _shrunk_around(image, detection)
        row = np.array([[*detection.box, *detection.landmarks.reshape(-1), detection.score]], np.float32)
        return np.asarray(self._aligner.alignCrop(image, row))

    def _mirror_averaged(self, image: np.ndarray, d: Detection) -> Detection:
        """`d` with its landmarks averaged with those found on the mirrored face, mirrored back
        (`d` itself where the mirrored crop shows no face there). On an LFW photo the crop is the
        whole photo, as bench/alignment_bench.py's mirror_lm measured it (the same points)."""
        x, y, w, h = d.box
        side = max(w, h)
        height, width = image.shape[:2]
        left, top = max(0, int(x - side * MIRROR_MARGIN)), max(0, int(y - side * MIRROR_MARGIN))
        right = min(width, int(np.ceil(x + w + side * MIRROR_MARGIN)))
        bottom = min(height, int(np.ceil(y + h + side * MIRROR_MARGIN)))
        if right - left < 16 or bottom - top < 16:
            return d
        span = right - left
        # A big face's crop is first thinned to every s-th pixel (s = half the shrink factor: the
        # area resize after it still averages 2x2 blocks), or its shrinking costs more than the
        # detection: the flip and shrink of a 1,000 px face in a 24 MP photo cost 2 ms, not 20.
        s = max(1, max(span, bottom - top) // (2 * MIRROR_MAX_SIDE))
        crop = cv2.flip(image[top:bottom:s, left:right:s], 1)
        rows = self._detect_rows(crop, MIRROR_MAX_SIDE, pad=0.0)
        if not len(rows):
            return d
        rows[:, :14] *= s  # back to the photo's pixels, from the crop's left and top
        last = (crop.shape[1] - 1) * s  # where the crop's last column was: x mirrors to last - x
        cx, cy = last - (x + w / 2 - left), y + h / 2 - top  # d's centre in the mirrored crop
        gaps = np.hypot(rows[:, 0] + rows[:, 2] / 2 - cx, rows[:, 1] + rows[:, 3] / 2 - cy)
        nearest = int(np.argmin(gaps))
        if gaps[nearest] > side / 3:  # another face
            return d
        marks = rows[nearest, 4:14].reshape(5, 2).copy()
        marks[:, 0] = last - marks[:, 0]
        marks = marks[MIRRORED_POINTS] + np.array([left, top], np.float32)
        return Detection(box=d.box, landmarks=((d.landmarks + marks) / 2).astype(np.float32), score=d.score)

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        if not self.flip:
            return _unit(self._features(chips))
        # mean of the two unit vectors (bench/pipeline_bench.py: flip_mean; a raw sum is the same)
        n = len(chips)
        feats = self._features([*chips, *(cv2.flip(chip, 1) for chip in chips)])
        return _unit(_unit(feats[:n]) + _unit(feats[n:]))

    def _features(self, chips: list[np.ndarray]) -> np.ndarray:
        """SFace's raw vectors of `chips`, EMBED_BATCH chips a forward pass, fed as
        FaceRecognizerSF.feature feeds one chip (112x112, RGB, 0..255)."""
        assert self._sface is not None
        rows = []
        for start in range(0, len(chips), EMBED_BATCH):
            batch = chips[start : start + EMBED_BATCH]
            blob = cv2.dnn.blobFromImages(batch, 1.0, (CHIP, CHIP), (0, 0, 0), swapRB=True, crop=False)
            rows.append(np.asarray(self._sface.forward(blob), np.float32).reshape(len(batch), -1))
        return np.vstack(rows)


def engine(settings: Settings) -> str:
    """What runs SFace: "openvino" (bfloat16 where the CPU has it: half the CPU time,
    faces/openvino.py) when installed and asked for or left to choose ("auto"), else "opencv"."""
    if settings.engine not in ENGINES:
        raise InvalidValue(
            f"engine {settings.engine!r}: choose one of {', '.join(ENGINES)} (FACEFIND_ENGINE)"
        )
    if settings.engine == "opencv":
        return "opencv"
    from . import openvino

    if openvino.available():
        return "openvino"
    if settings.engine == "openvino":
        raise ModelUnavailable(
            "engine openvino: OpenVINO is not installed; `pip install openvino`, or use FACEFIND_ENGINE=auto"
        )
    return "opencv"


class _CvNet:
    """SFace on OpenCV's DNN: raw vectors of a batch blob."""

    def __init__(self, net: cv2.dnn.Net) -> None:
        self.net = net

    def forward(self, blob: np.ndarray) -> np.ndarray:
        self.net.setInput(blob)
        return np.asarray(self.net.forward())


def _shrunk_around(image: np.ndarray, d: Detection) -> tuple[np.ndarray, Detection]:
    """The face's surroundings area-averaged down until the face is at most ALIGN_MAX_FACE pixels,
    and the detection in that copy. alignCrop samples bilinearly without averaging: from a face 4x
    the chip or more it picks scattered pixels (aliasing), and the chip then depends on the
    resolution it was cut from: embeddings of one face (192-256 px in the smaller copy) cut from
    a 24 MP photo and from the same photo decoded at 1/4 or 1/8 agreed to cosine 0.995 (median;
    0.974 for the worst tenth), 0.999 (0.994) with this (docs/design.md, camera photos).
    The copy spans half a face around the box (the chip spans ~1.2 faces) and is shrunk first by
    a whole factor (OpenCV's area resize then sums pixel blocks: 3-20x faster than by a fraction),
    then by the fraction left on the smaller copy."""
    x, y, w, h = d.box
    side = max(w, h)
    f = side / ALIGN_MAX_FACE
    if f <= 1.0:
        return image, d
    height, width = image.shape[:2]
    margin = side / 2
    left, top = max(0, int(x - margin)), max(0, int(y - margin))
    right, bottom = min(width, int(x + w + margin) + 1), min(height, int(y + h + margin) + 1)
    k = int(f)  # first by whole blocks of k x k pixels, then the rest of the way (a factor under 2)
    right, bottom = left + (right - left) // k * k, top + (bottom - top) // k * k
    if right <= left or bottom <= top:
        return image, d
    crop = image[top:bottom, left:right]
    small = cv2.resize(crop, (crop.shape[1] // k, crop.shape[0] // k), interpolation=cv2.INTER_AREA)
    rest = f / k
    if rest > 1.0:
        size = (max(1, round(small.shape[1] / rest)), max(1, round(small.shape[0] / rest)))
        small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
    fx, fy = crop.shape[1] / small.shape[1], crop.shape[0] / small.shape[0]
    marks = (d.landmarks - np.array([left, top], np.float32) + 0.5) / np.array([fx, fy], np.float32) - 0.5
    moved = Detection(
        box=((x - left + 0.5) / fx - 0.5, (y - top + 0.5) / fy - 0.5, w / fx, h / fy),
        landmarks=marks.astype(np.float32),
        score=d.score,
    )
    return small, moved


def _shrunk(image: np.ndarray, max_side: int) -> tuple[np.ndarray, tuple[float, float]]:
    """`image` shrunk to at most `max_side` pixels, and the scale across and down. By whole blocks
    of k x k pixels first (OpenCV's area resize sums blocks: 5x cheaper than by a fraction; a row
    or column left over at the edge is dropped), then linearly the rest of the way (a factor under
    2, where linear sampling still sees every pixel): 4 ms instead of 29 for a 24 MP photo decoded
    at 1/2, and the same faces found (docs/benchmarks.md, camera photos)."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, (1.0, 1.0)
    k = int(max(h, w) / max_side)
    if k >= 2:
        h, w = h // k * k, w // k * k
        image = cv2.resize(image[:h, :w], (w // k, h // k), interpolation=cv2.INTER_AREA)
    f = max_side / max(h, w)  # the pixels kept, h x w, now span image's whole size
    size = (max(1, round(w * f)), max(1, round(h * f)))
    if max(image.shape[:2]) > max_side:
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    return image, (image.shape[1] / w, image.shape[0] / h)


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
