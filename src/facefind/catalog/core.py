"""The catalog: collections, images and faces (with embeddings) in SQLite or, later, PostgreSQL.

Every write that belongs together happens in one transaction: a crash at any moment leaves
either the old or the new state of an image, never half of it. This package is the only place
that speaks SQL: feature modules call the query modules beside this one.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .. import filemodes
from ..errors import CatalogError, NotFound
from ..faces import Face
from .schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    calibrations,
    collections,
    face_persons,
    face_tombstones,
    faces,
    images,
    meta,
    metadata,
    now,
    persons,
)


@dataclass(frozen=True)
class KnownImage:
    id: int
    path: str
    sha256: str | None
    size: int
    mtime_ns: int
    status: str
    error: str | None


@dataclass(frozen=True)
class FaceRow:
    id: int
    image_id: int
    path: str
    box: tuple[float, float, float, float]
    quality: float
    embedding: np.ndarray
    collection: str
    person_id: int | None
    person_name: str | None


class Catalog:
    def __init__(
        self,
        url_or_path: str | Path,
        *,
        create_folders: bool = False,
        new_settings: dict[str, str] | None = None,
    ) -> None:
        """`create_folders`: make the catalog file's folder if missing (the per-user default);
        a folder the user named that does not exist is more likely a typo. `new_settings`: what a
        catalog created now starts with (an existing catalog keeps its own)."""
        url = str(url_or_path)
        if "://" not in url:
            path = Path(url).expanduser()
            if path.is_dir():
                raise CatalogError(f"{path} is a folder; --db wants a file such as {path / 'catalog.db'}")
            if not path.parent.is_dir():
                if not create_folders:
                    raise CatalogError(
                        f"the folder of the catalog {path} does not exist ({path.parent}); create it "
                        f"first, or give another --db (or FACEFIND_DB)"
                    )
                filemodes.make_folder(path.parent)
            # Private from its first byte (SQLite gives its -wal and -shm files the same mode).
            for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                filemodes.warn_if_shared(part, "the catalog file")
            filemodes.create_file(path)
            url = f"sqlite:///{path}"
        self.url = url = _with_driver(url)
        try:
            self.engine: Engine = sa.create_engine(url, pool_pre_ping=url.startswith("postgresql"))
        except (ImportError, sa.exc.NoSuchModuleError, sa.exc.ArgumentError) as err:
            raise CatalogError(
                f"cannot use the catalog URL {redacted(url)!r}: {err}. facefind's catalog is an SQLite "
                f"file (--db photos.db) or a PostgreSQL database (--db postgresql://USER@HOST/DB, after "
                f"`pip install 'facefind[server]'`)."
            ) from None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self._migrate(new_settings or {})
        except sa.exc.DatabaseError as err:
            shown = redacted(str(url_or_path))
            if self.engine.dialect.name == "postgresql" and isinstance(err, sa.exc.OperationalError):
                raise CatalogError(
                    f"cannot reach the PostgreSQL catalog at {shown}: {' '.join(str(err.orig).split())}. "
                    f"Is the server running and the database created? (`facefind pg start DIR` runs one "
                    f"for trying facefind.)"
                ) from None
            raise CatalogError(
                f"cannot open the catalog at {shown}: {err.orig}. "
                f"Is it a facefind database? Give another path with --db or FACEFIND_DB."
            ) from None

    def _migrate(self, new_settings: dict[str, str]) -> None:
        with self.engine.begin() as conn:
            version = 0
            if sa.inspect(conn).has_table("meta"):
                row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version"))
                version = int(row.scalar_one_or_none() or 0)
            if version > SCHEMA_VERSION:
                raise CatalogError(
                    f"this catalog has schema version {version}, newer than this facefind "
                    f"understands ({SCHEMA_VERSION}); upgrade facefind to use it."
                )
            if version == 0:
                metadata.create_all(conn)
                for key, value in new_settings.items():
                    write_setting(conn, key, value)
            else:
                for step in MIGRATIONS[version - 1 :]:
                    step(conn)
            if version < SCHEMA_VERSION:
                conn.execute(sa.delete(meta).where(meta.c.key == "schema_version"))
                conn.execute(sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def faces_held(self) -> Iterator[None]:
        """No other process deletes faces meanwhile (FACES_LOCK): for a read-compute-write over
        many transactions, as clustering is. On SQLite only the holders queue (an exclusive lock on
        `<catalog>.lock`); a face deleted meanwhile is skipped when its assignment is written
        (persons.save_assignments)."""
        if self.engine.dialect.name != "postgresql":
            database = self.engine.url.database
            if not database or database == ":memory:":
                yield
                return
            with os.fdopen(filemodes.open_file(f"{database}.lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                yield
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": FACES_LOCK})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": FACES_LOCK})

    # settings kept with the catalog ------------------------------------------------------
    def get_setting(self, key: str, default: str) -> str:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar_one_or_none()
        return default if found is None else str(found)

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            write_setting(conn, key, value)

    # collections -------------------------------------------------------------------------
    def collection_ids(self, names: Iterable[str]) -> list[int]:
        """Ids of existing collections; an unknown name is an error listing the known ones."""
        with self.engine.connect() as conn:
            known = dict(conn.execute(sa.select(collections.c.name, collections.c.id)).all())
        missing = [n for n in names if n not in known]
        if missing:
            raise NotFound(
                f"no collection named {', '.join(map(repr, missing))}; "
                f"the catalog has: {', '.join(sorted(known)) or 'none yet'}"
            )
        return [int(known[n]) for n in names]

    def collection_id(self, name: str, create: bool = True) -> int:
        with self.transaction() as conn:
            found = conn.execute(
                sa.select(collections.c.id).where(collections.c.name == name)
            ).scalar_one_or_none()
            if found is not None:
                return int(found)
            if not create:
                raise CatalogError(f"no collection named {name!r}")
            inserted = conn.execute(sa.insert(collections).values(name=name, created_at=now()))
            return int(inserted.inserted_primary_key[0])  # type: ignore[index]

    # images ------------------------------------------------------------------------------
    def known_images(self, collection_id: int, under: Path) -> dict[str, KnownImage]:
        """Catalogued images of a collection whose path lies under folder (or is that file)."""
        root = str(under)
        prefix = root.rstrip("/") + "/"
        query = sa.select(
            images.c.id,
            images.c.path,
            images.c.sha256,
            images.c.size,
            images.c.mtime_ns,
            images.c.status,
            images.c.error,
        ).where(
            images.c.collection_id == collection_id,
            sa.or_(images.c.path == root, images.c.path.startswith(prefix, autoescape=True)),
        )
        with self.engine.connect() as conn:
            return {r.path: KnownImage(*r) for r in conn.execute(query)}

    def images_indexed_before(self, collection: str, cutoff: str) -> list[int]:
        query = (
            sa.select(images.c.id)
            .join(collections)
            .where(collections.c.name == collection, images.c.indexed_at < cutoff)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def remove_images(self, conn: Connection, image_ids: Sequence[int]) -> None:
        for chunk in _chunks(image_ids, 500):
            delete_faces(conn, faces.c.image_id.in_(chunk))
            conn.execute(sa.delete(images).where(images.c.id.in_(chunk)))

    def touch_image(self, conn: Connection, image_id: int, size: int, mtime_ns: int) -> None:
        conn.execute(sa.update(images).where(images.c.id == image_id).values(size=size, mtime_ns=mtime_ns))

    def save_image(
        self,
        conn: Connection,
        collection_id: int,
        path: str,
        *,
        sha256: str | None,
        size: int,
        mtime_ns: int,
        shape: tuple[int, int] | None,
        found: list[Face],
        error: str | None,
    ) -> int:
        """Insert or replace one image and all its faces (inside the caller's transaction).

        Another process may be saving the same photo at the same moment (two indexers on one
        folder): the insert then yields to its row, which is replaced, so the photo is stored once.
        """
        values = dict(
            sha256=sha256,
            size=size,
            mtime_ns=mtime_ns,
            width=shape[1] if shape else None,
            height=shape[0] if shape else None,
            status="error" if error else "indexed",
            error=error,
            indexed_at=now(),
        )
        insert = _insert_for(conn.dialect.name)(images).values(
            collection_id=collection_id, path=path, **values
        )
        inserted = conn.execute(insert.on_conflict_do_nothing(index_elements=["collection_id", "path"]))
        if inserted.rowcount == 1:
            image_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
        else:
            # FOR UPDATE: a concurrent replacement of this photo finishes first, so the delete
            # below sees (and removes) the faces it stored.
            image_id = conn.execute(
                sa.select(images.c.id)
                .where(images.c.collection_id == collection_id, images.c.path == path)
                .with_for_update()
            ).scalar_one()
            delete_faces(conn, faces.c.image_id == image_id)
            conn.execute(sa.update(images).where(images.c.id == image_id).values(**values))
        insert_many(conn, faces, [_face_values(image_id, i, f) for i, f in enumerate(found)])
        return image_id

    # faces -------------------------------------------------------------------------------
    def faces_after(
        self, model_id: str, after_id: int, limit: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Up to `limit` faces of one model with id > after_id, ascending:
        (ids, embeddings, collection ids, size_px, quality)."""
        query = (
            sa.select(faces.c.id, faces.c.embedding, images.c.collection_id, faces.c.size_px, faces.c.quality)
            .join(images, images.c.id == faces.c.image_id)
            .where(faces.c.model_id == model_id, faces.c.id > after_id)
            .order_by(faces.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        n = len(rows)
        blob = b"".join(r[1] for r in rows)
        return (
            np.fromiter((r[0] for r in rows), np.int64, n),
            np.frombuffer(blob, np.float32).reshape(n, -1) if n else np.zeros((0, 0), np.float32),
            np.fromiter((r[2] for r in rows), np.int32, n),
            np.fromiter((r[3] for r in rows), np.float32, n),
            np.fromiter((r[4] for r in rows), np.float32, n),
        )

    def face_sample(self, model_id: str, every: int) -> np.ndarray:
        """Embeddings of the faces of one model whose id is a multiple of `every`: a sample spread
        over the whole catalog, read without fetching the rest (for training quantisers)."""
        query = sa.select(faces.c.embedding).where(faces.c.model_id == model_id, faces.c.id % every == 0)
        with self.engine.connect() as conn:
            blobs = list(conn.execute(query).scalars())
        if not blobs:
            return np.zeros((0, 0), np.float32)
        return np.frombuffer(b"".join(blobs), np.float32).reshape(len(blobs), -1)

    def tombstones_after(self, model_id: str, after_seq: int) -> tuple[int, np.ndarray]:
        """(last seq, face ids) of faces of one model deleted after tombstone `after_seq`."""
        query = (
            sa.select(face_tombstones.c.seq, face_tombstones.c.face_id)
            .where(face_tombstones.c.model_id == model_id, face_tombstones.c.seq > after_seq)
            .order_by(face_tombstones.c.seq)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return after_seq, np.zeros(0, np.int64)
        return int(rows[-1][0]), np.fromiter((r[1] for r in rows), np.int64, len(rows))

    def erased_through(self) -> int:
        """The last tombstone of the latest erasure: indexes built before it may hold erased faces."""
        return int(self.get_setting(ERASED_THROUGH, "0"))

    def last_tombstone(self) -> int:
        query = sa.select(sa.func.coalesce(sa.func.max(face_tombstones.c.seq), 0))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def state_id(self) -> str:
        """Which faces a search could reach, as 'f<highest face id>.t<last tombstone>': face ids are
        never reused and every face deletion logs a tombstone, so indexing a face or erasing one
        changes it, and the same id means the same faces (the audit log's reference database)."""
        face = sa.select(sa.func.coalesce(sa.func.max(faces.c.id), 0)).scalar_subquery()
        tomb = sa.select(sa.func.coalesce(sa.func.max(face_tombstones.c.seq), 0)).scalar_subquery()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(face, tomb)).one()
        return f"f{int(row[0])}.t{int(row[1])}"

    def face_count(self, model_id: str) -> int:
        with self.engine.connect() as conn:
            query = sa.select(sa.func.count()).where(faces.c.model_id == model_id)
            return int(conn.execute(query).scalar_one())

    def face_checksum(self, model_id: str) -> tuple[int, int, int]:
        """(count, sum of ids, sum of hashed ids) of one model's faces, as FaissIndex.checksum()."""
        # 64-bit arithmetic: PostgreSQL's integer is 32-bit and would overflow on the product.
        face_id = sa.cast(faces.c.id, sa.BigInteger)
        multiplier, modulus = sa.literal(2654435761, sa.BigInteger), sa.literal(4294967311, sa.BigInteger)
        query = sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(face_id), 0),
            sa.func.coalesce(sa.func.sum((face_id * multiplier) % modulus), 0),
        ).where(faces.c.model_id == model_id)
        with self.engine.connect() as conn:
            count, total, hashed = conn.execute(query).one()
        return int(count), int(total), int(hashed)

    def face_rows(self, face_ids: Iterable[int]) -> dict[int, FaceRow]:
        ids = [int(i) for i in face_ids]
        out: dict[int, FaceRow] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids, 500):
                query = (
                    sa.select(
                        faces.c.id,
                        faces.c.image_id,
                        images.c.path,
                        faces.c.x,
                        faces.c.y,
                        faces.c.w,
                        faces.c.h,
                        faces.c.quality,
                        faces.c.embedding,
                        collections.c.name.label("collection"),
                        persons.c.id.label("person_id"),
                        persons.c.name.label("person_name"),
                    )
                    .join(images, images.c.id == faces.c.image_id)
                    .join(collections, collections.c.id == images.c.collection_id)
                    .outerjoin(face_persons, face_persons.c.face_id == faces.c.id)
                    .outerjoin(persons, persons.c.id == face_persons.c.person_id)
                    .where(faces.c.id.in_(chunk))
                )
                for r in conn.execute(query):
                    out[r.id] = FaceRow(
                        r.id,
                        r.image_id,
                        r.path,
                        (r.x, r.y, r.w, r.h),
                        r.quality,
                        np.frombuffer(r.embedding, np.float32),
                        r.collection,
                        r.person_id,
                        r.person_name,
                    )
        return out

    # calibration -------------------------------------------------------------------------
    def load_calibration(self, model_id: str) -> dict | None:
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(calibrations.c.table_json).where(calibrations.c.model_id == model_id)
            ).scalar_one_or_none()
        return json.loads(found) if found else None

    def save_calibration(self, model_id: str, table: dict) -> None:
        with self.transaction() as conn:
            conn.execute(sa.delete(calibrations).where(calibrations.c.model_id == model_id))
            conn.execute(
                sa.insert(calibrations).values(
                    model_id=model_id, table_json=json.dumps(table), created_at=now()
                )
            )

    # stats -------------------------------------------------------------------------------
    def stats(self, min_face_px: float = 0, min_quality: float = 0) -> dict:
        with self.engine.connect() as conn:

            def count(query: sa.Select) -> int:
                return int(conn.execute(query).scalar_one())

            per_collection = conn.execute(
                sa.select(collections.c.name, sa.func.count(images.c.id))
                .select_from(collections.outerjoin(images))
                .group_by(collections.c.name)
                .order_by(collections.c.name)
            ).all()
            per_model = conn.execute(
                sa.select(faces.c.model_id, sa.func.count()).group_by(faces.c.model_id)
            ).all()
            errors = conn.execute(
                sa.select(images.c.error, sa.func.count())
                .where(images.c.status == "error")
                .group_by(images.c.error)
                .order_by(sa.func.count().desc())
                .limit(10)
            ).all()
            return {
                "collections": {name: n for name, n in per_collection},
                "images": count(sa.select(sa.func.count()).select_from(images)),
                "images_indexed": count(sa.select(sa.func.count()).where(images.c.status == "indexed")),
                "images_with_errors": count(sa.select(sa.func.count()).where(images.c.status == "error")),
                "images_without_faces": count(
                    sa.select(sa.func.count())
                    .select_from(images)
                    .where(
                        images.c.status == "indexed",
                        ~sa.exists().where(faces.c.image_id == images.c.id),
                    )
                ),
                "faces": count(sa.select(sa.func.count()).select_from(faces)),
                "faces_searchable": count(
                    sa.select(sa.func.count()).where(
                        faces.c.size_px >= min_face_px, faces.c.quality >= min_quality
                    )
                ),
                "faces_per_model": {m: n for m, n in per_model},
                "schema_version": SCHEMA_VERSION,
                "recent_errors": [{"error": e, "count": n} for e, n in errors],
            }

    def failed_images(self, collection_id: int | None = None) -> list[tuple[str, str, str]]:
        """(collection, path, reason) of every file that could not be indexed, by path."""
        query = (
            sa.select(collections.c.name, images.c.path, images.c.error)
            .select_from(images.join(collections))
            .where(images.c.status == "error")
            .order_by(collections.c.name, images.c.path)
        )
        if collection_id is not None:
            query = query.where(images.c.collection_id == collection_id)
        with self.engine.connect() as conn:
            return [(c, p, e or "unknown error") for c, p, e in conn.execute(query)]


