"""Two-person confirmation of search candidates (issue 26, EU AI Act Art. 14(5)): a match is an
identification only once as many distinct people as its collection requires confirmed it. Through
the CLI, through `facefind serve` and in the web page, on a copy of the face_recognition catalog."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import facefind
from facefind.errors import Conflict, InvalidValue, NotFound
from facefind.policy import Role

from .browser import launch
from .conftest import BIDEN, FR, OBAMA, new_catalog, run_cli, run_json
from .server import Server, serve

# Keys beyond the one per role: Ann has two reviewer keys, Bob one (made by the `server` fixture).
KEYS: dict[str, str] = {}


@pytest.fixture(scope="module")
def server(fr_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One catalog and one server for the module; keys: Ann has two reviewer keys, Bob one."""
    folder = tmp_path_factory.mktemp("confirmations")
    db = folder / "catalog.db"
    shutil.copy(fr_db, db)
    with serve(db, folder, workers=1) as running:
        with facefind.open(db, actor="setup") as ff:
            KEYS["ann-laptop"] = ff.keys_add("ann-laptop", "reviewer", person="Ann").key
            KEYS["ann-phone"] = ff.keys_add("ann-phone", "reviewer", person="ann").key  # one Ann
            KEYS["bob"] = ff.keys_add("bob", "reviewer").key
        yield running


def _search(db: str | Path, actor: str, photo: Path = OBAMA) -> int:
    """A search by `actor`; the seq of its audit entry."""
    with facefind.open(db, actor=actor) as ff:
        assert ff.search(photo, purpose=f"case of {actor}", top_k=3).faces[0].matches
        return next(e.seq for e in reversed(list(ff.audit.entries())) if e.action == "search")


def test_the_cli_identifies_a_candidate_only_after_two_distinct_people(server: Server) -> None:
    db = server.db
    seq = _search(db, "officer")
    with facefind.open(db) as ff:
        pending = [c.model_dump() for c in ff.confirmations.status(seq).candidates]
    assert len(pending) >= 2 and all(c["state"] == "awaiting" and c["required"] == 2 for c in pending)
    best, other = pending[0], pending[1]
    assert best["path"].endswith("obama.jpg") and best["searcher"] == "officer"

    # The searcher may confirm, and counts once: a second confirmation of theirs is refused.
    confirm = ("review", "confirm", seq, best["face_id"], "--note")
    first = run_json(*confirm, "same face", "--actor", "officer", db=db)
    assert first["state"] == "awaiting" and first["confirmed_by"] == ["officer"]
    again = run_cli(*confirm, "sure", "--actor", "Officer", "--json", db=db)
    assert again.returncode == 1 and "already confirmed" in json.loads(again.stdout)["error"]["message"]
    with facefind.open(db, actor="carol") as ff:
        assert ff.confirmations.status(seq).identified == []
        with pytest.raises(InvalidValue, match="needs a note"):
            ff.confirmations.confirm(seq, best["face_id"], note=" ")

    # A second person makes it an identification; a rejection blocks another candidate for good.
    done = run_cli(*confirm, "ears", "--actor", "carol", db=db, check=True).stdout
    assert f"#{seq} face {best['face_id']}" in done and "identified: confirmed by officer, carol" in done
    run_json("review", "reject", seq, other["face_id"], "--note", "another man", "--actor", "dave", db=db)
    with facefind.open(db, actor="carol") as ff:
        with pytest.raises(Conflict, match="rejected by dave"):
            ff.confirmations.confirm(seq, other["face_id"], note="same")
        review = ff.confirmations.status(seq)
        entries = list(ff.audit.entries())
        assert ff.audit.verify().ok
    assert review.verifiers == ["officer", "carol"] and review.identified == [best["face_id"]]
    assert {c.face_id: c.state for c in review.candidates}[other["face_id"]] == "rejected"
    assert [d.note for d in review.candidates[1].decisions] == ["another man"]

    # Every decision is an audit entry naming the search and the face; the search entry is unchanged.
    decided = [e for e in entries if e.action in ("confirm", "reject") and e.details["search_seq"] == seq]
    assert [(e.action, e.actor, e.details["face"]) for e in decided] == [
        ("confirm", "officer", best["face_id"]),
        ("confirm", "carol", best["face_id"]),
        ("reject", "dave", other["face_id"]),
    ]
    assert decided[1].details["verifiers"] == ["officer", "carol"]
    assert decided[1].details["state"] == "identified"
    assert next(e for e in entries if e.seq == seq).details["verifiers"] == []
    # The transparency report counts the decisions (this module's catalog had none before).
    with facefind.open(db) as ff:
        oversight = ff.report()["oversight"]
    assert (oversight["confirmations"], oversight["identified"], oversight["rejections"]) == (2, 1, 1)
    report = run_cli("report", db=db, check=True).stdout
    assert "2 decision(s), 1 reaching the confirmations their collection requires; 1 rejected" in report


