"""A whole indexed photo for a reviewer, to draw a face the detector missed (`ff.face_photo`).

The photo is read as it was indexed (the same content hash) and shown at most `size` pixels on
its longer side. Every face no answer may show is covered by a grey block first: stored faces
that are opted out or withheld by a consent (policy.hidden_faces), and faces an opt-out kept from
ever being stored: the photo's faces are detected again and each that matches an opt-out template
is covered too. The reviewer sees everyone else in the photo: the people view's purpose.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from .errors import ImageError

COVER_MARGIN = 0.25  # of a covered face's box, on each side
GREY = (128, 128, 128)


def cover(image: np.ndarray, boxes: Iterable[tuple[float, float, float, float]]) -> np.ndarray:
    """The image with each box (and a margin around it) filled grey: nothing of the face left."""
    out = image.copy()
    height, width = out.shape[:2]
    for x, y, w, h in boxes:
        mx, my = COVER_MARGIN * w, COVER_MARGIN * h
        left, top = max(0, int(x - mx)), max(0, int(y - my))
        right, bottom = min(width, int(np.ceil(x + w + mx))), min(height, int(np.ceil(y + h + my)))
        if right > left and bottom > top:
            out[top:bottom, left:right] = GREY
    return out


def jpeg(image: np.ndarray, size: int) -> tuple[bytes, float]:
    """A JPEG of the image, its longer side at most `size` pixels, and the scale used (shown
    pixels per photo pixel: a box drawn on it is divided by the scale)."""
    scale = min(1.0, size / max(image.shape[:2]))
    shown = (
        image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    )
    ok, data = cv2.imencode(".jpg", shown, [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:  # pragma: no cover - OpenCV encodes any 8-bit BGR array
        raise ImageError("could not encode the photo")
    return data.tobytes(), scale
