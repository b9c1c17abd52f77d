"""Search latency: at the catalog size ../shared/datasets gives, and at 100k synthetic faces.

    python bench/search_bench.py [--queries 200] [--synthetic 1000000 [--reindex]] [--json]

Reports p50/p99 of (a) the vector search alone and (b) `FaceFind.search(photo)` end to end
(decode, detect, embed the query, search, fetch rows), plus the time to load the index from the
catalog. Synthetic embeddings are random unit vectors: exact search cost does not depend on
their distribution.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
import facefind
import machine
from facefind.catalog import schema as cat
from facefind.vectors import FaissIndex

ROOT = Path(__file__).resolve().parents[1]


def percentiles(samples: list[float]) -> dict:
    ms = np.asarray(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def time_vector_search(index: FaissIndex, queries: np.ndarray, batch: int = 1) -> dict:
    samples = []
    for i in range(0, len(queries), batch):
        t = time.perf_counter()
        index.search(queries[i : i + batch], 10)
        samples.append(time.perf_counter() - t)
    return percentiles(samples)


def add_synthetic_faces(ff: facefind.FaceFind, n: int, rng: np.random.Generator) -> None:
    """Insert n random unit embeddings as faces of n/4 fake images, straight into the catalog."""
    collection = ff.catalog.collection_id("synthetic")
    now = cat.now()
    with ff.catalog.transaction() as conn:
        images = [
            dict(
                collection_id=collection,
                path=f"/synthetic/{i}.jpg",
                sha256=None,
                size=0,
                mtime_ns=0,
                status="indexed",
                indexed_at=now,
            )
            for i in range(n // 4)
        ]
        conn.execute(sa.insert(cat.images), images)
        first = conn.execute(
            sa.select(sa.func.min(cat.images.c.id)).where(cat.images.c.collection_id == collection)
        ).scalar_one()
        vectors = rng.standard_normal((n, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        conn.execute(
            sa.insert(cat.faces),
            [
                dict(
                    image_id=first + i // 4,
                    face_index=i % 4,
                    x=0,
                    y=0,
                    w=100,
                    h=100,
                    landmarks="[]",
                    det_score=0.9,
                    size_px=100,
                    sharpness=100,
                    yaw=0,
                    quality=0.9,
                    model_id=ff.backend.model_id,
                    embedding=vectors[i].tobytes(),
                )
                for i in range(n)
            ],
        )


def measure(ff: facefind.FaceFind, photos: list[Path], n_queries: int, rng: np.random.Generator) -> dict:
    t = time.perf_counter()
    index = ff.vector_index()  # catches up with the catalog (the synthetic faces)
    load_s = time.perf_counter() - t
    queries = rng.standard_normal((n_queries, 128)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    end_to_end, beyond_analysis = [], []
    for photo in photos:
        t = time.perf_counter()
        ff.faces(photo)  # the query's own decode, detect and embed: what a search adds comes after
        analysed = time.perf_counter()
        ff.search(photo)
        done = time.perf_counter()
        end_to_end.append(done - analysed)
        beyond_analysis.append((done - analysed) - (analysed - t))
    return {
        "faces": len(index),
        "index_load_s": round(load_s, 3),
        "vector_search_single": time_vector_search(index, queries),
        "vector_search_batch32_per_query": {
            k: round(v / 32, 4) for k, v in time_vector_search(index, queries, 32).items()
        },
        "search_photo_end_to_end": percentiles(end_to_end),
        # search minus analysing the query photo: vector search, FPIR decision, rows, audit entry
        "search_beyond_query_analysis": percentiles(beyond_analysis),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--synthetic", type=int, default=100_000)
    parser.add_argument("--reindex", action="store_true", help="rebuild the index after adding faces")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    glint = sorted((args.datasets / "glint_dev12").rglob("*.png"))
    photos = [glint[i] for i in rng.choice(len(glint), 50, replace=False)]
    result: dict = {"machine": machine.describe()}
    with (
        tempfile.TemporaryDirectory() as tmp,
        facefind.open(Path(tmp) / "bench.db", purpose="benchmark") as ff,
    ):
        ff.create_collection("default", owner="benchmark", basis="own", retention="30d")
        ff.index(args.datasets, workers=2)
        ff.search(photos[0])  # warm up: model load
        result["datasets"] = measure(ff, photos, args.queries, rng)
        add_synthetic_faces(ff, args.synthetic, rng)
        if args.reindex:
            ff.reindex()  # the kind `auto` picks at this size (pq above 100k faces)
        result["synthetic"] = measure(ff, photos, args.queries, rng)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"machine: {result['machine']}")
    for name in ("datasets", "synthetic"):
        r = result[name]
        print(
            f"{name}: {r['faces']} faces, index load {r['index_load_s']}s, "
            f"vector search {r['vector_search_single']}, batch of 32 per query "
            f"{r['vector_search_batch32_per_query']}, search(photo) {r['search_photo_end_to_end']}, "
            f"beyond analysing the query {r['search_beyond_query_analysis']}"
        )


if __name__ == "__main__":
    main()
