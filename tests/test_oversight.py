"""Records regulators ask for (issue 26): the Art. 12(3) fields of every 1:N search entry, the
audit export with its chain proof checked offline, the public retention schedule, and destruction
after the last interaction (BIPA Sec. 15(a)). Real catalogs, real photos, the CLI."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import facefind
from facefind.accountability.audit import entry_hash
from facefind.policy import Role

from .conftest import BIDEN, FR, OBAMA, new_catalog, run_cli, run_json
from .server import serve_copy


def _searches(db: Path) -> list[dict]:
    return [e for e in run_json("audit", "show", db=db) if e["action"] == "search"]


def test_search_entries_carry_art12_fields_and_the_state_changes_with_index_and_erase(
    fr_copy: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(FR / "Kit_Harington" / "john1.jpeg", extra / "john1.jpeg")
    states = []
    with facefind.open(fr_copy, actor="officer") as ff:
        ff.search(OBAMA, purpose="case 1")
        ff.index(extra, workers=1)
        ff.search(OBAMA, purpose="case 2", collections=["default"])
        ff.erase("image", str(extra / "john1.jpeg"))
        ff.search(OBAMA, purpose="case 3")
        ff.search(OBAMA, purpose="case 4")
    entries = _searches(fr_copy)
    assert [e["purpose"] for e in entries] == ["case 1", "case 2", "case 3", "case 4"]
    for e in entries:
        d = e["details"]
        assert e["query_sha256"] == hashlib.sha256(OBAMA.read_bytes()).hexdigest()
        assert d["started"] <= d["ended"] and d["ended"][:19] <= e["at"][:19]
        assert d["reference"]["collections"] == ["default"]
        assert d["verifiers"] == []
        assert d["faces"][0]["matches"]
        states.append(d["reference"]["catalog_state"])
    # Indexing a face and erasing one each give a new state; nothing in between keeps it.
    assert states[0] != states[1] != states[2] and states[0] != states[2]
    assert states[2] == states[3]
    assert run_json("audit", "verify", db=fr_copy)["ok"]


@pytest.fixture(scope="module")
def searched(fr_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the face_recognition catalog with three audited searches."""
    db = tmp_path_factory.mktemp("searched") / "catalog.db"
    shutil.copy(fr_db, db)
    with facefind.open(db, actor="officer") as ff:
        for n in range(3):
            ff.search(OBAMA if n != 1 else BIDEN, purpose=f"case {n}")
    return db


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_audit_export_round_trips_and_a_tampered_export_is_refused(
    searched: Path, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"audit.{fmt}"
    before = run_json("audit", "show", db=searched)
    proof = run_json("audit", "export", "--format", fmt, "--out", out, db=searched)
    assert proof["entries"] == len(before) and proof["last_seq"] == before[-1]["seq"]
    assert proof["signature"] and proof["public_key"]
    assert proof["log_head"]["seq"] == before[-1]["seq"]
    # The export itself is audited.
    assert run_json("audit", "show", db=searched)[-1]["action"] == "export"

    checked = run_json("audit", "verify-export", out)
    assert checked["ok"] and checked["signed"] and checked["entries"] == len(before), checked
    head = run_json("audit", "head", db=searched)
    assert run_json("audit", "verify-export", out, "--public-key", head["public_key"])["ok"]

    text = out.read_text()
    # Edit one search's result: its hash no longer holds.
    edited = (
        text.replace('"case 1"', '"nothing to see"') if fmt == "jsonl" else text.replace("case 1", "nothing")
    )
    assert edited != text
    (tmp_path / "edited").write_text(edited)
    refused = run_cli("audit", "verify-export", tmp_path / "edited", "--json")
    assert refused.returncode == 1
    problems = json.loads(refused.stdout)["problems"]
    assert any("edited" in p["problem"] for p in problems), problems

    # Edit it and recompute every hash after it: the signed statement gives it away.
    proof_part, entries = _parse(text, fmt)
    victim = next(e for e in entries if e["purpose"] == "case 1")
    victim["purpose"] = "nothing to see"
    prev = victim["prev_hash"]
    for e in entries[entries.index(victim) :]:
        e["prev_hash"] = prev
        fields = (e["seq"], e["at"], e["actor"], e["action"], e["purpose"], e["query_sha256"], e["details"])
        e["hash"] = prev = entry_hash(*fields, e["prev_hash"])
    rechained = tmp_path / f"rechained.{fmt}"
    rechained.write_text(_write(proof_part, entries, fmt))
    refused = run_cli("audit", "verify-export", rechained, "--json")
    assert refused.returncode == 1
    problems = json.loads(refused.stdout)["problems"]
    assert [p["seq"] for p in problems] == [0] and "signed statement" in problems[0]["problem"], problems

    # Leaving an entry out breaks the chain.
    rows = text.splitlines()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_text("\n".join(rows[:3] + rows[4:]) + "\n")
    assert run_cli("audit", "verify-export", cut).returncode == 1


def _parse(text: str, fmt: str) -> tuple[dict, list[dict]]:
    if fmt == "jsonl":
        lines = [json.loads(line) for line in text.splitlines()]
        return lines[0], lines[1:]
    rows = list(csv.DictReader(io.StringIO(text)))
    entries = [
        {
            **r,
            "seq": int(r["seq"]),
            "purpose": r["purpose"] or None,
            "query_sha256": r["query_sha256"] or None,
        }
        for r in rows[1:]
    ]
    for e in entries:
        e["details"] = json.loads(f'"{e["details"]}"')
    return rows[0], entries


def _write(proof: dict, entries: list[dict], fmt: str) -> str:
    if fmt == "jsonl":
        return "\n".join(json.dumps(x) for x in [proof, *entries]) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(proof), lineterminator="\n")
    writer.writeheader()
    writer.writerow(proof)
    for e in entries:
        cells = {
            k: "" if v is None else (json.dumps(v)[1:-1] if isinstance(v, str) else v) for k, v in e.items()
        }
        writer.writerow({"record": "entry", **cells})
    return buffer.getvalue()


