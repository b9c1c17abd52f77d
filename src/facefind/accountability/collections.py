"""Collections with a lawful basis: who owns the photos, why faces may be processed, for how long.

Indexing into a collection without a declared basis is refused (GDPR Art. 6 and 9 ask for one;
Illinois BIPA for a retention schedule). The basis is a declaration by the operator, recorded
with the collection and shown in reports; facefind does not judge it.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from ..catalog import Catalog
from ..catalog import collections as store
from ..errors import Conflict, FacefindError, InvalidValue, NotFound
from ..limits import RETENTION_DAYS

BASES = {
    "own": "the operator's own photos (household or personal use)",
    "consent": "the people shown consented",
    "contract": "needed for a contract with the people shown",
    "legitimate-interest": "legitimate interest, with a documented balancing test (--note)",
}
_UNITS = {"d": 1, "w": 7, "m": 30, "y": 365}


class Collection(BaseModel):
    name: str
    owner: str | None
    basis: str | None
    note: str | None
    retention_days: int | None
    created_at: str
    images: int


def parse_retention(text: str, option: str = "--retention") -> int:
    """'5y', '18m', '6w', '30d' -> days."""
    match = re.fullmatch(r"\s*(\d+)\s*([dwmy])\s*", text.lower())
    if not match or int(match.group(1)) == 0:
        raise InvalidValue(
            f"{option} {text!r} is not a period: use a number and a unit, e.g. 30d, 6w, 18m or 5y"
        )
    days = int(match.group(1)) * _UNITS[match.group(2)]
    if not RETENTION_DAYS.contains(days):
        raise InvalidValue(
            f"{option} {text!r} is {days:,} days; the longest period facefind keeps is 100 years "
            f"(100y). Give a shorter period."
        )
    return days


def create(
    catalog: Catalog, name: str, owner: str, basis: str, retention: str, note: str | None
) -> Collection:
    """Create a collection with its basis (or give one to a collection made before schema 4)."""
    name, owner, note = name.strip(), owner.strip(), (note or "").strip() or None
    if not name:
        raise FacefindError("a collection needs a name")
    if not owner:
        raise FacefindError("a collection needs an owner (--owner): the person or body responsible for it")
    if basis not in BASES:
        choices = "; ".join(f"{k}: {v}" for k, v in BASES.items())
        raise FacefindError(f"--basis must be one of: {choices}. Got {basis!r}.")
    if basis == "legitimate-interest" and not note:
        raise FacefindError(
            "--basis legitimate-interest needs --note: where the balancing test is documented"
        )
    days = parse_retention(retention)
    values = dict(owner=owner, basis=basis, basis_note=note, retention_days=days)
    existing_basis = store.save(catalog, name, **values)
    if existing_basis is not None:
        raise Conflict(f"collection {name!r} already exists (basis: {existing_basis})")
    return get(catalog, name)


def get(catalog: Catalog, name: str) -> Collection:
    found = [c for c in all_(catalog) if c.name == name]
    if not found:
        raise NotFound(f"no collection named {name!r}; `facefind collection list` shows them")
    return found[0]


def all_(catalog: Catalog) -> list[Collection]:
    return [
        Collection(
            name=r.name,
            owner=r.owner,
            basis=r.basis,
            note=r.basis_note,
            retention_days=r.retention_days,
            created_at=r.created_at,
            images=r.n,
        )
        for r in store.all_(catalog)
    ]


def require_basis(catalog: Catalog, name: str) -> None:
    """Refuse to index into a collection that does not exist or has no lawful basis."""
    how = (
        f"facefind collection create {name} --owner WHO --basis {'|'.join(BASES)} --retention 5y [--note ..]"
    )
    known = {c.name: c for c in all_(catalog)}
    if name not in known:
        raise FacefindError(
            f"collection {name!r} does not exist. Photos are indexed into a collection with a declared "
            f"lawful basis; create it first: {how}"
        )
    if known[name].basis is None:
        raise FacefindError(f"collection {name!r} has no lawful basis yet (made before facefind 0.2): {how}")
