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


# Constraints and anti-chaining -------------------------------------------------------------
# Chinese whispers follows edges, so a chain of look-alikes can pull several people into one label
# (on half of LFW, one label held 33 people around the man with 530 photos). The functions below
# are what every clustering run applies after it: same-photo cannot-links, and a per-group check
# that splits any group whose parts are linked by too few of their face pairs.

SPLIT_MAX = 3000  # average linkage within one group needs its pairwise distances (O(m^2) memory)


def cut_same_photo(graph: sp.csr_matrix, photos: np.ndarray) -> sp.csr_matrix:
    """The graph without edges between two faces of one photo (one person is never twice in a photo)."""
    coo = graph.tocoo()
    keep = photos[coo.row] != photos[coo.col]
    return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=graph.shape)


def link_density(queries: np.ndarray, members: np.ndarray, threshold: float) -> np.ndarray:
    """Per query face, the share of `members` it links to (similarity >= threshold)."""
    if not len(members):
        return np.zeros(len(queries))
    return np.asarray((queries @ members.T >= threshold).mean(1), np.float64)


def split_incoherent(
    embeddings: np.ndarray, labels: np.ndarray, fixed: np.ndarray, threshold: float, min_density: float
) -> np.ndarray:
    """Split every group whose parts are not linked to each other: average linkage over the link
    matrix (1 where two faces' similarity reaches `threshold`) joins two parts only while at least
    `min_density` of their face pairs link. Two people joined by a chain of look-alikes are linked
    through a handful of pairs out of thousands, one person's faces through many; a stranger
    attached by one link to a person of 500 faces has a density of 1/500. Fixed faces (`fixed` >= 0)
    keep their label, as do the parts holding them (else the largest part keeps it); other parts
    get fresh labels. Above `SPLIT_MAX` faces, faces linked to less than `min_density` of their
    group leave it one by one."""
    from scipy.cluster.hierarchy import fcluster, linkage

    labels = np.asarray(labels, np.int64).copy()
    order = np.argsort(labels, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0])
    bounds = np.r_[starts, len(order)]
    next_label = int(labels.max(initial=-1)) + 1
    x = np.asarray(embeddings, np.float32)
    for b in range(len(starts)):
        members = order[bounds[b] : bounds[b + 1]]
        if len(members) < 3 or (fixed[members] >= 0).all():
            continue  # two faces in one group are linked (or joined through a fixed label)
        sub = x[members]
        if len(members) > SPLIT_MAX:
            chunks = [link_density(sub[i : i + 1000], sub, threshold) for i in range(0, len(sub), 1000)]
            parts = np.where(np.concatenate(chunks) >= min_density, 0, 1 + np.arange(len(members)))
        else:
            unlinked = (sub @ sub.T < threshold).astype(np.float64)
            np.fill_diagonal(unlinked, 0.0)
            tree = linkage(unlinked[np.triu_indices(len(members), 1)], "average")
            parts = fcluster(tree, 1.0 - min_density, "distance")
        if len(np.unique(parts)) == 1:
            continue
        holding = set(parts[fixed[members] >= 0].tolist()) or {int(np.bincount(parts).argmax())}
        for part in np.unique(parts).tolist():
            if part not in holding:
                labels[members[parts == part]] = next_label
                next_label += 1
        # Fixed faces keep their label even if average linkage put them apart from each other.
        labels[members[fixed[members] >= 0]] = fixed[members[fixed[members] >= 0]]
    return labels


def separate_same_photo(
    embeddings: np.ndarray, labels: np.ndarray, photos: np.ndarray, fixed: np.ndarray
) -> np.ndarray:
    """No group keeps two faces of one photo: the fixed one, else the one most similar to the rest
    of the group, stays; the others get labels of their own."""
    labels = np.asarray(labels, np.int64).copy()
    key = np.where(
        labels >= 0, labels * (int(photos.max(initial=0)) + 1) + photos, -1 - np.arange(len(labels))
    )
    uniq, counts = np.unique(key, return_counts=True)
    clashes = uniq[counts > 1]
    if not len(clashes):
        return labels
    next_label = int(labels.max(initial=-1)) + 1
    x = np.asarray(embeddings, np.float32)
    for k in clashes.tolist():
        faces_ = np.flatnonzero(key == k)
        group = np.flatnonzero(labels == labels[faces_[0]])
        centre = x[group].sum(0)
        score = x[faces_] @ centre + np.where(fixed[faces_] >= 0, 1e6, 0.0)
        for face in faces_[np.argsort(-score)][1:]:
            if fixed[face] >= 0:
                continue  # a user put both faces here: their decision
            labels[face] = next_label
            next_label += 1
    return labels
