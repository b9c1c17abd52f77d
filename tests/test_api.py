"""The REST service through real HTTP: a `facefind serve` with two workers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import sqlite3
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from facefind.api import create_app
from facefind.policy import ACTIONS, Role

from .conftest import FR, MULTI, OBAMA
from .server import NAMES, Server, finished, from_each_worker, serve_copy

ALEX = FR / "Alex_Lacamoire" / "img1.jpg"

# Every route of the API and the action it needs (None: any valid key). A route missing here fails
# test_the_table_covers_every_route, so a new route cannot escape the role checks below.
ROUTES: dict[tuple[str, str], str | None] = {
    ("GET", "/v1/whoami"): None,
    ("GET", "/v1/stats"): "stats",
    ("GET", "/v1/keys"): "keys",
    ("POST", "/v1/keys"): "keys",
    ("DELETE", "/v1/keys/{name}"): "keys",
    ("GET", "/v1/collections"): "collections.read",
    ("POST", "/v1/collections"): "collections.write",
    ("PUT", "/v1/collections/{name}/roots"): "collections.write",
    ("POST", "/v1/index-jobs"): "index",
    ("GET", "/v1/index-jobs"): "index",
    ("GET", "/v1/index-jobs/{job_id}"): "index",
    ("DELETE", "/v1/index-jobs/{job_id}"): "index",
    ("GET", "/v1/errors"): "index",
    ("POST", "/v1/search"): "search",
    ("POST", "/v1/verify"): "verify",
    ("GET", "/v1/faces/{face_id}/crop"): "faces.read",
    ("GET", "/v1/faces/{face_id}/photo"): "people.read",
    ("POST", "/v1/faces"): "people.write",
    ("POST", "/v1/faces/{face_id}/not-a-face"): "people.write",
    ("GET", "/v1/people"): "people.read",
    ("GET", "/v1/people/suggestions"): "people.read",
    ("POST", "/v1/people/suggestions/answers"): "people.write",
    ("GET", "/v1/people/{person_id}"): "people.read",
    ("POST", "/v1/people/{person_id}/photos"): "people.read",
    ("PUT", "/v1/people/{person_id}/name"): "people.write",
    ("DELETE", "/v1/people/{person_id}/name"): "people.write",
    ("POST", "/v1/people/{person_id}/merge"): "people.write",
    ("POST", "/v1/people/{person_id}/split"): "people.write",
    ("POST", "/v1/people/{person_id}/remove"): "people.write",
    ("PUT", "/v1/people/{person_id}/hidden"): "people.write",
    ("GET", "/v1/review"): "review.read",
    ("GET", "/v1/review/{search_seq}"): "review.read",
    ("POST", "/v1/review/{search_seq}/{face_id}/confirm"): "review.decide",
    ("POST", "/v1/review/{search_seq}/{face_id}/reject"): "review.decide",
    ("GET", "/v1/review/{search_seq}/{face_id}/query-face"): "review.decide",
    ("GET", "/v1/consents"): "consent.read",
    ("POST", "/v1/consents"): "consent.write",
    ("POST", "/v1/consents/{consent_id}/withdraw"): "consent.write",
    ("GET", "/v1/optouts"): "optout",
    ("POST", "/v1/optouts"): "optout",
    ("DELETE", "/v1/optouts/{optout_id}"): "optout",
    ("POST", "/v1/erasures"): "erase",
    ("POST", "/v1/purge"): "erase",
    ("GET", "/v1/audit"): "audit",
    ("GET", "/v1/audit/verify"): "audit",
    ("GET", "/v1/audit/export"): "audit",
    ("GET", "/v1/audit/export/signed"): "audit",
    ("GET", "/v1/report"): "report",
    ("GET", "/v1/subjects/export"): "subject.export",
    ("POST", "/v1/subjects/export"): "subject.export",
    ("GET", "/v1/report/dpia"): "report.dpia",
    ("POST", "/v1/redactions"): "redact",
    ("POST", "/v1/redactions/folders"): "redact",
    ("GET", "/v1/redactions"): "redact",
    ("GET", "/v1/redactions/{redaction_id}"): "redact",
    ("GET", "/v1/redactions/{redaction_id}/file"): "redact",
    ("POST", "/v1/redactions/{redaction_id}/manifest"): "redact",
    ("DELETE", "/v1/redactions/{redaction_id}"): "redact",
}


@pytest.fixture(scope="module")
def server(fr_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve_copy(fr_db, tmp_path_factory.mktemp("api")) as running:
        yield running


def test_the_table_covers_every_route() -> None:
    paths = create_app().openapi()["paths"]
    routes = {
        (method.upper(), path) for path, ops in paths.items() if path.startswith("/v1/") for method in ops
    }
    assert routes == set(ROUTES)


def test_docs_are_served_without_a_cdn(server: Server) -> None:
    with server.client() as anonymous:
        page = anonymous.get("/docs")
        assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text
        assert "cdn" not in page.text.lower()
        assert anonymous.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
        assert "/v1/search" in anonymous.get("/openapi.json").json()["paths"]


def _call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    ids = dict.fromkeys(
        ("job_id", "person_id", "consent_id", "optout_id", "face_id", "redaction_id", "search_seq"), 999999
    )
    url = path.format(name="nobody", **ids)
    return client.request(method, url, json={} if method in ("POST", "PUT") else None)


def test_every_route_needs_a_key_and_the_right_role(server: Server) -> None:
    outcomes = []
    for (method, path), action in ROUTES.items():
        with server.client() as anonymous:
            response = _call(anonymous, method, path)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["type"] == "Unauthenticated"
        for role in Role:
            with server.client(role) as client:
                response = _call(client, method, path)
            allowed = action is None or role in ACTIONS[action]
            outcomes.append((method, path, role.value, response.status_code))
            assert response.status_code < 500, (method, path, role, response.text)
            assert response.headers["content-type"].startswith("application/json")
            if allowed:
                assert response.status_code not in (401, 403), (method, path, role, response.text)
            else:
                assert response.status_code == 403, (method, path, role, response.text)
                assert response.json()["error"]["type"] == "Refused"
    assert len(outcomes) == len(ROUTES) * len(Role)


def test_the_audit_actor_is_the_keys_name(server: Server) -> None:
    with server.client(Role.operator) as operator:
        found = operator.post(
            "/v1/search",
            files={"photo": ("obama.jpg", OBAMA.read_bytes(), "image/jpeg")},
            data={"purpose": "case 7", "actor": "somebody else", "top_k": "3"},
        )
    assert found.status_code == 200, found.text
    assert found.json()["faces"][0]["matches"][0]["path"].endswith("obama.jpg")
    with server.client(key="ff_not-a-key") as stranger:
        assert stranger.get("/v1/stats").status_code == 401
    with server.client(Role.auditor) as auditor:
        entries = auditor.get("/v1/audit").json()
        verified = auditor.get("/v1/audit/verify").json()
    search = [e for e in entries if e["action"] == "search" and e["purpose"] == "case 7"]
    assert [e["actor"] for e in search] == [NAMES[Role.operator]]
    size = OBAMA.stat().st_size  # the upload is named as its sender named it, with its size and hash
    assert search[0]["details"]["query"] == f"<upload 'obama.jpg', {size} bytes>"
    assert search[0]["query_sha256"] == hashlib.sha256(OBAMA.read_bytes()).hexdigest()
    # Filters of the log: by actor, action and purpose (any case, any part of it).
    with server.client(Role.auditor) as auditor:
        picked = auditor.get("/v1/audit", params={"actor": NAMES[Role.operator], "purpose": "CASE 7"}).json()
        assert [e["seq"] for e in picked] == [search[0]["seq"]]
        assert all(e["action"] == "authenticate" for e in auditor.get("/v1/audit?action=authenticate").json())
    failed = [e for e in entries if e["action"] == "authenticate"]
    assert failed and all(e["actor"] == "anonymous" for e in failed)
    assert verified["ok"]


def test_a_revoked_key_stops_working_at_once(server: Server) -> None:
    with server.client(Role.admin) as admin:
        made = admin.post("/v1/keys", json={"name": "temp", "role": "operator"})
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        with server.client(key=key) as temp:
            assert [temp.get("/v1/whoami").status_code for _ in range(4)] == [200] * 4  # both workers
            assert admin.delete("/v1/keys/temp").status_code == 200
            assert [temp.get("/v1/whoami").status_code for _ in range(4)] == [401] * 4
        listed = admin.get("/v1/keys").json()
        assert all("key" not in k and "key_sha256" not in k for k in listed)  # never shown again


def _bomb_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    png = buf.getvalue()
    ihdr = b"IHDR" + struct.pack(">II", side, side) + png[24:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def test_the_web_ui_signs_in_with_a_key_into_a_strict_httponly_cookie_and_needs_csrf(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        wrong = browser.post("/ui/session", json={"key": "ff_wrong"})
        assert wrong.status_code == 401 and not browser.cookies
        signed = browser.post("/ui/session", json={"key": server.keys[Role.reviewer]})
        assert signed.status_code == 200, signed.text
        assert signed.json()["name"] == NAMES[Role.reviewer] and signed.json()["role"] == "reviewer"
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        (session,) = browser.cookies.values()  # a server-side session's id, never the key
        assert session != server.keys[Role.reviewer] and server.keys[Role.reviewer] not in cookie
        people = browser.get("/v1/people")  # the cookie alone is enough to read
        assert people.status_code == 200, people.text
        person = people.json()[0]["id"]
        forged = browser.put(f"/v1/people/{person}/hidden", json={"hidden": False})
        assert forged.status_code == 403 and "CSRF" in forged.json()["error"]["message"]
        token = {"x-csrf-token": signed.json()["csrf_token"]}
        changed = browser.put(f"/v1/people/{person}/hidden", json={"hidden": False}, headers=token)
        assert changed.status_code == 200, changed.text
        assert browser.get("/v1/audit").status_code == 403  # the role still decides
        assert browser.delete("/ui/session").status_code == 403  # signing out is a change too
        assert browser.delete("/ui/session", headers=token).status_code == 200
        assert browser.get("/v1/people").status_code == 401
        name = next(iter(signed.cookies))
    with httpx.Client(base_url=server.url, cookies={name: session}) as replay:  # ended on the server
        assert replay.get("/v1/people").status_code == 401


def test_oversize_and_malformed_uploads_get_a_4xx_with_a_json_reason(server: Server) -> None:
    cases = [
        ({"photo": ("big.jpg", bytes(80 * 2**20), "image/jpeg")}, {"purpose": "t"}, 413),
        ({"photo": ("bomb.png", _bomb_png(30_000), "image/png")}, {"purpose": "t"}, 413),
        ({"photo": ("x.jpg", b"not a photo", "image/jpeg")}, {"purpose": "t"}, 400),
        ({"photo": ("empty.jpg", b"", "image/jpeg")}, {"purpose": "t"}, 400),
        ({"photo": ("obama.jpg", OBAMA.read_bytes(), "image/jpeg")}, {}, 422),  # no purpose
        ({"photo": ("obama.jpg", OBAMA.read_bytes(), "image/jpeg")}, {"purpose": "t", "top_k": "0"}, 400),
        ({"photo": ("obama.jpg", OBAMA.read_bytes(), "image/jpeg")}, {"purpose": "t", "top_k": "x"}, 422),
        ({}, {"purpose": "t"}, 422),  # no photo
    ]
    with server.client(Role.operator) as operator:
        for files, data, status in cases:
            response = operator.post("/v1/search", files=files or None, data=data)
            assert response.status_code == status, (data, response.text)
            assert response.json()["error"]["message"], response.text
        raw = operator.post(
            "/v1/search", content=b"\x00" * 100, headers={"content-type": "multipart/form-data"}
        )
        assert 400 <= raw.status_code < 500


def test_people_show_respects_the_consent_results_scope(server: Server) -> None:
    with server.client(Role.reviewer) as reviewer, server.client(Role.dpo) as dpo:
        people = reviewer.get("/v1/people").json()
        obama = next(p for p in people if "Barack_Obama" in p["cover"]["path"])
        assert reviewer.get(f"/v1/people/{obama['id']}").status_code == 200
        consent = dpo.post(
            "/v1/consents",
            json={"person_id": obama["id"], "given_by": "him", "expires": "2099-01-01", "evidence": "form"},
        )
        assert consent.status_code == 201, consent.text
        assert dpo.post(f"/v1/consents/{consent.json()['id']}/withdraw").status_code == 200
        shown = reviewer.get(f"/v1/people/{obama['id']}")
        assert shown.status_code == 403 and "consent" in shown.json()["error"]["message"]
        assert reviewer.get(f"/v1/faces/{obama['cover']['face_id']}/crop").status_code == 404
        photos = reviewer.post(f"/v1/people/{obama['id']}/photos", json={"purpose": "album"})
        assert photos.status_code == 403
        assert (
            reviewer.post(f"/v1/people/{obama['id']}/photos", json={}).status_code == 422
        )  # purpose required


def _matches(server: Server, photo: Path) -> list[dict]:
    with server.client(Role.operator) as operator:
        found = operator.post(
            "/v1/search",
            files={"photo": (photo.name, photo.read_bytes(), "image/jpeg")},
            data={"purpose": "requests test"},
        )
    assert found.status_code == 200, found.text
    return [m for f in found.json()["faces"] for m in f["matches"]]


def _search(server: Server, photo: Path) -> set[str]:
    return {m["path"] for m in _matches(server, photo)}


def test_face_crops_are_cut_on_request_and_only_for_faces_one_may_see(server: Server) -> None:
    match = _matches(server, ALEX)[0]
    with server.client(Role.reviewer) as reviewer:
        crop = reviewer.get(f"/v1/faces/{match['face_id']}/crop", params={"size": 96})
        assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
        assert "no-store" in crop.headers["cache-control"]
        assert max(Image.open(io.BytesIO(crop.content)).size) == 96
        for bad in ("5", "5000", "x"):
            refused = reviewer.get(f"/v1/faces/{match['face_id']}/crop", params={"size": bad})
            assert refused.status_code in (400, 422) and "error" in refused.json(), bad
        assert reviewer.get("/v1/faces/999999/crop").status_code == 404
        assert reviewer.get(f"/v1/faces/{2**70}/crop").status_code in (404, 422)


def test_an_opt_out_and_an_erasure_through_the_api(server: Server) -> None:
    biden = FR / "Joe_Biden" / "biden.jpg"
    found = [m for m in _matches(server, biden) if "Joe_Biden" in m["path"]]
    assert found
    with server.client(Role.dpo) as dpo, server.client(Role.operator) as operator:
        assert operator.get(f"/v1/faces/{found[0]['face_id']}/crop").status_code == 200
        added = dpo.post(
            "/v1/optouts",
            files={"photo": ("request.jpg", biden.read_bytes(), "image/jpeg")},
            data={"note": "request 12"},
        )
        assert added.status_code == 201 and added.json()["faces_suppressed"] >= 1, added.text
        assert not any("Joe_Biden" in p for p in _search(server, biden))
        # An opted-out face cannot be seen either, not even by the operator whose search found it.
        assert operator.get(f"/v1/faces/{found[0]['face_id']}/crop").status_code == 404

        kit = FR / "Kit_Harington"
        target = str(kit / "john2.jpeg")
        assert target in _search(server, kit / "john1.jpeg")
        receipt = dpo.post("/v1/erasures", json={"kind": "image", "target": target})
        assert receipt.status_code == 200, receipt.text
        assert receipt.json()["images_removed"] == 1 and receipt.json()["audit_seq"] > 0
        assert target not in _search(server, kit / "john1.jpeg")
        again = dpo.post("/v1/erasures", json={"kind": "image", "target": target})
        assert again.status_code == 404 and "no catalogued photo" in again.json()["error"]["message"]


def _add_root(server: Server, collection: str, folder: Path) -> None:
    """Index jobs read only under their collection's roots: an admin adds `folder`."""
    with server.client(Role.admin) as admin:
        (found,) = [c for c in admin.get("/v1/collections").json() if c["name"] == collection]
        changed = admin.put(
            f"/v1/collections/{collection}/roots", json={"roots": [*found["roots"], str(folder)]}
        )
        assert changed.status_code == 200, changed.text


