"""The web UI in a real browser: Playwright drives Debian's Chromium against `facefind serve`.

Each test signs in with a role's key as a person would (typing it into the form) and checks what
the page shows: real photos, real searches, real changes through the API. With
FACEFIND_SCREENSHOTS=DIR (`make screenshots`) the pages are also saved there for the README.
A page fails its test on a JavaScript error, and on an error in the browser's console (a failed
request shows there) unless the test expects that answer (`Pages.expect_console`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from facefind.policy import Role

from .browser import launch, require_chromium
from .conftest import DATASETS, FR, MULTI, OBAMA
from .server import Server, serve_copy

STRANGER = DATASETS / "deepface" / "person02" / "img12.jpg"  # nobody in the face_recognition set

require_chromium(module=True)  # at import: every test here drives the browser
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in .[dev])")
Browser, Page, expect = sync_api.Browser, sync_api.Page, sync_api.expect

NAV = {
    Role.admin: ["Collections", "Keys"],
    Role.operator: ["Search", "Collections"],
    Role.reviewer: ["People", "Review", "Awaiting confirmation"],
    Role.dpo: ["Collections", "Requests"],
    Role.publisher: ["Publish", "Collections"],
    Role.auditor: ["Awaiting confirmation", "Collections", "Audit"],
}


@pytest.fixture(scope="module")
def server(fr_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve_copy(fr_db, tmp_path_factory.mktemp("web"), workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_api.sync_playwright() as playwright:
        launched = launch(playwright)
        yield launched
        launched.close()


class Pages:
    """Browser pages signed in as a role; every page fails the test on a JavaScript error or an
    unexpected error in the console."""

    def __init__(self, browser: Browser, server: Server) -> None:
        self.browser, self.server, self.contexts = browser, server, []
        self.errors: list[str] = []
        self.console: list[str] = []
        self.expected: list[tuple[int, str]] = []

    def expect_console(self, status: int, path: str) -> None:
        """A test's request the server rightly refuses: Chromium logs it as a console error."""
        self.expected.append((status, path))

    def _console(self, message: sync_api.ConsoleMessage) -> None:
        if message.type == "error":
            self.console.append(f"{message.text} at {message.location.get('url', '?')}")

    def _unexpected(self) -> list[str]:
        def expected(line: str) -> bool:
            return any(f"status of {status}" in line and path in line for status, path in self.expected)

        return [line for line in self.console if not expected(line)]

    def open(self, role: Role | None, width: int = 1200, height: int = 900) -> Page:
        context = self.browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        page.on("console", self._console)
        page.goto(f"{self.server.url}/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        if role is not None:
            page.get_by_label("API key").fill(self.server.keys[role])
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("#who")).to_contain_text(f"{role.value}-key")
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        assert not self.errors, self.errors
        assert not self._unexpected(), self._unexpected()


@pytest.fixture
def pages(browser: Browser, server: Server) -> Iterator[Pages]:
    opened = Pages(browser, server)
    yield opened
    opened.close()


PICTURES = "[...document.querySelectorAll('main img')]"
# Through the CSSOM, as the page's Content-Security-Policy refuses injected style sheets; the blur
# grows with the picture's size on screen, so that a large photo is as blurred as a crop.
BLUR = f"(on) => {PICTURES}.forEach(i => i.style.filter = on ? `blur(${{Math.max(5, i.width / 16)}}px)` : '')"


def screenshot(page: Page, name: str) -> None:
    """Saved where `make screenshots` asks (the README's images); taken in every run regardless,
    so a page that cannot render fails here too. Every picture on the page is loaded first (lazy
    ones too: a full-page shot shows those below the fold), then blurred: the shared test photos
    are not ours to publish, so the README shows faces as faces, not who they are."""
    page.evaluate(f"() => {PICTURES}.forEach(i => i.loading = 'eager')")
    page.wait_for_function(f"() => {PICTURES}.every(i => i.complete)")
    grey = page.evaluate(
        f"() => {PICTURES}.filter(i => !i.naturalWidth && !i.matches('.missing')).map(i => i.src)"
    )
    assert grey == [], f"pictures that did not load: {grey}"
    page.evaluate(BLUR, True)
    image = page.screenshot(full_page=True)
    page.evaluate(BLUR, False)
    folder = os.environ.get("FACEFIND_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.png").write_bytes(image)


