"""The face_recognition package (dlib HOG detector + dlib ResNet encoder): the benchmark baseline.

Install with `make bench-install` (dlib-bin, face_recognition_models, face_recognition --no-deps).
"""

from __future__ import annotations

import os
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per process, like our workers


def encode_file(path: str, max_side: int | None = None) -> tuple[int, np.ndarray | None]:
    """(faces found, encoding of the largest face) with face_recognition's defaults; `max_side`:
    the photo is first resized to at most that longer side (camera photos: HOG on 24 MP takes
    seconds, so a user would resize)."""
    import face_recognition

    try:
        image = face_recognition.load_image_file(path)
    except Exception:
        return 0, None
    if max_side and max(image.shape[:2]) > max_side:
        import cv2

        scale = max_side / max(image.shape[:2])
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    locations = face_recognition.face_locations(image, model="hog")
    if not locations:
        return 0, None
    top, right, bottom, left = max(locations, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
    (encoding,) = face_recognition.face_encodings(image, [(top, right, bottom, left)])
    return len(locations), encoding


def encode_files(
    paths: list[str], processes: int = 2, max_side: int | None = None
) -> list[tuple[int, np.ndarray | None]]:
    with get_context("fork").Pool(processes) as pool:
        return pool.map(partial(encode_file, max_side=max_side), paths, chunksize=4)


def image_files(root: Path) -> list[str]:
    from facefind.images import is_image_path

    return sorted(str(p) for p in root.rglob("*") if p.is_file() and is_image_path(p))
