"""Queries of collections and their lawful basis."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .core import Catalog
from .schema import collections, images, now


def save(catalog: Catalog, name: str, **values: Any) -> str | None:
    """Create the collection, or give a basis to one made without (before schema 4). Returns the
    basis of a collection that already had one, which is left unchanged."""
    with catalog.transaction() as conn:
        existing = conn.execute(sa.select(collections).where(collections.c.name == name)).one_or_none()
        if existing is not None and existing.basis is not None:
            return str(existing.basis)
        if existing is None:
            conn.execute(sa.insert(collections).values(name=name, created_at=now(), **values))
        else:
            conn.execute(sa.update(collections).where(collections.c.id == existing.id).values(**values))
    return None


def all_(catalog: Catalog) -> list[sa.Row]:
    """Every collection with `n`, its number of images, by name."""
    query = (
        sa.select(collections, sa.func.count(images.c.id).label("n"))
        .select_from(collections.outerjoin(images))
        .group_by(collections.c.id)
        .order_by(collections.c.name)
    )
    with catalog.engine.connect() as conn:
        return list(conn.execute(query).all())
