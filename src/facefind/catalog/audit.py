"""Queries of the audit log: appending at the head of the hash chain, reading, trimming."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from .core import Catalog
from .schema import audit_log

AUDIT_LOCK = 0x66666175  # PostgreSQL advisory lock serialising appends to the chain


def append(catalog: Catalog, genesis: str, build: Callable[[int, str], dict[str, Any]]) -> bool:
    """Insert the row `build(seq, previous hash)` right after the head, in one transaction.
    False if another writer appended at the same moment (the caller tries again)."""
    try:
        with catalog.transaction() as conn:
            if conn.dialect.name == "postgresql":  # appends queue here rather than race and retry
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK})
            head = conn.execute(
                sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
            ).one_or_none()
            seq, prev = (int(head.seq) + 1, str(head.hash)) if head else (1, genesis)
            conn.execute(sa.insert(audit_log).values(**build(seq, prev)))
        return True
    except sa.exc.IntegrityError:
        return False


def rows(catalog: Catalog, since: str | None = None, until: str | None = None) -> list[sa.Row]:
    """Entries in order, `at` between `since` and `until` (ISO strings, compared as text)."""
    query = sa.select(audit_log).order_by(audit_log.c.seq)
    if since:
        query = query.where(audit_log.c.at >= since)
    if until:
        query = query.where(audit_log.c.at <= until)
    with catalog.engine.connect() as conn:
        return list(conn.execute(query).all())


def last_before(catalog: Catalog, before: str) -> sa.Row | None:
    """The newest entry older than `before`."""
    query = sa.select(audit_log.c.seq, audit_log.c.hash).where(audit_log.c.at < before)
    with catalog.engine.connect() as conn:
        return conn.execute(query.order_by(audit_log.c.seq.desc()).limit(1)).one_or_none()


def delete_through(catalog: Catalog, seq: int) -> int:
    with catalog.transaction() as conn:
        return int(conn.execute(sa.delete(audit_log).where(audit_log.c.seq <= seq)).rowcount)


def searched_face(catalog: Catalog, actor: str, face_id: int, since: str) -> bool:
    """Whether a search by `actor` since `since` returned face `face_id` as a match. Only the
    matches the search recorded count (`details.faces[].matches`, each `[face_id, similarity]`),
    never text elsewhere in the entry, such as a query's file name, which the caller chose."""
    query = (
        sa.select(audit_log.c.details)
        .where(audit_log.c.actor == actor, audit_log.c.action == "search", audit_log.c.at >= since)
        .where(audit_log.c.details.contains(f"[{int(face_id)},", autoescape=True))  # a cheap prefilter
    )
    with catalog.engine.connect() as conn:
        for (details,) in conn.execute(query):
            try:
                faces = json.loads(details).get("faces") or []
                if any(m[0] == face_id for f in faces for m in f.get("matches") or []):
                    return True
            except (ValueError, TypeError, AttributeError, IndexError, KeyError):
                continue
    return False


def newest(catalog: Catalog) -> sa.Row | None:
    """The head of the chain: the entry with the highest seq."""
    query = sa.select(audit_log.c.seq, audit_log.c.hash, audit_log.c.at).order_by(audit_log.c.seq.desc())
    with catalog.engine.connect() as conn:
        return conn.execute(query.limit(1)).one_or_none()


def faces_used_since(catalog: Catalog, since: str) -> set[int]:
    """Faces a search returned as a match, or a view showed as a crop, since `since`: their last
    interaction is that recent (retention by last use). Only the ids an entry recorded count."""
    query = sa.select(audit_log.c.action, audit_log.c.details).where(
        audit_log.c.action.in_(("search", "view")), audit_log.c.at >= since
    )
    used: set[int] = set()
    with catalog.engine.connect() as conn:
        for action, details in conn.execute(query):
            try:
                found = json.loads(details)
                if action == "search":
                    used.update(int(m[0]) for f in found.get("faces") or [] for m in f.get("matches") or [])
                elif isinstance(found.get("face"), int):
                    used.add(int(found["face"]))
            except (ValueError, TypeError, AttributeError, IndexError, KeyError):
                continue
    return used
