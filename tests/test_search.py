"""Search and verify through the library on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import facefind
from facefind.errors import FacefindError, NoFaceError

from .conftest import BIDEN, FR, GLINT, MULTI, OBAMA, new_catalog


def test_search_finds_the_person_and_only_above_threshold(fr_copy: Path) -> None:
    with facefind.open(fr_copy, purpose="test") as ff:
        result = ff.search(FR / "Barack_Obama" / "obama2.jpg", top_k=20)
    (face,) = result.faces
    assert face.matches, "Obama's other photos must match"
    assert all("Barack_Obama" in m.path for m in face.matches)
    # obama2 itself plus at least 8 of his other 11 photos (partial faces may fall short)
    assert len(face.matches) >= 9
    assert all(m.similarity >= result.threshold for m in face.matches)
    assert [m.similarity for m in face.matches] == sorted((m.similarity for m in face.matches), reverse=True)
    # The default decision holds FPIR at 0.01 at the 23 faces searched: FMR <= 0.01 / 23 each.
    assert result.rule == "fpir" and result.faces_searched == 23
    assert all(m.fpir <= 0.01 and m.fmr <= 0.01 / 23 for m in face.matches)


def test_stranger_gets_no_match_rather_than_a_wrong_person(fr_copy: Path) -> None:
    stranger = GLINT / "Keanu_Reeves" / sorted(p.name for p in (GLINT / "Keanu_Reeves").iterdir())[0]
    with facefind.open(fr_copy, purpose="test") as ff:
        result = ff.search(stranger)
        loose = ff.search(stranger, threshold=-1.0, top_k=3)
    assert result.faces[0].matches == []
    assert not result.matched
    assert len(loose.faces[0].matches) == 3  # the catalog is not empty: the threshold did it


def test_several_faces_are_each_searched_or_one_chosen(fr_copy: Path) -> None:
    with facefind.open(fr_copy, purpose="test") as ff:
        both = ff.search(MULTI / "two_people.jpg")
        second = ff.search(MULTI / "two_people.jpg", face=1)
        with pytest.raises(FacefindError, match="has 2 face"):
            ff.search(MULTI / "two_people.jpg", face=5)
    assert len(both.faces) == 2
    found = {Path(f.matches[0].path).parent.name for f in both.faces}
    assert found == {"Barack_Obama", "Joe_Biden"}
    assert [f.face for f in second.faces] == [1]
    assert second.faces[0].matches[0].path == both.faces[1].matches[0].path


def test_query_without_face_is_a_clear_error(fr_copy: Path) -> None:
    blank = np.full((400, 400, 3), 128, np.uint8)
    with facefind.open(fr_copy, purpose="test") as ff, pytest.raises(NoFaceError, match="no face found"):
        ff.search(blank)


def test_query_as_bytes_and_array(fr_copy: Path) -> None:
    from facefind.images import load_image

    with facefind.open(fr_copy, purpose="test") as ff:
        by_bytes = ff.search(BIDEN.read_bytes())
        by_array = ff.search(load_image(BIDEN))
    assert by_bytes.faces[0].matches[0].path == str(BIDEN)
    assert by_array.faces[0].matches[0].similarity == pytest.approx(
        by_bytes.faces[0].matches[0].similarity, abs=1e-4
    )


def test_verify_same_and_different(fr_copy: Path) -> None:
    with facefind.open(fr_copy, purpose="test") as ff:
        same = ff.verify(OBAMA, FR / "Barack_Obama" / "obama-720p.jpg")
        different = ff.verify(OBAMA, BIDEN)
        strict = ff.verify(OBAMA, FR / "Barack_Obama" / "obama-720p.jpg", threshold=0.999)
    assert same.same_person and same.fmr <= 1e-3
    assert not different.same_person and different.fmr > 1e-3
    assert not strict.same_person and strict.threshold == 0.999


def test_max_fmr_moves_the_threshold(fr_copy: Path) -> None:
    with facefind.open(fr_copy, purpose="test") as ff:
        assert ff.threshold(1e-2, None) < ff.threshold(1e-3, None) < ff.threshold(1e-5, None)
        with pytest.raises(FacefindError, match="cosine similarity"):
            ff.threshold(None, 3.0)


def test_exclusions_and_collections_still_give_top_k(fr_copy: Path) -> None:
    with facefind.open(fr_copy, purpose="test") as ff:
        everything = ff.search(OBAMA, threshold=-1.0, top_k=8).faces[0].matches
        excluded = [m.face_id for m in everything[:3]]
        rest = ff.search(OBAMA, threshold=-1.0, top_k=8, exclude=excluded).faces[0].matches
        with pytest.raises(FacefindError, match="no collection named 'elsewhere'"):
            ff.search(OBAMA, collections=["elsewhere"])
        same = ff.search(OBAMA, threshold=-1.0, top_k=8, collections=["default"]).faces[0].matches
    assert len(rest) == 8 and not {m.face_id for m in rest} & set(excluded)
    assert [m.face_id for m in rest[:5]] == [m.face_id for m in everything[3:]]
    assert [m.face_id for m in same] == [m.face_id for m in everything]


@pytest.mark.parametrize("kind", ["pq", "hnsw"])
def test_approximate_index_gives_exactly_the_exact_top_k(glint_set, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    """Approximate candidates are over-fetched and re-ranked by exact cosine, then cut to top_k."""
    from .synthetic import add_image

    db = new_catalog(tmp_path / "catalog.db")
    query = GLINT / "Keanu_Reeves" / sorted(p.name for p in (GLINT / "Keanu_Reeves").iterdir())[0]
    with facefind.open(db, purpose="test") as ff:
        for i in np.flatnonzero(glint_set.detected):
            add_image(ff.catalog, glint_set.paths[i], glint_set.embeddings[i][None])
        exact = ff.search(query, threshold=-1.0, top_k=7).faces[0].matches
        assert ff.reindex(kind)["kind"] == kind
        assert ff.vector_index().candidates(7) > 7
        approximate = ff.search(query, threshold=-1.0, top_k=7).faces[0].matches
    assert ff.vectors.info()["kind"] == kind
    assert [(m.face_id, m.similarity) for m in approximate] == [(m.face_id, m.similarity) for m in exact]
