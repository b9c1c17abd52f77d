"""The review queue through `facefind serve`: the API's routes and the web UI's Review page."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import facefind
from facefind.policy import Role

from .browser import launch
from .server import Server, serve
from .test_review import CONSENT, _in, _leave_out

LOOSE = 3  # Obama faces left in no person


@pytest.fixture(scope="module")
def server(fr_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The face_recognition catalog with Obama named and three of his faces in no person, and
    Alex Lacamoire's faces in no person (his photos: an "are these one person?" question)."""
    folder = tmp_path_factory.mktemp("review")
    db = folder / "catalog.db"
    shutil.copy(fr_db, db)
    with facefind.open(db) as ff:
        obama = next(p for p in ff.people.all() if "/Barack_Obama/" in p.faces[0].path)
        ff.consent_add(obama.id, **CONSENT)
        ff.people.name(obama.id, "Barack Obama")
        _leave_out(ff, sorted(_in(ff, obama.id))[:LOOSE])
        alex = next(p for p in ff.people.all() if "/Alex_Lacamoire/" in p.faces[0].path)
        _leave_out(ff, sorted(_in(ff, alex.id)))
    with serve(db, folder, workers=1) as running:
        yield running


def _obama(server: Server) -> int:
    with facefind.open(server.db) as ff:
        return next(p.id for p in ff.people.all() if p.name == "Barack Obama")


def test_the_api_pages_the_queue_and_takes_answers(server: Server) -> None:
    obama = _obama(server)
    with server.client(Role.reviewer) as reviewer:
        first = reviewer.get("/v1/people/suggestions", params={"limit": 1})
        assert first.status_code == 200, first.text
        page = first.json()
        assert len(page["suggestions"]) == 1 and page["next"] and page["total"] >= LOOSE
        rest = reviewer.get("/v1/people/suggestions", params={"limit": 100, "after": page["next"]}).json()
        items = [s["item"] for s in page["suggestions"] + rest["suggestions"] if s["candidate"] == obama]
        faces = [i for i in items if i.startswith("face:")]
        assert len(faces) >= LOOSE
        bad = reviewer.post("/v1/people/suggestions/answers", json={"items": faces[:1]})
        assert bad.status_code == 400 and "exactly one of" in bad.json()["error"]["message"]
        no = reviewer.post("/v1/people/suggestions/answers", json={"items": faces[:1], "no": obama})
        assert no.status_code == 200 and no.json()[0]["answer"] == "no"
        after = reviewer.get("/v1/people/suggestions", params={"limit": 100}).json()
        assert (faces[0], obama) not in {(s["item"], s["candidate"]) for s in after["suggestions"]}
    with server.client(Role.operator) as operator:
        refused = operator.get("/v1/people/suggestions")
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "Refused"
    with facefind.open(server.db) as ff:
        reviews = [
            e for e in ff.audit.entries() if e.action == "person" and e.details["decision"] == "review"
        ]
        assert [(e.actor, e.details["answer"], e.details["items"]) for e in reviews] == [
            ("reviewer-key", "no", faces[:1])
        ]


def test_the_review_page_answers_for_a_reviewer_and_is_refused_to_an_operator(server: Server) -> None:
    from .test_web_ui import Pages, screenshot, sync_api

    expect = sync_api.expect
    obama = _obama(server)
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        pages = Pages(browser, server)
        try:
            page = pages.open(Role.reviewer)
            page.get_by_role("link", name="Review").click()
            expect(page.get_by_role("heading", name="Review", exact=True)).to_be_visible()
            group = page.locator(f'section.review-group[data-candidate="{obama}"]')
            expect(group.get_by_role("heading")).to_have_text("Is this Barack Obama?")
            questions = group.locator("li.question")
            expect(questions.first).to_be_visible()
            count = questions.count()
            assert count >= 1
            screenshot(page, "review")
            item = questions.first.get_attribute("data-item")
            questions.first.get_by_role("button", name="Yes, Barack Obama").click()
            expect(page.locator("main p.ok")).to_contain_text("is now Barack Obama")
            expect(page.locator(f'li.question[data-item="{item}"]')).to_have_count(0)
            assert item is not None and item.startswith("face:")
            with facefind.open(server.db) as ff:
                assert int(item.split(":")[1]) in _in(ff, obama)

            operator = pages.open(Role.operator)
            expect(operator.locator("#nav")).not_to_contain_text("Review")
            operator.goto(f"{server.url}/#/review")
            expect(operator.get_by_role("heading", name="Not available for your role")).to_be_visible()
        finally:
            pages.close()
            browser.close()


