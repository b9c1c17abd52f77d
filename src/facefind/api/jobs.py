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
from typing import Any

from fastapi import Request
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError

from .. import engine
from ..accountability import collections
from ..catalog import Catalog, now
from ..catalog import jobs as store
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
    retry_errors: bool = False
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
        collections.require_basis(ff.catalog, collection)  # fail now, in the request
        job_id = store.insert(
            self.catalog,
            self.owner,
            path=path,
            collection=collection,
            retry_errors=retry_errors,
            started_by=ff.actor,
        )
        ff.audit.record(ff.actor, "index", {"job": job_id, "path": path, "collection": collection})
        self._run(job_id)
        return self.get(job_id)

    def get(self, job_id: int) -> Job:
        row = store.get(self.catalog, job_id) if is_id(job_id) else None
        if row is None:
            raise NotFound(f"no index job {job_id}; GET /v1/index-jobs lists them")
        return _job(row)

    def all(self) -> list[Job]:
        return [_job(r) for r in store.recent(self.catalog)]

    def cancel(self, job_id: int) -> Job:
        job = self.get(job_id)
        if job.state != "running":
            raise Conflict(f"index job {job_id} is {job.state}, not running")
        store.update(self.catalog, job_id, cancel=True)
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
            if store.progress(
                self.catalog, job_id, done, total
            ):  # once: what was indexed still joins the vector index and persons
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
                    retry_errors=job.retry_errors,
                )
            # Counts of files and faces only: which persons new faces joined would tell an operator
            # who is in a photo without an audited search (docs/security.md).
            report = result.model_dump(mode="json", exclude={"people"})
            state = "cancelled" if result.interrupted else "done"
        except KeyboardInterrupt:
            state = "cancelled"
        except Exception as err:  # reported on the job; the server goes on
            state, error = "failed", str(err)
        store.update(
            self.catalog,
            job_id,
            state=state,
            error=error,
            report=json.dumps(report) if report else None,
            updated_at=now(),
            **({"done": report["files_seen"], "total": report["files_seen"]} if report else {}),
        )

    def _beat(self, job_id: int, finished: threading.Event) -> None:
        while not finished.wait(HEARTBEAT_SECONDS):
            try:
                store.beat(self.catalog, job_id)
            except OperationalError:  # the catalog was busy: the next beat will do
                continue

    def _sweep(self) -> None:
        """Adopt running jobs whose heartbeat stopped: their process died with them."""
        while True:
            self._adopt_stale()
            if self.stopping.wait(SWEEP_SECONDS):
                return

    def _adopt_stale(self) -> None:
        cutoff = (datetime.now(UTC) - timedelta(seconds=STALE_SECONDS)).isoformat(timespec="seconds")
        try:
            for job_id in store.take_over_stale(self.catalog, cutoff, self.owner):
                self._run(job_id)
        except OperationalError:  # a briefly locked catalog: the next sweep tries again
            return


def _job(row: Any) -> Job:
    data = dict(row._mapping)
    data["report"] = json.loads(data["report"]) if data.get("report") else None
    return Job.model_validate(data)


def jobs(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner
