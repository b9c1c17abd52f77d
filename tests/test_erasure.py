"""Verifiable erasure: erased faces are gone from results, from every file we write, with a receipt."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from .conftest import FR, OBAMA, new_catalog, run_cli, run_json


@pytest.fixture
def catalog(fr_db: Path, tmp_path: Path) -> Path:
    """A private copy of the indexed face_recognition catalog with its vector index saved."""
    db = tmp_path / "cat" / "catalog.db"
    db.parent.mkdir()
    shutil.copy(fr_db, db)
    run_json("index-info", db=db)  # builds and saves the vector index beside the copy
    return db


def written_files(db: Path) -> list[Path]:
    """Every file facefind writes for this catalog: the database, its WAL/SHM, the vector index."""
    return [p for p in db.parent.rglob("*") if p.is_file()]


def embeddings_of(db: Path, where: str) -> list[bytes]:
    with sqlite3.connect(db) as con:
        return [r[0] for r in con.execute(f"select embedding from faces where {where}")]


def occurrences(files: list[Path], blobs: list[bytes]) -> int:
    """How many embeddings appear in the files: whole, or any aligned 64-byte piece of one."""
    data = [f.read_bytes() for f in files]
    found = 0
    for blob in blobs:
        pieces = [blob[i : i + 64] for i in range(0, len(blob), 64)]
        found += any(piece in d for piece in pieces for d in data)
    return found


def test_erasing_a_person_leaves_no_trace_of_their_embeddings(catalog: Path) -> None:
    obama = next(p for p in run_json("people", "list", db=catalog) if "Barack_Obama" in p["faces"][0]["path"])
    ids = ",".join(str(f["face_id"]) for f in obama["faces"])
    erased = embeddings_of(catalog, f"id in ({ids})")
    kept = embeddings_of(catalog, f"id not in ({ids})")
    assert len(erased) == 12
    # Before: the embeddings are in the files (so the scan below can see them).
    assert occurrences(written_files(catalog), erased) == 12

    receipt = run_json("erase", "person", str(obama["id"]), "--actor", "dpo", db=catalog)

    assert receipt["kind"] == "person" and receipt["by"] == "dpo"
    assert receipt["faces_removed"] == 12 and receipt["persons_removed"] == 1
    photos = sorted((FR / "Barack_Obama").iterdir())
    assert set(receipt["image_sha256"]) == {hashlib.sha256(p.read_bytes()).hexdigest() for p in photos}
    assert "face embeddings" in receipt["data_removed"]
    assert "embedding" not in str(receipt["image_sha256"])
    # After: not in the database file, its WAL, or any vector index file.
    assert occurrences(written_files(catalog), erased) == 0
    assert occurrences(written_files(catalog), kept) == len(kept)  # the rest is intact
    # Searching with the same photo finds none of the erased faces.
    result = run_json("search", OBAMA, "--purpose", "erasure check", "--threshold", "-1", db=catalog)
    found = {m["face_id"] for f in result["faces"] for m in f["matches"]}
    assert found and not found & {f["face_id"] for f in obama["faces"]}
    assert all("Barack_Obama" not in m["path"] for f in result["faces"] for m in f["matches"])
    entry = run_json("audit", "show", db=catalog)[receipt["audit_seq"] - 1]
    assert entry["action"] == "erase" and entry["details"]["faces_removed"] == 12
    assert run_json("audit", "verify", db=catalog)["ok"]


def test_erasing_an_image_and_a_collection(catalog: Path) -> None:
    biden = FR / "Joe_Biden" / "biden.jpg"
    before = run_json("stats", db=catalog)
    receipt = run_json("erase", "image", biden, db=catalog)
    assert receipt["images_removed"] == 1 and receipt["faces_removed"] == 1
    assert receipt["image_sha256"] == [hashlib.sha256(biden.read_bytes()).hexdigest()]
    after = run_json("stats", db=catalog)
    assert after["images"] == before["images"] - 1 and after["faces"] == before["faces"] - 1
    assert biden.exists()  # the user's own file is not touched

    whole = run_json("erase", "collection", "default", "--confirm", db=catalog)
    assert whole["images_removed"] == before["images"] - 1
    stats = run_json("stats", db=catalog)
    assert stats["images"] == 0 and stats["faces"] == 0 and stats["collections"] == {}
    assert run_json("index-info", db=catalog)["faces"] == 0
    with sqlite3.connect(catalog) as con:
        assert con.execute("select count(*) from persons").fetchone()[0] == 0


def test_erasing_something_unknown_changes_nothing(catalog: Path) -> None:
    before = run_json("stats", db=catalog)
    audit_before = run_json("audit", "show", db=catalog)
    for args, message in [
        (("erase", "person", "9999"), "no person with id 9999"),
        (("erase", "image", "/no/such/photo.jpg"), "no catalogued photo"),
        (("erase", "collection", "nope"), "no collection named 'nope'"),
    ]:
        proc = run_cli(*args, db=catalog)
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert run_json("stats", db=catalog) == before
    assert run_json("audit", "show", db=catalog) == audit_before


def test_embeddings_are_float32_as_the_scan_assumes(catalog: Path) -> None:
    (blob,) = embeddings_of(catalog, "id = 1")
    v = np.frombuffer(blob, np.float32)
    assert v.shape == (128,) and abs(float(np.linalg.norm(v)) - 1) < 1e-3


def test_erasure_on_postgresql_leaves_no_embedding_in_the_table_files(pg_url: str) -> None:
    """The rows go, VACUUM FULL rewrites the face tables, and the old files are gone: read every
    file of the database (after a checkpoint, so what PostgreSQL holds is on disk) for the bytes."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from facefind.catalog.core import Catalog

    db = new_catalog(pg_url)
    run_json("index", FR / "Barack_Obama", db=db)
    run_json("index", FR / "Joe_Biden", db=db)
    engine = Catalog(db).engine
    folder = Path(str(make_url(pg_url).query["host"]))  # the socket lives in the data folder

    def database_files() -> list[Path]:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("CHECKPOINT")
            oid = conn.exec_driver_sql("SELECT oid FROM pg_database WHERE datname = current_database()")
            return [p for p in (folder / "base" / str(oid.scalar_one())).iterdir() if p.is_file()]

    def embeddings(where: str) -> list[bytes]:
        query = f"SELECT f.embedding FROM faces f JOIN images i ON i.id = f.image_id WHERE {where}"
        with engine.connect() as conn:
            return [bytes(r[0]) for r in conn.execute(sa.text(query))]

    target = FR / "Barack_Obama" / "obama.jpg"
    erased = embeddings(f"i.path = '{target}'")
    kept = embeddings(f"i.path <> '{target}'")
    assert len(erased) == 1 and len(kept) == 13
    assert occurrences(database_files(), erased) == 1  # the scan sees them before

    receipt = run_json("erase", "image", target, db=db)

    assert receipt["faces_removed"] == 1
    assert any("VACUUM FULL" in line for line in receipt["data_removed"])
    assert any("pg_switch_wal" in line for line in receipt["copies_elsewhere"])
    assert occurrences(database_files(), erased) == 0
    assert occurrences(database_files(), kept) == len(kept)
    assert embeddings(f"i.path = '{target}'") == []
    assert run_json("audit", "verify", db=db)["ok"]
    engine.dispose()


