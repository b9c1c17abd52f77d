"""Issue 20, findings 9 and 10: the audit log cannot be rewritten unseen by whoever can write the
catalog. The head is signed with a key kept outside the catalog and witnessed beside it, so deleting
the newest entries or rewriting the history (every hash recomputed) is found; an exported head can
be checked too (`--expect-head`); audit retention has a floor of 183 days and is not an API action."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import facefind
from facefind.accountability.audit import canonical, entry_hash
from facefind.policy import Role

from .conftest import new_catalog, run_cli, run_json
from .server import Server, serve_copy


def engine(db: str | Path) -> sa.Engine:
    """A raw connection to the catalog, as someone who can write the database would have."""
    url = f"sqlite:///{db}" if isinstance(db, Path) else db.replace("postgresql://", "postgresql+psycopg://")
    return sa.create_engine(url)


def raw(db: str | Path, *statements: tuple[str, dict[str, Any]]) -> None:
    e = engine(db)
    with e.begin() as conn:
        for sql, params in statements:
            conn.execute(sa.text(sql), params)
    e.dispose()


def log_rows(db: str | Path) -> list[sa.Row]:
    e = engine(db)
    with e.connect() as conn:
        rows = list(conn.execute(sa.text("select * from audit_log order by seq")).all())
    e.dispose()
    return rows


def rechain(db: str | Path, seq: int, purpose: str) -> None:
    """Edit entry `seq` and recompute its hash and every later one: internally consistent again."""
    statements = []
    prev = None
    for r in log_rows(db):
        if r.seq < seq:
            prev = r.hash
            continue
        new_purpose = purpose if r.seq == seq else r.purpose
        assert prev is not None
        digest = entry_hash(r.seq, r.at, r.actor, r.action, new_purpose, r.query_sha256, r.details, prev)
        statements.append(
            (
                "update audit_log set purpose = :p, prev_hash = :prev, hash = :h where seq = :s",
                {"p": new_purpose, "prev": prev, "h": digest, "s": r.seq},
            )
        )
        prev = digest
    raw(db, *statements)


def verify(db: str | Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = run_cli("audit", "verify", "--json", *args, db=db)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def logged(backend_db: str | Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str | Path:
    """A catalog (SQLite, then PostgreSQL) with seven audit entries (#1 the collection)."""
    # A database server's key goes to the per-user data dir: this test's own.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    db = new_catalog(backend_db)
    with facefind.open(db, actor="officer") as ff:
        for n in range(6):
            ff.audit.record("officer", "search", {"n": n}, f"case {n}")
    return db


def test_a_deleted_tail_is_found(logged: str | Path, tmp_path: Path) -> None:
    code, result = verify(logged)
    assert code == 0 and result["checked_against"] == ["witness"] and result["last_seq"] == 7
    if not isinstance(logged, Path):  # the key of a database server is outside it, per user
        assert list((tmp_path / "data" / "facefind" / "audit-keys").glob("*.audit-key"))

    raw(logged, ("delete from audit_log where seq > 4", {}))

    code, result = verify(logged)
    assert code == 1 and not result["ok"]
    assert any(
        p["seq"] == 5
        and "#5..#7 are missing" in p["problem"]
        and "newest entries were deleted" in p["problem"]
        for p in result["problems"]
    ), result["problems"]
    text = run_cli("audit", "verify", db=logged)
    assert text.returncode == 1 and "BROKEN" in text.stdout and "entry #5:" in text.stdout


def test_a_rechained_history_is_found(logged: str | Path) -> None:
    rechain(logged, 3, "nothing to see")
    code, result = verify(logged)
    assert code == 1
    problems = result["problems"]
    # The chain itself is consistent again: only the signed head tells.
    assert not any("edited" in p["problem"] or "out of chain" in p["problem"] for p in problems)
    assert any(p["seq"] == 7 and "re-chained" in p["problem"] for p in problems), problems


@pytest.fixture
def copy(fr_copy: Path) -> Path:
    with facefind.open(fr_copy, actor="officer") as ff:
        for n in range(4):
            ff.audit.record("officer", "search", {"n": n}, f"case {n}")
    return fr_copy


def test_an_exported_head_finds_a_deleted_tail_without_the_witness(copy: Path) -> None:
    head = run_json("audit", "head", db=copy)
    assert set(head) >= {"seq", "hash", "at", "signature", "public_key"}
    with facefind.open(copy, actor="officer") as ff:  # the log goes on after the export
        ff.audit.record("officer", "search", {"n": 9}, "case 9")
    expect = f"{head['seq']}:{head['hash']}"
    code, result = verify(copy, "--expect-head", expect)
    assert code == 0 and result["checked_against"] == ["witness", "expected_head"]

    # Someone who can write the catalog and its folder deletes the newest entries and the witness.
    Path(f"{copy}.audit-key.head").unlink()
    raw(copy, ("delete from audit_log where seq >= :s", {"s": head["seq"] - 1}))

    code, result = verify(copy)  # the chain alone: consistent, and it says that is all it knows
    assert code == 0 and result["checked_against"] == []
    assert "internal consistency only" in result["scope"]
    assert "internal consistency only" in run_cli("audit", "verify", db=copy).stdout

    code, result = verify(copy, "--expect-head", expect)
    assert code == 1 and result["checked_against"] == ["expected_head"]
    assert any(
        p["seq"] == head["seq"] - 1 and "newest entries were deleted" in p["problem"]
        for p in result["problems"]
    ), result["problems"]

    bad = run_cli("audit", "verify", "--expect-head", "7-abc", db=copy)
    assert bad.returncode == 1 and "--expect-head '7-abc' is not SEQ:HASH" in bad.stderr


def test_an_expected_head_finds_a_rechained_history(copy: Path) -> None:
    head = run_json("audit", "head", db=copy)
    Path(f"{copy}.audit-key.head").unlink()
    rechain(copy, 2, "nothing to see")
    assert verify(copy)[0] == 0
    code, result = verify(copy, "--expect-head", f"{head['seq']}:{head['hash']}")
    assert code == 1
    assert any(p["seq"] == head["seq"] and "re-chained" in p["problem"] for p in result["problems"])


def test_a_checkpoint_forged_with_a_swapped_catalog_key_is_found(copy: Path) -> None:
    """Delete old entries and sign a checkpoint with one's own key, put in the catalog's meta."""
    rows = log_rows(copy)
    cut, head = rows[2], rows[-1]
    forger = Ed25519PrivateKey.generate()
    public = (
        forger.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    )
    statement = {"purged_through_seq": cut.seq, "purged_through_hash": cut.hash, "purged_before": cut.at}
    details = canonical(
        {
            **statement,
            "purged_count": 3,
            "signature": forger.sign(canonical(statement).encode()).hex(),
            "public_key": public,
        }
    )
    seq, at = head.seq + 1, head.at
    values = dict(
        seq=seq,
        at=at,
        actor="dpo",
        action="checkpoint",
        purpose=None,
        q=None,
        details=details,
        prev=head.hash,
        h=entry_hash(seq, at, "dpo", "checkpoint", None, None, details, head.hash),
    )
    raw(
        copy,
        ("delete from audit_log where seq <= :s", {"s": cut.seq}),
        (
            "insert into audit_log (seq, at, actor, action, purpose, query_sha256, details, prev_hash, hash) "
            "values (:seq, :at, :actor, :action, :purpose, :q, :details, :prev, :h)",
            values,
        ),
        ("delete from meta where key = 'audit_public_key'", {}),
        ("insert into meta (key, value) values ('audit_public_key', :v)", {"v": public}),
    )
    code, result = verify(copy)
    assert code == 1
    problems = result["problems"]
    assert any("public key" in p["problem"] and "not the key file's" in p["problem"] for p in problems), (
        problems
    )
    assert {"seq": seq, "problem": "checkpoint signature does not verify"} in problems
    assert any(p["seq"] == cut.seq + 1 and "no genesis or checkpoint" in p["problem"] for p in problems)


def test_audit_retention_below_183_days_is_refused(copy: Path) -> None:
    before = log_rows(copy)
    for period in ("1d", "30d", "6m", "182d"):
        proc = run_cli("purge", "--audit-older-than", period, db=copy)
        assert proc.returncode == 1, proc.stdout
        assert "at least 183 days" in proc.stderr and "Art. 26(6)" in proc.stderr, proc.stderr
    assert log_rows(copy) == before
    with facefind.open(copy) as ff, pytest.raises(facefind.errors.InvalidValue, match="at least 183 days"):
        ff.purge(audit_older_than="7d")
    assert run_json("purge", "--audit-older-than", "183d", db=copy)["audit_checkpoint_seq"] is None
    assert verify(copy)[1]["ok"]


@pytest.fixture(scope="module")
def server(fr_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve_copy(fr_db, tmp_path_factory.mktemp("tamper"), workers=1) as running:
        yield running


def test_the_api_cannot_purge_the_audit_log(server: Server) -> None:
    before = log_rows(Path(server.db))
    with server.client(Role.dpo) as dpo:
        for period in ("1d", "5y"):
            refused = dpo.post("/v1/purge", json={"audit_older_than": period})
            assert refused.status_code == 403, refused.text
            assert "administrator" in refused.json()["error"]["message"]
        assert dpo.post("/v1/purge", json={}).status_code == 200  # retention of photos stays
    after = log_rows(Path(server.db))
    assert after[: len(before)] == before
    with server.client(Role.auditor) as auditor:
        assert auditor.get("/v1/audit/verify").json()["ok"]


@pytest.fixture
def keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An SQLite catalog with five audit entries, signed with a key kept in its own folder."""
    monkeypatch.setenv("FACEFIND_AUDIT_KEY", str(tmp_path / "k" / "audit.key"))
    (tmp_path / "k").mkdir()
    (tmp_path / "c").mkdir()
    db = new_catalog(tmp_path / "c" / "c.db")
    with facefind.open(db, actor="officer") as ff:
        for n in range(4):
            ff.audit.record("officer", "search", {"n": n}, f"case {n}")
    code, result = verify(db)
    assert code == 0 and result["last_seq"] == 5 and result["checked_against"] == ["witness"]
    return db


def test_a_deleted_tail_behind_a_swapped_path_is_found(keyed: Path) -> None:
    """Delete the newest entries, then put the catalog behind a link (or move it): the signed head
    is the catalog's own wherever it is, so the deleted tail is still found."""
    raw(keyed, ("delete from audit_log where seq >= 3", {}))
    assert verify(keyed)[0] == 1
    hidden = keyed.with_name(".t.db")
    keyed.rename(hidden)
    keyed.symlink_to(hidden.name)
    code, result = verify(keyed)
    assert code == 1 and result["checked_against"] == ["witness"], result
    assert any("newest entries were deleted" in p["problem"] for p in result["problems"]), result
    moved = keyed.with_name("moved.db")
    keyed.unlink()
    hidden.rename(moved)
    code, result = verify(moved)
    assert code == 1 and result["checked_against"] == ["witness"], result


def test_a_moved_catalog_still_verifies_against_its_head(keyed: Path) -> None:
    moved = keyed.parent.parent / "elsewhere.db"
    keyed.rename(moved)
    code, result = verify(moved)
    assert code == 0 and result["checked_against"] == ["witness"] and result["witness"]["seq"] == 5


def test_a_catalog_whose_key_has_no_head_for_it_is_reported(keyed: Path, tmp_path: Path) -> None:
    """Re-identify the catalog (its id in meta) after deleting the tail: the key holds heads, none
    for this catalog; and a later append does not make the missing witness go away."""
    raw(
        keyed,
        ("delete from audit_log where seq >= 3", {}),
        ("update meta set value = 'someone-else' where key = 'audit_catalog_id'", {}),
    )
    code, result = verify(keyed)
    assert code == 1, result
    problem = " ".join(p["problem"] for p in result["problems"])
    assert "no signed head for this catalog" in problem and "moved" in problem, problem
    with facefind.open(keyed, actor="officer") as ff:  # the service appends on
        ff.audit.record("officer", "search", {"n": 9}, "case 9")
    code, result = verify(keyed)
    assert code == 1, result
    problem = " ".join(p["problem"] for p in result["problems"])
    assert "not witnessed" in problem, problem

    # No false alarm for a fresh catalog sharing the key, before and after its first entries.
    fresh = tmp_path / "c" / "fresh.db"
    code, result = verify(fresh)
    assert code == 0 and result["entries"] == 0
    new_catalog(fresh)
    code, result = verify(fresh)
    assert code == 0 and result["checked_against"] == ["witness"], result


def test_a_database_url_spelled_differently_finds_the_same_head(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEFIND_AUDIT_KEY", str(tmp_path / "audit.key"))
    new_catalog(pg_url)
    with facefind.open(pg_url, actor="officer") as ff:
        for n in range(4):
            ff.audit.record("officer", "search", {"n": n}, f"case {n}")
    raw(pg_url, ("delete from audit_log where seq >= 3", {}))
    other = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    other += ("&" if "?" in other else "?") + "connect_timeout=30"
    code, result = verify(other)
    assert code == 1 and result["checked_against"] == ["witness"], result
