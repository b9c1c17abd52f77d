"""Retention: photos past their collection's period and lapsed consents are erased; the audit log can
be shortened and still verifies, through a signed checkpoint."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

import facefind

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


def test_audit_purge_leaves_a_signed_checkpoint_that_verify_checks(db: Path) -> None:
    with facefind.open(db, actor="auditor") as ff:
        for n in range(2):
            ff.audit.record("auditor", "search", {"n": n}, "old case")
        time.sleep(1.1)  # entry times have one-second resolution
        keep = [ff.audit.record("auditor", "search", {"n": n}, "recent case") for n in range(2)]
        checkpoint = ff.audit.purge(keep[0].at, "auditor")
        assert checkpoint is not None and checkpoint.details["purged_count"] >= 2
        result = ff.audit.verify()
        assert result.ok and result.first_seq == keep[0].seq, result.problems
    assert (db.parent / "catalog.db.audit-key").stat().st_mode & 0o777 == 0o600

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
    assert report == {"receipts": [], "audit_checkpoint_seq": None}
    assert run_json("stats", db=db)["images"] == 23
