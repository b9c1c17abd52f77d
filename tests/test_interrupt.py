"""Kill -9 or Ctrl-C during indexing, re-run: nothing duplicated, nothing lost, catalog consistent."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import GLINT, new_catalog, run_json

TOTAL = sum(1 for _ in GLINT.rglob("*.png"))


def start_index(db: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "facefind", "index", str(GLINT), "--db", str(db), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        # A shell running this suite in the background ignores SIGINT, and children inherit that;
        # restore the default so Ctrl-C means what it does in a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_rows(db: Path, at_least: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "indexing finished before it could be interrupted"
        try:
            n = sqlite3.connect(db, timeout=5).execute("select count(*) from images").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            n = 0
        if n >= at_least:
            return int(n)
        time.sleep(0.05)
    raise AssertionError("indexing made no progress")


def check_consistent(db: Path) -> tuple[int, int]:
    con = sqlite3.connect(db)
    assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert con.execute("pragma foreign_key_check").fetchall() == []
    dupes = con.execute("select path, count(*) from images group by collection_id, path having count(*) > 1")
    assert dupes.fetchall() == []
    orphans = con.execute("select count(*) from faces where image_id not in (select id from images)")
    assert orphans.fetchone()[0] == 0
    # faces of each image are complete: numbered 0..n-1
    gaps = con.execute("select image_id from faces group by image_id having max(face_index) + 1 != count(*)")
    assert gaps.fetchall() == []
    images = con.execute("select count(*) from images").fetchone()[0]
    faces = con.execute("select count(*) from faces").fetchone()[0]
    return images, faces


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupt_then_resume(tmp_path: Path, sig: signal.Signals) -> None:
    db = new_catalog(tmp_path / "c.db")
    proc = start_index(db)
    stopped_at = wait_for_rows(db, 200, proc)
    os.killpg(proc.pid, sig)  # the whole group: workers die too, as with a real kill or Ctrl-C
    code = proc.wait(timeout=60)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 130, stderr
    images, _ = check_consistent(db)
    assert stopped_at <= images < TOTAL

    report = run_json("index", GLINT, db=db)
    assert report["unchanged"] == images  # what was saved before the interruption is kept
    assert report["indexed"] == TOTAL - images and report["errors"] == 0
    images, faces = check_consistent(db)
    assert images == TOTAL and faces >= TOTAL
