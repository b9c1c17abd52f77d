"""Add, replace and delete faces and save the index in a loop, forever; the crash test kills it.

    python -m tests.churn CATALOG.db [KIND]
Prints one line per completed round. KIND forces an index kind (default: auto).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from facefind.catalog import Catalog
from facefind.faces.opencv import MODEL_ID
from facefind.vectors import IndexPolicy, VectorStore

from .synthetic import DIM, add_image, remove_image, unit


def main(db: Path, kind: str) -> None:
    catalog = Catalog(db)
    store = VectorStore(catalog, MODEL_ID, DIM, Path(f"{db}.vectors"), IndexPolicy(kind=kind))
    rng = np.random.default_rng()
    live: list[str] = []
    round_ = 0
    while True:
        for _ in range(20):
            path = f"/churn/{round_}-{len(live)}-{rng.integers(1 << 30)}.jpg"
            add_image(catalog, path, unit(rng, 3))
            live.append(path)
        for _ in range(8):
            remove_image(catalog, live.pop(int(rng.integers(len(live)))))
        add_image(catalog, live[int(rng.integers(len(live)))], unit(rng, 2))  # a changed photo
        store.index()
        store.save(force=True)
        round_ += 1
        print(round_, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "auto")
