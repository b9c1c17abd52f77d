"""Collections with a lawful basis: who owns the photos, why faces may be processed, for how long.

Indexing into a collection without a declared basis is refused (GDPR Art. 6 and 9 ask for one;
Illinois BIPA for a retention schedule). The basis is a declaration by the operator, recorded
with the collection and shown in reports; facefind does not judge it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from ..catalog import Catalog
from ..catalog import audit as audit_store
from ..catalog import collections as store
from ..catalog import confirmations as confirmation_store
from ..errors import Conflict, FacefindError, InvalidValue, NotFound, Refused
from ..limits import DESTROY_AFTER_DAYS, RETENTION_DAYS
from ..paths import shown
from .confirmations import DEFAULT_CONFIRMATIONS

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
    roots: list[str] = []  # folders the service may index from (absolute, links resolved)
    # Photos are destroyed this many days after their last interaction (last indexed, or returned
    # by a search): `facefind purge` applies it (BIPA Sec. 15(a)); None: no such rule.
    destroy_after_last_use_days: int | None = None
    # Distinct people who must confirm a candidate of a 1:N search before it is an identification
    # (accountability/confirmations.py; EU AI Act Art. 14(5)).
    confirmations: int = DEFAULT_CONFIRMATIONS


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
    catalog: Catalog,
    name: str,
    owner: str,
    basis: str,
    retention: str,
    note: str | None,
    roots: Sequence[str] = (),
) -> Collection:
    """Create a collection with its basis and index roots (or give a basis to a collection made
    before schema 4)."""
    name, owner, note = name.strip(), owner.strip(), (note or "").strip() or None
    if not name:
        raise FacefindError("a collection needs a name")
    if not owner:
        raise FacefindError("a collection needs an owner (--owner): the person or body responsible for it")
    if basis not in BASES:
        choices = "; ".join(f"{k}: {v}" for k, v in BASES.items())
        raise FacefindError(f"the lawful basis (--basis) must be one of: {choices}. Got {basis!r}.")
    if basis == "legitimate-interest" and not note:
        raise FacefindError(
            "--basis legitimate-interest needs --note: where the balancing test is documented"
        )
    days = parse_retention(retention)
    resolved = [resolve_root(r) for r in roots]
    values = dict(owner=owner, basis=basis, basis_note=note, retention_days=days)
    existing_basis = store.save(catalog, name, resolved, **values)
    if existing_basis is not None:
        raise Conflict(f"collection {name!r} already exists (basis: {existing_basis})")
    return get(catalog, name)


def get(catalog: Catalog, name: str) -> Collection:
    found = [c for c in all_(catalog) if c.name == name]
    if not found:
        raise NotFound(f"no collection named {name!r}; `facefind collection list` shows them")
    return found[0]


def all_(catalog: Catalog) -> list[Collection]:
    roots = store.roots(catalog)
    rules = store.destroy_rules(catalog)
    required = confirmation_store.required(catalog)
    return [
        Collection(
            name=r.name,
            owner=r.owner,
            basis=r.basis,
            note=r.basis_note,
            retention_days=r.retention_days,
            created_at=r.created_at,
            images=r.n,
            roots=roots.get(r.id, []),
            destroy_after_last_use_days=rules.get(r.id),
            confirmations=required.get(r.name, DEFAULT_CONFIRMATIONS),
        )
        for r in store.all_(catalog)
    ]


# Index roots ---------------------------------------------------------------------------------
# The service indexes only under a collection's roots, set by an admin: an operator's key names
# a path, and the server must not read whatever it can (another collection's folder, /etc, a
# share it mounts). The CLI, run by the machine's own user, indexes any path that user can read.


def resolve_root(folder: str | Path) -> str:
    """A root as stored: absolute, every link resolved; it must be an existing folder."""
    try:
        real = os.path.realpath(Path(folder).expanduser(), strict=True)
    except (OSError, ValueError):
        raise InvalidValue(f"root {shown(str(folder))}: no such folder on this machine") from None
    if not os.path.isdir(real):
        raise InvalidValue(f"root {shown(str(folder))} is not a folder; give the folder photos are in")
    return real


def set_roots(
    catalog: Catalog,
    name: str,
    roots: Sequence[str] | None = None,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
) -> Collection:
    """Replace the roots of a collection (`roots`), or add and remove some."""
    if roots is None and not add and not remove:
        raise InvalidValue("give the roots to add (--root DIR) or remove (--remove-root DIR)")
    current = get(catalog, name).roots
    wanted = [resolve_root(r) for r in roots] if roots is not None else list(current)
    for folder in remove:
        given = str(Path(folder).expanduser())
        candidates = {given, os.path.abspath(given), os.path.realpath(given)}
        match = [r for r in wanted if r in candidates]
        if not match:
            listed = ", ".join(shown(r) for r in current) or "none"
            raise NotFound(f"collection {name!r} has no index root {shown(given)} (its roots: {listed})")
        wanted = [r for r in wanted if r not in match]
    wanted += [resolve_root(r) for r in add]
    if not store.set_roots(catalog, name, wanted):
        raise NotFound(f"no collection named {name!r}; `facefind collection list` shows them")
    return get(catalog, name)


def index_root(catalog: Catalog, name: str, path: str) -> tuple[Path, Path]:
    """Where the service may index `path` into collection `name`: the path with every link and
    `..` resolved, and the root it lies under. Anything else, including a path that does not
    exist, is refused with the same message, which names nothing outside the roots."""
    roots = get(catalog, name).roots
    if not roots:
        raise Refused(
            f"collection {name!r} has no index roots, so the service may not index into it; an admin "
            f"sets them with `facefind collection update {name} --root DIR`"
        )
    try:
        real: Path | None = Path(os.path.realpath(path, strict=True))
    except (OSError, ValueError):
        real = None
    for root in roots:
        if real is not None and real.is_relative_to(root):
            return real, Path(root)
    listed = ", ".join(shown(r) for r in roots)
    raise Refused(
        f"{path!r} is not a folder or photo under an index root of collection {name!r} ({listed}); "
        f"the service indexes only there. Give a path under a root, or ask an admin to add one "
        f"(`facefind collection update {name} --root DIR`)."
    )


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


def set_destroy_rule(catalog: Catalog, name: str, days: int | None) -> Collection:
    """Destroy the photos of collection `name` `days` after their last interaction (None: no rule)."""
    if days is not None:
        DESTROY_AFTER_DAYS.check(days)
    if not store.set_destroy_rule(catalog, name, days):
        raise NotFound(f"no collection named {name!r}; `facefind collection list` shows them")
    return get(catalog, name)


def unused_since(catalog: Catalog, name: str, cutoff: str) -> list[int]:
    """Photos of collection `name` whose last interaction is before `cutoff`: indexed before it,
    and none of their faces returned by a search (or shown as a crop) since (the audit log says)."""
    candidates = catalog.images_indexed_before(name, cutoff)
    if not candidates:
        return []
    used = catalog.face_rows(audit_store.faces_used_since(catalog, cutoff)).values()
    recent = {row.image_id for row in used if row.collection == name}
    return [i for i in candidates if i not in recent]
