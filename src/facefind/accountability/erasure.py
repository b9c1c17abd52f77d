"""Verifiable erasure: remove a photo's, a person's or a collection's faces everywhere, with a receipt.

Everywhere means: face rows and their embeddings, person assignments, the vector index (rebuilt
without them and saved as a new generation; older generations deleted), and the bytes on disk:
SQLite runs with `secure_delete` (deleted content is overwritten with zeros), and after an erasure
the database is VACUUMed and its write-ahead log checkpointed and truncated; on PostgreSQL the face
tables are rewritten by VACUUM FULL (their old files unlinked) and a checkpoint is taken where the
role may. The receipt claims only what was done: another connection holding a snapshot older than
the erasure keeps the old bytes reachable (catalog/erasure.py says how), and after a bounded wait
the receipt and its audit entry say the file scrub is *pending*, why, and what to do. The pending
scrub is kept in the catalog and finished at the next erasure, purge or opening of the catalog
that nothing blocks, with an audit entry (`erase.scrub`) naming the receipt.

What facefind cannot reach (PostgreSQL's WAL until recycled, WAL archives, backups, replicas, copies
of the catalog file) is listed in the receipt with what to do. facefind keeps no thumbnails or face
crops (the web UI cuts them on request), so there are none to remove. The receipt says what kind of
data went, how much, when, on whose order, and the SHA-256 of the photos concerned; it holds no
biometric data, and is also written to the audit log.

Erased photos stay erased: their hashes are kept (`erased_photos`) and indexing refuses a file
with one of them, under any name, until a DPO allows it again (`allow`). Erasing a person (or an
opt-out's matches) erases their faces, not the photos: the photos stay catalogued without those
faces and are not analysed again while unchanged; a changed file is analysed again like any other,
so to keep a person out of future indexing, register an opt-out (`facefind optout add`).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from ..catalog import Catalog, now
from ..catalog import erasure as store
from ..catalog.erasure import Scrub
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
# How long an erasure waits for other connections to let the file scrub through, before the
# receipt says it is pending (the next erasure, purge or opening of the catalog finishes it).
SCRUB_WAIT_SECONDS = 3.0
FILES_SCRUBBED = {
    "sqlite": "deleted database pages (secure_delete, {steps})",
    "postgresql": "deleted table rows ({steps})",
}
# A pending file scrub: what stays, and what the operator can do about it.
SCRUB_PENDING = (
    "file scrub pending: the deleted rows are gone from every query, but their bytes are still in the "
    "database's files: {reason}. facefind finishes the scrub by itself at the next erasure, purge or "
    "opening of this catalog once nothing blocks it, and then writes an audit entry `erase.scrub` "
    "naming this receipt ({receipt}). To finish it now: end the other session's transaction (another "
    "facefind process, a database shell, a backup tool), then run any facefind command on the catalog "
    "(e.g. `facefind stats`) and look for that audit entry."
)
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
    receipt: str  # its id: erased photos' hashes and a later `erase.scrub` audit entry name it
    kind: str
    target: str
    at: str
    by: str
    images_removed: int
    faces_removed: int
    persons_removed: int
    image_sha256: list[str]  # the photos erased, or (for a person) the photos their faces were in
    data_removed: list[str]
    file_scrub: str = "done"  # "pending": the database's files still hold the bytes (see `pending`)
    pending: list[str] = []  # what is not done yet, why, and what to do
    copies_elsewhere: list[str] = []  # what facefind cannot erase itself, and how to clear it
    audit_seq: int | None = None


class NeedsConfirmation(FacefindError):
    """An erasure of many photos (a folder, a collection) asked for without confirming it."""


def erase(
    catalog: Catalog,
    kind: str,
    target: str,
    actor: str,
    image_ids: list[int] | None = None,
    *,
    confirm: bool = False,
) -> ErasureReceipt:
    """Delete the rows in one transaction; the caller then compacts the vector index and scrubs the
    file (`scrub_file`, `settle`).

    kind "retention" erases the given `image_ids` (photos past their collection's retention). A
    collection, or an image target that is not exactly one catalogued photo (a folder, `/`), is
    erased only with `confirm`: without it nothing is erased and the error says how much would be."""
    if kind not in KINDS:
        raise FacefindError(f"erase what? one of {', '.join(KINDS)}, got {kind!r}")
    receipt = uuid.uuid4().hex
    with catalog.transaction() as conn:
        if kind == "retention":
            erased = store.erase(conn, image_ids=list(image_ids or []), receipt=receipt)
        elif kind == "image":
            found, one_photo = _images_at(conn, target)
            if not one_photo and not confirm:
                _refuse_unconfirmed(f"erasing {target!r}", len(found))
            erased = store.erase(conn, image_ids=found, receipt=receipt)
        elif kind == "collection":
            in_collection = store.collection_image_ids(conn, target)
            if in_collection is None:
                raise NotFound(f"no collection named {target!r}; `facefind collection list` shows them")
            if not confirm:
                _refuse_unconfirmed(f"erasing the collection {target!r}", len(in_collection))
            erased = store.erase(conn, image_ids=in_collection, collection=target, receipt=receipt)
        elif kind == "optout-matches":
            optout_id = _int(target, "an opt-out", "optout list")
            optouts.get(catalog, optout_id)
            erased = store.erase(conn, optout_id=optout_id)
        else:
            erased = store.erase(conn, person_id=_person_id(conn, target))
    return ErasureReceipt(
        receipt=receipt,
        kind=kind,
        target=target,
        at=now(),
        by=actor,
        images_removed=erased.images,
        faces_removed=erased.faces,
        persons_removed=erased.persons,
        image_sha256=erased.image_sha256,
        data_removed=list(REMOVED),
        copies_elsewhere=ELSEWHERE[catalog.engine.dialect.name],
    )


def _refuse_unconfirmed(what: str, photos: int) -> None:
    raise NeedsConfirmation(
        f"{what} would erase {photos} photo(s) and their faces for good; nothing was erased. "
        f'Check the target, then confirm: `--confirm` on the command line, "confirm": true in the API.'
    )


def scrub_file(catalog: Catalog, wait: float = SCRUB_WAIT_SECONDS) -> Scrub:
    """Leave no deleted face data in the database's files, waiting up to `wait` seconds for other
    connections to let it through (catalog.erasure.scrub); what it did, or why not."""
    with catalog.engine.connect() as conn:
        return store.scrub(conn, wait)


def settle(catalog: Catalog, receipts: list[ErasureReceipt], scrub: Scrub) -> None:
    """Write into each receipt what the file scrub did; if it is pending, say why and what to do,
    and keep it in the catalog for `finish_pending`."""
    dialect = catalog.engine.dialect.name
    for receipt in receipts:
        if scrub.done:
            receipt.data_removed.append(FILES_SCRUBBED[dialect].format(steps=", ".join(scrub.steps)))
            continue
        receipt.file_scrub = "pending"
        receipt.pending.append(SCRUB_PENDING.format(reason=scrub.blocked, receipt=receipt.receipt))
        with catalog.transaction() as conn:
            store.record_pending(conn, receipt.receipt, scrub.since or receipt.at, scrub.vacuumed)


def finish_pending(catalog: Catalog, scrub: Scrub | None = None) -> dict | None:
    """Finish the file scrub of earlier erasures left pending, if nothing blocks it now (a `scrub`
    just done counts); the details of the `erase.scrub` audit entry to write, or None."""
    with catalog.engine.connect() as conn:
        waiting = store.pending(conn)
    if not waiting:
        return None
    if scrub is None or not scrub.done:
        # A snapshot older than the latest of them may still see that one's rows.
        latest = max(p["since"] for p in waiting.values())
        vacuumed = all(p["vacuumed"] for p in waiting.values())
        try:
            with catalog.engine.connect() as conn:
                scrub = store.scrub(conn, 0, latest, vacuumed)
        except sa.exc.DBAPIError:  # busy or locked: a later attempt does it
            return None
        if not scrub.done:
            return None
    finished = []
    with catalog.transaction() as conn:
        finished = [r for r in sorted(waiting) if store.clear_pending(conn, r)]
    if not finished:
        return None  # another process finished them and reports it
    dialect = catalog.engine.dialect.name
    return {
        "receipts": finished,
        "file_scrub": "done",
        "data_removed": [FILES_SCRUBBED[dialect].format(steps=", ".join(scrub.steps))],
    }


class AllowedAgain(BaseModel):
    sha256: str
    erased_at: str
    receipt: str | None  # the erasure's receipt id
    by: str
    at: str
    audit_seq: int | None = None


def allow(catalog: Catalog, target: str, actor: str) -> AllowedAgain:
    """Let indexing take an erased photo again (a DPO's decision, audited by the caller): `target`
    is the photo's file or its SHA-256 (from the erasure receipt)."""
    sha256 = _content_hash(target)
    with catalog.transaction() as conn:
        found = store.allow_again(conn, sha256)
    if found is None:
        raise NotFound(
            f"no erased photo with SHA-256 {sha256}; an erasure's receipt (its `erase` entry in `facefind "
            f"audit show`) lists the hashes of the photos it erased"
        )
    return AllowedAgain(sha256=sha256, erased_at=found.erased_at, receipt=found.receipt, by=actor, at=now())


def _content_hash(target: str) -> str:
    if re.fullmatch(r"[0-9a-fA-F]{64}", target):
        return target.lower()
    path = Path(target).expanduser()
    if not path.is_file():
        raise FacefindError(f"{target}: give a photo file or the 64 hex digits of an erased photo's SHA-256")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def refusal(conn: Connection, sha256: str) -> str | None:
    """Why indexing must not take a photo with this content (it was erased), or None."""
    found = store.erased_photo(conn, sha256)
    if found is None:
        return None
    return (
        f"this photo was erased on {found.erased_at[:10]} (receipt {found.receipt}); facefind will not "
        f"index it again. A DPO can allow it again with `facefind erase allow PATH` (or its SHA-256)"
    )


def _images_at(conn: Connection, target: str) -> tuple[list[int], bool]:
    path = Path(target).expanduser()
    candidates = {str(path), str(path.resolve()) if path.exists() else str(path.absolute())}
    found, one_photo = store.image_ids_at(conn, candidates)
    if not found:
        raise NotFound(f"no catalogued photo at {target}; `facefind stats` shows what the catalog holds")
    return found, one_photo


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
