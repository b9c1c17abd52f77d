"""Consent and opt-out follow the faces: whatever reviewers, clustering and re-indexing do to
persons, a face that was ever a face of a person with consent records stays withheld as that
person's consent says, and no read or write returns a withheld person (security review, issue 20
findings 3 and 4; issue 21 item 6)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

import facefind
from facefind import policy
from facefind.accountability import consent
from facefind.errors import FacefindError, NotFound, Refused
from facefind.policy import Role

from .conftest import FR, OBAMA, run_cli, run_json
from .server import Server, serve
from .synthetic import add_image

EVERYTHING = dict(
    given_by="the person", scope="search,results,clustering", expires="2099-12-31", evidence="f"
)


def person_of(ff: facefind.FaceFind, folder: str) -> int:
    return next(p.id for p in ff.people.all(include_hidden=True) if folder in p.faces[0].path)


def faces_in(db: Path, folder: str) -> set[int]:
    with sqlite3.connect(db) as con:
        rows = con.execute("select f.id, i.path from faces f join images i on i.id = f.image_id").fetchall()
    return {face_id for face_id, path in rows if f"/{folder}/" in path}


def searchable(ff: facefind.FaceFind, photo: Path = OBAMA) -> set[int]:
    found = ff.search(photo, purpose="consent check", threshold=-1, top_k=200)
    return {m.face_id for f in found.faces for m in f.matches}


def croppable(ff: facefind.FaceFind, face_ids: set[int]) -> set[int]:
    shown = set()
    for face_id in face_ids:
        try:
            ff.face_crop(face_id)
            shown.add(face_id)
        except NotFound:
            pass
    return shown


def listed_faces(ff: facefind.FaceFind) -> set[int]:
    return {f.face_id for p in ff.people.all(include_hidden=True) for f in p.faces}


# (a) library and CLI on real SQLite ------------------------------------------------------------
def test_no_decision_after_a_withdrawal_brings_the_faces_back(fr_copy: Path, tmp_path: Path) -> None:
    his = faces_in(fr_copy, "Barack_Obama")
    with facefind.open(fr_copy) as ff:
        obama, biden = person_of(ff, "Barack_Obama"), person_of(ff, "Joe_Biden")
        theirs = sorted(f.face_id for f in ff.people.get(obama).faces)
        given = ff.consent_add(obama, **EVERYTHING)
        ff.people.name(obama, "Barack Obama")
        # Decisions made while the consent held: the faces leave the person, but stay its consent's.
        other = ff.people.split(obama, theirs[:3])
        ff.people.remove(obama, theirs[3:5])
        ff.consent_withdraw(given.id)

        for attempt in (
            lambda: ff.people.split(obama, theirs[5:6]),
            lambda: ff.people.remove(obama, theirs[5:7]),
            lambda: ff.people.merge([obama], into=biden, confirm=True),
            lambda: ff.people.merge([biden], into=obama, confirm=True),
            lambda: ff.people.hide(obama, False),
            lambda: ff.people.unname(obama),
        ):
            with pytest.raises(Refused, match="DPO"):
                attempt()
        # The person the split made holds only withheld faces: not shown, nothing to decide on.
        assert other.id not in {p.id for p in ff.people.all(include_hidden=True)}
        ff.people.merge([other.id], into=biden)  # its (unseen) faces move, still withheld
        ff.people.recluster()
        ff.people.update()
        # A new photo of him: clustering would give it to him; it is his consent's, so withheld.
        again = tmp_path / "again"
        again.mkdir()
        shutil.copy(FR / "Barack_Obama" / "obama.jpg", again / "copy-of-obama.jpg")
        ff.index(again, workers=1)
        ff.people.recluster()
        new = faces_in(fr_copy, "again")
        assert len(new) == 1
        assert not (his | new) & searchable(ff)
        assert not croppable(ff, his | new)
        assert not (his | new) & listed_faces(ff)
        assert obama not in {p.id for p in ff.people.all(include_hidden=True)}
        assert searchable(ff, FR / "Joe_Biden" / "biden.jpg")  # others are still found
        # Erasing him erases every face bound to his consent, wherever it went, and nothing else.
        before = ff.catalog.stats(0, 0)["faces"]
        receipt = ff.erase("person", str(obama))
        assert receipt.faces_removed == len(his | new)
        assert ff.catalog.stats(0, 0)["faces"] == before - len(his | new)
        assert not ff.catalog.face_rows(his | new)


def test_consents_recorded_before_this_release_bind_their_faces_too(fr_copy: Path) -> None:
    """A catalog whose consent rows predate face_subjects: the first move binds the faces."""
    with facefind.open(fr_copy) as ff:
        obama = person_of(ff, "Barack_Obama")
        theirs = sorted(f.face_id for f in ff.people.get(obama).faces)
    with sqlite3.connect(fr_copy) as con:
        con.execute(
            "insert into consents (person_id, given_by, scope, expires_on, evidence, recorded_at, "
            "recorded_by) values (?, 'p', 'search,results,clustering', '2099-12-31', 'e', '2026-01-01', "
            "'old')",
            (obama,),
        )
        assert con.execute("select count(*) from face_subjects").fetchone() == (0,)
    with facefind.open(fr_copy) as ff:
        ff.people.split(obama, theirs[:2])
        ff.people.recluster()
    with sqlite3.connect(fr_copy) as con:
        con.execute("update consents set withdrawn_at = '2026-02-01'")
    with facefind.open(fr_copy) as ff:
        assert not set(theirs) & searchable(ff)
        assert not croppable(ff, set(theirs))


def test_a_new_photo_of_a_person_not_consenting_to_clustering_is_withheld_as_they_said(
    fr_copy: Path, tmp_path: Path
) -> None:
    with facefind.open(fr_copy) as ff:
        kit = person_of(ff, "Kit_Harington")
        ff.consent_add(kit, **{**EVERYTHING, "scope": "results"})  # shown, never searched or grouped
        again = tmp_path / "again"
        again.mkdir()
        shutil.copy(FR / "Kit_Harington" / "john1.jpeg", again / "kit.jpg")
        ff.index(again, workers=1)
        (new,) = faces_in(fr_copy, "again")
        assert ff.people.get(kit).face_count == 3  # not joined automatically ...
        assert new not in searchable(ff, FR / "Kit_Harington" / "john1.jpeg")  # ... nor searchable
        assert croppable(ff, {new}) == {new}  # his consent covers showing results


def test_people_views_never_show_a_withheld_or_opted_out_person(fr_copy: Path) -> None:
    """Issue 21 item 6, through the CLI."""
    with facefind.open(fr_copy) as ff:
        kit, rose = person_of(ff, "Kit_Harington"), person_of(ff, "Rose_Leslie")
        ff.consent_add(kit, **EVERYTHING)
        ff.people.name(kit, "Kit Harington")
        ff.optout_add(FR / "Kit_Harington" / "john1.jpeg")  # every face of his is opted out
        ff.consent_add(rose, **{**EVERYTHING, "scope": "search"})  # not "results"
    for args in (("people", "list"), ("people", "list", "--all")):
        listed = run_json(*args, db=fr_copy)
        assert not {kit, rose} & {p["id"] for p in listed}, args
        assert all(p["face_count"] and p["cover"] for p in listed)
    named = run_cli("people", "name", str(rose), "Rose Leslie", "--json", db=fr_copy)
    assert named.returncode == 1 and "Rose" not in named.stdout and "jpg" not in named.stdout
    assert "consent" in named.stdout  # with --json, the error is a JSON document on stdout


# (b) property: random decisions never make a withheld face visible ---------------------------
class Decisions(RuleBasedStateMachine):
    """Reviewer decisions, clustering and consent changes in any order on a small real catalog;
    the model records which consent subject each face ever belonged to, as observed."""

    source: Path
    folder: Path

    @initialize()
    def open_catalog(self) -> None:
        Decisions.runs = getattr(Decisions, "runs", 0) + 1
        db = self.folder / f"run{Decisions.runs}.db"
        shutil.copy(self.source, db)
        self.ff = facefind.open(db)
        self.bound: dict[int, set[int]] = {}  # face -> consent subjects it was ever a face of
        self.observe()

    def teardown(self) -> None:
        if hasattr(self, "ff"):
            self.ff.close()

    def persons(self) -> list[int]:
        return sorted(self.ff.catalog.engine.connect().exec_driver_sql("select id from persons").scalars())

    def faces_of(self, person: int) -> list[int]:
        rows = self.ff.catalog.engine.connect().exec_driver_sql(
            f"select face_id from face_persons where person_id = {int(person)} order by face_id"
        )
        return list(rows.scalars())

    def observe(self) -> None:
        subjects = {c.person_id for c in consent.all_(self.ff.catalog)}
        for person in subjects:
            for face in self.faces_of(person):
                self.bound.setdefault(face, set()).add(person)

    def attempt(self, action) -> bool:  # type: ignore[no-untyped-def]
        try:
            action()
            return True
        except FacefindError:
            return False
        finally:
            self.observe()

    @rule(data=st.data(), count=st.integers(1, 3))
    def split(self, data: st.DataObject, count: int) -> None:
        person = data.draw(st.sampled_from(self.persons()))
        faces_ = self.faces_of(person)
        self.attempt(lambda: self.ff.people.split(person, faces_[:count]))

    @rule(data=st.data(), count=st.integers(1, 2))
    def remove(self, data: st.DataObject, count: int) -> None:
        person = data.draw(st.sampled_from(self.persons()))
        faces_ = self.faces_of(person)
        self.attempt(lambda: self.ff.people.remove(person, faces_[-count:]))

    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        persons = self.persons()
        source, into = data.draw(st.sampled_from(persons)), data.draw(st.sampled_from(persons))
        if self.attempt(lambda: self.ff.people.merge([source], into=into, confirm=True)):
            for subjects in self.bound.values():  # the source's consent records went to `into`
                if source in subjects:
                    subjects.discard(source)
                    subjects.add(into)

    @rule()
    def recluster(self) -> None:
        self.attempt(self.ff.people.recluster)

    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        """A new photo whose face is a near copy of a catalogued one, then incremental clustering."""
        ids, embeddings, *_ = self.ff.catalog.faces_after(self.ff.backend.model_id, 0, 2**62)
        row = data.draw(st.integers(0, len(ids) - 1))
        vector = embeddings[row] + np.float32(0.01)
        add_image(self.ff.catalog, f"/new/{len(ids)}.jpg", (vector / np.linalg.norm(vector))[None])
        self.attempt(self.ff.people.update)

    @rule(data=st.data(), scope=st.sampled_from(["search,results,clustering", "results", "search"]))
    def consent_add(self, data: st.DataObject, scope: str) -> None:
        person = data.draw(st.sampled_from(self.persons()))
        self.attempt(lambda: self.ff.consent_add(person, **{**EVERYTHING, "scope": scope}))

    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        active = [c.id for c in consent.all_(self.ff.catalog) if c.active]
        if active:
            chosen = data.draw(st.sampled_from(active))
            self.attempt(lambda: self.ff.consent_withdraw(chosen))

    @invariant()
    def withheld_faces_stay_hidden(self) -> None:
        if not hasattr(self, "ff"):
            return
        for use in ("search", "results"):
            hidden = set(policy.hidden_faces(self.ff.catalog, use).tolist())
            for face, subjects in self.bound.items():
                if any(not consent.allows(self.ff.catalog, s, use) for s in subjects):
                    assert face in hidden, (face, subjects, use)
        withheld = consent.withheld_persons(self.ff.catalog, "results")
        shown = self.ff.people.all(include_hidden=True)
        assert not withheld & {p.id for p in shown}
        assert not {f.face_id for p in shown for f in p.faces} & set(
            policy.hidden_faces(self.ff.catalog, "results").tolist()
        )


def test_random_decisions_never_show_a_withheld_face(fr_db: Path, tmp_path: Path) -> None:
    Decisions.source, Decisions.folder = fr_db, tmp_path
    run_state_machine_as_test(
        Decisions,
        settings=settings(
            max_examples=15,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# (c) HTTP against a real `facefind serve` ---------------------------------------------------
@pytest.fixture(scope="module")
def server(fr_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int, list[int]]]:
    """The fr catalog served, with Barack Obama's consent recorded, his name given and withdrawn."""
    folder = tmp_path_factory.mktemp("follows")
    db = folder / "catalog.db"
    shutil.copy(fr_db, db)
    with facefind.open(db) as ff:
        obama = person_of(ff, "Barack_Obama")
        his = sorted(f.face_id for f in ff.people.get(obama).faces)
        given = ff.consent_add(obama, **EVERYTHING)
        ff.people.name(obama, "Barack Obama")
        ff.consent_withdraw(given.id)
    with serve(db, folder) as running:
        yield running, obama, his


