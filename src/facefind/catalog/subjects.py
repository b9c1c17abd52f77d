"""Queries of one data subject's records (a subject access export): their persons, their faces
whether shown or withheld, the other faces of their photos, the opt-outs that suppressed them."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from .core import Catalog, _chunks
from .schema import consents, face_persons, face_subjects, face_suppressions, faces, persons


def persons_known(catalog: Catalog, person_ids: Iterable[int]) -> set[int]:
    """Which of these ids name a person: one in the catalog, or one with consent records (kept
    after the person is erased)."""
    ids = sorted({int(p) for p in person_ids})
    with catalog.engine.connect() as conn:
        found = set(conn.execute(sa.select(persons.c.id).where(persons.c.id.in_(ids))).scalars())
        found |= set(
            conn.execute(sa.select(consents.c.person_id).where(consents.c.person_id.in_(ids))).scalars()
        )
    return {int(p) for p in found}


def person_rows(catalog: Catalog, person_ids: Iterable[int]) -> list[sa.Row]:
    query = sa.select(persons.c.id, persons.c.name, persons.c.hidden, persons.c.created_at).where(
        persons.c.id.in_(sorted({int(p) for p in person_ids}))
    )
    with catalog.engine.connect() as conn:
        return list(conn.execute(query.order_by(persons.c.id)).all())


def faces_of(catalog: Catalog, person_ids: Iterable[int]) -> list[int]:
    """Every stored face of these persons, shown or not (opted out, withheld by consent): those in
    them now and those bound to their consent (consent follows the faces), ascending."""
    ids = sorted({int(p) for p in person_ids})
    query = sa.union(
        sa.select(face_subjects.c.face_id).where(face_subjects.c.person_id.in_(ids)),
        sa.select(face_persons.c.face_id).where(face_persons.c.person_id.in_(ids)),
    )
    with catalog.engine.connect() as conn:
        return sorted(int(f) for f in conn.execute(query).scalars())


def faces_in_images(catalog: Catalog, image_ids: Iterable[int]) -> list[sa.Row]:
    """(id, image_id, x, y, w, h) of every face stored on these photos, whoever's."""
    ids = sorted({int(i) for i in image_ids})
    found: list[sa.Row] = []
    with catalog.engine.connect() as conn:
        for chunk in _chunks(ids, 500):  # a person may be in thousands of photos
            query = sa.select(faces.c.id, faces.c.image_id, faces.c.x, faces.c.y, faces.c.w, faces.c.h)
            found += conn.execute(query.where(faces.c.image_id.in_(chunk))).all()
    return sorted(found, key=lambda r: r.id)


def suppressing_optouts(catalog: Catalog, face_ids: Iterable[int]) -> dict[int, list[int]]:
    """opt-out id -> the faces among `face_ids` it suppresses."""
    ids = sorted({int(f) for f in face_ids})
    out: dict[int, list[int]] = {}
    with catalog.engine.connect() as conn:
        for chunk in _chunks(ids, 500):
            query = sa.select(face_suppressions.c.optout_id, face_suppressions.c.face_id)
            for optout_id, face_id in conn.execute(query.where(face_suppressions.c.face_id.in_(chunk))):
                out.setdefault(int(optout_id), []).append(int(face_id))
    return {k: sorted(v) for k, v in out.items()}
