"""Index jobs of the service: started by a request, run in a thread, tracked in the catalog.

A job runs on its own runtime (its own catalog connection, recognizer and worker processes), so
searches go on meanwhile; it writes its progress and a heartbeat to the `index_jobs` table.
Any server process that finds a running job whose heartbeat stopped (its process died) takes it
over and runs it again: indexing is resumable, so nothing is redone but the batch in flight.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from fastapi import Request
from pydantic import BaseModel

from .. import engine
from ..catalog import Catalog, index_jobs, now
from ..errors import Conflict, NotFound
from ..limits import is_id

HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = 15.0  # a running job without a heartbeat this long lost its process
SWEEP_SECONDS = 5.0


class Job(BaseModel):
    id: int
    path: str
    collection: str
    state: str  # running, done, failed, cancelled
    started_by: str
    created_at: str
    updated_at: str
    done: int
    total: int
    restarts: int
    error: str | None = None
    report: dict | None = None


class Cancelled(KeyboardInterrupt):
    """Raised from the progress callback: the indexer stops as on Ctrl-C, keeping what it saved."""


class JobRunner:
    """The jobs of one server process, and the sweep that adopts jobs whose process died."""

    def __init__(self, catalog: Catalog, db: str | Path) -> None:
        self.catalog, self.db = catalog, db
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self.sweeper = threading.Thread(target=self._sweep, name="facefind-job-sweep", daemon=True)
        self.sweeper.start()

    def start(self, ff: engine.FaceFind, path: str, collection: str, retry_errors: bool) -> Job:
        ff.collections()  # fail now, in the request, on an unknown catalog problem
        with self.catalog.transaction() as conn:
            inserted = conn.execute(
                sa.insert(index_jobs).values(
                    path=path,
                    collection=collection,
                    retry_errors=retry_errors,
                    state="running",
                    started_by=ff.actor,
                    owner=self.owner,
                    created_at=now(),
                    updated_at=now(),
                    done=0,
                    total=0,
                    restarts=0,
                    cancel=False,
                )
            ).inserted_primary_key
        job_id = int(inserted[0]) if inserted else 0
        ff.audit.record(ff.actor, "index", {"job": job_id, "path": path, "collection": collection})
        self._run(job_id)
        return self.get(job_id)

    def get(self, job_id: int) -> Job:
        row = None
        if is_id(job_id):
            with self.catalog.engine.connect() as conn:
                row = conn.execute(sa.select(index_jobs).where(index_jobs.c.id == job_id)).one_or_none()
        if row is None:
            raise NotFound(f"no index job {job_id}; GET /v1/index-jobs lists them")
        return _job(row)

    def all(self) -> list[Job]:
        with self.catalog.engine.connect() as conn:
            rows = conn.execute(sa.select(index_jobs).order_by(index_jobs.c.id.desc()).limit(100)).all()
        return [_job(r) for r in rows]

    def cancel(self, job_id: int, actor: str) -> Job:
        job = self.get(job_id)
        if job.state != "running":
            raise Conflict(f"index job {job_id} is {job.state}, not running")
        with self.catalog.transaction() as conn:
            conn.execute(sa.update(index_jobs).where(index_jobs.c.id == job_id).values(cancel=True))
        deadline = time.monotonic() + 30
        while self.get(job_id).state == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.get(job_id)

    def close(self) -> None:
        self.stopping.set()

    # running ----------------------------------------------------------------------------------
    def _run(self, job_id: int) -> None:
        threading.Thread(
            target=self._index, args=(job_id,), name=f"facefind-index-{job_id}", daemon=True
        ).start()

    def _index(self, job_id: int) -> None:
        job = self.get(job_id)
        last, stopped = 0.0, False

        def progress(done: int, total: int) -> None:
            nonlocal last, stopped
            if stopped or (time.monotonic() - last < HEARTBEAT_SECONDS and done < total):
                return
            last = time.monotonic()
            with self.catalog.transaction() as conn:
                this = index_jobs.c.id == job_id
                conn.execute(sa.update(index_jobs).where(this).values(done=done, total=total))
                cancel = conn.execute(sa.select(index_jobs.c.cancel).where(this)).scalar()
            if cancel:  # once: what was indexed still joins the vector index and persons
                stopped = True
                raise Cancelled

        # The heartbeat beats while the job's thread lives, whatever stage it is in (clustering
        # reports no progress), so only a dead process lets a job go stale.
        finished = threading.Event()
        threading.Thread(target=self._beat, args=(job_id, finished), daemon=True).start()
        try:
            self._run_index(job_id, job, progress)
        finally:
            finished.set()

    def _run_index(self, job_id: int, job: Job, progress: Callable[[int, int], None]) -> None:
        state, error, report = "done", None, None
        try:
            with engine.open(self.db, actor=job.started_by) as ff:
                result = ff.index(
                    job.path,
                    collection=job.collection,
                    on_progress=progress,
                    retry_errors=_retry(self, job_id),
                )
            report = result.model_dump(mode="json")
            state = "cancelled" if result.interrupted else "done"
        except KeyboardInterrupt:
            state = "cancelled"
        except Exception as err:  # reported on the job; the server goes on
            state, error = "failed", str(err)
        with self.catalog.transaction() as conn:
            conn.execute(
                sa.update(index_jobs)
                .where(index_jobs.c.id == job_id)
                .values(
                    state=state,
                    error=error,
                    report=json.dumps(report) if report else None,
                    updated_at=now(),
                    **({"done": report["files_seen"], "total": report["files_seen"]} if report else {}),
                )
            )

    def _beat(self, job_id: int, finished: threading.Event) -> None:
        while not finished.wait(HEARTBEAT_SECONDS):
            try:
                with self.catalog.transaction() as conn:
                    this = sa.and_(index_jobs.c.id == job_id, index_jobs.c.state == "running")
                    conn.execute(sa.update(index_jobs).where(this).values(updated_at=now()))
            except sa.exc.OperationalError:  # the catalog was busy: the next beat will do
                continue

    def _sweep(self) -> None:
        """Adopt running jobs whose heartbeat stopped: their process died with them."""
        while True:
            self._adopt_stale()
            if self.stopping.wait(SWEEP_SECONDS):
                return

    def _adopt_stale(self) -> None:
        cutoff = (datetime.now(UTC) - timedelta(seconds=STALE_SECONDS)).isoformat(timespec="seconds")
        running_and_stale = sa.and_(index_jobs.c.state == "running", index_jobs.c.updated_at < cutoff)
        try:
            with self.catalog.engine.connect() as conn:
                stale = conn.execute(sa.select(index_jobs.c.id).where(running_and_stale)).scalars().all()
            for job_id in stale:
                with self.catalog.transaction() as conn:
                    won = conn.execute(
                        sa.update(index_jobs)
                        .where(index_jobs.c.id == job_id, running_and_stale)
                        .values(owner=self.owner, updated_at=now(), restarts=index_jobs.c.restarts + 1)
                    ).rowcount
                if won:  # another process may have taken it first
                    self._run(job_id)
        except sa.exc.OperationalError:  # a briefly locked catalog: the next sweep tries again
            return


def _retry(runner: JobRunner, job_id: int) -> bool:
    with runner.catalog.engine.connect() as conn:
        return bool(
            conn.execute(sa.select(index_jobs.c.retry_errors).where(index_jobs.c.id == job_id)).scalar()
        )


def _job(row: sa.Row) -> Job:
    data = dict(row._mapping)
    data["report"] = json.loads(data["report"]) if data.get("report") else None
    return Job.model_validate(data)


def jobs(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner
