"""Issue 22's open-set table and the LFW pairs accuracy: on a small LFW-style folder of real lfw_dev
photos (people with several photos and people with one) and on hand-made scores with known answers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from facefind import evaluate as ev
from facefind.calibration import default_calibration
from facefind.errors import FacefindError
from facefind.faces import load_backend
from facefind.faces.opencv import MODEL_ID
from facefind.settings import Settings

from .conftest import DATASETS, run_cli, run_json

LFW = DATASETS / "lfw_dev"
SEVERAL = {"Aaron_Peirsol": 4, "Abdoulaye_Wade": 4, "Abel_Pacheco": 4, "Adam_Sandler": 4, "Adel_Al-Jubeir": 3}
ONE = ("Adrian_Annus", "Adrian_Murrell", "Afton_Smith", "Agnes_Bruckner", "Ahmad_Jbarah", "Ahmed_Lopez")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lfw") / "lfw_small"
    for person in (*SEVERAL, *ONE):
        shutil.copytree(LFW / person, root / person)
    # pairs across two folds, photos of the folder only
    (root.parent / "pairs.tsv").write_text(
        "fold\tperson_a\timage_a\tperson_b\timage_b\tsame\n"
        "1\tAaron_Peirsol\tAaron_Peirsol_0001.jpg\tAaron_Peirsol\tAaron_Peirsol_0002.jpg\t1\n"
        "1\tAbel_Pacheco\tAbel_Pacheco_0001.jpg\tAbel_Pacheco\tAbel_Pacheco_0004.jpg\t1\n"
        "1\tAaron_Peirsol\tAaron_Peirsol_0003.jpg\tAfton_Smith\tAfton_Smith_0001.jpg\t0\n"
        "2\tAdam_Sandler\tAdam_Sandler_0001.jpg\tAdam_Sandler\tAdam_Sandler_0003.jpg\t1\n"
        "2\tAbdoulaye_Wade\tAbdoulaye_Wade_0002.jpg\tAhmed_Lopez\tAhmed_Lopez_0001.jpg\t0\n"
        "2\tAdel_Al-Jubeir\tAdel_Al-Jubeir_0001.jpg\tAgnes_Bruckner\tAgnes_Bruckner_0001.jpg\t0\n"
    )
    return root


@pytest.fixture(scope="module")
def labelled(folder: Path) -> ev.LabelledSet:
    settings = Settings()
    backend = load_backend(settings)
    return ev.load_labelled(folder, settings, 2, lambda: backend)


def test_open_set_table_on_lfw_style_folder(labelled: ev.LabelledSet) -> None:
    assert len(labelled.paths) == sum(SEVERAL.values()) + len(ONE)
    split = ev.first_photo_split(labelled)
    assert split is not None
    # the first photo (path order) of each person with 2+ photos probes; the others are enrolled
    assert sorted(Path(labelled.paths[i]).name for i in split.mated) == sorted(
        f"{p}_0001.jpg" for p in SEVERAL
    )
    assert sorted(labelled.persons[i] for i in split.non_mated) == sorted(ONE)
    table = ev.open_set_table(labelled, default_calibration(MODEL_ID), 0.01)
    assert table is not None and table["protocol"] == ev.OPEN_SET_PROTOCOL
    detected_gallery = sum(
        1
        for i, p in enumerate(labelled.paths)
        if labelled.detected[i] and labelled.persons[i] in SEVERAL and not p.endswith("_0001.jpg")
    )
    assert table["gallery_faces"] == detected_gallery >= 12  # of 14; LFW photos nearly all have a face
    assert table["gallery_people"] == 5
    assert (table["mated_probes"], table["non_mated_probes"]) == (5, 6)
    d = table["default"]
    assert d["stated_fpir"] == 0.01
    assert d["threshold_extrapolated"] is False  # 14 faces: far below the shipped table's 20,735
    assert d["fpir_ci95"][0] <= d["measured_fpir"] <= d["fpir_ci95"][1]
    assert d["false_positives"] <= 1 and d["misses"] <= 1  # five well-photographed people, six strangers
    assert d["measured_fpir"] == round(d["false_positives"] / 6, 4) and d["fnir"] == round(d["misses"] / 5, 4)
    assert table["rank1"] >= 0.8


def test_no_table_without_strangers(labelled: ev.LabelledSet) -> None:
    keep = [i for i, p in enumerate(labelled.persons) if p in SEVERAL]
    only_several = ev.LabelledSet(
        labelled.root,
        [labelled.paths[i] for i in keep],
        [labelled.persons[i] for i in keep],
        labelled.embeddings[keep],
        labelled.detected[keep],
    )
    assert ev.open_set_table(only_several, None, 0.01) is None


def test_wilson_interval() -> None:
    lo, hi = ev.wilson_interval(29, 2046)  # the FPIR 0.014
    assert lo == pytest.approx(0.0099, abs=2e-4) and hi == pytest.approx(0.0203, abs=2e-4)
    assert ev.wilson_interval(0, 10)[0] == 0 and 0.25 < ev.wilson_interval(0, 10)[1] < 0.3
    assert ev.wilson_interval(0, 0) == (0.0, 1.0)


def _scored_pairs(tmp_path: Path) -> tuple[ev.LabelledSet, Path]:
    """Three folds of pairs with chosen similarities; each pair has two photos of its own.
    A fifth pair in fold 3 is the same person but one photo has no face."""
    folds = {
        "1": [(0.9, 1), (0.68, 1), (0.3, 0), (0.5, 0)],
        "2": [(0.8, 1), (0.7, 1), (0.2, 0), (0.65, 0)],
        "3": [(0.85, 1), (0.75, 1), (0.1, 0), (0.3, 0), (0.99, 1)],
    }
    paths, persons, rows, lines = [], [], [], ["fold\tperson_a\timage_a\tperson_b\timage_b\tsame"]
    for fold, pairs in folds.items():
        for n, (score, same) in enumerate(pairs):
            a, b = f"p{fold}{n}a", f"p{fold}{n}a" if same else f"p{fold}{n}b"
            paths += [f"/x/{a}/{a}_1.jpg", f"/x/{b}/{b}_2.jpg"]
            persons += [a, b]
            rows += [[1.0, 0.0], [score, np.sqrt(1 - score * score)]]
            lines.append(f"{fold}\t{a}\t{a}_1.jpg\t{b}\t{b}_2.jpg\t{same}")
    detected = np.ones(len(paths), bool)
    detected[-1] = False  # the 0.99 pair's second photo: no face found
    labelled = ev.LabelledSet(Path("/x"), paths, persons, np.array(rows, np.float32), detected)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("\n".join(lines) + "\n")
    return labelled, pairs


def test_pairs_accuracy_per_fold(tmp_path: Path) -> None:
    labelled, path = _scored_pairs(tmp_path)
    result = ev.pairs_accuracy(labelled, ev.read_pairs(path, labelled))
    assert (result["pairs"], result["same"], result["different"]) == (13, 7, 6)
    by_fold = {r["fold"]: r for r in result["folds"]}
    # fold 1: folds 2+3 separate perfectly between 0.65 and 0.7 -> 0.675; all four of fold 1 right
    # fold 2: folds 1+3 separate between 0.5 and 0.68 -> 0.59; its different pair at 0.65 is wrong
    # fold 3: folds 1+2 separate between 0.65 and 0.68 -> 0.665; the pair without a face is wrong
    assert by_fold["1"]["threshold"] == pytest.approx(0.675, abs=1e-3) and by_fold["1"]["accuracy"] == 1.0
    assert by_fold["2"]["threshold"] == pytest.approx(0.59, abs=1e-3) and by_fold["2"]["accuracy"] == 0.75
    assert by_fold["3"]["threshold"] == pytest.approx(0.665, abs=1e-3) and by_fold["3"]["accuracy"] == 0.8
    assert [r["pairs"] for r in result["folds"]] == [4, 4, 5]
    assert result["correct"] == 11 and result["accuracy"] == pytest.approx((1 + 0.75 + 0.8) / 3, abs=1e-4)
    assert result["pairs_with_a_photo_without_face"] == 1


def test_pairs_file_errors(tmp_path: Path) -> None:
    labelled, _ = _scored_pairs(tmp_path)
    bad = tmp_path / "bad.tsv"
    bad.write_text("1\tp10a\tp10a_1.jpg\tnobody\tnobody_1.jpg\t0\n")
    with pytest.raises(FacefindError, match=r"bad.tsv:1: nobody/nobody_1.jpg is not in"):
        ev.read_pairs(bad, labelled)
    bad.write_text("1\tp10a\tp10a_1.jpg\tp10a\n")
    with pytest.raises(FacefindError, match="expected 6 tab-separated columns"):
        ev.read_pairs(bad, labelled)


def test_cli_prints_table_and_json(folder: Path, tmp_path: Path) -> None:
    pairs = folder.parent / "pairs.tsv"
    result = run_json("evaluate", folder, "--pairs", pairs, db=tmp_path / "c.db")
    table = result["open_set"]
    assert (table["mated_probes"], table["non_mated_probes"], table["gallery_people"]) == (5, 6, 5)
    assert table["default"]["stated_fpir"] == 0.01
    p = result["pairs"]
    assert (p["pairs"], p["same"], p["different"]) == (6, 3, 3)
    assert [r["pairs"] for r in p["folds"]] == [3, 3]
    assert 0 <= p["accuracy"] <= 1
    human = run_cli("evaluate", folder, "--pairs", pairs, db=tmp_path / "c.db", check=True)
    for words in (
        "mated / non-mated probes",
        "5 / 6",
        "stated FPIR",
        "measured FPIR",
        "95% CI",
        "6 pairs (3 same",
    ):
        assert words in human.stdout, human.stdout
    missing = run_cli("evaluate", folder, "--pairs", tmp_path / "none.tsv", db=tmp_path / "c.db")
    said = "".join(c for c in missing.stderr if not c.isspace() and c != "│")  # a long path wraps in the box
    assert missing.returncode != 0 and "none.tsv" in said and "Traceback" not in missing.stderr
