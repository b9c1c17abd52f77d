"""Image -> faces: detect, align, assess quality, embed. Backends live behind `FaceBackend`."""

from .backend import Detection, FaceBackend
from .pipeline import Face, analyze, embedding_dim, load_backend, model_id, prepare_backend
from .quality import Quality

__all__ = [
    "Detection",
    "Face",
    "FaceBackend",
    "Quality",
    "analyze",
    "embedding_dim",
    "load_backend",
    "model_id",
    "prepare_backend",
]
