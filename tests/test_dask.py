"""Ingest on Dask (`facefind index --dask`): the same catalog as the local pool, nothing lost when a
worker is killed, a clear error when the scheduler cannot be reached."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from .conftest import FR, GLINT, new_catalog, run_cli, run_json

distributed = pytest.importorskip("distributed")


def faces_by_photo(db: Path) -> dict[str, list[np.ndarray]]:
    """Every photo in the catalog with the embeddings of its faces, in face order."""
    with sqlite3.connect(db) as conn:
        photos: dict[str, list[np.ndarray]] = {
            path: [] for (path,) in conn.execute("select path from images where status = 'indexed'")
        }
        rows = conn.execute(
            "select i.path, f.embedding from faces f join images i on i.id = f.image_id "
            "order by i.path, f.face_index"
        )
        for path, embedding in rows:
            photos[path].append(np.frombuffer(embedding, dtype=np.float32))
    return photos


def test_dask_local_gives_the_same_catalog_as_the_process_pool(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(FR, photos)
    pool_db = new_catalog(tmp_path / "pool.db")
    dask_db = new_catalog(tmp_path / "dask.db")

    pool = run_json("index", photos, "--workers", "2", db=pool_db)
    on_dask = run_json("index", photos, "--dask", "local", "--workers", "2", db=dask_db)

    assert on_dask["indexed"] == pool["indexed"] == 23
    assert on_dask["faces_found"] == pool["faces_found"] and on_dask["errors"] == 0
    expected, got = faces_by_photo(pool_db), faces_by_photo(dask_db)
    assert got.keys() == expected.keys()
    for path, embeddings in expected.items():
        assert len(got[path]) == len(embeddings), path
        for a, b in zip(got[path], embeddings, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)

    again = run_json("index", photos, "--dask", "local", "--workers", "2", db=dask_db)
    assert (again["indexed"], again["unchanged"]) == (0, 23)  # the catalog says what is done


@pytest.fixture
def glint_sample(tmp_path: Path) -> Path:
    """400 crops of 12 people: a run of several seconds on two workers."""
    photos = tmp_path / "glint"
    for person in sorted(p for p in GLINT.iterdir() if p.is_dir()):
        (photos / person.name).mkdir(parents=True)
        for crop in sorted(person.iterdir())[:34]:
            shutil.copy(crop, photos / person.name / crop.name)
    return photos


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[distributed.LocalCluster]:
    import dask

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": request.param}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
    ):
        yield cluster


class Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def scheduler_log() -> Iterator[Messages]:
    """What the scheduler (running in this process) logs, e.g. that it gave up on a task."""
    messages = Messages()
    logger = logging.getLogger("distributed.scheduler")
    logger.addHandler(messages)
    yield messages
    logger.removeHandler(messages)


@pytest.mark.parametrize(
    "cluster",
    # 3 (Dask's default): the scheduler reruns the dead worker's tasks elsewhere; 0: they fail
    # at once with KilledWorker and facefind retries their photos one by one.
    [3, 0],
    ids=["rerun-by-dask", "retried-by-facefind"],
    indirect=True,
)
def test_a_worker_killed_mid_ingest_loses_nothing(
    glint_sample: Path, cluster: distributed.LocalCluster, scheduler_log: Messages, tmp_path: Path
) -> None:
    count = sum(1 for p in glint_sample.rglob("*") if p.is_file())
    db = new_catalog(tmp_path / "c.db")
    command = [sys.executable, "-m", "facefind", "index", str(glint_sample), "--json", "--db", str(db)]
    with distributed.Client(cluster) as client:
        ingest = subprocess.Popen(
            [*command, "--dask", cluster.scheduler_address],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            saved = wait_for_saved(db, ingest, at_least=40)
            assert ingest.poll() is None and saved < count, "the run ended before a worker could be killed"
            victim = next(iter(client.run(os.getpid).values()))
            os.kill(victim, signal.SIGKILL)
            out, err = ingest.communicate(timeout=120)
        finally:
            if ingest.poll() is None:
                ingest.kill()
        survivors = set(client.run(os.getpid).values())
    assert victim not in survivors
    gave_up = any("marked as failed because" in line for line in scheduler_log.lines)
    assert gave_up == (cluster.scheduler.allowed_failures == 0), scheduler_log.lines
    assert ingest.returncode == 0, err
    report = json.loads(out)
    assert (report["indexed"], report["errors"], report["error_files"]) == (count, 0, [])
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select count(*), count(distinct path), sum(status = 'error') from images")
        assert rows.fetchone() == (count, count, 0)


def wait_for_saved(db: Path, ingest: subprocess.Popen[str], at_least: int) -> int:
    """Photos saved in the catalog once at least `at_least` are (or the run has ended)."""
    deadline = time.monotonic() + 60
    saved = 0
    while ingest.poll() is None and time.monotonic() < deadline:
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                saved = conn.execute("select count(*) from images").fetchone()[0]
        except sqlite3.OperationalError:  # the catalog is being written: ask again
            pass
        if saved >= at_least:
            break
        time.sleep(0.1)
    return saved


def test_an_unreachable_scheduler_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = new_catalog(tmp_path / "c.db")
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    proc = run_cli("index", FR, "--dask", f"tcp://127.0.0.1:{port}", db=db, env=env)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Dask scheduler" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
