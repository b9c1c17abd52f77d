"""Catalog faces with made-up embeddings, for exercising the vector index quickly."""

from __future__ import annotations

import numpy as np

from facefind import recognizers
from facefind.catalog import Catalog
from facefind.faces import Detection, Face, Quality
from facefind.faces.opencv import MODEL_ID

DIM = 128


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def face(vector: np.ndarray, quality: float = 0.9, model_id: str = MODEL_ID) -> Face:
    det = Detection((0.0, 0.0, 100.0, 100.0), np.zeros((5, 2), np.float32), 0.9)
    return Face(det, Quality(100.0, 100.0, 0.0, quality), vector, model_id, True)


def add_image(catalog: Catalog, path: str, vectors: np.ndarray, collection: str = "default") -> list[int]:
    """Catalogue one image with these face embeddings (as the catalog's recognizer's); returns the
    new face ids."""
    collection_id = catalog.collection_id(collection)
    model_id = recognizers.active(catalog)
    with catalog.transaction() as conn:
        image_id = catalog.save_image(
            conn,
            collection_id,
            path,
            sha256=None,
            size=1,
            mtime_ns=1,
            shape=(100, 100),
            found=[face(v, model_id=model_id) for v in vectors],
            error=None,
        )
        rows = conn.exec_driver_sql(f"select id from faces where image_id = {image_id} order by id")
        return [r[0] for r in rows]


def remove_image(catalog: Catalog, path: str, collection: str = "default") -> None:
    collection_id = catalog.collection_id(collection)
    with catalog.transaction() as conn:
        (image_id,) = conn.exec_driver_sql(
            "select id from images where path = ? and collection_id = ?", (path, collection_id)
        ).one()
        catalog.remove_images(conn, [image_id])
