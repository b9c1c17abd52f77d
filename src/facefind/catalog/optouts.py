"""Queries of opt-outs: their templates and the faces each one suppresses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from .core import Catalog
from .schema import face_persons, face_suppressions, now, optouts


@dataclass(frozen=True)
class Template:
    id: int
    vector: np.ndarray
    threshold: float


def any_(catalog: Catalog) -> bool:
    with catalog.engine.connect() as conn:
        return bool(conn.execute(sa.select(sa.func.count()).select_from(optouts)).scalar_one())


def templates(catalog: Catalog, model_id: str, optout_id: int | None = None) -> list[Template]:
    query = sa.select(optouts.c.id, optouts.c.template, optouts.c.threshold).where(
        optouts.c.model_id == model_id
    )
    if optout_id is not None:
        query = query.where(optouts.c.id == optout_id)
    with catalog.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [Template(r.id, np.frombuffer(r.template, np.float32), r.threshold) for r in rows]


def insert(
    catalog: Catalog, model_id: str, template: np.ndarray, threshold: float, note: str | None, actor: str
) -> int:
    with catalog.transaction() as conn:
        inserted = conn.execute(
            sa.insert(optouts).values(
                model_id=model_id,
                template=np.ascontiguousarray(template, np.float32).tobytes(),
                threshold=threshold,
                note=note,
                created_at=now(),
                created_by=actor,
            )
        )
    return int(inserted.inserted_primary_key[0])  # type: ignore[index]


def person_of_faces(catalog: Catalog) -> dict[int, int]:
    with catalog.engine.connect() as conn:
        return dict(conn.execute(sa.select(face_persons.c.face_id, face_persons.c.person_id)).all())


def suppressions(catalog: Catalog) -> set[tuple[int, int]]:
    """(face id, opt-out id) of every suppression."""
    with catalog.engine.connect() as conn:
        return {(int(f), int(o)) for f, o in conn.execute(sa.select(face_suppressions))}


def suppress(catalog: Catalog, rows: list[dict[str, int]]) -> None:
    """Add suppressions, each {"face_id", "optout_id"}."""
    if rows:
        with catalog.transaction() as conn:
            conn.execute(sa.insert(face_suppressions), rows)


def suppressed_faces(catalog: Catalog) -> np.ndarray:
    with catalog.engine.connect() as conn:
        found = conn.execute(sa.select(face_suppressions.c.face_id).distinct()).scalars().all()
    return np.fromiter(found, np.int64, len(found))


def all_(catalog: Catalog) -> list[sa.Row]:
    """Every opt-out with `n`, the number of faces it suppresses."""
    count = sa.func.count(face_suppressions.c.face_id)
    query = (
        sa.select(optouts, count.label("n"))
        .select_from(optouts.outerjoin(face_suppressions))
        .group_by(optouts.c.id)
        .order_by(optouts.c.id)
    )
    with catalog.engine.connect() as conn:
        return list(conn.execute(query).all())


def delete(catalog: Catalog, optout_id: int) -> None:
    with catalog.transaction() as conn:
        conn.execute(sa.delete(face_suppressions).where(face_suppressions.c.optout_id == optout_id))
        conn.execute(sa.delete(optouts).where(optouts.c.id == optout_id))
