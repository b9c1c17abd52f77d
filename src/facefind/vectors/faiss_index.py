"""A FAISS index over face embeddings: exact (flat), PQ fast scan, HNSW or IVF, with tombstone deletes.

Rows live at positions 0..n-1 of the FAISS index; `ids[pos]` is the face id (ascending, so a
face id is found by binary search). A delete clears `alive[pos]`; every search runs with a
bitmap of the allowed positions, applied inside FAISS (for "pq", to its candidates, see
`_search_pq`), so deleted or filtered-out faces are never returned and never take one of the k
places. Space is reclaimed by rebuilding (compaction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from .pq_scan import PQScan

KINDS = ("flat", "pq", "hnsw", "ivf")
# Chosen by measurement on face-like data (bench/index_bench.py, docs/benchmarks.md). HNSW over 8-bit
# scalar-quantised vectors keeps recall@10 within 0.003 of full-precision HNSW at a quarter of
# the vector memory. At 1M faces M=48/efConstruction=200 reach recall@10 0.989 (re-ranked) with
# efSearch 1024 in 9 ms, where M=32/efConstruction=100 reach 0.949; "pq" is faster there.
HNSW_M, HNSW_EF_CONSTRUCTION = 48, 200
IVF_NPROBE = 128
# "pq": every face as 64 4-bit codes (32 bytes, pq_scan.py), scanned in full, and as 8-bit
# scalar-quantised vectors (128 bytes) that re-score the best PQ_CANDIDATES. Face-like data is
# hard for graphs and lists (a face's top 10 holds strangers from anywhere), easy for a scan:
# at 1M faces recall@10 0.997 in ~2 ms, built in seconds (docs/benchmarks.md).
PQ_CANDIDATES = 400
# A filter that leaves fewer than this share of faces is served by scanning the 8-bit vectors
# with the filter inside FAISS, because over-fetching PQ candidates would need too many.
PQ_MIN_SHARE = 0.05
SELECTIONS_KEPT = 16  # filter masks cached per index (1 bit + 1 byte a face each)
# Approximate kinds rank by quantised vectors, which mixes up faces of nearly equal similarity;
# fetching twice k and re-ranking by exact cosine raised recall@10 at 1M faces from 0.975 to 0.982
# (efSearch 768); fetching 4k gained nothing more (bench/index_bench.py, docs/benchmarks.md).
RERANK_FACTOR = 2


def hnsw_ef_search(n: int) -> int:
    """Bigger graphs need a wider search for the same recall: 256 at 100k, 1024 at 1M (docs/benchmarks.md)."""
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
        index: faiss.Index | None = None,
        rows: Rows | None = None,
        scan: PQScan | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"index kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.dim, self.kind = dim, kind
        # For "pq", `index` holds the 8-bit vectors and `scan` the 4-bit codes searched first.
        self.index = index if index is not None else _new_index(dim, kind, expected)
        self.scan = (scan or PQScan(dim)) if kind == "pq" else None
        self.rows = rows or Rows()
        self.ef_search: int | None = None  # overrides hnsw_ef_search (benchmarks)
        # Mask, bitmap and count of the faces a search may return, per quality minimums and
        # collections (a few kept; exclusions are applied on top of them per search).
        self._selections: dict[tuple, tuple[np.ndarray, np.ndarray, int]] = {}

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
        return not self.index.is_trained or (self.scan is not None and not self.scan.is_trained)

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
        scan = self.scan.nbytes() if self.scan else 0
        return _faiss_bytes(self.index) + scan + per_row * len(self.rows.ids)

    def checksum(self) -> tuple[int, int, int]:
        return id_checksum(self.rows.ids[self.rows.alive])

    # changes ---------------------------------------------------------------------------------
    def train(self, sample: np.ndarray) -> None:
        sample = np.ascontiguousarray(sample, np.float32)
        if not self.index.is_trained:
            self.index.train(sample)
        if self.scan is not None and not self.scan.is_trained:
            self.scan.train(sample)

    def add(self, vectors: np.ndarray, rows: Rows) -> None:
        """Append faces; their ids must be larger than every id already here."""
        if len(rows.ids) == 0:
            return
        if rows.ids[0] <= self.max_id or np.any(np.diff(rows.ids) <= 0):
            raise ValueError("face ids must be added in increasing order")
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(-1, self.dim)
        self.index.add(vectors)
        if self.scan is not None:
            self.scan.add(vectors)
        self.rows.extend(rows)
        self._selections.clear()

    def remove(self, face_ids: np.ndarray) -> int:
        """Tombstone faces by id (unknown ids are ignored); returns how many were alive."""
        pos = self._positions(face_ids)
        removed = int(self.rows.alive[pos].sum())
        self.rows.alive[pos] = False
        self._selections.clear()
        return removed

    def _positions(self, face_ids: np.ndarray) -> np.ndarray:
        """Positions of the faces with these ids (unknown ids are left out): ids are sorted."""
        face_ids = np.asarray(face_ids, np.int64)
        pos = np.searchsorted(self.rows.ids, face_ids)
        pos = pos[pos < len(self.rows.ids)]
        return pos[np.isin(self.rows.ids[pos], face_ids)]

    # files -----------------------------------------------------------------------------------
    def write(self, folder: Path) -> None:
        """Write the FAISS structures into `folder` (the rows are the caller's to keep)."""
        faiss.write_index(self.index, str(folder / "index.faiss"))
        if self.scan is not None:
            self.scan.write(folder)

    @classmethod
    def read(cls, folder: Path, dim: int, kind: str, rows: Rows) -> FaissIndex:
        """The index written by `write`; ValueError if its parts disagree with each other or `rows`."""
        index = faiss.read_index(str(folder / "index.faiss"))
        scan = PQScan.read(folder, dim) if kind == "pq" else None
        if index.ntotal != len(rows.ids) or index.d != dim or (scan and scan.ntotal != index.ntotal):
            raise ValueError("the saved index is inconsistent")
        return cls(dim, kind, index=index, rows=rows, scan=scan)

    # search ----------------------------------------------------------------------------------
    def candidates(self, k: int) -> int:
        """How many faces to fetch so that re-ranking them by exact cosine gives the best k."""
        return k if self.kind == "flat" else RERANK_FACTOR * k

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
        mask, bitmap, allowed = self._selection(min_face_px, min_quality, collections, exclude)
        selector = faiss.IDSelectorBitmap(len(self.rows.ids), faiss.swig_ptr(bitmap))
        if self.kind == "pq":
            scores, pos = self._search_pq(queries, k, mask, allowed, selector)
        else:
            scores, pos = self.index.search(queries, k, params=self._params(selector))
        del bitmap  # only now may the bitmap the selector points into be freed
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
        return self._selection(min_face_px, min_quality, collections, exclude)[2]

    def _selection(
        self,
        min_face_px: float,
        min_quality: float,
        collections: list[int] | None,
        exclude: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """(mask, FAISS bitmap, count) of the allowed positions. The mask for the quality minimums
        and collections is kept until the index changes (recomputing it took 9.7 ms a search at 1M
        faces, bench/filter_bench.py); excluded faces are cleared from a copy."""
        key = (min_face_px, min_quality, None if collections is None else tuple(sorted(set(collections))))
        selection = self._selections.get(key)
        if selection is None:
            if len(self._selections) >= SELECTIONS_KEPT:
                self._selections.clear()
            mask = self.allowed(min_face_px, min_quality, collections)
            selection = self._selections[key] = (mask, _pack(mask), int(mask.sum()))
        if exclude is None or not len(exclude):
            return selection
        mask = selection[0].copy()
        mask[self._positions(exclude)] = False
        return mask, _pack(mask), int(mask.sum())

    def _search_pq(
        self, queries: np.ndarray, k: int, mask: np.ndarray, allowed: int, selector: faiss.IDSelector
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best PQ_CANDIDATES allowed faces by the 4-bit scan, re-scored by their 8-bit vectors.

        FAISS's fast scan takes no filter, so it over-fetches by the share of faces allowed and
        drops the others. Where that leaves too few (a narrow filter, or one that removes the
        faces nearest the query, as an opt-out does), the 8-bit vectors are scanned with the
        filter inside FAISS instead. Either way k allowed faces come back.
        """
        assert self.scan is not None
        vectors, n = self.index, len(mask)
        filtered_scan = faiss.SearchParameters(sel=selector)
        if allowed < PQ_MIN_SHARE * n:
            return vectors.search(queries, k, params=filtered_scan)
        codes = faiss.rev_swig_ptr(vectors.codes.data(), n * vectors.code_size).reshape(n, -1)
        # 8-bit code c of dimension j stands for vmin[j] + (c + 0.5) / 255 * vdiff[j] (FAISS QT_8bit);
        # decoded here in NumPy because FAISS's decode starts OpenMP threads, slower for 400 rows.
        vmin, vdiff = faiss.vector_to_array(vectors.sq.trained).reshape(2, -1)
        scale, offset = vdiff / 255, vmin + 0.5 * vdiff / 255
        fetch = min(n, math.ceil(PQ_CANDIDATES * n / allowed))
        found = self.scan.search(queries, fetch)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        pos = np.full((len(queries), k), -1, np.int64)
        for row, (query, candidates) in enumerate(zip(queries, found, strict=True)):
            candidates = candidates[candidates >= 0]
            candidates = candidates[mask[candidates]][:PQ_CANDIDATES]
            if len(candidates) < min(PQ_CANDIDATES // 2, allowed):
                top_scores, top_pos = vectors.search(query[None], k, params=filtered_scan)
                scores[row], pos[row] = top_scores[0], top_pos[0]
                continue
            similarity = codes[candidates].astype(np.float32) @ (scale * query) + offset @ query
            best = np.argsort(-similarity)[:k]
            scores[row, : len(best)], pos[row, : len(best)] = similarity[best], candidates[best]
        return scores, pos

    def _params(self, selector: faiss.IDSelector) -> faiss.SearchParameters:
        if self.kind == "hnsw":
            ef = self.ef_search or hnsw_ef_search(len(self.rows.ids))
            return faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
        if self.kind == "ivf":
            return faiss.SearchParametersIVF(sel=selector, nprobe=IVF_NPROBE)
        return faiss.SearchParameters(sel=selector)


def _new_index(dim: int, kind: str, expected: int) -> faiss.Index:
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "pq":
        return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
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
