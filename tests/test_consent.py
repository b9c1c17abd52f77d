"""Consent records: required to name, scope limits use, expiry and withdrawal take effect at once."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from .conftest import FR, OBAMA, run_cli, run_json

CONSENT = ("--by", "the person", "--expires", "2099-12-31", "--evidence", "form 2026-7")


@pytest.fixture
def db(fr_copy: Path) -> Path:
    return fr_copy


def person_of(db: Path, folder: str) -> dict:
    return next(p for p in run_json("people", "list", "--all", db=db) if folder in p["faces"][0]["path"])


def found_faces(db: Path, query: Path = OBAMA) -> set[int]:
    result = run_json(
        "search", query, "--purpose", "consent check", "--threshold", "-1", "--top-k", "30", db=db
    )
    return {m["face_id"] for f in result["faces"] for m in f["matches"]}


def test_withdrawn_or_expired_consent_takes_faces_out_at_once(db: Path) -> None:
    obama = person_of(db, "Barack_Obama")
    his = {f["face_id"] for f in obama["faces"]}
    added = run_json("consent", "add", str(obama["id"]), *CONSENT, db=db)
    assert added["active"] and added["scope"] == ["search", "results", "clustering"]
    run_json("people", "name", str(obama["id"]), "Barack Obama", db=db)
    assert his <= found_faces(db)

    run_json("consent", "withdraw", str(added["id"]), db=db)
    assert not his & found_faces(db)  # the very next search
    assert obama["id"] not in {p["id"] for p in run_json("people", "list", db=db)}
    refused = run_cli("search", "--person", str(obama["id"]), "--purpose", "x", db=db)
    assert refused.returncode == 1 and "consent" in refused.stderr

    # A new consent brings him back; its expiry (simulated: a date cannot be in the past when
    # recorded) takes him out again.
    renewed = run_json("consent", "add", str(obama["id"]), *CONSENT, db=db)
    assert his <= found_faces(db)
    with sqlite3.connect(db) as con:
        con.execute("update consents set expires_on = '2020-01-01' where id = ?", (renewed["id"],))
    assert not his & found_faces(db)
    states = {c["id"]: c["active"] for c in run_json("consent", "list", "--person", str(obama["id"]), db=db)}
    assert states == {added["id"]: False, renewed["id"]: False}
    actions = [e["action"] for e in run_json("audit", "show", db=db)]
    assert actions.count("consent") == 3
    assert run_json("audit", "verify", db=db)["ok"]


def test_scope_limits_what_the_faces_are_used_for(db: Path, tmp_path: Path) -> None:
    kit = person_of(db, "Kit_Harington")
    his = {f["face_id"] for f in kit["faces"]}
    run_json("consent", "add", str(kit["id"]), *CONSENT, "--scope", "results", db=db)
    kit_photo = FR / "Kit_Harington" / "john1.jpeg"
    assert not his & found_faces(db, kit_photo)  # shown in the people view, but not searchable
    assert kit["id"] in {p["id"] for p in run_json("people", "list", db=db)}
    # Not "clustering": a new photo of him does not join him automatically.
    more = tmp_path / "more"
    more.mkdir()
    shutil.copy(kit_photo, more / "kit-again.jpg")
    run_json("index", more, db=db)
    assert run_json("people", "show", str(kit["id"]), db=db)["face_count"] == len(his)


def test_bad_consent_requests_change_nothing(db: Path) -> None:
    obama = person_of(db, "Barack_Obama")
    pid = str(obama["id"])
    for args, message in [
        (("consent", "add", pid, "--by", "x", "--expires", "2001-01-01", "--evidence", "e"), "in the past"),
        (("consent", "add", pid, "--by", "x", "--expires", "soon", "--evidence", "e"), "not a date"),
        (("consent", "add", pid, *CONSENT, "--scope", "search,marketing"), "(--scope) is a list of"),
        (("consent", "add", "9999", *CONSENT), "no person with id 9999"),
        (
            ("consent", "add", pid, "--by", " ", "--expires", "2099-01-01", "--evidence", "e"),
            "who gave the consent is required",
        ),
        (("consent", "withdraw", "77"), "no consent with id 77"),
    ]:
        proc = run_cli(*args, db=db)
        assert proc.returncode == 1 and message in proc.stderr, (args, proc.stderr)
    assert run_json("consent", "list", db=db) == []


def test_a_merge_never_moves_faces_past_a_name_or_consent_unconfirmed(db: Path) -> None:
    obama = person_of(db, "Barack_Obama")
    biden = person_of(db, "Joe_Biden")
    run_json("consent", "add", str(obama["id"]), *CONSENT, db=db)
    run_json("people", "name", str(obama["id"]), "Barack Obama", db=db)
    # A wrong merge used to give Biden's faces Obama's consented name, silently.
    refused = run_cli("people", "merge", str(biden["id"]), "--into", str(obama["id"]), db=db)
    assert refused.returncode == 1 and "--confirm" in refused.stderr
    assert person_of(db, "Joe_Biden")["id"] == biden["id"]
    assert run_json("people", "show", str(obama["id"]), db=db)["face_count"] == obama["face_count"]

    # Two different names: never one person without clearing one first.
    run_json("consent", "add", str(biden["id"]), *CONSENT, db=db)
    run_json("people", "name", str(biden["id"]), "Joe Biden", db=db)
    both = run_cli("people", "merge", str(biden["id"]), "--into", str(obama["id"]), "--confirm", db=db)
    assert both.returncode == 1 and "different names" in both.stderr


def test_a_merged_person_keeps_a_withdrawn_consent_withholding_their_faces(db: Path) -> None:
    obama = person_of(db, "Barack_Obama")
    his = {f["face_id"] for f in obama["faces"]}
    added = run_json("consent", "add", str(obama["id"]), *CONSENT, db=db)
    # Split a face off, then merge him into that new, unnamed person: his consent goes with him.
    new = run_json("people", "split", str(obama["id"]), "--face", str(min(his)), db=db)
    merged = run_json("people", "merge", str(obama["id"]), "--into", str(new["id"]), "--confirm", db=db)
    assert merged["id"] == new["id"]
    assert [c["person_id"] for c in run_json("consent", "list", db=db)] == [new["id"]]
    run_json("consent", "withdraw", str(added["id"]), db=db)
    assert not his & found_faces(db)  # the consent moved with the faces: still withheld
    # Once it is withdrawn, no reviewer decision can move his faces out again: a DPO's erasure
    # or purge handles him (tests/test_consent_follows.py tries every way).
    for args in (("split", str(new["id"]), "--face", str(max(his))), ("hide", str(new["id"]), "--unhide")):
        refused = run_cli("people", *args, db=db)
        assert refused.returncode == 1 and "a DPO handles them" in refused.stderr, refused.stderr
    assert not his & found_faces(db)