def test_an_erasure_reaches_the_saved_vector_index_of_every_machine(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a server catalog each machine keeps its own vector index files (FACEFIND_VECTORS). A
    worker running during the erasure replaces its copy at its next search (another process on
    that machine then takes the new copy rather than rebuilding); a machine that was off does it on
    starting. Until then the files hold the erased vector, which is why the receipt names them."""
    import sqlalchemy as sa

    from facefind.catalog.core import Catalog
    from facefind.settings import vectors_dir
    from facefind.vectors import VectorStore
    from facefind.vectors.store import ERASED

    db = new_catalog(pg_url)
    run_json("index", FR / "Barack_Obama", db=db)
    run_json("index", FR / "Joe_Biden", db=db)
    folders = {}
    for machine in ("eraser", "running", "off"):
        monkeypatch.setenv("FACEFIND_VECTORS", str(tmp_path / machine))
        run_json("index-info", db=db)  # each machine builds and saves its own copy
        folders[machine] = vectors_dir(db)
    catalog = Catalog(db)
    target = FR / "Barack_Obama" / "obama.jpg"
    query = "SELECT f.embedding FROM faces f JOIN images i ON i.id = f.image_id WHERE i.path {} :path"
    with catalog.engine.connect() as conn:
        (model_id,) = conn.execute(sa.text("SELECT DISTINCT model_id FROM faces")).scalars()
        erased = [bytes(b) for b in conn.execute(sa.text(query.format("=")), {"path": str(target)}).scalars()]
        kept = [bytes(b) for b in conn.execute(sa.text(query.format("<>")), {"path": str(target)}).scalars()]
    assert len(erased) == 1 and len(kept) == 13

    def held(machine: str, blobs: list[bytes]) -> int:
        return occurrences([p for p in folders[machine].rglob("*") if p.is_file()], blobs)

    worker, sibling = (VectorStore(catalog, model_id, 128, folders["running"]) for _ in range(2))
    worker.index(), sibling.index()  # two processes that searched before the erasure
    assert all(held(machine, erased) == 1 for machine in folders)

    monkeypatch.setenv("FACEFIND_VECTORS", str(tmp_path / "eraser"))
    receipt = run_json("erase", "image", target, db=db)

    assert receipt["faces_removed"] == 1
    assert any("FACEFIND_VECTORS" in line for line in receipt["copies_elsewhere"])
    assert held("eraser", erased) == 0 and held("eraser", kept) == len(kept)
    assert held("running", erased) == 1  # not yet: nothing there has searched since

    index = worker.index()  # the worker's next search
    assert worker.rebuilt_because == ERASED and index.dead == 0 and len(index) == len(kept)
    assert held("running", erased) == 0 and held("running", kept) == len(kept)
    again = sibling.index()
    assert sibling.rebuilt_because is None  # it loaded the worker's new copy
    assert again.dead == 0 and list(again.rows.ids) == list(index.rows.ids)

    assert held("off", erased) == 1
    monkeypatch.setenv("FACEFIND_VECTORS", str(tmp_path / "off"))
    assert run_json("index-info", db=db)["rebuilt_because"] == ERASED  # on starting
    assert held("off", erased) == 0 and held("off", kept) == len(kept)
    catalog.close()
