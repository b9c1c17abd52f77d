"""A reviewer's decisions survive what a catalog goes through (issue 24): a full re-cluster, indexing
the folder again (every file touched, one moved) and a switch to another recognizer followed by a
re-cluster. Decisions: a name, a split (pinned faces), "not this person", a review "yes" that
overrides the same-photo rule's choice, a review "no", a face added by box, and "not a face"."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

import facefind
from facefind.manual_faces import iou

from .conftest import FR, MODELS, new_catalog
from .test_people_decisions import assert_decisions_hold, state
from .test_recognizers import sha
from .test_review import CONSENT

SFACE = MODELS / "face_recognition_sface_2021dec.onnx"


@dataclass
class Decided:
    obama: int
    kit: int
    biden: int
    split_face: int
    split_person: int
    not_biden: int
    said_yes: int  # the face of both.jpg a reviewer said is Obama (clustering had chosen the other)
    clusterings_choice: int  # the face of both.jpg that clustering had put in Obama
    said_no: int  # a face a reviewer said is not Obama
    manual: int  # drawn by box on kit_photo, into Kit (pinned)
    marked_box: tuple[float, float, float, float]  # "not a face" on the moved photo
    pins: dict[int, int]


def _faces_on(ff: facefind.FaceFind, photo: Path) -> list:  # type: ignore[type-arg]
    rows = ff.catalog.face_rows(state(ff)[2])
    return [r for r in rows.values() if r.path == str(photo.resolve())]


def _person_of(ff: facefind.FaceFind, face: int) -> int | None:
    return state(ff)[0].get(face, (None, False))[0]


def _folder(tmp: Path) -> Path:
    """face_recognition's photos (copies: the test touches and moves them), and both.jpg: two
    photos of Obama side by side, two faces of one person in one photo."""
    photos = tmp / "photos"
    shutil.copytree(FR, photos, ignore=shutil.ignore_patterns("*.txt", "*.csv"))
    a, b = (cv2.imread(str(FR / "Barack_Obama" / n)) for n in ("obama.jpg", "obama2.jpg"))
    height = min(a.shape[0], b.shape[0])
    a = cv2.resize(a, (a.shape[1] * height // a.shape[0], height))
    b = cv2.resize(b, (b.shape[1] * height // b.shape[0], height))
    cv2.imwrite(str(photos / "both.jpg"), np.hstack([a, b]))
    return photos


def _decide(ff: facefind.FaceFind, photos: Path) -> Decided:
    by_folder = {
        who: next(p.id for p in ff.people.all() if f"/{who}/" in p.faces[0].path)
        for who in ("Barack_Obama", "Kit_Harington", "Joe_Biden")
    }
    obama, kit, biden = by_folder.values()
    ff.consent_add(obama, **CONSENT)
    ff.people.name(obama, "Barack Obama")
    ff.consent_add(kit, **CONSENT)
    ff.people.name(kit, "Kit Harington")
    in_obama = sorted(f.face_id for f in ff.people.get(obama).faces)
    both = sorted(f.id for f in _faces_on(ff, photos / "both.jpg"))
    assert len(both) == 2 and len(set(both) & set(in_obama)) == 1  # the same-photo rule kept one
    chosen = next(iter(set(both) & set(in_obama)))
    other_half = next(f for f in both if f != chosen)
    # The reviewer says the other half is the one to keep in Obama: clustering must follow.
    ff.review.answer([f"face:{other_half}"], yes=obama)
    # A split: one of Obama's faces becomes a person of its own (both sides pinned).
    split_face = next(f for f in in_obama if f not in both)
    split_person = ff.people.split(obama, [split_face]).id
    # "Not this person" on one of Biden's two faces.
    not_biden = min(f.face_id for f in ff.people.get(biden).faces)
    ff.people.remove(biden, [not_biden])
    # A review "no": a face of Obama's that is not him, as far as the reviewer knows.
    said_no = next(f for f in sorted(f.face_id for f in ff.people.get(obama).faces) if f not in both)
    ff.review.answer([f"face:{said_no}"], no=obama)
    # A face the detector "missed" on a photo of Kit: its detection removed, then drawn by hand.
    kit_photo = photos / "Kit_Harington" / "john1.jpeg"
    (detected,) = _faces_on(ff, kit_photo)
    ff.not_a_face(detected.id)
    x, y, w, h = detected.box
    manual = ff.add_face(kit_photo, f"{x - 3:.0f},{y + 2:.0f},{w + 4:.0f},{h:.0f}", person=kit).face_id
    # "Not a face" on a photo that will move (indexing it again analyses it from scratch).
    (false,) = _faces_on(ff, photos / "Rose_Leslie" / "img1.jpg")
    ff.not_a_face(false.id)
    pins = {f: p for f, (p, pinned) in state(ff)[0].items() if pinned}
    return Decided(
        obama, kit, biden, split_face, split_person, not_biden, other_half, chosen, said_no, manual,
        false.box, pins,
    )  # fmt: skip


def _assert_held(ff: facefind.FaceFind, d: Decided, photos: Path, when: str) -> None:
    placed, rejected, _ = state(ff)
    assert_decisions_hold(ff, d.pins)
    names = {p.id: p.name for p in ff.people.all(include_hidden=True) if p.name}
    assert names == {d.obama: "Barack Obama", d.kit: "Kit Harington"}, when
    assert placed[d.split_face] == (d.split_person, True), when
    assert placed[d.said_yes] == (d.obama, True), when
    assert _person_of(ff, d.clusterings_choice) != d.obama, when  # Obama is once in both.jpg
    assert _person_of(ff, d.not_biden) != d.biden and (d.not_biden, d.biden) in rejected, when
    assert _person_of(ff, d.said_no) != d.obama and (d.said_no, d.obama) in rejected, when
    assert placed[d.manual] == (d.kit, True), when
    kit_faces = _faces_on(ff, photos / "Kit_Harington" / "john1.jpeg")
    assert [f.id for f in kit_faces] == [d.manual], when  # the removed detection stays removed
    assert d.manual in ff.catalog.faces_after(ff.backend.model_id, 0, 2**62)[0], when  # embedded by it
    moved = _faces_on(ff, photos / "Rose_Leslie" / "moved.jpg")
    assert not [f for f in moved if iou(f.box, d.marked_box) >= 0.5], when
    # The manual face is found by a search for Kit, with the model in use.
    found = ff.search(photos / "Kit_Harington" / "john2.jpeg", purpose="test: decisions", max_fmr=1e-3)
    assert d.manual in {m.face_id for f in found.faces for m in f.matches}, when


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("survive")
    photos = _folder(tmp)
    db = new_catalog(tmp / "c.db")
    with facefind.open(db) as ff:
        ff.index(photos, workers=1)
    return db, photos


def test_decisions_survive_recluster_reindex_and_a_model_switch(catalog: tuple[Path, Path]) -> None:
    db, photos = catalog
    with facefind.open(db) as ff:
        decided = _decide(ff, photos)
        _assert_held(ff, decided, photos, "as decided")
        ff.people.recluster()
        _assert_held(ff, decided, photos, "after a full re-cluster")

        # Index the folder again: every file touched (hashed again), one photo moved (analysed
        # again from scratch, where "not a face" must hold).
        later = 2_000_000_000
        for path in photos.rglob("*"):
            if path.is_file():
                os.utime(path, (later, later))
        (photos / "Rose_Leslie" / "img1.jpg").rename(photos / "Rose_Leslie" / "moved.jpg")
        report = ff.index(photos, workers=1)
        assert report.indexed == 1 and report.removed == 1 and report.unchanged == report.files_seen - 1
        _assert_held(ff, decided, photos, "after indexing the folder again")
        ff.reindex()  # the vector index rebuilt from the catalog
        ff.people.recluster()
        _assert_held(ff, decided, photos, "after a vector re-index and a re-cluster")

        # Another recognizer: the shipped SFace registered as an own model reading BGR (other
        # embeddings: similarities of the same faces drop to ~0.85), calibrated with the shipped table.
        ff.models.add(SFACE, name="sface-bgr", sha256=sha(SFACE), color="bgr", mean=0, std=1)
        shipped = Path(facefind.__file__).parent / "data" / "calibration-sface-2021dec.json"
        ff.catalog.save_calibration("sface-bgr", {**json.loads(shipped.read_text()), "model_id": "sface-bgr"})
        switch = ff.models.use("sface-bgr")
        assert switch.switched and not switch.errors
    with facefind.open(db) as ff:
        assert ff.backend.model_id == "sface-bgr"
        _assert_held(ff, decided, photos, "after the model switch")
        ff.people.update()
        ff.people.recluster()
        _assert_held(ff, decided, photos, "after a re-cluster with the new model")
