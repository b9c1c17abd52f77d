"""Retention: photos past their collection's period and lapsed consents are erased; the audit log can
be shortened (entries older than 183 days at the least) and still verifies, through a signed
checkpoint."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import facefind
from facefind.accountability.audit import GENESIS, canonical, entry_hash

from .conftest import run_cli, run_json


@pytest.fixture
def db(fr_copy: Path) -> Path:
    return fr_copy


def test_purge_erases_photos_past_retention_and_lapsed_consents(db: Path) -> None:
    with sqlite3.connect(db) as con:  # Biden's photos were indexed two years ago (retention: 1y)
        con.execute(
            "update images set indexed_at = '2024-01-01T00:00:00+00:00' where path like '%Joe_Biden%'"
        )
    people = run_json("people", "list", db=db)
    kit = next(p for p in people if "Kit_Harington" in p["faces"][0]["path"])
    added = run_json(
        "consent", "add", str(kit["id"]), "--by", "K", "--expires", "2099-01-01", "--evidence", "e", db=db
    )
    run_json("consent", "withdraw", str(added["id"]), db=db)
    before = run_json("stats", db=db)

    report = run_json("purge", db=db)

    by_kind = {r["kind"]: r for r in report["receipts"]}
    assert by_kind["retention"]["images_removed"] == 2 and by_kind["retention"]["faces_removed"] == 2
    assert by_kind["person"]["target"] == str(kit["id"]) and by_kind["person"]["faces_removed"] == 3
    after = run_json("stats", db=db)
    assert after["images"] == before["images"] - 2 and after["faces"] == before["faces"] - 5
    paths = {f["path"] for p in run_json("people", "list", "--all", db=db) for f in p["faces"]}
    assert not any("Joe_Biden" in p or "Kit_Harington" in p for p in paths)
    assert run_json("purge", db=db)["receipts"] == []  # nothing more is due
    assert run_json("audit", "verify", db=db)["ok"]


def old_log(db: Path, count: int) -> None:
    """A new catalog whose log starts with `count` entries from 2020, as one in use for years has."""
    with facefind.open(db):  # creates the catalog; appends nothing
        pass
    prev = GENESIS
    with sqlite3.connect(db) as con:
        for seq in range(1, count + 1):
            at, details = f"2020-01-0{seq}T00:00:00+00:00", canonical({"n": seq})
            digest = entry_hash(seq, at, "auditor", "search", "old case", None, details, prev)
            con.execute(
                "insert into audit_log (seq, at, actor, action, purpose, query_sha256, details, "
                "prev_hash, hash) values (?, ?, 'auditor', 'search', 'old case', null, ?, ?, ?)",
                (seq, at, details, prev, digest),
            )
            prev = digest


def test_audit_purge_leaves_a_signed_checkpoint_that_verify_checks(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    old_log(db, 3)
    with facefind.open(db, actor="auditor") as ff:
        keep = [ff.audit.record("auditor", "search", {"n": n}, "recent case") for n in range(2)]
        checkpoint = ff.audit.purge(365, "auditor")
        assert checkpoint is not None and checkpoint.details["purged_count"] == 3
        result = ff.audit.verify()
        assert result.ok and result.first_seq == keep[0].seq, result.problems
        assert (
            result.checked_against == ["witness"] and result.witness and result.witness.seq == checkpoint.seq
        )
    assert (db.parent / "catalog.db.audit-key").stat().st_mode & 0o777 == 0o600
    assert (db.parent / "catalog.db.audit-key.head").stat().st_mode & 0o777 == 0o600

    with sqlite3.connect(db) as con:  # forge the checkpoint: claim another starting point
        details = json.loads(
            con.execute("select details from audit_log where action = 'checkpoint'").fetchone()[0]
        )
        details["purged_through_hash"] = "f" * 64
        con.execute("update audit_log set details = ? where action = 'checkpoint'", (json.dumps(details),))
    proc = run_cli("audit", "verify", "--json", db=db)
    problems = json.loads(proc.stdout)["problems"]
    assert proc.returncode == 1
    assert {"seq": checkpoint.seq, "problem": "checkpoint signature does not verify"} in problems
    assert any(p["seq"] == keep[0].seq and "no genesis or checkpoint" in p["problem"] for p in problems)


def test_purge_of_a_fresh_catalog_does_nothing(db: Path) -> None:
    report = run_json("purge", "--audit-older-than", "5y", db=db)
    assert report == {"receipts": [], "audit_checkpoint_seq": None, "query_faces_deleted": 0}
    assert run_json("stats", db=db)["images"] == 23
