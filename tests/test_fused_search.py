"""Searching with several photos of one person (issue 22): one query, the best similarity of each
catalogued face to any of the photos, the FPIR shared between them so the stated rate holds; and
the consent and opt-out filters hold for it as for a search by one photo."""

from __future__ import annotations

from pathlib import Path

import pytest

import facefind
from facefind.errors import FacefindError, InvalidValue
from facefind.policy import Role

from .conftest import FR, GLINT, run_cli, run_json
from .server import serve_copy

OBAMA_A, OBAMA_B = GLINT / "Barack_Obama" / "0.png", GLINT / "Barack_Obama" / "1.png"
KEANU_A, KEANU_B = sorted((GLINT / "Keanu_Reeves").iterdir())[:2]
EVERYTHING = dict(given_by="him", scope="search,results,clustering", expires="2099-12-31", evidence="form")


def _similarities(result: facefind.SearchResult) -> dict[int, float]:
    return {m.face_id: m.similarity for f in result.faces for m in f.matches}


def test_two_photos_of_one_person_are_one_query_at_half_the_fpir_each(fr_copy: Path) -> None:
    with facefind.open(fr_copy) as ff:
        a = ff.search(OBAMA_A, purpose="t", top_k=50, max_fpir=0.3)  # low: every candidate
        b = ff.search(OBAMA_B, purpose="t", top_k=50, max_fpir=0.3)
        both = ff.search([OBAMA_A, OBAMA_B], purpose="t", top_k=50)
        gallery = both.faces_searched
        half = ff.calibration().threshold_for_fpir(0.005, gallery)
        one = ff.search(OBAMA_A, purpose="t", top_k=50)
    assert len(both.faces) == 1 and [p.query for p in both.fused] == [str(OBAMA_A), str(OBAMA_B)]
    assert both.query == f"{OBAMA_A} + {OBAMA_B}" and not one.fused
    assert both.fused[0].similarity_to_first is None and both.fused[1].similarity_to_first > 0.5
    assert not any("same person" in w for p in both.fused for w in p.warnings)
    # Each photo is searched at FPIR 0.005: a stricter threshold than one photo's at 0.01.
    assert both.threshold == round(half, 4) and both.threshold > one.threshold
    # Every catalogued face scores its best similarity to either photo, and only those reaching
    # the threshold come back: Obama's photos of face_recognition.
    sa, sb = _similarities(a), _similarities(b)
    fused = _similarities(both)
    expected = {f: max(sa.get(f, -1), sb.get(f, -1)) for f in sa.keys() | sb.keys()}
    assert fused == {f: s for f, s in expected.items() if s >= both.threshold}
    assert len(fused) >= 8
    assert all("Barack_Obama" in m.path for m in both.faces[0].matches)
    # Its rates are union bounds over the two photos.
    top = both.faces[0].matches[0]
    single = next(
        m
        for r in (a, b)
        for m in r.faces[0].matches
        if m.face_id == top.face_id and m.similarity == top.similarity
    )
    assert a.faces_searched == gallery and top.fpir_upper == pytest.approx(min(1.0, 2 * single.fpir_upper))


def test_photos_of_a_stranger_find_no_one_and_two_people_are_flagged(fr_copy: Path) -> None:
    with facefind.open(fr_copy) as ff:
        stranger = ff.search([KEANU_A, KEANU_B], purpose="t")
        mixed = ff.search([OBAMA_A, KEANU_A], purpose="t")
        with pytest.raises(FacefindError, match="largest face of each"):
            ff.search([OBAMA_A, OBAMA_B], purpose="t", face=0)
        with pytest.raises(InvalidValue, match="photos 11"):
            ff.search([OBAMA_A] * 11, purpose="t")
    assert stranger.faces_searched > 0 and not stranger.matched
    assert any("may not show the same person as photo 1" in w for w in mixed.fused[1].warnings)
    assert mixed.matched  # the search looks for either: Obama is found


def test_cli_searches_several_photos_as_one_query(fr_copy: Path) -> None:
    found = run_json("search", OBAMA_A, OBAMA_B, "--purpose", "t", db=fr_copy)
    assert len(found["faces"]) == 1 and len(found["fused"]) == 2 and found["faces"][0]["matches"]
    text = run_cli("search", OBAMA_A, KEANU_A, "--purpose", "t", db=fr_copy, check=True).stdout
    assert "one person in 2 photos" in text and "may not show the same person" in text
    one = run_json("search", OBAMA_A, "--purpose", "t", db=fr_copy)
    assert one["fused"] == [] and one["query"] == str(OBAMA_A)


def test_a_fused_search_never_reaches_a_withdrawn_or_opted_out_person(fr_copy: Path) -> None:
    biden_a, biden_b = FR / "Joe_Biden" / "biden.jpg", FR / "Joe_Biden" / "biden2.jpg"
    with facefind.open(fr_copy) as ff:
        obama = next(p.id for p in ff.people.all() if "Barack_Obama" in p.faces[0].path)
        given = ff.consent_add(obama, **EVERYTHING)
        assert _similarities(ff.search([OBAMA_A, OBAMA_B], purpose="t", top_k=50))
        ff.consent_withdraw(given.id)
        for rule in ({}, {"max_fmr": 0.01}):  # the loosest the service allows, too
            assert not ff.search([OBAMA_A, OBAMA_B], purpose="t", top_k=50, **rule).matched

        assert any("Joe_Biden" in m.path for m in ff.search([biden_a, biden_b], purpose="t").faces[0].matches)
        ff.optout_add(biden_a, note="request 12")
        for rule in ({}, {"max_fmr": 0.01}):
            found = ff.search([biden_a, biden_b], purpose="t", top_k=50, **rule)
            assert not any("Joe_Biden" in m.path for f in found.faces for m in f.matches)


def test_the_api_searches_several_photo_files_as_one_query(fr_db: Path, tmp_path: Path) -> None:
    def photo(path: Path) -> tuple[str, tuple[str, bytes, str]]:
        return ("photo", (path.name, path.read_bytes(), "image/png"))

    with serve_copy(fr_db, tmp_path, workers=1) as server, server.client(Role.operator) as operator:
        both = operator.post("/v1/search", files=[photo(OBAMA_A), photo(OBAMA_B)], data={"purpose": "case 9"})
        one = operator.post("/v1/search", files=[photo(OBAMA_A)], data={"purpose": "case 9"})
    assert both.status_code == 200 and one.status_code == 200, (both.text, one.text)
    fused = both.json()
    assert [p["query"].split(",")[0] for p in fused["fused"]] == ["<upload '0.png'", "<upload '1.png'"]
    assert len(fused["faces"]) == 1 and fused["faces"][0]["matches"]
    assert all("Barack_Obama" in m["path"] for m in fused["faces"][0]["matches"])
    assert fused["threshold"] > one.json()["threshold"] and one.json()["fused"] == []
