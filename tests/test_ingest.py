"""Indexing: incremental re-runs, changed and removed files, the bad-file zoo, tight crops."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import cv2
import pytest

import facefind

from .conftest import BIDEN, GLINT, OBAMA, new_catalog
from .test_images import BAD_FILES


@pytest.fixture
def album(tmp_path: Path) -> Path:
    album = tmp_path / "album"
    (album / "trip").mkdir(parents=True)
    shutil.copy(OBAMA, album / "obama.jpg")
    shutil.copy(BIDEN, album / "trip" / "biden.jpg")
    (album / "notes.txt").write_text("not a photo, ignored by extension")
    (album / ".hidden").mkdir()
    shutil.copy(OBAMA, album / ".hidden" / "skip.jpg")
    return album


def test_incremental_changed_and_removed(album: Path, tmp_path: Path) -> None:
    db = new_catalog(tmp_path / "c.db")
    with facefind.open(db) as ff:
        first = ff.index(album, workers=1)
        assert (first.files_seen, first.indexed, first.faces_found, first.errors) == (2, 2, 2, 0)

        again = ff.index(album, workers=1)
        assert (again.indexed, again.unchanged) == (0, 2)

        os.utime(album / "obama.jpg", ns=(1, 1))  # touched, same content: hash says unchanged
        touched = ff.index(album, workers=1)
        assert (touched.indexed, touched.unchanged) == (0, 2)

        shutil.copy(BIDEN, album / "obama.jpg")  # same name, new content
        os.remove(album / "trip" / "biden.jpg")
        changed = ff.index(album, workers=1)
        assert (changed.indexed, changed.removed) == (1, 1)
        stats = ff.stats()
    assert (stats["images"], stats["faces"]) == (1, 1)
    rows = sqlite3.connect(db).execute("select path, sha256 from images").fetchall()
    assert rows == [(str(album / "obama.jpg"), _sha(BIDEN))]


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_files_are_recorded_and_the_run_goes_on(album: Path, tmp_path: Path) -> None:
    for name, (data, _) in BAD_FILES.items():
        (album / name).write_bytes(data)
    os.symlink(album / "gone.jpg", album / "dangling.jpg")
    db = new_catalog(tmp_path / "c.db")
    with facefind.open(db) as ff:
        report = ff.index(album, workers=2)
    assert report.indexed == 2 and report.faces_found == 2
    assert report.errors == len(BAD_FILES) + 1
    reasons = {Path(e.path).name: e.error for e in report.error_files}
    for name, (_, reason) in BAD_FILES.items():
        assert reason in reasons[name]
    assert "cannot read" in reasons["dangling.jpg"]
    stored = dict(sqlite3.connect(db).execute("select path, error from images where status='error'"))
    assert len(stored) == len(BAD_FILES) + 1


def test_tight_crops_and_large_photos_yield_their_face(tmp_path: Path) -> None:
    crops = sorted((GLINT / "Tina_Fey").iterdir())[:5]
    big = cv2.resize(cv2.imread(str(OBAMA)), None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    with facefind.open(tmp_path / "c.db", purpose="test") as ff:
        for crop in crops:
            assert len(ff.faces(crop)) >= 1, crop
        small_face = ff.faces(OBAMA)[0]
        big_face = ff.faces(big)[0]
    # detected on a downscaled copy, reported in full-resolution pixels
    assert big_face.box[2] == pytest.approx(4 * small_face.box[2], rel=0.1)
    assert float(big_face.embedding @ small_face.embedding) > 0.8


def test_index_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    db = new_catalog(tmp_path / "c.db")
    with facefind.open(db) as ff, pytest.raises(facefind.FacefindError, match="no such"):
        ff.index(tmp_path / "nowhere")


def test_small_faces_are_stored_but_not_searched_by_default(tmp_path: Path) -> None:
    album = tmp_path / "album"
    album.mkdir()
    tiny = cv2.resize(cv2.imread(str(OBAMA)), None, fx=0.08, fy=0.08, interpolation=cv2.INTER_AREA)
    tiny = cv2.copyMakeBorder(tiny, 100, 100, 100, 100, cv2.BORDER_REPLICATE)
    cv2.imwrite(str(album / "tiny.png"), tiny)
    with facefind.open(new_catalog(tmp_path / "c.db"), purpose="test") as ff:
        report = ff.index(album, workers=1)
        assert report.faces_found == 1 and report.faces_searchable == 0
        assert ff.stats()["faces"] == 1 and ff.stats()["faces_searchable"] == 0
        assert ff.search(OBAMA).faces[0].matches == []
        found = ff.search(OBAMA, include_low_quality=True).faces[0].matches
    assert [m.path for m in found] == [str(album / "tiny.png")]
