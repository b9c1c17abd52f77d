"""Consent records for named persons: who consented, to what, until when, on what evidence.

Naming a person requires an active consent. A consent's scope says what the person's faces may
be used for: `search` (matched by face searches), `results` (shown in the people view and in
person searches), `clustering` (new faces join them automatically), `publication` (their face
stays visible in the copies `facefind redact` makes for publishing; every other face is hidden).
When the consent expires or is withdrawn, the person's faces drop out of search results and the
people view at once (through the vector index's exclusion filter); `facefind purge` then erases
them for good.

Consent follows the faces: every face that was ever a face of a person with consent records stays
bound to that person's consent (the "subject"), whatever happens to persons later: split, "not
this person", merge, re-clustering. A new photo that clustering would give to a person whose
consent does not cover clustering is bound to them too (and left out of the person).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel

from ..catalog import Catalog
from ..catalog import consents as store
from ..catalog import persons as person_store
from ..errors import Conflict, FacefindError, NotFound
from ..limits import is_id

SCOPES = ("search", "results", "clustering", "publication")


class Consent(BaseModel):
    id: int
    person_id: int
    given_by: str
    scope: list[str]
    expires_on: str
    evidence: str
    recorded_at: str
    recorded_by: str
    withdrawn_at: str | None
    active: bool


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def add(
    catalog: Catalog, person_id: int, given_by: str, scope: str, expires: str, evidence: str, actor: str
) -> Consent:
    given_by, evidence = given_by.strip(), evidence.strip()
    if not given_by:
        raise FacefindError("who gave the consent is required (--by): the person or their guardian")
    if not evidence:
        raise FacefindError("evidence is required (--evidence): where the signed form or message is kept")
    wanted = [s.strip() for s in scope.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SCOPES]
    if not wanted or unknown:
        raise FacefindError(f"the scope (--scope) is a list of {', '.join(SCOPES)}; got {scope!r}")
    try:
        expiry = date.fromisoformat(expires)
    except ValueError:
        raise FacefindError(f"the expiry (--expires) {expires!r} is not a date; use YYYY-MM-DD") from None
    if expiry.isoformat() < today():
        raise FacefindError(f"the expiry date {expires} is in the past: a consent must be valid when given")
    if not is_id(person_id) or not person_store.exists(catalog, person_id):
        raise NotFound(f"no person with id {person_id}; `facefind people list --all` shows them")
    consent_id = store.insert(
        catalog,
        person_id,
        given_by=given_by,
        scope=",".join(dict.fromkeys(wanted)),
        expires_on=expiry.isoformat(),
        evidence=evidence,
        recorded_by=actor,
    )
    return get(catalog, consent_id)


def withdraw(catalog: Catalog, consent_id: int) -> Consent:
    found = get(catalog, consent_id)
    if found.withdrawn_at:
        raise Conflict(f"consent {consent_id} was already withdrawn on {found.withdrawn_at}")
    store.withdraw(catalog, consent_id)
    return get(catalog, consent_id)


def all_(catalog: Catalog, person_id: int | None = None) -> list[Consent]:
    if person_id is not None and not is_id(person_id):
        return []
    return [_consent(r) for r in store.all_(catalog, person_id)]


def get(catalog: Catalog, consent_id: int) -> Consent:
    row = store.get(catalog, consent_id) if is_id(consent_id) else None
    if row is None:
        raise NotFound(f"no consent with id {consent_id}; `facefind consent list` shows them")
    return _consent(row)


def allows(catalog: Catalog, person_id: int, use: str) -> bool:
    """Does an active consent of this person cover `use`?"""
    return any(c.active and use in c.scope for c in all_(catalog, person_id))


def withheld_persons(catalog: Catalog, use: str) -> set[int]:
    """Persons with consent records but no active consent covering `use`."""
    by_person: dict[int, bool] = {}
    for c in all_(catalog):
        by_person[c.person_id] = by_person.get(c.person_id, False) or (c.active and use in c.scope)
    return {p for p, ok in by_person.items() if not ok}


def lapsed_persons(catalog: Catalog) -> set[int]:
    """Existing persons who had consent and now have none active (a purge erases their faces)."""
    records = all_(catalog)
    lapsed = {c.person_id for c in records} - {c.person_id for c in records if c.active}
    return lapsed & person_store.existing(catalog, lapsed)


def withheld_faces(catalog: Catalog, use: str) -> np.ndarray:
    """Face ids bound to (or now in) persons whose consent does not (or no longer) cover `use`.

    A face is bound to every person with consent records it was ever a face of, whatever users or
    clustering did to persons since (catalog/consents.py), so its consent follows it."""
    withheld = withheld_persons(catalog, use)
    if not withheld:
        return np.zeros(0, np.int64)
    return store.faces_of_subjects(catalog, withheld)


def _consent(r: Any) -> Consent:
    active = r.withdrawn_at is None and r.expires_on >= today()
    return Consent(
        id=r.id,
        person_id=r.person_id,
        given_by=r.given_by,
        scope=r.scope.split(","),
        expires_on=r.expires_on,
        evidence=r.evidence,
        recorded_at=r.recorded_at,
        recorded_by=r.recorded_by,
        withdrawn_at=r.withdrawn_at,
        active=active,
    )
