"""Fuzz: 1,000 hostile files through `index` and `search`, with bounded time and memory.

Zero tracebacks, nothing hangs, every valid photo is indexed, every other file is listed with a
reason, and a re-run changes nothing. FACEFIND_FUZZ_SEED picks another zoo (default 11).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from facefind.paths import from_stored

from . import hostile
from .conftest import FR, new_catalog

SEED = int(os.environ.get("FACEFIND_FUZZ_SEED", "11"))
HOSTILE = 1000
MEMORY = 2048 * 2**20  # address space a process (workers inherit it): ~1.2 GiB, OpenVINO maps ~0.3 more
TIMEOUT = 600


def bounded() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,  # a hang fails the test instead of stalling the suite
        preexec_fn=bounded,
    )


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> hostile.Zoo:
    photos = [FR / "Barack_Obama" / "obama.jpg", FR / "Joe_Biden" / "biden.jpg"]
    photos += sorted(FR.glob("*/*.jpg"))[:2]
    return hostile.build(tmp_path_factory.mktemp("zoo") / "zoo", photos, HOSTILE, SEED)


def test_index_survives_a_thousand_hostile_files(zoo: hostile.Zoo, tmp_path: Path) -> None:
    assert len(zoo.hostile) + len(zoo.special) >= HOSTILE
    db = new_catalog(tmp_path / "catalog.db")
    first = run("-m", "facefind", "index", zoo.root, "--workers", "2", "--json", "--db", db)
    assert "Traceback" not in first.stderr, first.stderr[-3000:]
    assert first.returncode == 3, first.stderr[-3000:]
    assert not [line for line in first.stderr.splitlines() if not line.startswith("indexing: ")]
    report = json.loads(first.stdout)

    failed = {os.fsencode(from_stored(e["path"])): e["error"] for e in report["error_files"]}
    assert not zoo.valid & failed.keys(), [failed[p] for p in zoo.valid & failed.keys()]
    assert report["indexed"] + report["errors"] == report["files_seen"]
    assert report["indexed"] >= len(zoo.valid)
    assert all(reason.strip() for reason in failed.values())
    special = {p for p in zoo.special if not os.path.isdir(p)}
    assert special <= failed.keys()  # listed, with a reason, never read

    listed = json.loads(run("-m", "facefind", "errors", "--json", "--db", db).stdout)
    assert {os.fsencode(from_stored(e["path"])) for e in listed} == failed.keys()

    again = run("-m", "facefind", "index", zoo.root, "--workers", "2", "--json", "--db", db)
    assert again.returncode == 3 and "Traceback" not in again.stderr
    rerun = json.loads(again.stdout)
    assert (rerun["indexed"], rerun["errors"], rerun["unchanged"]) == (0, report["errors"], report["indexed"])


SEARCH_ALL = """
import json, sys
import facefind
from facefind.errors import FacefindError

db, paths = sys.argv[1], json.load(open(sys.argv[2]))
outcome = {"matched": 0, "refused": 0, "crashed": []}
with facefind.open(db, purpose="fuzz") as ff:
    for path in paths:
        try:
            ff.search(path, top_k=3)
            outcome["matched"] += 1
        except FacefindError as err:
            outcome["refused"] += 1 if str(err).strip() else 0
        except Exception as err:  # what the test is looking for
            outcome["crashed"].append([path, repr(err)])
print(json.dumps(outcome))
"""


def test_search_survives_the_same_files(zoo: hostile.Zoo, tmp_path: Path) -> None:
    db = new_catalog(tmp_path / "catalog.db")
    assert run("-m", "facefind", "index", FR, "--workers", "1", "--db", db).returncode == 0
    # Every special file and valid photo, and every fourth mutated one (search analyses each
    # query in this process, so all 1,000 would cost a minute more and find nothing new).
    queries = sorted(zoo.special | zoo.valid) + sorted(zoo.hostile)[::4]
    listing = tmp_path / "queries.json"
    listing.write_text(json.dumps([os.fsdecode(p) for p in queries]))
    script = tmp_path / "search_all.py"
    script.write_text(SEARCH_ALL)
    proc = run(script, db, listing)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert not proc.stderr.strip(), proc.stderr[-3000:]  # no raw decoder or library output
    outcome = json.loads(proc.stdout)
    assert outcome["crashed"] == []
    assert outcome["matched"] + outcome["refused"] == len(queries)
    assert outcome["matched"] >= len(zoo.valid)  # every valid photo has a face to search with
