"""Index jobs of the service: started by a request, queued, run in a thread, tracked in the catalog.

A job indexes only under an index root of its collection (accountability/collections.py), checked
when it is asked for and again when it starts. Jobs queue: at most `max_jobs` run at once in all
the server's processes and `max_jobs_per_key` per key (`facefind serve --max-jobs N
--max-jobs-per-key M`), counted in the `index_jobs` table; a key may have `max_queued_per_key`
waiting. Whichever process has a free slot starts the oldest queued job (when a job ends, and in
its sweep). A job runs on its own runtime (its own catalog connection, recognizer and worker
processes), so searches go on meanwhile; it writes its progress and a heartbeat to the table.
Any server process that finds a running job whose heartbeat stopped (its process died) takes it
over and runs it again: indexing is resumable, so nothing is redone but the batch in flight.
"""

from __future__ import annotations

import json
import logging
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
from ..errors import Conflict, FacefindError, NotFound, TooManyRequests
from ..limits import MAX_JOBS, MAX_JOBS_PER_KEY, MAX_QUEUED_PER_KEY, Limit, is_id

HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = 15.0  # a running job without a heartbeat this long lost its process
SWEEP_SECONDS = 5.0
# `facefind serve --max-jobs N --max-jobs-per-key M --max-queued-per-key Q` sets these (through
# the environment, for every server process); the defaults run one index job at a time.
DEFAULT_LIMITS = {MAX_JOBS: 1, MAX_JOBS_PER_KEY: 1, MAX_QUEUED_PER_KEY: 10}
ENVIRONMENT = {
    MAX_JOBS: "FACEFIND_MAX_JOBS",
    MAX_JOBS_PER_KEY: "FACEFIND_MAX_JOBS_PER_KEY",
    MAX_QUEUED_PER_KEY: "FACEFIND_MAX_QUEUED_PER_KEY",
}
log = logging.getLogger("facefind")


class Job(BaseModel):
    id: int
    path: str
    collection: str
    state: str  # queued, running, done, failed, cancelled
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
        self.max_jobs, self.max_per_key, self.max_queued = (
            job_limit(limit) for limit in (MAX_JOBS, MAX_JOBS_PER_KEY, MAX_QUEUED_PER_KEY)
        )
        self.stopping = threading.Event()
        self.sweeper = threading.Thread(target=self._sweep, name="facefind-job-sweep", daemon=True)
        self.sweeper.start()

    def start(self, ff: engine.FaceFind, path: str, collection: str, retry_errors: bool) -> Job:
        # Fail now, in the request: no basis, no roots, or a path outside them.
        collections.require_basis(ff.catalog, collection)
        collections.index_root(ff.catalog, collection, path)
        waiting = store.queued(self.catalog, ff.actor)
        if waiting >= self.max_queued:
            raise TooManyRequests(
                f"{ff.actor} has {waiting} index jobs queued already (the limit is {self.max_queued}); "
                f"wait for one to start, or cancel one (DELETE /v1/index-jobs/ID)"
            )
        job_id = store.insert(
            self.catalog,
            self.owner,
            path=path,
            collection=collection,
            retry_errors=retry_errors,
            started_by=ff.actor,
        )
        ff.audit.record(ff.actor, "index", {"job": job_id, "path": path, "collection": collection})
        self._start_queued()
        return self.get(job_id)

    def get(self, job_id: int) -> Job:
        row = store.get(self.catalog, job_id) if is_id(job_id) else None
        if row is None:
            raise NotFound(f"no index job {job_id}; GET /v1/index-jobs lists them")
        return _job(row)

    def all(self) -> list[Job]:
        return [_job(r) for r in store.recent(self.catalog)]

    def cancel(self, job_id: int) -> Job:
        """Stop a running job (what it indexed stays) or take a queued one out of the queue."""
        if self.get(job_id).state == "queued" and store.cancel_queued(self.catalog, job_id):
            return self.get(job_id)
        job = self.get(job_id)
        if job.state != "running":
            raise Conflict(f"index job {job_id} is {job.state}, not running or queued")
        store.update(self.catalog, job_id, cancel=True)
        deadline = time.monotonic() + 30
        while self.get(job_id).state == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.get(job_id)

    def close(self) -> None:
        self.stopping.set()

    # running ----------------------------------------------------------------------------------
    def _start_queued(self) -> None:
        """Start queued jobs here while the limits allow."""
        while not self.stopping.is_set():
            try:
                job_id = store.start_queued(self.catalog, self.owner, self.max_jobs, self.max_per_key)
            except OperationalError:  # a briefly locked catalog: the sweep tries again
                return
            if job_id is None:
                return
            self._run(job_id)

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
            self._start_queued()  # this job's slot is free

    def _run_index(self, job_id: int, job: Job, progress: Callable[[int, int], None]) -> None:
        state, error, report = "done", None, None
        try:
            with engine.open(self.db, actor=job.started_by) as ff:
                result = ff.index(
                    job.path,
                    collection=job.collection,
                    on_progress=progress,
                    retry_errors=job.retry_errors,
                    confine=True,  # checked again: the path may have changed while queued
                )
            # Counts of files and faces only: which persons new faces joined would tell an operator
            # who is in a photo without an audited search, and faces refused by an opt-out that
            # someone opted out (docs/security.md).
            report = result.model_dump(mode="json", exclude={"people", "faces_refused"})
            state = "cancelled" if result.interrupted else "done"
        except KeyboardInterrupt:
            state = "cancelled"
        except FacefindError as err:  # reported on the job; the server goes on
            state, error = "failed", str(err)
        except Exception:  # logged, never shown: it could name anything the server touched
            log.exception("index job %s failed", job_id)
            state, error = "failed", "internal error; the server log has the details"
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
        """Adopt running jobs whose heartbeat stopped (their process died with them), and start
        queued jobs whose turn came (a slot freed in a process that died or was busy)."""
        while True:
            self._adopt_stale()
            self._start_queued()
            if self.stopping.wait(SWEEP_SECONDS):
                return

    def _adopt_stale(self) -> None:
        cutoff = (datetime.now(UTC) - timedelta(seconds=STALE_SECONDS)).isoformat(timespec="seconds")
        try:
            for job_id in store.take_over_stale(self.catalog, cutoff, self.owner):
                self._run(job_id)
        except OperationalError:  # a briefly locked catalog: the next sweep tries again
            return


def job_limit(limit: Limit) -> int:
    """A job limit of the service from its environment variable (set by `facefind serve`)."""
    text = os.environ.get(ENVIRONMENT[limit], "").strip()
    return limit.check(int(text)) if text.isdigit() else DEFAULT_LIMITS[limit]


def _job(row: Any) -> Job:
    data = dict(row._mapping)
    data["report"] = json.loads(data["report"]) if data.get("report") else None
    return Job.model_validate(data)


def jobs(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner
