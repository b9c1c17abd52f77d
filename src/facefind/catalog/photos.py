"""Queries of one catalogued photo's content: what a file must still be to stand for it."""

from __future__ import annotations

import sqlalchemy as sa

from .core import Catalog
from .schema import faces, images


def sha256(catalog: Catalog, image_id: int) -> str | None:
    """The content hash the photo had when it was indexed (None: unknown, or it failed)."""
    query = sa.select(images.c.sha256).where(images.c.id == image_id, images.c.status == "indexed")
    with catalog.engine.connect() as conn:
        found = conn.execute(query).scalar_one_or_none()
    return None if found is None else str(found)


def face_boxes(catalog: Catalog, image_id: int) -> dict[int, tuple[float, float, float, float]]:
    """Every stored face of the photo: face id -> box (x, y, w, h) in the photo's pixels."""
    query = sa.select(faces.c.id, faces.c.x, faces.c.y, faces.c.w, faces.c.h).where(
        faces.c.image_id == image_id
    )
    with catalog.engine.connect() as conn:
        return {int(i): (float(x), float(y), float(w), float(h)) for i, x, y, w, h in conn.execute(query)}
