"""Files facefind writes are private to the account running it: 0600 files, 0700 folders; an
existing catalog or vector folder others may read gets a warning naming it and the fix."""

from __future__ import annotations

import logging
import os
import shlex
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import facefind

from .conftest import OBAMA, new_catalog, run_cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (022), under which files were created 0644 before."""
    saved = os.umask(0o022)
    yield
    os.umask(saved)


def test_a_new_catalog_its_wal_lock_key_and_vector_index_are_private(
    tmp_path: Path, open_umask: None
) -> None:
    db = new_catalog(tmp_path / "catalog.db")
    with facefind.open(db) as ff:
        report = ff.index(OBAMA, workers=1)
        assert report.indexed == 1
        for suffix in ("-wal", "-shm"):  # SQLite's own files exist while a connection is open
            assert mode(Path(f"{db}{suffix}")) == 0o600, suffix
    assert mode(db) == 0o600
    assert mode(Path(f"{db}.lock")) == 0o600
    vectors = Path(f"{db}.vectors")
    found = list(vectors.rglob("*"))
    assert any(p.name == "CURRENT" for p in found) and any(p.suffix == ".faiss" for p in found)
    assert mode(vectors) == 0o700
    for path in found:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_an_existing_catalog_others_can_read_gets_a_warning_with_the_fix(
    tmp_path: Path, open_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    db = new_catalog(tmp_path / "catalog.db")
    with facefind.open(db) as ff:
        ff.index(OBAMA, workers=1)
    db.chmod(0o644)
    Path(f"{db}.vectors").chmod(0o755)
    with caplog.at_level(logging.WARNING), facefind.open(db) as ff:
        ff.vector_index()
    said = "\n".join(r.getMessage() for r in caplog.records)
    fix, fix_vectors = f"chmod 600 {shlex.quote(str(db))}", f"chmod -R go-rwx {shlex.quote(f'{db}.vectors')}"
    assert fix in said and fix_vectors in said, said
    proc = run_cli("collection", "list", db=db, check=True)  # the CLI says it once, on stderr
    assert proc.stderr.count(fix) == 1, proc.stderr
    assert "chmod" not in proc.stdout
    db.chmod(0o600)
    assert "chmod" not in run_cli("collection", "list", db=db, check=True).stderr
