"""Queries of erasure: which rows a target covers, deleting them in the caller's transaction, the
hashes of erased photos (refused at indexing), and scrubbing the database's files afterwards."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .core import ERASED_THROUGH, delete_faces, write_setting
from .schema import (
    collections,
    erased_photos,
    face_persons,
    face_subjects,
    face_suppressions,
    face_tombstones,
    faces,
    images,
    meta,
    not_faces,
    now,
    persons,
)


@dataclass(frozen=True)
class Erased:
    image_sha256: list[str]  # the photos erased, or those the erased faces were in
    images: int
    faces: int
    persons: int


def image_ids_at(conn: Connection, paths: set[str]) -> tuple[list[int], bool]:
    """Images at any of `paths`, or under any of them taken as folders, and every other catalogued
    copy of their content (same SHA-256, any path or collection: erasing a photo erases the photo,
    not one file name of it); and whether `paths` named exactly one catalogued photo."""
    prefixes = [p.rstrip("/") + "/" for p in paths]
    exact = set(conn.execute(sa.select(images.c.id).where(images.c.path.in_(paths))).scalars())
    at = sa.or_(images.c.path.in_(paths), *(images.c.path.startswith(p, autoescape=True) for p in prefixes))
    found = set(conn.execute(sa.select(images.c.id).where(at)).scalars())
    hashes = sa.select(images.c.sha256).where(at, images.c.sha256.is_not(None))
    copies = conn.execute(sa.select(images.c.id).where(images.c.sha256.in_(hashes))).scalars()
    return sorted(found | set(copies)), len(exact) == 1 and len(found) == 1


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
    receipt: str | None = None,
) -> Erased:
    """Delete the images given (with their faces), or the faces of a person or an opt-out; then
    persons left empty and unnamed (and the erased person, named or not), and the collection.
    Erased images' hashes are recorded (with `receipt`) so that indexing refuses them from now
    on; a person's or an opt-out's faces are erased, not the photos they were in."""
    face_where: sa.ColumnElement[bool]
    if image_ids is not None:
        face_where = faces.c.image_id.in_(image_ids)
    elif person_id is not None:
        # Their faces now, and every face bound to their consent (moved out by a split, "not this
        # person" or re-clustering, or a new photo withheld as theirs): consent follows the faces.
        face_where = sa.or_(
            faces.c.id.in_(sa.select(face_persons.c.face_id).where(face_persons.c.person_id == person_id)),
            faces.c.id.in_(sa.select(face_subjects.c.face_id).where(face_subjects.c.person_id == person_id)),
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
    if image_ids is not None:
        _record_erased_photos(conn, hashes, receipt)
    for i in range(0, len(image_ids or []), 500):
        conn.execute(sa.delete(images).where(images.c.id.in_((image_ids or [])[i : i + 500])))
    _drop_orphan_marks(conn, hashes)
    persons_gone = _drop_empty_persons(conn, person_id)
    if collection is not None:
        conn.execute(sa.delete(collections).where(collections.c.name == collection))
    return Erased(hashes, len(image_ids or []), int(face_count), persons_gone)


def _drop_orphan_marks(conn: Connection, hashes: list[str]) -> None:
    """ "Not a face" marks of erased photo content no other photo of the catalog still has."""
    for i in range(0, len(hashes), 500):
        chunk = hashes[i : i + 500]
        still = set(conn.execute(sa.select(images.c.sha256).where(images.c.sha256.in_(chunk))).scalars())
        gone = [h for h in chunk if h not in still]
        if gone:
            conn.execute(sa.delete(not_faces).where(not_faces.c.sha256.in_(gone)))


def _record_erased_photos(conn: Connection, hashes: list[str], receipt: str | None) -> None:
    at = now()
    for i in range(0, len(hashes), 500):
        chunk = hashes[i : i + 500]
        conn.execute(sa.delete(erased_photos).where(erased_photos.c.sha256.in_(chunk)))
        conn.execute(
            sa.insert(erased_photos), [{"sha256": h, "erased_at": at, "receipt": receipt} for h in chunk]
        )


@dataclass(frozen=True)
class ErasedPhoto:
    sha256: str
    erased_at: str
    receipt: str | None


def erased_photo(conn: Connection, sha256: str) -> ErasedPhoto | None:
    """The erasure of a photo with this content, if it was erased (and not allowed again since)."""
    row = conn.execute(sa.select(erased_photos).where(erased_photos.c.sha256 == sha256)).first()
    return None if row is None else ErasedPhoto(row.sha256, row.erased_at, row.receipt)


def allow_again(conn: Connection, sha256: str) -> ErasedPhoto | None:
    """Take a hash off the erased list, and forget the files indexing refused for it (so the next
    run indexes them as new); None if it was not on the list."""
    found = erased_photo(conn, sha256)
    if found is not None:
        conn.execute(sa.delete(erased_photos).where(erased_photos.c.sha256 == sha256))
        conn.execute(sa.delete(images).where(images.c.sha256 == sha256, images.c.status == "error"))
    return found


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


# Tables whose deleted rows held face data (embeddings, landmarks, paths, names; the query faces
# kept for confirming a search's candidates).
FACE_TABLES = (
    "faces",
    "face_embeddings",
    "images",
    "face_persons",
    "face_rejections",
    "persons",
    "review_query_faces",
)


@dataclass(frozen=True)
class Scrub:
    """What scrubbing the database's files did: `done` only when no deleted row can be left in them."""

    done: bool
    steps: list[str] = field(default_factory=list)  # what was done
    blocked: str | None = None  # why it is not done
    vacuumed: bool = False  # the rewrite itself ran (SQLite: only the WAL truncation is left)
    since: str | None = None  # PostgreSQL: the database's clock when it looked for older snapshots


