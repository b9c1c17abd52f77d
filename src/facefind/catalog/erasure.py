"""Queries of erasure: which rows a target covers, and deleting them in the caller's transaction."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .core import ERASED_THROUGH, delete_faces, write_setting
from .schema import (
    collections,
    face_persons,
    face_suppressions,
    face_tombstones,
    faces,
    images,
    persons,
)


@dataclass(frozen=True)
class Erased:
    image_sha256: list[str]  # the photos erased, or those the erased faces were in
    images: int
    faces: int
    persons: int


def image_ids_at(conn: Connection, paths: set[str]) -> list[int]:
    """Images at any of `paths`, or under any of them taken as folders."""
    prefixes = [p.rstrip("/") + "/" for p in paths]
    query = sa.select(images.c.id).where(
        sa.or_(images.c.path.in_(paths), *(images.c.path.startswith(p, autoescape=True) for p in prefixes))
    )
    return list(conn.execute(query).scalars())


def collection_image_ids(conn: Connection, name: str) -> list[int] | None:
    """Images of the collection `name`; None if there is no such collection."""
    found = conn.execute(sa.select(collections.c.id).where(collections.c.name == name)).scalar()
    if found is None:
        return None
    return list(conn.execute(sa.select(images.c.id).where(images.c.collection_id == found)).scalars())


def person_exists(conn: Connection, person_id: int) -> bool:
    return conn.execute(sa.select(persons.c.id).where(persons.c.id == person_id)).scalar() is not None


def erase(
    conn: Connection,
    *,
    image_ids: list[int] | None = None,
    person_id: int | None = None,
    optout_id: int | None = None,
    collection: str | None = None,
) -> Erased:
    """Delete the images given (with their faces), or the faces of a person or an opt-out; then
    persons left empty and unnamed (and the erased person, named or not), and the collection."""
    if image_ids is not None:
        face_where = faces.c.image_id.in_(image_ids)
    elif person_id is not None:
        face_where = faces.c.id.in_(
            sa.select(face_persons.c.face_id).where(face_persons.c.person_id == person_id)
        )
    else:
        face_where = faces.c.id.in_(
            sa.select(face_suppressions.c.face_id).where(face_suppressions.c.optout_id == optout_id)
        )
    concerned = (
        images.c.id.in_(image_ids)
        if image_ids
        else images.c.id.in_(sa.select(faces.c.image_id).where(face_where))
    )
    hashes = sorted({h for h in conn.execute(sa.select(images.c.sha256).where(concerned)).scalars() if h})
    face_count = conn.execute(sa.select(sa.func.count()).select_from(faces).where(face_where)).scalar_one()
    delete_faces(conn, face_where)
    _mark_erased(conn)
    for i in range(0, len(image_ids or []), 500):
        conn.execute(sa.delete(images).where(images.c.id.in_((image_ids or [])[i : i + 500])))
    persons_gone = _drop_empty_persons(conn, person_id)
    if collection is not None:
        conn.execute(sa.delete(collections).where(collections.c.name == collection))
    return Erased(hashes, len(image_ids or []), int(face_count), persons_gone)


def _mark_erased(conn: Connection) -> None:
    """Record how far the tombstone log reaches: a vector index built before that point may hold
    erased vectors, and every machine's copy is rebuilt when it sees this (vectors/store.py)."""
    last = conn.execute(sa.select(sa.func.coalesce(sa.func.max(face_tombstones.c.seq), 0))).scalar_one()
    write_setting(conn, ERASED_THROUGH, str(last))


def _drop_empty_persons(conn: Connection, erased_person: int | None) -> int:
    """The erased person goes whatever their name; others go when left without faces and unnamed."""
    empty = ~sa.exists().where(face_persons.c.person_id == persons.c.id)
    where = sa.and_(empty, persons.c.name.is_(None))
    if erased_person is not None:
        where = sa.or_(where, persons.c.id == erased_person)
    return int(conn.execute(sa.delete(persons).where(where)).rowcount)


# Tables whose deleted rows held face data (embeddings, landmarks, paths, names).
FACE_TABLES = ("faces", "face_embeddings", "images", "face_persons", "face_rejections", "persons")


def vacuum(conn: Connection) -> None:
    """Leave no deleted face data in the database's files.

    SQLite: rewrite the file without free pages (deleted content is already zeroed by
    secure_delete) and empty the write-ahead log. PostgreSQL: VACUUM FULL rewrites the face tables
    into new files (a plain VACUUM only marks dead rows reusable; their bytes stay) and the old
    files are unlinked; a checkpoint then lets the WAL that held the rows be recycled.
    """
    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("VACUUM")
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    conn.exec_driver_sql(f"VACUUM FULL {', '.join(FACE_TABLES)}")
    # CHECKPOINT needs a superuser or pg_checkpoint; without it the receipt still says what is left.
    with contextlib.suppress(sa.exc.ProgrammingError):
        conn.exec_driver_sql("CHECKPOINT")
