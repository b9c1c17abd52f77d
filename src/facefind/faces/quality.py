"""How usable a face is for recognition: size, sharpness and pose, each scored 0..1."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..settings import Settings
from .backend import Detection

# Below SIZE_LOW px a face carries too little detail; at SIZE_FULL px and above, size is no limit.
SIZE_LOW, SIZE_FULL = 16.0, 64.0
# Variance of the Laplacian of a 112x112 chip: sharp faces measure several hundred; heavy
# blur under ~10 (measured on ../shared/datasets, see docs/benchmarks.md).
BLUR_LOW, BLUR_FULL = 5.0, 60.0
# Sharpness is measured on the eyes-nose-mouth square of the chip only: the chip's corners can lie
# outside the photo (black, with a hard edge) or on hair and background, which kept heavily
# blurred faces looking sharp (bench/pipeline_bench.py, docs/pipeline.md).
SHARPNESS_REGION = (slice(28, 100), slice(20, 92))
# Nose offset from the eye midline, as a share of the eye distance: 0 frontal, ~0.5 profile.
YAW_LIMIT = 0.6


@dataclass(frozen=True)
class Quality:
    size_px: float
    sharpness: float
    yaw: float
    score: float


def _ramp(value: float, low: float, full: float) -> float:
    return float(np.clip((value - low) / (full - low), 0.0, 1.0))


def assess(detection: Detection, chip: np.ndarray) -> Quality:
    size = float(min(detection.box[2], detection.box[3]))
    grey = cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY)[SHARPNESS_REGION]
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    right_eye, left_eye, nose = detection.landmarks[0], detection.landmarks[1], detection.landmarks[2]
    eye_distance = float(np.linalg.norm(left_eye - right_eye)) or 1.0
    eye_axis = (left_eye - right_eye) / eye_distance
    yaw = abs(float(np.dot(nose - (left_eye + right_eye) / 2, eye_axis))) / eye_distance
    score = (
        _ramp(size, SIZE_LOW, SIZE_FULL)
        * _ramp(sharpness, BLUR_LOW, BLUR_FULL)
        * (1.0 - _ramp(yaw, 0.0, YAW_LIMIT))
    )
    return Quality(size_px=size, sharpness=sharpness, yaw=yaw, score=round(score, 4))


def warnings(q: Quality, settings: Settings) -> list[str]:
    """Why a query face may not be recognised reliably, one plain reason per problem; [] if none."""
    reasons = []
    if q.size_px < settings.warn_face_px:
        limit = settings.warn_face_px
        reasons.append(f"face is {q.size_px:.0f} px wide (under {limit} px: too small to recognise reliably)")
    if q.sharpness < settings.warn_sharpness:
        reasons.append(f"blurred (sharpness {q.sharpness:.0f} < {settings.warn_sharpness:g})")
    if q.yaw > settings.warn_yaw:
        reasons.append(f"turned away (yaw {q.yaw:.2f}, profile)")
    return reasons
