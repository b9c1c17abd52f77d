"""A tamper-evident audit log: who searched for whom, why, and what they got.

Each entry holds the SHA-256 of its own content and of the entry before it, so editing, deleting
or reordering any entry breaks the chain at that entry, and `verify()` names it. The log lives
in the catalog (table `audit_log`); it stores hashes and ids, never photos or embeddings.
A purge of old entries (retention) leaves a checkpoint entry recording the hash the remaining
chain starts from, so the chain stays verifiable.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..catalog import Catalog, now
from ..catalog import audit as store
from ..errors import FacefindError, InvalidValue
from ..paths import escape_json_surrogates

GENESIS = "0" * 64


class AuditEntry(BaseModel):
    seq: int
    at: str
    actor: str
    action: str  # search, verify, export, erase, consent, optout, person, checkpoint, ...
    purpose: str | None
    query_sha256: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditProblem(BaseModel):
    seq: int
    problem: str


class AuditVerification(BaseModel):
    ok: bool
    entries: int
    first_seq: int | None
    last_seq: int | None
    head_hash: str | None
    problems: list[AuditProblem]


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name (containers without /etc/passwd entries)
        return "unknown"


def entry_hash(
    seq: int,
    at: str,
    actor: str,
    action: str,
    purpose: str | None,
    query_sha256: str | None,
    details: str,
    prev_hash: str,
) -> str:
    fields = [seq, at, actor, action, purpose, query_sha256, details, prev_hash]
    text = escape_json_surrogates(json.dumps(fields, ensure_ascii=False))
    return hashlib.sha256(text.encode()).hexdigest()


def canonical(details: dict[str, Any]) -> str:
    """Details as stored and hashed; a file name that is not UTF-8 keeps its bytes as escapes."""
    text = json.dumps(details, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return escape_json_surrogates(text)


class AuditLog:
    def __init__(self, catalog: Catalog, key_file: Path | None = None) -> None:
        self.catalog = catalog
        # The Ed25519 key that signs retention checkpoints; the public half is kept in the catalog.
        self.key_file = key_file

    def record(
        self,
        actor: str,
        action: str,
        details: dict[str, Any],
        purpose: str | None = None,
        query_sha256: str | None = None,
    ) -> AuditEntry:
        """Append one entry (retrying if another process appended at the same moment)."""
        body = canonical(details)
        made: list[AuditEntry] = []

        def build(seq: int, prev: str) -> dict[str, Any]:
            at = now()
            entry = AuditEntry(
                seq=seq,
                at=at,
                actor=actor,
                action=action,
                purpose=purpose,
                query_sha256=query_sha256,
                details=details,
                prev_hash=prev,
                hash=entry_hash(seq, at, actor, action, purpose, query_sha256, body, prev),
            )
            made.append(entry)
            return {**entry.model_dump(), "details": body}

        for _ in range(20):  # another process may take the same seq: read the new head, try again
            if store.append(self.catalog, GENESIS, build):
                return made[-1]
        raise FacefindError("could not append to the audit log: it is being written too busily; try again")

    def entries(self, since: str | None = None, until: str | None = None) -> Iterator[AuditEntry]:
        """Entries in order; `since`/`until` are ISO dates or times (UTC), inclusive."""
        for option, value in (("--since", since), ("--until", until)):
            try:
                if value:
                    datetime.fromisoformat(value)
            except ValueError:
                raise InvalidValue(
                    f"{option} {value!r} is not a date or time; use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC)"
                ) from None
        end = until + ("T99" if until and len(until) == 10 else "") if until else None
        for r in store.rows(self.catalog, since, end):
            try:
                details = json.loads(r.details)
            except json.JSONDecodeError:
                details = {"unreadable": r.details}
            yield AuditEntry(**{**r._mapping, "details": details})

    def purge(self, before: str, actor: str) -> AuditEntry | None:
        """Delete entries older than `before` (retention) and append a signed checkpoint recording
        where the remaining chain starts, so `verify` still vouches for it. None if nothing is due."""
        last = store.last_before(self.catalog, before)
        if last is None:
            return None
        statement = {
            "purged_through_seq": int(last.seq),
            "purged_through_hash": last.hash,
            "purged_before": before,
        }
        signature, public_key = self._sign(canonical(statement))
        count = store.delete_through(self.catalog, int(last.seq))
        details = {**statement, "purged_count": count, "signature": signature, "public_key": public_key}
        return self.record(actor, "checkpoint", details)

    def _sign(self, message: str) -> tuple[str, str]:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if self.key_file is None:
            raise FacefindError("purging the audit log needs a signing key file; open the catalog by path")
        if self.key_file.exists():
            key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
            assert isinstance(key, Ed25519PrivateKey)
        else:
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
        public = (
            key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
        )
        known = self.catalog.get_setting("audit_public_key", "")
        if not known:
            self.catalog.set_setting("audit_public_key", public)
        elif known != public:
            raise FacefindError(
                f"{self.key_file} is not the key this audit log was signed with; restore the original"
            )
        return key.sign(message.encode()).hex(), public

    def verify(self) -> AuditVerification:
        """Recompute the chain; name every entry that was edited, removed before, or moved."""
        problems: list[AuditProblem] = []
        expected_prev: str | None = None
        expected_seq: int | None = None
        count, first, last, head = 0, None, None, None
        rows = store.rows(self.catalog)
        starts, bad_checkpoints = _chain_starts(rows, self.catalog.get_setting("audit_public_key", ""))
        problems.extend(bad_checkpoints)
        for r in rows:
            count += 1
            first = r.seq if first is None else first
            own = entry_hash(
                r.seq, r.at, r.actor, r.action, r.purpose, r.query_sha256, r.details, r.prev_hash
            )
            if own != r.hash:
                problems.append(
                    AuditProblem(seq=r.seq, problem="edited: its content no longer matches its hash")
                )
            if expected_seq is not None and r.seq != expected_seq:
                problems.append(
                    AuditProblem(
                        seq=r.seq,
                        problem=f"entries {expected_seq}..{r.seq - 1} are missing (deleted) before it",
                    )
                )
            elif expected_prev is not None and r.prev_hash != expected_prev:
                problems.append(
                    AuditProblem(
                        seq=r.seq,
                        problem="out of chain: it does not follow the entry before it "
                        "(that entry was edited, replaced or moved)",
                    )
                )
            elif expected_prev is None and r.prev_hash not in starts:
                problems.append(
                    AuditProblem(
                        seq=r.seq,
                        problem="the log starts here, but no genesis or checkpoint vouches for it "
                        "(earlier entries were deleted)",
                    )
                )
            expected_prev, expected_seq = r.hash, r.seq + 1
            last, head = r.seq, r.hash
        return AuditVerification(
            ok=not problems, entries=count, first_seq=first, last_seq=last, head_hash=head, problems=problems
        )


def _chain_starts(rows: Sequence[Any], public_key: str) -> tuple[set[str], list[AuditProblem]]:
    """Hashes a log may start from: the genesis, or the last purged hash a checkpoint recorded and
    signed with the catalog's key. Checkpoints whose signature does not verify are problems."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    starts, problems = {GENESIS}, []
    for r in rows:
        if r.action != "checkpoint":
            continue
        try:
            details = json.loads(r.details)
            statement = {
                k: details[k] for k in ("purged_through_seq", "purged_through_hash", "purged_before")
            }
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
            key.verify(bytes.fromhex(details["signature"]), canonical(statement).encode())
            starts.add(details["purged_through_hash"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, InvalidSignature):
            problems.append(AuditProblem(seq=r.seq, problem="checkpoint signature does not verify"))
    return starts, problems
