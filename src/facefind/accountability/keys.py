"""API keys: who may use the service, with which role.

A key is shown once, when it is made; the catalog keeps only its SHA-256 (a key is 256 random
bits, so a plain hash cannot be searched back to it). Revoking takes effect on the next request:
every request looks its key up.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import unicodedata

from pydantic import BaseModel, field_validator

from ..catalog import Catalog, now
from ..catalog import confirmations as confirmation_store
from ..catalog import keys as store
from ..errors import Conflict, InvalidValue, NotFound
from ..policy import SCOPED_ROLES, Principal, Role

PREFIX = "ff_"
# Names the audit log already uses for someone else (failed sign-ins are "anonymous", the server
# is "facefind-serve", an unnamed OS user "unknown"), or that pass for the system: a key named so
# would make its entries look like theirs. Compared case-insensitively, after NFKC.
RESERVED = frozenset({"anonymous", "unknown", "nobody", "root", "system"})
RESERVED_PREFIX = "facefind"


class ApiKey(BaseModel):
    name: str
    role: Role
    created_at: str
    created_by: str
    revoked_at: str | None = None
    collections: list[str] | None = None  # the only collections it may search and index; None: all
    # Whose key it is: confirmations of a match count people, so two keys of one person count
    # once (accountability/confirmations.py); None: the key is its own person (its name).
    person: str | None = None

    @field_validator("collections", mode="before")
    @classmethod
    def _from_json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value


class NewKey(ApiKey):
    key: str  # shown once; only its hash is stored


def add(
    catalog: Catalog,
    name: str,
    role: str,
    actor: str,
    collections: list[str] | None = None,
    person: str | None = None,
) -> NewKey:
    name = name.strip()
    if person is not None:
        person = person.strip()
        if not person or len(person) > 200:
            raise InvalidValue("--person names the person the key belongs to (at most 200 characters)")
    if not name or len(name) > 200:
        raise InvalidValue("a key needs a name (who or what uses it, at most 200 characters)")
    if reserved(name):
        raise InvalidValue(
            f"the key name {name!r} is reserved (it would pass for the server, the system or an "
            "anonymous client in the audit log); name the person or program that uses the key"
        )
    if role not in Role.__members__:
        raise InvalidValue(f"the role must be one of {', '.join(Role)}, got {role!r}")
    if collections is not None:
        collections = sorted(set(collections))
        catalog.collection_ids(collections)  # each must exist
        if Role(role) not in SCOPED_ROLES:
            raise InvalidValue(
                f"only {', '.join(SCOPED_ROLES)} keys can be limited to collections: the other roles "
                f"work on people, consent and the audit log, which span the whole catalog"
            )
    key = PREFIX + secrets.token_urlsafe(32)
    added = NewKey(
        key=key,
        name=name,
        role=Role(role),
        created_at=now(),
        created_by=actor,
        collections=collections,
        person=person,
    )
    row = added.model_dump(exclude={"key", "person"})
    row["collections"] = json.dumps(collections) if collections is not None else None
    if not store.insert(catalog, _hash(key), **row):
        raise Conflict(f"a key named {name!r} exists; revoke it or choose another name")
    if person is not None:
        confirmation_store.set_key_person(catalog, name, person)
    return added


def all_(catalog: Catalog) -> list[ApiKey]:
    persons = confirmation_store.key_persons_of(catalog)
    return [ApiKey.model_validate({**r._mapping, "person": persons.get(r.name)}) for r in store.all_(catalog)]


def revoke(catalog: Catalog, name: str) -> ApiKey:
    if not store.revoke(catalog, name):
        raise NotFound(f"no active key named {name!r}; `facefind keys list` shows them")
    return next(k for k in all_(catalog) if k.name == name)


def authenticate(catalog: Catalog, key: str) -> Principal | None:
    """The principal of an active key; None for an unknown or revoked one."""
    if not key.startswith(PREFIX) or len(key) > 100:
        return None
    row = store.active(catalog, _hash(key))
    return None if row is None else principal(row.name, row.role, row.collections)


def principal(name: str, role: str, collections: str | None) -> Principal:
    """The principal of a key's row (name, role, its collections as stored)."""
    limited = frozenset(json.loads(collections)) if collections else None
    return Principal(name, Role(role), limited)


def reserved(name: str) -> bool:
    folded = unicodedata.normalize("NFKC", name).strip().casefold()
    return folded in RESERVED or folded.startswith(RESERVED_PREFIX)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
