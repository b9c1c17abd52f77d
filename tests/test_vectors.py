"""The vector index: exact vs ANN, deletes never returned, filters keep k, crash safety, rebuilds."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from facefind.accountability import collections
from facefind.catalog import SCHEMA_VERSION, Catalog
from facefind.faces.opencv import MODEL_ID
from facefind.vectors import FaissIndex, IndexPolicy, Rows, VectorStore

from .conftest import ROOT
from .synthetic import DIM, add_image, remove_image, unit


def clustered(rng: np.random.Generator, identities: int, per: int, spread: float = 0.6) -> np.ndarray:
    centers = unit(rng, identities)
    noise = unit(rng, identities * per)
    v = np.repeat(centers, per, axis=0) + spread * noise
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def build(kind: str, vectors: np.ndarray, collections: np.ndarray | None = None) -> FaissIndex:
    n = len(vectors)
    index = FaissIndex(DIM, kind, expected=n)
    index.train(vectors)
    rows = Rows(
        np.arange(1, n + 1, dtype=np.int64),
        np.zeros(n, np.int32) if collections is None else collections.astype(np.int32),
        np.full(n, 100, np.float32),
        np.full(n, 0.9, np.float32),
        np.ones(n, bool),
    )
    index.add(vectors, rows)
    return index


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray) -> np.ndarray:
    sims = queries @ vectors.T
    sims[:, ~allowed] = -np.inf
    return np.argsort(-sims, axis=1)[:, :k] + 1  # ids are positions + 1


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def test_flat_is_exact() -> None:
    rng = np.random.default_rng(1)
    vectors, queries = unit(rng, 3000), unit(rng, 50)
    scores, ids = build("flat", vectors).search(queries, 10)
    assert recall(ids, exact_top(vectors, queries, 10, np.ones(3000, bool))) == 1.0
    assert np.allclose(scores[:, 0], (queries @ vectors.T).max(axis=1), atol=1e-5)


@pytest.mark.parametrize("kind", ["pq", "hnsw", "ivf"])
def test_ann_recall_is_high_on_face_like_data(kind: str) -> None:
    rng = np.random.default_rng(2)
    vectors = clustered(rng, 2000, 10)
    queries = vectors[rng.choice(len(vectors), 100, replace=False)] + 0.05 * unit(rng, 100)
    _, ids = build(kind, vectors).search(queries, 10)
    assert recall(ids, exact_top(vectors, queries, 10, np.ones(len(vectors), bool))) >= 0.95


@pytest.mark.parametrize("kind", ["flat", "pq", "hnsw", "ivf"])
def test_filters_apply_inside_the_search_and_keep_k(kind: str) -> None:
    rng = np.random.default_rng(3)
    vectors = clustered(rng, 500, 10)
    collections = rng.integers(0, 4, len(vectors))
    index = build(kind, vectors, collections)
    queries = vectors[:20]
    # the 50 nearest faces of every query are excluded: a post-filter would return nothing
    excluded = np.unique(exact_top(vectors, queries, 50, np.ones(len(vectors), bool)))
    index.remove(np.arange(1, 200))  # and some are deleted outright
    _, ids = index.search(queries, 10, collections=[1, 2], exclude=excluded)
    assert (ids > 0).all(), "every query still gets 10 results"
    assert np.isin(collections[ids - 1], [1, 2]).all()
    assert not np.isin(ids, excluded).any() and (ids >= 200).all()
    allowed = index.allowed(collections=[1, 2], exclude=excluded)
    if kind == "flat":
        assert recall(ids, exact_top(vectors, queries, 10, allowed)) == 1.0


@pytest.mark.parametrize("allowed_share", [1.0, 0.5, 0.03, 0.001])
def test_pq_keeps_k_and_finds_the_exact_top_k_under_any_filter(allowed_share: float) -> None:
    """Wide filters over-fetch PQ candidates, narrow ones scan the 8-bit vectors: both give k."""
    from facefind.vectors import faiss_index

    rng = np.random.default_rng(4)
    vectors = clustered(rng, 2000, 10)
    index = build("pq", vectors)
    queries = vectors[rng.choice(len(vectors), 50, replace=False)] + 0.05 * unit(rng, 50)
    keep = rng.random(len(vectors)) < allowed_share
    index.remove(np.flatnonzero(~keep) + 1)
    _, ids = index.search(queries, 10)
    assert (ids > 0).all() and keep[ids - 1].all()
    truth = exact_top(vectors, queries, 10, keep)
    assert recall(ids, truth) >= 0.97
    if allowed_share < faiss_index.PQ_MIN_SHARE:  # the 8-bit scan is exhaustive
        assert recall(ids, truth) >= 0.99


def test_pq_query_whose_candidates_are_all_filtered_out_still_gets_k() -> None:
    rng = np.random.default_rng(5)
    vectors = clustered(rng, 2000, 10)
    index = build("pq", vectors)
    query = vectors[:1]
    # every face near the query is excluded, yet well over 5% of faces stay allowed
    near = exact_top(vectors, query, 3000, np.ones(len(vectors), bool))[0]
    _, ids = index.search(query, 10, exclude=near)
    assert (ids > 0).all() and not np.isin(ids, near).any()
    # What is left are near-ties (8-bit vectors cannot order them exactly; the engine re-ranks
    # by exact cosine): every result is within quantisation error of the true 10th best.
    similarity = vectors @ query[0]
    tenth = np.sort(similarity[~np.isin(np.arange(1, len(vectors) + 1), near)])[-10]
    assert similarity[ids[0] - 1].min() >= tenth - 0.002


def test_pq_parts_search_like_one_and_survive_write_read(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Codes split into parts (searched in parallel for one query) give what one part gives."""
    from facefind.vectors import pq_scan

    rng = np.random.default_rng(6)
    vectors = clustered(rng, 300, 10)
    queries = vectors[rng.choice(len(vectors), 20, replace=False)] + 0.05 * unit(rng, 20)
    whole = build("pq", vectors)
    monkeypatch.setattr(pq_scan, "PART_SIZE", 256)
    parted = build("pq", vectors[:1000])
    assert parted.scan is not None and len(parted.scan.parts) == 4
    parted.write(tmp_path)
    parted = FaissIndex.read(tmp_path, DIM, "pq", parted.rows)
    fields = ("ids", "collections", "size_px", "quality", "alive")
    more = Rows(*(getattr(whole.rows, f)[1000:] for f in fields))
    parted.add(vectors[1000:], more)  # continues the last part, then opens new ones
    assert parted.scan is not None and len(parted.scan.parts) == 12
    assert [p.ntotal for p in parted.scan.parts] == [256] * 11 + [3000 - 256 * 11]
    # one query scans the parts in parallel, a batch one part after another: the same answers
    one_by_one = np.vstack([parted.search(q[None], 10)[1] for q in queries])
    assert (one_by_one == parted.search(queries, 10)[1]).all()
    truth = exact_top(vectors, queries, 10, np.ones(len(vectors), bool))
    assert recall(one_by_one, truth) >= 0.97 and recall(whole.search(queries, 10)[1], truth) >= 0.97


