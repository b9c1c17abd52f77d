"""A session's worker processes: started once for several folders, never left behind."""

from __future__ import annotations

import multiprocessing
import shutil
import time
from pathlib import Path

import facefind

from .conftest import GLINT, new_catalog


def _folder(at: Path, person: str, n: int) -> Path:
    at.mkdir()
    for photo in sorted((GLINT / person).iterdir())[:n]:
        shutil.copy(photo, at / photo.name)
    return at


def _workers() -> set[int]:
    return {p.pid for p in multiprocessing.active_children() if p.pid is not None}


def test_a_session_starts_its_workers_once_for_several_folders_and_stops_them(tmp_path: Path) -> None:
    a = _folder(tmp_path / "a", "Barack_Obama", 12)
    b = _folder(tmp_path / "b", "Drew_Barrymore", 12)
    small = _folder(tmp_path / "small", "Halle_Berry", 3)
    with facefind.open(new_catalog(tmp_path / "catalog.db")) as ff:
        assert ff.index(a, workers=2).indexed == 12
        first = _workers()
        assert len(first) == 2
        assert ff.index(b, workers=2).indexed == 12
        assert ff.index(small, workers=2).indexed == 3  # a handful goes to the running workers too
        assert _workers() == first
        # The models were loaded by the workers only: this process needed only their id.
        assert ff.runtime.backend is None
        assert ff.stats()["faces"] >= 27
    deadline = time.monotonic() + 20
    while _workers() & first and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _workers() & first, "closing the session stops its workers"


def test_a_folder_of_a_handful_of_photos_is_analysed_in_process(tmp_path: Path) -> None:
    small = _folder(tmp_path / "small", "Halle_Berry", 3)
    with facefind.open(new_catalog(tmp_path / "catalog.db")) as ff:
        assert ff.index(small, workers=2).indexed == 3
        assert not _workers()
        assert ff.runtime.backend is not None
