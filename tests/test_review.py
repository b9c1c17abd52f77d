"""The review queue: questions ranked by similarity, answers that stick and are audited."""

from __future__ import annotations

from pathlib import Path

import pytest

import facefind
from facefind.errors import FacefindError, InvalidValue, Refused

from .conftest import run_cli, run_json

CONSENT = {
    "given_by": "subject",
    "scope": "search,results,clustering",
    "expires": "2099-01-01",
    "evidence": "t",
}


def _named(ff: facefind.FaceFind, folder: str, name: str) -> int:
    person = next(p for p in ff.people.all() if f"/{folder}/" in p.faces[0].path)
    ff.consent_add(person.id, **CONSENT)
    ff.people.name(person.id, name)
    return person.id


def _leave_out(ff: facefind.FaceFind, face_ids: list[int]) -> None:
    """As if clustering had left these faces in no person (a strict threshold, a poor photo)."""
    with ff.catalog.transaction() as conn:
        conn.exec_driver_sql(f"delete from face_persons where face_id in ({','.join(map(str, face_ids))})")


def _in(ff: facefind.FaceFind, person: int) -> set[int]:
    return {f.face_id for f in ff.people.get(person).faces}


def test_faces_left_out_are_asked_about_and_answers_stick(fr_copy: Path) -> None:
    with facefind.open(fr_copy) as ff:
        obama = _named(ff, "Barack_Obama", "Barack Obama")
        loose = sorted(_in(ff, obama))[:3]
        _leave_out(ff, loose)
        page = ff.suggestions(limit=50)
        about = {s.item: s for s in page.suggestions}
        for face in loose:
            question = about[f"face:{face}"]
            assert question.kind == "face" and question.candidate == obama
            assert question.candidate_name == "Barack Obama"
            assert question.fmr < 1e-3 and question.similarity > 0.5  # the calibrated rate, not a guess
        sims = [s.similarity for s in page.suggestions]
        assert sims == sorted(sims, reverse=True)

        # Bulk yes for two, no for the third.
        yes = ff.review.answer([f"face:{loose[0]}", f"face:{loose[1]}"], yes=obama)
        assert [a.moved_faces for a in yes] == [[loose[0]], [loose[1]]]
        ff.review.answer([f"face:{loose[2]}"], no=obama)
        assert {loose[0], loose[1]} <= _in(ff, obama) and loose[2] not in _in(ff, obama)
        for _ in range(2):  # a full re-cluster, twice, does not undo either answer
            ff.people.recluster()
            assert {loose[0], loose[1]} <= _in(ff, obama) and loose[2] not in _in(ff, obama)
            faces = {f.face_id: f for f in ff.people.get(obama).faces}
            assert faces[loose[0]].pinned and faces[loose[1]].pinned
            asked = ff.suggestions(limit=100).suggestions
            assert (f"face:{loose[2]}", obama) not in {(s.item, s.candidate) for s in asked}

        decisions = [e.details for e in ff.audit.entries() if e.action == "person"]
        reviews = [d for d in decisions if d["decision"] == "review"]
        assert reviews == [
            {
                "decision": "review",
                "answer": "yes",
                "person": obama,
                "items": [f"face:{loose[0]}", f"face:{loose[1]}"],
            },
            {"decision": "review", "answer": "no", "person": obama, "items": [f"face:{loose[2]}"]},
        ]
        views = [e.details for e in ff.audit.entries() if e.action == "view" and "review" in e.details]
        assert [f"face:{loose[0]}", obama] in views[0]["review"]


