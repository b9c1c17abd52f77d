"""The catalog: collections, images and faces (with embeddings) in SQLite or, later, PostgreSQL.

Only portable SQL types are used (SQLAlchemy Core), so the same schema can live in PostgreSQL.
Every write that belongs together happens in one transaction: a crash at any moment leaves
either the old or the new state of an image, never half of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .errors import CatalogError, NotFound
from .faces import Face
from .paths import from_stored, to_stored

SCHEMA_VERSION = 7
metadata = sa.MetaData()


class FileName(sa.TypeDecorator[str]):
    """Text that may hold a file name which is not valid UTF-8 (paths.py), stored losslessly."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else to_stored(value)

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else from_stored(value)


meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
collections = sa.Table(
    "collections",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    # The lawful basis (accountability/collections.py); indexing needs one. Null in collections
    # made before schema 4 until `facefind collection create` gives them one.
    sa.Column("owner", sa.String(200)),
    sa.Column("basis", sa.String(32)),
    sa.Column("basis_note", sa.Text),
    sa.Column("retention_days", sa.Integer),
)
images = sa.Table(
    "images",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "collection_id", sa.Integer, sa.ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("path", FileName, nullable=False),
    sa.Column("sha256", sa.String(64)),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
    sa.Column("status", sa.String(16), nullable=False),  # "indexed" or "error"
    sa.Column("error", FileName),  # may quote a file name
    sa.Column("indexed_at", sa.String(32), nullable=False),
    sa.UniqueConstraint("collection_id", "path"),
)
sa.Index("ix_images_sha256", images.c.sha256)
faces = sa.Table(
    "faces",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
    sa.Column("face_index", sa.Integer, nullable=False),
    sa.Column("x", sa.Float, nullable=False),
    sa.Column("y", sa.Float, nullable=False),
    sa.Column("w", sa.Float, nullable=False),
    sa.Column("h", sa.Float, nullable=False),
    sa.Column("landmarks", sa.Text, nullable=False),  # JSON [[x, y] * 5]
    sa.Column("det_score", sa.Float, nullable=False),
    sa.Column("size_px", sa.Float, nullable=False),
    sa.Column("sharpness", sa.Float, nullable=False),
    sa.Column("yaw", sa.Float, nullable=False),
    sa.Column("quality", sa.Float, nullable=False),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),  # float32, L2-normalised
    sa.UniqueConstraint("image_id", "face_index"),
    # Ids are never reused, so "faces with id > the last one indexed" is exactly what is new.
    sqlite_autoincrement=True,
)
sa.Index("ix_faces_image", faces.c.image_id)
sa.Index("ix_faces_model", faces.c.model_id)
# Every deleted face, in deletion order: vector indexes replay this to drop what the catalog dropped.
face_tombstones = sa.Table(
    "face_tombstones",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("face_id", sa.Integer, nullable=False),
    sa.Column("model_id", sa.String(64), nullable=False),
    sqlite_autoincrement=True,
)
# People: a layer over faces. Faces stay what analysis produced; who they are lives here.
persons = sa.Table(
    "persons",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("hidden", sa.Boolean, nullable=False, default=False),
    sa.Column("cover_face_id", sa.Integer, sa.ForeignKey("faces.id", ondelete="SET NULL")),
    sa.Column("created_at", sa.String(32), nullable=False),
    sqlite_autoincrement=True,  # a person id, once shown to a user, never means someone else
)
# pinned = placed by a user (merge, split); clustering never moves a pinned face.
face_persons = sa.Table(
    "face_persons",
    metadata,
    sa.Column("face_id", sa.Integer, sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), nullable=False),
    sa.Column("pinned", sa.Boolean, nullable=False, default=False),
)
sa.Index("ix_face_persons_person", face_persons.c.person_id)
# "Not this person": clustering never puts the face back into that person.
face_rejections = sa.Table(
    "face_rejections",
    metadata,
    sa.Column("face_id", sa.Integer, sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True),
)
# The audit log: every search, verify, export, erasure and consent change, hash-chained
# (accountability/audit.py). Rows are only ever appended, except by a retention purge.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("purpose", sa.Text),
    sa.Column("query_sha256", sa.String(64)),
    sa.Column("details", sa.Text, nullable=False),  # canonical JSON
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
# Opt-outs: the face template of someone who asked to be left out (never their photo), and the
# stored faces it suppresses (accountability/optouts.py).
optouts = sa.Table(
    "optouts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("template", sa.LargeBinary, nullable=False),  # float32, L2-normalised
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sqlite_autoincrement=True,
)
face_suppressions = sa.Table(
    "face_suppressions",
    metadata,
    sa.Column("face_id", sa.Integer, sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("optout_id", sa.Integer, sa.ForeignKey("optouts.id", ondelete="CASCADE"), primary_key=True),
)
# Consent of named persons (accountability/consent.py). Kept after a person is erased: it is the
# record of what was allowed, not biometric data, so person_id is a plain number.
consents = sa.Table(
    "consents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("person_id", sa.Integer, nullable=False, index=True),
    sa.Column("given_by", sa.String(200), nullable=False),
    sa.Column("scope", sa.String(100), nullable=False),  # comma-separated: search,results,clustering
    sa.Column("expires_on", sa.String(10), nullable=False),  # ISO date, last valid day
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("recorded_by", sa.String(200), nullable=False),
    sa.Column("withdrawn_at", sa.String(32)),
    sqlite_autoincrement=True,
)
calibrations = sa.Table(
    "calibrations",
    metadata,
    sa.Column("model_id", sa.String(64), primary_key=True),
    sa.Column("table_json", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)
# Keys of the service (accountability/keys.py): only a hash of each key is kept.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("key_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("revoked_at", sa.String(32)),
)
# Index jobs of the service (api/jobs.py), with progress and a heartbeat.
index_jobs = sa.Table(
    "index_jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("path", FileName, nullable=False),
    sa.Column("collection", sa.String(200), nullable=False),
    sa.Column("retry_errors", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("started_by", sa.String(200), nullable=False),
    sa.Column("owner", sa.String(300), nullable=False),  # host:pid of the process running it
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),  # the heartbeat
    sa.Column("done", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("restarts", sa.Integer, nullable=False),
    sa.Column("cancel", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("report", sa.Text),  # JSON IndexReport when finished
    sqlite_autoincrement=True,
)
# Recognizers an operator registered (recognizers.py); the built-in SFace is not listed. The file
# stays where the operator keeps it and is checked against sha256 each time it is loaded.
recognizers = sa.Table(
    "recognizers",
    metadata,
    sa.Column("model_id", sa.String(64), primary_key=True),
    sa.Column("path", FileName, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("input_size", sa.Integer, nullable=False),
    sa.Column("dim", sa.Integer, nullable=False),
    sa.Column("color", sa.String(8), nullable=False),  # rgb | bgr
    sa.Column("mean", sa.Float, nullable=False),
    sa.Column("std", sa.Float, nullable=False),
    sa.Column("registered_at", sa.String(32), nullable=False),
    sa.Column("registered_by", sa.String(200), nullable=False),
)
# Embeddings of a face by models other than faces.model_id (the active model's, or the model the
# face was last embedded with): kept so switching back is quick, and staged here while
# `facefind models use` re-embeds. Never holds a face's faces.model_id; rows go with their face.
face_embeddings = sa.Table(
    "face_embeddings",
    metadata,
    sa.Column("face_id", sa.Integer, sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("model_id", sa.String(64), primary_key=True),
    sa.Column("embedding", sa.LargeBinary, nullable=False),  # float32, L2-normalised
)
sa.Index("ix_face_embeddings_model", face_embeddings.c.model_id)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


def _migrate_1_to_2(conn: Connection) -> None:
    """Face ids become never-reused (SQLite AUTOINCREMENT) and deletions are logged."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("ALTER TABLE faces RENAME TO faces_v1")
        for index in ("ix_faces_image", "ix_faces_model"):
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
        metadata.create_all(conn, tables=[faces, face_tombstones])
        columns = ", ".join(c.name for c in faces.columns)
        conn.exec_driver_sql(f"INSERT INTO faces ({columns}) SELECT {columns} FROM faces_v1")
        conn.exec_driver_sql("DROP TABLE faces_v1")
    else:
        metadata.create_all(conn, tables=[face_tombstones])


def _migrate_2_to_3(conn: Connection) -> None:
    """People: persons, face assignments and rejections."""
    metadata.create_all(conn, tables=[persons, face_persons, face_rejections])


def _migrate_3_to_4(conn: Connection) -> None:
    """Accountability: the audit log, a lawful basis per collection, opt-outs."""
    metadata.create_all(conn, tables=[audit_log, optouts, face_suppressions, consents])
    present = {c["name"] for c in sa.inspect(conn).get_columns("collections")}
    for column in ("owner", "basis", "basis_note", "retention_days"):
        if column in present:
            continue
        kind = collections.c[column].type.compile(conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE collections ADD COLUMN {column} {kind}")


def _migrate_4_to_5(conn: Connection) -> None:
    """Pluggable recognizers: registered models and per-model embeddings of each face."""
    metadata.create_all(conn, tables=[recognizers, face_embeddings])


def _migrate_5_to_6(conn: Connection) -> None:
    """File names are stored in paths.py's reversible form, in which a backslash is doubled."""
    for table, column in (("images", "path"), ("images", "error"), ("recognizers", "path")):
        conn.execute(
            sa.text(f"UPDATE {table} SET {column} = replace({column}, :one, :two)"),
            {"one": "\\", "two": "\\\\"},
        )


def _migrate_6_to_7(conn: Connection) -> None:
    """The service: API keys and index jobs."""
    metadata.create_all(conn, tables=[api_keys, index_jobs])


# MIGRATIONS[n] takes a catalog from schema version n + 1 to n + 2. A new catalog is created
# directly at SCHEMA_VERSION from `metadata`.
MIGRATIONS = [
    _migrate_1_to_2,
    _migrate_2_to_3,
    _migrate_3_to_4,
    _migrate_4_to_5,
    _migrate_5_to_6,
    _migrate_6_to_7,
]


class Catalog:
    def __init__(self, url_or_path: str | Path, *, create_folders: bool = False) -> None:
        """`create_folders`: make the catalog file's folder if missing (the per-user default);
        a folder the user named that does not exist is more likely a typo."""
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
                path.parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{path}"
        self.url = url
        try:
            self.engine: Engine = sa.create_engine(url)
        except (ImportError, sa.exc.NoSuchModuleError, sa.exc.ArgumentError) as err:
            raise CatalogError(
                f"cannot use the catalog URL {url!r}: {err}. facefind's catalog is an SQLite file "
                f"(--db photos.db); PostgreSQL is not supported yet."
            ) from None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self._migrate()
        except sa.exc.DatabaseError as err:
            raise CatalogError(
                f"cannot open the catalog at {url_or_path}: {err.orig}. "
                f"Is it a facefind database? Give another path with --db or FACEFIND_DB."
            ) from None

    def _migrate(self) -> None:
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

    # settings kept with the catalog ------------------------------------------------------
    def get_setting(self, key: str, default: str) -> str:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar_one_or_none()
        return default if found is None else str(found)

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(sa.delete(meta).where(meta.c.key == key))
            conn.execute(sa.insert(meta).values(key=key, value=value))

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
            _delete_faces(conn, faces.c.image_id.in_(chunk))
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
        """Insert or replace one image and all its faces (inside the caller's transaction)."""
        existing = conn.execute(
            sa.select(images.c.id).where(images.c.collection_id == collection_id, images.c.path == path)
        ).scalar_one_or_none()
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
        if existing is None:
            inserted = conn.execute(
                sa.insert(images).values(collection_id=collection_id, path=path, **values)
            )
            image_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
        else:
            image_id = int(existing)
            _delete_faces(conn, faces.c.image_id == image_id)
            conn.execute(sa.update(images).where(images.c.id == image_id).values(**values))
        if found:
            conn.execute(sa.insert(faces), [_face_values(image_id, i, f) for i, f in enumerate(found)])
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

    def last_tombstone(self) -> int:
        query = sa.select(sa.func.coalesce(sa.func.max(face_tombstones.c.seq), 0))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def face_count(self, model_id: str) -> int:
        with self.engine.connect() as conn:
            query = sa.select(sa.func.count()).where(faces.c.model_id == model_id)
            return int(conn.execute(query).scalar_one())

    def face_checksum(self, model_id: str) -> tuple[int, int, int]:
        """(count, sum of ids, sum of hashed ids) of one model's faces, as FaissIndex.checksum()."""
        query = sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(faces.c.id), 0),
            sa.func.coalesce(sa.func.sum((faces.c.id * 2654435761) % 4294967311), 0),
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
                    )
                    .join(images, images.c.id == faces.c.image_id)
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


def _delete_faces(conn: Connection, where: sa.ColumnElement[bool]) -> None:
    """Delete faces, logging each in face_tombstones in the same transaction."""
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
