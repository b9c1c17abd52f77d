"""Vector index at scale: facefind's FAISS indexes vs brute-force numpy, on face-like synthetic data.

    python bench/index_bench.py --faces 1000000 [--index flat|hnsw|ivf ...] [--queries 1000] [--json]

Synthetic data behaves like real face embeddings: identities are clusters on the unit sphere whose
spread (cosine of a face to its identity's mean) and whose between-identity similarity are
measured from real SFace embeddings of ../shared/datasets/glint_dev12. Queries are new photos of
stored identities, as when someone searches for a person. Faces are generated in seeded chunks, so
an index is built without holding the raw vectors, and its resident memory is measured on its own.

For each index kind: build time, resident bytes per face, single-query latency p50/p99, per-query
latency in batches of 32, queries/s, recall@10 against exact search (approximate kinds re-rank
their candidates by exact cosine from bench/results/vectors-N.npy, as `search` does from the
catalog; 5 GB at 10M faces), and a sweep of each kind's speed/recall setting; the same for the baseline
(one float32 matrix, `queries @ matrix.T`, what DeepFace and face_recognition do), and the
machine's memory read bandwidth, the physical limit of exact search.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import machine
from facefind.vectors import FaissIndex, Rows, faiss_index

ROOT = Path(__file__).resolve().parents[1]
DIM, K, CHUNK, PER_IDENTITY = 128, 10, 100_000, 10


# --- what real face embeddings look like -------------------------------------------------------
def measure_spread(glint: Path) -> dict:
    """Cosine of faces to their identity mean, and between identity means, on real SFace embeddings."""
    from facefind.evaluate import load_labelled
    from facefind.faces import load_backend
    from facefind.settings import Settings

    settings = Settings()
    backend = load_backend(settings)
    labelled = load_labelled(glint, settings, 2, lambda: backend)
    labels = labelled.labels
    to_center, centers = [], []
    for person in sorted(set(labelled.persons)):
        members = labelled.embeddings[(labels == person) & labelled.detected]
        center = members.mean(axis=0)
        center /= np.linalg.norm(center)
        centers.append(center)
        to_center.extend(members @ center)
    c = np.asarray(centers)
    between = (c @ c.T)[np.triu_indices(len(c), 1)]
    return {
        "faces": int(labelled.detected.sum()),
        "identities": len(centers),
        "to_center_mean": round(float(np.mean(to_center)), 4),
        "to_center_std": round(float(np.std(to_center)), 4),
        "between_centers_mean": round(float(np.mean(between)), 4),
    }


class FaceLikeData:
    """Deterministic chunks of clustered unit vectors with the measured spread."""

    def __init__(self, n: int, spread: dict, seed: int = 0) -> None:
        self.n, self.spread, self.seed = n, spread, seed
        rng = np.random.default_rng(seed)
        self.shared = _unit(rng.standard_normal((1, DIM)))[0]  # what all faces have in common

    def _centers(self, chunk: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, chunk, 0))
        r = _unit(rng.standard_normal((CHUNK // PER_IDENTITY, DIM)))
        b = max(self.spread["between_centers_mean"], 0.0)
        return _unit(np.sqrt(b) * self.shared + np.sqrt(1 - b) * r)

    def _faces_of(self, centers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cos = np.clip(
            rng.normal(self.spread["to_center_mean"], self.spread["to_center_std"], len(centers)), 0.05, 0.99
        )
        noise = rng.standard_normal(centers.shape)
        noise -= (noise * centers).sum(1, keepdims=True) * centers  # orthogonal to the center
        noise = _unit(noise)
        return _unit(cos[:, None] * centers + np.sqrt(1 - cos**2)[:, None] * noise).astype(np.float32)

    def chunks(self):  # type: ignore[no-untyped-def]
        for chunk, start in enumerate(range(0, self.n, CHUNK)):
            size = min(CHUNK, self.n - start)
            centers = np.repeat(self._centers(chunk), PER_IDENTITY, axis=0)[:size]
            yield start, self._faces_of(centers, np.random.default_rng((self.seed, chunk, 1)))

    def queries(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(new photos of stored identities, their identity numbers)."""
        rng = np.random.default_rng((self.seed, 7))
        chunks = rng.integers(0, (self.n + CHUNK - 1) // CHUNK, count)
        picks, identities = [], []
        for chunk in chunks:
            size = min(CHUNK, self.n - chunk * CHUNK) // PER_IDENTITY
            local = int(rng.integers(0, max(size, 1)))
            picks.append(self._centers(int(chunk))[local].copy())  # not a view: the chunk is freed
            identities.append(int(chunk) * (CHUNK // PER_IDENTITY) + local)
        return self._faces_of(np.asarray(picks), rng), np.asarray(identities)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# --- measurements -------------------------------------------------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_bandwidth_gbs(threads: int) -> float:
    """Read bandwidth: every core summing its own part of a 2 GiB array (best of 3)."""
    data = np.ones(2**29, np.float32)
    parts = np.array_split(data, threads)
    best = 0.0
    for _ in range(3):
        workers = [threading.Thread(target=np.add.reduce, args=(p,)) for p in parts]
        t = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = max(best, data.nbytes / (time.perf_counter() - t) / 1e9)
    return round(best, 2)


def exact_truth(data: FaceLikeData, queries: np.ndarray, store: Path) -> tuple[np.ndarray, np.ndarray]:
    """Exact top 10 of every query; every face's float32 vector is also written to `store`.

    The stored vectors play the catalog's part: approximate indexes fetch candidates, which are
    re-ranked by exact cosine from there, as `search` does (`FaissIndex.candidates`).
    """
    store.parent.mkdir(parents=True, exist_ok=True)
    exact = np.lib.format.open_memmap(store, "w+", np.float32, (data.n, DIM))
    best = np.full((len(queries), K), -np.inf, np.float32)
    best_ids = np.full((len(queries), K), -1, np.int64)
    for start, vectors in data.chunks():
        exact[start : start + len(vectors)] = vectors
        scores = queries @ vectors.T
        all_scores = np.hstack([best, scores])
        all_ids = np.hstack(
            [best_ids, np.broadcast_to(np.arange(start, start + len(vectors)) + 1, scores.shape)]
        )
        top = np.argpartition(-all_scores, K - 1, axis=1)[:, :K]
        best, best_ids = np.take_along_axis(all_scores, top, 1), np.take_along_axis(all_ids, top, 1)
    exact.flush()
    del exact
    return best_ids, np.load(store, mmap_mode="r")


def rerank(queries: np.ndarray, candidates: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """The best K of each query's candidate face ids by exact cosine."""
    out = np.full((len(queries), K), -1, np.int64)
    for row, (query, ids) in enumerate(zip(queries, candidates, strict=True)):
        ids = ids[ids >= 0]
        ids = ids[np.argsort(-(exact[ids - 1] @ query))[:K]]
        out[row, : len(ids)] = ids
    return out


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    return round(float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)])), 4)


