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
import sqlalchemy as sa
from pydantic import BaseModel

from ..catalog import Catalog, face_persons, face_suppressions, now, optouts
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
        with catalog.engine.connect() as conn:
            rows = conn.execute(
                sa.select(optouts.c.template, optouts.c.threshold).where(optouts.c.model_id == model_id)
            ).all()
        self.vectors = np.array([np.frombuffer(r.template, np.float32) for r in rows], np.float32)
        self.thresholds = np.array([r.threshold for r in rows], np.float32)

    def matches(self, embedding: np.ndarray) -> bool:
        if not len(self.vectors):
            return False
        return bool(np.any(self.vectors @ embedding >= self.thresholds))


def add(
    catalog: Catalog, model_id: str, template: np.ndarray, threshold: float, note: str | None, actor: str
) -> OptOut:
    template = np.ascontiguousarray(template, np.float32)
    with catalog.transaction() as conn:
        inserted = conn.execute(
            sa.insert(optouts).values(
                model_id=model_id,
                template=template.tobytes(),
                threshold=threshold,
                note=(note or "").strip() or None,
                created_at=now(),
                created_by=actor,
            )
        )
        optout_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
    suppress(catalog, model_id, optout_id)
    return get(catalog, optout_id)


def suppress(catalog: Catalog, model_id: str, optout_id: int | None = None) -> int:
    """(Re)apply opt-outs to stored faces; returns how many faces are newly suppressed."""
    with catalog.engine.connect() as conn:
        if not conn.execute(sa.select(sa.func.count()).select_from(optouts)).scalar_one():
            return 0
    ids, embeddings, _, _, _ = catalog.faces_after(model_id, 0, 2**62)
    with catalog.engine.connect() as conn:
        query = sa.select(optouts.c.id, optouts.c.template, optouts.c.threshold).where(
            optouts.c.model_id == model_id
        )
        if optout_id is not None:
            query = query.where(optouts.c.id == optout_id)
        found = conn.execute(query).all()
        assigned = dict(conn.execute(sa.select(face_persons.c.face_id, face_persons.c.person_id)).all())
        already = set(
            conn.execute(sa.select(face_suppressions.c.face_id, face_suppressions.c.optout_id)).all()
        )
    rows = []
    for opt in found:
        if not len(ids):
            break
        template = np.frombuffer(opt.template, np.float32)
        direct = ids[embeddings @ template >= opt.threshold]
        persons = _persons_matched(direct, assigned)
        same_person = [f for f, p in assigned.items() if p in persons]
        for face_id in set(direct.tolist()) | set(same_person):
            if (face_id, opt.id) not in already:
                rows.append({"face_id": face_id, "optout_id": opt.id})
    if rows:
        with catalog.transaction() as conn:
            conn.execute(sa.insert(face_suppressions), rows)
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
    with catalog.engine.connect() as conn:
        found = conn.execute(sa.select(face_suppressions.c.face_id).distinct()).scalars().all()
    return np.fromiter(found, np.int64, len(found))


def all_(catalog: Catalog) -> list[OptOut]:
    count = sa.func.count(face_suppressions.c.face_id)
    query = (
        sa.select(optouts, count.label("n"))
        .select_from(optouts.outerjoin(face_suppressions))
        .group_by(optouts.c.id)
        .order_by(optouts.c.id)
    )
    with catalog.engine.connect() as conn:
        return [
            OptOut(
                id=r.id,
                note=r.note,
                threshold=round(r.threshold, 4),
                created_at=r.created_at,
                created_by=r.created_by,
                faces_suppressed=r.n,
            )
            for r in conn.execute(query)
        ]


def get(catalog: Catalog, optout_id: int) -> OptOut:
    for opt in all_(catalog):
        if opt.id == optout_id:
            return opt
    raise NotFound(f"no opt-out with id {optout_id}; `facefind optout list` shows them")


def remove(catalog: Catalog, optout_id: int) -> OptOut:
    """Withdraw an opt-out: its template is deleted and its faces are no longer suppressed."""
    gone = get(catalog, optout_id)
    with catalog.transaction() as conn:
        conn.execute(sa.delete(face_suppressions).where(face_suppressions.c.optout_id == optout_id))
        conn.execute(sa.delete(optouts).where(optouts.c.id == optout_id))
    return gone


def faces_of(catalog: Catalog, optout_id: int) -> sa.Select:
    """Query of the face ids an opt-out suppresses (for erasure)."""
    get(catalog, optout_id)
    return sa.select(face_suppressions.c.face_id).where(face_suppressions.c.optout_id == optout_id)
