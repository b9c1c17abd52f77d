"""A full scan of every face's 4-bit product-quantisation codes with FAISS's SIMD fast scan.

Used by the "pq" index kind to pick candidates, which are then re-scored by better vectors.
The codes are kept in parts of PART_SIZE faces (part j holds positions j * PART_SIZE onwards),
so a query scans the parts on all cores at once, and adding faces only touches the last part.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import faiss
import numpy as np

SUBQUANTIZERS = 64  # 2 dimensions per 4-bit code: 32 bytes a face
PART_SIZE = 2**19


class PQScan:
    def __init__(self, dim: int, quantizer: faiss.IndexPQ | None = None) -> None:
        self.dim = dim
        # Trained codebooks, shared by every part (an IndexPQ that holds no faces itself).
        self.quantizer = quantizer or faiss.IndexPQ(dim, SUBQUANTIZERS, 4, faiss.METRIC_INNER_PRODUCT)
        self.parts: list[faiss.IndexPQFastScan] = []

    @property
    def is_trained(self) -> bool:
        return bool(self.quantizer.is_trained)

    @property
    def ntotal(self) -> int:
        return sum(part.ntotal for part in self.parts)

    def nbytes(self) -> int:
        return sum(part.codes.size() for part in self.parts)

    def train(self, sample: np.ndarray) -> None:
        self.quantizer.train(sample)

    def add(self, vectors: np.ndarray) -> None:
        while len(vectors):
            if not self.parts or self.parts[-1].ntotal >= PART_SIZE:
                self.parts.append(faiss.IndexPQFastScan(self.quantizer))
            part = self.parts[-1]
            take = PART_SIZE - part.ntotal
            part.add(vectors[:take])
            vectors = vectors[take:]

    def search(self, queries: np.ndarray, fetch: int) -> np.ndarray:
        """Positions of each query's best `fetch` faces by PQ score, best first (-1 pads)."""

        def scan(j: int) -> tuple[np.ndarray, np.ndarray]:
            scores, local = self.parts[j].search(queries, min(fetch, self.parts[j].ntotal))
            return scores, np.where(local >= 0, local + j * PART_SIZE, -1)

        if len(self.parts) == 1:  # FAISS spreads a batch of queries over the cores itself
            return scan(0)[1]
        found = list(_threads().map(scan, range(len(self.parts))))
        scores, positions = np.hstack([s for s, _ in found]), np.hstack([p for _, p in found])
        scores[positions < 0] = -np.inf
        best = np.argsort(-scores, axis=1, kind="stable")[:, :fetch]
        return np.take_along_axis(positions, best, 1)

    def write(self, folder: Path) -> None:
        faiss.write_index(self.quantizer, str(folder / "pq.faiss"))
        for j, part in enumerate(self.parts):
            faiss.write_index(part, str(folder / f"pq-{j}.faiss"))

    @classmethod
    def read(cls, folder: Path, dim: int) -> PQScan:
        scan = cls(dim, faiss.read_index(str(folder / "pq.faiss")))
        j = 0
        while (folder / f"pq-{j}.faiss").exists():
            scan.parts.append(faiss.read_index(str(folder / f"pq-{j}.faiss")))
            j += 1
        if any(part.ntotal != PART_SIZE for part in scan.parts[:-1]):
            raise ValueError("a saved PQ part is not full")
        return scan


@cache
def _threads() -> ThreadPoolExecutor:
    # One OpenMP thread inside each worker: the workers already use every core, and nested
    # OpenMP teams oversubscribe them (measured: 2-3x slower and erratic).
    return ThreadPoolExecutor(
        max_workers=os.cpu_count() or 1,
        thread_name_prefix="facefind-pq",
        initializer=faiss.omp_set_num_threads,
        initargs=(1,),
    )
