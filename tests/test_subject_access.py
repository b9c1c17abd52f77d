"""Subject access exports and the impact-assessment pack (issue 26, items 3 and 5), on a real
catalog: the shared face_recognition photos plus three photos of two people each, with consents,
names, searches and views of several people in the audit log."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import facefind
from facefind.calibration import DEFAULT_MAX_FPIR
from facefind.errors import FacefindError
from facefind.policy import Role

from .conftest import BIDEN, FR, MULTI, OBAMA, run_cli, run_json
from .server import NAMES, Server, serve_copy

TWO = MULTI / "obama_and_biden.jpg"


@dataclass
class World:
    db: Path
    persons: dict[str, int]  # who -> person id
    faces: dict[str, set[int]]  # who -> their face ids
    names: dict[str, str]  # who -> the name a reviewer gave them


def _person_of(ff: facefind.FaceFind, photo: Path) -> int:
    return next(
        p.id for p in ff.people.all(include_hidden=True) if any(f.path == str(photo) for f in p.faces)
    )


@pytest.fixture(scope="module")
def world(fr_db: Path, tmp_path_factory: pytest.TempPathFactory) -> World:
    db = tmp_path_factory.mktemp("subject") / "catalog.db"
    shutil.copy(fr_db, db)
    names = {"obama": "Barack Obama", "biden": "Joe <i>Biden</i> & co", "kit": "Kit Harington"}
    with facefind.open(db, actor="setup") as ff:
        ff.create_collection(
            "events", owner="press office", basis="consent", retention="2y", note="event photos <b>2026</b>"
        )
        ff.index(MULTI, collection="events", workers=1)
        persons = {
            "obama": _person_of(ff, OBAMA),
            "biden": _person_of(ff, BIDEN),
            "kit": _person_of(ff, FR / "Kit_Harington" / "john1.jpeg"),
        }
        for who, pid in persons.items():
            scope = "search,results,clustering" + (",publication" if who == "biden" else "")
            ff.consent_add(pid, given_by=who, scope=scope, expires="2099-01-01", evidence="form")
            ff.people.name(pid, names[who])
        faces = {who: {f.face_id for f in ff.people.get(pid).faces} for who, pid in persons.items()}
    with facefind.open(db, actor="officer") as ff:
        ff.search(OBAMA, purpose="case obama")
        ff.search(BIDEN, purpose="case biden")
        ff.person(persons["kit"])  # a view of someone else
        ff.face_crop(min(faces["obama"]))
        # A copy for publishing keeps Biden's face (his consent covers it) and hides Obama's.
        ff.redact([TWO], db.parent / "published", purpose="newsletter")
    return World(db, persons, faces, names)


def _zip(data: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        files = {n: z.read(n) for n in z.namelist()}
    return json.loads(files["subject.json"]), files


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, key)
    else:
        yield key, value


def test_export_holds_every_photo_and_audit_entry_of_the_person_and_nothing_of_anyone_else(
    world: World, tmp_path: Path
) -> None:
    biden, mine = world.persons["biden"], world.faces["biden"]
    out = tmp_path / "biden.zip"
    with facefind.open(world.db, actor="dpo") as ff:
        done, data = ff.subject_export(out, person=biden)
        rows = ff.catalog.face_rows(range(1, 1000))
        entries = list(ff.audit.entries())
    assert out.read_bytes() == data and done.sha256 == hashlib.sha256(data).hexdigest()
    record, files = _zip(data)

    # Every face and photo of theirs: both solo photos and both photos with Obama.
    assert {f["face_id"] for f in record["faces"]} == mine and len(mine) == 4
    photos = {rows[f].path for f in mine}
    assert {p["path"] for p in record["photos"]} == photos and TWO.as_posix() in photos
    assert sorted(n for n in files if n.startswith("photos/")) == sorted(
        f for p in record["photos"] for f in p["files"]
    )
    assert [p["name"] for p in record["persons"]] == [world.names["biden"]]
    assert [c["person_id"] for c in record["consents"]] == [biden]

    # Every audit entry that found or named them, and none that did not.
    def names_them(e: Any) -> bool:
        d = e.details
        found = (
            {m[0] for f in d.get("faces") or [] for m in f.get("matches") or []}
            if e.action == "search"
            else set()
        )
        kept = {k["person_id"] for k in d.get("kept") or []} if e.action == "redact" else set()
        return bool(found & mine) or biden in kept or d.get("person") == biden or d.get("person_id") == biden

    exported = {a["seq"] for a in record["audit"]}
    wanted = {e.seq for e in entries if names_them(e)}
    assert {e.action for e in entries if e.seq in wanted} >= {"search", "consent", "person", "redact"}
    assert wanted <= exported, wanted - exported
    assert all(names_them(e) for e in entries if e.seq in exported), "an entry not about them"
    by_seq = {a["seq"]: a for a in record["audit"]}
    case = next(e for e in entries if e.purpose == "case biden")
    assert {m[0] for m in by_seq[case.seq]["details"]["your_matches"]} <= mine
    assert by_seq[case.seq]["hash"] == case.hash and "query" not in by_seq[case.seq]["details"]

    # Nothing of anyone else: no other face id, person id or name anywhere in the export.
    others = set(rows) - mine
    other_persons = set(world.persons.values()) - {biden}
    for key, value in _walk(record):
        if key in ("face_id", "faces", "your_matches") and isinstance(value, int):
            assert value in mine, (key, value)
        if key in ("person_id", "persons", "person", "id") and isinstance(value, int):
            assert value not in other_persons or key == "id", (key, value)
    assert not {a["seq"] for a in record["audit"]} & {e.seq for e in entries if e.purpose == "case obama"}
    assert others and all(f not in {x["face_id"] for x in record["faces"]} for f in others)
    text = files["subject.json"].decode() + files["index.html"].decode()
    for who in ("obama", "kit"):
        assert world.names[who] not in text
    # The summary is escaped: a name is text, never markup.
    assert "Joe &lt;i&gt;Biden&lt;/i&gt; &amp; co" in files["index.html"].decode()
    assert "<i>" not in files["index.html"].decode() and "<script" not in files["index.html"].decode()

    # Obama's face is hidden in the photo they share; Biden's is as it was.
    shared = next(p for p in record["photos"] if p["path"] == TWO.as_posix())
    exported_photo = cv2.imdecode(np.frombuffer(files[shared["files"][0]], np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imread(str(TWO))
    assert exported_photo.shape == original.shape and shared["other_faces_hidden"] >= 1

    def region(image: np.ndarray, face: int) -> np.ndarray:
        x, y, w, h = (int(v) for v in rows[face].box)
        return image[y : y + h, x : x + w].astype(np.int16)

    obama_face = next(f for f in world.faces["obama"] if rows[f].path == TWO.as_posix())
    biden_face = next(f for f in mine if rows[f].path == TWO.as_posix())
    assert np.abs(region(exported_photo, obama_face) - region(original, obama_face)).mean() > 40
    assert np.abs(region(exported_photo, biden_face) - region(original, biden_face)).mean() < 6

    # The export itself is audited: who, which person, the zip's hash.
    with facefind.open(world.db) as ff:
        last = list(ff.audit.entries())[-1]
    assert (last.actor, last.action) == ("dpo", "export")
    assert last.details["persons"] == [biden] and last.details["sha256"] == done.sha256


def test_export_by_the_subjects_own_photo_is_an_audited_search(world: World, tmp_path: Path) -> None:
    out = tmp_path / "mine.zip"
    done = run_json(
        "subject", "export", "--photo", BIDEN, "--out", out, "--crops", "--actor", "dpo", db=world.db
    )
    assert done["persons"] == [world.persons["biden"]] and done["matched"]
    record, files = _zip(out.read_bytes())
    assert {f["face_id"] for f in record["faces"]} == world.faces["biden"]
    assert sorted(n for n in files if n.startswith("crops/")) == sorted(
        f"crops/face-{f}.jpg" for f in world.faces["biden"]
    )
    with facefind.open(world.db, actor="dpo") as ff:
        searches = [e for e in ff.audit.entries() if e.action == "search"]
        assert (searches[-1].purpose, searches[-1].actor) == ("subject access request", "dpo")
        # A photo of two people names no one: the subject's face must be chosen.
        with pytest.raises(FacefindError, match="--face"):
            ff.subject_export(None, photo=TWO)
        # An existing file is never overwritten.
        with pytest.raises(FacefindError, match="never overwritten"):
            ff.subject_export(out, person=world.persons["biden"])


@pytest.fixture(scope="module")
def server(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve_copy(world.db, tmp_path_factory.mktemp("subject-api")) as running:
        yield running


def test_http_export_is_the_dpos_alone_and_audited(world: World, server: Server) -> None:
    biden = world.persons["biden"]
    # Every other role is refused too (tests/test_api.py's table); the operator, who searches, above all.
    with server.client(Role.operator) as operator:
        refused = operator.get("/v1/subjects/export", params={"person": biden})
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "Refused"
        photo = {"photo": ("biden.jpg", BIDEN.read_bytes(), "image/jpeg")}
        assert operator.post("/v1/subjects/export", files=photo).status_code == 403
    with server.client(Role.dpo) as dpo:
        got = dpo.get("/v1/subjects/export", params={"person": biden})
        assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
        record, _ = _zip(got.content)
        assert {f["face_id"] for f in record["faces"]} == world.faces["biden"]
    with server.client(Role.auditor) as auditor:
        exports = [e for e in auditor.get("/v1/audit").json() if e["action"] == "export"]
        pack = auditor.get("/v1/report/dpia")
        text = auditor.get("/v1/report/dpia", params={"format": "markdown"})
    assert exports[-1]["actor"] == NAMES[Role.dpo] and exports[-1]["details"]["persons"] == [biden]
    assert exports[-1]["details"]["sha256"] == hashlib.sha256(got.content).hexdigest()
    assert text.headers["content-type"].startswith("text/markdown")
    assert 'filename="facefind-dpia.md"' in text.headers["content-disposition"] and "| events |" in text.text
    assert pack.status_code == 200 and {c["name"] for c in pack.json()["collections"]} == {
        "default",
        "events",
    }


def test_dpia_lists_every_collection_the_operating_point_and_an_evaluation(
    world: World, tmp_path: Path
) -> None:
    from facefind import evaluate
    from facefind.accountability import dpia

    with facefind.open(world.db) as ff:
        searched = ff.search(OBAMA, purpose="the operating point, as a search has it")
        pack = ff.dpia()
        # An evaluation on labelled photos with the groups an operator supplied (groups.csv).
        labelled = tmp_path / "labelled"
        shutil.copytree(FR, labelled, ignore=shutil.ignore_patterns("*.txt", "*.csv"))
        (labelled / "groups.csv").write_text(
            "person,group\nBarack_Obama,A\nJoe_Biden,A\nKit_Harington,B\nRose_Leslie,B\n"
        )
        loaded = evaluate.load_labelled(labelled, ff.settings, 1, lambda: ff.backend)
        result = evaluate.report(loaded, ff.threshold(None, None), ff.calibration())
    assert [c["name"] for c in pack["collections"]] == ["default", "events"]
    assert pack["collections"][1]["purposes"] == "event photos <b>2026</b>"
    assert pack["collections"][1]["basis"] == "consent"
    page = dpia.to_html(pack)  # free text is text, never markup
    assert "event photos &lt;b&gt;2026&lt;/b&gt;" in page and "<b>" not in page
    point = pack["accuracy"]["search_operating_point"]
    assert (point["faces_searched"], point["threshold"]) == (searched.faces_searched, searched.threshold)
    assert point["faces_searched"] == 30 and searched.max_fpir == DEFAULT_MAX_FPIR
    assert 0 < point["fpir"] <= DEFAULT_MAX_FPIR * 1.0001 and point["fmr_per_comparison"] < point["fpir"]
    assert pack["accuracy"]["calibration"]["kind"] == "shipped with facefind"
    assert pack["volumes"]["searches_last_30_days"] >= 2 and pack["volumes"]["consents_active"] == 3
    assert pack["questions_for_the_operator"]

    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(json.dumps(result))
    out = tmp_path / "dpia.md"
    run_cli("report", "--dpia", "--evaluation", evaluation, "--out", out, db=world.db, check=True)
    text = out.read_text()
    for line in (
        "| default |",
        "| events |",
        "## Questions only you can answer",
        "| threshold (similarity) |",
    ):
        assert line in text, line
    assert "Error rates per group" in text and "| A |" in text and "| B |" in text