def test_unnamed_persons_are_asked_about_and_merge_on_yes(fr_copy: Path) -> None:
    with facefind.open(fr_copy) as ff:
        obama = _named(ff, "Barack_Obama", "Barack Obama")
        faces = sorted(_in(ff, obama))
        # Clustering made two persons of him: three of his faces in an unnamed person of their own.
        other = ff.people._new_person()
        with ff.catalog.transaction() as conn:
            conn.exec_driver_sql(
                f"update face_persons set person_id = {other}, pinned = 0 "
                f"where face_id in ({','.join(map(str, faces[:3]))})"
            )
        (question,) = [s for s in ff.suggestions(limit=100).suggestions if s.item == f"person:{other}"]
        assert question.kind == "person" and question.candidate == obama and question.face_count == 3
        # "No" keeps them apart, through re-clustering, and is not asked again.
        ff.review.answer([f"person:{other}"], no=obama)
        ff.people.recluster()
        assert set(faces[:3]).isdisjoint(_in(ff, obama))
        assert f"person:{other}" not in {s.item for s in ff.suggestions(limit=100).suggestions}


def test_yes_on_a_person_merges_it_and_skip_moves_it_last(fr_copy: Path) -> None:
    with facefind.open(fr_copy) as ff:
        obama = _named(ff, "Barack_Obama", "Barack Obama")
        faces = sorted(_in(ff, obama))
        other = ff.people._new_person()
        with ff.catalog.transaction() as conn:
            conn.exec_driver_sql(
                f"update face_persons set person_id = {other}, pinned = 0 "
                f"where face_id in ({','.join(map(str, faces[:2]))})"
            )
        _leave_out(ff, [faces[2]])
        first = ff.suggestions(limit=100).suggestions
        assert not first[0].skipped
        ff.review.answer([first[0].item], skip=True)
        after = ff.suggestions(limit=100).suggestions
        assert after[-1].item == first[0].item and after[-1].skipped
        answered = ff.review.answer([f"person:{other}"], yes=obama)
        assert answered[0].moved_faces == faces[:2]
        ff.people.recluster()
        assert set(faces[:2]) <= _in(ff, obama)
        assert other not in {p.id for p in ff.people.all(include_hidden=True)}


def test_pages_follow_one_another_without_repeats(fr_copy: Path) -> None:
    with facefind.open(fr_copy) as ff:
        obama = _named(ff, "Barack_Obama", "Barack Obama")
        _named(ff, "Joe_Biden", "Joe Biden")
        _leave_out(ff, sorted(_in(ff, obama))[:5])
        everything = [(s.item, s.candidate) for s in ff.suggestions(limit=100).suggestions]
        assert len(everything) >= 5
        seen, after = [], None
        while True:
            page = ff.suggestions(limit=2, after=after)
            seen += [(s.item, s.candidate) for s in page.suggestions]
            if page.next is None:
                break
            after = page.next
        assert seen == everything
        with pytest.raises(InvalidValue, match="not a page key"):
            ff.suggestions(after="nonsense")


def test_bad_answers_say_what_to_do_and_change_nothing(fr_copy: Path) -> None:
    with facefind.open(fr_copy) as ff:
        obama = _named(ff, "Barack_Obama", "Barack Obama")
        face = sorted(_in(ff, obama))[0]
        before = _in(ff, obama)
        cases = [
            (lambda: ff.review.answer([f"face:{face}"]), FacefindError, "exactly one of"),
            (lambda: ff.review.answer(["12"], yes=obama), InvalidValue, "face:ID or person:ID"),
            (
                lambda: ff.review.answer([f"person:{obama}"], yes=obama),
                FacefindError,
                "the person asked about",
            ),
            (lambda: ff.review.answer(["face:999999"], yes=obama), FacefindError, "no face 999999"),
            (
                lambda: ff.review.answer([f"face:{face}"], yes=999999),
                FacefindError,
                "no person with id 999999",
            ),
        ]
        for call, kind, message in cases:
            with pytest.raises(kind, match=message):
                call()
        assert _in(ff, obama) == before
        # A person whose consent was withdrawn is a DPO's: no reviewer answer changes them.
        (record,) = ff.consents(obama)
        ff.consent_withdraw(record.id)
        other = next(p for p in ff.people.all() if "/Joe_Biden/" in p.faces[0].path).faces[0].face_id
        with pytest.raises(Refused, match="a DPO handles them"):
            ff.review.answer([f"face:{other}"], no=obama)
        with pytest.raises(FacefindError, match=f"no face {face} that you may see"):
            ff.review.answer([f"face:{face}"], skip=True)  # his faces are withheld now


