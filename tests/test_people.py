"""People: grouping quality on real faces, stability of user decisions, CLI round trips, bad requests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import facefind
from facefind.evaluate import clustering_scores
from facefind.people import People

from .conftest import FR, GLINT, new_catalog, run_cli, run_json
from .synthetic import add_image, unit


def people(ff: facefind.FaceFind) -> People:
    return ff.people


def labels_of(ff: facefind.FaceFind, face_ids: list[int]) -> np.ndarray:
    placed = {f.face_id: p.id for p in ff.people.all(include_hidden=True) for f in p.faces}
    return np.array([placed.get(f, -1) for f in face_ids])


def store(ff: facefind.FaceFind, glint_set, rows: np.ndarray) -> list[int]:  # type: ignore[no-untyped-def]
    ids = []
    for i in rows:
        ids += add_image(ff.catalog, glint_set.paths[i], glint_set.embeddings[i][None])
    return ids


@pytest.fixture
def fr_copy(fr_db: Path, tmp_path: Path) -> Path:
    """A private copy of the indexed face_recognition catalog, to change freely."""
    db = tmp_path / "catalog.db"
    shutil.copy(fr_db, db)
    return db


def test_glint_faces_group_into_their_identities(glint_set, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Floors sit below what was measured (BCubed F1 0.9975, 12 persons for 12 identities)."""
    rows = np.flatnonzero(glint_set.detected)
    truth = np.array(glint_set.persons)[rows]
    order = np.random.default_rng(0).permutation(len(rows))
    first, second = np.sort(order[: len(rows) // 2]), np.sort(order[len(rows) // 2 :])
    with facefind.open(tmp_path / "c.db") as ff:
        # Two indexing runs: the second half joins persons made from the first half.
        ids_first = store(ff, glint_set, rows[first])
        ff.people.update()
        before = labels_of(ff, ids_first)
        ids_second = store(ff, glint_set, rows[second])
        report = ff.people.update()
        assert report.faces_considered == len(second)
        ids = ids_first + ids_second
        truth_in_order = np.concatenate([truth[first], truth[second]])
        incremental = clustering_scores(labels_of(ff, ids), truth_in_order)
        assert np.array_equal(labels_of(ff, ids_first), before)  # earlier faces were not moved
        ff.people.recluster()
        full = clustering_scores(labels_of(ff, ids), truth_in_order)
    for scores in (incremental, full):
        assert scores["bcubed_f1"] >= 0.98 and scores["pairwise_f1"] >= 0.98, scores
        assert 12 <= scores["persons_found"] <= 14 and scores["unassigned_share"] <= 0.02


def test_indexing_real_photos_groups_them_and_lists_every_face(fr_copy: Path) -> None:
    listed = run_json("people", "list", db=fr_copy)
    truth = {p.name for p in FR.iterdir() if p.is_dir()}
    by_identity = {}
    for person in listed:
        identities = {Path(f["path"]).parent.name for f in person["faces"]}
        assert len(identities) == 1, person  # nobody merged with someone else
        assert person["face_count"] == len(person["faces"])
        by_identity[identities.pop()] = person
    # Everyone with two photos or more is a person; Lin-Manuel Miranda has one photo only.
    assert set(by_identity) == truth - {"Lin-Manuel_Miranda"}
    assert by_identity["Barack_Obama"]["face_count"] == 12
    photos = run_json(
        "search", "--person", str(by_identity["Barack_Obama"]["id"]), "--purpose", "test", db=fr_copy
    )["photos"]
    assert photos == sorted(str(p.resolve()) for p in (FR / "Barack_Obama").iterdir())


def test_user_decisions_survive_reclustering(fr_copy: Path) -> None:
    with facefind.open(fr_copy) as ff:
        obama = next(p for p in ff.people.all() if "Barack_Obama" in p.faces[0].path)
        biden = next(p for p in ff.people.all() if "Joe_Biden" in p.faces[0].path)
        ff.consent_add(
            obama.id, given_by="B. Obama", scope="search,results", expires="2099-01-01", evidence="t"
        )
        ff.people.name(obama.id, "Barack Obama")
        # Split three of his faces off (say the user sees a different person there) ...
        split_off = [f.face_id for f in obama.faces[:3]]
        other = ff.people.split(obama.id, split_off)
        # ... take one more out ("not this person"), and hide Biden.
        rejected = obama.faces[3].face_id
        ff.people.remove(obama.id, [rejected])
        ff.people.hide(biden.id)
        for _ in range(2):
            ff.people.recluster()
            after = ff.people.get(obama.id)
            assert after.name == "Barack Obama"
            assert {f.face_id for f in after.faces} == {f.face_id for f in obama.faces[4:]}
            assert {f.face_id for f in ff.people.get(other.id).faces} == set(split_off)
            assert ff.people.get(biden.id).hidden
            assert biden.id not in {p.id for p in ff.people.all()}
            assert biden.id in {p.id for p in ff.people.all(include_hidden=True)}
        # Merging back is a decision too: one person, named, and it stays so.
        merged = ff.people.merge([other.id], into=obama.id, confirm=True)
        assert merged.face_count == 11 and merged.name == "Barack Obama"
        ff.people.recluster()
        assert ff.people.get(obama.id).face_count == 11
        assert all(p.id != other.id for p in ff.people.all(include_hidden=True))


def test_low_quality_faces_do_not_seed_persons(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    center = unit(rng, 1)[0]

    def photo_of_center() -> np.ndarray:
        v = center + 0.08 * unit(rng, 1)[0]
        return (v / np.linalg.norm(v))[None].astype(np.float32)

    with facefind.open(tmp_path / "c.db") as ff:
        blurred = []
        for i in range(4):
            blurred += add_image(ff.catalog, f"/blurred{i}.jpg", photo_of_center())
        with ff.catalog.transaction() as conn:
            conn.exec_driver_sql("update faces set quality = 0.1")  # below min_quality 0.25
        report = ff.people.update()
        assert report.new_persons == 0 and ff.people.all() == []
        sharp = add_image(ff.catalog, "/sharp1.jpg", photo_of_center())
        sharp += add_image(ff.catalog, "/sharp2.jpg", photo_of_center())
        ff.people.update()
        (person,) = ff.people.all()
        # The sharp faces made the person; blurred faces of the same person now join it.
        assert {f.face_id for f in person.faces} == set(sharp + blurred)
        assert person.cover is not None and person.cover.face_id in sharp


def test_bad_requests_say_what_is_wrong_and_change_nothing(fr_copy: Path) -> None:
    before = run_json("people", "list", "--all", db=fr_copy)
    one, two = before[0], before[1]
    cases = [
        (("people", "show", "9999"), "no person with id 9999"),
        (("people", "merge", str(one["id"]), "--into", str(one["id"])), "into itself"),
        (("people", "merge", "9999", "--into", str(one["id"])), "no person with id 9999"),
        (
            (
                "people",
                "split",
                str(two["id"]),
                *[arg for f in two["faces"] for arg in ("--face", str(f["face_id"]))],
            ),
            "a split must leave at least one",
        ),
        (("people", "split", str(one["id"]), "--face", str(two["faces"][0]["face_id"])), "are not in person"),
        (("people", "remove", str(one["id"]), "--face", "424242"), "are not in person"),
        (("people", "name", str(one["id"]), "  "), "cannot be empty"),
        (("people", "name", str(one["id"]), "Somebody"), "needs their consent on record first"),
        (("search", "--person", "9999", "--purpose", "test"), "no person with id 9999"),
    ]
    for args, message in cases:
        proc = run_cli(*args, db=fr_copy)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
    assert run_json("people", "list", "--all", db=fr_copy) == before


def test_cli_round_trip(fr_copy: Path) -> None:
    listed = run_json("people", "list", db=fr_copy)
    kit = next(p for p in listed if "Kit_Harington" in p["faces"][0]["path"])
    consent = ("--by", "K. Harington", "--expires", "2099-12-31", "--evidence", "form 7")
    run_json("consent", "add", str(kit["id"]), *consent, db=fr_copy)
    named = run_json("people", "name", str(kit["id"]), "Kit Harington", db=fr_copy)
    assert named["name"] == "Kit Harington"
    full = run_json("people", "cluster", "--full", db=fr_copy)
    assert full["mode"] == "full" and full["persons"] == len(listed)
    shown = run_json("people", "show", str(kit["id"]), db=fr_copy)
    assert shown["name"] == "Kit Harington" and shown["face_count"] == kit["face_count"]
    hidden = run_json("people", "hide", str(kit["id"]), db=fr_copy)
    assert hidden["hidden"] and kit["id"] not in {p["id"] for p in run_json("people", "list", db=fr_copy)}
    assert run_cli("people", "photos", str(kit["id"]), db=fr_copy).returncode == 1  # no purpose
    assert len(run_json("people", "photos", str(kit["id"]), "--purpose", "album", db=fr_copy)) == 3
    text = run_cli("people", "list", "--all", db=fr_copy, check=True).stdout
    assert "Kit Harington (hidden)" in text
    entries = run_json("audit", "show", db=fr_copy)
    assert [e["details"] for e in entries if e["action"] == "search"] == [{"person": kit["id"], "photos": 3}]
    decisions = [e["details"] for e in entries if e["action"] == "person"]
    assert decisions == [
        {"decision": "name", "person": kit["id"], "name": "Kit Harington"},
        {"decision": "hide", "person": kit["id"]},
    ]


def test_reindexing_a_folder_keeps_persons(tmp_path: Path) -> None:
    db = new_catalog(tmp_path / "c.db")
    photos = tmp_path / "photos"
    shutil.copytree(GLINT / "Tina_Fey", photos / "Tina_Fey")
    first = run_json("index", photos, db=db)
    assert first["people"]["new_persons"] == 1
    (person,) = run_json("people", "list", db=db)
    run_json(
        "consent",
        "add",
        str(person["id"]),
        "--by",
        "T. Fey",
        "--expires",
        "2099-12-31",
        "--evidence",
        "e",
        db=db,
    )
    run_json("people", "name", str(person["id"]), "Tina Fey", db=db)
    shutil.copytree(GLINT / "Halle_Berry", photos / "Halle_Berry")
    second = run_json("index", photos, db=db)
    assert second["people"]["faces_considered"] == len(list((GLINT / "Halle_Berry").iterdir()))
    after = {p["name"]: p for p in run_json("people", "list", db=db)}
    assert after["Tina Fey"]["id"] == person["id"]
    assert after["Tina Fey"]["face_count"] == person["face_count"]
    assert sum(p["face_count"] for p in after.values()) >= 195


def test_large_graphs_cluster_as_well_as_small_ones() -> None:
    """50k faces of 5k identities: label arithmetic must not overflow (it once did, in int32)."""
    from facefind.people.clustering import chinese_whispers, threshold_graph

    rng = np.random.default_rng(5)
    centers = unit(rng, 5000)
    truth = np.repeat(np.arange(5000), 10)
    noise = unit(rng, len(truth))
    faces = centers[truth] * 0.8 + noise * 0.6
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    labels = chinese_whispers(threshold_graph(faces, 0.42, 60))
    assert clustering_scores(labels, truth)["bcubed_f1"] >= 0.99
