"""How long a vector index takes to rebuild from the catalog (after an erasure, a compaction, a kind
switch, or a missing or stale saved index).

    python bench/rebuild_bench.py [--faces 1000000] [--runs 3] [--folder /tmp/facefind-rebuild]

An SQLite catalog of `--faces` random unit embeddings (4 faces a photo) is made once in `--folder`
and kept for later runs; each run rebuilds the index the catalog's size calls for (PQ above 100k)
in a fresh VectorStore, as a worker does. Prints each run's seconds and the median.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time
from pathlib import Path

import numpy as np

from facefind.catalog import Catalog
from facefind.faces.opencv import MODEL_ID
from facefind.vectors import VectorStore

FACES_PER_PHOTO = 4


def make_catalog(db: Path, n: int) -> None:
    Catalog(db).close()  # the schema
    con = sqlite3.connect(db)
    con.execute("INSERT INTO collections (id, name, created_at) VALUES (1, 'bench', 'x')")
    con.executemany(
        "INSERT INTO images (id, collection_id, path, size, mtime_ns, status, indexed_at) "
        "VALUES (?, 1, ?, 1, 1, 'indexed', 'x')",
        ((i, f"/photos/{i}.jpg") for i in range(1, n // FACES_PER_PHOTO + 2)),
    )
    rng = np.random.default_rng(0)
    for start in range(0, n, 100_000):
        count = min(100_000, n - start)
        vectors = rng.standard_normal((count, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        con.executemany(
            "INSERT INTO faces (image_id, face_index, x, y, w, h, landmarks, det_score, size_px, sharpness, "
            "yaw, quality, model_id, embedding) VALUES (?, ?, 0, 0, 1, 1, '[]', 1, 100, 1, 0, 0.9, ?, ?)",
            (
                (
                    1 + (start + j) // FACES_PER_PHOTO,
                    (start + j) % FACES_PER_PHOTO,
                    MODEL_ID,
                    vectors[j].tobytes(),
                )
                for j in range(count)
            ),
        )
    con.commit()
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/facefind-rebuild"))
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    db = args.folder / f"catalog-{args.faces}.db"
    if not db.exists():
        make_catalog(db, args.faces)
    catalog = Catalog(db)
    seconds = []
    for _ in range(args.runs):
        store = VectorStore(catalog, MODEL_ID, 128, None)
        t = time.perf_counter()
        index = store.rebuild()
        seconds.append(round(time.perf_counter() - t, 1))
    catalog.close()
    print(
        f"{args.faces:,} faces, {index.kind} index, recall@10 estimate {store.recall_estimate}: "
        f"rebuild {statistics.median(seconds)} s (runs {seconds})"
    )


if __name__ == "__main__":
    main()
