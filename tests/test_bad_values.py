"""Bad option values get a clear error and change nothing; odd stored values do not crash a command."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import facefind
from facefind.errors import FacefindError

from .conftest import BIDEN, FR, OBAMA, new_catalog, run_cli, run_json


@pytest.fixture
def db(fr_copy: Path) -> Path:
    return fr_copy


def test_audit_show_reads_person_decisions_as_text(db: Path) -> None:
    """`audit show` crashed (TypeError) on the entries of `people split` and `people remove`."""
    person = max(run_json("people", "list", db=db), key=lambda p: p["face_count"])
    first, second = (f["face_id"] for f in person["faces"][:2])
    run_json("people", "split", str(person["id"]), "--face", str(first), db=db)
    run_json("people", "remove", str(person["id"]), "--face", str(second), db=db)
    shown = run_cli("audit", "show", db=db)
    assert shown.returncode == 0, shown.stderr
    assert "decision=split" in shown.stdout and "decision=remove" in shown.stdout
    assert f"faces={first}" in shown.stdout


def test_retention_past_100_years_is_refused_and_old_ones_do_not_break_purge(db: Path) -> None:
    before = run_json("collection", "list", db=db)
    refused = run_cli(
        "collection", "create", "x", "--owner", "a", "--basis", "own", "--retention", "3000y", db=db
    )
    assert refused.returncode == 1 and "100 years" in refused.stderr
    assert run_json("collection", "list", db=db) == before
    # A catalog that accepted such a period earlier: purge used to die (OverflowError) for everyone.
    run_json("collection", "create", "old", "--owner", "a", "--basis", "own", "--retention", "5y", db=db)
    with sqlite3.connect(db) as conn:
        conn.execute("update collections set retention_days = 1095000 where name = 'old'")
    purged = run_cli("purge", db=db)
    assert purged.returncode == 0, purged.stderr


def test_top_k_is_bounded_in_the_library_and_the_cli(db: Path) -> None:
    huge = run_cli("search", OBAMA, "--purpose", "t", "--top-k", "99999999999999999999", db=db)
    assert huge.returncode == 1 and "from 1 to 10,000" in huge.stderr and "Traceback" not in huge.stderr
    with facefind.open(db, purpose="t") as ff, pytest.raises(FacefindError, match="from 1 to 10,000"):
        ff.search(OBAMA, top_k=1_000_000_000)


SCRIPT = """
import facefind
ff = facefind.open({db!r})
if not ff.collections():
    ff.create_collection("default", owner="me", basis="own", retention="1y")
print(ff.index({photos!r}, workers=2).indexed)
"""


def test_a_script_without_main_guard_just_works(tmp_path: Path) -> None:
    """face_recognition-style scripts have no main guard: the worker processes must not import
    them (they would index again from every worker), and with a guard it works the same."""
    photos = FR.parent / "deepface"  # 61 photos: more than are analysed in-process
    plain = tmp_path / "plain.py"
    plain.write_text(SCRIPT.format(db=str(tmp_path / "a.db"), photos=str(photos)))
    guarded = tmp_path / "guarded.py"
    body = SCRIPT.format(db=str(tmp_path / "b.db"), photos=str(photos)).strip().splitlines()
    guarded.write_text("if __name__ == '__main__':\n" + "\n".join("    " + line for line in body) + "\n")
    for script in (plain, guarded):
        ran = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip().splitlines() == ["61"]  # printed once: no worker ran the script


def test_the_same_opt_out_twice_counts_its_faces_once(db: Path) -> None:
    first = run_json("optout", "add", BIDEN, db=db)
    run_json("optout", "add", BIDEN, db=db)
    report = run_json("report", db=db)
    assert report["optouts"]["in_force"] == 2
    assert report["optouts"]["faces_suppressed"] == first["faces_suppressed"] == 2


def test_fifos_and_devices_are_skipped_not_read(tmp_path: Path) -> None:
    """A FIFO named x.jpg hung `index` (and `search`); a link to /dev/zero read until memory ran out."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for photo in (FR / "Joe_Biden").iterdir():
        shutil.copy(photo, photos / photo.name)
    os.mkfifo(photos / "x.jpg")
    (photos / "z.jpg").symlink_to("/dev/zero")
    db = new_catalog(tmp_path / "c.db")
    indexed = run_cli("index", photos, "--json", db=db, timeout=120)  # hung for ever before
    assert indexed.returncode == 3, indexed.stderr
    report = json.loads(indexed.stdout)
    assert report["indexed"] == 2 and report["errors"] == 2
    reasons = {Path(e["path"]).name: e["error"] for e in report["error_files"]}
    assert "FIFO" in reasons["x.jpg"] and "character device" in reasons["z.jpg"]
    searched = run_cli("search", photos / "x.jpg", "--purpose", "t", db=db, timeout=60)
    assert searched.returncode == 1 and "FIFO" in searched.stderr


