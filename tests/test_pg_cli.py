"""`facefind pg start`: never opens the folders above DIR without being asked, and a failed start
is one line saying what went wrong and what to do (the full output in a log file it names)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .conftest import run_cli

pytest.importorskip("pgserver", reason="the embedded PostgreSQL needs facefind[server]")

as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="only as root does pgserver run PostgreSQL as another user"
)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def one_line_error(proc) -> str:  # type: ignore[no-untyped-def]
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@as_root
def test_a_dir_under_a_private_folder_is_refused_and_left_private(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    refused = run_cli("pg", "start", private / "pg")
    line = one_line_error(refused)
    assert f"{private} (0700 -> 0755)" in line
    assert "--allow-open-parents" in line
    assert mode(private) == 0o700 and not (private / "pg").exists()


def test_a_failed_start_is_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    line = one_line_error(run_cli("pg", "start", a_file, "--allow-open-parents"))
    assert "is a file" in line

    others = tmp_path / "others"
    others.mkdir()
    (others / "notes.txt").write_text("mine")
    line = one_line_error(run_cli("pg", "start", others, "--allow-open-parents"))
    assert "holds other files" in line

    # PostgreSQL itself fails: a data folder that only looks like one.
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "PG_VERSION").write_text("18\n")
    line = one_line_error(run_cli("pg", "start", fake, "--allow-open-parents"))
    log = re.search(r"full output in (\S+\.log)", line)
    assert log and "PostgreSQL did not start" in line, line
    assert "pg_control" in line  # pg_ctl's own reason, not Python's
    assert "pg_ctl" in Path(log.group(1)).read_text()
    Path(log.group(1)).unlink()


def test_allow_open_parents_starts_and_says_what_it_opened(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    folder = private / "pg"
    started = run_cli("pg", "start", folder, "--allow-open-parents")
    try:
        assert started.returncode == 0, started.stderr
        assert "postgresql://" in started.stdout
        if os.geteuid() == 0:
            assert f"{private} (0700 -> 0755)" in started.stderr
            assert mode(private) == 0o755
        else:
            assert "opened" not in started.stderr and mode(private) == 0o700
        again = run_cli("pg", "start", folder)  # running already: nothing to open, no refusal
        assert again.returncode == 0 and again.stdout.splitlines()[0] == started.stdout.splitlines()[0]
    finally:
        run_cli("pg", "stop", folder, check=True)
