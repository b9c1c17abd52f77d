"""Every way to learn who is in a photo is a search (issue 20, findings 1 and 5, and the low ones
on GET side effects, gallery dumps, report injection and audit paging), through a real
`facefind serve`: an operator learns identities only from its own audited searches; a reviewer's
reading of people, persons and crops is audited as a view."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from facefind.policy import Role

from .conftest import FR, GLINT, run_cli
from .server import NAMES, Server, finished, serve_copy

OBAMA2 = FR / "Barack_Obama" / "obama2.jpg"


@pytest.fixture(scope="module")
def server(fr_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve_copy(fr_db, tmp_path_factory.mktemp("ident"), workers=1) as running:
        yield running


def _audit(server: Server, **filters: str) -> list[dict]:
    with server.client(Role.auditor) as auditor:
        found = auditor.get("/v1/audit", params={"limit": "5000", **filters})
    assert found.status_code == 200, found.text
    return list(found.json())


def _search(client: httpx.Client, photo: Path, purpose: str, **data: str) -> httpx.Response:
    upload = {"photo": (photo.name, photo.read_bytes(), "image/jpeg")}
    return client.post("/v1/search", files=upload, data={"purpose": purpose, **data})


def _index(server: Server, operator: httpx.Client, folder: Path) -> dict:
    with server.client(Role.admin) as admin:
        admin.put("/v1/collections/default/roots", json={"roots": [str(folder.parent)]})
    started = operator.post("/v1/index-jobs", json={"path": str(folder), "collection": "default"})
    assert started.status_code == 202, started.text
    job = finished(operator, started.json())
    assert job["state"] == "done", job
    return dict(job)


def test_indexing_an_unknown_photo_does_not_identify_it_without_a_search(
    server: Server, tmp_path: Path
) -> None:
    """Finding 1: an operator indexes a photo of someone, then reads the people view: refused; the
    job tells nothing of persons; crops of faces it never searched for are not found."""
    unknown = tmp_path / "drop" / "who.jpg"
    unknown.parent.mkdir()
    shutil.copy(OBAMA2, unknown)
    with server.client(Role.operator) as operator:
        job = _index(server, operator, unknown.parent)
        assert job["report"]["indexed"] == 1
        assert "people" not in job["report"], job["report"]  # no clustering outcome
        assert "faces_refused" not in job["report"]  # nor whether someone in it opted out
        for path in ("/v1/people", "/v1/people?include_hidden=true"):
            refused = operator.get(path)
            assert refused.status_code == 403 and "reviewer" in refused.json()["error"]["message"]
        with server.client(Role.reviewer) as reviewer:  # the reviewer sees the new face's person
            person = next(
                p for p in reviewer.get("/v1/people").json() if "Barack_Obama" in p["cover"]["path"]
            )
            new_face = next(f["face_id"] for f in person["faces"] if f["path"] == str(unknown))
        assert operator.get(f"/v1/people/{person['id']}").status_code == 403
        assert operator.post(f"/v1/people/{person['id']}/photos", json={"purpose": "x"}).status_code == 403
        assert operator.get(f"/v1/faces/{new_face}/crop").status_code == 404  # never searched for
        # Through an audited search it may: the search names the person, and its crops follow.
        found = _search(operator, OBAMA2, "case 11: identify the dropped photo")
        assert found.status_code == 200, found.text
        assert new_face in [m["face_id"] for m in found.json()["faces"][0]["matches"]]
        assert operator.get(f"/v1/faces/{new_face}/crop").status_code == 200
    searches = _audit(server, actor=NAMES[Role.operator], action="search")
    assert any(e["purpose"] == "case 11: identify the dropped photo" for e in searches)


def test_reading_people_persons_and_crops_is_audited_as_a_view(server: Server) -> None:
    """Finding 5: list, show and crop each leave an entry naming what was shown, and who."""
    with server.client(Role.reviewer) as reviewer:
        people = reviewer.get("/v1/people").json()
        shown = reviewer.get(f"/v1/people/{people[0]['id']}").json()
        assert reviewer.get(f"/v1/faces/{shown['faces'][0]['face_id']}/crop").status_code == 200
    views = _audit(server, actor=NAMES[Role.reviewer], action="view")
    details = [e["details"] for e in views]
    assert {"people": [p["id"] for p in people], "faces": sum(p["face_count"] for p in people)} in details
    assert {"person": shown["id"], "faces": shown["face_count"]} in details
    assert any(d.get("face") == shown["faces"][0]["face_id"] for d in details)


def test_a_person_search_is_a_post_with_a_purpose_never_a_get(server: Server) -> None:
    """A GET with side effects could be triggered by any page with the cookie: it is gone."""
    with server.client(Role.reviewer) as reviewer:
        person = reviewer.get("/v1/people").json()[0]["id"]
        gone = reviewer.get(f"/v1/people/{person}/photos", params={"purpose": "album"})
        assert gone.status_code == 405
        photos = reviewer.post(f"/v1/people/{person}/photos", json={"purpose": "subject's own request"})
        assert photos.status_code == 200 and photos.json(), photos.text
    searches = _audit(server, actor=NAMES[Role.reviewer], action="search")
    assert [e["purpose"] for e in searches] == ["subject's own request"]


def test_listing_file_errors_of_an_unknown_collection_creates_nothing(server: Server) -> None:
    with server.client(Role.operator) as operator, server.client(Role.admin) as admin:
        missing = operator.get("/v1/errors", params={"collection": "made-up"})
        assert missing.status_code == 404 and "no collection named" in missing.json()["error"]["message"]
        assert "made-up" not in [c["name"] for c in admin.get("/v1/collections").json()]


def test_no_service_search_can_list_the_gallery(server: Server) -> None:
    with server.client(Role.operator) as operator:
        loose = _search(operator, OBAMA2, "dump", threshold="-1", top_k="50")
        assert loose.status_code == 400 and "strangers" in loose.json()["error"]["message"], loose.text
        assert _search(operator, OBAMA2, "dump", max_fmr="0.5").status_code == 400
        assert _search(operator, OBAMA2, "dump", top_k="10000").status_code == 400
        fine = _search(operator, OBAMA2, "normal", max_fmr="0.001", top_k="100")
        assert fine.status_code == 200, fine.text


def test_the_audit_log_is_read_in_pages(server: Server) -> None:
    everything = _audit(server)
    assert len(everything) >= 3
    with server.client(Role.auditor) as auditor:
        page = auditor.get("/v1/audit", params={"limit": "2"})
        assert [e["seq"] for e in page.json()] == [e["seq"] for e in everything[-2:]]
        assert page.headers["X-Facefind-More"] == "true"
        older = auditor.get("/v1/audit", params={"limit": "2", "before_seq": str(page.json()[0]["seq"])})
        assert [e["seq"] for e in older.json()] == [e["seq"] for e in everything[-4:-2]]
        assert auditor.get("/v1/audit", params={"limit": "0"}).status_code == 422


def test_a_purpose_cannot_inject_rows_into_the_transparency_report(fr_copy: Path) -> None:
    evil = "x | 999 |\n| forged purpose | 1000 |\n[click](http://evil.example) <img src=x>"
    run_cli("search", FR / "Joe_Biden" / "biden.jpg", "--purpose", evil, db=fr_copy, check=True)
    report = run_cli("report", db=fr_copy, check=True).stdout
    rows = [line for line in report.splitlines() if "forged purpose" in line]
    assert len(rows) == 1, report  # one cell of one row, not a row of its own
    assert "| forged purpose |" not in report and "](http" not in report
    assert re.search(r"(?<!\\)<img", report) is None  # HTML is escaped, shown as text


def test_a_file_name_cannot_unlock_crops(server: Server) -> None:
    """A crop is an operator's only for faces its search returned, not for ids its upload's file
    name happened to contain (the audit entry names the upload)."""
    with server.client(Role.reviewer) as reviewer:
        people = reviewer.get("/v1/people").json()  # faces no search of the operator returned
        faces = [f["face_id"] for p in people if "Alex_Lacamoire" in p["cover"]["path"] for f in p["faces"]]
    stranger = GLINT / "Keanu_Reeves" / "5458.png"
    with server.client(Role.operator) as operator:
        name = "".join(f"[{face}," for face in faces) + ".png"
        upload = {"photo": (name, stranger.read_bytes(), "image/png")}
        found = operator.post("/v1/search", files=upload, data={"purpose": "nobody"})
        assert found.status_code == 200 and not any(f["matches"] for f in found.json()["faces"])
        assert len(faces) == 3
        assert [operator.get(f"/v1/faces/{face}/crop").status_code for face in faces] == [404] * 3


def test_a_key_limited_to_a_collection_learns_no_names_given_elsewhere(
    server: Server, tmp_path: Path
) -> None:
    """Persons and their names span the catalog: a desk key that indexes a photo of someone
    named from another collection's photos does not learn the name by searching its desk."""
    kit = FR / "Kit_Harington" / "john1.jpeg"
    desk = tmp_path / "desk"
    desk.mkdir()
    shutil.copy(kit, desk / "unknown.jpg")
    with server.client(Role.reviewer) as reviewer, server.client(Role.dpo) as dpo:
        person = next(p for p in reviewer.get("/v1/people").json() if "Kit_Harington" in p["cover"]["path"])
        given = {"person_id": person["id"], "given_by": "Kit", "expires": "2099-01-01", "evidence": "form"}
        assert dpo.post("/v1/consents", json=given).status_code == 201
        assert reviewer.put(f"/v1/people/{person['id']}/name", json={"name": "Kit H."}).status_code == 200
    with server.client(Role.admin) as admin:
        made = admin.post(
            "/v1/collections",
            json={"name": "desk2", "owner": "news", "basis": "own", "retention": "1y", "roots": [str(desk)]},
        )
        assert made.status_code == 201, made.text
        key = admin.post("/v1/keys", json={"name": "desk2-op", "role": "operator", "collections": ["desk2"]})
    with server.client(key=key.json()["key"]) as scoped:
        job = scoped.post("/v1/index-jobs", json={"path": str(desk), "collection": "desk2"}).json()
        job = finished(scoped, job)
        assert job["state"] == "done", job
        found = _search(scoped, kit, "desk story")
        matches = [m for f in found.json()["faces"] for m in f["matches"]]
        assert matches and all(m["collection"] == "desk2" for m in matches), found.text
        assert all(m["person"] is None and m["person_id"] is None for m in matches)
    with server.client(Role.operator) as everywhere:  # a key over the whole catalog sees the name
        found = _search(everywhere, kit, "case 12").json()
        assert "Kit H." in [m["person"] for f in found["faces"] for m in f["matches"]]
