"""Recorded decisions are constraints every clustering run honours (issue 24 item 1): pinned faces
stay, "not this person" is never undone, two faces of one photo are never one person; and no
person absorbs others (a chain of look-alikes is split). Background faces (item 4): a person of
one bystander's face is not listed by default; faces under the minimum get no template."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import facefind
from facefind.catalog.schema import face_persons, face_rejections, faces, images
from facefind.people.clustering import split_incoherent

from .conftest import FR, MULTI, run_json
from .synthetic import DIM, add_image


def state(ff: facefind.FaceFind) -> tuple[dict[int, tuple[int, bool]], set[tuple[int, int]], dict[int, int]]:
    """(face -> (person, pinned), rejections, face -> photo) read straight from the catalog."""
    with ff.catalog.engine.connect() as conn:
        placed = {f: (p, bool(pin)) for f, p, pin in conn.execute(sa.select(face_persons))}
        rejected = {(int(f), int(p)) for f, p in conn.execute(sa.select(face_rejections))}
        photo = dict(conn.execute(sa.select(faces.c.id, faces.c.image_id)).all())
    return placed, rejected, photo


def assert_decisions_hold(ff: facefind.FaceFind, pins_before: dict[int, int]) -> None:
    placed, rejected, photo = state(ff)
    for face, person in pins_before.items():  # pinned faces stay where a user put them
        if face in photo:
            assert placed.get(face) == (person, True), (face, person, placed.get(face))
    for face, (person, pinned) in placed.items():  # "not this person" is never undone by clustering
        assert pinned or (face, person) not in rejected, (face, person)
    together: dict[tuple[int, int], list[bool]] = {}
    for face, (person, pinned) in placed.items():
        together.setdefault((person, photo[face]), []).append(pinned)
    for (person, image), pinned in together.items():  # one face per photo, unless a user put them
        assert len(pinned) == 1 or all(pinned), (person, image, pinned)


def pins(ff: facefind.FaceFind) -> dict[int, int]:
    return {f: p for f, (p, pinned) in state(ff)[0].items() if pinned}


def photos_of(rng: np.random.Generator, centres: np.ndarray, count: int, two_faces: float, noise: float):  # type: ignore[no-untyped-def]
    """Photos of 1-2 faces; a second face is of any identity, the same one included."""
    out = []
    for _ in range(count):
        people = rng.integers(0, len(centres), 2 if rng.random() < two_faces else 1)
        v = centres[people] + noise * rng.standard_normal((len(people), DIM))
        out.append((v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32))
    return out


decision = st.tuples(st.sampled_from(["remove", "split", "merge"]), st.integers(0, 50), st.integers(0, 50))


def decide(ff: facefind.FaceFind, decisions: list[tuple[str, int, int]]) -> None:
    """A reviewer's decisions, drawn by Hypothesis: (remove | split | merge, which person, which face)."""
    for kind, a, b in decisions:
        persons = ff.people.all(include_hidden=True)
        if not persons:
            return
        person = persons[a % len(persons)]
        chosen = [person.faces[b % person.face_count].face_id]
        if kind == "remove":
            ff.people.remove(person.id, chosen)
        elif kind == "split" and person.face_count > 1:
            ff.people.split(person.id, chosen)
        elif kind == "merge" and len(persons) > 1:
            other = persons[b % len(persons)]
            if other.id != person.id:
                ff.people.merge([other.id], into=person.id, confirm=True)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**16),
    identities=st.integers(2, 6),
    two_faces=st.floats(0.0, 0.8),
    noise=st.floats(0.02, 0.12),
    decisions=st.lists(decision, max_size=6),
)
def test_no_run_violates_a_recorded_decision(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    identities: int,
    two_faces: float,
    noise: float,
    decisions: list[tuple[str, int, int]],
) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((identities, DIM)) / np.sqrt(DIM)
    # Look-alikes: some identities lie between others, so chains of links can form.
    centres[1:] = 0.5 * centres[1:] + 0.5 * centres[:-1]
    with facefind.open(tmp_path_factory.mktemp("c") / "c.db") as ff:
        for i, vectors in enumerate(photos_of(rng, centres, 6 * identities, two_faces, noise)):
            add_image(ff.catalog, f"/a{i}.jpg", vectors)
        ff.people.update()
        assert_decisions_hold(ff, {})
        decide(ff, decisions)
        decided = pins(ff)
        for i, vectors in enumerate(photos_of(rng, centres, 3 * identities, two_faces, noise)):
            add_image(ff.catalog, f"/b{i}.jpg", vectors)
        ff.people.update()  # incremental
        assert_decisions_hold(ff, decided)
        ff.people.recluster()  # full
        assert_decisions_hold(ff, decided)
        ff.people.recluster()
        assert_decisions_hold(ff, decided)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(decisions=st.lists(decision, min_size=1, max_size=5))