def test_cli_review_and_answer(fr_copy: Path) -> None:
    with facefind.open(fr_copy) as ff:
        obama = _named(ff, "Barack_Obama", "Barack Obama")
        loose = sorted(_in(ff, obama))[:2]
        _leave_out(ff, loose)
    page = run_json("people", "review", "--limit", "5", db=fr_copy)
    items = [s["item"] for s in page["suggestions"] if s["candidate"] == obama]
    assert set(items) >= {f"face:{f}" for f in loose}
    text = run_cli("people", "review", db=fr_copy, check=True).stdout
    assert f"is this person {obama} (Barack Obama)?" in text
    assert "facefind people answer" in text and f"--yes {obama}" in text
    answered = run_json(
        "people", "answer", f"face:{loose[0]}", f"face:{loose[1]}", "--yes", str(obama), db=fr_copy
    )
    assert [a["answer"] for a in answered] == ["yes", "yes"]
    bad = run_cli("people", "answer", f"face:{loose[0]}", db=fr_copy)
    assert (
        bad.returncode == 1 and "exactly one of --yes PERSON, --no PERSON, --skip or --together" in bad.stderr
    )
    shown = run_json("people", "show", str(obama), db=fr_copy)
    assert set(loose) <= {f["face_id"] for f in shown["faces"]}


def test_queue_answers_and_pages_on_both_databases(backend_db: str | Path) -> None:
    """The queue's and the paged list's SQL on SQLite and PostgreSQL, with made-up embeddings."""
    import numpy as np

    from .synthetic import add_image, unit

    rng = np.random.default_rng(7)
    centre = unit(rng, 1)[0]

    def like_centre() -> np.ndarray:
        v = centre + 0.2 * unit(rng, 1)[0]
        return (v / np.linalg.norm(v))[None].astype(np.float32)

    with facefind.open(backend_db) as ff:
        ff.create_collection("default", owner="t", basis="own", retention="1y")
        for i in range(3):
            add_image(ff.catalog, f"/anna/{i}.jpg", like_centre())
        other = unit(rng, 1)[0]
        for i in range(2):  # somebody else, twice
            v = other + 0.2 * unit(rng, 1)[0]
            add_image(ff.catalog, f"/other/{i}.jpg", (v / np.linalg.norm(v))[None].astype(np.float32))
        ff.people.update()
        (anna,) = [p for p in ff.people.all() if p.face_count == 3]
        ff.consent_add(anna.id, **CONSENT)
        ff.people.name(anna.id, "Anna")
        (late,) = add_image(ff.catalog, "/anna/late.jpg", like_centre())
        ff.people.update()  # until clustering saw it, a new face is asked about by nobody
        _leave_out(ff, [late])
        (question,) = [s for s in ff.suggestions().suggestions if s.item == f"face:{late}"]
        assert question.candidate == anna.id
        ff.review.answer([f"face:{late}"], skip=True)
        ff.review.answer([f"face:{late}"], no=anna.id)
        ff.people.recluster()
        assert late not in _in(ff, anna.id)
        first, following = ff.persons_page(limit=1)
        assert [p.id for p in first] == [anna.id] and following is not None
        rest, last = ff.persons_page(limit=100, after=following)
        assert len(rest) == 1 and rest[0].id != anna.id and rest[0].face_count == 2 and last is None
        # A "yes" for one face of a photo takes Anna off the photo's other face; "together".
        pair = add_image(ff.catalog, "/anna/pair.jpg", np.vstack([like_centre(), like_centre()]))
        ff.people.update()
        (placed,) = set(pair) & _in(ff, anna.id)
        (other_face,) = set(pair) - {placed}
        ff.review.answer([f"face:{other_face}"], yes=anna.id)
        assert other_face in _in(ff, anna.id) and placed not in _in(ff, anna.id)
        newcomer = unit(rng, 1)[0]
        twins = [
            add_image(ff.catalog, f"/new/{i}.jpg", newcomer[None].astype(np.float32))[0] for i in range(2)
        ]
        ff.people.update()  # until clustering saw them, new faces are shown to nobody
        _leave_out(ff, twins)
        (made,) = {a.person for a in ff.review.answer([f"face:{f}" for f in twins], together=True)}
        assert made is not None and _in(ff, made) == set(twins)


