"""Server mode: SQLite vs PostgreSQL catalogs, and pgvector HNSW vs FAISS in each worker on PostgreSQL.

    FACEFIND_MODELS=../shared/models python bench/server_bench.py [--parts a,b] [--sizes 100000,1000000]
        [--runs 3] [--seconds 30] [--queries 500] [--ef-search 40,100,200,400,800] [--json]

An embedded PostgreSQL 18 + pgvector 0.8 (facefind.catalog.embedded) runs in a temporary folder with
shared_buffers 2GB and is stopped at the end; FACEFIND_VECTORS points into that folder too. Figures
are medians of `--runs` runs, each run's values kept beside them. Each measurement first waits (up to
`--max-wait` s) until no pytest runs on the machine and notes whether one ran meanwhile.

A. The same photos in SQLite and PostgreSQL. (1) `ff.index(glint_dev12, workers=2)` into a fresh
   catalog: images/s. (2) The face_recognition photos plus random unit embeddings up to `--a-faces`
   (the flat index: at most 100k), searched through `facefind serve --workers 1|2 --rate-limit 0` by
   `--clients` threads uploading real photos (api_bench.py's clients): p50/p99, searches/s, and each
   worker's RSS/USS after the run.
B. Vector search for several workers at each of `--sizes` faces: random unit vectors (dim 128) in a
   facefind catalog on PostgreSQL, in two collections (90% / 10% of the images), with 5 planted
   near-duplicates of each query (cosine 0.40-0.95); or with `--vectors face-like`, synthetic people
   shaped like real SFace embeddings of glint_dev12 (face_like_data; reported under "b-face-like").
   Each search is filtered to the 90% collection (and, as a check, to the 10% one). Options, each
   searched from a separate worker process:
   (1) pgvector: a table face_vectors (face id, collection id, vector(128); deleted with its face by a
       cascading foreign key) with an HNSW index (vector_cosine_ops, m/ef_construction as given, built
       with maintenance_work_mem 2GB and one parallel worker, stopped after `--max-build-minutes`),
       one SQL query `WHERE collection_id = ANY(..) ORDER BY v <=> q LIMIT 10` at each hnsw.ef_search;
   (2) FAISS in each worker: facefind's VectorStore over the same catalog, the kind `auto` picks
       (flat up to 100k, pq above), searched as `FaceFind.search` does (the candidates re-ranked by
       exact cosine), plus the per-search check that it is in step with the catalog.
   Reported: build time (pgvector index; FAISS rebuilt from the catalog) and load time (FAISS from its
   saved files), p50/p99 of single top-10 queries, recall of the exact top 10's matches at or above
   cosine 0.39 (and recall@10), memory (FAISS: worker RSS and what the index adds; pgvector: client
   RSS, the index's pg_relation_size and the backend's memory), two workers searching at once for
   `--concurrent-seconds`, and deletions (3 times: the above-threshold matches of 20 queries, ~100
   faces, deleted through the catalog as erasure does): the commit, whether the next search still
   returns them, and the work left (FAISS: each worker's sync; pgvector: VACUUM of the HNSW index).
   The 1-minute load average after each measurement is kept: other work on the machine shows there.

Results: printed (`--json`: one JSON document) and written to bench/results/server.json, where a
part not run (`--parts`) keeps its figures from the previous run, under "earlier" its run's setup.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import psutil
import psycopg
from pgvector.psycopg import register_vector

sys.path.insert(0, str(Path(__file__).parent))
import facefind
import machine
from api_bench import build_catalog, pick_queries, server_run, start_server
from facefind.catalog import Catalog, embedded
from facefind.catalog import schema as cat
from facefind.catalog.core import delete_faces
from facefind.settings import Settings
from facefind.vectors import IndexPolicy, VectorStore
from search_bench import percentiles

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "server.json"
DIM = 128
THRESHOLD = 0.39  # about facefind's usual search threshold (cosine)
PLANTED = 5  # near-duplicates of each query among the faces
SMALL_SHARE = 0.1  # of the images in the second collection
SETTINGS = Settings()
MIN_PX, MIN_Q = float(SETTINGS.min_face_px), SETTINGS.min_quality
PGVECTOR_VERSION = "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
SERVED_FIGURES = ("searches_per_s", "p50_ms", "p99_ms", "worker_rss_mib", "workers_cpu_s_per_wall_s")
FACE_COLUMNS = "id, image_id, face_index, x, y, w, h, landmarks, det_score, size_px, sharpness, yaw, quality"
Spec = dict[str, Any]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def memory(pid: int) -> dict[str, float]:
    """RSS, USS and PSS of a process in MiB."""
    info = psutil.Process(pid).memory_full_info()
    return {k: round(getattr(info, k) / 2**20, 1) for k in ("rss", "uss", "pss")}


def scalar(conn: psycopg.Connection, sql: str, params: tuple = ()) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def med(values: list[float]) -> float:
    return round(float(statistics.median(values)), 3)


def spread(runs: list[dict], key: str) -> dict:
    """The median of `key` over runs, and the runs' values."""
    values = [r[key] for r in runs if r.get(key) is not None]
    return {"median": med(values) if values else None, "runs": values}


def pytest_running() -> bool:
    """Whether a pytest runs on the machine (it would share our 2 cores). Not api_bench's
    `pgrep -f pytest`: that also matches the PostgreSQL servers tests leave in pytest's temp folders."""
    for proc in psutil.process_iter(["cmdline"]):
        with suppress(psutil.Error):
            if "pytest" in (Path(arg).name for arg in (proc.info["cmdline"] or [])[:6]):
                return True
    return False


def quietly(measure: Callable[[], dict], max_wait_s: float) -> dict:
    """`measure()` once no pytest runs (waiting up to max_wait_s), noting whether one ran meanwhile."""
    started = time.monotonic()
    while pytest_running() and time.monotonic() - started < max_wait_s:
        time.sleep(10)
    waited = round(time.monotonic() - started, 1)
    seen, stop = [pytest_running()], threading.Event()

    def watch() -> None:
        while not stop.wait(5):
            seen[0] = seen[0] or pytest_running()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = measure()
    finally:
        stop.set()
        watcher.join()
    # Other work on the machine (not only pytest) shows in the load average.
    load = round(os.getloadavg()[0], 2)
    return {**result, "waited_for_pytest_s": waited, "pytest_seen": seen[0], "load_avg_1m_after": load}


