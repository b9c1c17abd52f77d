"""Queries of faces users add by hand and of detections they marked "not a face"."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..faces import Face
from .core import Catalog, _face_values, delete_faces
from .schema import faces, images, manual_faces, not_faces, now


def images_at(catalog: Catalog, path: str) -> list[sa.Row]:
    """Indexed images stored under `path` (one per collection holding it): id, sha256, collection."""
    query = sa.select(images.c.id, images.c.sha256, images.c.collection_id).where(
        images.c.path == path, images.c.status == "indexed"
    )
    with catalog.engine.connect() as conn:
        return list(conn.execute(query).all())


def add(catalog: Catalog, image_id: int, face: Face, by: str) -> int:
    """Store a face drawn by a user on an indexed image (the next face number); its id."""
    with catalog.transaction() as conn:
        last = conn.execute(
            sa.select(sa.func.max(faces.c.face_index)).where(faces.c.image_id == image_id)
        ).scalar()
        values = _face_values(image_id, 0 if last is None else int(last) + 1, face)
        face_id = int(conn.execute(sa.insert(faces).values(**values)).inserted_primary_key[0])  # type: ignore[index]
        conn.execute(sa.insert(manual_faces).values(face_id=face_id, added_by=by, added_at=now()))
        return face_id


def manual(catalog: Catalog, face_ids: list[int]) -> set[int]:
    with catalog.engine.connect() as conn:
        query = sa.select(manual_faces.c.face_id).where(manual_faces.c.face_id.in_(face_ids))
        return {int(i) for i in conn.execute(query).scalars()}


def mark_not_a_face(
    catalog: Catalog, face_id: int, sha256: str, box: tuple[float, float, float, float], by: str
) -> None:
    """Remember the box on this photo content as "not a face" and delete the face (tombstoned)."""
    x, y, w, h = box
    with catalog.transaction() as conn:
        conn.execute(
            sa.insert(not_faces).values(sha256=sha256, x=x, y=y, w=w, h=h, marked_by=by, marked_at=now())
        )
        delete_faces(conn, faces.c.id == face_id)


def marks(conn: Connection, sha256: str) -> list[tuple[float, float, float, float]]:
    """Boxes marked "not a face" on the photo whose content hash is `sha256` (in the caller's transaction)."""
    query = sa.select(not_faces.c.x, not_faces.c.y, not_faces.c.w, not_faces.c.h).where(
        not_faces.c.sha256 == sha256
    )
    return [(float(x), float(y), float(w), float(h)) for x, y, w, h in conn.execute(query)]
