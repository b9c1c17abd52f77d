"""Queries of the service's API keys (hashes only)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from . import sessions
from .core import Catalog
from .schema import api_keys, now


def insert(catalog: Catalog, key_sha256: str, **fields: Any) -> bool:
    """Store a key; False if its name is taken."""
    with catalog.transaction() as conn:
        if conn.execute(sa.select(api_keys.c.name).where(api_keys.c.name == fields["name"])).first():
            return False
        conn.execute(sa.insert(api_keys).values(key_sha256=key_sha256, **fields))
    return True


def all_(catalog: Catalog) -> list[sa.Row]:
    with catalog.engine.connect() as conn:
        return list(conn.execute(sa.select(api_keys).order_by(api_keys.c.name)).all())


def revoke(catalog: Catalog, name: str) -> bool:
    """False if there is no active key of that name. Its web sessions end in the same transaction."""
    at = now()
    with catalog.transaction() as conn:
        done = conn.execute(
            sa.update(api_keys)
            .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        sessions.end_all(conn, name, at)
    return bool(done.rowcount)


def active(catalog: Catalog, key_sha256: str) -> sa.Row | None:
    """(name, role, collections) of the active key with this hash."""
    query = sa.select(api_keys.c.name, api_keys.c.role, api_keys.c.collections).where(
        api_keys.c.key_sha256 == key_sha256, api_keys.c.revoked_at.is_(None)
    )
    with catalog.engine.connect() as conn:
        return conn.execute(query).first()
