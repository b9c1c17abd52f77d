"""Two-person confirmation of search candidates (EU AI Act Art. 14(5)).

Every match of every query face of a 1:N search is a *candidate*, named by the search's audit
entry (`search_seq`) and the matched face. A candidate becomes an *identification* only when as
many distinct people as its collection requires (`collection create|update --confirmations N`,
default 2; 1 only when an admin says so with `--allow-single-confirmation`) confirmed it. A
rejection by anyone blocks it (state "rejected"): one competent doubt is enough not to act.

People, not keys, are counted: a confirmation counts for the person the actor is, which is the
person an admin named for the key (`keys add NAME --person WHO`), else the actor's name itself (a
key's name in the service, `--actor` in the CLI). So one person confirming twice, or through a
second key of theirs, counts once; the searcher may confirm, and counts once like anyone else.

Each decision is an audit entry ("confirm" or "reject") naming the search entry and the face,
with the people who confirmed that candidate so far: the search entry itself, written before
anyone verified, is never rewritten. `status(seq)` gathers a search's verifiers.

The query face of a search with candidates is kept as a small JPEG so a reviewer can compare it
with each candidate: until the shortest retention of the candidates' collections ends (`purge`
removes it then), or sooner, when no candidate of the search is left (erased).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from .. import limits, policy
from ..catalog import Catalog, now
from ..catalog import confirmations as store
from ..errors import Conflict, InvalidValue, NotFound
from ..paths import require_text, shown
from ..results import QueryFace

if TYPE_CHECKING:
    from ..engine import FaceFind

DEFAULT_CONFIRMATIONS = 2  # for 1:N search, Art. 14(5)
MAX_NOTE = 2000  # characters of a decision's note
CROP_DAYS_WITHOUT_RETENTION = 365  # a query face of a collection without retention (before schema 4)
State = Literal["awaiting", "identified", "rejected"]


class Decision(BaseModel):
    decision: Literal["confirm", "reject"]
    actor: str  # as authenticated: a key's name, or the CLI's --actor
    person: str  # who it counts for (the key's person, else the actor)
    note: str | None
    at: str
    audit_seq: int | None


class Candidate(BaseModel):
    search_seq: int  # the search's audit entry
    face_id: int  # the catalogued face it matched
    query_face: int  # which face of the query photo
    similarity: float
    fmr: float
    searcher: str
    searched_at: str
    purpose: str | None
    collection: str | None = None  # None: hidden from the reader (an auditor; or erased meanwhile)
    path: str | None = None
    required: int  # distinct people who must confirm it
    confirmed_by: list[str]  # the distinct people who did, first first
    rejected_by: list[str]
    state: State
    decisions: list[Decision]


class SearchReview(BaseModel):
    search_seq: int
    searcher: str
    searched_at: str
    purpose: str | None
    verifiers: list[str]  # people who confirmed any candidate of the search (Art. 12(3))
    identified: list[int]  # candidate faces that are identifications
    candidates: list[Candidate]


def person_of(catalog: Catalog, actor: str) -> str:
    """The person a confirmation by `actor` counts for."""
    return store.key_persons_of(catalog).get(actor, actor)


def required_for(catalog: Catalog) -> dict[str, int]:
    """Confirmations each collection requires, by name (DEFAULT_CONFIRMATIONS if not listed)."""
    return store.required(catalog)


def check_required(count: int, allow_single: bool) -> int:
    limits.CONFIRMATIONS.check(count)
    if count == 1 and not allow_single:
        raise InvalidValue(
            "--confirmations 1 lets one person act on a face match alone; the EU AI Act (Art. 14(5)) "
            "asks for two for remote biometric identification. If one is enough here, say so "
            "explicitly: --confirmations 1 --allow-single-confirmation"
        )
    return count


def set_required(catalog: Catalog, name: str, count: int, allow_single: bool = False) -> None:
    check_required(count, allow_single)
    if not store.set_required(catalog, name, count):
        raise NotFound(f"no collection named {name!r}; `facefind collection list` shows them")


def record(
    catalog: Catalog,
    search_seq: int,
    searcher: str,
    searched_at: str,
    purpose: str | None,
    faces: list[QueryFace],
    crops: dict[int, bytes],
) -> None:
    """Make every match of `faces` a candidate of the search `search_seq`; keep the query face
    crops (`crops`, by query face) until the shortest retention of their candidates' collections."""
    rules, retention_days = store.required(catalog), store.retention_days(catalog)
    rows: dict[int, dict[str, Any]] = {}  # by face: a face matching two query faces is one candidate
    kept = []
    for f in faces:
        for m in f.matches:
            if m.face_id in rows and rows[m.face_id]["similarity"] >= m.similarity:
                continue
            rows[m.face_id] = dict(
                search_seq=search_seq,
                face_id=m.face_id,
                query_face=f.face,
                similarity=m.similarity,
                fmr=m.fmr,
                required=rules.get(m.collection, DEFAULT_CONFIRMATIONS),
                searcher=searcher,
                searched_at=searched_at,
                purpose=purpose,
            )
        if f.matches and f.face in crops:
            days = [retention_days.get(m.collection) for m in f.matches]
            keep = min((d for d in days if d), default=CROP_DAYS_WITHOUT_RETENTION)
            expires = datetime.fromisoformat(searched_at) + timedelta(days=keep)
            jpeg = crops[f.face]
            kept.append(dict(search_seq=search_seq, query_face=f.face, jpeg=jpeg, expires_at=_iso(expires)))
    store.add_candidates(catalog, list(rows.values()), kept)