def scrub(conn: Connection, wait: float, since: str | None = None, vacuumed: bool = False) -> Scrub:
    """Leave no deleted face data in the database's files, trying for up to `wait` seconds while
    other connections stand in the way. `since`: a moment after the rows were deleted, by the
    database's clock (default: now); `vacuumed`: SQLite's VACUUM ran after the deletion already.

    SQLite: VACUUM rewrites the file without free pages (deleted content is already zeroed by
    secure_delete) into the write-ahead log; a TRUNCATE checkpoint copies it back and empties the
    log. A reader whose snapshot predates the erasure blocks the checkpoint: until it ends the
    database file keeps the old pages. PostgreSQL: VACUUM FULL rewrites the face tables into new
    files (a plain VACUUM only marks dead rows reusable; their bytes stay) and the old files are
    unlinked, but it copies every deleted row that a snapshot older than the deletion may still
    see: it runs only once no such snapshot is left. A checkpoint then lets the WAL be recycled."""
    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
    if conn.dialect.name == "sqlite":
        return _scrub_sqlite(conn, wait, vacuumed)
    if since is None:
        since = str(conn.exec_driver_sql("SELECT CAST(clock_timestamp() AS text)").scalar_one())
    return _scrub_postgresql(conn, wait, since)


def _backoff(wait: float) -> Iterator[float]:
    """Pauses between attempts (0.05 s doubling to 1 s) adding up to about `wait` seconds."""
    delay, left = 0.05, wait
    while left > 0:
        yield min(delay, left)
        left -= delay
        delay = min(delay * 2, 1.0)


def _scrub_sqlite(conn: Connection, wait: float, vacuumed: bool) -> Scrub:
    if not vacuumed:
        try:
            conn.exec_driver_sql("VACUUM")
        except sa.exc.OperationalError as err:
            return Scrub(False, [], f"VACUUM could not run ({err.orig})")
    steps = ["VACUUM"]
    timeout = conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one()
    conn.exec_driver_sql("PRAGMA busy_timeout=0")  # our own retries, not 30 s inside one checkpoint
    try:
        pauses = _backoff(wait)
        while True:
            busy, log, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            if not busy:
                return Scrub(True, [*steps, "WAL checkpointed and truncated"], vacuumed=True)
            pause = next(pauses, None)
            if pause is None:
                break
            time.sleep(pause)
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={int(timeout)}")
    return Scrub(
        False,
        steps,
        f"another connection to the catalog holds a read transaction that began before the erasure "
        f"(or is writing), so the write-ahead log could not be checkpointed and truncated "
        f"({max(log - copied, 0)} of {log} logged pages not copied back): until then the database file "
        f"keeps the deleted rows' old pages",
        vacuumed=True,
    )


# Sessions whose snapshot may predate `since`: VACUUM FULL keeps every row they may still see. A
# session of another role shows no snapshot unless we may read its statistics (pg_read_all_stats):
# it counts as one, since we cannot tell.
HIDDEN = "<insufficient privilege>"
OLDER_SNAPSHOTS = sa.text(
    "SELECT pid, CASE WHEN query = '<insufficient privilege>' THEN :hidden "
    "ELSE coalesce(application_name, '') END FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND coalesce(backend_type, 'client backend') <> 'autovacuum worker' "
    "AND (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL OR query = '<insufficient privilege>') "
    "AND (xact_start IS NULL OR xact_start <= CAST(:since AS timestamptz)) "
    "UNION ALL SELECT NULL, 'prepared transaction ' || gid FROM pg_prepared_xacts "
    "WHERE database = current_database() AND prepared <= CAST(:since AS timestamptz)"
)


