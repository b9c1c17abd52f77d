"""The review queue: questions that let a reviewer name many faces with few answers.

A question asks whether an item is a person, with the similarity of the closest pair of faces
(one on each side) and the false match rate it implies (calibration.py):
- "face": a good face in no person, against the most similar named person ("is this Anna?");
- "person": an unnamed person (clustering made it, often of one or two faces) against the most
  similar named person: "yes" merges it into the named one;
- "merge": two unnamed persons that may be one (among the MERGE_POOL largest unnamed persons, so
  the question stays cheap at 100k persons): "yes" merges the smaller into the larger;
- "move": a face clustering placed in a named person whose nearest face of another named person
  is more similar than any of its own person's ("is this Beth, not Anna?"; among the MOVE_POOL
  most recent): "yes" moves it, pinned;
- "together": faces in no person that look more like each other than like any named person, and
  no named person's face reaches the similarity at which clustering links (a face and its nearest
  such faces, each face in one question; among the TOGETHER_POOL best): "yes" (`together`) makes
  the faces the reviewer picks among them a new person, to name next. Clustering links faces at a
  false match rate that shrinks with the catalog (persons.py); a person whose few photos link
  only at the review's looser rate is named this way.
Only named persons with an active consent are offered (naming needs one; a "yes" puts faces under
it), never persons withheld by consent, hidden by a reviewer, or faces no answer may show.
Questions whose similarity is below the threshold of `max_fmr` (default REVIEW_MAX_FMR) are not
asked. Order: questions not skipped first, most similar first; pages are keyset pages (`after`
is the last question's key): the ranking is computed over embeddings each call (like clustering,
vectorised), but faces, paths and names are read for one page only.

Answers: "yes" places faces in the person, pinned (clustering never moves them again; another
face of the same photo leaves that person); "no" is a rejection (face_rejections: clustering
never gives those faces to that person, and the queue never asks again); "skip" sends the item
after every question not skipped. Every answer is audited (a "person" decision "review"), and
a bulk answer (several items) is one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import faiss
import numpy as np

from .. import policy
from ..accountability import consent
from ..calibration import Calibration
from ..catalog import persons as store
from ..catalog import review as review_store
from ..catalog.core import FaceRow
from ..errors import FacefindError, InvalidValue, NotFound
from ..limits import is_id
from ..results import Answer, Box, PersonFace, Suggestion, SuggestionPage
from .persons import People, _Snapshot

REVIEW_MAX_FMR = 1e-2  # the loosest the service allows a search (policy.LOOSEST_FMR)
NEIGHBOURS = 10  # nearest candidate faces looked at per face
MERGE_POOL = 2000  # unnamed persons (largest first) among which merges are suggested
MOVE_POOL = 20_000  # faces in named persons (most recent first) checked against other named persons
TOGETHER_POOL = 20_000  # faces in no person (best quality first) among which look-alikes are grouped
SHOWN_FACES = 4  # faces of an item in a question


@dataclass(frozen=True)
class _Question:
    kind: str
    subject: str  # "face" or "person"
    subject_id: int
    candidate: int
    similarity: float  # rounded to 4 places: the key must sort as shown
    candidate_face: int
    skipped: bool
    members: tuple[int, ...] = ()  # "together": the faces asked about besides the subject

    @property
    def item(self) -> str:
        return f"{self.subject}:{self.subject_id}"

    @property
    def key(self) -> tuple[int, float, str, int, int]:
        return (int(self.skipped), -self.similarity, self.subject, self.subject_id, self.candidate)

    def cursor(self) -> str:
        return f"{int(self.skipped)}:{self.similarity:.4f}:{self.item}:{self.candidate}"


def parse_item(item: str) -> tuple[str, int]:
    """ "face:12" -> ("face", 12); "person:7" -> ("person", 7)."""
    kind, _, number = item.strip().partition(":")
    if kind not in ("face", "person") or not number.isdigit() or not is_id(int(number)):
        raise InvalidValue(
            f"{item!r} is not a review item; give face:ID or person:ID as `facefind people review` lists them"
        )
    return kind, int(number)


def _parse_cursor(after: str) -> tuple[int, float, str, int, int]:
    try:
        skipped, similarity, subject, subject_id, candidate = after.split(":")
        return (int(skipped), -float(similarity), subject, int(subject_id), int(candidate))
    except ValueError:
        raise InvalidValue(
            f"{after!r} is not a page key; give the `next` of the previous page, or nothing for the first"
        ) from None


class ReviewQueue:
    def __init__(self, people: People, calibration: Calibration, log: Callable[[str, dict], object]) -> None:
        self.people, self.calibration, self._log = people, calibration, log
        self.catalog = people.catalog

    # questions -------------------------------------------------------------------------------
    def page(
        self, *, after: str | None = None, limit: int = 20, max_fmr: float = REVIEW_MAX_FMR
    ) -> SuggestionPage:
        """One page of questions, best first, after the question whose key is `after`."""
        questions = sorted(self.questions(max_fmr), key=lambda q: q.key)
        start = 0
        if after:
            cut = _parse_cursor(after)
            start = next((i for i, q in enumerate(questions) if q.key > cut), len(questions))
        chosen = questions[start : start + limit]
        more = start + limit < len(questions)
        return SuggestionPage(
            suggestions=self._shown(chosen),
            next=chosen[-1].cursor() if chosen and more else None,
            total=len(questions),
            fmr_floor=self.calibration.fmr_floor,
        )

    def questions(self, max_fmr: float = REVIEW_MAX_FMR) -> list[_Question]:
        """Every question of the queue, unordered (see the module docstring)."""
        threshold = self.calibration.threshold(max_fmr)
        snap = self.people._snapshot()
        hidden = policy.hidden_faces(self.catalog, "results")
        usable = snap.good & ~np.isin(snap.ids, hidden)
        withheld = consent.withheld_persons(self.catalog, "results")
        left_out = withheld | store.hidden(self.catalog, self.people.model_id)
        named = store.named(self.catalog, self.people.model_id)
        consented = {c.person_id for c in consent.all_(self.catalog) if c.active}
        nameable = (named & consented) - left_out
        skipped = review_store.skipped(self.catalog)
        rejected = snap.rejected

        in_named = usable & np.isin(snap.person, list(nameable))
        placed = snap.person >= 0
        # Bystanders (people/background.py) are never asked about: a lone small face in the crowd.
        bystanders = self.people.background_persons()
        unnamed = usable & placed & ~np.isin(snap.person, list(named | left_out | bystanders))
        out: list[_Question] = []

        # Faces in no person: against named persons, or, where another face in no person is more
        # similar than any named person's face, together with such faces (each face asked once).
        loose = np.flatnonzero(usable & ~placed)
        background = self.people.background_faces(snap.ids[loose].tolist())
        loose = np.array([f for f in loose if int(snap.ids[f]) not in background], dtype=np.int64)
        named_best = _best(snap, loose, np.flatnonzero(in_named), threshold)
        pool = np.sort(loose[np.argsort(-snap.quality[loose], kind="stable")[:TOGETHER_POOL]])
        alike = _neighbours(snap, pool, pool, threshold)  # exact: O(pool^2), hence the cap
        link = self.people.threshold
        near = {f: named_best[f][1] if f in named_best else -2.0 for f in alike}
        closer = {f for f, h in alike.items() if near[f] < link and h[0][1] > near[f]}
        together, grouped = _together(snap, {f: h for f, h in alike.items() if f in closer}, closer, skipped)
        out += together
        for face, (person, sim, other) in named_best.items():
            fid = int(snap.ids[face])
            if face not in grouped and (fid, person) not in rejected:
                out.append(_Question("face", "face", fid, person, sim, other, ("face", fid) in skipped))

        # Faces a run placed in a named person that look more like another named person.
        inside = np.flatnonzero(in_named & ~snap.pinned)[-MOVE_POOL:]  # the most recent
        out += _moves(snap, inside, np.flatnonzero(in_named), threshold, skipped)

        # Unnamed persons, against named persons.
        subjects = np.flatnonzero(unnamed)
        out += self._person_questions(snap, subjects, np.flatnonzero(in_named), threshold, "person", skipped)

        # Unnamed persons that may be one: among the MERGE_POOL largest.
        persons, counts = np.unique(snap.person[unnamed], return_counts=True)
        order = np.lexsort((persons, -counts))[:MERGE_POOL]
        pool = np.flatnonzero(unnamed & np.isin(snap.person, persons[order]))
        size = dict(zip(persons.tolist(), counts.tolist(), strict=True))
        for q in self._person_questions(snap, pool, pool, threshold, "merge", skipped):
            # Each pair once: the smaller person asks about the larger.
            if (size[q.subject_id], q.subject_id) < (size[q.candidate], q.candidate):
                out.append(q)
        return out

    def _person_questions(
        self,
        snap: _Snapshot,
        faces: np.ndarray,
        pool: np.ndarray,
        threshold: float,
        kind: str,
        skipped: set[tuple[str, int]],
    ) -> list[_Question]:
        """For each person owning some of `faces`: the most similar other person owning a face
        in `pool`, unless a reviewer said the two are not one (a face of either rejects the other)."""
        apart = _apart(snap)
        pairs: dict[tuple[int, int], tuple[float, int]] = {}
        for face, hits in _neighbours(snap, faces, pool, threshold).items():
            me = int(snap.person[face])
            for other, sim in hits:
                them = int(snap.person[other])
                if them != me and sim > pairs.get((me, them), (-2.0, 0))[0]:
                    pairs[(me, them)] = (sim, int(snap.ids[other]))
        best: dict[int, tuple[float, int, int]] = {}
        for (me, them), (sim, other_face) in pairs.items():
            if (me, them) not in apart and sim > best.get(me, (-2.0, 0, 0))[0]:
                best[me] = (sim, them, other_face)
        return [
            _Question(kind, "person", me, them, round(sim, 4), other_face, ("person", me) in skipped)
            for me, (sim, them, other_face) in best.items()
        ]

    def _shown(self, questions: list[_Question]) -> list[Suggestion]:
        """The page's questions with their faces: rows read for this page only."""
        persons = sorted({q.subject_id for q in questions if q.subject == "person"})
        members = self.people._faces_of(persons)
        loose = [f for q in questions if q.subject == "face" for f in (q.subject_id, *q.members)] + [
            q.candidate_face for q in questions
        ]
        rows = self.catalog.face_rows(loose)
        candidates = {q.candidate for q in questions}
        names = store.names(self.catalog, candidates)
        out = []
        for q in questions:
            every = members.get(q.subject_id, []) if q.subject == "person" else []
            if q.subject == "face":
                every = [_face(rows[f]) for f in (q.subject_id, *q.members) if f in rows]
            other = rows.get(q.candidate_face)
            together = q.kind == "together"
            out.append(
                Suggestion(
                    item=q.item,
                    kind=q.kind,
                    items=[f"face:{f.face_id}" for f in every] if together else [q.item],
                    candidate=None if together else q.candidate,
                    candidate_name=names.get(q.candidate),
                    similarity=q.similarity,
                    fmr=self.calibration.fmr(q.similarity),
                    skipped=q.skipped,
                    face_count=len(every),
                    faces=every if together else every[:SHOWN_FACES],
                    candidate_face=_face(other) if other and not together else None,
                )
            )
        return out

    # answers ---------------------------------------------------------------------------------
    def answer(
        self,
        items: list[str],
        *,
        yes: int | None = None,
        no: int | None = None,
        skip: bool = False,
        together: bool = False,
    ) -> list[Answer]:
        """Answer questions about `items` ("face:12", "person:7"): they are person `yes`, they are
        not person `no`, ask again later (`skip`), or these faces in no person are one new person
        (`together`). Several items: one bulk answer, one audit entry."""
        if sum((yes is not None, no is not None, skip, together)) != 1:
            raise FacefindError("answer with exactly one of --yes PERSON, --no PERSON, --skip or --together")
        subjects = list(dict.fromkeys(parse_item(i) for i in items))
        if not subjects:
            raise FacefindError(
                "name at least one item (face:ID or person:ID) as `facefind people review` lists them"
            )
        hidden = set(policy.hidden_faces(self.catalog, "results").tolist())
        for kind, number in subjects:
            if kind == "person":
                self._decidable(number)
            elif number in hidden or number not in self.catalog.face_rows([number]):
                raise NotFound(
                    f"no face {number} that you may see; `facefind people review` lists the questions"
                )
        if together:
            return self._together(subjects)
        if skip:
            review_store.skip(self.catalog, subjects)
            answers = [
                Answer(item=f"{k}:{n}", answer="skip", person=None, moved_faces=[]) for k, n in subjects
            ]
            self._log("review", {"answer": "skip", "items": [a.item for a in answers]})
            return answers
        person = int(yes if yes is not None else no)  # type: ignore[arg-type]
        self._decidable(person)
        if any(k == "person" and n == person for k, n in subjects):
            raise FacefindError(f"person {person} is the person asked about; name another person")
        answers = [
            self._yes(k, n, person) if yes is not None else self._no(k, n, person) for k, n in subjects
        ]
        review_store.unskip(self.catalog, subjects)
        verdict = "yes" if yes is not None else "no"
        self._log("review", {"answer": verdict, "person": person, "items": [a.item for a in answers]})
        return answers

    def _together(self, subjects: list[tuple[str, int]]) -> list[Answer]:
        """Faces in no person, two or more, of different photos, become one new person (pinned)."""
        faces = sorted(n for _, n in subjects)
        rows = self.catalog.face_rows(faces)
        if any(k != "face" for k, _ in subjects) or len(faces) < 2:
            raise FacefindError("--together takes two or more faces (face:ID) that are in no person")
        placed = [f for f in faces if rows[f].person_id is not None]
        if placed:
            raise FacefindError(
                f"face(s) {', '.join(map(str, placed))} are in a person already; answer --yes PERSON "
                f"to put faces there, or leave those out"
            )
        if len({rows[f].image_id for f in faces}) < len(faces):
            raise FacefindError("two of those faces are in one photo: a person is once in a photo")
        person = self.people._new_person()
        review_store.place(self.catalog, person, faces)
        answers = [Answer(item=f"face:{f}", answer="yes", person=person, moved_faces=[f]) for f in faces]
        self._log("review", {"answer": "together", "person": person, "items": [a.item for a in answers]})
        return answers

    def _decidable(self, person: int) -> None:
        """As `People._decidable`, without reading the person's faces (a bulk answer checks many)."""
        self.people._row(person)
        policy.require_shown(self.catalog, person, "reviewed")

    def _yes(self, kind: str, number: int, person: int) -> Answer:
        if kind == "face":
            review_store.place(self.catalog, person, [number])
            return Answer(item=f"face:{number}", answer="yes", person=person, moved_faces=[number])
        moved = sorted(r.id for r in store.faces_of(self.catalog, [number]))
        self.people.merge([number], person, confirm=True)  # the reviewer said they are one person
        return Answer(item=f"person:{number}", answer="yes", person=person, moved_faces=moved)

    def _no(self, kind: str, number: int, person: int) -> Answer:
        if kind == "face":
            current = self.catalog.face_rows([number])[number].person_id
            if current == person:
                store.reject(self.catalog, person, [number])
            else:
                review_store.forbid(self.catalog, person, [number])
            return Answer(item=f"face:{number}", answer="no", person=person, moved_faces=[])
        # Two persons said apart: neither's faces ever go to the other.
        review_store.forbid(self.catalog, person, [r.id for r in store.faces_of(self.catalog, [number])])
        review_store.forbid(self.catalog, number, [r.id for r in store.faces_of(self.catalog, [person])])
        return Answer(item=f"person:{number}", answer="no", person=person, moved_faces=[])


