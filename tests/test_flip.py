"""Settings.flip_average: the mirrored chip is embedded too, under its own model id."""

from __future__ import annotations

import cv2
import numpy as np

from facefind.calibration import default_calibration
from facefind.faces import analyze, load_backend
from facefind.settings import Settings

from .conftest import BIDEN, OBAMA


def test_flip_average_is_the_mean_of_both_views_under_its_own_model_id() -> None:
    plain, flipped = load_backend(Settings()), load_backend(Settings(flip_average=True))
    assert plain.model_id == "sface-2021dec" and flipped.model_id == "sface-2021dec-flip"
    image = cv2.imread(str(OBAMA))
    face = analyze(plain, image, Settings())[0]
    chip = plain.align(image, face.detection)
    one, mirrored = plain.embed([chip, cv2.flip(chip, 1)])
    both = flipped.embed([chip])[0]
    assert np.isclose(np.linalg.norm(both), 1, atol=1e-5)
    expected = (one + mirrored) / np.linalg.norm(one + mirrored)
    assert float(both @ expected) > 0.9999
    assert np.allclose(flipped.embed([cv2.flip(chip, 1)])[0], both, atol=1e-5)  # mirror-invariant
    # the same person still matches and another does not, at the flip model's own calibration
    calibration = default_calibration(flipped.model_id)
    threshold = calibration.threshold(1e-3)
    other = analyze(flipped, cv2.imread(str(BIDEN)), Settings(flip_average=True))[0]
    assert float(both @ other.embedding) < threshold
    assert analyze(flipped, image, Settings(flip_average=True))[0].model_id == "sface-2021dec-flip"
