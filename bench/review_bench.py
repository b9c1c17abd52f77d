"""A simulated reviewer names the people of a labelled folder: the review queue against naming
cluster by cluster with merges and splits. Run through `python bench/people_bench.py --reviewer`.

The folder (lfw_dev) is indexed as one collection (or a catalog already holding it is copied,
`--reviewer-catalog`), then re-clustered in full. Each photo's labelled face is the one nearest
the photo's centre; its identity is the folder name. The goal: every identity with 3+ photos named.
The reviewer answers from the labels (an oracle: it never errs) and sees only what a reviewer
sees: the people list (`ff.people.all()`, bystanders left out), a person's faces, and the
questions of the queue with their faces. Both strategies start alike: going down the people
list, it names the largest person whose majority identity is a goal identity not named yet (a
consent record first, as facefind requires; one answer per name).
- "queue": then it answers the review queue (`ff.suggestions`, `ff.review.answer`) page after
  page: yes when the item's identity (a face's label; a person's majority) is the candidate's, no
  otherwise (faces that are not a photo's labelled face are strangers: no); for "are these one
  person?" questions it picks the faces of the group's majority identity: into that person if it
  is named, else a new person (`together`) that it names if the identity is a goal one, and skips
  the rest. It stops once every goal identity is named, or when only skipped questions are left,
  or after `max_pages` pages. Answers: one per item (a face picked, a skip, a name); each call is
  also counted as one action.
- "clusters": then it goes down the people list once: every person whose majority identity is a
  named goal identity is merged into that named person (one answer each); faces of another goal
  identity inside a named person are split off (one answer per identity), then merged into its
  named person or named (one more answer). Faces in no person are not in the list: they stay
  unnamed.
Reported per strategy: answers (and actions), labelled photos named right and wrong, goal
identities named, answers per photo named.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import sqlalchemy as sa

import facefind
from facefind.catalog.schema import face_persons, faces, images
from facefind.errors import FacefindError

CONSENT = {
    "given_by": "benchmark",
    "scope": "search,results,clustering",
    "expires": "2099-01-01",
    "evidence": "bench",
}
GOAL_PHOTOS = 3


def labelled_faces(ff: facefind.FaceFind, folder: Path) -> dict[int, str]:
    """face id -> identity, for the face nearest the centre of each photo."""
    query = sa.select(
        faces.c.id, images.c.path, images.c.width, images.c.height, faces.c.x, faces.c.y, faces.c.w, faces.c.h
    )
    best: dict[str, tuple[float, int]] = {}
    with ff.catalog.engine.connect() as conn:
        for face_id, path, width, height, x, y, w, h in conn.execute(query.join(images)):
            d = float(np.hypot(x + w / 2 - (width or 0) / 2, y + h / 2 - (height or 0) / 2))
            if d < best.get(path, (np.inf, 0))[0]:
                best[path] = (d, int(face_id))
    root = folder.resolve()
    return {f: Path(p).relative_to(root).parts[0] for p, (_, f) in best.items()}


def _persons(ff: facefind.FaceFind) -> dict[int, list[int]]:
    """Every person's faces, read from the catalog (for scoring, not shown to the reviewer)."""
    out: dict[int, list[int]] = {}
    with ff.catalog.engine.connect() as conn:
        for face_id, person in conn.execute(sa.select(face_persons.c.face_id, face_persons.c.person_id)):
            out.setdefault(int(person), []).append(int(face_id))
    return out


def _listed(ff: facefind.FaceFind) -> dict[int, list[int]]:
    """The people list as a reviewer sees it: person -> its faces, largest first."""
    return {p.id: [f.face_id for f in p.faces] for p in ff.people.all()}


def _majority(face_ids: list[int], truth: dict[int, str]) -> str | None:
    known = Counter(truth[f] for f in face_ids if f in truth)
    return known.most_common(1)[0][0] if known else None


def _name(ff: facefind.FaceFind, person: int, who: str) -> None:
    ff.consent_add(person, **CONSENT)
    ff.people.name(person, who)


def _name_first(ff: facefind.FaceFind, truth: dict[int, str], goal: set[str]) -> tuple[dict[str, int], int]:
    """Name the largest person of each goal identity (consent first): identity -> person, answers."""
    named: dict[str, int] = {}
    for person, members in _listed(ff).items():
        who = _majority(members, truth)
        if who in goal and who not in named:
            _name(ff, person, who)
            named[who] = person
    return named, len(named)


def _score(ff: facefind.FaceFind, truth: dict[int, str], goal: set[str], named: dict[str, int]) -> dict:
    person_of = {f: p for p, members in _persons(ff).items() for f in members}
    identity_of = {p: who for who, p in named.items()}
    right = sum(1 for f, who in truth.items() if who in goal and identity_of.get(person_of.get(f, -1)) == who)
    wrong = sum(
        1
        for f, who in truth.items()
        if person_of.get(f, -1) in identity_of and identity_of[person_of[f]] != who
    )
    goal_photos = sum(1 for who in truth.values() if who in goal)
    return {
        "goal_photos": goal_photos,
        "named_right": right,
        "named_wrong": wrong,
        "identities_named": len(set(named) & goal),
    }


def _identity(
    ff: facefind.FaceFind,
    person: int,
    named: dict[int, str],
    seen: dict[int, str | None],
    truth: dict[int, str],
) -> str | None:
    """Who a person is, as a reviewer looking at it would say: its name, or its faces' majority."""
    if person not in seen:
        seen[person] = named.get(person) or _majority([f.face_id for f in ff.people.get(person).faces], truth)
    return seen[person]