def test_one_confirmation_must_be_allowed_explicitly_and_applies_to_later_searches(server: Server) -> None:
    db = server.db
    earlier = _search(db, "officer", BIDEN)
    refused = run_cli("collection", "update", "default", "--confirmations", "1", db=db)
    assert refused.returncode != 0 and "--allow-single-confirmation" in refused.stderr
    try:
        updated = run_json(
            "collection", "update", "default", "--confirmations", "1", "--allow-single-confirmation", db=db
        )
        assert updated["confirmations"] == 1
        later = _search(db, "officer", BIDEN)
        with facefind.open(db, actor="erin") as ff:
            with pytest.raises(InvalidValue, match="confirmations"):
                ff.set_confirmations("default", 0)
            face = ff.confirmations.status(later).candidates[0].face_id
            assert ff.confirmations.confirm(later, face, note="match").state == "identified"
            # A search made under the rule of two keeps it.
            old = ff.confirmations.status(earlier).candidates[0]
            assert ff.confirmations.confirm(earlier, old.face_id, note="match").state == "awaiting"
    finally:
        with facefind.open(db) as ff:
            ff.set_confirmations("default", 2)


def test_over_http_the_same_person_under_two_keys_counts_once(server: Server) -> None:
    with server.client(Role.operator) as operator:
        found = operator.post(
            "/v1/search",
            files={"photo": ("obama.jpg", OBAMA.read_bytes(), "image/jpeg")},
            data={"purpose": "case 31", "top_k": "2"},
        )
        assert found.status_code == 200, found.text
        match = found.json()["faces"][0]["matches"][0]["face_id"]
        assert operator.get("/v1/review").status_code == 403
    with server.client(key=KEYS["ann-laptop"]) as laptop:
        pending = laptop.get("/v1/review").json()
        seq = max(c["search_seq"] for c in pending if c["searcher"] == "operator-key")
        path = f"/v1/review/{seq}/{match}"
        face = laptop.get(f"{path}/query-face")
        assert face.status_code == 200 and face.content[:2] == b"\xff\xd8"  # a JPEG
        first = laptop.post(f"{path}/confirm", json={"note": "same chin"})
        assert first.status_code == 200, first.text
        assert first.json()["confirmed_by"] == ["Ann"] and first.json()["state"] == "awaiting"
    with server.client(key=KEYS["ann-phone"]) as phone:
        twice = phone.post(f"{path}/confirm", json={"note": "really the same"})
        assert twice.status_code == 409 and "ann already confirmed" in twice.json()["error"]["message"]
    with server.client(Role.operator) as operator:
        assert operator.post(f"{path}/confirm", json={"note": "mine"}).status_code == 403
    with server.client(key=KEYS["bob"]) as bob:
        done = bob.post(f"{path}/confirm", json={"note": "agree"}).json()
        assert done["state"] == "identified" and done["confirmed_by"] == ["Ann", "bob"]
        assert bob.post("/v1/review/999999/1/confirm", json={"note": "x"}).status_code == 404
    with server.client(Role.auditor) as auditor:
        review = auditor.get(f"/v1/review/{seq}").json()
        assert review["verifiers"] == ["Ann", "bob"] and review["identified"] == [match]
        assert all(c["path"] is None for c in review["candidates"])  # who decided, not who is where
        assert auditor.get(f"{path}/query-face").status_code == 403
        assert auditor.post(f"{path}/reject", json={"note": "no"}).status_code == 403
        entries = auditor.get("/v1/audit").json()
        confirms = [e for e in entries if e["action"] == "confirm" and e["details"]["search_seq"] == seq]
        assert [(e["actor"], e["details"]["person"]) for e in confirms] == [
            ("ann-laptop", "Ann"),
            ("bob", "bob"),
        ]
        assert auditor.get("/v1/audit/verify").json()["ok"]