def test_the_api_removes_a_false_face_and_adds_one_by_box(server: Server) -> None:
    with facefind.open(server.db) as ff:
        biden = next(p for p in ff.people.all() if "/Joe_Biden/" in p.faces[0].path)
        face = biden.faces[0]
    box = f"{face.box.x:.0f},{face.box.y:.0f},{face.box.w:.0f},{face.box.h:.0f}"
    with server.client(Role.operator) as operator:
        refused = operator.post(f"/v1/faces/{face.face_id}/not-a-face")
        assert refused.status_code == 403
    with server.client(Role.reviewer) as reviewer:
        removed = reviewer.post(f"/v1/faces/{face.face_id}/not-a-face")
        assert removed.status_code == 200 and removed.json()["face_id"] == face.face_id
        assert reviewer.get(f"/v1/faces/{face.face_id}/crop").status_code == 404
        added = reviewer.post("/v1/faces", json={"path": face.path, "box": box, "person": biden.id})
        assert added.status_code == 201, added.text
        new = added.json()
        assert new["alignment"] == "detector" and new["person_id"] == biden.id
        assert reviewer.get(f"/v1/faces/{new['face_id']}/crop").status_code == 200
        bad = reviewer.post("/v1/faces", json={"path": face.path, "box": "1,2"})
        assert bad.status_code == 400 and "x,y,w,h" in bad.json()["error"]["message"]


