"""A simulated reviewer names the people of a labelled folder: the review queue against naming
cluster by cluster with merges. Run through `python bench/people_bench.py --reviewer`.

The folder (lfw_dev) is indexed as one collection (or a catalog already holding it is copied,
`--reviewer-catalog`), then re-clustered in full. Each photo's labelled face is the one nearest
the photo's centre; its identity is the folder name. The goal: every identity with 3+ photos named.
The reviewer answers from the labels (an oracle: it never errs), and both strategies start alike:
going down the people list, it names the largest person whose majority identity is a goal identity
not named yet (a consent record first, as facefind requires; one answer per name).
- "queue": then it answers the review queue (`ff.suggestions`, `ff.review.answer`) page after
  page, yes when the item's identity (a face's label; a person's majority) is the candidate's, no
  otherwise, no to faces that are not a photo's labelled face (strangers in the background), and
  stops after a page without a single yes (or when the queue is empty). One answer per item; each
  call (a bulk yes for a group, or the no's about one candidate) is also counted as one action.
- "clusters": then it goes down the people list once: every person whose majority identity is a
  named goal identity is merged into that named person (one answer each); faces in no person
  stay unnamed (naming them needs the queue or a manual split).
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
    out: dict[int, list[int]] = {}
    with ff.catalog.engine.connect() as conn:
        for face_id, person in conn.execute(sa.select(face_persons.c.face_id, face_persons.c.person_id)):
            out.setdefault(int(person), []).append(int(face_id))
    return out


def _majority(face_ids: list[int], truth: dict[int, str]) -> str | None:
    known = Counter(truth[f] for f in face_ids if f in truth)
    return known.most_common(1)[0][0] if known else None


def _name_first(ff: facefind.FaceFind, truth: dict[int, str], goal: set[str]) -> tuple[dict[str, int], int]:
    """Name the largest person of each goal identity (consent first): identity -> person, answers."""
    named: dict[str, int] = {}
    for person, members in sorted(_persons(ff).items(), key=lambda kv: (-len(kv[1]), kv[0])):
        who = _majority(members, truth)
        if who in goal and who not in named:
            ff.consent_add(person, **CONSENT)
            ff.people.name(person, who)
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
        "identities_named": len(named),
    }


def by_queue(ff: facefind.FaceFind, truth: dict[int, str], goal: set[str], page: int = 200) -> dict:
    started = time.perf_counter()
    named, answers = _name_first(ff, truth, goal)
    actions = answers
    identity_of = {p: who for who, p in named.items()}
    rounds = said_yes = 0
    while True:
        questions = ff.suggestions(limit=page).suggestions
        members = _persons(ff)
        yes: dict[int, list[str]] = {}
        no: dict[int, list[str]] = {}
        for q in questions:
            kind, number = q.item.split(":")
            who = truth.get(int(number)) if kind == "face" else _majority(members.get(int(number), []), truth)
            candidate = identity_of.get(q.candidate) or _majority(members.get(q.candidate, []), truth)
            (yes if who is not None and who == candidate else no).setdefault(q.candidate, []).append(q.item)
        if not questions:
            break
        for candidate, items in yes.items():
            ff.review.answer(items, yes=candidate)
            answers += len(items)
            actions += 1
        for candidate, items in no.items():
            ff.review.answer(items, no=candidate)
            answers += len(items)
            actions += 1
        rounds += 1
        said_yes += sum(len(items) for items in yes.values())
        if not yes:  # a page without a single yes: the reviewer stops
            break
    return {
        **_score(ff, truth, goal, named),
        "answers": answers,
        "actions": actions,
        "rounds": rounds,
        "yes": said_yes,
        "left_in_queue": ff.suggestions(limit=1).total,
        "seconds": round(time.perf_counter() - started, 1),
    }


def by_clusters(ff: facefind.FaceFind, truth: dict[int, str], goal: set[str]) -> dict:
    started = time.perf_counter()
    named, answers = _name_first(ff, truth, goal)
    for person, members in sorted(_persons(ff).items(), key=lambda kv: (-len(kv[1]), kv[0])):
        who = _majority(members, truth)
        if who in named and named[who] != person:
            ff.people.merge([person], named[who], confirm=True)
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
