"""Queries of consent records, and of the consent subjects of faces (face_subjects).

A face that was ever a face of a person with consent records stays bound to that person (the
consent "subject") wherever it goes: `bind_current` runs in every transaction that moves faces
into or out of persons (before and after the move) and when a consent is recorded or withdrawn,
so catalogs whose consents predate face_subjects are bound at their first such write.
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa

from .core import Catalog
from .schema import consents, face_persons, face_subjects, now


def insert(catalog: Catalog, person_id: int, **fields: str) -> int:
    """Record a consent; the person's faces are bound to it (one transaction)."""
    with catalog.transaction() as conn:
        inserted = conn.execute(sa.insert(consents).values(person_id=person_id, recorded_at=now(), **fields))
        bind_current(conn)
    return int(inserted.inserted_primary_key[0])  # type: ignore[index]


def withdraw(catalog: Catalog, consent_id: int) -> None:
    with catalog.transaction() as conn:
        bind_current(conn)  # consents recorded before face_subjects existed
        conn.execute(sa.update(consents).where(consents.c.id == consent_id).values(withdrawn_at=now()))


def all_(catalog: Catalog, person_id: int | None = None) -> list[sa.Row]:
    query = sa.select(consents).order_by(consents.c.id)
    if person_id is not None:
        query = query.where(consents.c.person_id == person_id)
    with catalog.engine.connect() as conn:
        return list(conn.execute(query).all())


def get(catalog: Catalog, consent_id: int) -> sa.Row | None:
    with catalog.engine.connect() as conn:
        return conn.execute(sa.select(consents).where(consents.c.id == consent_id)).one_or_none()


def move(conn: sa.Connection, sources: list[int], into: int) -> None:
    """The consent records of persons `sources` become those of `into` (a merge), and so do the
    faces bound to them."""
    conn.execute(sa.update(consents).where(consents.c.person_id.in_(sources)).values(person_id=into))
    bound = sa.select(face_subjects.c.face_id).where(face_subjects.c.person_id.in_(sources))
    rebound = [{"face_id": f, "person_id": into} for f in conn.execute(bound).scalars()]
    if rebound:
        conn.execute(_REBIND, rebound)
    conn.execute(sa.delete(face_subjects).where(face_subjects.c.person_id.in_(sources)))


def bind_current(conn: sa.Connection) -> None:
    """Bind every face now in a person with consent records to that person (idempotent)."""
    conn.execute(_BIND_CURRENT)


def bind(conn: sa.Connection, faces: dict[int, int]) -> None:
    """Bind faces (face id -> consent subject); faces deleted meanwhile are skipped."""
    rows = [{"face_id": f, "person_id": p} for f, p in faces.items()]
    for i in range(0, len(rows), 500):
        conn.execute(_BIND, rows[i : i + 500])


def faces_of_subjects(catalog: Catalog, subjects: set[int]) -> np.ndarray:
    """Faces bound to these consent subjects, or now in them (bound or not yet), ascending."""
    query = sa.union(
        sa.select(face_subjects.c.face_id).where(face_subjects.c.person_id.in_(subjects)),
        sa.select(face_persons.c.face_id).where(face_persons.c.person_id.in_(subjects)),
    )
    with catalog.engine.connect() as conn:
        found = conn.execute(query).scalars().all()
    return np.unique(np.fromiter(found, np.int64, len(found)))


# Idempotent inserts, the same text on SQLite and PostgreSQL (both have ON CONFLICT; SQLite needs
# the WHERE to tell it from a join's ON).
_BIND_CURRENT = sa.text(
    "INSERT INTO face_subjects (face_id, person_id) SELECT face_id, person_id FROM face_persons "
    "WHERE person_id IN (SELECT person_id FROM consents) ON CONFLICT DO NOTHING"
)
_BIND = sa.text(
    "INSERT INTO face_subjects (face_id, person_id) SELECT :face_id, :person_id "
    "WHERE EXISTS (SELECT 1 FROM faces WHERE id = :face_id) ON CONFLICT DO NOTHING"
).bindparams(sa.bindparam("face_id", type_=sa.Integer), sa.bindparam("person_id", type_=sa.Integer))
_REBIND = sa.text(
    "INSERT INTO face_subjects (face_id, person_id) VALUES (:face_id, :person_id) ON CONFLICT DO NOTHING"
).bindparams(sa.bindparam("face_id", type_=sa.Integer), sa.bindparam("person_id", type_=sa.Integer))
