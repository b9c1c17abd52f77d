"""Queries of the review queue (people/review.py): skipped questions, faces placed by an answer."""

from __future__ import annotations

import sqlalchemy as sa

from .consents import bind_current
from .core import Catalog
from .schema import face_persons, face_rejections, faces, now, review_skips


def skipped(catalog: Catalog) -> set[tuple[str, int]]:
    """(subject, id) of every face ("face") and person ("person") a reviewer skipped."""
    with catalog.engine.connect() as conn:
        return {
            (str(s), int(i))
            for s, i in conn.execute(sa.select(review_skips.c.subject, review_skips.c.subject_id))
        }


def skip(catalog: Catalog, subjects: list[tuple[str, int]]) -> None:
    rows = [{"subject": s, "subject_id": i, "skipped_at": now()} for s, i in subjects]
    with catalog.transaction() as conn:
        conn.execute(_SKIP, rows)


_SKIP = sa.text(
    "INSERT INTO review_skips (subject, subject_id, skipped_at) VALUES (:subject, :subject_id, :skipped_at) "
    "ON CONFLICT DO NOTHING"
).bindparams(sa.bindparam("subject_id", type_=sa.Integer))


def unskip(catalog: Catalog, subjects: list[tuple[str, int]]) -> None:
    """Answered questions are no longer skipped (a later question about them comes in rank order)."""
    with catalog.transaction() as conn:
        for s, i in subjects:
            conn.execute(
                sa.delete(review_skips).where(review_skips.c.subject == s, review_skips.c.subject_id == i)
            )


def place(catalog: Catalog, person_id: int, face_ids: list[int]) -> None:
    """The faces go into the person, pinned (a reviewer's "yes"); consent follows them. A person
    is once in a photo: another face of the same photo leaves that person (to no person)."""
    with catalog.transaction() as conn:
        bind_current(conn)
        photos = sa.select(faces.c.image_id).where(faces.c.id.in_(face_ids))
        same_photo = sa.select(faces.c.id).where(faces.c.image_id.in_(photos), faces.c.id.not_in(face_ids))
        conn.execute(
            sa.delete(face_persons).where(
                face_persons.c.person_id == person_id, face_persons.c.face_id.in_(same_photo)
            )
        )
        conn.execute(sa.delete(face_persons).where(face_persons.c.face_id.in_(face_ids)))
        conn.execute(
            sa.insert(face_persons),
            [{"face_id": f, "person_id": person_id, "pinned": True} for f in face_ids],
        )
        conn.execute(
            sa.delete(face_rejections).where(
                face_rejections.c.person_id == person_id, face_rejections.c.face_id.in_(face_ids)
            )
        )
        bind_current(conn)


def forbid(catalog: Catalog, person_id: int, face_ids: list[int]) -> None:
    """The faces stay where they are, and clustering never gives them to the person (a reviewer's "no")."""
    rows = [{"face_id": f, "person_id": person_id} for f in face_ids]
    with catalog.transaction() as conn:
        for i in range(0, len(rows), 500):
            conn.execute(_REJECT, rows[i : i + 500])


_REJECT = sa.text(
    "INSERT INTO face_rejections (face_id, person_id) VALUES (:face_id, :person_id) ON CONFLICT DO NOTHING"
).bindparams(sa.bindparam("face_id", type_=sa.Integer), sa.bindparam("person_id", type_=sa.Integer))