def drop_expired_crops(catalog: Catalog) -> int:
    """Delete query face crops past their collection's retention or with no candidate left."""
    return store.drop_crops(catalog, now())


class Confirmations:
    """`ff.confirmations`: candidates awaiting confirmation, a search's review, decisions."""

    def __init__(self, ff: FaceFind) -> None:
        self.ff = ff
        self.catalog = ff.catalog

    def pending(self, limit: int = 50, *, show_paths: bool = True) -> list[Candidate]:
        """Candidates neither identified nor rejected yet, newest search first (audited as a view
        when they show photo paths: they say who may be in which photo)."""
        limits.PAGE.check(limit)
        hidden = set(policy.hidden_faces(self.catalog, "results").tolist())
        rows: list[Any] = []
        offset = 0
        while len(rows) < limit:  # faces no one may see now (opted out, consent) are skipped
            page = store.awaiting(self.catalog, limit, offset)
            rows += [r for r in page if int(r.face_id) not in hidden]
            offset += limit
            if len(page) < limit:
                break
        return self._shown(self._described(rows[:limit]), show_paths)

    def status(self, search_seq: int, *, show_paths: bool = True) -> SearchReview:
        """The review of one search: its candidates, their decisions and the search's verifiers."""
        found = self._candidates(search_seq)
        if not found:
            raise NotFound(
                f"search #{search_seq} has no candidates to review (no such search, no match, or every "
                f"match erased); `facefind review list` shows those awaiting confirmation"
            )
        first = found[0]
        verifiers = _distinct(p for c in found for p in c.confirmed_by)
        return SearchReview(
            search_seq=search_seq,
            searcher=first.searcher,
            searched_at=first.searched_at,
            purpose=first.purpose,
            verifiers=verifiers,
            identified=[c.face_id for c in found if c.state == "identified"],
            candidates=self._shown(found, show_paths),
        )

    def confirm(self, search_seq: int, face_id: int, *, note: str) -> Candidate:
        """Confirm that face `face_id` shows the person searched for by search `search_seq`."""
        return self._decide(search_seq, face_id, "confirm", note)

    def reject(self, search_seq: int, face_id: int, *, note: str) -> Candidate:
        """Reject the candidate: it is not the person searched for; no one may act on it."""
        return self._decide(search_seq, face_id, "reject", note)

    def face_in(self, search_seq: int, photo: str) -> int:
        """The candidate face of search `search_seq` in the photo `photo` (a path, as indexed or
        leading to it): how the CLI takes a photo for a face id. It must be exactly one."""
        wanted = {photo, str(Path(photo).expanduser().resolve())}
        found = [c for c in self._candidates(search_seq) if c.path in wanted]
        if len(found) != 1:
            several = "several candidates are" if found else "no candidate is"
            raise NotFound(
                f"{several} in {shown(photo)} among those of search #{search_seq}; give the face id "
                f"(`facefind review show {search_seq}` lists them)"
            )
        return found[0].face_id

    def query_crop(self, search_seq: int, face_id: int) -> bytes:
        """The JPEG of the query face a candidate was found for (audited as a view)."""
        (candidate,) = self._visible(search_seq, face_id)
        jpeg = store.query_crop(self.catalog, search_seq, candidate.query_face)
        if jpeg is None:
            raise NotFound(f"the query face of search #{search_seq} is no longer kept (retention)")
        details = {"query_face": candidate.query_face, "of_search": search_seq}
        self.ff.audit.record(self.ff.actor, "view", details, self.ff.purpose)
        return jpeg

    # ------------------------------------------------------------------------------------------
    def _decide(self, search_seq: int, face_id: int, decision: str, note: str) -> Candidate:
        note = require_text((note or "").strip(), "the note")
        if not note:
            raise InvalidValue(
                f"a {decision}ation needs a note (--note TEXT): what you compared and why you decided"
                if decision == "confirm"
                else "a rejection needs a note (--note TEXT): why this is not the person searched for"
            )
        if len(note) > MAX_NOTE:
            raise InvalidValue(f"the note has {len(note)} characters; keep it under {MAX_NOTE}")
        (candidate,) = self._visible(search_seq, face_id)
        person = person_of(self.catalog, self.ff.actor)
        if decision == "confirm":
            if candidate.state == "rejected":
                raise Conflict(
                    f"face {face_id} of search #{search_seq} was rejected by "
                    f"{', '.join(candidate.rejected_by)}: it cannot become an identification"
                )
            if _key(person) in map(_key, candidate.confirmed_by):
                raise Conflict(
                    f"{person} already confirmed face {face_id} of search #{search_seq}; a person counts "
                    f"once, whichever key they use: another reviewer must confirm it"
                )
        elif _key(person) in map(_key, candidate.rejected_by):
            raise Conflict(f"{person} already rejected face {face_id} of search #{search_seq}")
        confirmed = _distinct(candidate.confirmed_by + ([person] if decision == "confirm" else []))
        rejected = _distinct(candidate.rejected_by + ([person] if decision == "reject" else []))
        state = _state(confirmed, rejected, candidate.required)
        details = {
            "search_seq": search_seq,
            "face": face_id,
            "query_face": candidate.query_face,
            "person": person,
            "note": note,
            "required": candidate.required,
            "verifiers": confirmed,  # who confirmed this candidate so far
            "rejected_by": rejected,
            "state": state,
        }
        entry = self.ff.audit.record(self.ff.actor, decision, details)
        store.add_decision(
            self.catalog,
            search_seq=search_seq,
            face_id=face_id,
            decision=decision,
            actor=self.ff.actor,
            person=person,
            note=note,
            at=entry.at,
            audit_seq=entry.seq,
        )
        (updated,) = self._visible(search_seq, face_id)
        return updated

    def _visible(self, search_seq: int, face_id: int) -> list[Candidate]:
        """The one candidate (search, face), if it exists and its face may be shown."""
        found = self._candidates(search_seq, face_id) if limits.is_id(face_id) else []
        hidden = policy.hidden_faces(self.catalog, "results")
        if not found or face_id in hidden:
            raise NotFound(
                f"search #{search_seq} has no candidate face {face_id} that you may see; "
                f"`facefind review show {search_seq}` lists its candidates"
            )
        return found[:1]

    def _candidates(self, search_seq: int | None = None, face_id: int | None = None) -> list[Candidate]:
        rows = store.candidates(self.catalog, search_seq, face_id)
        if not rows:
            return []
        hidden = set(policy.hidden_faces(self.catalog, "results").tolist())
        return self._described([r for r in rows if int(r.face_id) not in hidden])

    def _described(self, rows: list[Any]) -> list[Candidate]:
        """Candidate rows with their decisions, state and where the face is."""
        if not rows:
            return []
        by_candidate: dict[tuple[int, int], list[Decision]] = {}
        for d in store.decisions(self.catalog, {int(r.search_seq) for r in rows}):
            by_candidate.setdefault((int(d.search_seq), int(d.face_id)), []).append(
                Decision.model_validate(d._mapping, from_attributes=False)
            )
        faces = self.catalog.face_rows(int(r.face_id) for r in rows)
        out = []
        for r in rows:
            decisions = by_candidate.get((int(r.search_seq), int(r.face_id)), [])
            confirmed = _distinct(d.person for d in decisions if d.decision == "confirm")
            rejected = _distinct(d.person for d in decisions if d.decision == "reject")
            face = faces.get(int(r.face_id))
            out.append(
                Candidate(
                    search_seq=int(r.search_seq),
                    face_id=int(r.face_id),
                    query_face=int(r.query_face),
                    similarity=float(r.similarity),
                    fmr=float(r.fmr),
                    searcher=r.searcher,
                    searched_at=r.searched_at,
                    purpose=r.purpose,
                    collection=face.collection if face else None,
                    path=face.path if face else None,
                    required=int(r.required),
                    confirmed_by=confirmed,
                    rejected_by=rejected,
                    state=_state(confirmed, rejected, int(r.required)),
                    decisions=decisions,
                )
            )
        return out

    def _shown(self, found: list[Candidate], show_paths: bool) -> list[Candidate]:
        if not show_paths:  # an auditor: who decided what, not who is in which photo
            return [c.model_copy(update={"path": None, "collection": None}) for c in found]
        if found:
            shown = {"candidates": [[c.search_seq, c.face_id] for c in found]}
            self.ff.audit.record(self.ff.actor, "view", shown, self.ff.purpose)
        return found


def _key(person: str) -> str:
    """A person's name as compared: case, Unicode width forms and spacing do not make another person."""
    return " ".join(unicodedata.normalize("NFKC", person).casefold().split())


def _distinct(people: Iterable[str]) -> list[str]:
    """Each person once (as first spelled), in order."""
    seen: dict[str, str] = {}
    for p in people:
        seen.setdefault(_key(p), p)
    return list(seen.values())


def _state(confirmed: list[str], rejected: list[str], required: int) -> State:
    if rejected:
        return "rejected"
    return "identified" if len(confirmed) >= required else "awaiting"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
