"""The audit log: every search is recorded with its purpose; tampering is detected and located."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from .conftest import BIDEN, OBAMA, run_cli, run_json


@pytest.fixture
def audited(fr_db: Path, tmp_path: Path) -> Path:
    """A copy of the face_recognition catalog with five audited searches and one verify."""
    db = tmp_path / "catalog.db"
    shutil.copy(fr_db, db)
    for n in range(5):
        run_json("search", OBAMA, "--purpose", f"case {n}", "--actor", f"officer{n % 2}", db=db)
    run_json("verify", OBAMA, BIDEN, "--purpose", "check", db=db)
    return db


def test_search_without_purpose_is_refused_and_not_logged(fr_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    shutil.copy(fr_db, db)
    proc = run_cli("search", OBAMA, db=db)
    assert proc.returncode == 1 and "must state its purpose" in proc.stderr
    assert [e["action"] for e in run_json("audit", "show", db=db)] == ["collection"]


def test_audit_show_cuts_long_details_and_json_keeps_them_whole(fr_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    shutil.copy(fr_db, db)
    note = "request " + "x" * 100
    run_json("optout", "add", OBAMA, "--note", note, db=db)
    shown = run_cli("audit", "show", db=db)
    assert shown.returncode == 0, shown.stderr
    (line,) = [x for x in shown.stdout.splitlines() if " optout " in x]
    assert "note=request xxx" in line and note not in line and "…" in line
    assert any(e["details"].get("note") == note for e in run_json("audit", "show", db=db))


def test_every_search_is_recorded_with_who_why_and_what(audited: Path) -> None:
    entries = run_json("audit", "show", db=audited)
    assert [e["action"] for e in entries] == ["collection"] + ["search"] * 5 + ["verify"]
    first = entries[1]
    assert first["actor"] == "officer0" and first["purpose"] == "case 0"
    assert first["query_sha256"] == hashlib.sha256(OBAMA.read_bytes()).hexdigest()
    matches = first["details"]["faces"][0]["matches"]
    assert matches and all(isinstance(face_id, int) and 0 < score <= 1 for face_id, score in matches)
    # The photo itself is not kept: nothing but its hash and the result ids and scores.
    assert "embedding" not in json.dumps(entries)
    lines = run_cli(
        "audit", "export", "--since", first["at"][:10], db=audited, check=True
    ).stdout.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5, 6, 7]
    assert run_json("audit", "verify", db=audited)["ok"]


@pytest.mark.parametrize(
    ("tamper", "broken_seq", "message"),
    [
        ("update audit_log set purpose = 'nothing to see' where seq = 3", 3, "edited"),
        ("update audit_log set details = replace(details, '0.', '0.9') where seq = 2", 2, "edited"),
        ("delete from audit_log where seq = 4", 5, "missing"),
        ("delete from audit_log where seq = 1", 2, "no genesis or checkpoint"),
        # Swap two entries' places (numbers and links): each no longer follows what is before it.
        (
            "update audit_log set seq = -1 where seq = 2; update audit_log set seq = 2 where seq = 3;"
            "update audit_log set seq = 3 where seq = -1",
            2,
            "edited",
        ),
    ],
)
def test_audit_verify_names_the_tampered_entry(
    audited: Path, tamper: str, broken_seq: int, message: str
) -> None:
    with sqlite3.connect(audited) as con:
        con.executescript(tamper)
    proc = run_cli("audit", "verify", "--json", db=audited)
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert not result["ok"]
    first = result["problems"][0]
    assert first["seq"] == broken_seq and message in first["problem"], result["problems"]
    text = run_cli("audit", "verify", db=audited)
    assert f"entry #{broken_seq}:" in text.stdout and "BROKEN" in text.stdout
