"""SFace on OpenVINO (faces/openvino.py, the engine when it is installed): in bfloat16 (where the
CPU has it) its embeddings of the same faces are within cosine 0.998 of OpenCV's, so catalogs,
calibrations and model ids made with either engine stay valid."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facefind.errors import InvalidValue
from facefind.faces import openvino
from facefind.faces.opencv import OpenCVBackend
from facefind.recognizers import NEW_CATALOGS, builtin_settings
from facefind.settings import Settings

from .conftest import DATASETS, GLINT, MULTI, OBAMA

pytestmark = pytest.mark.skipif(not openvino.available(), reason="OpenVINO is not installed")


def _photos() -> list[np.ndarray]:
    """Real photos: groups, a portrait, small aligned faces and large unaligned ones."""
    paths = [*sorted(MULTI.glob("*.jpg")), OBAMA, *sorted(GLINT.glob("*/*"))[:4]]
    paths += sorted((DATASETS / "deepface").rglob("*.jpg"))[:8]
    return [image for image in (cv2.imread(str(p)) for p in paths) if image is not None]


def _backends() -> tuple[OpenCVBackend, ...]:
    return tuple(
        OpenCVBackend(builtin_settings(NEW_CATALOGS, Settings(engine=e))) for e in ("opencv", "openvino")
    )


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return w * h / (a[2] * a[3] + b[2] * b[3] - w * h)


def test_the_same_faces_and_embeddings() -> None:
    cv, ov = _backends()
    similar = []
    for image in _photos():
        found_cv, found_ov = cv.detect(image), ov.detect(image)
        assert len(found_cv) == len(found_ov)
        for d in found_cv:
            e = max(found_ov, key=lambda x: _iou(x.box, d.box))
            assert _iou(e.box, d.box) >= 0.9
            a, b = cv.embed([cv.align(image, d)]), ov.embed([ov.align(image, e)])
            similar.append(float((a * b).sum()))
    assert len(similar) >= 20 and min(similar) >= 0.998, sorted(similar)[:3]


def test_the_engine_is_chosen_and_checked() -> None:
    assert OpenCVBackend(Settings(engine="auto")).engine == "openvino"  # installed here
    assert OpenCVBackend(Settings(engine="opencv")).engine == "opencv"
    with pytest.raises(InvalidValue, match="choose one of auto, openvino, opencv"):
        OpenCVBackend(Settings(engine="tensorrt"))
