"""Grouping face embeddings into persons: Chinese whispers over a thresholded neighbour graph.

Chosen by measurement over Immich's DBSCAN-style rule, exact average-linkage agglomerative
clustering and HDBSCAN (bench/people_bench.py, README "People"). Embeddings are L2-normalised,
so similarity is the inner product. Neighbour graphs come from FAISS: exact below `EXACT_MAX`
faces, HNSW above, so 100k faces take seconds.
"""

from __future__ import annotations

import faiss
import numpy as np
import scipy.sparse as sp

EXACT_MAX = 20_000


def knn_graph(embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, neighbours), each (n, k), best first, excluding each face itself; -1 = none."""
    x = np.ascontiguousarray(embeddings, np.float32)
    n = len(x)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    if n <= EXACT_MAX:
        index: faiss.Index = faiss.IndexFlatIP(x.shape[1])
    else:
        index = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = max(64, 2 * k)
    index.add(x)
    sims, nbrs = index.search(x, k + 1)
    own = nbrs == np.arange(n)[:, None]
    # Drop each face's own entry (or, for exact duplicates ranked above it, the last column).
    drop = np.where(own.any(1), own.argmax(1), k)
    keep = np.ones_like(own)
    keep[np.arange(n), drop] = False
    return sims[keep].reshape(n, k), nbrs[keep].reshape(n, k)


def _graph(embeddings: np.ndarray, threshold: float, k: int) -> sp.csr_matrix:
    """Symmetric sparse graph of face pairs with similarity >= threshold among k nearest."""
    n = len(embeddings)
    sims, nbrs = knn_graph(embeddings, k)
    rows = np.repeat(np.arange(n), sims.shape[1])
    ok = (nbrs.ravel() >= 0) & (sims.ravel() >= threshold)
    g = sp.coo_matrix((sims.ravel()[ok], (rows[ok], nbrs.ravel()[ok])), shape=(n, n)).tocsr()
    return g.maximum(g.T).tocsr()


def chinese_whispers(
    graph: sp.csr_matrix,
    fixed: np.ndarray | None = None,
    iterations: int = 30,
    seed: int = 0,
) -> np.ndarray:
    """Each face repeatedly takes the label with the largest summed edge weight among its neighbours.

    `fixed` (>= 0) labels are clamped: those faces keep them and spread them, which is how user
    decisions survive re-clustering. Free faces start with labels of their own (above every fixed
    label). Half of the free faces, drawn at random, update per round: that converges like the
    original one-at-a-time rule but runs as sparse matrix products, fast enough for 100k faces.
    """
    n = graph.shape[0]
    fixed = np.full(n, -1, np.int64) if fixed is None else np.asarray(fixed, np.int64)
    free = np.flatnonzero(fixed < 0)
    labels = fixed.copy()
    labels[free] = fixed.max(initial=-1) + 1 + np.arange(len(free))
    free = free[np.diff(graph.indptr)[free] > 0]  # faces without neighbours keep their own label
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        movers = free[rng.random(len(free)) < 0.5]
        if not len(movers):
            continue
        _, compact = np.unique(labels, return_inverse=True)
        onehot = sp.csr_matrix((np.ones(n), (np.arange(n), compact)), shape=(n, compact.max() + 1))
        votes = (graph[movers] @ onehot).tocsr()
        best = np.asarray(votes.argmax(axis=1)).ravel()
        new = np.empty(compact.max() + 1, np.int64)
        new[compact] = labels
        labels[movers] = new[best]
    return labels


def threshold_graph(embeddings: np.ndarray, threshold: float, k: int = 60) -> sp.csr_matrix:
    """Symmetric sparse graph of face pairs with similarity >= threshold among k nearest."""
    return _graph(embeddings, threshold, k)
