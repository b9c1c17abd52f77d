"""Opt-out by photo: "leave me out". Only the face template is kept, never the photo.

An opt-out suppresses every stored face whose similarity to the template reaches a strict
threshold (FMR 1e-5 by default), and every face of a person (people view) that several of those
faces belong to: one photo is rarely enough to catch all of someone's photos at a strict threshold,
and the person's other faces were grouped with them by clustering. Suppressed faces never appear in search
results or the people view; new photos are checked at indexing and matching faces are not stored.
`erase optout-matches ID` deletes the suppressed faces for good.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from ..catalog import Catalog
from ..catalog import optouts as store
from ..errors import NotFound

DEFAULT_MAX_FMR = 1e-5
MIN_PERSON_HITS, MIN_PERSON_SHARE = 2, 0.05


class OptOut(BaseModel):
    id: int
    note: str | None
    threshold: float
    created_at: str
    created_by: str
    faces_suppressed: int


class Templates:
    """The opt-out templates of one model, to check faces against while indexing."""

    def __init__(self, catalog: Catalog, model_id: str) -> None:
        found = store.templates(catalog, model_id)
        self.vectors = np.array([t.vector for t in found], np.float32)
        self.thresholds = np.array([t.threshold for t in found], np.float32)

    def matches(self, embedding: np.ndarray) -> bool:
        if not len(self.vectors):
            return False
        return bool(np.any(self.vectors @ embedding >= self.thresholds))


def add(
    catalog: Catalog, model_id: str, template: np.ndarray, threshold: float, note: str | None, actor: str
) -> OptOut:
    optout_id = store.insert(catalog, model_id, template, threshold, (note or "").strip() or None, actor)
    suppress(catalog, model_id, optout_id)
    return get(catalog, optout_id)


def suppress(catalog: Catalog, model_id: str, optout_id: int | None = None) -> int:
    """(Re)apply opt-outs to stored faces; returns how many faces are newly suppressed."""
    if not store.any_(catalog):
        return 0
    ids, embeddings, _, _, _ = catalog.faces_after(model_id, 0, 2**62)
    found = store.templates(catalog, model_id, optout_id)
    assigned = store.person_of_faces(catalog)
    already = store.suppressions(catalog)
    rows = []
    for opt in found:
        if not len(ids):
            break
        direct = ids[embeddings @ opt.vector >= opt.threshold]
        persons = _persons_matched(direct, assigned)
        same_person = [f for f, p in assigned.items() if p in persons]
        for face_id in set(direct.tolist()) | set(same_person):
            if (face_id, opt.id) not in already:
                rows.append({"face_id": face_id, "optout_id": opt.id})
    store.suppress(catalog, rows)
    return len(rows)


def _persons_matched(direct: np.ndarray, assigned: dict[int, int]) -> set[int]:
    """Persons the template matched convincingly: at least 2 of their faces and 5% of them.

    One false match (FMR 1e-5 still allows some in a big catalog) must not take a whole
    stranger's person with it; a poor enrolment photo still matches 14% of the right person's
    faces on glint_dev12 (bench/optout_bench.py).
    """
    sizes: dict[int, int] = {}
    for person in assigned.values():
        sizes[person] = sizes.get(person, 0) + 1
    hits: dict[int, int] = {}
    for face_id in direct.tolist():
        if face_id in assigned:
            hits[assigned[face_id]] = hits.get(assigned[face_id], 0) + 1
    return {p for p, n in hits.items() if n >= MIN_PERSON_HITS and n >= MIN_PERSON_SHARE * sizes[p]}


def suppressed_faces(catalog: Catalog) -> np.ndarray:
    return store.suppressed_faces(catalog)


def all_(catalog: Catalog) -> list[OptOut]:
    return [
        OptOut(
            id=r.id,
            note=r.note,
            threshold=round(r.threshold, 4),
            created_at=r.created_at,
            created_by=r.created_by,
            faces_suppressed=r.n,
        )
        for r in store.all_(catalog)
    ]


def get(catalog: Catalog, optout_id: int) -> OptOut:
    for opt in all_(catalog):
        if opt.id == optout_id:
            return opt
    raise NotFound(f"no opt-out with id {optout_id}; `facefind optout list` shows them")


def remove(catalog: Catalog, optout_id: int) -> OptOut:
    """Withdraw an opt-out: its template is deleted and its faces are no longer suppressed."""
    gone = get(catalog, optout_id)
    store.delete(catalog, optout_id)
    return gone
