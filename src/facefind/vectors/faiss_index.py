"""A FAISS index over face embeddings: exact (flat), HNSW-SQ8 or IVF-SQ8, with tombstone deletes.

Rows live at positions 0..n-1 of the FAISS index; `ids[pos]` is the face id (ascending, so a
face id is found by binary search). A delete clears `alive[pos]`; every search runs with a
bitmap selector of the allowed positions *inside* FAISS, so deleted or filtered-out faces are
never returned and never take one of the k places. Space is reclaimed by rebuilding (compaction).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import faiss
import numpy as np

KINDS = ("flat", "hnsw", "ivf")
# Chosen by measurement on face-like data (bench/index_bench.py, README). HNSW over 8-bit
# scalar-quantised vectors keeps recall@10 within 0.003 of full-precision HNSW at a quarter of
# the vector memory. At 1M faces M=48/efConstruction=200 reach recall@10 0.984 with efSearch
# 1024 (6.4 ms), where M=32/efConstruction=100 reach 0.949.
HNSW_M, HNSW_EF_CONSTRUCTION = 48, 200
IVF_NPROBE = 128
# Above this many faces an HNSW index is split into 2 graphs (position p in graph p % 2) searched
# at once, one per core: a single query's HNSW search uses one core only (README, measured).
SHARD_MIN = 300_000


def shard_count(kind: str, n: int) -> int:
    return 2 if kind == "hnsw" and n > SHARD_MIN else 1


def hnsw_ef_search(n: int) -> int:
    """Bigger graphs need a wider search for the same recall: 256 at 100k, 1024 at 1M (README)."""
    return 256 if n <= 300_000 else 1024


def nlist_for(n: int) -> int:
    """IVF list count: about 4 * sqrt(n), at least 64."""
    return max(64, int(4 * math.sqrt(max(n, 1))))


@dataclass
class Rows:
    """Per-position metadata kept beside the FAISS index (one entry per added face)."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    collections: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    size_px: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    quality: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    alive: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def extend(self, other: Rows) -> None:
        for name in ("ids", "collections", "size_px", "quality", "alive"):
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))


