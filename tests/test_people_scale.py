"""100,000 persons: the people list and the review queue page through them a page at a time."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

import facefind
from facefind.catalog.schema import face_persons, faces, images, now, persons

from .synthetic import DIM, unit

PERSONS = 100_000
BIG = 1000  # persons 1..BIG have two more faces each (3 in all)
NEAR = 300  # one-face persons whose face looks like the named person's


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PERSONS persons inserted directly (indexing 100k photos would take hours): person i has face
    i, persons 1..BIG two more; person PERSONS + 1 is named, with consent, and NEAR one-face persons
    are close to them."""
    db = tmp_path_factory.mktemp("scale") / "c.db"
    rng = np.random.default_rng(24)
    with facefind.open(db) as ff:
        ff.create_collection("default", owner="tests", basis="own", retention="1y")
        collection = ff.catalog.collection_id("default")
        owners = np.concatenate([np.arange(1, PERSONS + 1), np.repeat(np.arange(1, BIG + 1), 2)])
        vectors = unit(rng, len(owners))
        centre = unit(rng, 1)[0]
        named_faces = centre + 0.25 * unit(rng, 5)
        near = np.arange(BIG + 1, BIG + 1 + NEAR)  # faces (= persons) BIG+1 .. BIG+NEAR
        vectors[near - 1] = centre + 0.35 * unit(rng, NEAR)
        owners = np.concatenate([owners, np.full(5, PERSONS + 1)])
        vectors = np.vstack([vectors, named_faces])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        stamp = now()
        with ff.catalog.transaction() as conn:
            conn.execute(
                sa.insert(images),
                [
                    dict(
                        id=i + 1,
                        collection_id=collection,
                        path=f"/p/{i}.jpg",
                        size=1,
                        mtime_ns=1,
                        status="indexed",
                        indexed_at=stamp,
                    )
                    for i in range(len(owners))
                ],
            )
            conn.execute(
                sa.insert(faces),
                [
                    dict(
                        id=i + 1,
                        image_id=i + 1,
                        face_index=0,
                        x=0.0,
                        y=0.0,
                        w=100.0,
                        h=100.0,
                        landmarks="[]",
                        det_score=0.9,
                        size_px=100.0,
                        sharpness=100.0,
                        yaw=0.0,
                        quality=0.9,
                        model_id=ff.model_id,
                        embedding=vectors[i].astype(np.float32).tobytes(),
                    )
                    for i in range(len(owners))
                ],
            )
            conn.execute(
                sa.insert(persons),
                [
                    dict(id=p, model_id=ff.model_id, hidden=False, created_at=stamp)
                    for p in range(1, PERSONS + 2)
                ],
            )
            conn.execute(
                sa.insert(face_persons),
                [dict(face_id=i + 1, person_id=int(p), pinned=False) for i, p in enumerate(owners)],
            )
        assert vectors.shape[1] == DIM
        ff.consent_add(
            PERSONS + 1, given_by="A", scope="search,results,clustering", expires="2099-01-01", evidence="t"
        )
        ff.people.name(PERSONS + 1, "Anna")
    return db


class Statements:
    """The SQL a block of code runs (SQLAlchemy's cursor events), to show what a page reads."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine, self.seen = engine, []

    def __enter__(self) -> list[tuple[str, object]]:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        self.seen.append((statement, parameters))


def test_the_people_list_pages_through_100k_persons(catalog: Path) -> None:
    limit = 5000
    with facefind.open(catalog) as ff:
        walked, after, pages = [], None, 0
        while True:
            with Statements(ff.catalog.engine) as seen:
                found, after = ff.persons_page(limit=limit, after=after)
            pages += 1
            walked += [(p.face_count, p.id) for p in found]
            # Each page reads one page of persons (LIMIT in the database) and their faces only.
            listing = [
                s for s, _ in seen if re.search(r"FROM persons JOIN \(SELECT face_persons.person_id", s)
            ]
            assert len(listing) == 1 and "LIMIT" in listing[0]
            face_reads = [p for s, p in seen if "FROM face_persons JOIN faces" in s]
            assert all(len(p) <= limit + 1 for p in face_reads)  # type: ignore[arg-type]
            if after is None:
                break
        assert pages == -(-(PERSONS + 1) // limit)
        assert len(walked) == PERSONS + 1 and len(set(walked)) == PERSONS + 1
        assert walked == sorted(walked, key=lambda x: (-x[0], x[1]))
        assert walked[0] == (5, PERSONS + 1) and walked[1] == (3, 1) and walked[BIG + 1] == (1, BIG + 1)
        # The first page by offset and by key agree; a bad key says what to give.
        first, _ = ff.persons_page(limit=10)
        assert [p.id for p in first] == [pid for _, pid in walked[:10]]
        with pytest.raises(facefind.errors.InvalidValue, match="not a page key"):
            ff.persons_page(limit=10, after="x")


def test_the_review_queue_pages_through_100k_persons(catalog: Path) -> None:
    with facefind.open(catalog) as ff:
        # A strict rate: random faces are strangers, and at 1 in 100 some of 100k would be asked about.
        first = ff.suggestions(limit=100, max_fmr=1e-6)
        seen, after = [], None
        while True:
            page = ff.suggestions(limit=100, after=after, max_fmr=1e-6)
            assert len(page.suggestions) <= 100
            seen += [(s.item, s.candidate) for s in page.suggestions]
            if page.next is None:
                break
            after = page.next
        assert len(seen) == first.total and len(set(seen)) == len(seen)
        anna = {item for item, candidate in seen if candidate == PERSONS + 1}
        assert anna == {f"person:{p}" for p in range(BIG + 1, BIG + 1 + NEAR)}