def test_decisions_on_real_faces_survive_full_reclustering(
    fr_db: Path, tmp_path_factory: pytest.TempPathFactory, decisions: list[tuple[str, int, int]]
) -> None:
    db = tmp_path_factory.mktemp("fr") / "c.db"
    shutil.copy(fr_db, db)
    with facefind.open(db) as ff:
        decide(ff, decisions)
        decided = pins(ff)
        _, rejected, _ = state(ff)
        for _ in range(2):
            ff.people.recluster()
            assert_decisions_hold(ff, decided)
            # Rejections are data: no run removes one (unless its person is gone, faces and all).
            existing = {p.id for p in ff.people.all(include_hidden=True)}
            assert {r for r in rejected if r[1] in existing} <= state(ff)[1]


def test_two_faces_of_one_real_photo_are_never_one_person(tmp_path: Path) -> None:
    """A photo holding two different photos of Obama side by side: before the same-photo rule,
    both faces joined his person; now one does and the other stays out."""
    folder = tmp_path / "photos"
    shutil.copytree(FR / "Barack_Obama", folder / "Barack_Obama")
    shutil.copytree(FR / "Joe_Biden", folder / "Joe_Biden")
    first, second = sorted((FR / "Barack_Obama").iterdir())[:2]
    a, b = cv2.imread(str(first)), cv2.imread(str(second))
    height = min(a.shape[0], b.shape[0])
    a = cv2.resize(a, (a.shape[1] * height // a.shape[0], height))
    b = cv2.resize(b, (b.shape[1] * height // b.shape[0], height))
    cv2.imwrite(str(folder / "both.jpg"), np.hstack([a, b]))
    with facefind.open(tmp_path / "c.db") as ff:
        ff.create_collection("default", owner="test", basis="own", retention="30d")
        ff.index(folder, workers=1)
        obama = next(p for p in ff.people.all() if "Barack_Obama" in p.faces[-1].path)
        both = [f for p in ff.people.all(include_hidden=True) for f in p.faces if f.path.endswith("both.jpg")]
        with ff.catalog.engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(faces.join(images))
            in_photo = conn.execute(query.where(images.c.path.like("%both.jpg"))).scalar()
        assert in_photo == 2  # the detector found both faces
        assert [f.path.endswith("both.jpg") for f in obama.faces].count(True) == 1
        assert len(both) == 1
        for _ in range(2):
            ff.people.recluster()
            placed, _, photo = state(ff)
            persons_in_photo = [placed[f][0] for f in placed if photo[f] == both[0].image_id]
            assert len(persons_in_photo) == len(set(persons_in_photo)) >= 1


def test_a_chain_of_look_alikes_is_split() -> None:
    """Faces along a path from one person to another: each close to the next, so one Chinese
    whispers label may hold them all; the mean similarity of each end to the group is low."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, DIM))
    steps = np.linspace(0, 1, 40)[:, None]
    chain = (1 - steps) * a + steps * b + 0.05 * rng.standard_normal((40, DIM))
    chain /= np.linalg.norm(chain, axis=1, keepdims=True)
    linked = float((chain[1:] * chain[:-1]).sum(1).min())  # every face links to the next
    assert (chain[0] @ chain[-1]) < linked  # the ends do not link
    labels = split_incoherent(chain, np.zeros(40, np.int64), np.full(40, -1), linked, 0.3)
    assert len(set(labels.tolist())) >= 2
    assert labels[0] != labels[-1]
    # Fixed faces keep their label, whatever the split says.
    fixed = np.full(40, -1)
    fixed[[0, 39]] = 0
    labels = split_incoherent(chain, np.zeros(40, np.int64), fixed, linked, 0.3)
    assert labels[0] == labels[-1] == 0


def test_a_person_of_one_bystander_face_is_not_listed_by_default(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    centre = rng.standard_normal(DIM)

    def near() -> np.ndarray:
        v = centre + 0.05 * rng.standard_normal(DIM)
        return (v / np.linalg.norm(v)).astype(np.float32)

    with facefind.open(tmp_path / "c.db") as ff:
        ids = []
        for i in range(3):
            ids += add_image(ff.catalog, f"/p{i}.jpg", near()[None])
        # A crowd photo: someone else's large face, and this person small in the background.
        crowd = add_image(
            ff.catalog, "/crowd.jpg", np.vstack([rng.standard_normal(DIM), near()]).astype(np.float32)
        )
        with ff.catalog.transaction() as conn:
            conn.exec_driver_sql(f"update faces set size_px = 20 where id = {crowd[1]}")
        ff.people.update()
        (person,) = ff.people.all()
        assert {f.face_id for f in person.faces} == {*ids, crowd[1]}
        bystander = ff.people.split(person.id, [crowd[1]])  # one face, 20 px: background
        subject = ff.people.split(person.id, [ids[0]])  # one face, but the photo's largest
        listed = {p.id for p in ff.people.all()}
        everyone = {p.id: p for p in ff.people.all(include_hidden=True)}
        assert bystander.id not in listed and everyone[bystander.id].background
        assert subject.id in listed and not everyone[subject.id].background
        assert ff.people.background_persons() == {bystander.id}
        assert ff.people.background_faces([crowd[0], crowd[1], ids[1]]) == {crowd[1]}


def test_the_review_queue_never_asks_about_a_bystander(tmp_path: Path) -> None:
    """Two people who look somewhat like a named person (similarity ~0.4: worth a question, too
    far to be clustered with them): the one alone in a photo is asked about, the one seen only
    small (36 px: searchable, but a bystander) in the background of a crowd photo is not."""
    rng = np.random.default_rng(7)

    def unit(v: np.ndarray) -> np.ndarray:
        return (v / np.linalg.norm(v)).astype(np.float32)

    centre = rng.standard_normal(DIM)
    lookalikes = [
        unit(centre / np.linalg.norm(centre) + 2.3 * unit(rng.standard_normal(DIM))) for _ in range(2)
    ]
    with facefind.open(tmp_path / "c.db") as ff:
        ids = []
        for i in range(3):
            ids += add_image(ff.catalog, f"/p{i}.jpg", unit(centre + 0.05 * rng.standard_normal(DIM))[None])
        alone = add_image(ff.catalog, "/alone.jpg", lookalikes[0][None])
        crowd = add_image(
            ff.catalog, "/crowd.jpg", np.vstack([unit(rng.standard_normal(DIM)), lookalikes[1]])
        )
        with ff.catalog.transaction() as conn:
            conn.exec_driver_sql(f"update faces set size_px = 36 where id = {crowd[1]}")
        ff.people.update()
        by_face = {f.face_id: p.id for p in ff.people.all(include_hidden=True) for f in p.faces}
        subject = by_face[ids[0]]  # a person needs two faces: the look-alikes stay faces in no person
        assert {by_face.get(i) for i in ids} == {subject} and not {alone[0], crowd[1]} & set(by_face)
        ff.consent_add(
            subject, given_by="s", scope="search,results,clustering", expires="2099-01-01", evidence="t"
        )
        ff.people.name(subject, "Subject")
        asked = {q.item for q in ff.review.questions()}
        assert f"face:{alone[0]}" in asked and f"face:{crowd[1]}" not in asked


def test_faces_under_the_minimum_get_no_template(tmp_path: Path) -> None:
    photo = tmp_path / "photos"
    photo.mkdir()
    shutil.copy(MULTI / "two_people.jpg", photo / "two_people.jpg")
    with facefind.open(tmp_path / "first.db") as ff:
        ff.create_collection("default", owner="test", basis="own", retention="30d")
        ff.index(photo, workers=1)
        sizes = sorted(ff.catalog.faces_after(ff.backend.model_id, 0, 100)[3].tolist())
    assert len(sizes) >= 2 and sizes[0] < sizes[-1]
    between = int((sizes[0] + sizes[-1]) / 2)
    db = tmp_path / "second.db"
    run_json(
        "collection", "create", "default", "--owner", "test", "--basis", "own", "--retention", "30d", db=db
    )
    answer = run_json("people", "min-template", str(between), db=db)
    assert answer == {"min_template_px": between, "stored_faces_under": 0}
    run_json("index", str(photo), db=db)
    with facefind.open(db) as ff:
        kept = ff.catalog.faces_after(ff.backend.model_id, 0, 100)[3].tolist()
        assert kept and min(kept) >= between and len(kept) < len(sizes)
        with ff.catalog.engine.connect() as conn:  # nothing of the small faces is stored
            assert conn.execute(sa.select(sa.func.count()).select_from(faces)).scalar() == len(kept)


def test_large_catalogs_place_new_faces_through_the_nearest_persons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above EXACT_POOL faces, new faces are compared with the faces of the persons nearest them
    (not with every face): they join the same persons as the exact search puts them in."""
    from facefind.people import persons as people_module

    rng = np.random.default_rng(9)
    centres = rng.standard_normal((4, DIM))

    def photo_of(i: int) -> np.ndarray:
        v = centres[i] + 0.1 * rng.standard_normal(DIM)
        return (v / np.linalg.norm(v))[None].astype(np.float32)

    placed = {}
    for exact in (True, False):
        monkeypatch.setattr(people_module, "EXACT_POOL", 10**9 if exact else 0)
        with facefind.open(tmp_path / f"{exact}.db") as ff:
            for i in range(12):
                add_image(ff.catalog, f"/old{i}.jpg", photo_of(i % 3))
            ff.people.update()
            new = [add_image(ff.catalog, f"/new{i}.jpg", photo_of(i % 4))[0] for i in range(8)]
            ff.people.update()
            person = {f.face_id: p.id for p in ff.people.all() for f in p.faces}
            placed[exact] = [person.get(f, -1) for f in new]
    assert placed[True] == placed[False]
    assert placed[True][:3] == placed[True][4:7] and len(set(placed[True][:3])) == 3  # known people
    assert placed[True][3] == placed[True][7] != -1 and placed[True][3] not in placed[True][:3]  # a newcomer