def every_control_is_labelled(page: Page) -> None:
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('main input, main select, main textarea')]
             .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
             .map(el => el.outerHTML)"""
    )
    assert unlabelled == []


def collection_row(page: Page, name: str) -> sync_api.Locator:
    return page.locator("tbody tr").filter(has=page.locator("th", has_text=re.compile(f"^{name}$")))


def search(page: Page, photo: Path | list[Path], purpose: str) -> None:
    if not page.url.endswith("#/search"):
        page.get_by_role("navigation").get_by_role("link", name="Search").click()
    page.locator("#photo").set_input_files(photo)
    page.get_by_label("Purpose").fill(purpose)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator(".results .summary")).to_be_visible(timeout=60_000)


def test_sign_in_is_an_httponly_cookie_and_the_pages_follow_the_role(pages: Pages) -> None:
    page = pages.open(None)
    every_control_is_labelled(page)
    pages.expect_console(401, "/ui/session")  # the wrong key's sign-in
    page.get_by_label("API key").fill("ff_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown or revoked")
    screenshot(page, "sign-in")
    for role, titles in NAV.items():
        page = pages.open(role)
        expect(page.get_by_role("navigation", name="Pages").get_by_role("link")).to_have_text(titles)
        cookie = next(c for c in page.context.cookies() if c["name"].startswith("facefind_session"))
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["value"] != pages.server.keys[role]  # a session's id, not the key
        assert page.evaluate("document.cookie") == ""  # the key is out of JavaScript's reach
    page.reload()  # the session survives a reload (the CSRF token is fetched again)
    expect(page.get_by_role("heading", name="Audit")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_sign_in_and_search_with_the_keyboard_alone(pages: Pages, server: Server) -> None:
    page = pages.open(None)
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.type") == "password":
            break
    page.keyboard.type(server.keys[Role.operator])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Search by face")).to_be_focused()
    expect(page.locator("[aria-current=page]")).to_have_text("Search")


def test_a_search_boxes_each_face_and_ranks_the_right_person_first(pages: Pages) -> None:
    page = pages.open(Role.operator)
    every_control_is_labelled(page)
    search(page, MULTI / "obama_and_biden.jpg", "web UI test: press photo")
    faces = page.locator(".results section.face")
    assert faces.count() >= 2 and page.locator(".query .box").count() == faces.count()
    first, second = faces.nth(0), faces.nth(1)
    for face, person in ((first, "Barack_Obama"), (second, "Joe_Biden")):
        expect(face.locator(".candidates-label")).to_contain_text("Candidates for human review")
        expect(face.locator(".candidates-label")).to_contain_text("not an identification")
        expect(face.locator(".candidate").first.locator(".path")).to_contain_text(person)
        expect(face.locator(".candidate").first).to_contain_text("Similarity")
        expect(face.locator(".candidate").first).to_contain_text("FPIR")
    crop = first.locator(".candidate img.crop").first
    crop.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=crop.element_handle())
    screenshot(page, "search")


def test_a_stranger_gets_no_match(pages: Pages) -> None:
    page = pages.open(Role.operator)
    search(page, STRANGER, "web UI test: stranger")
    expect(page.locator(".nomatch")).to_contain_text("No match")
    assert page.locator(".candidate").count() == 0
    screenshot(page, "search-no-match")


def test_several_photos_of_one_person_are_searched_as_one(pages: Pages) -> None:
    page = pages.open(Role.operator)
    obama = FR / "Barack_Obama"
    search(page, [obama / "obama.jpg", obama / "obama1.jpg"], "web UI test: two photos")
    fused = page.locator(".results .fused")
    expect(fused.get_by_role("heading")).to_have_text("Searched as one person: 2 photos")
    expect(fused.locator("li").nth(1)).to_contain_text("similarity to the first")
    assert page.locator(".results section.face").count() == 1  # one query: the person
    first = page.locator(".results section.face .candidate").first
    expect(first.locator(".path")).to_contain_text("Barack_Obama")


def test_a_reviewer_merges_two_persons(pages: Pages) -> None:
    page = pages.open(Role.reviewer)
    cards = page.locator("li.person")
    expect(cards.first).to_be_visible()
    every_control_is_labelled(page)
    screenshot(page, "people")
    before = cards.count()
    counts = {
        int(cards.nth(i).get_attribute("data-person") or 0): int(
            cards.nth(i).locator(".fine").inner_text().split()[0]
        )
        for i in range(before)
    }
    a, b = sorted(counts, key=counts.__getitem__)[:2]
    page.locator(f'input[data-person="{a}"]').check()
    page.locator(f'input[data-person="{b}"]').check()
    page.get_by_role("button", name="Merge selected").click()
    expect(page.locator("main").get_by_text("Merged into")).to_be_visible()
    expect(cards).to_have_count(before - 1)
    merged = page.locator(f'li.person[data-person="{a}"], li.person[data-person="{b}"]')
    expect(merged).to_have_count(1)
    expect(merged.locator(".fine")).to_contain_text(f"{counts[a] + counts[b]} faces")

    merged.get_by_role("link").click()
    expect(page.locator("li.face-card")).to_have_count(counts[a] + counts[b])
    expect(page.locator(".consent")).to_contain_text("No active consent")
    pages.expect_console(400, "/name")  # refused below: no consent on record
    page.get_by_label("Name", exact=True).fill("Someone")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_role("alert")).to_contain_text("consent")  # naming needs a consent on record
    every_control_is_labelled(page)
    screenshot(page, "person")


def test_an_opt_out_removes_the_person_from_search_and_an_erasure_shows_its_receipt(
    pages: Pages, server: Server, tmp_path: Path
) -> None:
    biden = FR / "Joe_Biden" / "biden.jpg"
    operator = pages.open(Role.operator)
    search(operator, biden, "web UI test: before the opt-out")
    expect(operator.locator(".candidate .path").first).to_contain_text("Joe_Biden")

    dpo = pages.open(Role.dpo)
    dpo.get_by_role("link", name="Requests").click()
    every_control_is_labelled(dpo)
    dpo.get_by_label("Photo of the person").set_input_files(biden)
    dpo.get_by_label("Note").first.fill("request 2026-7")
    dpo.get_by_role("button", name="Add opt-out").click()
    expect(dpo.locator("main").get_by_text("in force")).to_be_visible()
    expect(dpo.get_by_role("button", name="Lift opt-out 1")).to_be_visible()

    search(operator, biden, "web UI test: after the opt-out")
    assert "Joe_Biden" not in operator.locator(".results").inner_text()

    target = str(FR / "Kit_Harington" / "john2.jpeg")
    dpo.get_by_label("What").select_option("image")
    dpo.get_by_label("Path of the photo or folder").fill(target)
    dpo.get_by_label("I understand this cannot be undone").check()
    dpo.get_by_role("button", name="Erase").click()
    receipt = dpo.get_by_role("region", name="Erasure receipt")
    expect(receipt).to_contain_text(target)
    expect(receipt).to_contain_text("1 photos, 1 faces")
    with dpo.expect_download() as download:
        receipt.get_by_role("link", name="Download").click()
    saved = json.loads(Path(download.value.path()).read_text())
    assert saved["target"] == target and saved["images_removed"] == 1 and saved["audit_seq"] > 0
    screenshot(dpo, "requests")
    search(operator, FR / "Kit_Harington" / "john1.jpeg", "web UI test: after the erasure")
    assert "john2.jpeg" not in operator.locator(".results").inner_text()


def test_the_auditor_sees_the_search_in_the_log_and_cannot_search(pages: Pages, server: Server) -> None:
    purpose = "web UI test: case 2026-114"
    with server.client(Role.operator) as operator:
        photo = FR / "Rose_Leslie" / "img1.jpg"
        done = operator.post("/v1/search", files={"photo": photo.open("rb")}, data={"purpose": purpose})
        assert done.status_code == 200, done.text
    page = pages.open(Role.auditor)
    expect(page.locator(".chain")).to_contain_text("Audit chain intact")
    every_control_is_labelled(page)
    page.get_by_label("Purpose contains").fill("case 2026-114")
    page.get_by_label("Action").select_option("search")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.log tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("operator-key")
    expect(rows.first).to_contain_text(purpose)
    expect(page.locator(".chart svg rect").first).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Export").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert any(e["purpose"] == purpose for e in exported)
    screenshot(page, "audit")

    page.goto(f"{server.url}/ui/#/search")
    expect(page.get_by_role("heading", name="Not available for your role")).to_be_visible()
    assert page.locator("#photo").count() == 0
    # The page is only a view: the API refuses the auditor's search whatever the page does.
    with httpx.Client(base_url=server.url) as client:
        token = client.post("/ui/session", json={"key": server.keys[Role.auditor]}).json()["csrf_token"]
        refused = client.post(
            "/v1/search",
            headers={"X-CSRF-Token": token},
            files={"photo": (FR / "Rose_Leslie" / "img1.jpg").open("rb")},
            data={"purpose": "x"},
        )
    assert refused.status_code == 403 and "may not do search" in refused.text


def test_collections_and_an_index_job_with_live_progress(pages: Pages, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    chosen = sorted((DATASETS / "deepface" / "person03").glob("*.jpg"))[:6]
    for photo in chosen:
        shutil.copy(photo, photos / photo.name)
    (photos / "broken.jpg").write_bytes(b"not a photo")

    admin = pages.open(Role.admin)
    admin.get_by_label("Name", exact=True).fill("club")
    admin.get_by_label("Owner").fill("Chess club")
    admin.get_by_label("Lawful basis").select_option("consent")
    admin.get_by_label("Retention").fill("2y")
    admin.get_by_role("button", name="Create collection").click()
    expect(admin.locator("main").get_by_text("Collection club created")).to_be_visible()
    expect(collection_row(admin, "club")).to_contain_text("consent")
    with pages.server.client(Role.admin) as api:  # index jobs read only under the collection's roots
        assert api.put("/v1/collections/club/roots", json={"roots": [str(photos)]}).status_code == 200

    operator = pages.open(Role.operator)
    operator.get_by_role("link", name="Collections").click()
    every_control_is_labelled(operator)
    operator.get_by_label("Folder or photo on the server").fill(str(photos))
    operator.get_by_label("Into collection").select_option("club")
    operator.get_by_role("button", name="Start indexing").click()
    job = operator.locator("tr[data-job]").first
    expect(job.locator("progress")).to_be_visible()
    expect(job).to_have_attribute("data-state", "done", timeout=120_000)
    files = len(chosen) + 1
    expect(job).to_contain_text(f"{files} / {files}")
    expect(job).to_contain_text(f"{len(chosen)} indexed")
    expect(operator.get_by_role("row", name="broken.jpg")).to_contain_text("not a supported image")
    expect(collection_row(operator, "club").locator("td.num")).to_have_text(str(files))
    screenshot(operator, "collections")


def test_every_page_fits_a_phone_screen(pages: Pages) -> None:
    """Nothing widens the page past a 390-pixel screen (tables scroll inside their own box)."""
    page = pages.open(Role.operator, width=390, height=844)
    search(page, MULTI / "obama_and_biden.jpg", "web UI test: phone")
    screenshot(page, "search-phone")
    for role, title in NAV.items():
        page = pages.open(role, width=390, height=844)
        for link in [title] if isinstance(title, str) else title:
            page.get_by_role("navigation").get_by_role("link", name=link).click()
            expect(page.locator("main h1")).to_be_visible()
            page.wait_for_load_state("networkidle")
            fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            assert fits, f"{link} for {role.value} is wider than a phone screen"


def test_a_signed_out_load_logs_no_error(pages: Pages) -> None:
    """Opening the page signed out is the normal start, not a failed request in the console."""
    page = pages.open(None)
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert pages.console == []
    port = pages.server.url.rsplit(":", 1)[1]
    with pages.server.client() as anonymous:  # what the page asks: an answer, not a refusal
        asked = anonymous.get("/ui/session")
        assert asked.status_code == 200 and asked.json() == {"signed_in": False}
        anonymous.cookies.set(f"facefind_session_{port}", "not-a-session")
        assert anonymous.get("/ui/session").status_code == 401  # a bad cookie is still refused


def test_an_admin_adds_a_key_shown_once_and_revokes_it(pages: Pages, server: Server) -> None:
    admin = pages.open(Role.admin)
    admin.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    admin.get_by_role("navigation").get_by_role("link", name="Keys").click()
    rows = admin.locator("tbody tr[data-key]")
    expect(rows.filter(has_text="operator-key")).to_contain_text("operator")
    every_control_is_labelled(admin)
    admin.get_by_label("Name", exact=True).fill("web-ui-desk")
    admin.get_by_label("Role").select_option("operator")
    admin.get_by_label("club").check()  # the collection made by the collections test
    admin.get_by_role("button", name="Add key").click()
    shown = admin.get_by_role("region", name="New key")
    expect(shown).to_contain_text("shown only this once")
    key = shown.get_by_label("The key of web-ui-desk").input_value()
    assert key.startswith("ff_")
    shown.get_by_role("button", name="Copy").click()
    expect(shown).to_contain_text("Copied.")
    assert admin.evaluate("navigator.clipboard.readText()") == key
    row = admin.locator('tr[data-key="web-ui-desk"]')
    expect(row).to_contain_text("operator")
    expect(row).to_contain_text("club")
    expect(row).to_contain_text("by admin-key")
    with server.client(key=key) as desk:
        assert desk.get("/v1/whoami").json()["name"] == "web-ui-desk"

    row.get_by_role("button", name="Revoke key web-ui-desk").click()
    row.get_by_role("button", name="Cancel").click()  # asked first; nothing happened
    expect(row).to_contain_text("active")
    row.get_by_role("button", name="Revoke key web-ui-desk").click()
    expect(row.get_by_role("group")).to_contain_text("stops working at once")
    row.get_by_role("button", name="Yes, revoke web-ui-desk").click()
    expect(admin.locator('tr[data-key="web-ui-desk"]')).to_contain_text("revoked")
    screenshot(admin, "keys")  # after the revocation: the key on screen no longer works
    with server.client(key=key) as desk:
        assert desk.get("/v1/whoami").status_code == 401


# Where each line of a text box ends: the characters of its text nodes grouped by their line.
LINES = """el => {
  const lines = [];
  let top = null;
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.length; i++) {
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const rect = range.getClientRects()[0];
      if (!rect) continue;
      if (top === null || rect.top > top + 2) { lines.push(""); top = rect.top; }
      lines[lines.length - 1] += node.data[i];
    }
  }
  return { lines, fits: el.scrollWidth <= el.clientWidth, width: el.clientWidth };
}"""


def test_a_path_wraps_at_its_separators_inside_its_tile_on_a_phone(pages: Pages, server: Server) -> None:
    with server.client(Role.reviewer) as reviewer:
        person = max(reviewer.get("/v1/people").json(), key=lambda p: p["face_count"])
    page = pages.open(Role.reviewer, width=390, height=844)
    page.goto(f"{server.url}/ui/#/people/{person['id']}")
    paths = page.locator("li.face-card .path")
    expect(paths.first).to_be_visible()
    for i in range(paths.count()):
        shown = paths.nth(i).evaluate(LINES)
        text = "".join(shown["lines"])
        assert text in {f["path"] for f in person["faces"]}
        assert shown["fits"], f"{text} overflows its tile"
        assert len(shown["lines"]) > 1  # a phone's tile is narrower than the path
        # Each line ends after a '/', unless it is all one name too long for a line.
        broken = [line for line in shown["lines"][:-1] if not line.endswith("/") and "/" in line]
        assert not broken, shown["lines"]
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits


def _pages_of(size: int) -> Callable[[sync_api.Route], None]:
    """The page's own requests, asking for `size` at a time (the catalog has few faces a person)."""

    def smaller(route: sync_api.Route) -> None:
        url = re.sub(r"limit=\d+", f"limit={size}", route.request.url)
        route.continue_(url=url)

    return smaller


