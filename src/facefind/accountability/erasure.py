"""Verifiable erasure: remove a photo's, a person's or a collection's faces everywhere, with a receipt.

Everywhere means: face rows and their embeddings, person assignments, the vector index (rebuilt
without them and saved as a new generation; older generations deleted), and the bytes on disk:
SQLite runs with `secure_delete` (deleted content is overwritten with zeros), and after an erasure
the database is VACUUMed and its write-ahead log checkpointed and truncated. facefind keeps no
thumbnails or face crops, so there are none to remove. The receipt says what kind of data went,
how much, when, on whose order, and the SHA-256 of the photos concerned; it holds no biometric
data, and is also written to the audit log.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from pydantic import BaseModel

from ..catalog import Catalog, _delete_faces, collections, face_persons, faces, images, now, persons
from ..errors import FacefindError, NotFound
from ..limits import is_id
from . import optouts

KINDS = ("image", "person", "collection", "optout-matches", "retention")
REMOVED = [
    "face rows (boxes, landmarks, quality)",
    "face embeddings",
    "person assignments",
    "vector index entries (index rebuilt, old generations deleted)",
    "deleted database pages (secure_delete, VACUUM, WAL truncated)",
]


class ErasureReceipt(BaseModel):
    kind: str
    target: str
    at: str
    by: str
    images_removed: int
    faces_removed: int
    persons_removed: int
    image_sha256: list[str]  # the photos erased, or (for a person) the photos their faces were in
    data_removed: list[str]
    audit_seq: int | None = None


def erase(
    catalog: Catalog, kind: str, target: str, actor: str, image_ids: list[int] | None = None
) -> ErasureReceipt:
    """Delete the rows in one transaction; the caller then compacts the vector index and the file.

    kind "retention" erases the given `image_ids` (photos past their collection's retention)."""
    if kind not in KINDS:
        raise FacefindError(f"erase what? one of {', '.join(KINDS)}, got {kind!r}")
    with catalog.transaction() as conn:
        if kind == "retention":
            image_ids = list(image_ids or [])
            face_where = faces.c.image_id.in_(image_ids)
        elif kind == "image":
            image_ids = _images_at(conn, target)
            face_where = faces.c.image_id.in_(image_ids)
        elif kind == "collection":
            found = conn.execute(sa.select(collections.c.id).where(collections.c.name == target)).scalar()
            if found is None:
                raise NotFound(f"no collection named {target!r}; `facefind collection list` shows them")
            image_ids = list(
                conn.execute(sa.select(images.c.id).where(images.c.collection_id == found)).scalars()
            )
            face_where = faces.c.image_id.in_(image_ids)
        elif kind == "optout-matches":
            image_ids = []
            face_where = faces.c.id.in_(optouts.faces_of(catalog, _int(target, "an opt-out", "optout list")))
        else:
            person_id = _person_id(conn, target)
            image_ids = []
            face_where = faces.c.id.in_(
                sa.select(face_persons.c.face_id).where(face_persons.c.person_id == person_id)
            )
        concerned = (
            images.c.id.in_(image_ids)
            if image_ids
            else images.c.id.in_(sa.select(faces.c.image_id).where(face_where))
        )
        hashes = sorted({h for h in conn.execute(sa.select(images.c.sha256).where(concerned)).scalars() if h})
        face_count = conn.execute(
            sa.select(sa.func.count()).select_from(faces).where(face_where)
        ).scalar_one()
        _delete_faces(conn, face_where)
        for i in range(0, len(image_ids), 500):
            conn.execute(sa.delete(images).where(images.c.id.in_(image_ids[i : i + 500])))
        persons_gone = _drop_empty_persons(conn, person_id if kind == "person" else None)
        if kind == "collection":
            conn.execute(sa.delete(collections).where(collections.c.name == target))
    return ErasureReceipt(
        kind=kind,
        target=target,
        at=now(),
        by=actor,
        images_removed=len(image_ids),
        faces_removed=int(face_count),
        persons_removed=persons_gone,
        image_sha256=hashes,
        data_removed=REMOVED,
    )


def scrub_file(catalog: Catalog) -> None:
    """Rewrite the SQLite file without free pages and empty its write-ahead log."""
    if catalog.engine.dialect.name != "sqlite":
        return  # PostgreSQL: VACUUM FULL is the operator's to schedule (see README)
    with catalog.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM")
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _images_at(conn: sa.Connection, target: str) -> list[int]:
    path = Path(target).expanduser()
    candidates = {str(path), str(path.resolve()) if path.exists() else str(path.absolute())}
    prefixes = [c.rstrip("/") + "/" for c in candidates]
    query = sa.select(images.c.id).where(
        sa.or_(
            images.c.path.in_(candidates), *(images.c.path.startswith(p, autoescape=True) for p in prefixes)
        )
    )
    found = list(conn.execute(query).scalars())
    if not found:
        raise NotFound(f"no catalogued photo at {target}; `facefind stats` shows what the catalog holds")
    return found


def _int(target: str, what: str, listing: str) -> int:
    try:
        return int(target)
    except ValueError:
        raise FacefindError(f"{what} is erased by id (see `facefind {listing}`), got {target!r}") from None


def _person_id(conn: sa.Connection, target: str) -> int:
    try:
        person_id = int(target)
    except ValueError:
        raise FacefindError(
            f"a person is erased by id (see `facefind people list`), got {target!r}"
        ) from None
    if (
        not is_id(person_id)
        or conn.execute(sa.select(persons.c.id).where(persons.c.id == person_id)).scalar() is None
    ):
        raise NotFound(f"no person with id {person_id}; `facefind people list --all` shows them")
    return person_id


def _drop_empty_persons(conn: sa.Connection, erased_person: int | None) -> int:
    """The erased person goes whatever their name; others go when left without faces and unnamed."""
    empty = ~sa.exists().where(face_persons.c.person_id == persons.c.id)
    where = sa.and_(empty, persons.c.name.is_(None))
    if erased_person is not None:
        where = sa.or_(where, persons.c.id == erased_person)
    return int(conn.execute(sa.delete(persons).where(where)).rowcount)
