"""Server mode on PostgreSQL: several processes writing and searching one catalog at once
(the two indexers and two searchers also on one SQLite file).

The CLI tests run on both backends (test_cli.py); erasure on PostgreSQL is in test_erasure.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

import facefind
from facefind.catalog.core import Catalog
from facefind.policy import Role

from .conftest import FR, GLINT, MULTI, new_catalog, new_pg_database, run_json
from .server import NAMES, Server, finished, from_each_worker, serve


def facefind_cli(*args: str | Path, db: str | Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "facefind", *map(str, args), "--db", str(db), "--json"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def faces_per_photo(db: str | Path) -> dict[str, int]:
    engine = Catalog(db).engine
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT i.path, count(f.id) FROM images i LEFT JOIN faces f ON f.image_id = i.id "
                "GROUP BY i.path"
            )
        ).all()
        assigned_twice = conn.execute(
            sa.text("SELECT face_id FROM face_persons GROUP BY face_id HAVING count(*) > 1")
        ).all()
    engine.dispose()
    assert assigned_twice == []
    return {path: int(n) for path, n in rows}


def test_two_indexers_and_two_searchers_at_once_lose_and_duplicate_nothing(
    backend_db: str | Path, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    db = new_catalog(backend_db)
    people = [GLINT / name for name in ("Tina_Fey", "Hugh_Laurie")]
    # Both indexers walk the same folders (in opposite orders), so they race on every photo.
    indexers = [
        facefind_cli("index", people[0], "--workers", "1", db=db),
        facefind_cli("index", people[1], "--workers", "1", db=db),
        facefind_cli("index", people[1], "--workers", "1", db=db),
        facefind_cli("index", people[0], "--workers", "1", db=db),
    ]
    searchers = [
        facefind_cli("search", MULTI / "obama_and_biden.jpg", "--purpose", f"concurrency {i}", db=db)
        for i in range(2)
    ]
    for proc in indexers + searchers:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert "Traceback" not in err

    # The same photos indexed by one process, one after the other: what the catalog must hold.
    alone: str | Path = tmp_path / "alone.db"
    if not isinstance(db, Path):
        alone = new_pg_database(request.getfixturevalue("pg_server"))
    new_catalog(alone)
    for folder in people:
        run_json("index", folder, "--workers", "1", db=alone)
    expected = faces_per_photo(alone)
    assert len(expected) == sum(1 for folder in people for p in folder.iterdir() if p.is_file())
    assert faces_per_photo(db) == expected  # every photo once, with its faces once: none lost or doubled
    verified = run_json("audit", "verify", db=db)
    assert verified["ok"] and verified["entries"] >= 2
    searches = [e for e in run_json("audit", "show", db=db) if e["action"] == "search"]
    assert sorted(e["purpose"] for e in searches) == ["concurrency 0", "concurrency 1"]


def test_the_library_works_the_same_on_postgresql(pg_url: str) -> None:
    """People, consent, opt-out, retention and the audit chain: one pass through the library."""
    db = new_catalog(pg_url)
    with facefind.open(db, actor="tests") as ff:
        report = ff.index(FR, workers=1)
        assert report.indexed == 23 and report.people is not None
        persons = ff.people.all()
        obama = next(p for p in persons if "Barack_Obama" in p.faces[0].path)
        biden = next(p for p in persons if "Joe_Biden" in p.faces[0].path)
        consent = ff.consent_add(
            obama.id,
            given_by="him",
            scope="search,results,clustering",
            expires="2099-01-01",
            evidence="form 1",
        )
        assert ff.people.name(obama.id, "Barack Obama").name == "Barack Obama"
        merged = ff.people.merge([biden.id], obama.id, confirm=True)
        assert merged.face_count == obama.face_count + biden.face_count
        split = ff.people.split(obama.id, [f.face_id for f in biden.faces])
        assert split.face_count == biden.face_count
        ff.consent_withdraw(consent.id)
        found = ff.search(FR / "Barack_Obama" / "obama.jpg", purpose="after withdrawal")
        assert not any("Barack_Obama" in m.path for f in found.faces for m in f.matches)
        optout = ff.optout_add(FR / "Joe_Biden" / "biden.jpg", note="request")
        assert optout.faces_suppressed >= 1
        found = ff.search(FR / "Joe_Biden" / "biden2.jpg", purpose="after opt-out")
        assert not any("Joe_Biden" in m.path for f in found.faces for m in f.matches)
        receipt = ff.erase("collection", "default", confirm=True)
        assert receipt.images_removed == 23
        assert ff.audit.verify().ok
        assert ff.stats()["faces"] == 0


def test_the_service_on_postgresql_with_two_workers(pg_url: str, tmp_path: Path) -> None:
    """An index job in one worker, searches answered by both, a key revoked for both at once."""
    db = new_catalog(pg_url)
    with facefind.open(db) as ff:  # index jobs read only under their collection's roots
        ff.update_collection("default", add_roots=[str(FR)])
    with serve(db, tmp_path, workers=2) as server, server.client(Role.operator) as operator:
        job = finished(
            operator, operator.post("/v1/index-jobs", json={"path": str(FR), "collection": "default"}).json()
        )
        assert job["state"] == "done" and job["report"]["indexed"] == 23, job
        photo = FR / "Joe_Biden" / "biden.jpg"

        def search(client: httpx.Client) -> httpx.Response:
            found = client.post("/v1/search", files={"photo": photo.open("rb")}, data={"purpose": "pg"})
            assert found.status_code == 200, found.text
            return found

        for found in from_each_worker(server, Role.operator, search):  # both see the job's faces
            assert Path(found.json()["faces"][0]["matches"][0]["path"]).parent.name == "Joe_Biden"
        with server.client(Role.dpo) as dpo:
            erased = dpo.post(
                "/v1/erasures", json={"kind": "person", "target": _person_of(server, "Joe_Biden")}
            )
            assert erased.status_code == 200, erased.text
        for found in from_each_worker(server, Role.operator, search):  # the erasure holds in both
            assert "Joe_Biden" not in found.text
        with server.client(Role.admin) as admin:
            assert admin.delete(f"/v1/keys/{NAMES[Role.operator]}").status_code == 200
        for _ in range(6):  # new connections, to either worker
            with server.client(Role.operator) as fresh:
                assert fresh.get("/v1/collections").status_code == 401
        with server.client(Role.auditor) as auditor:
            assert auditor.get("/v1/audit/verify").json()["ok"]


def _person_of(server: Server, folder: str) -> str:
    with server.client(Role.reviewer) as reviewer:
        people = reviewer.get("/v1/people").json()
    return str(next(p["id"] for p in people if folder in p["cover"]["path"]))


def _record_many(db: str, worker: int, count: int) -> None:
    with facefind.open(db, actor=f"writer-{worker}") as ff:
        for i in range(count):
            ff.audit.record(ff.actor, "search", {"n": i}, purpose=f"concurrency {worker}")


def test_the_audit_chain_stays_intact_with_concurrent_writers(pg_url: str) -> None:
    import multiprocessing

    db = new_catalog(pg_url)  # one entry: the collection
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_record_many, args=(db, w, 40)) for w in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
        assert w.exitcode == 0
    with facefind.open(db) as ff:
        verified = ff.audit.verify()
        entries = list(ff.audit.entries())
    assert verified.ok and verified.entries == 1 + 4 * 40
    assert [e.seq for e in entries] == list(range(1, 162))  # no gap, no fork
    for w in range(4):  # each writer's entries in the order it wrote them
        mine = [e.details["n"] for e in entries if e.actor == f"writer-{w}"]
        assert mine == list(range(40))