def test_a_catalog_in_a_missing_folder_or_an_unsupported_url_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "c.db"
    refused = run_cli("stats", db=missing)
    assert refused.returncode == 1 and "does not exist" in refused.stderr
    assert not (tmp_path / "no").exists()  # nothing created, not even the folders
    url = run_cli("stats", "--db", "mysql://someone@localhost/photos")  # SQLite and PostgreSQL only
    assert url.returncode == 1 and "cannot use the catalog URL" in url.stderr
    assert "Traceback" not in url.stderr
    assert "PostgreSQL database (--db postgresql://" in url.stderr


def corrupt_middle(photo: Path) -> bytes:
    """The photo with bytes in the middle of its entropy-coded data garbled (it still decodes)."""
    data = bytearray(photo.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 40):
        data[i] = 0xFF if i % 7 == 0 else data[i] ^ 0x55
    return bytes(data)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_decoder_warnings_are_reported_per_file_not_printed_raw(tmp_path: Path, workers: str) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for n, photo in enumerate(sorted(FR.glob("*/*.jpg"))[:10]):
        shutil.copy(photo, photos / f"{n:02}.jpg")
    (photos / "damaged.jpg").write_bytes(corrupt_middle(OBAMA))
    db = new_catalog(tmp_path / "catalog.db")
    proc = run_cli("index", photos, "--workers", workers, "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    assert "Corrupt JPEG" not in proc.stderr
    report = json.loads(proc.stdout)
    assert report["indexed"] == 11
    assert [(Path(d["path"]).name, d["error"]) for d in report["damaged_files"]] == [
        ("damaged.jpg", "Corrupt JPEG data: premature end of data segment")
    ]


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_an_index_killed_by_sigkill(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for n, photo in enumerate(sorted(FR.glob("*/*.jpg")) * 10):
        shutil.copy(photo, photos / f"{n:03}.jpg")
    db = new_catalog(tmp_path / "catalog.db")
    cmd = [sys.executable, "-m", "facefind", "index", str(photos), "--workers", "2", "--db", str(db)]
    index = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(workers := _children(index.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(workers) >= 2, "the workers never started"
    time.sleep(2)  # busy analysing
    index.kill()
    index.wait()
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, workers)), "worker processes outlived their parent"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", OBAMA, "--purpose", "t", "--top-k", "0"], "--top-k 0: give a number from 1 to 10,000"),
        (["search", OBAMA, "--purpose", "t", "--threshold", "nan"], "--threshold nan: give a number from -1"),
        (["search", OBAMA, "--purpose", "t", "--max-fpir", "1"], "--max-fpir 1.0: give a number above 0 and"),
        (["search", OBAMA, "--purpose", "t", "--max-fmr", "inf"], "--max-fmr inf: give a number above 0, up"),
        (["search", OBAMA, "--purpose", "t", "--face", "-1"], "--face -1: give a number from 0"),
        (["index", FR, "--workers", "100000"], "--workers 100000: give a number from 1 to 256"),
        (["verify", OBAMA, BIDEN, "--threshold", "2"], "--threshold 2.0: give a number from -1 to 1"),
        (["audit", "show", "--since", "yesterday"], "--since 'yesterday' is not a date"),
        (["purge", "--audit-older-than", "999999d"], "--audit-older-than '999999d' is 999,999 days"),
        (["people", "show", "99999999999999999999"], "no person with id 99999999999999999999"),
        (
            ["people", "merge", "99999999999999999999", "--into", "1"],
            "no person with id 99999999999999999999",
        ),
        (["consent", "withdraw", "99999999999999999999"], "no consent with id 99999999999999999999"),
        (["erase", "person", "99999999999999999999"], "no person with id 99999999999999999999"),
        (["search", "--person", "-3", "--purpose", "t"], "no person with id -3"),
    ],
)
def test_out_of_range_values_are_refused_with_the_range(db: Path, args: list, message: str) -> None:
    """limits.py is the one place: CLI and library give the same message; nothing is changed."""
    before = db.read_bytes()
    proc = run_cli(*args, db=db)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert db.read_bytes() == before


def test_the_file_size_limit_is_named_and_can_be_raised(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(OBAMA.read_bytes() + bytes(3 * 2**20))  # a real photo with 3 MiB of trailing junk
    env = {**os.environ, "FACEFIND_MAX_FILE_BYTES": str(2**21)}
    db = new_catalog(tmp_path / "catalog.db")
    refused = run_cli("search", big, "--purpose", "t", db=db, env=env)
    assert refused.returncode == 1 and "over the 2 MiB" in refused.stderr
    assert "FACEFIND_MAX_FILE_BYTES=" in refused.stderr
    env["FACEFIND_MAX_FILE_BYTES"] = str(2**23)
    assert run_cli("search", big, "--purpose", "t", db=db, env=env).returncode == 0
    env["FACEFIND_MAX_FILE_BYTES"] = "12"
    odd = run_cli("search", big, "--purpose", "t", db=db, env=env)
    assert odd.returncode == 1 and "FACEFIND_MAX_FILE_BYTES='12': give a number from 1,048,576" in odd.stderr