def test_the_page_lets_a_reviewer_confirm_an_auditor_read_and_refuses_an_operator(server: Server) -> None:
    from .test_web_ui import Pages, screenshot, sync_api

    expect = sync_api.expect
    seq = _search(server.db, "officer")
    with facefind.open(server.db) as ff:
        face = ff.confirmations.status(seq).candidates[0].face_id
    item = f'li.to-confirm[data-search="{seq}"][data-face="{face}"]'
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        pages = Pages(browser, server)
        try:
            page = pages.open(Role.reviewer)
            page.get_by_role("link", name="Awaiting confirmation").click()
            expect(page.get_by_role("heading", name="Awaiting confirmation")).to_be_visible()
            card = page.locator(item)
            expect(card.get_by_role("img", name=f"Query face of search {seq}")).to_be_visible()
            expect(card.get_by_role("img", name=f"Candidate: face {face}")).to_be_visible()
            loaded = "i => i.decode().then(() => i.naturalWidth)"  # rejects if the picture fails
            for img in (f"Query face of search {seq}", f"Candidate: face {face}"):
                assert card.get_by_role("img", name=img).evaluate(loaded) > 0, img
            screenshot(page, "confirm")
            card.get_by_label("Note").fill("same mole, same ear")
            card.get_by_role("button", name="Confirm").click()
            expect(page.locator("main p.ok")).to_contain_text("1 of 2 confirmations")
            expect(page.locator(item).locator(".tally")).to_contain_text("(by reviewer-key)")

            auditor = pages.open(Role.auditor)
            auditor.get_by_role("link", name="Awaiting confirmation").click()
            card = auditor.locator(item)
            expect(card).to_contain_text("1 of 2 confirmations (by reviewer-key)")
            expect(card.get_by_role("button")).to_have_count(0)
            expect(card.get_by_role("img")).to_have_count(0)
            expect(auditor.locator("main")).to_contain_text("Read-only")

            operator = pages.open(Role.operator)
            expect(operator.locator("#nav")).not_to_contain_text("Awaiting confirmation")
            operator.goto(f"{server.url}/#/confirm")
            expect(operator.get_by_role("heading", name="Not available for your role")).to_be_visible()
        finally:
            pages.close()
            browser.close()
    with facefind.open(server.db) as ff:
        decided = ff.confirmations.status(seq).candidates[0]
        assert decided.confirmed_by == ["reviewer-key"] and decided.decisions[0].note == "same mole, same ear"


def test_the_query_face_is_kept_under_retention_and_goes_with_the_candidates(fr_copy: Path) -> None:
    with facefind.open(fr_copy, actor="officer") as ff:
        seq = _search(fr_copy, "officer")
        face = ff.confirmations.status(seq).candidates[0].face_id
        assert ff.confirmations.query_crop(seq, face)[:2] == b"\xff\xd8"
        with sqlite3.connect(fr_copy) as conn:
            ((expires, at),) = conn.execute(
                "select expires_at, searched_at from review_query_faces q join review_candidates c "
                "on c.search_seq = q.search_seq and c.query_face = q.query_face where q.search_seq = ? "
                "group by q.search_seq",
                (seq,),
            )
            # The collection keeps photos a year: so long is the query face kept.
            assert datetime.fromisoformat(expires) - datetime.fromisoformat(at) == timedelta(days=365)
            conn.execute("update review_query_faces set expires_at = '2000-01-01T00:00:00+00:00'")
        assert ff.purge().query_faces_deleted == 1
        with pytest.raises(NotFound, match="no longer kept"):
            ff.confirmations.query_crop(seq, face)
        # An erasure that leaves a search no candidate removes its query face at once.
        later = _search(fr_copy, "officer")
        ff.erase("collection", "default", confirm=True)
        with pytest.raises(NotFound):
            ff.confirmations.status(later)
        with sqlite3.connect(fr_copy) as conn:
            assert conn.execute("select count(*) from review_query_faces").fetchone() == (0,)


def test_the_same_rules_hold_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("obama.jpg", "obama2.jpg", "obama-720p.jpg"):
        shutil.copy(FR / "Barack_Obama" / name, photos / name)
    with facefind.open(new_catalog(pg_url), actor="officer") as ff:
        ff.index(photos, workers=1)
        ff.keys_add("a1", "reviewer", person="Ann")
        ff.keys_add("a2", "reviewer", person="ann")
        ff.search(OBAMA, purpose="case 40", top_k=3)
        pending = ff.confirmations.pending()
        assert len(pending) == 3, pending
        seq, face = pending[0].search_seq, pending[0].face_id
        assert ff.confirmations.query_crop(seq, face)[:2] == b"\xff\xd8"
        assert ff.acting_as("a1").confirmations.confirm(seq, face, note="chin").state == "awaiting"
        with pytest.raises(Conflict, match="already confirmed"):
            ff.acting_as("a2").confirmations.confirm(seq, face, note="chin again")
        assert ff.confirmations.confirm(seq, face, note="ears").state == "identified"
        ff.acting_as("bob").confirmations.reject(seq, pending[1].face_id, note="another man")
        assert [c.face_id for c in ff.confirmations.pending()] == [pending[2].face_id]
        assert ff.set_confirmations("default", 3).confirmations == 3
        ff.erase("collection", "default", confirm=True)
        assert ff.confirmations.pending() == [] and ff.audit.verify().ok
