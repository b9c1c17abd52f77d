"""Files facefind writes are the running account's alone: 0600 files, 0700 folders.

The catalog, its WAL, the vector index and the lock files hold (or lead to) face embeddings, so
no other local account may read them, whatever the umask. An existing file or folder that others
may read or write (made by an older facefind, or chmod-ed) is reported once per process, through
the `facefind` logger, with the command that fixes it; it is never changed behind the owner's back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import stat
from pathlib import Path

from .paths import shown

FILE_MODE = 0o600
FOLDER_MODE = 0o700
log = logging.getLogger("facefind")
_warned: set[str] = set()


def create_file(path: Path) -> None:
    """Create `path` empty and private if it does not exist (before another library opens it)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def open_file(path: Path | str) -> int:
    """A descriptor for appending to `path` (a lock file), created private if missing."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)


def make_folder(path: Path) -> None:
    """Create `path` and any missing parents private (0700); existing folders are left as they are."""
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(FOLDER_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, FOLDER_MODE)  # mkdir's mode is reduced by the umask; never widened


def make_private(path: Path) -> None:
    """Give a file facefind just wrote the private mode (another library created it)."""
    os.chmod(path, FOLDER_MODE if path.is_dir() else FILE_MODE)


def warn_if_shared(path: Path, what: str) -> None:
    """Log a warning, once per process and path, if others may read or write `path`."""
    try:
        st = path.lstat()
    except OSError:
        return
    if not st.st_mode & 0o077 or str(path) in _warned:
        return
    _warned.add(str(path))
    folder = stat.S_ISDIR(st.st_mode)
    fix = f"chmod -R go-rwx {shlex.quote(str(path))}" if folder else f"chmod 600 {shlex.quote(str(path))}"
    log.warning(
        "warning: %s %s can be read or changed by other accounts on this machine (mode %s); it holds "
        "face data. Fix: %s",
        what,
        shown(str(path)),
        oct(stat.S_IMODE(st.st_mode))[2:].zfill(4),
        shown(fix),
    )