def test_persons_and_faces_load_a_page_at_a_time_with_a_more_button(pages: Pages, server: Server) -> None:
    with server.client(Role.reviewer) as reviewer:
        everyone = reviewer.get("/v1/people").json()
        first = reviewer.get("/v1/people", params={"limit": 2})
        assert first.headers["X-Facefind-More"] == "true" and len(first.json()) == 2
        rest = reviewer.get("/v1/people", params={"offset": 2, "limit": 10_000})
        assert rest.headers["X-Facefind-More"] == "false"
        assert [p["id"] for p in first.json() + rest.json()] == [p["id"] for p in everyone]
    person = max(everyone, key=lambda p: p["face_count"])
    assert person["face_count"] >= 3, "a person with several faces"

    page = pages.open(Role.reviewer)
    page.route(re.compile(r"/v1/people(/\d+)?\?"), _pages_of(2))
    page.goto(f"{server.url}/ui/#/people/{person['id']}")
    faces = page.locator("li.face-card")
    expect(faces).to_have_count(2)
    expect(page.locator("main")).to_contain_text(f"{person['face_count']} faces")
    more = page.get_by_role("button", name="More faces")
    while faces.count() < person["face_count"]:
        shown = faces.count()
        more.click()
        expect(faces).to_have_count(min(shown + 2, person["face_count"]))
    expect(more).to_have_count(0)  # all shown: the button goes
    ids = [int(t.split()[-1]) for t in faces.locator("label").all_inner_texts()]
    assert ids == [f["face_id"] for f in person["faces"]]  # in order, none twice

    page.get_by_role("link", name="All people").click()
    cards = page.locator("li.person")
    expect(cards).to_have_count(2)
    page.get_by_role("button", name="More persons").click()
    expect(cards).to_have_count(min(4, len(everyone)))
    if len(everyone) <= 4:
        expect(page.get_by_role("button", name="More persons")).to_have_count(0)