def test_look_alike_faces_in_no_person_are_asked_together_and_become_a_person(fr_copy: Path) -> None:
    """An identity none of whose faces is in a person (its photos link only at the review's looser
    rate): the queue asks whether its faces are one person; yes makes a new person, to name."""
    with facefind.open(fr_copy) as ff:
        kit = next(p for p in ff.people.all() if "/Kit_Harington/" in p.faces[0].path)
        faces = sorted(_in(ff, kit.id))
        _leave_out(ff, faces)
        page = ff.suggestions(limit=100)
        (question,) = [
            s
            for s in page.suggestions
            if s.kind == "together" and set(s.items) & {f"face:{f}" for f in faces}
        ]
        assert question.candidate is None and question.candidate_face is None
        assert {f"face:{f}" for f in faces} <= set(question.items) and len(question.faces) == len(
            question.items
        )
        assert question.similarity > 0.5 and question.fmr < 1e-3
        with pytest.raises(FacefindError, match="exactly one of"):
            ff.review.answer(question.items, together=True, skip=True)
        placed = next(iter(_in(ff, next(p.id for p in ff.people.all()))))
        with pytest.raises(FacefindError, match="in a person already"):
            ff.review.answer([f"face:{faces[0]}", f"face:{placed}"], together=True)
        answers = ff.review.answer([f"face:{f}" for f in faces], together=True)
        (person,) = {a.person for a in answers}
        assert person is not None and _in(ff, person) == set(faces)
        assert all(f.pinned for f in ff.people.get(person).faces)
        ff.people.recluster()
        assert _in(ff, person) == set(faces)
        assert not [
            s
            for s in ff.suggestions(limit=100).suggestions
            if s.kind == "together" and set(s.items) & {f"face:{f}" for f in faces}
        ]
        (entry,) = [e.details for e in ff.audit.entries() if e.details.get("answer") == "together"]
        assert entry["person"] == person and entry["items"] == [f"face:{f}" for f in faces]


def test_a_face_clustering_put_in_the_wrong_named_person_is_asked_about(fr_copy: Path) -> None:
    with facefind.open(fr_copy) as ff:
        obama = _named(ff, "Barack_Obama", "Barack Obama")
        biden = _named(ff, "Joe_Biden", "Joe Biden")
        stray = min(_in(ff, biden))
        with ff.catalog.transaction() as conn:  # as if a run had put one of Biden's faces in Obama
            conn.exec_driver_sql(
                f"update face_persons set person_id = {obama}, pinned = 0 where face_id = {stray}"
            )
        questions = {s.item: s for s in ff.suggestions(limit=100).suggestions}
        question = questions[f"face:{stray}"]
        assert (question.kind, question.candidate, question.candidate_name) == ("move", biden, "Joe Biden")
        assert not [s for s in questions.values() if s.kind == "move" and s.item != f"face:{stray}"]
        ff.review.answer([f"face:{stray}"], yes=biden)
        assert stray in _in(ff, biden) and stray not in _in(ff, obama)
        ff.people.recluster()
        assert stray in _in(ff, biden)
        assert f"face:{stray}" not in {s.item for s in ff.suggestions(limit=100).suggestions}
