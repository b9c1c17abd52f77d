"""The audit log's anchor outside the catalog: the Ed25519 key file and the signed head witness.

Whoever can write the catalog can delete the newest audit entries, or rewrite the history and
recompute every hash: the chain alone cannot show either. So the key that signs the log lives
outside the catalog (`FACEFIND_AUDIT_KEY`; by default `<catalog>.audit-key` beside an SQLite file,
and for a database server `<user data dir>/audit-keys/<hash of its URL without password>.audit-key`),
and after every append the newest entry (seq, hash, time) is signed and written beside the key
(`<key>.head`, replaced atomically under a lock on the key file; it only ever moves forward). The
file holds one head per catalog, so one key may serve several. A catalog is named by its id, kept in
its meta table (`audit_catalog_id`, made under the key file's lock at its first witnessed entry; a
catalog from before it keeps the hash of its location it was witnessed by), not by its path or URL:
a moved, linked or differently spelled catalog finds its own head. The id is in every signed head, so
a catalog whose id was changed finds no head, and `verify` reports that when the key holds heads of
other catalogs; a head first written when the log already had entries and the key held other
catalogs' heads records that (`since`, signed), so appending on does not hide it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs
import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel

from ..errors import FacefindError
from ..settings import APP

UNREADABLE = (
    "the audit head witness (<key>.head, beside the audit signing key) is unreadable: restore it from "
    "a backup, or delete it (verify then vouches only for the chain until the next entry is signed)"
)
# Where the key is, for messages (which may reach API clients, so they name no server path).
WHERE = "FACEFIND_AUDIT_KEY, else <catalog>.audit-key or the user data folder's audit-keys/"


class SignedHead(BaseModel):
    """The newest audit entry as the key file's owner signed it; `facefind audit head` prints it."""

    catalog: str  # which catalog: its audit_catalog_id (before it, a hash of its location)
    seq: int
    hash: str
    at: str
    signature: str  # Ed25519, over `head_message(catalog, seq, hash, at, since)`
    public_key: str
    # The first entry this key witnessed of a log that already had entries while the key held other
    # catalogs' heads (moved, replaced or re-identified, or a key shared late); None: from the start.
    since: int | None = None

    def message(self) -> bytes:
        return head_message(self.catalog, self.seq, self.hash, self.at, self.since)


def location_id(url: sa.URL) -> str:
    """A stable name of where the catalog is: its absolute file, or its URL without password."""
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        place = str(Path(url.database).expanduser().resolve())
    else:
        place = url.set(password=None).render_as_string(hide_password=False)
    return hashlib.sha256(place.encode()).hexdigest()[:16]


def default_key_file(url: sa.URL) -> Path | None:
    """FACEFIND_AUDIT_KEY; else beside an SQLite file; else one per database in the user data dir.
    None for an in-memory catalog: nothing of it outlives the process, so there is nothing to anchor."""
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite and (not url.database or url.database == ":memory:"):
        return None
    env = os.environ.get("FACEFIND_AUDIT_KEY")
    if env:
        return Path(env).expanduser()
    if sqlite:
        return Path(f"{url.database}.audit-key")
    return Path(platformdirs.user_data_dir(APP)) / "audit-keys" / f"{location_id(url)}.audit-key"


def head_message(catalog: str, seq: int, hash: str, at: str, since: int | None = None) -> bytes:
    fields: dict[str, Any] = {"catalog": catalog, "seq": seq, "hash": hash, "at": at}
    if since is not None:  # heads written before `since` existed are signed without it
        fields["since"] = since
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def _unique() -> str:
    """A temporary file name part no other process or thread uses at the same time."""
    return f"{os.getpid()}-{threading.get_ident()}"


