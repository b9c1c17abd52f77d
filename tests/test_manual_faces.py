"""Faces by hand: a face added by box is searched like a detected one; "not a face" stays removed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

import facefind
from facefind.catalog.schema import not_faces
from facefind.errors import FacefindError, InvalidValue, NotFound
from facefind.manual_faces import iou

from .conftest import FR, new_catalog, run_cli, run_json


@pytest.fixture
def kit(tmp_path: Path) -> tuple[Path, Path]:
    """A catalog of Kit Harington's three photos (and Rose Leslie's, another person)."""
    photos = tmp_path / "photos"
    for who in ("Kit_Harington", "Rose_Leslie"):
        shutil.copytree(FR / who, photos / who)
    db = new_catalog(tmp_path / "c.db")
    run_json("index", photos, db=db)
    return db, photos


def _faces_of(ff: facefind.FaceFind, path: Path) -> list:  # type: ignore[type-arg]
    rows = ff.catalog.face_rows(range(1, 10_000))
    return [r for r in rows.values() if r.path == str(path.resolve())]


def test_a_face_added_by_box_is_searched_like_a_detected_one(kit: tuple[Path, Path]) -> None:
    db, photos = kit
    photo, *others = sorted((photos / "Kit_Harington").iterdir())
    with facefind.open(db) as ff:
        (detected,) = _faces_of(ff, photo)
        person = detected.person_id
        # Say the detector had missed it: remove it, then draw its box by hand.
        ff.not_a_face(detected.id)
        assert _faces_of(ff, photo) == []
        # A box a little off the detector's, as a hand would draw it.
        x, y, w, h = detected.box
        box = f"{x - 4:.0f},{y + 3:.0f},{w + 6:.0f},{h:.0f}"
    added = run_json("faces", "add", photo, "--box", box, "--person", str(person), db=db)
    assert added["alignment"] == "detector" and added["person_id"] == person and added["usable"]
    with facefind.open(db) as ff:
        (stored,) = _faces_of(ff, photo)
        assert stored.id == added["face_id"] and iou(stored.box, detected.box) > 0.8
        # As like the detected face was as another photo of him: searching finds it.
        found = ff.search(others[0], purpose="test: manual face", max_fmr=1e-3)
        matches = {m.face_id: m for f in found.faces for m in f.matches}
        assert added["face_id"] in matches and matches[added["face_id"]].person_id == person
        assert abs(float(stored.embedding @ detected.embedding) - 1) < 0.05
        pinned = {f.face_id: f.pinned for f in ff.people.get(person).faces}
        assert pinned[added["face_id"]]
        entries = [e.details for e in ff.audit.entries() if e.action == "face"]
        assert entries[0]["not_a_face"] == detected.id and entries[1]["added"] == added["face_id"]


def test_a_box_the_detector_cannot_see_is_aligned_centred(kit: tuple[Path, Path]) -> None:
    db, photos = kit
    photo = sorted((photos / "Rose_Leslie").iterdir())[0]
    with facefind.open(db) as ff:
        added = ff.add_face(photo, "0,0,40,40")  # a corner: no face there
        assert added.alignment == "centred" and added.box.w == 40
        assert added.face_id in {r.id for r in _faces_of(ff, photo)}


def test_not_a_face_survives_indexing_the_photo_again(kit: tuple[Path, Path], tmp_path: Path) -> None:
    db, photos = kit
    photo = sorted((photos / "Kit_Harington").iterdir())[1]
    with facefind.open(db) as ff:
        (face,) = _faces_of(ff, photo)
    removed = run_json("faces", "not-a-face", str(face.id), db=db)
    assert removed["face_id"] == face.id
    # The photo moves (a new path: analysed again from scratch), and a copy goes into another collection.
    moved = photo.with_name("renamed.jpg")
    photo.rename(moved)
    report = run_json("index", photos, db=db)
    assert report["indexed"] == 1 and report["removed"] == 1
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(moved, other / "copy.jpg")
    run_json("collection", "create", "second", "--owner", "t", "--basis", "own", "--retention", "1y", db=db)
    run_json("index", other, "--collection", "second", db=db)
    with facefind.open(db) as ff:
        assert _faces_of(ff, moved) == [] and _faces_of(ff, other / "copy.jpg") == []
        # Another photo of the same person keeps its face: the mark is of that photo's content.
        kept = sorted((photos / "Kit_Harington").iterdir())[0]
        assert len(_faces_of(ff, kept)) == 1


def test_erasing_the_photo_erases_its_not_a_face_mark(kit: tuple[Path, Path]) -> None:
    """A mark keeps a photo's content hash: once no photo with that content is left, it goes too."""
    db, photos = kit
    photo = sorted((photos / "Kit_Harington").iterdir())[1]
    with facefind.open(db) as ff:
        (face,) = _faces_of(ff, photo)
        ff.not_a_face(face.id)
        with ff.catalog.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(not_faces)).scalar_one() == 1
        ff.erase("image", str(photo), confirm=True)
        with ff.catalog.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(not_faces)).scalar_one() == 0


