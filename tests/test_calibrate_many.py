"""Calibration on many people: several labelled folders, photos with several faces, and the
shipped calibration's stated FPIR against what strangers really get on LFW photos."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import facefind
from facefind.calibration import DEFAULT_MAX_FPIR, default_calibration, fpir_of
from facefind.evaluate import LabelledSet, first_photo_split, load_labelled, wilson_interval
from facefind.faces import analyze, load_backend
from facefind.faces.opencv import MODEL_ID
from facefind.settings import Settings

from .conftest import DATASETS, GLINT, MULTI, run_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from index_bench import FaceLikeData
from lfw_synth import FittedFaces, score_quantiles

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
    split = first_photo_split(lfw_subset)  # the protocol of `facefind evaluate`
    assert split is not None
    calibration = default_calibration(MODEL_ID)
    cut = calibration.threshold_for_fpir(DEFAULT_MAX_FPIR, len(split.gallery))
    assert not calibration.estimate(cut).extrapolated  # measured, not from the tail model
    passed, misses = split.rates(cut)
    strangers = len(split.non_mated)
    measured = passed / strangers
    # At most 2x the stated 0.01 (the costly side: strangers matched), and the stated rate inside the
    # measured one's 95% interval: 390 strangers cannot tell 0.005 from 0.01 (2 passed, where 3.9 are
    # stated), but a decision stricter than that (none of 390 passing: interval 0-0.0098) or looser
    # (9 or more) fails.
    low, high = wilson_interval(passed, strangers)
    assert measured <= 2 * DEFAULT_MAX_FPIR and low <= DEFAULT_MAX_FPIR <= high, (passed, strangers)
    assert misses / len(split.mated) < 0.05, misses  # FNIR (0.011 with the shipped calibration)


def test_default_threshold_is_measured_up_to_the_largest_measured_gallery() -> None:
    calibration = default_calibration(MODEL_ID)
    for fpir in (0.1, DEFAULT_MAX_FPIR, 0.003):
        n = calibration.largest_measured_gallery(fpir)
        assert not calibration.estimate(calibration.threshold_for_fpir(fpir, n)).extrapolated
        assert calibration.estimate(calibration.threshold_for_fpir(fpir, n + 1)).extrapolated
        # ... where n comparisons at the smallest measured FMR reach the stated FPIR.
        assert fpir_of(calibration.measured_floor, n) <= fpir < fpir_of(calibration.measured_floor, n + 1)
    assert calibration.largest_measured_gallery(DEFAULT_MAX_FPIR) > 20_000  # the README says ~20,000


# The synthetic galleries of bench/openset_bench.py --synthetic-lfw: a model fitted to real SFace
# embeddings must give the real scores back, here fitted to the subset's 850 photos of 573 people.


def test_synthetic_faces_fitted_to_lfw_give_its_scores(lfw_subset: LabelledSet) -> None:
    s = lfw_subset
    embeddings, persons = s.embeddings[s.detected], np.asarray(s.persons)[s.detected]
    _, owner = np.unique(persons, return_inverse=True)
    real = score_quantiles(embeddings, owner)
    model = FittedFaces.fit(embeddings, persons, seed=0)
    fitted = score_quantiles(*model.labelled(np.bincount(owner), np.random.default_rng(1)))
    assert fitted["impostor_pairs"] == real["impostor_pairs"] > 300_000

    def misfit(q: dict) -> tuple[float, float]:
        impostor = max(abs(q["impostor_at_fmr"][f] - real["impostor_at_fmr"][f]) for f in ("0.001", "0.0001"))
        return impostor, abs(q["genuine_at_quantile"]["0.5"] - real["genuine_at_quantile"]["0.5"])

    impostor, genuine = misfit(fitted)
    # Similarity at FMR 1e-3 and 1e-4 within 0.03 (real: 0.36 and 0.42); genuine median within 0.06.
    assert impostor <= 0.03 and genuine <= 0.06, (real, fitted)
    # The generator fitted to nothing but glint_dev12's three spread figures (the old synthetic run)
    # gets impostors about right and genuine pairs far too low: the check tells them apart.
    spread = {"to_center_mean": 0.746, "to_center_std": 0.111, "between_centers_mean": 0.179}
    old = FaceLikeData(len(owner), spread, seed=3)
    centres = old._centers(0)[: owner.max() + 1]
    unfitted = score_quantiles(old._faces_of(centres[owner], np.random.default_rng(1)), owner)
    assert misfit(unfitted)[1] > 0.06, unfitted
