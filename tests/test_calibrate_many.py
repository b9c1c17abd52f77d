"""Calibration on many people: several labelled folders, photos with several faces, and the
shipped calibration's stated FPIR against what strangers really get on LFW photos."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import facefind
from facefind.calibration import DEFAULT_MAX_FPIR, default_calibration
from facefind.evaluate import LabelledSet, load_labelled
from facefind.faces import analyze, load_backend
from facefind.faces.opencv import MODEL_ID
from facefind.settings import Settings

from .conftest import DATASETS, GLINT, MULTI, run_json

LFW = DATASETS / "lfw_dev"


def _subset(dest: Path, people: list[str], photos: int) -> Path:
    for person in people:
        (dest / person).mkdir(parents=True)
        for src in sorted((GLINT / person).iterdir())[:photos]:
            shutil.copy(src, dest / person / src.name)
    return dest


def test_calibrate_several_folders_pools_their_people(tmp_path: Path) -> None:
    people = sorted(p.name for p in GLINT.iterdir() if p.is_dir())
    a = _subset(tmp_path / "set_a", people[:6], 10)
    b = _subset(tmp_path / "set_b", people[6:], 10)
    db = tmp_path / "catalog.db"
    table = run_json("calibrate", a, b, "--output", tmp_path / "out.json", db=db)
    folders = {f["folder"]: f for f in table["provenance"]["folders"]}
    assert set(folders) == {"set_a", "set_b"}
    assert table["provenance"]["people"] == 12 and table["provenance"]["photos"] == 120
    # Pairs only within a folder: 2 x (60*59/2 - 6 people x 45 genuine) at most, never the 3,600 across.
    found = {n: f["photos"] - f["photos_without_a_face"] for n, f in folders.items()}
    within = sum(k * (k - 1) // 2 for k in found.values())
    assert table["impostor_pairs"] + table["genuine_pairs"] == within
    assert table["impostor_pairs"] <= 2 * (60 * 59 // 2 - 6 * 45)
    assert table["provenance"]["extrapolated_below_fmr"] == pytest.approx(10 / table["impostor_pairs"])
    assert json.loads((tmp_path / "out.json").read_text())["provenance"] == table["provenance"]
    with facefind.open(db) as ff:  # saved, and used from now on
        assert ff.calibration().provenance == table["provenance"]


def test_same_folder_twice_is_refused(tmp_path: Path) -> None:
    a = _subset(tmp_path / "set_a", sorted(p.name for p in GLINT.iterdir() if p.is_dir())[:2], 1)
    out = run_json("calibrate", a, a, db=tmp_path / "c.db", ok_codes=(1, 2))
    assert "twice" in json.dumps(out)


def test_a_photo_with_several_faces_is_labelled_by_the_one_nearest_the_centre(tmp_path: Path) -> None:
    settings = Settings()
    backend = load_backend(settings)
    whole = cv2.imread(str(MULTI / "obama_and_biden.jpg"))
    everyone = analyze(backend, whole, settings)
    # A crop with both people: the smaller face sits at its centre, the largest face near its edge.
    crop = whole[100:900, 400:1340]
    in_crop = analyze(backend, crop, settings)
    assert len(in_crop) == 2
    centre = np.array([crop.shape[1] / 2, crop.shape[0] / 2])
    nearest = min(
        in_crop, key=lambda f: np.linalg.norm(np.array(f.box[:2]) + np.array(f.box[2:]) / 2 - centre)
    )
    largest = max(in_crop, key=lambda f: f.area)
    assert nearest is not largest  # the old rule (largest face) would label the other person
    for person in ("centre", "other"):
        (tmp_path / person).mkdir()
    cv2.imwrite(str(tmp_path / "centre" / "crop.jpg"), crop)
    shutil.copy(MULTI / "kit_with_rose.jpg", tmp_path / "other" / "kit_with_rose.jpg")
    labelled = load_labelled(tmp_path, settings, 1, lambda: backend)
    got = labelled.embeddings[labelled.paths.index(str(tmp_path / "centre" / "crop.jpg"))]
    sims = [float(got @ f.embedding) for f in everyone]
    person = int(np.argmax(sims))
    assert sims[person] > 0.9
    # ... the same person as the face nearest the crop's centre, found in the whole photo.
    assert float(nearest.embedding @ everyone[person].embedding) > 0.9
    assert float(largest.embedding @ everyone[person].embedding) < 0.5


# Stated vs measured FPIR on lfw_dev --------------------------------------------------------------
# The protocol on a fixed subset of lfw_dev (every 5th person, sorted by name; 850 photos):
# gallery = every photo but the first of each person with 2+ photos (at most 2), mated probes = those first
# photos, strangers = the people with one photo. The shipped calibration was fitted on all of
# lfw_dev, these people included: the check is optimistic (bench/make_calibration.py also reports
# it on people held out of the calibration).


@pytest.fixture(scope="module")
def lfw_subset(tmp_path_factory: pytest.TempPathFactory) -> LabelledSet:
    if not LFW.is_dir():
        pytest.skip(f"{LFW} not found")
    root = tmp_path_factory.mktemp("lfw_subset")
    for person in sorted(p for p in LFW.iterdir() if p.is_dir())[::5]:
        photos = sorted(person.iterdir())[:3]
        (root / person.name).mkdir()
        for photo in photos:
            (root / person.name / photo.name).symlink_to(photo)
    settings = Settings()
    backend = load_backend(settings)
    return load_labelled(root, settings, 2, lambda: backend)


def test_stated_fpir_holds_on_lfw_strangers(lfw_subset: LabelledSet) -> None:
    s = lfw_subset
    by_person: dict[str, list[int]] = {}
    for i, person in enumerate(s.persons):
        by_person.setdefault(person, []).append(i)
    gallery, mated, strangers = [], [], []
    for photos in by_person.values():
        if len(photos) >= 2:
            mated.append(photos[0])
            gallery += [i for i in photos[1:] if s.detected[i]]
        else:
            strangers.append(photos[0])
    calibration = default_calibration(MODEL_ID)
    cut = calibration.threshold_for_fpir(DEFAULT_MAX_FPIR, len(gallery))
    assert not calibration.estimate(cut).extrapolated  # measured, not from the tail model
    passed = int((s.similarity(strangers, gallery).max(axis=1) >= cut).sum())
    measured = passed / len(strangers)
    # At most 2x the stated 0.01 (the costly side: strangers matched); at least half of it, allowing
    # for chance at this many strangers (390: 2 passed, where 3.9 are stated; binomial 95%).
    slack = 1.96 * math.sqrt(DEFAULT_MAX_FPIR / len(strangers))
    assert DEFAULT_MAX_FPIR / 2 - slack <= measured <= 2 * DEFAULT_MAX_FPIR, (passed, len(strangers))
    sims = s.similarity(mated, gallery)
    best = sims.argmax(axis=1)
    found = (s.labels[np.asarray(gallery)[best]] == s.labels[mated]) & (
        sims[np.arange(len(mated)), best] >= cut
    )
    assert 1 - found.mean() < 0.05, found.mean()  # FNIR (0.011 with the shipped calibration)
