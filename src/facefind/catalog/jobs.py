"""Queries of the service's index jobs: progress, heartbeat, cancel flag, takeover."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .core import Catalog
from .schema import index_jobs, now


def insert(catalog: Catalog, owner: str, **fields: Any) -> int:
    values = dict(state="running", owner=owner, created_at=now(), updated_at=now(), done=0, total=0)
    with catalog.transaction() as conn:
        inserted = conn.execute(sa.insert(index_jobs).values(**values, restarts=0, cancel=False, **fields))
    return int(inserted.inserted_primary_key[0])  # type: ignore[index]


def get(catalog: Catalog, job_id: int) -> sa.Row | None:
    with catalog.engine.connect() as conn:
        return conn.execute(sa.select(index_jobs).where(index_jobs.c.id == job_id)).one_or_none()


def recent(catalog: Catalog, n: int = 100) -> list[sa.Row]:
    with catalog.engine.connect() as conn:
        return list(conn.execute(sa.select(index_jobs).order_by(index_jobs.c.id.desc()).limit(n)).all())


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