def test_audit_export_of_a_date_range_verifies(searched: Path, tmp_path: Path) -> None:
    first = run_json("audit", "show", db=searched)[0]["at"][:10]
    out = tmp_path / "range.jsonl"
    proof = run_json("audit", "export", "--since", first, "--until", first, "--out", out, db=searched)
    assert proof["since"] == first and proof["until"] == first
    assert run_json("audit", "verify-export", out)["ok"]
    bad = run_cli("audit", "export", "--since", "yesterday", "--out", out, db=searched)
    assert bad.returncode != 0 and "is not a date" in bad.stderr
    (tmp_path / "notes.txt").write_text("minutes of the meeting\n")
    bad = run_cli("audit", "verify-export", tmp_path / "notes.txt")
    assert (
        bad.returncode == 1
        and "is not a facefind audit export" in bad.stderr
        and "Traceback" not in bad.stderr
    )


def test_policy_lists_every_collection(backend_db: str | Path, tmp_path: Path) -> None:
    db = new_catalog(backend_db, "family")
    run_cli(
        "collection", "create", "staff | badges", "--owner", "HR <hr@example.org>", "--basis", "consent",
        "--retention", "2y", "--note", "door badges; consent forms in HR file 7",
        "--destroy-after-last-use", "365", db=db, check=True,
    )  # fmt: skip
    schedule = run_json("policy", db=db)
    by_name = {c["collection"]: c for c in schedule["collections"]}
    assert set(by_name) == {"family", "staff | badges"}
    assert by_name["staff | badges"]["destroy_after_last_use_days"] == 365
    assert "within 365 days of the last interaction" in by_name["staff | badges"]["rule"]
    assert by_name["family"]["destroy_after_last_use_days"] is None
    text = run_cli("policy", db=db, check=True).stdout
    assert "family" in text and "staff \\| badges" in text and "HR file 7" in text
    page = tmp_path / "policy.html"
    run_cli("policy", "--format", "html", "--out", page, db=db, check=True)
    html = page.read_text()
    assert html.count("<tr>") == 3 and "HR &lt;hr@example.org&gt;" in html
    assert run_cli("policy", "--format", "pdf", db=db).returncode == 2


def test_purge_destroys_photos_unused_since_the_rule_with_a_receipt(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in (OBAMA, BIDEN, FR / "Kit_Harington" / "john1.jpeg"):
        shutil.copy(p, photos / p.name)
    db = new_catalog(tmp_path / "catalog.db")
    bad = run_cli("collection", "update", "default", "--destroy-after-last-use", "0", db=db)
    assert bad.returncode != 0 and "--destroy-after-last-use" in bad.stderr
    run_cli("collection", "update", "default", "--destroy-after-last-use", "30", db=db, check=True)
    with facefind.open(db) as ff:
        assert ff.index(photos, workers=1).indexed == 3
    # All three were indexed 60 days ago (within the 1y retention); a search returns Obama's photo
    # now (its last use).
    long_ago = (datetime.now(UTC) - timedelta(days=60)).isoformat(timespec="seconds")
    with sqlite3.connect(db) as conn:
        conn.execute("update images set indexed_at = ?", (long_ago,))
    with facefind.open(db) as ff:
        found = ff.search(OBAMA, purpose="case 9")
        assert [m.path for m in found.faces[0].matches] == [str(photos / "obama.jpg")]
    report = run_json("purge", db=db)
    (receipt,) = report["receipts"]
    assert receipt["images_removed"] == 2 and receipt["faces_removed"] == 2
    assert "destroy after last use" in receipt["target"] and receipt["audit_seq"]
    with sqlite3.connect(db) as conn:
        assert [Path(p).name for (p,) in conn.execute("select path from images")] == ["obama.jpg"]
    # Nothing else is due: a second purge erases nothing.
    assert run_json("purge", db=db)["receipts"] == []
    assert run_json("audit", "verify", db=db)["ok"]


def test_an_auditor_downloads_a_signed_export_through_the_api(fr_db: Path, tmp_path: Path) -> None:
    with serve_copy(fr_db, tmp_path, workers=1) as server:
        with server.client(Role.operator) as operator:
            searched = operator.post(
                "/v1/search",
                files={"photo": ("obama.jpg", OBAMA.read_bytes(), "image/jpeg")},
                data={"purpose": "case 12"},
            )
            assert searched.status_code == 200, searched.text
            assert operator.get("/v1/audit/export/signed").status_code == 403
        with server.client(Role.auditor) as auditor:
            got = auditor.get("/v1/audit/export/signed", params={"format": "csv"})
            assert got.status_code == 200, got.text
            assert auditor.get("/v1/audit/export/signed", params={"format": "xml"}).status_code == 400
    out = tmp_path / "audit.csv"
    content = got.json()["content"]
    out.write_text(content)
    checked = run_json("audit", "verify-export", out)
    assert checked["ok"] and checked["signed"], checked
    assert checked["last_seq"] == got.json()["proof"]["last_seq"]
    search = next(e for e in _parse(content, "csv")[1] if e["action"] == "search")
    details = json.loads(search["details"])
    assert search["actor"] == "operator-key" and search["purpose"] == "case 12"
    assert details["reference"]["catalog_state"] and "started" in details and details["verifiers"] == []
