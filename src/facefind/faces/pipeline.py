"""Run a backend over one image: detections, chips, quality and embeddings as `Face`s."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..settings import Settings
from .backend import Detection, FaceBackend
from .quality import Quality, assess


@dataclass
class Face:
    detection: Detection
    quality: Quality
    embedding: np.ndarray
    model_id: str
    usable: bool  # big and good enough to be searched by default

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.detection.box

    @property
    def area(self) -> float:
        return self.detection.box[2] * self.detection.box[3]


@dataclass
class StageTimes:
    """Seconds spent per pipeline stage, summed over images."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - started
        return now

    def merge(self, other: StageTimes) -> None:
        for stage, s in other.seconds.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + s


def load_backend(settings: Settings | None = None) -> FaceBackend:
    """The built-in YuNet + SFace backend, or the registered recognizer `settings.recognizer`."""
    if settings is not None and settings.recognizer is not None:
        from .onnx import OnnxBackend

        return OnnxBackend(settings.recognizer, settings)
    from .opencv import OpenCVBackend

    return OpenCVBackend(settings)


def prepare_backend() -> None:
    """Make sure the model files are present (downloading them if need be)."""
    from .opencv import model_files

    model_files()


def analyze(
    backend: FaceBackend,
    image: np.ndarray,
    settings: Settings,
    times: StageTimes | None = None,
) -> list[Face]:
    """All faces in `image`, largest first."""
    times = times or StageTimes()
    t = time.perf_counter()
    # Data minimisation: a face too small to keep gets no template (it is never embedded).
    detections = [d for d in backend.detect(image) if min(d.box[2], d.box[3]) >= settings.min_template_px]
    t = times.add("detect", t)
    chips = [backend.align(image, d) for d in detections]
    t = times.add("align", t)
    embeddings = backend.embed(chips)
    t = times.add("embed", t)
    faces = []
    for det, chip, emb in zip(detections, chips, embeddings, strict=True):
        quality = assess(det, chip)
        usable = settings.searchable(quality.size_px, quality.score)
        faces.append(Face(det, quality, emb, backend.model_id, usable))
    times.add("quality", t)
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces
