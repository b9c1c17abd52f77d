"""Queries of persons (faces grouped into people) and of their faces."""

from __future__ import annotations

from typing import Any

import numpy as np
import sqlalchemy as sa

from .consents import bind, bind_current
from .consents import move as move_consents
from .core import Catalog
from .schema import (
    consents,
    face_persons,
    face_rejections,
    face_suppressions,
    faces,
    images,
    meta,
    now,
    persons,
)


def exists(catalog: Catalog, person_id: int) -> bool:
    with catalog.engine.connect() as conn:
        return conn.execute(sa.select(persons.c.id).where(persons.c.id == person_id)).scalar() is not None


def existing(catalog: Catalog, person_ids: set[int]) -> set[int]:
    with catalog.engine.connect() as conn:
        return set(conn.execute(sa.select(persons.c.id).where(persons.c.id.in_(person_ids))).scalars())


def rows(catalog: Catalog, model_id: str, *, include_hidden: bool, leave_out: set[int]) -> list[sa.Row]:
    """Persons of a model; without hidden ones unless asked, and never those in `leave_out`."""
    query = sa.select(persons).where(persons.c.model_id == model_id)
    if not include_hidden:
        query = query.where(persons.c.hidden == sa.false())
    if leave_out:
        query = query.where(persons.c.id.not_in(leave_out))
    with catalog.engine.connect() as conn:
        return list(conn.execute(query).all())


def row(catalog: Catalog, model_id: str, person_id: int) -> sa.Row | None:
    query = sa.select(persons).where(persons.c.id == person_id, persons.c.model_id == model_id)
    with catalog.engine.connect() as conn:
        return conn.execute(query).one_or_none()


def update(catalog: Catalog, person_id: int, **values: Any) -> None:
    with catalog.transaction() as conn:
        conn.execute(sa.update(persons).where(persons.c.id == person_id).values(**values))


# Every write below that moves faces into or out of persons binds them to the consent subjects they
# belong to before and after the move (catalog/consents.py): consent follows the faces.


def merge(catalog: Catalog, sources: list[int], into: int, name: str | None) -> None:
    """One transaction: the faces, rejections and consent records of `sources` go to `into`, and
    faces bound to the consent of a source are bound to `into`'s."""
    with catalog.transaction() as conn:
        bind_current(conn)
        conn.execute(sa.update(persons).where(persons.c.id == into).values(name=name))
        move_consents(conn, sources, into)
        conn.execute(
            sa.update(face_persons)
            .where(face_persons.c.person_id.in_([*sources, into]))
            .values(person_id=into, pinned=True)
        )
        rejected_by_into = sa.select(face_rejections.c.face_id).where(face_rejections.c.person_id == into)
        conn.execute(
            sa.update(face_rejections)
            .where(face_rejections.c.person_id.in_(sources), ~face_rejections.c.face_id.in_(rejected_by_into))
            .values(person_id=into)
        )
        conn.execute(sa.delete(persons).where(persons.c.id.in_(sources)))
        bind_current(conn)


def split(catalog: Catalog, person_id: int, face_ids: list[int], new_person: int) -> None:
    """The faces move to `new_person` and are rejected by `person_id`; both sides are pinned."""
    with catalog.transaction() as conn:
        bind_current(conn)
        conn.execute(sa.update(face_persons).where(face_persons.c.person_id == person_id).values(pinned=True))
        conn.execute(
            sa.update(face_persons)
            .where(face_persons.c.face_id.in_(face_ids))
            .values(person_id=new_person, pinned=True)
        )
        conn.execute(_REJECT, [{"face_id": f, "person_id": person_id} for f in face_ids])
        bind_current(conn)


def reject(catalog: Catalog, person_id: int, face_ids: list[int]) -> None:
    """The faces leave the person, which clustering may never give them again."""
    with catalog.transaction() as conn:
        bind_current(conn)
        conn.execute(sa.delete(face_persons).where(face_persons.c.face_id.in_(face_ids)))
        conn.execute(_REJECT, [{"face_id": f, "person_id": person_id} for f in face_ids])


# A face a merge brought back into a person that had rejected it may be rejected again: one row.
_REJECT = sa.text(
    "INSERT INTO face_rejections (face_id, person_id) VALUES (:face_id, :person_id) ON CONFLICT DO NOTHING"
).bindparams(sa.bindparam("face_id", type_=sa.Integer), sa.bindparam("person_id", type_=sa.Integer))


def assignments(catalog: Catalog, model_id: str) -> tuple[list[sa.Row], set[tuple[int, int]]]:
    """(face, person, pinned) of every face in a person of the model; (face, person) rejections."""
    query = (
        sa.select(face_persons.c.face_id, face_persons.c.person_id, face_persons.c.pinned)
        .join(persons, persons.c.id == face_persons.c.person_id)
        .where(persons.c.model_id == model_id)
    )
    with catalog.engine.connect() as conn:
        assigned = list(conn.execute(query).all())
        rejected = {(int(f), int(p)) for f, p in conn.execute(sa.select(face_rejections))}
    return assigned, rejected


