"""Odd file names: stored losslessly, shown safely; failed files listed and retried on request."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from facefind.catalog import SCHEMA_VERSION
from facefind.paths import from_stored, shown, to_stored

from .conftest import OBAMA, new_catalog, run_cli, run_json

# Linux file name bytes: anything but NUL and "/".
NAME_BYTES = st.binary(min_size=1, max_size=40).map(
    lambda b: b.replace(b"\0", b"").replace(b"/", b"") or b"x"
)


@given(NAME_BYTES, NAME_BYTES)
def test_stored_form_is_lossless_and_keeps_folder_prefixes(folder: bytes, name: bytes) -> None:
    path = os.fsdecode(b"/" + folder + b"/" + name)
    stored = to_stored(path)
    stored.encode("utf-8")  # what a database text column needs
    assert from_stored(stored) == path and os.fsencode(from_stored(stored)) == b"/" + folder + b"/" + name
    assert stored.startswith(to_stored(os.fsdecode(b"/" + folder + b"/")))


@given(st.text())
def test_shown_text_is_one_printable_line(text: str) -> None:
    assert shown(text).isprintable()


ODD_NAMES = {
    "not_utf8": b"\xff\xfe.jpg",
    "escape_codes": b"evil\n\x1b[31mred\x1b[2J.jpg",
    "rich_markup": b"[red]x.jpg",
    "backslash": b"a\\xff.jpg",  # the stored form of the first name, as a real name: must stay distinct
}


def test_odd_names_are_indexed_found_and_printed_safely(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for raw in ODD_NAMES.values():
        shutil.copy(OBAMA, os.path.join(os.fsencode(photos), raw))
    db = new_catalog(tmp_path / "catalog.db")

    indexed = run_cli("index", photos, db=db)
    assert indexed.returncode == 0, indexed.stderr
    assert "4 indexed" in indexed.stdout and "Traceback" not in indexed.stderr

    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("select path from images")}
    assert len(stored) == 4  # distinct, and each readable as UTF-8 by any other program

    hits = run_json("search", OBAMA, "--purpose", "test", db=db)
    found = {from_stored(m["path"]) for m in hits["faces"][0]["matches"]}
    # --json gives every name back exactly through from_stored: each opens the file indexed.
    assert {os.fsencode(p) for p in found} == {os.fsencode(photos) + b"/" + raw for raw in ODD_NAMES.values()}
    assert all(Path(p).is_file() for p in found)
    assert str(photos / "[red]x.jpg") in {m["path"] for m in hits["faces"][0]["matches"]}  # as it is

    for command in (["people", "show", "1"], ["audit", "show"], ["errors"]):
        text = run_cli(*command, db=db)
        assert text.returncode == 0 and "\x1b" not in text.stdout, text.stdout + text.stderr
    shown_search = run_cli("search", OBAMA, "--purpose", "test", db=db).stdout
    assert "\x1b" not in shown_search
    assert "evil\\n\\x1b[31mred\\x1b[2J.jpg" in shown_search and "\\xff\\xfe.jpg" in shown_search
    assert "[red]x.jpg" in shown_search  # markup in a name is printed, not interpreted

    again = run_cli("index", photos, db=db)
    assert again.returncode == 0 and "4 unchanged" in again.stdout, again.stdout + again.stderr
    assert run_cli("audit", "verify", db=db).returncode == 0


def test_text_arguments_that_are_not_utf8_are_refused(tmp_path: Path) -> None:
    db = new_catalog(tmp_path / "catalog.db")
    refused = run_cli("search", OBAMA, "--purpose", os.fsdecode(b"case \xff"), db=db)
    assert (
        refused.returncode == 2 and "not valid UTF-8" in refused.stderr and "Traceback" not in refused.stderr
    )
    assert run_json("audit", "show", db=db)[-1]["action"] == "collection"  # nothing recorded


def test_failed_files_are_listed_reported_again_and_retried_on_request(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(OBAMA, photos / "good.jpg")
    for n in range(25):  # more than the 20 a text report lists
        (photos / f"broken{n:02}.jpg").write_bytes(b"not a photo " + bytes([n]))
    db = new_catalog(tmp_path / "catalog.db")
    first = run_cli("index", photos, db=db)
    assert first.returncode == 3 and "... and 5 more (`facefind errors` lists them all)" in first.stdout

    listed = run_json("errors", db=db)
    assert [e["path"] for e in listed] == [str(photos / f"broken{n:02}.jpg") for n in range(25)]
    assert {e["error"] for e in listed} == {"not a supported image (JPEG, PNG, WebP, BMP, TIFF, HEIC)"}
    assert "broken24.jpg: not a supported image" in run_cli("errors", db=db).stdout

    # Unchanged failed files are failures again (exit 3), not "unchanged ... completed".
    second = run_json("index", photos, db=db, ok_codes=(3,))
    assert second["errors"] == 25 and second["unchanged"] == 1
    assert all(e["earlier"] for e in second["error_files"])

    # Fixed in place with the same size and time: only --retry-errors looks again.
    fixed = photos / "broken00.jpg"
    stat = fixed.stat()
    shutil.copy(OBAMA, fixed)
    os.utime(fixed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with sqlite3.connect(db) as conn:  # size is part of "unchanged": make it match the fixed file
        conn.execute("update images set size = ? where path = ?", (fixed.stat().st_size, str(fixed)))
    retried = run_json("index", photos, "--retry-errors", db=db, ok_codes=(3,))
    assert retried["indexed"] == 1 and retried["errors"] == 24
    assert len(run_json("errors", db=db)) == 24
    assert json.loads(run_cli("stats", "--json", db=db).stdout)["images_indexed"] == 2


def test_names_stored_by_schema_5_read_back_the_same(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(OBAMA, photos / "back\\xff.jpg")
    db = new_catalog(tmp_path / "catalog.db")
    assert run_cli("index", photos, db=db).returncode == 0
    with sqlite3.connect(db) as conn:  # as schema 5 left it: names as given, no escapes
        conn.execute("update images set path = replace(path, '\\\\', '\\')")
        conn.execute("update meta set value = '5' where key = 'schema_version'")
    hits = run_json("search", OBAMA, "--purpose", "test", db=db)["faces"][0]["matches"]
    assert [from_stored(m["path"]) for m in hits] == [str(photos / "back\\xff.jpg")]
    assert run_json("stats", db=db)["schema_version"] == SCHEMA_VERSION
