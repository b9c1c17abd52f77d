"""Publishing through the service (`/v1/redactions`) and the web UI's Publish page, against one real
`facefind serve` (two workers: a redaction made by one is read and rendered by the other).

The catalog: the face_recognition set, Obama with a consent covering publication, Biden opted
out, a collection whose index root is the multi-face folder.
"""

from __future__ import annotations

import io
import re
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

import facefind
from facefind.api.redactions import folder
from facefind.policy import ACTIONS, Role

from .browser import launch, require_chromium
from .conftest import BIDEN, FR, MULTI, OBAMA
from .server import Server, serve
from .test_redact_video import make_clip

TWO = MULTI / "two_people.jpg"  # Obama on the left half, Biden on the right
PURPOSE = {"purpose": "club newsletter 12"}
OTHER: dict[str, str] = {}  # a second publisher's key
# Reasons that would tell a publisher why a face is hidden (someone opted out, withheld consent).
SECRET_REASONS = {"optout", "withheld", "unknown"}


@pytest.fixture(scope="module")
def server(fr_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    here = tmp_path_factory.mktemp("publish")
    db = here / "catalog.db"
    shutil.copyfile(fr_db, db)
    with facefind.open(db, actor="setup") as ff:
        obama = next(p.id for p in ff.people.all() if any("Barack_Obama" in f.path for f in p.faces))
        ff.consent_add(
            obama, given_by="the person", scope="publication", expires="2099-12-31", evidence="form 9"
        )
        ff.optout_add(BIDEN.read_bytes(), note="asked by email")
        ff.create_collection(
            "club", owner="the club", basis="consent", retention="5y", roots=[str(club_photos(here))]
        )
        OTHER["key"] = ff.keys_add("other-publisher", "publisher").key
        OTHER["limited"] = ff.keys_add("default-only-publisher", "publisher", ["default"]).key
        OTHER["club"] = ff.keys_add("club-publisher", "publisher", ["club"]).key
    shutil.rmtree(folder(db), ignore_errors=True)  # an earlier run's, of a catalog at this path
    with serve(db, here) as running:
        yield running
    shutil.rmtree(folder(db), ignore_errors=True)


def club_photos(here: Path) -> Path:
    """A collection's index root: two small photos (one of Obama) and a link leading out of it."""
    root = here / "club photos"
    (root / "summer").mkdir(parents=True)
    shutil.copyfile(OBAMA.with_name("obama-480p.jpg"), root / "obama-480p.jpg")
    shutil.copyfile(FR / "Kit_Harington" / "john2.jpeg", root / "summer" / "john2.jpeg")
    (root / "outside.jpg").symlink_to(TWO)
    return root


def big_face(faces: list[dict], left: bool) -> dict:
    """The big face on the left (Obama) or right (Biden) half of two_people.jpg."""
    big = [f for f in faces if f["box"]["h"] > 150]
    return next(f for f in big if (f["box"]["x"] < 563) == left)


def change(jpeg: bytes, box: dict) -> float:
    """Mean absolute change of the redacted photo against the original inside `box`."""
    out = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(np.int16)
    original = cv2.imread(str(TWO)).astype(np.int16)
    x, y, w, h = (round(box[k]) for k in "xywh")
    return float(np.abs(out[y : y + h, x : x + w] - original[y : y + h, x : x + w]).mean())


def upload(client: httpx.Client, name: str, data: bytes, **form: str) -> httpx.Response:
    return client.post("/v1/redactions", files={"file": (name, data)}, data={**PURPOSE, **form})


def leftovers(server: Server) -> set[str]:
    return {p.name for p in folder(server.db).iterdir()}


def test_a_photo_is_redacted_by_consent_and_an_edit_unhides_a_face(server: Server) -> None:
    with server.client(Role.publisher) as client:
        answer = upload(client, "club night.jpg", TWO.read_bytes())
        assert answer.status_code == 201, answer.text
        made = answer.json()
        assert made["state"] == "done" and made["kind"] == "photo" and made["name"] == "club night.jpg"
        obama, biden = big_face(made["faces"], left=True), big_face(made["faces"], left=False)
        assert obama["decision"] == "kept" and obama["reason"] == "consent" and obama["consent_id"]
        # Biden opted out: hidden, and the publisher is not told why.
        assert biden["decision"] == "hidden" and biden["reason"] == "no-consent"
        assert biden["person_id"] is None
        assert not {f["reason"] for f in made["faces"]} & SECRET_REASONS

        photo = client.get(made["download"])
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
        assert change(photo.content, obama["box"]) < 3  # JPEG re-encoding only
        assert change(photo.content, biden["box"]) > 15

        # Un-hide every hidden face and draw a box over the wall: the opted-out face stays hidden,
        # the others are shown, the new box is hidden.
        stranger = max(
            (f for f in made["faces"] if f["decision"] == "hidden" and f is not biden),
            key=lambda f: f["box"]["w"] * f["box"]["h"],
        )
        drawn = {"x": 5.0, "y": 5.0, "w": 60.0, "h": 60.0}
        edit = [{"box": f["box"], "decision": "kept"} for f in made["faces"]]
        edit.append({"box": drawn, "decision": "hidden"})
        again = client.post(f"/v1/redactions/{made['id']}/manifest", json={"faces": edit})
        assert again.status_code == 200, again.text
        edited = again.json()
        assert edited["renders"] == 2
        assert big_face(edited["faces"], left=False)["decision"] == "hidden"  # the opt-out holds
        shown = next(f for f in edited["faces"] if f["box"] == stranger["box"])
        assert shown["decision"] == "kept" and shown["reason"] == "reviewer"
        assert any(f["box"] == drawn and f["decision"] == "hidden" for f in edited["faces"])
        assert not {f["reason"] for f in edited["faces"]} & SECRET_REASONS
        photo = client.get(edited["download"]).content
        assert change(photo, stranger["box"]) < 3
        assert change(photo, drawn) > 5
        assert change(photo, big_face(edited["faces"], left=False)["box"]) > 15

        # Another publisher's key cannot see it; its owner deletes it, and nothing is left.
        with server.client(key=OTHER["key"]) as other:
            assert other.get(f"/v1/redactions/{made['id']}").status_code == 404
            assert other.get(made["download"]).status_code == 404
        assert made["id"] in leftovers(server)
        assert client.delete(f"/v1/redactions/{made['id']}").status_code == 200
        assert made["id"] not in leftovers(server)
        assert client.get(made["download"]).status_code == 404

    with facefind.open(server.db, actor="check") as ff:
        entries = [e for e in ff.audit.entries() if e.action == "redact" and e.actor == "publisher-key"]
    assert [e.details["manifest_applied"] for e in entries[-2:]] == [False, True]
    assert entries[-1].purpose == PURPOSE["purpose"]


def test_bad_uploads_are_refused_and_leave_nothing(server: Server) -> None:
    before = leftovers(server)
    with server.client(Role.publisher) as client:
        text = upload(client, "notes.txt", b"not a photo at all\n" * 10)
        assert text.status_code == 400 and "not a supported image" in text.json()["error"]["message"]
        broken = upload(client, "broken.jpg", bytes(range(256)) * 40)
        assert broken.status_code == 400, broken.text
        no_purpose = client.post("/v1/redactions", files={"file": ("a.jpg", TWO.read_bytes())})
        assert no_purpose.status_code == 400 and "purpose" in no_purpose.json()["error"]["message"]
        style = upload(client, "a.jpg", TWO.read_bytes(), style="swirl")
        assert style.status_code == 400 and "blur, pixelate, fill" in style.json()["error"]["message"]
        huge = upload(client, "huge.jpg", b"\xff\xd8" + b"\0" * (33 * 2**20))
        assert huge.status_code == 413
        assert client.get("/v1/redactions").json() == []
        assert client.get("/v1/redactions/AAAAAAAAAAAAAAAA").status_code == 404
        assert client.get("/v1/redactions/..%2F..%2Fetc").status_code == 404
    assert leftovers(server) == before


def test_only_the_publisher_role_may_redact(server: Server) -> None:
    assert ACTIONS["redact"] == {Role.publisher}
    for role in Role:
        if role is Role.publisher:
            continue
        with server.client(role) as client:
            answer = upload(client, "a.jpg", TWO.read_bytes())
            assert answer.status_code == 403 and "publisher" in answer.json()["error"]["message"]
            assert client.get("/v1/redactions").status_code == 403


def finished(client: httpx.Client, made: dict, seconds: float = 120) -> tuple[dict, list[dict]]:
    """The job once done (or failed), and every state seen while it ran."""
    seen, deadline = [made], time.monotonic() + seconds
    while made["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        made = client.get(f"/v1/redactions/{made['id']}").json()
        seen.append(made)
    return made, seen


def test_a_folder_under_a_collection_root_is_a_job_with_progress_and_a_zip(server: Server) -> None:
    with server.client(Role.publisher) as client:
        outside = client.post(
            "/v1/redactions/folders", json={"path": "/etc", "collection": "club", **PURPOSE}
        )
        assert outside.status_code == 403 and "index root" in outside.json()["error"]["message"]
        root = Path(server.db).parent / "club photos"
        started = client.post(
            "/v1/redactions/folders", json={"path": str(root), "collection": "club", **PURPOSE}
        )
        assert started.status_code == 201, started.text
        done, seen = finished(client, started.json())
        assert done["state"] == "done", done
        assert done["summary"]["photos"] == 2 and done["summary"]["kept"] == 1  # Obama
        assert done["done"] == done["total"] == 2
        assert all(s["total"] in (0, 2) for s in seen)
        # The link leading out of the root is skipped and reported without its target.
        (skipped,) = done["errors"]
        assert "outside.jpg" in skipped["path"] and str(TWO) not in str(skipped)
        archive = client.get(done["download"])
        assert archive.headers["content-type"] == "application/zip"
        names = sorted(zipfile.ZipFile(io.BytesIO(archive.content)).namelist())
        assert names == ["obama-480p.jpg", "summer/john2.jpeg"]  # no manifests
        assert client.delete(f"/v1/redactions/{done['id']}").status_code == 200
    # A publisher key limited to other collections may not read this collection's folders.
    with server.client(key=OTHER["limited"]) as limited:
        refused = limited.post(
            "/v1/redactions/folders", json={"path": str(root), "collection": "club", **PURPOSE}
        )
        assert refused.status_code == 403 and "limited to the collections default" in refused.text
        assert limited.get("/v1/redactions").json() == []
    # One limited to the club recognises consenting people by their faces in the club's photos
    # only: Obama's consented faces are elsewhere, so here he is hidden like anyone unknown.
    with server.client(key=OTHER["club"]) as club:
        made = upload(club, "club night.jpg", TWO.read_bytes()).json()
        obama = big_face(made["faces"], left=True)
        assert obama["decision"] == "hidden" and obama["reason"] == "no-consent"
        assert [c["name"] for c in club.get("/v1/collections").json()] == ["club"]
        assert club.delete(f"/v1/redactions/{made['id']}").status_code == 200


def test_a_video_is_a_job_with_progress_and_its_copy_downloads(server: Server, tmp_path: Path) -> None:
    import av

    clip = tmp_path / "match day.mp4"
    make_clip(clip, size=(320, 180), frames=12)
    with server.client(Role.publisher) as client:
        started = upload(client, clip.name, clip.read_bytes())
        assert started.status_code == 201, started.text
        assert started.json()["kind"] == "video"
        done, seen = finished(client, started.json())
        assert done["state"] == "done", done
        assert done["summary"]["frames"] == 12 and done["summary"]["kept"] >= 1
        assert done["done"] == done["total"] == 24  # each frame counted twice: found, written
        assert all(s["done"] <= s["total"] for s in seen)
        video = client.get(done["download"])
        assert video.headers["content-type"] == "video/mp4"
        copy = tmp_path / "copy.mp4"
        copy.write_bytes(video.content)
        with av.open(str(copy)) as container:
            assert sum(1 for _ in container.decode(video=0)) == 12
        broken = upload(client, "empty.mp4", b"not a video" * 100)
        assert broken.status_code == 201
        failed, _ = finished(client, broken.json())
        assert failed["state"] == "failed" and failed["error"] and "/input" not in failed["error"]
        for made in (done, failed):
            assert client.delete(f"/v1/redactions/{made['id']}").status_code == 200
        assert client.get("/v1/redactions").json() == []

        # Deleting a running job stops it, and nothing of it is left.
        long = tmp_path / "long.mp4"
        make_clip(long, size=(320, 180), frames=150, audio=False)
        running = upload(client, long.name, long.read_bytes()).json()
        assert running["state"] == "running"
        assert client.delete(f"/v1/redactions/{running['id']}").json()["state"] == "cancelled"
        deadline = time.monotonic() + 60
        while running["id"] in leftovers(server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running["id"] not in leftovers(server)
        assert client.get("/v1/redactions").json() == []


def test_the_publish_page_boxes_toggles_draws_and_downloads(server: Server, tmp_path: Path) -> None:
    require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    from .test_web_ui import every_control_is_labelled, screenshot  # needs Chromium (checked above)

    expect, errors = sync_api.expect, []
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_context(
                viewport={"width": 1200, "height": 900}, accept_downloads=True
            ).new_page()
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{server.url}/")
            page.get_by_label("API key").fill(server.keys[Role.publisher])
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Publish")).to_be_visible()
            every_control_is_labelled(page)
            page.get_by_label("Photo or video").set_input_files(str(TWO))
            page.locator("input[name=purpose]").fill("club newsletter 13")
            page.get_by_role("button", name="Redact", exact=True).click()
            kept, hidden = page.locator("button.pbox.kept"), page.locator("button.pbox.hidden")
            expect(kept).to_have_count(1)  # Obama, who consented
            expect(page.locator("button.pbox.hidden[title*='no publication consent']").first).to_be_attached()
            total = page.locator("button.pbox").count()
            before = [hidden.nth(i).get_attribute("data-box") or "" for i in range(hidden.count())]
            boxes = {b: dict(zip("xywh", map(float, b.split(",")), strict=True)) for b in before}
            # The largest hidden face that is not Biden's (he opted out: the server keeps him hidden).
            target = max(
                (b for b, box in boxes.items() if box["x"] < 563 or box["h"] <= 150),
                key=lambda b: boxes[b]["w"] * boxes[b]["h"],
            )
            page.locator(f'button.pbox[data-box="{target}"]').click()
            expect(kept).to_have_count(2)
            # Drag on the photo's top left corner: a box for a face the detector missed.
            frame = page.locator(".drawable img").bounding_box()
            assert frame is not None
            page.mouse.move(frame["x"] + 8, frame["y"] + 8)
            page.mouse.down()
            page.mouse.move(frame["x"] + 50, frame["y"] + 60, steps=5)
            page.mouse.up()
            expect(page.locator("button.pbox")).to_have_count(total + 1)
            expect(hidden).to_have_count(len(before))  # one switched to kept, one drawn
            # Or by keyboard: a typed box; one outside the photo is refused.
            page.get_by_label("Hide a box").fill("1000,600,500,500")
            page.get_by_role("button", name="Add box").click()
            expect(page.locator("button.pbox")).to_have_count(total + 1)
            page.get_by_label("Hide a box").fill("900,20,40,40")
            page.get_by_label("Hide a box").press("Enter")
            expect(page.locator('button.pbox.hidden[data-box="900,20,40,40"]')).to_have_count(1)
            page.get_by_role("button", name="Render again").click()
            expect(page.get_by_role("status").filter(has_text="Rendered again")).to_be_visible()
            expect(page.locator(f'button.pbox.kept[data-box="{target}"]')).to_have_attribute(
                "title", re.compile("your decision")
            )
            screenshot(page, "publish")  # its pictures blurred, as every README screenshot
            drawn = next(b for b in page.locator("button.pbox.hidden").evaluate_all(
                "els => els.map(e => e.dataset.box)") if b not in boxes)  # fmt: skip
            with page.expect_download() as download:
                page.get_by_role("link", name="Download").click()
            data = Path(download.value.path()).read_bytes()
            assert data[:2] == b"\xff\xd8"
            assert change(data, boxes[target]) < 3
            assert change(data, dict(zip("xywh", map(float, drawn.split(",")), strict=True))) > 5
            page.get_by_role("button", name="Delete from the server").click()
            expect(page.get_by_text("Deleted from the server")).to_be_visible()

            # A video is a job: its row shows the progress, then a download.
            clip = tmp_path / "club video.mp4"
            make_clip(clip, size=(320, 180), frames=12)
            page.get_by_label("Photo or video").set_input_files(str(clip))
            page.get_by_role("button", name="Redact", exact=True).click()
            row = page.locator("tr[data-redaction]")
            expect(row).to_have_attribute("data-state", "done", timeout=120_000)
            expect(row.locator("progress")).to_have_attribute("value", "24")
            expect(row.get_by_role("link", name="Download")).to_be_visible()
            row.get_by_role("button", name="Delete").click()
            expect(page.get_by_text("No video or folder redactions of yours")).to_be_visible()
        finally:
            browser.close()
    assert not errors, errors
