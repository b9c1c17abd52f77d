"""The catalog's tables and their migrations, in portable SQL types (SQLAlchemy Core)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..paths import from_stored, to_stored

SCHEMA_VERSION = 11
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
    sa.Column("collections", sa.Text),  # JSON list of the collections a key is limited to; null: all
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

# Security (schema 9) ------------------------------------------------------------------------
# Folders a collection may be indexed from by the service (`collection create/update --root`):
# an index job names a path under one of them, or is refused (accountability/collections.py).
collection_roots = sa.Table(
    "collection_roots",
    metadata,
    sa.Column(
        "collection_id", sa.Integer, sa.ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("root", FileName, primary_key=True),  # absolute, symlinks resolved
)
# Content hashes of erased photos: indexing refuses a file with one of them, so a routine re-index
# cannot bring an erased photo back (accountability/erasure.py). A hash, never the photo.
erased_photos = sa.Table(
    "erased_photos",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("erased_at", sa.String(32), nullable=False),
    sa.Column("receipt", sa.String(64)),  # the erasure's receipt id or audit reference
)
# Consent follows faces: every face that was ever a face of a person with consent records stays
# bound to that person's consent (the "subject"), wherever the face goes later (split, "not this
# person", re-clustering, a new photo that matches a withheld person). person_id is the consent
# subject's id, a plain number like consents.person_id (accountability/consent.py).
face_subjects = sa.Table(
    "face_subjects",
    metadata,
    sa.Column("face_id", sa.Integer, sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("person_id", sa.Integer, primary_key=True),
)
sa.Index("ix_face_subjects_person", face_subjects.c.person_id)
# Web UI sessions (api/ui.py): a random id handed to the browser; only its hash is kept. Ended by
# sign-out, expiry or the revocation of the key it was opened with.
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id_sha256", sa.String(64), primary_key=True),
    sa.Column("key_name", sa.String(200), sa.ForeignKey("api_keys.name", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),
    sa.Column("ended_at", sa.String(32)),
)


# The review queue (people/review.py): a face or person a reviewer skipped comes after every
# question not skipped. "No" answers are face_rejections; "yes" answers move faces (pinned).
review_skips = sa.Table(
    "review_skips",
    metadata,
    sa.Column("subject", sa.String(16), primary_key=True),  # "face" or "person"
    sa.Column("subject_id", sa.Integer, primary_key=True),
    sa.Column("skipped_at", sa.String(32), nullable=False),
)
# Faces a user drew (people/manual.py): embedded like detected ones, never replaced by a re-index.
manual_faces = sa.Table(
    "manual_faces",
    metadata,
    sa.Column("face_id", sa.Integer, sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("added_by", sa.String(200), nullable=False),
    sa.Column("added_at", sa.String(32), nullable=False),
)
# "Not a face": false detections a user removed, remembered by photo content and box so that a
# re-index of the same photo does not bring them back.
not_faces = sa.Table(
    "not_faces",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("x", sa.Float, nullable=False),
    sa.Column("y", sa.Float, nullable=False),
    sa.Column("w", sa.Float, nullable=False),
    sa.Column("h", sa.Float, nullable=False),
    sa.Column("marked_by", sa.String(200), nullable=False),
    sa.Column("marked_at", sa.String(32), nullable=False),
)
sa.Index("ix_not_faces_sha256", not_faces.c.sha256)
# Retention by last use (BIPA Sec. 15(a)): a collection's photos are destroyed `destroy_after_days`
# after their last interaction (indexed, or returned by a search); `facefind purge` applies it.
collection_rules = sa.Table(
    "collection_rules",
    metadata,
    sa.Column(
        "collection_id", sa.Integer, sa.ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("destroy_after_days", sa.Integer, nullable=False),
)


# Two-person confirmation of search candidates (issue 26; accountability/confirmations.py) -----
# How many distinct people must confirm a candidate of a 1:N search in a collection before it is
# an identification; a collection without a row needs DEFAULT_CONFIRMATIONS (2).
collection_confirmations = sa.Table(
    "collection_confirmations",
    metadata,
    sa.Column(
        "collection_id", sa.Integer, sa.ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("required", sa.Integer, nullable=False),
)
# The person an API key belongs to (`keys add NAME --person WHO`): confirmations count people, so
# two keys of one person count once. A key without a row is its own person (its name).
key_persons = sa.Table(
    "key_persons",
    metadata,
    sa.Column(
        "key_name", sa.String(200), sa.ForeignKey("api_keys.name", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("person", sa.String(200), nullable=False),
)
# Each match of each query face of a 1:N search (the search's audit entry `search_seq`): a
# candidate awaiting confirmation. Goes with its face (an erased face is no candidate).
review_candidates = sa.Table(
    "review_candidates",
    metadata,
    sa.Column("search_seq", sa.Integer, primary_key=True),
    sa.Column("face_id", sa.Integer, sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("query_face", sa.Integer, nullable=False),
    sa.Column("similarity", sa.Float, nullable=False),
    sa.Column("fmr", sa.Float, nullable=False),
    sa.Column("required", sa.Integer, nullable=False),  # the collection's rule when searched
    sa.Column("searcher", sa.String(200), nullable=False),
    sa.Column("searched_at", sa.String(32), nullable=False),
    sa.Column("purpose", sa.Text),
)
sa.Index("ix_review_candidates_face", review_candidates.c.face_id)
# Confirmations and rejections (each also an audit entry, `audit_seq`); `person` is who counts.
review_decisions = sa.Table(
    "review_decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("search_seq", sa.Integer, nullable=False),
    sa.Column("face_id", sa.Integer, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),  # "confirm" or "reject"
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("person", sa.String(200), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("audit_seq", sa.Integer),
)
sa.Index("ix_review_decisions_candidate", review_decisions.c.search_seq, review_decisions.c.face_id)
# The query face of a 1:N search with candidates, as a small JPEG, so that a reviewer sees it beside
# each candidate; kept until `expires_at` (the shortest retention of the candidates' collections),
# removed by `purge` then, and as soon as no candidate of the search is left (erasure).
review_query_faces = sa.Table(
    "review_query_faces",
    metadata,
    sa.Column("search_seq", sa.Integer, primary_key=True),
    sa.Column("query_face", sa.Integer, primary_key=True),
    sa.Column("jpeg", sa.LargeBinary, nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


def _migrate_7_to_8(conn: Connection) -> None:
    """Keys limited to some collections (a catalog migrated from before 7 has the column already)."""
    if "collections" not in {c["name"] for c in sa.inspect(conn).get_columns("api_keys")}:
        conn.exec_driver_sql("ALTER TABLE api_keys ADD COLUMN collections TEXT")


def _migrate_8_to_9(conn: Connection) -> None:
    """Security review: collection roots, erased photos' hashes, consent subjects, sessions."""
    metadata.create_all(conn, tables=[collection_roots, erased_photos, face_subjects, sessions])


def _migrate_9_to_10(conn: Connection) -> None:
    """People at scale (issue 24): review skips, manual faces, "not a face" marks; oversight
    (issue 26): collections' destroy-after-last-use rules."""
    metadata.create_all(conn, tables=[review_skips, manual_faces, not_faces, collection_rules])


def _migrate_10_to_11(conn: Connection) -> None:
    """Oversight (issue 26): two-person confirmation of search candidates."""
    tables = [collection_confirmations, key_persons, review_candidates, review_decisions, review_query_faces]
    metadata.create_all(conn, tables=tables)


# MIGRATIONS[n] takes a catalog from schema version n + 1 to n + 2. A new catalog is created
# directly at SCHEMA_VERSION from `metadata`.
MIGRATIONS = [
    _migrate_1_to_2,
    _migrate_2_to_3,
    _migrate_3_to_4,
    _migrate_4_to_5,
    _migrate_5_to_6,
    _migrate_6_to_7,
    _migrate_7_to_8,
    _migrate_8_to_9,
    _migrate_9_to_10,
    _migrate_10_to_11,
]