def test_two_workers_see_each_others_writes(server: Server) -> None:
    """An index job runs in one worker; searches answered by either worker find what it added."""
    _add_root(server, "default", MULTI)
    with server.client(Role.operator) as operator:
        started = operator.post("/v1/index-jobs", json={"path": str(MULTI), "collection": "default"})
        assert started.status_code == 202, started.text
        job = finished(operator, started.json())
        assert job["state"] == "done" and job["report"]["indexed"] >= 1, job
        # Not two_people.jpg: it shows the opted-out Biden and Obama, whose consent was withdrawn above.
        new_photo = MULTI / "kit_with_rose.jpg"

        def search(client: httpx.Client) -> httpx.Response:
            return client.post(
                "/v1/search",
                files={"photo": (new_photo.name, new_photo.read_bytes(), "image/jpeg")},
                data={"purpose": "t", "threshold": "0.99"},
            )

        for found in from_each_worker(server, Role.operator, search):
            paths = {m["path"] for f in found.json()["faces"] for m in f["matches"]}
            assert str(new_photo) in paths, found.text


def test_a_key_limited_to_a_collection_searches_and_indexes_only_there(server: Server) -> None:
    with server.client(Role.admin) as admin, server.client(Role.operator) as operator:
        made = admin.post(
            "/v1/collections",
            json={"name": "desk", "owner": "news", "basis": "own", "retention": "1y", "roots": [str(MULTI)]},
        )
        assert made.status_code == 201, made.text
        job = operator.post("/v1/index-jobs", json={"path": str(MULTI), "collection": "desk"}).json()
        while job["state"] in ("queued", "running"):
            time.sleep(0.5)
            job = operator.get(f"/v1/index-jobs/{job['id']}").json()
        assert job["state"] == "done", job
        key = admin.post("/v1/keys", json={"name": "desk-op", "role": "operator", "collections": ["desk"]})
        assert key.status_code == 201 and key.json()["collections"] == ["desk"], key.text
        wrong = admin.post("/v1/keys", json={"name": "x", "role": "reviewer", "collections": ["desk"]})
        assert wrong.status_code == 400
        assert "only operator, publisher keys" in wrong.json()["error"]["message"]
    photo = MULTI / "kit_with_rose.jpg"  # nobody in it is withheld (see above)
    upload = {"photo": (photo.name, photo.read_bytes(), "image/jpeg")}
    with server.client(key=key.json()["key"]) as desk:
        found = desk.post(
            "/v1/search", files=upload, data={"purpose": "desk", "max_fmr": "0.01", "top_k": "50"}
        )
        assert found.status_code == 200, found.text
        paths = {m["path"] for f in found.json()["faces"] for m in f["matches"]}
        assert paths and all(p.startswith(str(MULTI)) for p in paths)  # nothing from other collections
        inside = next(m["face_id"] for f in found.json()["faces"] for m in f["matches"])
        assert desk.get(f"/v1/faces/{inside}/crop").status_code == 200
        outside_face = _matches(server, ALEX)[0]["face_id"]  # in the default collection
        assert desk.get(f"/v1/faces/{outside_face}/crop").status_code == 404
        elsewhere = desk.post("/v1/search", files=upload, data={"purpose": "x", "collection": "default"})
        assert elsewhere.status_code == 403 and "limited to the collections desk" in elsewhere.text
        outside = desk.post("/v1/index-jobs", json={"path": str(MULTI), "collection": "default"})
        assert outside.status_code == 403
        assert [c["name"] for c in desk.get("/v1/collections").json()] == ["desk"]
        assert desk.get("/v1/people").status_code == 403  # people span the whole catalog
        assert desk.get("/v1/stats").status_code == 403