def by_queue(
    ff: facefind.FaceFind, truth: dict[int, str], goal: set[str], page: int = 200, max_pages: int = 40
) -> dict:
    started = time.perf_counter()
    named, answers = _name_first(ff, truth, goal)
    actions = answers
    counts: Counter[str] = Counter()
    rounds = 0

    def call(items: list[str], **how: object) -> bool:
        """One answer call; False if the question went stale (its person merged away on this page)."""
        nonlocal answers, actions
        try:
            ff.review.answer(items, **how)  # type: ignore[arg-type]
        except FacefindError:
            return False
        answers += len(items)
        actions += 1
        counts[next(k for k, v in how.items() if v not in (None, False))] += len(items)
        return True

    while rounds < max_pages and not goal <= set(named):
        questions = ff.suggestions(limit=page).suggestions
        if not questions or questions[0].skipped:
            break  # nothing left but questions skipped before
        rounds += 1
        identity_of = {p: who for who, p in named.items()}
        seen: dict[int, str | None] = {}  # person -> identity, for this page

        yes: dict[int, list[str]] = {}
        no: dict[int, list[str]] = {}
        skip: list[str] = []
        together: list[tuple[str, list[str]]] = []
        for q in questions:
            if q.kind == "together":
                faces = [int(i.split(":")[1]) for i in q.items]
                who = _majority(faces, truth)
                picked = [f"face:{f}" for f in faces if who is not None and truth.get(f) == who]
                if who in named:
                    yes.setdefault(named[who], []).extend(picked)
                elif who in goal and len(picked) >= 2:
                    together.append((who, picked))
                else:
                    skip.append(q.item)
                continue
            kind, number = q.item.split(":")
            try:
                who = (
                    truth.get(int(number))
                    if kind == "face"
                    else _identity(ff, int(number), identity_of, seen, truth)
                )
                candidate = (
                    _identity(ff, q.candidate, identity_of, seen, truth) if q.candidate is not None else None
                )
            except FacefindError:
                continue  # merged away by an answer on this page
            (yes if who is not None and who == candidate else no).setdefault(q.candidate, []).append(q.item)  # type: ignore[arg-type]
        for person, items in yes.items():
            call(sorted(set(items)), yes=person)
        for person, items in no.items():
            call(items, no=person)
        if skip:
            call(skip, skip=True)
        for who, items in together:
            if who in named:
                call(items, yes=named[who])
            elif call(items, together=True):
                person = ff.catalog.face_rows([int(items[0].split(":")[1])])[
                    int(items[0].split(":")[1])
                ].person_id
                _name(ff, int(person), who)  # type: ignore[arg-type]
                named[who] = int(person)  # type: ignore[arg-type]
                answers += 1
                actions += 1
    return {
        **_score(ff, truth, goal, named),
        "answers": answers,
        "actions": actions,
        "pages": rounds,
        "answered": dict(counts),
        "left_in_queue": ff.suggestions(limit=1).total,
        "seconds": round(time.perf_counter() - started, 1),
    }


def by_clusters(ff: facefind.FaceFind, truth: dict[int, str], goal: set[str]) -> dict:
    started = time.perf_counter()
    named, answers = _name_first(ff, truth, goal)
    for person, members in _listed(ff).items():
        who = _majority(members, truth)
        if who in named and named[who] != person:
            ff.people.merge([person], named[who], confirm=True)
            answers += 1
    # Faces of another goal identity inside a named person: split off, then merged or named.
    for who_here, person in sorted(named.items()):
        by_identity: dict[str, list[int]] = {}
        for face in [f.face_id for f in ff.people.get(person).faces]:
            other = truth.get(face)
            if other in goal and other != who_here:
                by_identity.setdefault(other, []).append(face)  # type: ignore[arg-type]
        for other, faces_ in sorted(by_identity.items()):
            if len(faces_) == len(ff.people.get(person).faces):
                continue
            split = ff.people.split(person, faces_).id
            answers += 1
            if other in named:
                ff.people.merge([split], named[other], confirm=True)
            else:
                _name(ff, split, other)
                named[other] = split
            answers += 1
    return {
        **_score(ff, truth, goal, named),
        "answers": answers,
        "actions": answers,
        "seconds": round(time.perf_counter() - started, 1),
    }


def simulate(folder: Path, workdir: Path, catalog: Path | None = None) -> dict:
    """Both strategies on fresh copies of one indexed, fully re-clustered catalog."""
    base = workdir / "reviewer-base.db"
    if catalog is not None:
        shutil.copy(catalog, base)
    else:
        with facefind.open(base) as ff:
            ff.create_collection("lfw_dev", owner="benchmark", basis="own", retention="30d")
            ff.index(folder, collection="lfw_dev")
    with facefind.open(base) as ff:
        ff.people.recluster()
        truth = labelled_faces(ff, folder)
    photos = Counter(truth.values())
    goal = {who for who, n in photos.items() if n >= GOAL_PHOTOS}
    out: dict = {"photos": len(truth), "identities": len(photos), "goal_identities": len(goal)}
    for name, strategy in (("queue", by_queue), ("clusters", by_clusters)):
        db = workdir / f"reviewer-{name}.db"
        shutil.copy(base, db)
        with facefind.open(db, actor="simulated-reviewer") as ff:
            result = strategy(ff, truth, goal)
        named = max(result["named_right"], 1)
        result["answers_per_photo_named"] = round(result["answers"] / named, 3)
        result["actions_per_photo_named"] = round(result["actions"] / named, 3)
        out[name] = result
    return out
