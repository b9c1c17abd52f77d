"""Queries of registered recognizers, their embeddings of stored faces, and switching models."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .core import Catalog, insert_many
from .schema import (
    calibrations,
    face_embeddings,
    face_tombstones,
    faces,
    images,
    optouts,
    persons,
    recognizers,
)


def row(catalog: Catalog, name: str) -> sa.Row | None:
    with catalog.engine.connect() as conn:
        return conn.execute(sa.select(recognizers).where(recognizers.c.model_id == name)).one_or_none()


def names(catalog: Catalog) -> list[str]:
    with catalog.engine.connect() as conn:
        return list(
            conn.execute(sa.select(recognizers.c.model_id).order_by(recognizers.c.model_id)).scalars()
        )


def registry(catalog: Catalog) -> tuple[list[sa.Row], set[str], dict[str, int]]:
    """Registered recognizers (oldest first), models with their own calibration, and the number
    of stored faces each model has an embedding of."""
    with catalog.engine.connect() as conn:
        rows = list(conn.execute(sa.select(recognizers).order_by(recognizers.c.registered_at)).all())
        calibrated = set(conn.execute(sa.select(calibrations.c.model_id)).scalars())
        counts: dict[str, int] = {}
        for table in (faces, face_embeddings):
            for model_id, n in conn.execute(
                sa.select(table.c.model_id, sa.func.count()).group_by(table.c.model_id)
            ):
                counts[model_id] = counts.get(model_id, 0) + int(n)
    return rows, calibrated, counts


def insert(catalog: Catalog, **values: Any) -> None:
    with catalog.transaction() as conn:
        conn.execute(sa.insert(recognizers).values(**values))


def delete(catalog: Catalog, name: str) -> int:
    """Forget a model with its embeddings and calibration, unless faces hold only its embedding:
    then nothing is deleted and their number is returned."""
    with catalog.transaction() as conn:
        stranded = int(conn.execute(sa.select(sa.func.count()).where(faces.c.model_id == name)).scalar_one())
        if stranded:
            return stranded
        conn.execute(sa.delete(face_embeddings).where(face_embeddings.c.model_id == name))
        conn.execute(sa.delete(calibrations).where(calibrations.c.model_id == name))
        conn.execute(sa.delete(recognizers).where(recognizers.c.model_id == name))
    return 0


def optouts_of_other_models(catalog: Catalog, name: str) -> int:
    with catalog.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(optouts.c.model_id != name)).scalar_one())


def _lacks(model_id: str) -> sa.ColumnElement[bool]:
    """Faces without an embedding of `model_id`."""
    staged = sa.exists().where(
        face_embeddings.c.face_id == faces.c.id, face_embeddings.c.model_id == model_id
    )
    return sa.and_(faces.c.model_id != model_id, ~staged)


def pending_count(catalog: Catalog, model_id: str) -> int:
    with catalog.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(_lacks(model_id))).scalar_one())


def pending(catalog: Catalog, model_id: str, after: int, limit: int) -> list[sa.Row]:
    """The next faces (by id, after `after`) lacking an embedding of `model_id`, with their photo."""
    query = (
        sa.select(
            faces.c.id,
            faces.c.image_id,
            images.c.path,
            images.c.sha256,
            faces.c.x,
            faces.c.y,
            faces.c.w,
            faces.c.h,
            faces.c.landmarks,
            faces.c.det_score,
        )
        .join(images, images.c.id == faces.c.image_id)
        .where(_lacks(model_id), faces.c.id > after)
        .order_by(faces.c.id)
        .limit(limit)
    )
    with catalog.engine.connect() as conn:
        return list(conn.execute(query).all())


def add_embeddings(catalog: Catalog, rows: list[dict[str, Any]]) -> None:
    """Store embeddings of another model, each {"face_id", "model_id", "embedding"}."""
    with catalog.transaction() as conn:
        insert_many(conn, face_embeddings, rows)


def count_faces(catalog: Catalog) -> int:
    with catalog.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(faces)).scalar_one())


def swap(catalog: Catalog, model_id: str) -> None:
    """One transaction: faces with a staged embedding of `model_id` take it (their old one is kept
    under its model and leaves that model's vector index), and persons follow."""
    fe = face_embeddings
    ready = sa.select(faces.c.id).where(
        faces.c.model_id != model_id,
        sa.exists().where(fe.c.face_id == faces.c.id, fe.c.model_id == model_id),
    )
    with catalog.transaction() as conn:
        moving = list(conn.execute(ready).scalars())
        for i in range(0, len(moving), 500):
            chunk = moving[i : i + 500]
            conn.execute(
                sa.insert(fe).from_select(
                    ["face_id", "model_id", "embedding"],
                    sa.select(faces.c.id, faces.c.model_id, faces.c.embedding).where(faces.c.id.in_(chunk)),
                )
            )
            conn.execute(
                sa.insert(face_tombstones).from_select(
                    ["face_id", "model_id"],
                    sa.select(faces.c.id, faces.c.model_id).where(faces.c.id.in_(chunk)).order_by(faces.c.id),
                )
            )
            new = (
                sa.select(fe.c.embedding)
                .where(fe.c.face_id == faces.c.id, fe.c.model_id == model_id)
                .scalar_subquery()
            )
            conn.execute(
                sa.update(faces).where(faces.c.id.in_(chunk)).values(embedding=new, model_id=model_id)
            )
            conn.execute(sa.delete(fe).where(fe.c.model_id == model_id, fe.c.face_id.in_(chunk)))
        # Persons are groups of faces (and user decisions), not of embeddings: they stay.
        conn.execute(sa.update(persons).values(model_id=model_id))
