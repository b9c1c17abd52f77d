"""Web UI sessions: what a browser holds instead of an API key.

Signing in with a key opens a session: a random id (256 bits) for the browser's cookie and a
random CSRF token for the page. The catalog keeps only the id's SHA-256, the token, the key's name
and the expiry (8 hours, enforced here, not by the browser). Signing out ends the session on the
server, and revoking the key ends all of its sessions at once (`catalog.keys.revoke`), so a copied
cookie is worth at most one revocable session, never the key.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..catalog import Catalog
from ..catalog import sessions as store
from ..policy import Principal
from .keys import principal

SECONDS = 8 * 3600
PREFIX = "ffs_"


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf: str  # every change the page makes carries it (a header another site cannot set)


@dataclass(frozen=True)
class Opened(Session):
    id: str  # for the cookie; only its hash is stored


def open_(catalog: Catalog, who: Principal) -> Opened:
    """A new session for `who` (authenticated by its key just before)."""
    session_id, csrf = PREFIX + secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    at = datetime.now(UTC)
    store.insert(catalog, _hash(session_id), who.name, csrf, _iso(at), _iso(at + timedelta(seconds=SECONDS)))
    return Opened(who, csrf, session_id)


def find(catalog: Catalog, session_id: str) -> Session | None:
    """The open session with this id; None if unknown, ended, expired or its key revoked."""
    if not session_id.startswith(PREFIX) or len(session_id) > 100:
        return None
    row = store.active(catalog, _hash(session_id), _iso(datetime.now(UTC)))
    return None if row is None else Session(principal(row.name, row.role, row.collections), row.csrf)


def end(catalog: Catalog, session_id: str) -> bool:
    """End a session on the server (sign-out); False if it was not open."""
    return store.end(catalog, _hash(session_id), _iso(datetime.now(UTC)))


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")  # as schema.now(): compared as text