def insert_many(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows in one go: COPY on PostgreSQL (half the time of SQLAlchemy's batched executemany
    with psycopg 3 for 20,000 faces; unbatched drivers are far slower), executemany elsewhere.
    Every column must be given: COPY applies no SQLAlchemy defaults."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(sa.insert(table), rows)
        return
    columns = list(rows[0])
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


# PostgreSQL advisory lock between processes that delete faces (shared: they may run together)
# and clustering (exclusive: it reads the faces, computes, then assigns them to persons; a face
# deleted in between would break the assignment). On SQLite see Catalog.faces_held.
FACES_LOCK = 0x66666163
# meta key: the last tombstone of the latest erasure (catalog/erasure.py, vectors/store.py).
ERASED_THROUGH = "erased_through_tombstone"


def write_setting(conn: Connection, key: str, value: str) -> None:
    """Set a catalog setting (the meta table) inside the caller's transaction."""
    conn.execute(sa.delete(meta).where(meta.c.key == key))
    conn.execute(sa.insert(meta).values(key=key, value=value))


def delete_faces(conn: Connection, where: sa.ColumnElement[bool]) -> None:
    """Delete faces, logging each in face_tombstones in the same transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": FACES_LOCK})
    conn.execute(
        sa.insert(face_tombstones).from_select(
            ["face_id", "model_id"], sa.select(faces.c.id, faces.c.model_id).where(where).order_by(faces.c.id)
        )
    )
    conn.execute(sa.delete(faces).where(where))


def _face_values(image_id: int, index: int, face: Face) -> dict:
    x, y, w, h = face.box
    return dict(
        image_id=image_id,
        face_index=index,
        x=x,
        y=y,
        w=w,
        h=h,
        landmarks=json.dumps(np.round(face.detection.landmarks, 2).tolist()),
        det_score=face.detection.score,
        size_px=face.quality.size_px,
        sharpness=face.quality.sharpness,
        yaw=face.quality.yaw,
        quality=face.quality.score,
        model_id=face.model_id,
        embedding=np.ascontiguousarray(face.embedding, np.float32).tobytes(),
    )


def _insert_for(dialect: str) -> Any:
    """INSERT with the dialect's ON CONFLICT clause (both SQLite and PostgreSQL have one)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def redacted(url: str) -> str:
    """A catalog URL fit to print or log: any password replaced by ***."""
    return re.sub(r"^([a-z0-9+]+://[^:/@?]*):[^@/?]+@", r"\1:***@", url)


def _with_driver(url: str) -> str:
    """PostgreSQL through psycopg 3 (the `server` extra), whichever spelling the user gave."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _chunks(items: Sequence[int], n: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA secure_delete=ON")  # deleted rows (embeddings) are overwritten, not left behind
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