def test_the_people_page_removes_a_false_face_and_adds_one_drawn_on_the_photo(server: Server) -> None:
    """On a person's page a reviewer marks a detection "not a face", and drags a box on another
    face's photo (shown scaled: by the server and by the page) to add a face the detector missed:
    the box arrives in the photo's own pixels."""
    from .test_web_ui import Pages, every_control_is_labelled, screenshot, sync_api

    expect = sync_api.expect
    with facefind.open(server.db) as ff:
        kit = next(p for p in ff.people.all() if "/Kit_Harington/" in p.faces[0].path)
        drawn_on = next(f for f in kit.faces if f.path.endswith("john1.jpeg"))  # 1200x599 pixels
        removed = next(f for f in kit.faces if f.face_id != drawn_on.face_id)
    with server.client(Role.operator) as operator:
        assert operator.get(f"/v1/faces/{drawn_on.face_id}/photo").status_code == 403
    with server.client(Role.reviewer) as reviewer:
        small = reviewer.get(f"/v1/faces/{drawn_on.face_id}/photo", params={"size": 600})
        assert small.status_code == 200 and small.headers["content-type"] == "image/jpeg"
        assert float(small.headers["X-Facefind-Scale"]) == 0.5
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        pages = Pages(browser, server)
        try:
            page = pages.open(Role.reviewer, width=900)
            page.goto(f"{server.url}/#/people/{kit.id}")
            card = page.locator(f'li.face-card[data-face="{removed.face_id}"]')
            # A reviewer sees the face before calling it not one: its crop is lazy, and a crop
            # requested after the removal is rightly a 404 (which the page counts as an error).
            card.scroll_into_view_if_needed()
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=card.locator("img").element_handle()
            )
            card.get_by_role("button", name="Not a face").click()
            expect(page.locator("main p.ok")).to_contain_text(f"Face {removed.face_id} removed: not a face")
            expect(card).to_have_count(0)

            page.locator(f'li.face-card[data-face="{drawn_on.face_id}"]').get_by_role(
                "button", name="Add a missed face here"
            ).click()
            photo = page.locator("img.draw-photo")
            expect(photo).to_be_visible()
            # A function with an argument (a string expression is eval'd: the page's CSP refuses it)
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=photo.element_handle())
            shown = page.locator("img.draw-photo").bounding_box()
            assert shown is not None and shown["width"] < 1200  # the page scales it down too
            x0, y0, x1, y1 = 0.05, 0.10, 0.20, 0.45  # a box in a corner, as shares of the photo
            page.mouse.move(shown["x"] + x0 * shown["width"], shown["y"] + y0 * shown["height"])
            page.mouse.down()
            page.mouse.move(shown["x"] + x1 * shown["width"], shown["y"] + y1 * shown["height"], steps=5)
            page.mouse.up()
            expect(page.locator(".draw-box")).to_be_visible()
            screenshot(page, "draw-face")
            every_control_is_labelled(page)
            box = page.get_by_label("Box (x,y,w,h in the photo's pixels)").input_value()
            expected = (x0 * 1200, y0 * 599, (x1 - x0) * 1200, (y1 - y0) * 599)
            drawn = [float(v) for v in box.split(",")]
            assert all(abs(a - b) <= 3 for a, b in zip(drawn, expected, strict=True)), (drawn, expected)
            page.get_by_role("button", name="Add this face").click()
            expect(page.locator("main p.ok")).to_contain_text("added (centred in the box)")
        finally:
            pages.close()
            browser.close()
    with facefind.open(server.db) as ff:
        rows = ff.catalog.face_rows(range(1, 1000))
        assert removed.face_id not in rows
        (added,) = [r for r in rows.values() if r.path == drawn_on.path and r.id != drawn_on.face_id]
        assert [round(v) for v in added.box] == [round(v) for v in drawn]
        details = [e.details for e in ff.audit.entries() if e.action in ("face", "view")]
        assert any(d.get("not_a_face") == removed.face_id for d in details)
        assert any(d.get("photo_of_face") == drawn_on.face_id for d in details)
        assert any(d.get("added") == added.id for d in details)


def test_the_review_page_makes_look_alike_faces_one_person(server: Server) -> None:
    from .test_web_ui import Pages, sync_api

    expect = sync_api.expect
    with facefind.open(server.db) as ff:
        rows = ff.catalog.face_rows(range(1, 1000))
    alex = sorted(r.id for r in rows.values() if "/Alex_Lacamoire/" in r.path)
    assert len(alex) >= 2 and all(rows[f].person_id is None for f in alex)
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        pages = Pages(browser, server)
        try:
            page = pages.open(Role.reviewer)
            page.get_by_role("link", name="Review").click()
            section = page.locator("section.together").filter(
                has=page.locator(f'li[data-item="face:{alex[0]}"]')
            )
            expect(section.get_by_role("heading")).to_have_text("Are these one person?")
            shown = [
                int(i.split(":")[1])
                for i in section.locator("li.question").evaluate_all("els => els.map(e => e.dataset.item)")
            ]
            assert set(alex) <= set(shown)
            for face in set(shown) - set(alex):  # someone else: unchecked
                section.locator(f'li[data-item="face:{face}"]').get_by_role("checkbox").uncheck()
            section.get_by_role("button", name="Yes: the checked faces are one person").click()
            expect(page.locator("main p.ok")).to_contain_text(f"{len(alex)} faces are now one person")
        finally:
            pages.close()
            browser.close()
    with facefind.open(server.db) as ff:
        rows = ff.catalog.face_rows(alex)
        (person,) = {rows[f].person_id for f in alex}
        assert person is not None and {f.face_id for f in ff.people.get(person).faces} == set(alex)
