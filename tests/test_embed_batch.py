"""SFace runs a photo's chips (and their mirror images) in one forward pass (faces/opencv.py
EMBED_BATCH): the embeddings are those of one FaceRecognizerSF.feature call a chip, as facefind
made them before, so stored faces, calibrations and model ids stay valid."""

from __future__ import annotations

import cv2
import numpy as np

from facefind import models
from facefind.faces import load_backend
from facefind.faces.opencv import EMBED_BATCH, OpenCVBackend, _shrunk_around
from facefind.settings import Settings

from .conftest import GLINT, MULTI, OBAMA


def _one_at_a_time(chips: list[np.ndarray], flip: bool) -> np.ndarray:
    """The embeddings as facefind computed them before batching: a feature() call a chip."""
    recognizer = cv2.FaceRecognizerSF.create(str(models.resolve(models.SFACE)), "")

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def features(cs: list[np.ndarray]) -> np.ndarray:
        return unit(np.vstack([np.asarray(recognizer.feature(c), np.float32).reshape(1, -1) for c in cs]))

    feats = features(chips)
    return feats if not flip else unit(feats + features([cv2.flip(c, 1) for c in chips]))


def _chips(backend: OpenCVBackend) -> list[list[np.ndarray]]:
    """The chips of real photos, photo by photo: photos of 2-3 people and of one."""
    photos = [*sorted(MULTI.glob("*.jpg")), OBAMA, *sorted(GLINT.glob("*/*"))[:6]]
    out = []
    for path in photos:
        image = cv2.imread(str(path))
        out.append([backend.align(image, d) for d in backend.detect(image)])
    return out


def test_batched_embeddings_are_those_of_one_chip_at_a_time() -> None:
    for flip in (False, True):
        backend = load_backend(Settings(flip_average=flip, engine="opencv"))  # OpenCV's DNN, as before
        assert isinstance(backend, OpenCVBackend)
        assert backend.model_id == ("sface-2021dec-flip" if flip else "sface-2021dec")
        photos = _chips(backend)
        assert max(map(len, photos)) >= 3 and sum(map(len, photos)) >= 12
        for chips in photos:
            batched = backend.embed(chips)
            assert batched.shape == (len(chips), 128) and batched.dtype == np.float32
            assert np.allclose(np.linalg.norm(batched, axis=1), 1, atol=1e-5)
            cosine = (batched * _one_at_a_time(chips, flip)).sum(1)
            assert cosine.min() >= 0.9999, (flip, cosine)


def test_chips_are_cut_as_before() -> None:
    """FaceRecognizerSF is now built on the small YuNet file (for alignCrop only): the chips are
    those of one built on SFace's file, pixel for pixel."""
    backend = load_backend(Settings())
    assert isinstance(backend, OpenCVBackend)
    before = cv2.FaceRecognizerSF.create(str(models.resolve(models.SFACE)), "")
    for path in [*sorted(MULTI.glob("*.jpg")), OBAMA]:
        image = cv2.imread(str(path))
        for found in backend.detect(image):
            small, d = _shrunk_around(image, found)  # as align does for a big face
            row = np.array([[*d.box, *d.landmarks.reshape(-1), d.score]], np.float32)
            assert np.array_equal(backend.align(image, found), before.alignCrop(small, row))


def test_more_chips_than_a_batch_keep_their_order() -> None:
    backend = load_backend(Settings(flip_average=True))
    assert isinstance(backend, OpenCVBackend)
    chips = [c for photo in _chips(backend) for c in photo]
    many = (chips * (EMBED_BATCH // len(chips) + 2))[: EMBED_BATCH + 3]  # two passes, and mirrors
    batched = backend.embed(many)
    one_by_one = np.vstack([backend.embed([c]) for c in many])
    assert (batched * one_by_one).sum(1).min() >= 0.9999
    # each row is its own chip's: a shift by one would pair different faces
    assert (batched[1:] * one_by_one[:-1]).sum(1).min() < 0.9
    assert len(backend.embed([])) == 0