class FaissIndex:
    def __init__(
        self,
        dim: int,
        kind: str = "flat",
        expected: int = 0,
        index: faiss.Index | list[faiss.Index] | None = None,
        rows: Rows | None = None,
        shards: int | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"index kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.dim, self.kind = dim, kind
        if index is None:
            count = shards or shard_count(kind, expected)
            self.parts = [_new_index(dim, kind, expected // count) for _ in range(count)]
        else:
            self.parts = index if isinstance(index, list) else [index]
        self.rows = rows or Rows()
        self.ef_search: int | None = None  # overrides hnsw_ef_search (benchmarks)
        # Bitmaps (one per part) and count of the faces an unfiltered search may return.
        self._default_selection: tuple[tuple[float, float], list[np.ndarray], int] | None = None

    # size ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.rows.alive.sum())

    @property
    def dead(self) -> int:
        return len(self.rows.ids) - len(self)

    @property
    def max_id(self) -> int:
        return int(self.rows.ids[-1]) if len(self.rows.ids) else 0

    @property
    def needs_training(self) -> bool:
        return not self.parts[0].is_trained

    def memory_bytes(self) -> int:
        """Bytes held by the FAISS structure plus the per-position metadata."""
        per_row = sum(
            a.itemsize
            for a in (
                self.rows.ids,
                self.rows.collections,
                self.rows.size_px,
                self.rows.quality,
                self.rows.alive,
            )
        )
        return sum(_faiss_bytes(part) for part in self.parts) + per_row * len(self.rows.ids)

    def checksum(self) -> tuple[int, int, int]:
        return id_checksum(self.rows.ids[self.rows.alive])

    # changes ---------------------------------------------------------------------------------
    def train(self, sample: np.ndarray) -> None:
        for part in self.parts:
            if not part.is_trained:
                part.train(np.ascontiguousarray(sample, np.float32))

    def add(self, vectors: np.ndarray, rows: Rows) -> None:
        """Append faces; their ids must be larger than every id already here."""
        if len(rows.ids) == 0:
            return
        if rows.ids[0] <= self.max_id or np.any(np.diff(rows.ids) <= 0):
            raise ValueError("face ids must be added in increasing order")
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(-1, self.dim)
        positions = len(self.rows.ids) + np.arange(len(vectors))
        shards = len(self.parts)
        for s, part in enumerate(self.parts):
            part.add(vectors if shards == 1 else np.ascontiguousarray(vectors[positions % shards == s]))
        self.rows.extend(rows)
        self._default_selection = None

    def remove(self, face_ids: np.ndarray) -> int:
        """Tombstone faces by id (unknown ids are ignored); returns how many were alive."""
        face_ids = np.asarray(face_ids, np.int64)
        pos = np.searchsorted(self.rows.ids, face_ids)
        pos = pos[(pos < len(self.rows.ids))]
        pos = pos[np.isin(self.rows.ids[pos], face_ids)]
        removed = int(self.rows.alive[pos].sum())
        self.rows.alive[pos] = False
        self._default_selection = None
        return removed

    # search ----------------------------------------------------------------------------------
    def allowed(
        self,
        min_face_px: float = 0,
        min_quality: float = 0,
        collections: list[int] | None = None,
        exclude: np.ndarray | None = None,
    ) -> np.ndarray:
        """Boolean mask over positions of the faces a search may return."""
        mask = self.rows.alive.copy()
        if min_face_px or min_quality:
            mask &= (self.rows.size_px >= min_face_px) & (self.rows.quality >= min_quality)
        if collections is not None:
            mask &= np.isin(self.rows.collections, np.asarray(collections, np.int32))
        if exclude is not None and len(exclude):
            mask &= ~np.isin(self.rows.ids, np.asarray(exclude, np.int64))
        return mask

    def search(
        self,
        queries: np.ndarray,
        k: int,
        min_face_px: float = 0,
        min_quality: float = 0,
        collections: list[int] | None = None,
        exclude: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, face ids), each (n_queries, k), best first; empty slots have id -1."""
        queries = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        n = len(queries)
        if k <= 0 or not len(self.rows.ids):
            return np.full((n, max(k, 0)), -np.inf, np.float32), np.full((n, max(k, 0)), -1, np.int64)
        if collections is None and (exclude is None or not len(exclude)):
            bitmaps = self._cached_bitmaps(min_face_px, min_quality)
        else:
            bitmaps = self._pack(self.allowed(min_face_px, min_quality, collections, exclude))
        if len(self.parts) == 1:
            scores, pos = self._search_part(0, queries, k, bitmaps[0])
        else:
            found = list(
                _pool().map(lambda s: self._search_part(s, queries, k, bitmaps[s]), range(len(self.parts)))
            )
            all_scores = np.hstack([f[0] for f in found])
            all_pos = np.hstack([f[1] for f in found])
            best = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
            scores, pos = np.take_along_axis(all_scores, best, 1), np.take_along_axis(all_pos, best, 1)
        ids = np.where(pos >= 0, self.rows.ids[np.clip(pos, 0, None)], -1)
        scores = np.where(pos >= 0, scores, -np.inf).astype(np.float32)
        return scores, ids

    def count_allowed(
        self,
        min_face_px: float = 0,
        min_quality: float = 0,
        collections: list[int] | None = None,
        exclude: np.ndarray | None = None,
    ) -> int:
        """How many faces a search with these filters considers (cached when unfiltered)."""
        if collections is None and (exclude is None or not len(exclude)):
            self._cached_bitmaps(min_face_px, min_quality)
            assert self._default_selection is not None
            return self._default_selection[2]
        return int(self.allowed(min_face_px, min_quality, collections, exclude).sum())

    def _search_part(
        self, s: int, queries: np.ndarray, k: int, bitmap: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search part `s` (positions s, s + shards, ...); returns global positions."""
        part, shards = self.parts[s], len(self.parts)
        selector = faiss.IDSelectorBitmap(part.ntotal, faiss.swig_ptr(bitmap))
        scores, local = part.search(queries, k, params=self._params(selector, part.ntotal))
        del selector  # the bitmap it points into stays referenced by the caller until here
        pos = np.where(local >= 0, local * shards + s, -1)
        return np.where(local >= 0, scores, -np.inf).astype(np.float32), pos

    def _pack(self, mask: np.ndarray) -> list[np.ndarray]:
        shards = len(self.parts)
        return [_pack(mask[s::shards]) for s in range(shards)]

    def _cached_bitmaps(self, min_face_px: float, min_quality: float) -> list[np.ndarray]:
        key = (min_face_px, min_quality)
        if self._default_selection is None or self._default_selection[0] != key:
            mask = self.allowed(min_face_px, min_quality)
            self._default_selection = (key, self._pack(mask), int(mask.sum()))
        return self._default_selection[1]

    def _params(self, selector: faiss.IDSelector, n: int) -> faiss.SearchParameters:
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=self.ef_search or hnsw_ef_search(n))
        if self.kind == "ivf":
            return faiss.SearchParametersIVF(sel=selector, nprobe=IVF_NPROBE)
        return faiss.SearchParameters(sel=selector)


def _new_index(dim: int, kind: str, expected: int) -> faiss.Index:
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return index
    # IVF with 8-bit scalar quantisation: the least memory (136 bytes a face), but on face-like
    # data an identity's faces scatter over many lists, so recall saturates near 0.8 (measured);
    # auto selection only uses it beyond what HNSW fits in memory. An HNSW coarse quantiser keeps
    # assigning millions of faces to lists fast.
    nlist = nlist_for(expected)
    quantizer = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    return faiss.IndexIVFScalarQuantizer(
        quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """Threads for searching the parts of a split index at once (FAISS releases the GIL)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(2, thread_name_prefix="facefind-search")
    return _POOL


def _pack(mask: np.ndarray) -> np.ndarray:
    return np.packbits(mask, bitorder="little")


def _faiss_bytes(index: faiss.Index) -> int:
    n, d = index.ntotal, index.d
    if isinstance(index, faiss.IndexFlat):
        return n * d * 4
    if isinstance(index, faiss.IndexHNSW):
        hnsw = index.hnsw
        links = hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
        return _faiss_bytes(faiss.downcast_index(index.storage)) + links
    if isinstance(index, faiss.IndexScalarQuantizer):
        return n * index.code_size
    if isinstance(index, faiss.IndexIVF):
        ivf = faiss.extract_index_ivf(index)
        return n * (ivf.code_size + 8) + ivf.nlist * d * 4 * 2
    return n * d * 4


def id_checksum(ids: np.ndarray) -> tuple[int, int, int]:
    """(count, sum, sum of a multiplicative hash) of face ids; the catalog computes the same in SQL."""
    ids = np.asarray(ids, np.int64)
    hashed = (ids * 2654435761) % 4294967311
    return len(ids), int(ids.sum()), int(hashed.sum())