# PostgreSQL ------------------------------------------------------------------------------------
def start_postgres(folder: Path, shared_buffers: str) -> str:
    """The embedded server, restarted once with `shared_buffers`; the URL of its `facefind` database."""
    url = embedded.start(folder, allow_open_parents=True).url  # its own folder, made for it
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
    # Not embedded.stop + embedded.start: pgserver caches its server object per folder in the
    # process, so a second start in the same process returns the stopped server.
    import pgserver  # after embedded.start: warnings silenced, the package known to be there

    user = folder.owner() if folder.owner() != "root" else None
    cast(Any, pgserver).pg_ctl(["-w", "restart"], pgdata=folder.absolute(), user=user)
    return url


def new_database(server_url: str, name: str) -> str:
    """A fresh database on the server (dropped first if it exists); its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.replace("/facefind?", f"/{name}?")


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def copy_faces(
    url: str, model_id: str, vectors: np.ndarray, image_collections: np.ndarray, with_vectors: bool
) -> int:
    """Faces with these embeddings, 4 to an image of the given collection, written with COPY into
    facefind's tables (and into face_vectors for pgvector); the first face's id (ids are consecutive)."""
    n = len(vectors)
    assert len(image_collections) * 4 >= n
    with psycopg.connect(url) as conn:
        if with_vectors:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.commit()
            register_vector(conn)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS face_vectors (face_id integer PRIMARY KEY "
                "REFERENCES faces(id) ON DELETE CASCADE, collection_id integer NOT NULL, "
                "v vector(128) NOT NULL)"
            )
        first_image = int(scalar(conn, "SELECT coalesce(max(id), 0) + 1 FROM images"))
        first_face = int(scalar(conn, "SELECT coalesce(max(id), 0) + 1 FROM faces"))
        cur = conn.cursor()
        images = -(-n // 4)
        now = cat.now()
        columns = "id, collection_id, path, size, mtime_ns, status, indexed_at"
        with cur.copy(f"COPY images ({columns}) FROM STDIN") as copy:
            for i in range(images):
                image_id = first_image + i
                path = f"/synthetic/{image_id}.jpg"
                copy.write_row((image_id, int(image_collections[i]), path, 0, 0, "indexed", now))
        with cur.copy(f"COPY faces ({FACE_COLUMNS}, model_id, embedding) FROM STDIN") as copy:
            for i in range(n):
                values = (first_image + i // 4, i % 4, 0, 0, 100, 100, "[]", 0.9, 100, 100, 0, 0.9)
                copy.write_row((first_face + i, *values, model_id, vectors[i].tobytes()))
        if with_vectors:
            sql = "COPY face_vectors (face_id, collection_id, v) FROM STDIN WITH (FORMAT BINARY)"
            with cur.copy(sql) as copy:
                copy.set_types(["int4", "int4", "vector"])
                for i in range(n):
                    copy.write_row((first_face + i, int(image_collections[i // 4]), vectors[i]))
        for table, last in (("images", first_image + images - 1), ("faces", first_face + n - 1)):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", (last,))
        conn.commit()
        for table in ("images", "faces", "face_vectors") if with_vectors else ("images", "faces"):
            cur.execute(f"ANALYZE {table}")
        conn.commit()
    return first_face


# A. SQLite vs PostgreSQL -------------------------------------------------------------------------
def index_run(db: str | Path, folder: Path) -> dict:
    """`ff.index(folder, workers=2)` into the fresh catalog `db`."""
    with facefind.open(db, actor="benchmark") as ff:
        ff.create_collection("default", owner="benchmark", basis="own", retention="1y")
        t = time.perf_counter()
        report = ff.index(folder, collection="default", workers=2)
        seconds = time.perf_counter() - t
    return {
        "images": report.indexed,
        "faces": report.faces_found,
        "errors": report.errors,
        "seconds": round(seconds, 2),
        "images_per_s": round(report.indexed / seconds, 1),
        "indexer_images_per_s": report.images_per_second,  # the indexer's own figure (no index save, people)
    }


def build_pg_catalog(
    url: str, datasets: Path, faces: int, clients: int, rng: np.random.Generator
) -> tuple[int, list[str]]:
    """As api_bench.build_catalog (the same photos and, from the same rng, the same synthetic
    embeddings), with the synthetic faces written by COPY."""
    with facefind.open(url, actor="benchmark") as ff:
        ff.create_collection("default", owner="benchmark", basis="own", retention="1y")
        ff.index(datasets / "face_recognition", collection="default", workers=1)
        real = len(ff.vector_index())
        ff.create_collection("synthetic", owner="benchmark", basis="own", retention="1y")
        n = -(-(faces - real) // 4) * 4
        vectors = unit(rng.standard_normal((n, DIM)).astype(np.float32))
        collection = ff.catalog.collection_id("synthetic")
        copy_faces(url, ff.backend.model_id, vectors, np.full(n // 4, collection), with_vectors=False)
        total = len(ff.vector_index())
        return total, [ff.keys_add(f"client-{i}", "operator").key for i in range(clients)]


def part_a(args: argparse.Namespace, server_url: str, tmp: Path) -> dict:
    out: dict = {}
    glint = args.datasets / "glint_dev12"
    runs: dict[str, list[dict]] = {"sqlite": [], "postgresql": []}
    for run in range(args.runs):
        for backend in ("sqlite", "postgresql") if run % 2 == 0 else ("postgresql", "sqlite"):
            if backend == "sqlite":
                db: str | Path = tmp / f"a-index-{run}.db"
            else:
                db = new_database(server_url, f"a_index_{run}")
            measured = quietly(partial(index_run, db, glint), args.max_wait)
            runs[backend].append(measured)
            log(f"A index {backend} run {run}: {measured['images_per_s']} images/s")
            if backend == "postgresql":
                drop_database(server_url, f"a_index_{run}")
    out["index"] = {
        b: {
            "images": r[0]["images"],
            "images_per_s": spread(r, "images_per_s"),
            "indexer_images_per_s": spread(r, "indexer_images_per_s"),
            "run_details": r,
        }
        for b, r in runs.items()
    }

    # Search through `facefind serve` at ~100k faces.
    budget = args.a_faces - 3  # build_catalog rounds up to 4 faces an image: stay at or under a_faces
    sqlite_db = tmp / "a-search.db"
    pg_db = new_database(server_url, "a_search")
    t = time.perf_counter()
    sqlite_faces, sqlite_keys = build_catalog(
        sqlite_db, args.datasets, budget, args.clients, np.random.default_rng(0)
    )
    sqlite_build = time.perf_counter() - t
    t = time.perf_counter()
    pg_faces, pg_keys = build_pg_catalog(pg_db, args.datasets, budget, args.clients, np.random.default_rng(0))
    pg_build = time.perf_counter() - t
    log(f"A catalogs: sqlite {sqlite_faces} faces ({sqlite_build:.0f} s), pg {pg_faces} ({pg_build:.0f} s)")
    with facefind.open(sqlite_db, actor="benchmark") as ff:
        queries = pick_queries(ff, args.datasets, np.random.default_rng(1))
        kind = ff.index_info()["kind"]
    catalogs = {"sqlite": (str(sqlite_db), sqlite_keys), "postgresql": (pg_db, pg_keys)}
    configs = [(b, w) for w in (1, 2) for b in ("sqlite", "postgresql")]
    served: dict[str, list[dict]] = {f"{b}/{w}": [] for b, w in configs}
    errors: list[str] = []
    for run in range(args.runs):
        for backend, workers in configs if run % 2 == 0 else configs[::-1]:
            db_url, keys = catalogs[backend]
            server_log = tmp / f"serve-{backend}-{workers}.log"
            # start_server only passes `db` on as str(db): a URL works as well as a path
            server, url, pids = start_server(cast(Path, db_url), workers, server_log)
            try:
                measure = partial(server_run, url, pids, keys, queries, args.seconds, args.warmup)
                measured = quietly(measure, args.max_wait)
                measured["worker_memory_mib"] = [memory(pid) for pid in pids]
                measured["worker_rss_mib"] = max(m["rss"] for m in measured["worker_memory_mib"])
            finally:
                server.terminate()
                server.wait(30)
            lines = server_log.read_text().splitlines()
            errors += [f"{backend}/{workers}: {x}" for x in lines if "ERROR" in x or "Traceback" in x]
            served[f"{backend}/{workers}"].append(measured)
            log(
                f"A serve {backend} workers={workers} run {run}: p50 {measured.get('p50_ms')} ms, "
                f"p99 {measured.get('p99_ms')} ms, {measured['searches_per_s']}/s"
            )
    out["search"] = {
        "faces": {"sqlite": sqlite_faces, "postgresql": pg_faces},
        "index_kind": kind,
        "queries": len(queries),
        "clients": args.clients,
        "seconds": args.seconds,
        "catalog_build_s": {"sqlite": round(sqlite_build, 1), "postgresql": round(pg_build, 1)},
        **{
            name: {
                **{k: spread(r, k) for k in SERVED_FIGURES},
                "load_avg_1m_after": [x["load_avg_1m_after"] for x in r],
                "status_5xx": sum(x["status_5xx"] for x in r),
                "other_non_200": sum(x["other_non_200"] for x in r),
                "pytest_seen_runs": sum(bool(x["pytest_seen"]) for x in r),
                "run_details": r,
            }
            for name, r in served.items()
        },
        "server_log_errors": errors[:10],
    }
    drop_database(server_url, "a_search")
    return out


# B. pgvector vs FAISS per worker -------------------------------------------------------------------
def make_data(
    n: int, n_queries: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(faces' vectors, queries, collection index of each image: 0 the big, 1 the small one, and the
    rows of each query's PLANTED near-duplicates: random places, cosine 0.40-0.95 to the query)."""
    vectors = unit(rng.standard_normal((n, DIM)))
    queries = unit(rng.standard_normal((n_queries, DIM)))
    slots = rng.choice(n, (n_queries, PLANTED), replace=False)
    cosine = rng.uniform(0.40, 0.95, (n_queries, PLANTED)).astype(np.float32)
    noise = rng.standard_normal((n_queries, PLANTED, DIM)).astype(np.float32)
    noise -= np.einsum("qpd,qd->qp", noise, queries)[..., None] * queries[:, None, :]
    noise = unit(noise)
    planted = cosine[..., None] * queries[:, None, :] + np.sqrt(1 - cosine**2)[..., None] * noise
    vectors[slots.ravel()] = unit(planted.reshape(-1, DIM))
    small = (rng.random(-(-n // 4)) < SMALL_SHARE).astype(np.int64)
    return vectors, queries, small, slots


def fit_faces(folder: Path, tmp: Path) -> dict:
    """What real face embeddings look like, from identity-labelled photos (a folder per person)
    indexed by facefind: their mean, the covariance of faces around their person's mean (within),
    and the cosines of same-person and different-person pairs (to check the synthetic data)."""
    with facefind.open(tmp / "fit.db", actor="benchmark") as ff:
        ff.create_collection("fit", owner="benchmark", basis="own", retention="1y")
        ff.index(folder, collection="fit")
        with ff.catalog.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT i.path, f.embedding FROM faces f JOIN images i ON i.id = f.image_id"
            ).all()
    people: dict[str, list[np.ndarray]] = {}
    for path, blob in rows:
        people.setdefault(Path(path).parent.name, []).append(np.frombuffer(blob, np.float32))
    groups = [np.array(v) for v in people.values() if len(v) >= 2]
    deviations = np.vstack([g - g.mean(0) for g in groups])
    within = deviations.T @ deviations / (len(deviations) - len(groups))  # unbiased, pooled
    embeddings = np.vstack(groups)
    labels = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    return {
        "faces": len(embeddings),
        "people": len(groups),
        "mean": embeddings.mean(0),
        "within": within,
        **pair_cosines(embeddings, labels, np.random.default_rng(0)),
    }


def pair_cosines(vectors: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> dict:
    """Cosines of 20,000 same-person pairs (median) and 20,000 random pairs of different people
    (median, 99th percentile); `labels` (the person of each vector) must be sorted."""
    starts, ends = np.searchsorted(labels, labels, "left"), np.searchsorted(labels, labels, "right")
    a = rng.choice(np.flatnonzero(ends - starts >= 2), 20_000)
    b = starts[a] + rng.integers(0, ends[a] - starts[a] - 1)
    b[b >= a] += 1  # another face of the same person
    same = np.einsum("ij,ij->i", vectors[a], vectors[b])
    a, b = rng.integers(0, len(vectors), (2, 20_000))
    different = np.einsum("ij,ij->i", vectors[a], vectors[b])[labels[a] != labels[b]]
    return {
        "same_person_cosine_median": round(float(np.median(same)), 3),
        "different_person_cosine_median": round(float(np.median(different)), 3),
        "different_person_cosine_p99": round(float(np.quantile(different, 0.99)), 3),
    }


def face_like_data(
    n: int, n_queries: int, rng: np.random.Generator, fit: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray], dict]:
    """Vectors shaped like real face embeddings: synthetic people (how many faces each: geometric,
    mean 5) whose centres lie around the real mean, spread so that different people's faces are
    as similar as real ones (median cosine fitted), and each face around its person's centre with
    the real within-person covariance, scaled so that same-person faces are as similar as real
    ones. A query is a new face of a person in the gallery; its "planted" matches are that
    person's faces. Returns what make_data does plus the synthetic data's pair cosines."""
    sizes = rng.geometric(1 / 5, n)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n) + 1]
    labels = np.repeat(np.arange(len(sizes)), sizes)[:n]
    z_centres = rng.standard_normal((len(sizes), DIM)).astype(np.float32)
    root = np.linalg.cholesky(fit["within"] + 1e-6 * np.eye(DIM)).astype(np.float32)
    z_faces = rng.standard_normal((n, DIM)).astype(np.float32) @ root.T
    probe = np.sort(rng.choice(n, 20_000, replace=False))

    def faces(spread: float, scale: float, rows: np.ndarray) -> np.ndarray:
        return unit(fit["mean"] + spread * z_centres[labels[rows]] + scale * z_faces[rows])

    def median(spread: float, scale: float, pairs: str) -> float:
        cosines = pair_cosines(faces(spread, scale, probe), labels[probe], np.random.default_rng(0))
        return float(cosines[f"{pairs}_person_cosine_median"])

    spread, scale = 0.1, 1.0
    for _ in range(6):  # fit the two medians by alternating bisection (each is monotone)
        different, same = fit["different_person_cosine_median"], fit["same_person_cosine_median"]
        spread = _bisect(partial(median, scale=scale, pairs="different"), different)
        scale = _bisect(partial(median, spread, pairs="same"), same)
    chunks = [np.arange(i, min(i + 100_000, n)) for i in range(0, n, 100_000)]
    vectors = np.vstack([faces(spread, scale, rows) for rows in chunks])
    asked = labels[rng.choice(n, n_queries, replace=False)]
    noise = rng.standard_normal((n_queries, DIM)).astype(np.float32) @ root.T
    queries = unit(fit["mean"] + spread * z_centres[asked] + scale * noise)
    starts = np.searchsorted(labels, np.arange(len(sizes) + 1))
    slots = [np.arange(starts[p], starts[p + 1]) for p in asked]
    small = (rng.random(-(-n // 4)) < SMALL_SHARE).astype(np.int64)
    shape = {
        "centre_spread": round(spread, 4),
        "within_scale": round(scale, 4),
        "people": int(labels[-1]) + 1,
        **pair_cosines(vectors, labels, rng),
    }
    return vectors, queries, small, slots, shape


def _bisect(f: Callable[[float], float], target: float, lo: float = 0.001, hi: float = 10.0) -> float:
    """x in [lo, hi] where the decreasing f(x) meets target."""
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > target else (lo, mid)
    return (lo + hi) / 2


def exact_top10(
    vectors: np.ndarray, allowed: np.ndarray, queries: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cosines) of each query's 10 most similar allowed vectors, best first: the truth."""
    rows = np.flatnonzero(allowed)
    best_s = np.full((len(queries), 10), -np.inf, np.float32)
    best_r = np.full((len(queries), 10), -1, np.int64)
    for start in range(0, len(rows), 100_000):
        chunk = rows[start : start + 100_000]
        scores = queries @ vectors[chunk].T
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        all_s = np.hstack([best_s, np.take_along_axis(scores, top, 1)])
        all_r = np.hstack([best_r, chunk[top]])
        keep = np.argsort(-all_s, axis=1)[:, :10]
        best_s, best_r = np.take_along_axis(all_s, keep, 1), np.take_along_axis(all_r, keep, 1)
    return best_r, best_s


def top10_exact(
    candidates: list[list[int]], vectors: np.ndarray, queries: np.ndarray, first_id: int
) -> list[list[int]]:
    """Candidates re-ranked by exact cosine, best 10: what `FaceFind.search` does with the catalog's rows."""
    out = []
    for query, ids in zip(queries, candidates, strict=True):
        ids_a = np.asarray(ids, np.int64)
        order = np.argsort(-(vectors[ids_a - first_id] @ query))[:10]
        out.append(ids_a[order].tolist())
    return out


def recall(
    found: list[list[int]],
    truth_rows: np.ndarray,
    truth_scores: np.ndarray,
    planted: list[set[int]],
    first_id: int,
) -> dict:
    """Recall of the exact top 10's matches at or above THRESHOLD, of the planted near-duplicates
    (those in the searched collection), recall@10, and results per query."""
    above = hits_above = hits = hits_planted = 0
    for ids, rows, scores, mates in zip(found, truth_rows, truth_scores, planted, strict=True):
        got = set(ids)
        hits_planted += len(got & mates)
        truth = rows[rows >= 0] + first_id
        strong = truth[scores[rows >= 0] >= THRESHOLD]
        above += len(strong)
        hits_above += len(got.intersection(strong.tolist()))
        hits += len(got.intersection(truth.tolist()))
    return {
        "recall_above": round(hits_above / max(above, 1), 4),
        "recall_planted": round(hits_planted / max(sum(len(m) for m in planted), 1), 4),
        "recall_at_10": round(hits / max(int((truth_rows >= 0).sum()), 1), 4),
        "results_per_query": round(float(np.mean([len(f) for f in found])), 2),
    }


def run_workers(specs: list[Spec], tmp: Path) -> list[dict]:
    """Worker processes (this script with --child), started together; once all are loaded and warm,
    they search at the same moment. Their READY and RESULT reports, merged."""
    procs = []
    for n, spec in enumerate(specs):
        path = tmp / f"spec-{time.time_ns()}-{n}.json"
        path.write_text(json.dumps(spec))
        stderr = (tmp / "workers.log").open("a")
        command = [sys.executable, str(Path(__file__).resolve()), "--child", str(path)]
        pipe = subprocess.PIPE
        procs.append(subprocess.Popen(command, stdin=pipe, stdout=pipe, stderr=stderr, text=True))

    def report(proc: subprocess.Popen, prefix: str) -> dict:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(prefix):
                return cast(dict, json.loads(line[len(prefix) :]))
        proc.wait()
        tail = (tmp / "workers.log").read_text()[-3000:]
        raise RuntimeError(f"a worker exited ({proc.returncode}) before {prefix.strip()}:\n{tail}")

    ready = [report(p, "READY ") for p in procs]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [{**r, **report(p, "RESULT ")} for p, r in zip(procs, ready, strict=True)]
    for p in procs:
        p.wait(60)
    return results


def reports(specs: list[Spec], tmp: Path) -> dict:
    """run_workers' reports as a dict, for api_bench.quietly."""
    return {"w": run_workers(specs, tmp)}


def faiss_spec(
    url: str, model_id: str, folder: Path, queries: Path, plans: list[dict], sync_checks: int
) -> Spec:
    return {
        "option": "faiss",
        "url": url,
        "model_id": model_id,
        "folder": str(folder),
        "queries": str(queries),
        "plans": plans,
        "sync_checks": sync_checks,
    }


def pgvector_spec(url: str, queries: Path, plans: list[dict], explain: bool) -> Spec:
    return {"option": "pgvector", "url": url, "queries": str(queries), "plans": plans, "explain": explain}


class BuildProgress(threading.Thread):
    """Polls pg_stat_progress_create_index every 10 s while an index is built."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, threading.Event()
        self.last: dict[str, Any] = {}

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            columns = ("phase", "tuples_done", "tuples_total", "blocks_done", "blocks_total")
            while not self.stop.wait(10):
                sql = f"SELECT {', '.join(columns)} FROM pg_stat_progress_create_index"
                row = conn.execute(sql).fetchone()
                if row:
                    self.last = dict(zip(columns, row, strict=True))


def build_hnsw(url: str, m: int, ef_construction: int, timeout_s: float) -> dict:
    """Build the HNSW index on face_vectors (dropping any first); stopped after timeout_s."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP INDEX IF EXISTS face_vectors_hnsw")
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")  # 2 cores: the leader and one worker
        conn.execute(f"SET statement_timeout = {int(timeout_s * 1000)}")
        progress = BuildProgress(url)
        progress.start()
        t = time.perf_counter()
        try:
            conn.execute(
                f"CREATE INDEX face_vectors_hnsw ON face_vectors USING hnsw (v vector_cosine_ops) "
                f"WITH (m = {m}, ef_construction = {ef_construction})"
            )
            finished = True
        except psycopg.errors.QueryCanceled:
            finished = False
        seconds = time.perf_counter() - t
        progress.stop.set()
        progress.join()
        out: dict = {"build_s": round(seconds, 1), "finished": finished}
        if finished:
            row = conn.execute(
                "SELECT pg_relation_size('face_vectors_hnsw'), pg_relation_size('face_vectors'), "
                "pg_total_relation_size('faces')"
            ).fetchone()
            assert row is not None
            out.update(
                index_mib=round(row[0] / 2**20, 1),
                table_mib=round(row[1] / 2**20, 1),
                faces_table_total_mib=round(row[2] / 2**20, 1),
            )
        else:
            out["progress_when_stopped"] = progress.last
        return out


def part_b_size(args: argparse.Namespace, server_url: str, tmp: Path, n: int) -> dict:
    rng = np.random.default_rng(n)
    name = f"b_{n}"
    url = new_database(server_url, name)
    out: dict = {"faces": n}
    with facefind.open(url, actor="benchmark") as ff:
        for collection in ("big", "small"):
            ff.create_collection(collection, owner="benchmark", basis="own", retention="1y")
        big, small = ff.catalog.collection_ids(["big", "small"])
        model_id = ff.backend.model_id
    shape: dict = {}
    if args.vectors == "face-like":
        vectors, queries, image_small, slots, shape = face_like_data(n, args.queries, rng, args.fit)
    else:
        vectors, queries, image_small, slots = make_data(n, args.queries, rng)
    t = time.perf_counter()
    first_id = copy_faces(url, model_id, vectors, np.where(image_small == 1, small, big), with_vectors=True)
    out["copy_s"] = round(time.perf_counter() - t, 1)
    face_small = np.repeat(image_small, 4)[:n].astype(bool)
    masks = {"big": ~face_small, "small": face_small, "all": np.ones(n, bool)}
    truth = {name: exact_top10(vectors, mask, queries) for name, mask in masks.items()}
    planted = {
        name: [set((rows[mask[rows]] + first_id).tolist()) for rows in slots] for name, mask in masks.items()
    }
    out["data"] = {
        "vectors": args.vectors,
        **shape,
        "queries": len(queries),
        "small_collection_share": round(float(face_small.mean()), 4),
        "above_threshold_per_query_big": round(float((truth["big"][1] >= THRESHOLD).sum(1).mean()), 2),
        "exact_10th_cosine_big_median": round(float(np.median(truth["big"][1][:, 9])), 4),
    }
    log(f"B {n}: data copied in {out['copy_s']} s; {out['data']}")
    query_file = tmp / f"queries-{n}.npy"
    np.save(query_file, queries)

    def score(found: dict[str, list[list[int]]], rerank: bool) -> dict[str, dict]:
        scored = {}
        for plan, ids in found.items():
            target = plan.split("@")[0]
            top = top10_exact(ids, vectors, queries, first_id) if rerank else ids
            scored[plan] = recall(top, *truth[target], planted[target], first_id)
        return scored

    # (2) FAISS in each worker ------------------------------------------------------------------
    faiss_plans: list[dict] = [
        {"name": "big", "collections": [big]},
        {"name": "small", "collections": [small]},
        {"name": "all", "collections": None},
    ]
    faiss_runs = []
    for run in range(args.runs):
        folder = tmp / f"vectors-{n}-{run}"
        shutil.rmtree(folder, ignore_errors=True)
        # A worker that finds no saved index rebuilds it from the catalog (and saves it); the next
        # one loads the saved files and catches up with the catalog, as workers normally start.
        build = quietly(
            partial(reports, [faiss_spec(url, model_id, folder, query_file, [], 0)], tmp),
            args.max_wait,
        )
        loaded = quietly(
            partial(reports, [faiss_spec(url, model_id, folder, query_file, faiss_plans, 200)], tmp),
            args.max_wait,
        )
        b, w = build["w"][0], loaded["w"][0]
        found = {p["name"]: w["plans"][p["name"]].pop("ids") for p in faiss_plans}
        scored = score(found, rerank=True)
        row = {
            "kind": w["kind"],
            "build_s": b["load_s"],
            "save_s": b["save_s"],
            "load_s": w["load_s"],
            "rss_mib": w["rss_ready_mib"],
            "index_rss_mib": round(w["rss_ready_mib"] - w["rss_base_mib"], 1),
            "rss_after_searches_mib": w["rss_end_mib"],
            "sync_check_p50_ms": w["sync_check"]["p50_ms"],
            "sync_check_p99_ms": w["sync_check"]["p99_ms"],
            "pytest_seen": build["pytest_seen"] or loaded["pytest_seen"],
            "load_avg_1m_after": loaded["load_avg_1m_after"],
        }
        for plan in found:
            row.update({f"{plan}_{k}": v for k, v in {**w["plans"][plan], **scored[plan]}.items()})
        faiss_runs.append(row)
        log(f"B {n} faiss run {run}: {row}")
    keys = [k for k in faiss_runs[0] if k not in ("kind", "pytest_seen")]
    out["faiss"] = {
        "kind": faiss_runs[0]["kind"],
        **{k: spread(faiss_runs, k) for k in keys},
        "pytest_seen_runs": sum(bool(r["pytest_seen"]) for r in faiss_runs),
    }
    # Two workers searching at once, each with its own copy of the index.
    at_once = {**faiss_plans[0], "min_seconds": args.concurrent_seconds}
    pair = [faiss_spec(url, model_id, tmp / f"vectors-{n}-0", query_file, [at_once], 0)] * 2
    two = quietly(partial(reports, pair, tmp), args.max_wait)
    out["faiss"]["two_workers"] = {
        **concurrent_summary(two["w"], "big"),
        "pytest_seen": two["pytest_seen"],
    }

    # (1) pgvector HNSW -------------------------------------------------------------------------
    builds = []
    for run in range(args.runs):
        built = quietly(
            lambda: build_hnsw(url, args.hnsw_m, args.hnsw_ef_construction, args.max_build_minutes * 60),
            args.max_wait,
        )
        builds.append(built)
        log(f"B {n} pgvector build run {run}: {built}")
        if not built["finished"] or built["build_s"] > args.rebuild_under_s:
            break  # a long build is measured once
    out["pgvector"] = {
        "m": args.hnsw_m,
        "ef_construction": args.hnsw_ef_construction,
        "build_s": spread(builds, "build_s"),
        **{k: v for k, v in builds[-1].items() if k not in ("build_s",)},
    }
    if builds[-1]["finished"]:
        out["pgvector"].update(pgvector_search(args, url, tmp, query_file, big, small, score))
        folder = tmp / f"vectors-{n}-0"
        chosen = out["pgvector"]["chosen_ef_search"]
        out["deletion"] = deletion(url, folder, model_id, chosen, queries, vectors, first_id, face_small)
    drop_database(server_url, name)
    return out


def pgvector_search(
    args: argparse.Namespace,
    url: str,
    tmp: Path,
    query_file: Path,
    big: int,
    small: int,
    score: Callable[[dict[str, list[list[int]]], bool], dict[str, dict]],
) -> dict:
    plans = [
        {"name": f"big@{ef}", "collections": [big], "ef": ef, "iterative": "off"} for ef in args.ef_search
    ]
    small_ef = min(args.ef_search, key=lambda ef: abs(ef - 100))
    plans += [
        {"name": f"small@{small_ef}-{it}", "collections": [small], "ef": small_ef, "iterative": it}
        for it in ("off", "relaxed_order")
    ]
    runs = []
    for run in range(args.runs):
        spec = pgvector_spec(url, query_file, plans, explain=run == 0)
        measured = quietly(partial(reports, [spec], tmp), args.max_wait)
        w = measured["w"][0]
        found = {p["name"]: w["plans"][p["name"]].pop("ids") for p in plans}
        scored = score(found, False)
        row: dict = {
            "client_rss_mib": w["rss_end_mib"],
            "backend_memory_mib": w["backend_memory_mib"],
            "pytest_seen": measured["pytest_seen"],
            "load_avg_1m_after": measured["load_avg_1m_after"],
        }
        for plan in found:
            row.update({f"{plan}_{k}": v for k, v in {**w["plans"][plan], **scored[plan]}.items()})
        runs.append(row)
        shown = [f"{p} {row[p + '_p50_ms']} ms r={row[p + '_recall_above']}" for p in found]
        log(f"B pgvector search run {run}: " + ", ".join(shown))
    keys = [k for k in runs[0] if k not in ("backend_memory_mib", "pytest_seen")]
    out: dict = {k: spread(runs, k) for k in keys}
    out["backend_memory_mib"] = runs[-1]["backend_memory_mib"]
    out["pytest_seen_runs"] = sum(bool(r["pytest_seen"]) for r in runs)
    # The smallest ef_search whose median recall of above-threshold matches reaches the target.
    good = [ef for ef in args.ef_search if out[f"big@{ef}_recall_above"]["median"] >= args.target_recall]
    chosen = good[0] if good else args.ef_search[-1]
    out["chosen_ef_search"] = chosen
    best = next(p for p in plans if p["name"] == f"big@{chosen}")
    at_once = {**best, "min_seconds": args.concurrent_seconds}
    pair = [pgvector_spec(url, query_file, [at_once], False)] * 2
    two = quietly(partial(reports, pair, tmp), args.max_wait)
    out["two_workers"] = {
        **concurrent_summary(two["w"], f"big@{chosen}"),
        "pytest_seen": two["pytest_seen"],
    }
    return out


def concurrent_summary(workers: list[dict], plan: str) -> dict:
    """Two workers that searched the same queries at the same moment."""
    return {
        "p50_ms": [w["plans"][plan]["p50_ms"] for w in workers],
        "p99_ms": [w["plans"][plan]["p99_ms"] for w in workers],
        "queries_per_s": [w["plans"][plan]["queries_per_s"] for w in workers],
        "queries_per_s_total": round(sum(w["plans"][plan]["queries_per_s"] for w in workers), 1),
    }


def deletion(
    url: str,
    folder: Path,
    model_id: str,
    ef_search: int,
    queries: np.ndarray,
    vectors: np.ndarray,
    first_id: int,
    face_small: np.ndarray,
) -> dict:
    """Delete the above-threshold matches of 20 queries at a time (3 batches) through the catalog, as
    erasure does; when does each option stop returning them, and what work is left."""
    catalog = Catalog(url)
    store = VectorStore(catalog, model_id, DIM, folder, IndexPolicy())
    index = store.index()
    big = catalog.collection_ids(["big"])
    batches = []
    cleanup = True
    sql = "SELECT face_id FROM face_vectors WHERE collection_id = ANY(%s) ORDER BY v <=> %s LIMIT 10"
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute(f"SET hnsw.ef_search = {ef_search}")
        for batch in range(3):
            chosen = queries[20 * batch : 20 * (batch + 1)]
            scores = vectors @ chosen.T
            rows = np.flatnonzero(((scores >= THRESHOLD) & ~face_small[:, None]).any(1))
            ids = rows + first_id
            t = time.perf_counter()
            with catalog.transaction() as c:
                delete_faces(c, cat.faces.c.id.in_([int(i) for i in ids]))
            delete_s = time.perf_counter() - t
            dead = set(ids.tolist())
            t = time.perf_counter()
            pg_leaks = 0
            for q in chosen:
                pg_leaks += len(dead.intersection(r[0] for r in conn.execute(sql, (big, q)).fetchall()))
            pg_first_s = (time.perf_counter() - t) / len(chosen)
            t = time.perf_counter()
            synced = store.sync()
            sync_s = time.perf_counter() - t
            faiss_leaks = 0
            for q in chosen:
                _, found = index.search(q[None], index.candidates(10), MIN_PX, MIN_Q, big)
                faiss_leaks += len(dead.intersection(found[0].tolist()))
            # The work left for pgvector: VACUUM cleaning the HNSW index (it reads all of it, however
            # few rows died; measured once only if slow). INDEX_CLEANUP ON because a plain VACUUM skips
            # the indexes while under ~2% of the table's pages hold dead rows (their entries stay in
            # the graph, and searches step over them), so it would measure nothing at 100k and 1M.
            cleanup_s = None
            if cleanup:
                t = time.perf_counter()
                conn.execute("VACUUM (INDEX_CLEANUP ON) face_vectors")
                cleanup_s = time.perf_counter() - t
                cleanup = cleanup_s < 60
            batches.append(
                {
                    "faces": len(ids),
                    "delete_commit_ms": round(delete_s * 1000, 1),
                    "pgvector_returned_after": pg_leaks,
                    "pgvector_query_after_ms": round(pg_first_s * 1000, 2),
                    "faiss_sync_ms": round(sync_s * 1000, 2),
                    "faiss_synced_changes": synced,
                    "faiss_returned_after": faiss_leaks,
                    "pgvector_vacuum_index_cleanup_s": round(cleanup_s, 2) if cleanup_s is not None else None,
                }
            )
            log(f"B deletion batch {batch}: {batches[-1]}")
    catalog.close()
    keys = [k for k in batches[0] if k != "faces"]
    return {"faces_per_batch": [b["faces"] for b in batches], **{k: spread(batches, k) for k in keys}}


def part_b(args: argparse.Namespace, server_url: str, tmp: Path, result: dict) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        result["postgres"] = {
            "version": scalar(conn, "SHOW server_version"),
            "shared_buffers": scalar(conn, "SHOW shared_buffers"),
            "pgvector": scalar(conn, PGVECTOR_VERSION),
        }
    key = "b" if args.vectors == "random" else "b-face-like"
    result[key] = {}
    if args.vectors == "face-like":
        fit = args.fit = fit_faces(args.datasets / "glint_dev12", tmp)
        result["real_faces"] = {k: v for k, v in fit.items() if not isinstance(v, np.ndarray)}
        log(f"B: real faces {result['real_faces']}")
    for n in args.sizes:
        t = time.perf_counter()
        result[key][str(n)] = part_b_size(args, server_url, tmp, n)
        result[key][str(n)]["wall_s"] = round(time.perf_counter() - t)
        save(result)


# worker processes (--child) ----------------------------------------------------------------------
def child(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    queries = np.load(spec["queries"])
    prepare = faiss_worker if spec["option"] == "faiss" else pgvector_worker
    ready, run = prepare(spec, queries)
    print("READY " + json.dumps(ready), flush=True)
    sys.stdin.readline()
    print("RESULT " + json.dumps(run()), flush=True)


def timed(
    queries: np.ndarray, plan: dict, search: Callable[[np.ndarray], list[int]]
) -> tuple[list[list[int]], dict]:
    """Each query once, one after another (again and again for plan["min_seconds"], if given): the
    first round's answers, and p50/p99 and queries/s over all rounds."""
    ids: list[list[int]] = []
    samples: list[float] = []
    start = time.perf_counter()
    while not samples or time.perf_counter() - start < plan.get("min_seconds", 0):
        for q in queries:
            t = time.perf_counter()
            found = search(q)
            samples.append(time.perf_counter() - t)
            if len(ids) < len(queries):
                ids.append(found)
    seconds = time.perf_counter() - start
    return ids, {
        **percentiles(samples),
        "queries_per_s": round(len(samples) / seconds, 1),
        "seconds": round(seconds, 3),
    }


def faiss_worker(spec: Spec, queries: np.ndarray) -> tuple[dict, Callable[[], dict]]:
    """A worker's FAISS index over the catalog: loaded from its saved files, or rebuilt from the
    catalog (and saved) when there are none."""
    catalog = Catalog(spec["url"])
    base = memory(os.getpid())["rss"]
    store = VectorStore(catalog, spec["model_id"], DIM, Path(spec["folder"]), IndexPolicy())
    t = time.perf_counter()
    index = store.index()
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    saved = store.save()
    save_s = time.perf_counter() - t if saved else None

    def search(q: np.ndarray, collections: list[int] | None) -> list[int]:
        _, found = index.search(q[None], index.candidates(10), MIN_PX, MIN_Q, collections)
        return [int(i) for i in found[0] if i >= 0]

    for plan in spec["plans"]:  # warm up
        for q in queries[:20]:
            search(q, plan["collections"])
    ready = {
        "kind": index.kind,
        "faces": len(index),
        "rebuilt_because": store.rebuilt_because,
        "load_s": round(load_s, 2),
        "save_s": round(save_s, 2) if save_s is not None else None,
        "rss_base_mib": base,
        "rss_ready_mib": memory(os.getpid())["rss"],
    }

    def run() -> dict:
        plans = {}
        for plan in spec["plans"]:
            ids, measured = timed(queries, plan, partial(search, collections=plan["collections"]))
            plans[plan["name"]] = {"ids": ids, **measured}
        checks = []
        for _ in range(spec["sync_checks"]):  # what every search does first: catch up with the catalog
            t = time.perf_counter()
            store.index()
            checks.append(time.perf_counter() - t)
        return {
            "plans": plans,
            "sync_check": percentiles(checks) if checks else {},
            "rss_end_mib": memory(os.getpid())["rss"],
        }

    return ready, run


def pgvector_worker(spec: Spec, queries: np.ndarray) -> tuple[dict, Callable[[], dict]]:
    """A worker that leaves vector search to PostgreSQL: one connection, one query per search."""
    conn = psycopg.connect(spec["url"], autocommit=True)
    register_vector(conn)
    backend_pid = int(scalar(conn, "SELECT pg_backend_pid()"))
    sql = "SELECT face_id FROM face_vectors WHERE collection_id = ANY(%s) ORDER BY v <=> %s LIMIT 10"

    def search(q: np.ndarray, collections: list[int]) -> list[int]:
        return [int(r[0]) for r in conn.execute(sql, (collections, q)).fetchall()]

    def configure(plan: dict) -> None:
        conn.execute(f"SET hnsw.ef_search = {int(plan['ef'])}")
        conn.execute(f"SET hnsw.iterative_scan = {plan['iterative']}")

    for plan in spec["plans"]:  # warm up (and bring the index into shared_buffers)
        configure(plan)
        for q in queries[:20]:
            search(q, plan["collections"])
    ready = {"rss_ready_mib": memory(os.getpid())["rss"], "backend_pid": backend_pid}

    def run() -> dict:
        plans = {}
        for plan in spec["plans"]:
            configure(plan)
            ids, measured = timed(queries, plan, partial(search, collections=plan["collections"]))
            measured["ids"] = ids
            if spec["explain"]:  # 8 kB pages an index scan touches
                pages = []
                for q in queries[:10]:
                    explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql
                    top = scalar(conn, explain, (plan["collections"], q))[0]["Plan"]
                    pages.append(top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0))
                measured["pages_per_query"] = med(pages)
            plans[plan["name"]] = measured
        backend = memory(backend_pid)
        conn.close()
        return {"plans": plans, "rss_end_mib": memory(os.getpid())["rss"], "backend_memory_mib": backend}

    return ready, run


# main ----------------------------------------------------------------------------------------------
def save(result: dict) -> dict:
    """Write the results, keeping from the file's previous contents the parts not run this time
    (with the machine, setup and start time of the run that measured them); what was written."""
    merged = dict(result)
    with suppress(OSError, ValueError):
        previous = json.loads(RESULTS.read_text())
        for part in ("a", "b", "b-face-like"):
            if part not in merged and part in previous:
                merged[part] = previous[part]
                earlier = previous.get("earlier", {}).get(part)
                merged.setdefault("earlier", {})[part] = earlier or {
                    k: previous.get(k) for k in ("started", "machine", "setup", "wall_s")
                }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(merged, indent=2))
    return merged


@contextmanager
def postgres(tmp: Path) -> Iterator[str]:
    """The embedded server in tmp/pg for the run, stopped at the end."""
    folder = tmp / "pg"
    url = start_postgres(folder, "2GB")
    try:
        yield url
    finally:
        embedded.stop(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parts", default="a,b", help="a, b or a,b")
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30, help="A: server measurement per run")
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--a-faces", type=int, default=100_000)
    parser.add_argument("--sizes", default="100000,1000000", help="B: catalog sizes, comma-separated")
    parser.add_argument("--queries", type=int, default=500, help="B: queries per run")
    parser.add_argument(
        "--vectors",
        choices=("random", "face-like"),
        default="random",
        help="B: random unit vectors, or synthetic people shaped like glint_dev12's SFace embeddings",
    )
    parser.add_argument("--ef-search", default="40,100,200,400,800")
    parser.add_argument(
        "--target-recall", type=float, default=0.99, help="B: recall_above wanted of the chosen ef_search"
    )
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--hnsw-ef-construction", type=int, default=64)
    parser.add_argument("--max-build-minutes", type=float, default=25)
    parser.add_argument("--concurrent-seconds", type=float, default=10, help="B: two workers at once, for")
    parser.add_argument(
        "--rebuild-under-s", type=float, default=180, help="B: repeat HNSW builds only if this quick (s)"
    )
    parser.add_argument("--max-wait", type=float, default=90, help="seconds to wait for pytest to end")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.ef_search = [int(s) for s in args.ef_search.split(",") if s]
    parts = set(args.parts.split(","))
    warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
    started = time.perf_counter()
    result: dict = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine.describe(),
        "setup": {k: v for k, v in vars(args).items() if k not in ("child", "json", "datasets", "fit")},
    }
    tmp = Path(tempfile.mkdtemp(prefix="facefind-server-bench-"))
    os.environ["FACEFIND_VECTORS"] = str(tmp / "vectors")
    try:
        with postgres(tmp) as server_url:
            if "a" in parts:
                t = time.perf_counter()
                result["a"] = part_a(args, server_url, tmp)
                result["a"]["wall_s"] = round(time.perf_counter() - t)
                save(result)
            if "b" in parts:
                part_b(args, server_url, tmp, result)
    finally:
        result["wall_s"] = round(time.perf_counter() - started)
        result = save(result)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print_summary(result)