def mate_recall_at_10(found: np.ndarray, truth: np.ndarray, identities: np.ndarray) -> float:
    """Of the exact top 10 that are the query person's own faces, the share found: what a user sees.

    Face id i (1-based) belongs to identity (i - 1) // PER_IDENTITY; plain recall@10 also counts
    strangers from the far tail of the impostor distribution that happen to rank in the top 10.
    """
    wanted = found_mates = 0
    for f, t, person in zip(found, truth, identities, strict=True):
        mates = {int(i) for i in t if (i - 1) // PER_IDENTITY == person}
        wanted += len(mates)
        found_mates += len(mates & {int(i) for i in f})
    return round(found_mates / max(wanted, 1), 4)


def latencies(search, queries: np.ndarray, limit_s: float) -> tuple[dict, np.ndarray]:  # type: ignore[no-untyped-def]
    """Single-query p50/p99 and batch-of-32 latency; stops early after limit_s seconds."""
    single, found = [], []
    deadline = time.perf_counter() + limit_s
    for q in queries:
        t = time.perf_counter()
        found.append(search(q[None]))
        single.append(time.perf_counter() - t)
        if time.perf_counter() > deadline and len(single) >= 20:
            break
    batches = []
    for i in range(0, min(len(single), len(queries)) - 31, 32):
        t = time.perf_counter()
        search(queries[i : i + 32])
        batches.append(time.perf_counter() - t)
    ms = np.asarray(single) * 1000
    out = {
        "queries_timed": len(single),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "qps": round(1000 / float(np.mean(ms)), 1),
    }
    if batches:
        out["batch32_ms_per_query"] = round(1000 * float(np.median(batches)) / 32, 3)
        out["qps_batch32"] = round(32 / float(np.median(batches)), 1)
    return out, np.vstack(found)


def _rows(start: int, n: int) -> Rows:
    return Rows(
        np.arange(start + 1, start + n + 1, dtype=np.int64),
        np.zeros(n, np.int32),
        np.full(n, 100, np.float32),
        np.full(n, 0.9, np.float32),
        np.ones(n, bool),
    )


class Checkpoint:
    """A partly built index saved every `every` faces, so a build of hours survives being stopped.

    Build time is summed over the runs that built it; CPU seconds are kept too, because a build
    resumed beside other work is slowed by it while its CPU time is not.
    """

    def __init__(self, folder: Path | None, kind: str, n: int, every: int = 1_000_000) -> None:
        self.every = every
        self.folder = folder / f"{kind}-{n}" if folder else None

    def load(self, kind: str) -> tuple[FaissIndex | None, dict]:
        if self.folder is None or not (self.folder / "state.json").exists():
            return None, {"added": 0, "build_s": 0.0, "cpu_s": 0.0}
        state = json.loads((self.folder / "state.json").read_text())
        index = FaissIndex.read(self.folder, DIM, kind, _rows(0, state["added"]))
        print(f"  {kind}: resumed at {state['added']} faces", file=sys.stderr)
        return index, state

    def save(self, index: FaissIndex, state: dict) -> None:
        if self.folder is None:
            return
        tmp = self.folder.with_name(self.folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        index.write(tmp)
        (tmp / "state.json").write_text(json.dumps(state))
        shutil.rmtree(self.folder, ignore_errors=True)
        os.replace(tmp, self.folder)


def bench_kind(
    kind: str,
    data: FaceLikeData,
    queries: np.ndarray,
    identities: np.ndarray,
    truth: np.ndarray,
    exact: np.ndarray,
    limit_s: float,
    checkpoint: Checkpoint,
) -> dict:
    gc.collect()
    before = rss_bytes()
    index, state = checkpoint.load(kind)
    t, cpu = time.perf_counter(), time.process_time()
    if index is None:
        index = FaissIndex(DIM, kind, expected=data.n)
    if index.needs_training:
        sample = []
        for _, vectors in data.chunks():
            sample.append(vectors[:: max(1, data.n // 200_000)])
        index.train(np.vstack(sample))
        del sample
    for start, vectors in data.chunks():
        if start < state["added"]:
            continue
        index.add(vectors, _rows(start, len(vectors)))
        state["added"] = start + len(vectors)
        print(f"  {kind}: {state['added']}/{data.n} added", file=sys.stderr, end="\r")
        if state["added"] % checkpoint.every == 0 and state["added"] < data.n:
            now, now_cpu = time.perf_counter(), time.process_time()
            state["build_s"] += now - t
            state["cpu_s"] += now_cpu - cpu
            checkpoint.save(index, state)
            t, cpu = time.perf_counter(), time.process_time()
    build_s = state["build_s"] + time.perf_counter() - t
    cpu_s = state["cpu_s"] + time.process_time() - cpu
    gc.collect()
    resident = rss_bytes() - before

    def search(q: np.ndarray) -> np.ndarray:
        return rerank(q, index.search(q, index.candidates(K))[1], exact)

    timing, found = latencies(search, queries, limit_s)
    result = {
        "build_s": round(build_s, 1),
        "build_cpu_s": round(cpu_s, 1),
        "bytes_per_face": round(resident / data.n, 1),
        "index_bytes_per_face": round(index.memory_bytes() / data.n, 1),
        "resident_gib": round(resident / 2**30, 2),
        **timing,
        "recall_at_10": recall_at_10(found, truth[: len(found)]),
        "mate_recall_at_10": mate_recall_at_10(found, truth[: len(found)], identities[: len(found)]),
    }
    # The speed/recall trade-off behind each approximate kind's default setting.
    if kind == "hnsw":
        efs = (256, 512, 768, 1024) + ((1536, 2048) if data.n > 2_000_000 else ())
        result["ef_sweep"] = sweep(
            search, queries, truth, limit_s, efs, lambda ef: setattr(index, "ef_search", ef)
        )
        index.ef_search = None
    if kind == "pq":
        default = faiss_index.PQ_CANDIDATES
        result["candidates_sweep"] = sweep(
            search,
            queries,
            truth,
            limit_s,
            (100, 200, 400, 800),
            lambda c: setattr(faiss_index, "PQ_CANDIDATES", c),
        )
        faiss_index.PQ_CANDIDATES = default
    return result


def sweep(search, queries: np.ndarray, truth: np.ndarray, limit_s: float, values, apply) -> dict:  # type: ignore[no-untyped-def]
    """p50 and recall@10 on 300 queries for each value of a setting, set by `apply(value)`."""
    out = {}
    for value in values:
        apply(value)
        timing, found = latencies(search, queries[:300], limit_s / 4)
        out[value] = {"p50_ms": timing["p50_ms"], "recall_at_10": recall_at_10(found, truth[: len(found)])}
    return out


def bench_numpy(data: FaceLikeData, queries: np.ndarray, truth: np.ndarray, limit_s: float) -> dict:
    gc.collect()
    before = rss_bytes()
    t = time.perf_counter()
    matrix = np.empty((data.n, DIM), np.float32)
    for start, vectors in data.chunks():
        matrix[start : start + len(vectors)] = vectors
    build_s = time.perf_counter() - t
    resident = rss_bytes() - before

    def search(q: np.ndarray) -> np.ndarray:
        scores = q @ matrix.T
        top = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        return top + 1

    timing, found = latencies(search, queries, limit_s)
    scan_gbs = matrix.nbytes / (timing["p50_ms"] / 1000) / 1e9
    return {
        "build_s": round(build_s, 1),
        "bytes_per_face": round(resident / data.n, 1),
        **timing,
        "recall_at_10": recall_at_10(found, truth[: len(found)]),
        "scan_gb_per_s": round(scan_gbs, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, required=True)
    parser.add_argument(
        "--index",
        action="append",
        choices=["flat", "pq", "hnsw", "ivf"],
        help="index kinds to measure (repeatable; default: all four)",
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60, help="time limit per kind for timing queries")
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="save partly built indexes here every 1M faces and resume from them (for 10M builds)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    spread = measure_spread(args.datasets / "glint_dev12")
    data = FaceLikeData(args.faces, spread)
    queries, identities = data.queries(args.queries)
    t = time.perf_counter()
    truth, exact = exact_truth(data, queries, ROOT / "bench" / "results" / f"vectors-{args.faces}.npy")
    mates = np.mean([np.mean((t - 1) // PER_IDENTITY == p) for t, p in zip(truth, identities, strict=True)])
    result: dict = {
        "faces": args.faces,
        "machine": machine.describe(),
        "faiss_threads": __import__("faiss").omp_get_max_threads(),
        "spread_from_glint_dev12": spread,
        "ground_truth_s": round(time.perf_counter() - t, 1),
        "mates_in_exact_top10": round(float(mates), 4),
        "memory_bandwidth_gb_per_s": memory_bandwidth_gbs(os.cpu_count() or 1),
        "indexes": {},
    }
    for kind in args.index or ["flat", "pq", "hnsw", "ivf"]:
        result["indexes"][kind] = bench_kind(
            kind,
            data,
            queries,
            identities,
            truth,
            exact,
            args.seconds,
            Checkpoint(args.checkpoint, kind, args.faces),
        )
        print(f"{kind}: {result['indexes'][kind]}", file=sys.stderr)
    result["baseline_numpy"] = bench_numpy(data, queries, truth, args.seconds)
    base_qps = result["baseline_numpy"]["qps"]
    for row in result["indexes"].values():
        row["speedup_vs_numpy"] = round(row["qps"] / base_qps, 1)
    if "flat" in result["indexes"]:
        flat = result["indexes"]["flat"]
        result["flat_scan_gb_per_s"] = round(args.faces * DIM * 4 / (flat["p50_ms"] / 1000) / 1e9, 2)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{args.faces} faces on {result['machine']['cpu']} ({result['machine']['cores']} cores); "
        f"memory bandwidth {result['memory_bandwidth_gb_per_s']} GB/s; spread {spread}"
    )
    print(
        f"{'index':8} {'build s':>8} {'B/face':>8} {'p50 ms':>8} {'p99 ms':>8} {'b32 ms/q':>9} "
        f"{'qps':>9} {'recall@10':>9} {'vs numpy':>9}"
    )
    for kind, row in [*result["indexes"].items(), ("numpy", result["baseline_numpy"])]:
        print(
            f"{kind:8} {row['build_s']:>8} {row['bytes_per_face']:>8} {row['p50_ms']:>8} {row['p99_ms']:>8} "
            f"{row.get('batch32_ms_per_query', '-')!s:>9} {row['qps']:>9} {row['recall_at_10']:>9} "
            f"{row.get('speedup_vs_numpy', 1.0)!s:>9}"
        )


if __name__ == "__main__":
    main()