def test_the_audit_log_loads_older_entries_a_page_at_a_time(pages: Pages, server: Server) -> None:
    page = pages.open(None)
    page.route(re.compile(r"/v1/audit\?"), _pages_of(3))
    page.get_by_label("API key").fill(server.keys[Role.auditor])
    page.get_by_role("button", name="Sign in").click()
    rows = page.locator("table.log tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("main")).to_contain_text("The newest 3 entries")
    page.get_by_role("button", name="Older entries").click()
    expect(rows).to_have_count(6)
    seqs = [int(n) for n in rows.locator("th").all_inner_texts()]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 6  # newest first, none twice
    assert seqs == list(range(seqs[0], seqs[0] - 6, -1))  # no entry skipped between the pages


def test_the_dpo_exports_a_persons_data_by_id_or_photo_and_downloads_the_dpia(
    pages: Pages, server: Server
) -> None:
    with server.client(Role.reviewer) as reviewer:
        person = max(reviewer.get("/v1/people").json(), key=lambda p: p["face_count"])
    dpo = pages.open(Role.dpo)
    dpo.get_by_role("link", name="Requests").click()
    access = dpo.get_by_role("region", name="Subject access")
    access.get_by_label("Whose data (person id)").fill(str(person["id"]))
    access.get_by_role("button", name="Export").click()
    with dpo.expect_download() as download:
        access.get_by_role("link", name=f"Download subject-{person['id']}.zip").click()
    with zipfile.ZipFile(download.value.path()) as made:
        record = json.loads(made.read("subject.json"))
    assert {f["face_id"] for f in record["faces"]} and len(record["faces"]) == person["face_count"]
    # By the requester's own photo: an audited search finds them.
    access.get_by_label("Whose data (person id)").fill("")
    access.get_by_label("Or the requester's own photo").set_input_files(str(OBAMA))
    access.get_by_role("button", name="Export").click()
    with dpo.expect_download() as download:
        access.get_by_role("link", name="Download subject-by-photo.zip").click()
    with zipfile.ZipFile(download.value.path()) as made:
        assert json.loads(made.read("subject.json"))["faces"]
    with dpo.expect_download() as download:
        dpo.get_by_role("link", name="Impact-assessment pack (DPIA, HTML)").click()
    pack = Path(download.value.path()).read_text()
    assert pack.startswith("<!doctype html>") and "Human oversight" in pack
    with server.client(Role.auditor) as auditor:
        exports = auditor.get("/v1/audit", params={"action": "export"}).json()
    made = [e for e in exports if e["details"].get("what") == "subject access"]
    assert [(e["purpose"], e["details"]["by_photo"]) for e in made] == [
        ("subject access request", False),
        ("subject access request", True),
    ]


def test_the_dpo_picks_a_person_from_the_consent_records_and_erases_them(
    pages: Pages, server: Server
) -> None:
    """A DPO may not browse people (people.read is the reviewer's): the persons it picks are those
    of its consent records."""
    with server.client(Role.reviewer) as reviewer:
        person = min(reviewer.get("/v1/people").json(), key=lambda p: p["face_count"])["id"]
    with server.client(Role.dpo) as dpo_api:
        recorded = dpo_api.post(
            "/v1/consents",
            json={
                "person_id": person,
                "given_by": "Pat Example",
                "expires": "2030-01-01",
                "evidence": "form 7",
            },
        )
        assert recorded.status_code == 201, recorded.text
    dpo = pages.open(Role.dpo)
    dpo.get_by_role("link", name="Requests").click()
    expect(dpo.locator(f'#consent-persons option[value="{person}"]')).to_have_count(1)
    dpo.get_by_label("What").select_option("person")
    every_control_is_labelled(dpo)
    choice = f"Person {person}: given by Pat Example, consent active"
    dpo.get_by_label("Person", exact=True).select_option(label=choice)
    expect(dpo.get_by_label("Path of the photo or folder")).to_be_hidden()
    dpo.get_by_label("I understand this cannot be undone").check()
    dpo.get_by_role("button", name="Erase").click()
    receipt = dpo.get_by_role("region", name="Erasure receipt")
    expect(receipt).to_contain_text(f"person {person}")
    with server.client(Role.reviewer) as reviewer:
        assert reviewer.get(f"/v1/people/{person}").status_code == 404