class StoreMachine(RuleBasedStateMachine):
    """Random interleavings of add / replace / delete / search / save / reload / compact."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = np.random.default_rng(0)
        self.vectors: dict[int, np.ndarray] = {}  # live face id -> vector (the truth)
        self.paths: dict[str, list[int]] = {}
        self.n = 0

    @initialize(kind=st.sampled_from(["flat", "hnsw"]))
    def open(self, kind: str) -> None:
        import tempfile

        self.tmp = Path(tempfile.mkdtemp())
        self.db = self.tmp / "c.db"
        self.catalog = Catalog(self.db)
        self.policy = IndexPolicy(kind=kind)
        for _ in range(3):  # enough faces for HNSW to be built from the start
            self.add(50)
        self.store = self._new_store()

    def _new_store(self) -> VectorStore:
        return VectorStore(self.catalog, MODEL_ID, DIM, Path(f"{self.db}.vectors"), self.policy)

    @rule(faces=st.integers(1, 40))
    def add(self, faces: int) -> None:
        self.n += 1
        path = f"/p/{self.n}.jpg"
        vectors = unit(self.rng, faces)
        ids = add_image(self.catalog, path, vectors)
        self.paths[path] = ids
        self.vectors.update(zip(ids, vectors, strict=True))

    @precondition(lambda self: self.paths)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.paths)))
        remove_image(self.catalog, path)
        for face_id in self.paths.pop(path):
            del self.vectors[face_id]

    @precondition(lambda self: self.paths)
    @rule(data=st.data())
    def replace(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.paths)))
        for face_id in self.paths[path]:
            del self.vectors[face_id]
        vectors = unit(self.rng, 2)
        self.paths[path] = add_image(self.catalog, path, vectors)
        self.vectors.update(zip(self.paths[path], vectors, strict=True))

    @rule()
    def save(self) -> None:
        self.store.index()
        self.store.save(force=True)

    @rule()
    def reload(self) -> None:
        self.store = self._new_store()

    @rule()
    def compact(self) -> None:
        self.store.rebuild()

    @rule(k=st.integers(1, 12), excluded=st.integers(0, 5))
    def search(self, k: int, excluded: int) -> None:
        live = sorted(self.vectors)
        query = self.vectors[live[0]] if live else unit(self.rng, 1)[0]
        index = self.store.index()
        event(f"searched a {index.kind} index")
        # Excluding some faces (and an unknown id) must leave the cached unfiltered selection alone.
        exclude = np.array([*live[1 : 1 + excluded], 10**9], np.int64)
        _, ids = index.search(query[None], k, exclude=exclude)
        found = [i for i in ids[0] if i >= 0]
        assert not set(found) & set(exclude.tolist()), "an excluded face was returned"
        assert len(found) == min(k, len(live) - len(exclude) + 1)
        _, ids = index.search(query[None], k)
        found = [i for i in ids[0] if i >= 0]
        assert set(found) <= set(self.vectors), "a deleted face was returned"
        assert len(found) == min(k, len(live))
        if live:
            assert found[0] == live[0]  # a stored face finds itself first
        assert index.count_allowed(exclude=exclude) == len(live) - len(exclude) + 1

    @invariant()
    def never_rebuilt_from_a_bad_save(self) -> None:
        reason = self.store.rebuilt_because
        assert reason is None or "no saved index" in reason, reason

    def teardown(self) -> None:
        import shutil

        self.catalog.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(
    max_examples=30, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.parametrize("kind", ["auto", "pq"])
def test_kill_9_during_add_delete_and_save_never_leaves_a_bad_index(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "c.db"
    catalog = Catalog(db)
    rng = np.random.default_rng(4)
    for i in range(200):  # a few thousand faces so that a save takes a moment
        add_image(catalog, f"/base/{i}.jpg", unit(rng, 25))
    catalog.close()
    kills = 0
    while kills < 8:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.churn", str(db), kind], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one full round (and save) happened
        time.sleep(float(rng.uniform(0, 0.4)))  # then die anywhere: in a transaction, a sync, a save
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        catalog = Catalog(db)
        store = VectorStore(catalog, MODEL_ID, DIM, Path(f"{db}.vectors"))
        index = store.index()
        assert store.rebuilt_because is None, store.rebuilt_because  # the saved generation was sound
        assert index.checksum() == catalog.face_checksum(MODEL_ID)
        assert index.kind == ("flat" if kind == "auto" else kind)
        leftovers = [p.name for p in Path(f"{db}.vectors", MODEL_ID).iterdir()]
        assert "CURRENT" in leftovers
        catalog.close()


@pytest.mark.parametrize(
    "failpoint", ["save:written", "save:renamed", "save:pointer-written", "save:pointer-replaced"]
)
def test_kill_9_at_each_step_of_a_save(tmp_path: Path, failpoint: str) -> None:
    db = tmp_path / "c.db"
    catalog = Catalog(db)
    store = VectorStore(catalog, MODEL_ID, DIM, Path(f"{db}.vectors"))
    add_image(catalog, "/a.jpg", unit(np.random.default_rng(7), 4))
    store.index()
    store.save()  # generation 1
    catalog.close()
    env = dict(os.environ, FACEFIND_FAILPOINT=failpoint)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.churn", str(db)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL and proc.stdout == ""  # died inside its first save
    catalog = Catalog(db)
    reopened = VectorStore(catalog, MODEL_ID, DIM, Path(f"{db}.vectors"))
    index = reopened.index()
    assert reopened.rebuilt_because is None  # generation 1 (or 2, if the pointer moved) loads
    assert index.checksum() == catalog.face_checksum(MODEL_ID)  # and catches up with the catalog
    reopened.save(force=True)
    left = sorted(p.name for p in Path(f"{db}.vectors", MODEL_ID).iterdir())
    assert left[:2] == [".lock", "CURRENT"] and len(left) == 3  # leftovers cleaned up


def test_disagreement_with_the_catalog_is_detected_and_rebuilt(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    catalog = Catalog(db)
    rng = np.random.default_rng(5)
    ids = [add_image(catalog, f"/x/{i}.jpg", unit(rng, 2)) for i in range(50)]
    store = VectorStore(catalog, MODEL_ID, DIM, Path(f"{db}.vectors"))
    store.index()
    store.save()
    # a face deleted behind facefind's back (no tombstone): counts and checksums now differ
    gone = ids[3][0]
    with sqlite3.connect(db) as con:
        con.execute("delete from faces where id = ?", (gone,))
    fresh = VectorStore(catalog, MODEL_ID, DIM, Path(f"{db}.vectors"))
    index = fresh.index()
    assert fresh.rebuilt_because and "disagrees" in fresh.rebuilt_because
    assert gone not in index.rows.ids and len(index) == 99

    # a damaged index file is rebuilt from the catalog, not trusted
    fresh.save(force=True)
    generation = Path(f"{db}.vectors", MODEL_ID)
    target = generation / (generation / "CURRENT").read_text() / "index.faiss"
    target.write_bytes(target.read_bytes()[:100])
    again = VectorStore(catalog, MODEL_ID, DIM, Path(f"{db}.vectors"))
    assert len(again.index()) == 99
    assert again.rebuilt_because and "could not be read" in again.rebuilt_because


def test_schema_1_catalog_is_migrated_to_the_current_schema_keeping_its_faces(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    catalog = Catalog(db)
    add_image(catalog, "/old/1.jpg", unit(np.random.default_rng(6), 3))
    catalog.close()
    with sqlite3.connect(db) as con:  # turn it back into what schema 1 looked like
        con.executescript(
            """
            create table faces_plain as select * from faces;
            drop table faces; alter table faces_plain rename to faces;
            drop table face_tombstones;
            drop table face_rejections; drop table face_persons; drop table persons; drop table audit_log;
            create table collections_v1 (
                id integer primary key, name varchar(200) not null unique, created_at varchar(32) not null
            );
            insert into collections_v1 select id, name, created_at from collections;
            drop table collections; alter table collections_v1 rename to collections;
            update meta set value = '1' where key = 'schema_version';
            """
        )
    migrated = Catalog(db)
    assert migrated.face_count(MODEL_ID) == 3
    with sqlite3.connect(db) as con:
        ddl = con.execute("select sql from sqlite_master where name = 'faces'").fetchone()[0]
        version = con.execute("select value from meta where key = 'schema_version'").fetchone()[0]
        tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
    assert "AUTOINCREMENT" in ddl and version == str(SCHEMA_VERSION)
    assert {"face_tombstones", "persons", "face_persons", "face_rejections", "audit_log"} <= tables
    assert [c.basis for c in collections.all_(migrated)] == [None]  # indexing asks for a basis
    remove_image(migrated, "/old/1.jpg")
    assert len(migrated.tombstones_after(MODEL_ID, 0)[1]) == 3


def test_processes_saving_one_folder_at_once_never_break_each_others_saves(tmp_path: Path) -> None:
    """The service's workers and jobs share a vector folder: saves are serialised by a lock."""
    db = tmp_path / "catalog.db"
    catalog = Catalog(db)
    rng = np.random.default_rng(11)
    for n in range(30):
        add_image(catalog, f"/{n}.jpg", unit(rng, 10))
    script = (
        "import sys; from pathlib import Path; from facefind.catalog import Catalog;"
        "from facefind.vectors.store import VectorStore;"
        f"store = VectorStore(Catalog(sys.argv[1]), {MODEL_ID!r}, {DIM}, Path(sys.argv[1] + '.vectors'));"
        "store.index()\nfor _ in range(15): store.save(force=True)"
    )
    command = [sys.executable, "-c", script, str(db)]
    procs = [subprocess.Popen(command, stderr=subprocess.PIPE) for _ in range(4)]
    errors = [p.communicate(timeout=300)[1].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    reopened = VectorStore(catalog, MODEL_ID, DIM, Path(f"{db}.vectors"))
    reopened.index()
    assert reopened.rebuilt_because is None