def test_bad_requests_say_what_to_do(kit: tuple[Path, Path], tmp_path: Path) -> None:
    db, photos = kit
    photo = sorted((photos / "Kit_Harington").iterdir())[0]
    stranger = tmp_path / "not-indexed.jpg"
    shutil.copy(photo, stranger)
    with facefind.open(db) as ff:
        cases = [
            (lambda: ff.add_face(photo, "1,2,3"), InvalidValue, "give x,y,w,h"),
            (lambda: ff.add_face(photo, "0,0,4,4"), InvalidValue, "at least 8 pixels"),
            (lambda: ff.add_face(photo, "0,0,99999,40"), InvalidValue, "reaches outside the photo"),
            (lambda: ff.add_face(stranger, "0,0,40,40"), NotFound, "is not an indexed photo"),
            (
                lambda: ff.add_face(photo, "0,0,40,40", person=999999),
                FacefindError,
                "no person with id 999999",
            ),
            (lambda: ff.not_a_face(999999), NotFound, "no face 999999"),
        ]
        for call, kind, message in cases:
            with pytest.raises(kind, match=message):
                call()
    proc = run_cli("faces", "add", photo, "--box", "x", db=db)
    assert proc.returncode == 1 and "give x,y,w,h" in proc.stderr


def test_the_photo_to_draw_on_covers_faces_no_answer_may_show(tmp_path: Path) -> None:
    """A reviewer sees the whole photo of a face to draw a missed one on; an opted-out person in
    it is covered, whether their face was stored before the opt-out (now suppressed) or refused
    at indexing after it (never stored: found again by detection)."""
    import cv2
    import numpy as np

    from .conftest import MULTI

    photos = tmp_path / "photos"
    shutil.copytree(FR / "Rose_Leslie", photos / "Rose_Leslie")
    shutil.copy(MULTI / "kit_with_rose.jpg", photos / "kit_with_rose.jpg")
    db = new_catalog(tmp_path / "c.db")

    def grey(jpeg: bytes, box: tuple[float, float, float, float], scale: float) -> bool:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        x, y, w, h = (round(v * scale) for v in box)
        return bool(np.abs(image[y : y + h, x : x + w].astype(int) - 128).mean() < 6)

    with facefind.open(db) as ff:
        ff.index(photos, workers=1)
        rose_photo = sorted((photos / "Rose_Leslie").iterdir())[0]
        (rose_alone,) = _faces_of(ff, rose_photo)
        both = _faces_of(ff, photos / "kit_with_rose.jpg")
        rose = max(both, key=lambda r: float(r.embedding @ rose_alone.embedding))
        (kit,) = [r for r in both if r.id != rose.id]
        shown, scale = ff.face_photo(kit.id, size=400)
        assert scale == 400 / 700 and not grey(shown, rose.box, scale) and not grey(shown, kit.box, scale)

        ff.optout_add(rose_photo, note="asked to be left out")
        shown, scale = ff.face_photo(kit.id, size=400)
        assert grey(shown, rose.box, scale) and not grey(shown, kit.box, scale)
        with pytest.raises(NotFound):
            ff.face_photo(rose.id)

        shutil.copy(photos / "kit_with_rose.jpg", photos / "again.jpg")
        ff.index(photos, workers=1)
        (kit_again,) = _faces_of(ff, photos / "again.jpg")  # her face was refused at indexing
        shown, scale = ff.face_photo(kit_again.id, size=400)
        assert grey(shown, rose.box, scale) and not grey(shown, kit.box, scale)
        views = [e.details for e in ff.audit.entries() if e.action == "view" and "photo_of_face" in e.details]
        assert [v["photo_of_face"] for v in views] == [kit.id, kit.id, kit_again.id]