# Face tables (found through the search path) whose owner this role is not, nor a member of.
NOT_OWNED = sa.text(
    "SELECT t FROM unnest(CAST(:tables AS text[])) AS t JOIN pg_class c ON c.oid = to_regclass(t) "
    "WHERE NOT pg_has_role(current_user, c.relowner, 'MEMBER')"
)


def _scrub_postgresql(conn: Connection, wait: float, since: str) -> Scrub:
    pauses = _backoff(wait)
    while older := conn.execute(OLDER_SNAPSHOTS, {"since": since, "hidden": HIDDEN}).all():
        pause = next(pauses, None)
        if pause is None:
            shown = ", ".join(_session(pid, name) for pid, name in older[:5])
            return Scrub(
                False,
                [],
                since=since,
                blocked=f"{len(older)} other session(s) of the database hold a snapshot older than the "
                f"erasure ({shown}); VACUUM FULL would copy the deleted rows they may still see, so "
                f"it did not run and the rows' bytes stay in the table files",
            )
        time.sleep(pause)
    # VACUUM FULL skips, with a mere warning, a table this role does not own: say so instead.
    others = sorted(conn.execute(NOT_OWNED, {"tables": list(FACE_TABLES)}).scalars())
    if others:
        return Scrub(
            False,
            [],
            since=since,
            blocked=f"this database role does not own the tables {', '.join(others)}, so VACUUM FULL "
            f"would skip them; the deleted rows' bytes stay in their files until their owner runs "
            f"`VACUUM FULL {', '.join(FACE_TABLES)};`",
        )
    # VACUUM FULL takes an exclusive lock on each table: wait for it no longer than `wait`.
    conn.exec_driver_sql(f"SET lock_timeout = '{max(int(wait * 1000), 200)}ms'")
    try:
        conn.exec_driver_sql(f"VACUUM FULL {', '.join(FACE_TABLES)}")
    except sa.exc.DBAPIError as err:
        held = getattr(err.orig, "sqlstate", None) == "55P03"  # lock_not_available
        return Scrub(
            False,
            [],
            since=since,
            blocked=f"VACUUM FULL of the face tables could not run ({' '.join(str(err.orig).split())})"
            + ("; another session holds them (a transaction that read them has not ended)" if held else "")
            + "; the deleted rows' bytes stay in the table files",
        )
    finally:
        conn.exec_driver_sql("RESET lock_timeout")
    steps = ["VACUUM FULL of the face tables rewrote their files"]
    # CHECKPOINT needs a superuser or pg_checkpoint; the receipt says only what was done.
    try:
        conn.exec_driver_sql("CHECKPOINT")
        steps.append("checkpoint taken")
    except sa.exc.ProgrammingError:
        steps.append("no checkpoint taken (this role may not; the WAL is recycled later)")
    return Scrub(True, steps, vacuumed=True, since=since)


def _session(pid: int | None, name: str) -> str:
    if name == HIDDEN:
        return (
            f"pid {pid}, another role's session whose snapshot facefind may not see (grant pg_read_all_stats)"
        )
    return f"pid {pid} {name!r}" if pid else name


# meta keys of erasures whose file scrub is still to do: PENDING + receipt id -> JSON
# {"since": when the rows were deleted, "vacuumed": whether SQLite's VACUUM already ran}.
PENDING = "erasure_scrub_pending:"


def record_pending(conn: Connection, receipt: str, since: str, vacuumed: bool) -> None:
    write_setting(conn, PENDING + receipt, json.dumps({"since": since, "vacuumed": vacuumed}))


def pending(conn: Connection) -> dict[str, dict]:
    """Receipt id -> {"since", "vacuumed"} of every erasure whose file scrub is still to do."""
    rows = conn.execute(
        sa.select(meta.c.key, meta.c.value).where(meta.c.key.startswith(PENDING, autoescape=True))
    )
    return {key.removeprefix(PENDING): json.loads(value) for key, value in rows}


def clear_pending(conn: Connection, receipt: str) -> bool:
    """Forget one pending scrub; False if another process did meanwhile (it reports it)."""
    return bool(conn.execute(sa.delete(meta).where(meta.c.key == PENDING + receipt)).rowcount)
