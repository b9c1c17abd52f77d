"""The small interface every face model pair (detector + recognizer) implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One detected face, in the coordinates of the full-resolution image."""

    box: tuple[float, float, float, float]  # x, y, width, height
    landmarks: np.ndarray  # (5, 2): right eye, left eye, nose tip, right/left mouth corner
    score: float


class FaceBackend(Protocol):
    """Detect -> aligned chips -> embeddings.

    `model_id` is stored next to every embedding; embeddings with different ids are never
    compared, so a better recognizer can be added beside this one without touching the rest.
    """

    model_id: str
    dim: int

    def detect(self, image: np.ndarray) -> list[Detection]: ...

    def align(self, image: np.ndarray, detection: Detection) -> np.ndarray: ...

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per chip."""
        ...