def save_assignments(
    catalog: Catalog,
    model_id: str,
    wanted: dict[int, int],
    considered: set[int],
    incremental: bool,
    bound: dict[int, int] | None = None,
) -> None:
    """Store `wanted` (face -> person) for the faces `considered`: faces whose person changed are
    moved (incremental: only faces that lost their person are taken out), faces `bound` (face ->
    consent subject) are bound, and persons left without faces go unless a user named them or
    they have consent records. One transaction."""
    with catalog.transaction() as conn:
        bind_current(conn)
        current = dict(
            conn.execute(
                sa.select(face_persons.c.face_id, face_persons.c.person_id)
                .join(persons, persons.c.id == face_persons.c.person_id)
                .where(persons.c.model_id == model_id)
            ).all()
        )
        current = {f: p for f, p in current.items() if f in considered}  # others keep their person
        stale = [f for f, p in current.items() if wanted.get(f) != p]
        if incremental:
            stale = [f for f in stale if f not in wanted]
        fresh = [
            {"face_id": f, "person_id": p, "pinned": False} for f, p in wanted.items() if current.get(f) != p
        ]
        for i in range(0, len(stale), 500):
            conn.execute(sa.delete(face_persons).where(face_persons.c.face_id.in_(stale[i : i + 500])))
        if fresh:
            conn.execute(_ASSIGN, fresh)
        bind(conn, bound or {})
        bind_current(conn)
        conn.execute(
            sa.delete(persons).where(
                persons.c.model_id == model_id,
                persons.c.name.is_(None),
                ~sa.exists().where(face_persons.c.person_id == persons.c.id),
                ~persons.c.id.in_(sa.select(consents.c.person_id)),
            )
        )


# Assign a face to a person unless another process deleted either since they were read (SQLite's
# clustering cannot keep deletions out, see Catalog.faces_held). One statement, so atomic.
_ASSIGN = sa.text(
    "INSERT INTO face_persons (face_id, person_id, pinned) SELECT :face_id, :person_id, :pinned "
    "WHERE EXISTS (SELECT 1 FROM faces WHERE id = :face_id) "
    "AND EXISTS (SELECT 1 FROM persons WHERE id = :person_id)"
).bindparams(
    sa.bindparam("face_id", type_=sa.Integer),
    sa.bindparam("person_id", type_=sa.Integer),
    sa.bindparam("pinned", type_=sa.Boolean),
)


def new(catalog: Catalog, model_id: str, count: int) -> list[int]:
    values = dict(model_id=model_id, hidden=False, created_at=now())
    with catalog.transaction() as conn:
        return [
            int(conn.execute(sa.insert(persons).values(**values)).inserted_primary_key[0])  # type: ignore[index]
            for _ in range(count)
        ]


def named(catalog: Catalog, model_id: str) -> set[int]:
    query = sa.select(persons.c.id).where(persons.c.model_id == model_id, persons.c.name.is_not(None))
    with catalog.engine.connect() as conn:
        return {int(i) for i in conn.execute(query).scalars()}


def faces_of(
    catalog: Catalog, person_ids: list[int], collection_ids: list[int] | None = None
) -> list[sa.Row]:
    """The faces of persons, best quality first, without opted-out ones (never shown); only those
    in photos of `collection_ids` if given."""
    query = (
        sa.select(
            face_persons.c.person_id,
            face_persons.c.pinned,
            faces.c.id,
            faces.c.image_id,
            images.c.path,
            faces.c.x,
            faces.c.y,
            faces.c.w,
            faces.c.h,
            faces.c.quality,
        )
        .join(faces, faces.c.id == face_persons.c.face_id)
        .join(images, images.c.id == faces.c.image_id)
        .where(
            face_persons.c.person_id.in_(person_ids),
            ~faces.c.id.in_(sa.select(face_suppressions.c.face_id)),
            sa.true() if collection_ids is None else images.c.collection_id.in_(collection_ids),
        )
        .order_by(faces.c.quality.desc(), faces.c.id)
    )
    with catalog.engine.connect() as conn:
        return list(conn.execute(query).all())


def unsettled_faces(catalog: Catalog) -> np.ndarray:
    """Ids of faces stored but not yet clustered (above their model's `people_upto` mark): until
    clustering has checked them against withheld consents, they may be a withheld person's new
    photo, so no answer may include them. A model never clustered has no mark: none unsettled."""
    mark = sa.cast(meta.c.value, sa.BigInteger)
    query = (
        sa.select(faces.c.id)
        .join(meta, meta.c.key == sa.literal("people_upto:") + faces.c.model_id)
        .where(faces.c.id > mark)
    )
    with catalog.engine.connect() as conn:
        return np.fromiter((int(i) for i in conn.execute(query).scalars()), np.int64)


def hidden(catalog: Catalog, model_id: str) -> set[int]:
    """Persons a reviewer hid."""
    query = sa.select(persons.c.id).where(persons.c.model_id == model_id, persons.c.hidden == sa.true())
    with catalog.engine.connect() as conn:
        return {int(i) for i in conn.execute(query).scalars()}