def _apart(snap: _Snapshot) -> set[tuple[int, int]]:
    """Pairs of persons a reviewer said are not one: a face of one rejects the other (both ways)."""
    out: set[tuple[int, int]] = set()
    for face_id, person in snap.rejected:
        pos = int(np.searchsorted(snap.ids, face_id))
        if pos < len(snap.ids) and snap.ids[pos] == face_id and snap.person[pos] >= 0:
            owner = int(snap.person[pos])
            out.update({(owner, person), (person, owner)})
    return out


def _neighbours(
    snap: _Snapshot, faces: np.ndarray, pool: np.ndarray, threshold: float, k: int = NEIGHBOURS
) -> dict[int, list[tuple[int, float]]]:
    """For each face (position), its nearest pool faces (position, similarity) at or above threshold."""
    if not len(faces) or not len(pool):
        return {}
    emb = snap.embeddings
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(np.ascontiguousarray(emb[pool], np.float32))
    sims, found = index.search(np.ascontiguousarray(emb[faces], np.float32), min(k + 1, len(pool)))
    out: dict[int, list[tuple[int, float]]] = {}
    near = np.flatnonzero(((found >= 0) & (sims >= threshold)).any(axis=1))  # most faces have none
    for face, row_sims, row_found in zip(faces[near].tolist(), sims[near], found[near], strict=True):
        hits = [
            (int(pool[j]), float(s))
            for j, s in zip(row_found, row_sims, strict=True)
            if j >= 0 and s >= threshold
        ]
        hits = [(p, s) for p, s in hits if p != face]
        if hits:
            out[face] = hits
    return out


