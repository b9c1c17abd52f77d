"""Queries of the web UI's sessions (hashes of their ids only)."""

from __future__ import annotations

import sqlalchemy as sa

from .core import Catalog
from .schema import api_keys, sessions


def insert(
    catalog: Catalog, id_sha256: str, key_name: str, csrf: str, created_at: str, expires_at: str
) -> None:
    """Store a session, and forget the ones that can no longer be used (ended or expired)."""
    with catalog.transaction() as conn:
        conn.execute(
            sa.delete(sessions).where(
                sa.or_(sessions.c.ended_at.is_not(None), sessions.c.expires_at <= created_at)
            )
        )
        conn.execute(
            sa.insert(sessions).values(
                id_sha256=id_sha256,
                key_name=key_name,
                csrf=csrf,
                created_at=created_at,
                expires_at=expires_at,
            )
        )


def active(catalog: Catalog, id_sha256: str, at: str) -> sa.Row | None:
    """(name, role, collections, csrf) of the session with this hash, if it has neither ended nor
    expired by `at` and its key is not revoked."""
    query = (
        sa.select(api_keys.c.name, api_keys.c.role, api_keys.c.collections, sessions.c.csrf)
        .join(api_keys, api_keys.c.name == sessions.c.key_name)
        .where(
            sessions.c.id_sha256 == id_sha256,
            sessions.c.ended_at.is_(None),
            sessions.c.expires_at > at,
            api_keys.c.revoked_at.is_(None),
        )
    )
    with catalog.engine.connect() as conn:
        return conn.execute(query).first()


def end(catalog: Catalog, id_sha256: str, at: str) -> bool:
    """False if there was no open session with this hash."""
    with catalog.transaction() as conn:
        done = conn.execute(
            sa.update(sessions)
            .where(sessions.c.id_sha256 == id_sha256, sessions.c.ended_at.is_(None))
            .values(ended_at=at)
        )
    return bool(done.rowcount)


def end_all(conn: sa.Connection, key_name: str, at: str) -> None:
    """End every open session of a key, in the caller's transaction (its revocation)."""
    conn.execute(
        sa.update(sessions)
        .where(sessions.c.key_name == key_name, sessions.c.ended_at.is_(None))
        .values(ended_at=at)
    )
