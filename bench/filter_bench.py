"""What a filtered search pays for its filter: recomputing the allowed-faces bitmap per search (as
facefind did before 2026-12-03) vs the bitmap kept per collection set with exclusions cleared from
a copy (faiss_index.FaissIndex._selection).

    python bench/filter_bench.py [--faces 1000000] [--excluded 50] [--queries 200]

Random unit vectors in a "pq" index (as `auto` picks above 100k faces), 10% of them in collection
2, every search filtered to collection 1 with `--excluded` faces excluded (opt-outs, withheld
consent). Prints the median per search in ms.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from facefind.vectors.faiss_index import FaissIndex, Rows, _pack


def median_ms(f: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    times = []
    for q in queries:
        t = time.perf_counter()
        f(q)
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--excluded", type=int, default=50)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    n, rng = args.faces, np.random.default_rng(0)
    vectors = rng.standard_normal((n, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = FaissIndex(128, "pq", expected=n)
    index.train(vectors[:50_000])
    collections = (rng.random(n) < 0.1).astype(np.int32) + 1
    size_px, quality = np.full(n, 100, np.float32), np.full(n, 0.9, np.float32)
    index.add(vectors, Rows(np.arange(1, n + 1), collections, size_px, quality, np.ones(n, bool)))
    exclude = rng.choice(n, args.excluded, replace=False) + 1
    queries = vectors[: args.queries] + 0.01

    def recomputed(_: np.ndarray) -> object:
        mask = index.allowed(32, 0.25, [1], exclude)
        return mask, _pack(mask), int(mask.sum())

    def kept(_: np.ndarray) -> object:
        return index._selection(32, 0.25, [1], exclude)

    def search(query: np.ndarray) -> object:
        return index.search(query[None], 20, 32, 0.25, [1], exclude)

    print(f"{n:,} faces, {args.excluded} excluded, median of {args.queries} searches:")
    print(f"  bitmap recomputed per search: {median_ms(recomputed, queries)} ms")
    print(f"  bitmap kept, exclusions on a copy: {median_ms(kept, queries)} ms")
    print(f"  whole filtered search (top 20): {median_ms(search, queries)} ms")


if __name__ == "__main__":
    main()
