"""Run a backend over one image: detections, chips, quality and embeddings as `Face`s."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..images import Photo
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


def model_id(settings: Settings) -> str:
    """The `model_id` the backend of `settings` gives its embeddings, without loading it."""
    if settings.recognizer is not None:
        return settings.recognizer.model_id
    from .opencv import builtin_model_id

    return builtin_model_id(settings)


def embedding_dim(settings: Settings) -> int:
    """The length of the embeddings the backend of `settings` makes, without loading it."""
    if settings.recognizer is not None:
        return settings.recognizer.dim
    from .opencv import OpenCVBackend

    return OpenCVBackend.dim


def prepare_backend() -> None:
    """Make sure the model files are present (downloading them if need be)."""
    from .opencv import model_files

    model_files()


def analyze(
    backend: FaceBackend,
    image: np.ndarray | Photo,
    settings: Settings,
    times: StageTimes | None = None,
) -> list[Face]:
    """All faces in `image`, largest first, in the coordinates of the full photo.

    A `Photo` decoded smaller (images.decode_photo) is searched for faces as it is; each face's
    chip is cut from it when the face is at least `settings.chip_from_reduced_px` pixels there,
    else from the photo decoded in full (once, only for photos with such a face).
    """
    photo = image if isinstance(image, Photo) else Photo.of(image)
    times = times or StageTimes()
    t = time.perf_counter()
    found = backend.detect(photo.image)
    t = times.add("detect", t)
    sx, sy = photo.scale
    detections = found if not photo.reduced else [_scaled(d, sx, sy) for d in found]
    # Data minimisation: a face too small to keep (in the full photo) gets no template, never embedded.
    kept = [min(d.box[2], d.box[3]) >= settings.min_template_px for d in detections]
    found = [d for d, keep in zip(found, kept, strict=True) if keep]
    detections = [d for d, keep in zip(detections, kept, strict=True) if keep]
    chips = []
    for small, det in zip(found, detections, strict=True):
        if not photo.reduced or min(small.box[2:]) >= settings.chip_from_reduced_px:
            chips.append(backend.align(photo.image, small))
        else:
            if photo.needs_full_decode:
                t = times.add("align", t)
                photo.full()
                t = times.add("decode_full", t)
            chips.append(backend.align(photo.full(), det))
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


def _scaled(d: Detection, sx: float, sy: float) -> Detection:
    """A detection in a reduced image, in the full photo's pixels (a pixel's centre maps to the
    centre of the block of full pixels it stands for)."""
    x, y, w, h = d.box
    marks = (d.landmarks + 0.5) * np.array([sx, sy], np.float32) - 0.5
    return Detection(
        box=((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5, w * sx, h * sy),
        landmarks=marks.astype(np.float32),
        score=d.score,
    )