def signature_holds(public_key: str, signature: str, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(
            bytes.fromhex(signature), message
        )
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


class Witness:
    """The key file and the head witness beside it (`<key>.head`)."""

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self.head_file = Path(f"{key_file}.head")
        self._key: Ed25519PrivateKey | None = None
        self._public: str | None = None

    def key(self) -> Ed25519PrivateKey:
        """The signing key, made (mode 0600, its folder 0700) the first time it is needed."""
        if self._key is None:
            if not self.key_file.exists():
                self._create()
            try:
                key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
            except PermissionError:
                raise FacefindError(
                    f"this user may not read the audit signing key ({WHERE}): run as the user who "
                    "owns the catalog, or set FACEFIND_AUDIT_KEY to a key this user may read"
                ) from None
            except (OSError, ValueError) as e:
                raise FacefindError(
                    f"cannot read the audit signing key ({WHERE}): {getattr(e, 'strerror', None) or e}; "
                    "restore it from a backup"
                ) from None
            if not isinstance(key, Ed25519PrivateKey):
                raise FacefindError(f"the audit signing key ({WHERE}) is not an Ed25519 key; restore it")
            self._key = key
        return self._key

    def public_key(self) -> str | None:
        """The public half (hex) if the key file exists; never made here (verify only reads)."""
        if self._public is None:
            if self._key is None and not self.key_file.exists():
                return None
            public = self.key().public_key()
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            self._public = raw.hex()
        return self._public

    def sign(self, message: bytes) -> str:
        return self.key().sign(message).hex()

    def _create(self) -> None:
        """Write a new key to a temporary file and link it into place: a process racing us either
        links first (we read its key) or reads ours whole, never half of it."""
        try:
            self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            temporary = self.key_file.with_name(f"{self.key_file.name}.{_unique()}.new")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            try:
                os.link(temporary, self.key_file)
            except FileExistsError:
                pass
            finally:
                temporary.unlink()
        except OSError as e:
            raise FacefindError(
                f"cannot create the audit signing key ({WHERE}): {e.strerror}; set FACEFIND_AUDIT_KEY "
                "to a file this user may write, outside the catalog"
            ) from None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The key file's lock: one process at a time reads and replaces the heads."""
        with open(self.key_file, "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def holds(self, catalog: str) -> bool:
        return catalog in self._heads()

    def advance(self, catalog: str, seq: int, hash: str, at: str) -> SignedHead:
        """Sign and record the head (seq, hash, at) of `catalog`, unless the witness already holds a
        later one (another process appended meanwhile): read, compare and replace under the lock."""
        try:
            with self.locked():
                return self._advance(catalog, seq, hash, at)
        except OSError as e:
            raise FacefindError(
                f"audit entry #{seq} was written, but its signed head could not be ({e.strerror}): "
                f"the folder of the audit signing key ({WHERE}) must be writable by this user"
            ) from None

    def _advance(self, catalog: str, seq: int, hash: str, at: str) -> SignedHead:
        heads = self._heads()
        known = heads.get(catalog)
        since: int | None = None
        if known is not None:
            since = known.get("since") if isinstance(known.get("since"), int) else None
        elif seq > 1 and heads:  # a log with entries, new to a key that witnesses other catalogs
            since = seq
        signature = self.sign(head_message(catalog, seq, hash, at, since))
        public = self.public_key() or ""
        head = SignedHead(
            catalog=catalog, seq=seq, hash=hash, at=at, signature=signature, public_key=public, since=since
        )
        if known is not None and isinstance(known.get("seq"), int) and known["seq"] >= seq:
            return head
        heads[catalog] = head.model_dump(exclude={"catalog", "public_key"}, exclude_none=True)
        temporary = self.head_file.with_name(f"{self.head_file.name}.{_unique()}.new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"heads": heads}, f, sort_keys=True)
        os.replace(temporary, self.head_file)
        return head

    def others(self, catalog: str) -> int:
        """How many other catalogs' heads the witness holds."""
        return len(set(self._heads()) - {catalog})

    def read(self, catalog: str) -> SignedHead | None:
        """The witnessed head of `catalog`, or None if there is none. A witness that cannot be read
        is an error: it is what vouches for the newest entries."""
        found = self._heads().get(catalog)
        if found is None:
            return None
        try:
            return SignedHead.model_validate(
                {**found, "catalog": catalog, "public_key": self.public_key() or ""}
            )
        except (TypeError, ValueError, AttributeError):
            raise FacefindError(UNREADABLE) from None

    def _heads(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.head_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            raise FacefindError(UNREADABLE) from None
        heads = data.get("heads") if isinstance(data, dict) else None
        if not isinstance(heads, dict):
            raise FacefindError(UNREADABLE)
        return heads