def _job_under_way(server: Server, operator: httpx.Client, photos: Path, done: int) -> dict:
    """An index job over 216 copies of real photos, once it has done `done` of them."""
    photos.mkdir()
    for n, photo in enumerate(sorted(FR.glob("*/*.jpg")) * 12):
        (photos / f"{n:03}.jpg").write_bytes(photo.read_bytes())
    _add_root(server, "default", photos)
    job = operator.post("/v1/index-jobs", json={"path": str(photos), "collection": "default"}).json()
    while job["done"] < done and job["state"] in ("queued", "running"):
        time.sleep(0.3)
        job = operator.get(f"/v1/index-jobs/{job['id']}").json()
    return dict(job)


def test_an_index_job_reports_progress_and_can_be_cancelled(server: Server, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    with server.client(Role.operator) as operator:
        job = _job_under_way(server, operator, photos, 10)
        count = len(list(photos.iterdir()))
        assert job["state"] == "running" and 0 < job["done"] < job["total"] == count, job
        cancelled = operator.delete(f"/v1/index-jobs/{job['id']}").json()
        assert cancelled["state"] == "cancelled" and cancelled["report"]["interrupted"], cancelled
        assert 0 < cancelled["report"]["indexed"] < count
        again = operator.delete(f"/v1/index-jobs/{job['id']}")
        assert again.status_code == 409 and "cancelled" in again.json()["error"]["message"]


def test_an_index_job_survives_the_death_of_its_worker(server: Server, tmp_path: Path) -> None:
    """kill -9 of the worker running a job: another process takes the job over and finishes it."""
    photos = tmp_path / "photos"
    with server.client(Role.operator) as operator:
        job = _job_under_way(server, operator, photos, 20)
        assert job["state"] == "running", job
        os.kill(_owner(server, job["id"]), signal.SIGKILL)
        deadline = time.monotonic() + 180  # a job is stale after 30 s without a heartbeat
        while job["state"] == "running" and time.monotonic() < deadline:
            time.sleep(1)
            try:
                job = operator.get(f"/v1/index-jobs/{job['id']}").json()
            except httpx.TransportError:  # the connection was to the killed worker
                continue
        assert job["state"] == "done" and job["restarts"] == 1, job
        report = job["report"]
        assert report["indexed"] + report["unchanged"] == report["files_seen"] == len(list(photos.iterdir()))
        assert report["errors"] == 0


def _owner(server: Server, job_id: int) -> int:
    with sqlite3.connect(server.db) as conn:
        (owner,) = conn.execute("select owner from index_jobs where id = ?", (job_id,)).fetchone()
    return int(owner.rsplit(":", 1)[1])
