"""Settings.flip_average: the mirrored chip is embedded too, under its own model id; with
Settings.mirror_landmarks the landmarks are averaged with the mirrored face's too: the recognizer
of new catalogs (recognizers.NEW_CATALOGS), while older catalogs keep theirs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

import facefind
from facefind.calibration import default_calibration
from facefind.catalog import Catalog
from facefind.faces import analyze, load_backend
from facefind.recognizers import NEW_CATALOGS
from facefind.settings import Settings

from .conftest import BIDEN, DATASETS, OBAMA, run_cli, run_json


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


def test_mirrored_landmarks_are_the_mean_of_the_faces_and_its_mirror_images() -> None:
    """On an LFW photo (the face fills most of it) the landmarks are the mean of YuNet's on the photo
    and on the whole photo mirrored, mirrored back: what bench/alignment_bench.py's mirror_lm
    measured. The embedding is near flip averaging's, not the same."""
    settings = Settings(flip_average=True, mirror_landmarks=True)
    mirror, flipped = load_backend(settings), load_backend(Settings(flip_average=True))
    assert mirror.model_id == "sface-2021dec-mirror"
    for photo in sorted((DATASETS / "lfw_dev").glob("*/*.jpg"))[:12:3]:
        image = cv2.imread(str(photo))
        (face,) = [d for d in flipped.detect(image) if d.box[2] > 40]
        width = image.shape[1]
        other = min(
            flipped.detect(cv2.flip(image, 1)),
            key=lambda d: abs(width - 1 - (d.box[0] + d.box[2] / 2) - (face.box[0] + face.box[2] / 2)),
        )
        back = other.landmarks.copy()
        back[:, 0] = width - 1 - back[:, 0]
        expected = (face.landmarks + back[[1, 0, 2, 4, 3]]) / 2  # eyes and mouth corners swap
        assert np.allclose(mirror._mirror_averaged(image, face).landmarks, expected, atol=0.01)
        both = [b.embed([b.align(image, face)])[0] for b in (mirror, flipped)]
        assert 0.95 < float(both[0] @ both[1]) < 0.99999
    # the same person matches and another does not, at its own shipped calibration
    threshold = default_calibration(mirror.model_id).threshold(1e-3)
    obama = [analyze(mirror, cv2.imread(str(p)), settings)[0] for p in (OBAMA, OBAMA.with_name("obama2.jpg"))]
    biden = analyze(mirror, cv2.imread(str(BIDEN)), settings)[0]
    assert obama[0].model_id == "sface-2021dec-mirror"
    assert (
        float(obama[0].embedding @ biden.embedding)
        < threshold
        < float(obama[0].embedding @ obama[1].embedding)
    )


def test_new_catalogs_use_mirrored_landmarks_and_older_ones_keep_their_model(tmp_path: Path) -> None:
    assert NEW_CATALOGS == "sface-2021dec-mirror"
    with facefind.open(tmp_path / "new.db") as ff:
        assert ff.models.active == NEW_CATALOGS and ff.settings.flip_average and ff.settings.mirror_landmarks
        assert ff.backend.model_id == NEW_CATALOGS
        assert ff.calibration().model_id == NEW_CATALOGS  # its own shipped table
    Catalog(tmp_path / "old.db").close()  # made as facefind made catalogs before: no model recorded
    with facefind.open(tmp_path / "old.db") as ff:
        assert ff.models.active == "sface-2021dec" and not ff.settings.flip_average
        assert not ff.settings.mirror_landmarks
        assert ff.backend.model_id == "sface-2021dec"


def test_a_catalog_switches_to_the_plain_model_and_back(fr_copy: Path) -> None:
    """A new catalog indexes with sface-2021dec-mirror; `facefind models use sface-2021dec` re-embeds
    every face with the plain model, then searches with it."""
    db = fr_copy
    listed = {m["name"]: m for m in run_json("models", "list", db=db)}
    assert listed["sface-2021dec-mirror"]["builtin"] and listed["sface-2021dec-mirror"]["active"]
    assert all(
        listed[m]["builtin"] and not listed[m]["active"] for m in ("sface-2021dec", "sface-2021dec-flip")
    )
    result = run_json("search", OBAMA, "--purpose", "test", db=db)
    assert result["model_id"] == "sface-2021dec-mirror" and result["faces_searched"] == 23
    assert all("Barack_Obama" in m["path"] for m in result["faces"][0]["matches"])
    assert len(result["faces"][0]["matches"]) >= 8
    refused = run_cli("models", "remove", "sface-2021dec-mirror", db=db)
    assert refused.returncode != 0 and "built-in" in refused.stderr
    run_json("models", "use", "sface-2021dec", db=db)
    result = run_json("search", OBAMA, "--purpose", "test", db=db)
    assert result["model_id"] == "sface-2021dec" and result["faces_searched"] == 23
    run_json("models", "use", "sface-2021dec-mirror", db=db)
    assert run_json("search", OBAMA, "--purpose", "test", db=db)["model_id"] == "sface-2021dec-mirror"