def _best(
    snap: _Snapshot, faces: np.ndarray, pool: np.ndarray, threshold: float
) -> dict[int, tuple[int, float, int]]:
    """For each face: (person, similarity, that person's face id) of its nearest pool face whose
    person the face was not said not to be."""
    rejected, owners, ids = snap.rejected, snap.person, snap.ids
    out = {}
    for face, hits in _neighbours(snap, faces, pool, threshold).items():
        for other, sim in hits:
            person = int(owners[other])
            if (int(ids[face]), person) not in rejected:
                out[face] = (person, round(sim, 4), int(ids[other]))
                break
    return out


def _moves(
    snap: _Snapshot, faces: np.ndarray, pool: np.ndarray, threshold: float, skipped: set[tuple[str, int]]
) -> list[_Question]:
    """Faces (positions) whose nearest face of another person in `pool` is more similar than every
    other face of their own person: "is this Beth (not Anna)?". A face alone in its person is not
    asked here (its person is: a "person" question)."""
    out = []
    by_person = np.argsort(snap.person, kind="stable")
    sorted_persons = snap.person[by_person]
    for face, hits in _neighbours(snap, faces, pool, threshold).items():
        own, fid = int(snap.person[face]), int(snap.ids[face])
        other, sim = next(
            (
                (o, s)
                for o, s in hits
                if snap.person[o] != own and (fid, int(snap.person[o])) not in snap.rejected
            ),
            (-1, -2.0),
        )
        if other < 0:
            continue
        span = np.searchsorted(sorted_persons, [own, own + 1])
        mates = by_person[span[0] : span[1]]
        mates = mates[mates != face]
        if len(mates) and sim > float((snap.embeddings[mates] @ snap.embeddings[face]).max()):
            person, near = int(snap.person[other]), int(snap.ids[other])
            out.append(_Question("move", "face", fid, person, round(sim, 4), near, ("face", fid) in skipped))
    return out


