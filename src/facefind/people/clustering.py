"""Grouping face embeddings into persons: Chinese whispers over a thresholded neighbour graph.

Chosen by measurement over Immich's DBSCAN-style rule, exact average-linkage agglomerative
clustering and HDBSCAN (bench/people_bench.py, docs/benchmarks.md "People"). Embeddings are L2-normalised,
so similarity is the inner product. Neighbour graphs come from FAISS: exact below `EXACT_MAX`
faces, HNSW above, so 100k faces take seconds.
"""

from __future__ import annotations

import faiss
import numpy as np
import scipy.sparse as sp

EXACT_MAX = 200_000  # exact k-NN (BLAS) beats building an HNSW graph up to here (measured)


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
    label). Each round, half of the faces that would change (drawn at random) do: that converges like the
    original one-at-a-time rule but runs as array operations, fast enough for 100k faces.
    """
    n = graph.shape[0]
    fixed = np.full(n, -1, np.int64) if fixed is None else np.asarray(fixed, np.int64)
    free = np.flatnonzero(fixed < 0)
    labels = fixed.copy()
    labels[free] = fixed.max(initial=-1) + 1 + np.arange(len(free))
    free = free[np.diff(graph.indptr)[free] > 0]  # faces without neighbours keep their own label
    rng = np.random.default_rng(seed)
    coo = graph.tocoo()
    for _ in range(iterations):
        best = _heaviest_label(coo.row, labels[coo.col], coo.data, free, n)
        wanting = free[(best[free] >= 0) & (best[free] != labels[free])]
        if not len(wanting):
            break  # settled: no face would change its label
        movers = wanting[rng.random(len(wanting)) < 0.5]
        labels[movers] = best[movers]
    return labels


def _heaviest_label(
    rows: np.ndarray, edge_labels: np.ndarray, weights: np.ndarray, movers: np.ndarray, n: int
) -> np.ndarray:
    """Per face among `movers`, the label with the largest summed edge weight (-1: no edges)."""
    moving = np.zeros(n, bool)
    moving[movers] = True
    keep = moving[rows]
    rows, edge_labels, weights = rows[keep], edge_labels[keep], weights[keep]
    best = np.full(n, -1, np.int64)
    if not len(rows):
        return best
    # Sum weights per (face, label), then take each face's heaviest label.
    span = int(edge_labels.max()) + 1
    keys, inverse = np.unique(rows.astype(np.int64) * span + edge_labels, return_inverse=True)
    totals = np.bincount(inverse, weights=weights)
    face, label = keys // span, keys % span
    order = np.lexsort((-totals, face))
    first = np.ones(len(order), bool)
    first[1:] = face[order][1:] != face[order][:-1]
    best[face[order][first]] = label[order][first]
    return best


def threshold_graph(embeddings: np.ndarray, threshold: float, k: int = 60) -> sp.csr_matrix:
    """Symmetric sparse graph of face pairs with similarity >= threshold among k nearest."""
    return _graph(embeddings, threshold, k)
