"""Queries of consent records."""

from __future__ import annotations

import sqlalchemy as sa

from .core import Catalog
from .schema import consents, now


def insert(catalog: Catalog, person_id: int, **fields: str) -> int:
    with catalog.transaction() as conn:
        inserted = conn.execute(sa.insert(consents).values(person_id=person_id, recorded_at=now(), **fields))
    return int(inserted.inserted_primary_key[0])  # type: ignore[index]


def withdraw(catalog: Catalog, consent_id: int) -> None:
    with catalog.transaction() as conn:
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
    """The consent records of persons `sources` become those of `into` (a merge)."""
    conn.execute(sa.update(consents).where(consents.c.person_id.in_(sources)).values(person_id=into))
