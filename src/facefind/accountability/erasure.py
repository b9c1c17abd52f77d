"""Verifiable erasure: remove a photo's, a person's or a collection's faces everywhere, with a receipt.

Everywhere means: face rows and their embeddings, person assignments, the vector index (rebuilt
without them and saved as a new generation; older generations deleted), and the bytes on disk:
SQLite runs with `secure_delete` (deleted content is overwritten with zeros), and after an erasure
the database is VACUUMed and its write-ahead log checkpointed and truncated; on PostgreSQL the face
tables are rewritten by VACUUM FULL (their old files unlinked) and a checkpoint is taken. What
facefind cannot reach (PostgreSQL's WAL until recycled, WAL archives, backups, replicas, copies of
the catalog file) is listed in the receipt with what to do. facefind keeps no thumbnails or face
crops (the web UI cuts them on request), so there are none to remove. The receipt says what kind of data went,
how much, when, on whose order, and the SHA-256 of the photos concerned; it holds no biometric
data, and is also written to the audit log.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from sqlalchemy.engine import Connection

from ..catalog import Catalog, now
from ..catalog import erasure as store
from ..errors import FacefindError, NotFound
from ..limits import is_id
from . import optouts

KINDS = ("image", "person", "collection", "optout-matches", "retention")
REMOVED = [
    "face rows (boxes, landmarks, quality)",
    "face embeddings",
    "person assignments",
    "vector index entries (index rebuilt, old generations deleted)",
]
FILES_SCRUBBED = {
    "sqlite": "deleted database pages (secure_delete, VACUUM, WAL truncated)",
    "postgresql": "deleted table rows (VACUUM FULL of the face tables rewrote their files; checkpoint taken)",
}
# What facefind cannot reach, and how the operator clears it.
ELSEWHERE = {
    "sqlite": [
        "copies of the catalog file made before now (backups, snapshots): delete or re-make them",
    ],
    "postgresql": [
        "WAL segments written before the erasure, until PostgreSQL recycles them: run `CHECKPOINT;` and "
        "`SELECT pg_switch_wal();` (twice) as a superuser, then check that pg_wal/ holds no older segments",
        "a WAL archive (archive_command) and base backups made before now: delete or re-make them "
        "(pg_basebackup), or keep them only as long as your retention rules allow",
        "physical replicas replay the deletes and the VACUUM FULL from the WAL; logical replicas and "
        "pg_dump files do not: run VACUUM FULL on each replica and re-make the dumps",
        "the vector index files each machine keeps (FACEFIND_VECTORS, or the user cache's "
        "facefind/vectors): facefind rewrites a machine's copy at its next search or start; on a "
        "machine that no longer runs facefind, delete that folder",
    ],
}


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
    copies_elsewhere: list[str] = []  # what facefind cannot erase itself, and how to clear it
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
            erased = store.erase(conn, image_ids=list(image_ids or []))
        elif kind == "image":
            erased = store.erase(conn, image_ids=_images_at(conn, target))
        elif kind == "collection":
            in_collection = store.collection_image_ids(conn, target)
            if in_collection is None:
                raise NotFound(f"no collection named {target!r}; `facefind collection list` shows them")
            erased = store.erase(conn, image_ids=in_collection, collection=target)
        elif kind == "optout-matches":
            optout_id = _int(target, "an opt-out", "optout list")
            optouts.get(catalog, optout_id)
            erased = store.erase(conn, optout_id=optout_id)
        else:
            erased = store.erase(conn, person_id=_person_id(conn, target))
    return ErasureReceipt(
        kind=kind,
        target=target,
        at=now(),
        by=actor,
        images_removed=erased.images,
        faces_removed=erased.faces,
        persons_removed=erased.persons,
        image_sha256=erased.image_sha256,
        data_removed=[*REMOVED, FILES_SCRUBBED[catalog.engine.dialect.name]],
        copies_elsewhere=ELSEWHERE[catalog.engine.dialect.name],
    )


def scrub_file(catalog: Catalog) -> None:
    """Leave no deleted face data in the database's files (catalog.erasure.vacuum)."""
    with catalog.engine.connect() as conn:
        store.vacuum(conn)


def _images_at(conn: Connection, target: str) -> list[int]:
    path = Path(target).expanduser()
    candidates = {str(path), str(path.resolve()) if path.exists() else str(path.absolute())}
    found = store.image_ids_at(conn, candidates)
    if not found:
        raise NotFound(f"no catalogued photo at {target}; `facefind stats` shows what the catalog holds")
    return found


def _int(target: str, what: str, listing: str) -> int:
    try:
        return int(target)
    except ValueError:
        raise FacefindError(f"{what} is erased by id (see `facefind {listing}`), got {target!r}") from None


def _person_id(conn: Connection, target: str) -> int:
    try:
        person_id = int(target)
    except ValueError:
        raise FacefindError(
            f"a person is erased by id (see `facefind people list`), got {target!r}"
        ) from None
    if not is_id(person_id) or not store.person_exists(conn, person_id):
        raise NotFound(f"no person with id {person_id}; `facefind people list --all` shows them")
    return person_id