def print_summary(result: dict) -> None:
    print(f"machine: {result['machine']}")
    a = result.get("a")
    if a:
        for backend, row in a["index"].items():
            speed = row["images_per_s"]
            print(f"A index glint_dev12 {backend}: {speed['median']} images/s (runs {speed['runs']})")
        for name, row in a["search"].items():
            if isinstance(row, dict) and "p50_ms" in row:
                print(
                    f"A serve {name} workers: p50 {row['p50_ms']['median']} ms, "
                    f"p99 {row['p99_ms']['median']} ms, {row['searches_per_s']['median']}/s, "
                    f"worker RSS {row['worker_rss_mib']['median']} MiB"
                )
    rows = [(f"B {n}", row) for n, row in result.get("b", {}).items()]
    rows += [(f"B face-like {n}", row) for n, row in result.get("b-face-like", {}).items()]
    for n, row in rows:
        f, p = row["faiss"], row["pgvector"]
        print(
            f"{n} faiss {f['kind']}: build {f['build_s']['median']} s, load {f['load_s']['median']} s, "
            f"p50/p99 {f['big_p50_ms']['median']}/{f['big_p99_ms']['median']} ms, "
            f"recall_above {f['big_recall_above']['median']}, RSS {f['rss_mib']['median']} MiB"
        )
        ef = p.get("chosen_ef_search")
        if ef is None:
            print(f"{n} pgvector: build {p['build_s']}, finished={p['finished']}")
            continue
        print(
            f"{n} pgvector ef={ef}: build {p['build_s']['median']} s, index {p['index_mib']} MiB, "
            f"p50/p99 {p[f'big@{ef}_p50_ms']['median']}/{p[f'big@{ef}_p99_ms']['median']} ms, "
            f"recall_above {p[f'big@{ef}_recall_above']['median']}"
        )


if __name__ == "__main__":
    main()