def names(catalog: Catalog, person_ids: set[int]) -> dict[int, str]:
    """The names of those of `person_ids` that have one."""
    out: dict[int, str] = {}
    ids = sorted(person_ids)
    with catalog.engine.connect() as conn:
        for i in range(0, len(ids), 500):
            query = sa.select(persons.c.id, persons.c.name).where(
                persons.c.id.in_(ids[i : i + 500]), persons.c.name.is_not(None)
            )
            out.update({int(p): str(n) for p, n in conn.execute(query)})
    return out


def page(
    catalog: Catalog,
    model_id: str,
    *,
    include_hidden: bool,
    leave_out: set[int],
    after: tuple[int, int] | None,
    offset: int,
    limit: int,
) -> list[tuple[sa.Row, int]]:
    """One page of persons, most faces first (faces not opted out), then by id: (row, faces).
    Keyset paging: `after` (faces, id) of the last person of the previous page; the database
    counts and sorts, and only `limit` rows come back, however many persons there are."""
    shown = sa.select(face_suppressions.c.face_id)
    counts = (
        sa.select(face_persons.c.person_id, sa.func.count().label("n"))
        .where(~face_persons.c.face_id.in_(shown))
        .group_by(face_persons.c.person_id)
        .subquery()
    )
    query = (
        sa.select(persons, counts.c.n)
        .join(counts, counts.c.person_id == persons.c.id)
        .where(persons.c.model_id == model_id)
        .order_by(counts.c.n.desc(), persons.c.id)
    )
    if not include_hidden:
        query = query.where(persons.c.hidden == sa.false())
    if leave_out:
        query = query.where(persons.c.id.not_in(leave_out))
    if after is not None:
        n, person_id = after
        query = query.where(sa.or_(counts.c.n < n, sa.and_(counts.c.n == n, persons.c.id > person_id)))
    query = query.offset(offset).limit(limit)
    with catalog.engine.connect() as conn:
        return [(r, int(r.n)) for r in conn.execute(query).all()]


def photos_of(catalog: Catalog, model_id: str, face_ids: np.ndarray) -> np.ndarray:
    """The photo (image id) of each face in `face_ids` (ascending ids of one model), aligned."""
    query = sa.select(faces.c.id, faces.c.image_id).where(faces.c.model_id == model_id).order_by(faces.c.id)
    with catalog.engine.connect() as conn:
        rows = conn.execute(query).all()
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    photos = np.fromiter((r[1] for r in rows), np.int64, len(rows))
    out = np.full(len(face_ids), -1, np.int64)
    if len(ids):
        pos = np.clip(np.searchsorted(ids, face_ids), 0, len(ids) - 1)
        found = ids[pos] == face_ids
        out[found] = photos[pos[found]]
    # A face without a row (deleted between the two reads) gets a photo of its own.
    missing = np.flatnonzero(out < 0)
    out[missing] = int(photos.max(initial=0)) + 1 + np.arange(len(missing))
    return out


def face_count(catalog: Catalog, model_id: str) -> int:
    with catalog.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(faces.c.model_id == model_id)).scalar() or 0)


def single_face_persons(catalog: Catalog, model_id: str) -> list[sa.Row]:
    """(person, size_px of its one face, size_px of the largest face in that face's photo) of every
    person of the model with exactly one face."""
    single = (
        sa.select(face_persons.c.person_id, sa.func.min(face_persons.c.face_id).label("face_id"))
        .join(persons, persons.c.id == face_persons.c.person_id)
        .where(persons.c.model_id == model_id)
        .group_by(face_persons.c.person_id)
        .having(sa.func.count() == 1)
        .subquery()
    )
    other = faces.alias("other")
    query = (
        sa.select(single.c.person_id, faces.c.size_px, sa.func.max(other.c.size_px))
        .join(faces, faces.c.id == single.c.face_id)
        .join(other, other.c.image_id == faces.c.image_id)
        .group_by(single.c.person_id, faces.c.size_px)
    )
    with catalog.engine.connect() as conn:
        return list(conn.execute(query).all())


def face_sizes(catalog: Catalog, model_id: str, face_ids: list[int]) -> list[sa.Row]:
    """(face, size_px, size_px of the largest face in its photo) of each of `face_ids`."""
    other = faces.alias("other")
    rows: list[sa.Row] = []
    with catalog.engine.connect() as conn:
        for i in range(0, len(face_ids), 500):
            query = (
                sa.select(faces.c.id, faces.c.size_px, sa.func.max(other.c.size_px))
                .join(other, other.c.image_id == faces.c.image_id)
                .where(faces.c.id.in_(face_ids[i : i + 500]), faces.c.model_id == model_id)
                .group_by(faces.c.id, faces.c.size_px)
            )
            rows += conn.execute(query).all()
    return rows


def faces_under(catalog: Catalog, model_id: str, px: float) -> int:
    query = sa.select(sa.func.count()).where(faces.c.model_id == model_id, faces.c.size_px < px)
    with catalog.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)