def test_http_people_lists_never_include_a_withdrawn_person(server: tuple[Server, int, list[int]]) -> None:
    running, obama, his = server
    for role in (Role.reviewer,):  # the only role that reads people (docs/security.md)
        with running.client(role) as client:
            for query in ("", "?include_hidden=true"):
                listed = client.get(f"/v1/people{query}")
                assert listed.status_code == 200, listed.text
                assert obama not in {p["id"] for p in listed.json()}
                assert not set(his) & {f["face_id"] for p in listed.json() for f in p["faces"]}
                assert "Barack" not in listed.text


def test_http_reviewer_writes_on_a_withdrawn_person_are_refused(
    server: tuple[Server, int, list[int]],
) -> None:
    running, obama, his = server
    with running.client(Role.reviewer) as reviewer:
        for route in ("remove", "split"):
            answer = reviewer.post(f"/v1/people/{obama}/{route}", json={"faces": his[:2]})
            assert answer.status_code == 403, answer.text
            assert "Barack" not in answer.text and ".jpg" not in answer.text
        for method, route, body in [
            ("PUT", "hidden", {"hidden": False}),
            ("DELETE", "name", None),
            ("PUT", "name", {"name": "Someone"}),
        ]:
            answer = reviewer.request(method, f"/v1/people/{obama}/{route}", json=body)
            assert answer.status_code == 403, (route, answer.text)
    with running.client(Role.operator) as operator, OBAMA.open("rb") as photo:
        found = operator.post(
            "/v1/search",
            files={"photo": ("q.jpg", photo, "image/jpeg")},
            data={"purpose": "consent check", "max_fmr": "0.01", "top_k": "100"},  # the loosest allowed
        )
        assert found.status_code == 200, found.text
        assert not set(his) & {m["face_id"] for f in found.json()["faces"] for m in f["matches"]}
    with running.client(Role.reviewer) as reviewer:  # the role that may see any shown face's crop
        for face_id in his:
            assert reviewer.get(f"/v1/faces/{face_id}/crop").status_code == 404
        assert reviewer.get(f"/v1/people/{obama}").status_code == 403


