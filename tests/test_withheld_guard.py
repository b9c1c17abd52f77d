"""What the second review of issue 20 found around withheld faces, on real SQLite: a face is not
shown before clustering has checked it against withheld consents, and a looser search never
reaches a withheld person's photo that clustering (or the opt-out check) missed."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import facefind
from facefind.errors import NotFound

from .conftest import FR, OBAMA

ALEX = FR / "Alex_Lacamoire" / "img1.jpg"
EVERYTHING = dict(given_by="him", scope="search,results,clustering", expires="2099-12-31", evidence="form")


def _found(ff: facefind.FaceFind, photo: Path, **rule: float) -> set[int]:
    result = ff.search(photo, purpose="guard check", top_k=100, **rule)
    return {m.face_id for f in result.faces for m in f.matches}


def test_faces_not_yet_clustered_are_not_shown(fr_copy: Path) -> None:
    """During an index job faces are committed batch by batch; clustering, which binds a withheld
    person's new photo to their consent, runs at the end. Until then the new faces are hidden."""
    with facefind.open(fr_copy) as ff:
        before = _found(ff, OBAMA)
        newest = max(before)
        with sqlite3.connect(fr_copy) as con:  # as if faces from `newest` on were just committed
            con.execute("update meta set value = ? where key like 'people_upto:%'", (str(newest - 1),))
        hidden = _found(ff, OBAMA)
        assert newest not in hidden and hidden == {f for f in before if f < newest}
        try:
            ff.face_crop(newest)
            raise AssertionError("an unclustered face was cropped")
        except NotFound:
            pass
        ff.people.update()  # what the end of the index job does
        assert _found(ff, OBAMA) == before


def test_a_withdrawn_persons_photo_that_clustering_missed_is_not_found_by_a_looser_search(
    fr_copy: Path, tmp_path: Path
) -> None:
    with facefind.open(fr_copy) as ff:
        obama = next(p.id for p in ff.people.all() if "Barack_Obama" in p.faces[0].path)
        given = ff.consent_add(obama, **EVERYTHING)
        ff.consent_withdraw(given.id)
        new = tmp_path / "new"
        new.mkdir()
        shutil.copy(FR / "Barack_Obama" / "obama2.jpg", new / "unknown.jpg")
        ff.index(new, workers=1)
        with sqlite3.connect(fr_copy) as con:  # as if clustering had not matched it to him
            query = "select f.id from faces f join images i on i.id = f.image_id where i.path like ?"
            (face,) = [row[0] for row in con.execute(query, ("%unknown.jpg",))]
            con.execute("delete from face_subjects where face_id = ?", (face,))
            con.execute("delete from face_persons where face_id = ?", (face,))
        assert face not in _found(ff, OBAMA)
        assert face not in _found(ff, OBAMA, max_fmr=0.01)  # the loosest the service allows
        assert _found(ff, FR / "Joe_Biden" / "biden.jpg", max_fmr=0.01)  # others are still found


def test_an_opted_out_persons_face_the_opt_out_missed_is_not_found_by_a_looser_search(fr_copy: Path) -> None:
    with facefind.open(fr_copy) as ff:
        alex = _found(ff, ALEX, max_fmr=0.01)
        assert len(alex) >= 2
        ff.optout_add(ALEX, note="request")
        with sqlite3.connect(fr_copy) as con:  # as if the opt-out's strict threshold missed one
            con.execute("delete from face_suppressions where face_id = ?", (max(alex),))
        assert not _found(ff, ALEX, max_fmr=0.01) & alex
