"""Queries of the service's index jobs: the queue, progress, heartbeat, cancel flag, takeover."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .core import Catalog
from .schema import index_jobs, now

# PostgreSQL advisory lock around starting queued jobs (two server processes counting the
# running jobs at once would both start one); SQLite runs the one UPDATE statement alone.
JOBS_LOCK = 0x666A6F62


def insert(catalog: Catalog, owner: str, **fields: Any) -> int:
    """A new job, queued: `start_queued` starts it when the limits allow."""
    values = dict(state="queued", owner=owner, created_at=now(), updated_at=now(), done=0, total=0)
    with catalog.transaction() as conn:
        inserted = conn.execute(sa.insert(index_jobs).values(**values, restarts=0, cancel=False, **fields))
    return int(inserted.inserted_primary_key[0])  # type: ignore[index]


def get(catalog: Catalog, job_id: int) -> sa.Row | None:
    with catalog.engine.connect() as conn:
        return conn.execute(sa.select(index_jobs).where(index_jobs.c.id == job_id)).one_or_none()


def recent(catalog: Catalog, n: int = 100) -> list[sa.Row]:
    with catalog.engine.connect() as conn:
        return list(conn.execute(sa.select(index_jobs).order_by(index_jobs.c.id.desc()).limit(n)).all())


def queued(catalog: Catalog, started_by: str) -> int:
    """How many jobs of this key wait in the queue."""
    query = sa.select(sa.func.count()).where(
        index_jobs.c.state == "queued", index_jobs.c.started_by == started_by
    )
    with catalog.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def start_queued(catalog: Catalog, owner: str, max_running: int, max_per_key: int) -> int | None:
    """Start the oldest queued job that the limits allow (at most `max_running` jobs running in
    all, `max_per_key` per key that started them), now owned by `owner`; its id, or None."""
    any_queued = sa.select(index_jobs.c.id).where(index_jobs.c.state == "queued").limit(1)
    with catalog.engine.connect() as conn:  # the sweep asks often: no write while none waits
        if conn.execute(any_queued).first() is None:
            return None
    running = index_jobs.alias("running")
    waiting = index_jobs.alias("waiting")
    busy = sa.select(sa.func.count()).select_from(running).where(running.c.state == "running")
    busy_key = busy.where(running.c.started_by == waiting.c.started_by)
    oldest = (
        sa.select(waiting.c.id)
        .where(
            waiting.c.state == "queued",
            busy.scalar_subquery() < max_running,
            busy_key.scalar_subquery() < max_per_key,
        )
        .order_by(waiting.c.id)
        .limit(1)
    )
    claim = (
        sa.update(index_jobs)
        .where(index_jobs.c.id == oldest.scalar_subquery(), index_jobs.c.state == "queued")
        .values(state="running", owner=owner, updated_at=now())
        .returning(index_jobs.c.id)
    )
    with catalog.transaction() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": JOBS_LOCK})
        started = conn.execute(claim).scalar_one_or_none()
    return None if started is None else int(started)


def cancel_queued(catalog: Catalog, job_id: int) -> bool:
    """Cancel a job still waiting in the queue; False if it is not queued (any more)."""
    waiting = sa.and_(index_jobs.c.id == job_id, index_jobs.c.state == "queued")
    with catalog.transaction() as conn:
        changed = conn.execute(
            sa.update(index_jobs).where(waiting).values(state="cancelled", updated_at=now())
        )
    return bool(changed.rowcount)


def update(catalog: Catalog, job_id: int, **values: Any) -> None:
    with catalog.transaction() as conn:
        conn.execute(sa.update(index_jobs).where(index_jobs.c.id == job_id).values(**values))


def progress(catalog: Catalog, job_id: int, done: int, total: int) -> bool:
    """Record progress; whether someone asked for the job to stop."""
    this = index_jobs.c.id == job_id
    with catalog.transaction() as conn:
        conn.execute(sa.update(index_jobs).where(this).values(done=done, total=total))
        return bool(conn.execute(sa.select(index_jobs.c.cancel).where(this)).scalar())


def beat(catalog: Catalog, job_id: int) -> None:
    this = sa.and_(index_jobs.c.id == job_id, index_jobs.c.state == "running")
    with catalog.transaction() as conn:
        conn.execute(sa.update(index_jobs).where(this).values(updated_at=now()))


def take_over_stale(catalog: Catalog, cutoff: str, owner: str) -> list[int]:
    """Running jobs without a heartbeat since `cutoff`, now owned by `owner` (each one only by
    the first process to ask)."""
    stale = sa.and_(index_jobs.c.state == "running", index_jobs.c.updated_at < cutoff)
    with catalog.engine.connect() as conn:
        candidates = conn.execute(sa.select(index_jobs.c.id).where(stale)).scalars().all()
    won = []
    for job_id in candidates:
        with catalog.transaction() as conn:
            taken = conn.execute(
                sa.update(index_jobs)
                .where(index_jobs.c.id == job_id, stale)
                .values(owner=owner, updated_at=now(), restarts=index_jobs.c.restarts + 1)
            ).rowcount
        if taken:
            won.append(int(job_id))
    return won