# The same on both databases (the binding statements are portable SQL) ------------------------
def test_consent_follows_faces_on_sqlite_and_postgresql(backend_db: str | Path) -> None:
    from .conftest import new_catalog
    from .synthetic import unit

    rng = np.random.default_rng(7)
    centres = unit(rng, 2)

    def near(centre: np.ndarray) -> np.ndarray:
        v = centre + 0.08 * unit(rng, 1)[0]
        return (v / np.linalg.norm(v))[None].astype(np.float32)

    with facefind.open(new_catalog(backend_db)) as ff:
        a = [f for i in range(6) for f in add_image(ff.catalog, f"/a{i}.jpg", near(centres[0]))]
        b = [f for i in range(4) for f in add_image(ff.catalog, f"/b{i}.jpg", near(centres[1]))]
        ff.people.update()
        (person_a,) = {p.id for p in ff.people.all() if a[0] in {f.face_id for f in p.faces}}
        (person_b,) = {p.id for p in ff.people.all() if b[0] in {f.face_id for f in p.faces}}
        given = ff.consent_add(person_a, **EVERYTHING)
        split_off = ff.people.split(person_a, a[:2])
        ff.people.remove(person_a, a[2:3])
        ff.people.merge([split_off.id], into=person_b, confirm=True)
        ff.people.remove(person_b, a[:1])  # rejected twice by now: one row
        ff.consent_withdraw(given.id)
        late = add_image(ff.catalog, "/a-late.jpg", near(centres[0]))
        ff.people.update()
        ff.people.recluster()
        withheld = set(a + late)
        for use in ("search", "results"):
            assert withheld <= set(policy.hidden_faces(ff.catalog, use).tolist())
        shown = ff.people.all(include_hidden=True)
        assert not withheld & {f.face_id for p in shown for f in p.faces}
        assert set(b) <= {f.face_id for p in shown for f in p.faces}
        with pytest.raises(Refused):
            ff.people.merge([person_b], into=person_a, confirm=True)
