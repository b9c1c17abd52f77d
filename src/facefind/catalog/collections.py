"""Queries of collections and their lawful basis."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .core import Catalog
from .schema import collection_roots, collection_rules, collections, images, now


def save(catalog: Catalog, name: str, roots: list[str], **values: Any) -> str | None:
    """Create the collection (with its index roots), or give a basis to one made without (before
    schema 4). Returns the basis of a collection that already had one, which is left unchanged."""
    with catalog.transaction() as conn:
        existing = conn.execute(sa.select(collections).where(collections.c.name == name)).one_or_none()
        if existing is not None and existing.basis is not None:
            return str(existing.basis)
        if existing is None:
            inserted = conn.execute(sa.insert(collections).values(name=name, created_at=now(), **values))
            collection_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
        else:
            conn.execute(sa.update(collections).where(collections.c.id == existing.id).values(**values))
            collection_id = int(existing.id)
        _add_roots(conn, collection_id, roots)
    return None


def set_roots(catalog: Catalog, name: str, roots: list[str]) -> bool:
    """Replace the index roots of a collection; False if there is no such collection."""
    with catalog.transaction() as conn:
        found = conn.execute(sa.select(collections.c.id).where(collections.c.name == name)).scalar()
        if found is None:
            return False
        conn.execute(sa.delete(collection_roots).where(collection_roots.c.collection_id == found))
        _add_roots(conn, int(found), roots)
    return True


def roots(catalog: Catalog) -> dict[int, list[str]]:
    """The index roots of every collection that has some, by collection id, each list sorted."""
    query = sa.select(collection_roots).order_by(collection_roots.c.collection_id, collection_roots.c.root)
    out: dict[int, list[str]] = {}
    with catalog.engine.connect() as conn:
        for r in conn.execute(query):
            out.setdefault(int(r.collection_id), []).append(r.root)
    return out


def _add_roots(conn: Connection, collection_id: int, roots: list[str]) -> None:
    for root in dict.fromkeys(roots):
        conn.execute(sa.insert(collection_roots).values(collection_id=collection_id, root=root))


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


def destroy_rules(catalog: Catalog) -> dict[int, int]:
    """Days after the last interaction each collection's photos are destroyed, by collection id."""
    with catalog.engine.connect() as conn:
        rows = conn.execute(
            sa.select(collection_rules.c.collection_id, collection_rules.c.destroy_after_days)
        )
        return {int(r.collection_id): int(r.destroy_after_days) for r in rows}


def set_destroy_rule(catalog: Catalog, name: str, days: int | None) -> bool:
    """Set (None: remove) a collection's destroy-after-last-use rule; False if there is no such collection."""
    with catalog.transaction() as conn:
        found = conn.execute(sa.select(collections.c.id).where(collections.c.name == name)).scalar()
        if found is None:
            return False
        conn.execute(sa.delete(collection_rules).where(collection_rules.c.collection_id == found))
        if days is not None:
            conn.execute(sa.insert(collection_rules).values(collection_id=found, destroy_after_days=days))
    return True
