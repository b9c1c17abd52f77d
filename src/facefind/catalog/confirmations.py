"""Queries of the two-person confirmation of search candidates (accountability/confirmations.py):
the candidates of each 1:N search, the decisions on them, the query face crops, key owners."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from .core import Catalog
from .schema import (
    collection_confirmations,
    collections,
    faces,
    key_persons,
    review_candidates,
    review_decisions,
    review_query_faces,
)


# Rules and people -----------------------------------------------------------------------------
def required(catalog: Catalog) -> dict[str, int]:
    """Confirmations each collection requires, by collection name (only those with a rule)."""
    query = sa.select(collections.c.name, collection_confirmations.c.required).join(
        collection_confirmations, collection_confirmations.c.collection_id == collections.c.id
    )
    with catalog.engine.connect() as conn:
        return {str(r.name): int(r.required) for r in conn.execute(query)}


def retention_days(catalog: Catalog) -> dict[str, int | None]:
    """Each collection's retention period in days, by name (without counting its photos)."""
    with catalog.engine.connect() as conn:
        rows = conn.execute(sa.select(collections.c.name, collections.c.retention_days))
        return {str(r.name): r.retention_days for r in rows}


def set_required(catalog: Catalog, name: str, count: int) -> bool:
    """Set a collection's rule; False if there is no such collection."""
    with catalog.transaction() as conn:
        found = conn.execute(sa.select(collections.c.id).where(collections.c.name == name)).scalar()
        if found is None:
            return False
        table = collection_confirmations
        conn.execute(sa.delete(table).where(table.c.collection_id == found))
        conn.execute(sa.insert(table).values(collection_id=found, required=count))
    return True


def set_key_person(catalog: Catalog, key_name: str, person: str) -> None:
    with catalog.transaction() as conn:
        conn.execute(sa.delete(key_persons).where(key_persons.c.key_name == key_name))
        conn.execute(sa.insert(key_persons).values(key_name=key_name, person=person))


def key_persons_of(catalog: Catalog) -> dict[str, str]:
    """The person of every key that names one, by key name."""
    with catalog.engine.connect() as conn:
        return {str(r.key_name): str(r.person) for r in conn.execute(sa.select(key_persons))}


# Candidates -----------------------------------------------------------------------------------
def add_candidates(catalog: Catalog, rows: list[dict[str, Any]], crops: list[dict[str, Any]]) -> None:
    """The candidates of one search and its query face crops, in one transaction; a face erased
    meanwhile is skipped (it is no candidate)."""
    if not rows:
        return
    ids = [r["face_id"] for r in rows]
    for attempt in range(3):  # a face erased by another process between the check and the insert
        try:
            with catalog.transaction() as conn:
                found = conn.execute(sa.select(faces.c.id).where(faces.c.id.in_(ids)))
                present = {int(i) for (i,) in found}
                kept = [r for r in rows if r["face_id"] in present]
                if kept:
                    conn.execute(sa.insert(review_candidates), kept)
                if crops:
                    conn.execute(sa.insert(review_query_faces), crops)
            return
        except sa.exc.IntegrityError:
            if attempt == 2:
                raise


def candidates(catalog: Catalog, search_seq: int | None = None, face_id: int | None = None) -> list[sa.Row]:
    """Candidates, newest search first (one search's, or one candidate, if given)."""
    query = sa.select(review_candidates).order_by(
        review_candidates.c.search_seq.desc(),
        review_candidates.c.query_face,
        review_candidates.c.similarity.desc(),
    )
    if search_seq is not None:
        query = query.where(review_candidates.c.search_seq == search_seq)
    if face_id is not None:
        query = query.where(review_candidates.c.face_id == face_id)
    with catalog.engine.connect() as conn:
        return list(conn.execute(query).all())


def awaiting(catalog: Catalog, limit: int, offset: int = 0) -> list[sa.Row]:
    """Candidates no one rejected and fewer distinct people confirmed than required, newest
    search first: one page of them."""
    c, d = review_candidates, review_decisions
    same = sa.and_(d.c.search_seq == c.c.search_seq, d.c.face_id == c.c.face_id)
    rejected = sa.select(d.c.id).where(same, d.c.decision == "reject").exists()
    confirmed = (
        sa.select(sa.func.count(sa.distinct(d.c.person)))
        .where(same, d.c.decision == "confirm")
        .scalar_subquery()
    )
    query = (
        sa.select(c)
        .where(~rejected, confirmed < c.c.required)
        .order_by(c.c.search_seq.desc(), c.c.query_face, c.c.similarity.desc(), c.c.face_id)
        .limit(limit)
        .offset(offset)
    )
    with catalog.engine.connect() as conn:
        return list(conn.execute(query).all())


def decisions(catalog: Catalog, search_seqs: Iterable[int] | None = None) -> list[sa.Row]:
    """Decisions in the order they were made (of some searches, if given)."""
    query = sa.select(review_decisions).order_by(review_decisions.c.id)
    if search_seqs is not None:
        query = query.where(review_decisions.c.search_seq.in_(list(search_seqs)))
    with catalog.engine.connect() as conn:
        return list(conn.execute(query).all())


def add_decision(catalog: Catalog, **values: Any) -> int:
    with catalog.transaction() as conn:
        done = conn.execute(sa.insert(review_decisions).values(**values))
        return int(done.inserted_primary_key[0])  # type: ignore[index]


def set_audit_seq(catalog: Catalog, decision_id: int, seq: int) -> None:
    with catalog.transaction() as conn:
        conn.execute(
            sa.update(review_decisions).where(review_decisions.c.id == decision_id).values(audit_seq=seq)
        )


# Query face crops -----------------------------------------------------------------------------
def query_crop(catalog: Catalog, search_seq: int, query_face: int) -> bytes | None:
    query = sa.select(review_query_faces.c.jpeg).where(
        review_query_faces.c.search_seq == search_seq, review_query_faces.c.query_face == query_face
    )
    with catalog.engine.connect() as conn:
        found = conn.execute(query).scalar()
    return None if found is None else bytes(found)


def drop_crops(catalog: Catalog, expired_before: str) -> int:
    """Delete query face crops past their expiry, and those of searches with no candidate left
    (erased); the number deleted."""
    has_candidate = (
        sa.select(review_candidates.c.search_seq)
        .where(
            review_candidates.c.search_seq == review_query_faces.c.search_seq,
            review_candidates.c.query_face == review_query_faces.c.query_face,
        )
        .exists()
    )
    with catalog.transaction() as conn:
        done = conn.execute(
            sa.delete(review_query_faces).where(
                sa.or_(review_query_faces.c.expires_at < expired_before, ~has_candidate)
            )
        )
        return int(done.rowcount)
