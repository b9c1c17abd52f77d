"""Settings.flip_average: the mirrored chip is embedded too, under its own model id."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facefind.calibration import default_calibration
from facefind.faces import analyze, load_backend
from facefind.settings import Settings

from .conftest import BIDEN, OBAMA, run_cli, run_json


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


def test_a_catalog_switches_to_the_flip_model_and_back(fr_copy: Path) -> None:
    """`facefind models use sface-2021dec-flip`: re-embeds every face, then searches with it."""
    db = fr_copy
    listed = {m["name"]: m for m in run_json("models", "list", db=db)}
    assert listed["sface-2021dec-flip"]["builtin"] and not listed["sface-2021dec-flip"]["active"]
    run_json("models", "use", "sface-2021dec-flip", db=db)
    result = run_json("search", OBAMA, "--purpose", "test", db=db)
    assert result["model_id"] == "sface-2021dec-flip" and result["faces_searched"] == 23
    assert all("Barack_Obama" in m["path"] for m in result["faces"][0]["matches"])
    assert len(result["faces"][0]["matches"]) >= 8
    refused = run_cli("models", "remove", "sface-2021dec-flip", db=db)
    assert refused.returncode != 0 and "built-in" in refused.stderr
    run_json("models", "use", "sface-2021dec", db=db)
    assert run_json("search", OBAMA, "--purpose", "test", db=db)["model_id"] == "sface-2021dec"