def _together(
    snap: _Snapshot,
    hits: dict[int, list[tuple[int, float]]],
    allowed: set[int],
    skipped: set[tuple[str, int]],
) -> tuple[list[_Question], set[int]]:
    """Groups of look-alike faces (positions): each face of `hits` with its nearest `allowed` others
    (none of its photo), most similar first; a face is in one group only. Also the faces grouped."""
    taken: set[int] = set()
    out = []
    for face in sorted(hits, key=lambda f: -hits[f][0][1]):
        if face in taken:
            continue
        photos = {int(snap.photo[face])}
        group = []
        for other, sim in hits[face]:
            if other in allowed and other not in taken and int(snap.photo[other]) not in photos:
                group.append((other, sim))
                photos.add(int(snap.photo[other]))
        if not group:
            continue
        taken.update([face, *(o for o, _ in group)])
        fid = int(snap.ids[face])
        members = tuple(int(snap.ids[o]) for o, _ in group)
        best = round(max(s for _, s in group), 4)
        out.append(
            _Question("together", "face", fid, -1, best, members[0], ("face", fid) in skipped, members)
        )
    return out, taken


def _face(row: FaceRow) -> PersonFace:
    x, y, w, h = row.box
    return PersonFace(
        face_id=row.id,
        image_id=row.image_id,
        path=row.path,
        box=Box(x=round(x, 1), y=round(y, 1), w=round(w, 1), h=round(h, 1)),
        quality=row.quality,
        pinned=False,
    )
