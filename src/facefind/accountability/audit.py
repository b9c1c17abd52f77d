"""A tamper-evident audit log: who searched for whom, why, and what they got.

Each entry holds the SHA-256 of its own content and of the entry before it, so editing, deleting
or reordering any entry breaks the chain at that entry, and `verify()` names it. The log lives
in the catalog (table `audit_log`); it stores hashes and ids, never photos or embeddings.
A purge of old entries (retention, never younger than MIN_RETENTION_DAYS) leaves a checkpoint
entry recording the hash the remaining chain starts from, signed, so the chain stays verifiable.

The chain alone shows edits, gaps and reordering, but not a deleted tail or a history rewritten with
every hash recomputed: for those `verify` checks the head signed after every append with the key
kept outside the catalog (witness.py), and a head exported earlier (`expect_head`).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import secrets
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from ..catalog import Catalog, now
from ..catalog import audit as store
from ..errors import FacefindError, InvalidValue
from ..paths import escape_json_surrogates
from .witness import SignedHead, Witness, location_id, signature_holds

GENESIS = "0" * 64
CATALOG_ID = "audit_catalog_id"  # meta: the name of this catalog's signed head (witness.py)
NO_HEAD = (
    "the audit key holds no signed head for this catalog, but holds {others} of other catalogs: this "
    "catalog was moved in or replaced (its newest entries may have been deleted), its audit id was "
    "changed, or the key is shared with another catalog; compare with a head exported earlier "
    "(--expect-head), or restore the catalog from a backup; a catalog of its own needs its own key "
    "(FACEFIND_AUDIT_KEY)"
)
NOT_WITNESSED = (
    "entries before #{since} were not witnessed by this key: its signed head of this catalog began at "
    "#{since}, when the key already witnessed other catalogs (this catalog was moved in, replaced or "
    "re-identified, and its newest entries then may have been deleted, or the key was shared late); "
    "compare with a head exported earlier (--expect-head)"
)
# Audit entries are kept at least six months: the logs of a high-risk AI system's deployer,
# EU AI Act Art. 26(6). A purge of younger entries is refused.
MIN_RETENTION_DAYS = 183


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
    problems: list[AuditProblem]  # seq 0: the log as a whole (its keys)
    # What vouched for the newest entries beyond the chain itself; empty: internal consistency only.
    checked_against: list[Literal["witness", "expected_head"]]
    witness: SignedHead | None  # the head signed with the key file, as found beside it
    scope: str  # in words: what this verification can and cannot vouch for


def parse_head(text: str) -> tuple[int, str]:
    """'SEQ:HASH' (as `facefind audit head` prints it) -> (seq, hash)."""
    seq, _, digest = text.strip().partition(":")
    digest = digest.strip().lower()
    if not seq.strip().isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidValue(
            f"--expect-head {text!r} is not SEQ:HASH (an entry number and its 64-hex-digit hash, "
            "as `facefind audit head` prints them)"
        )
    return int(seq), digest


def check_retention(days: int) -> None:
    if days < MIN_RETENTION_DAYS:
        raise InvalidValue(
            f"audit entries are kept for at least {MIN_RETENTION_DAYS} days (6 months, EU AI Act "
            f"Art. 26(6)); purging those older than {days} days is refused: give --audit-older-than "
            f"{MIN_RETENTION_DAYS}d or longer (e.g. 1y)"
        )


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
        # The Ed25519 key that signs the head after every append and retention checkpoints; kept
        # outside the catalog, with the signed head beside it. None: the log is not anchored.
        self.key_file = key_file
        self.witness = Witness(key_file) if key_file is not None else None
        self._id: str | None = None  # audit_catalog_id, once known (witness.py)

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

        if self.witness is not None:
            self.witness.key()  # made or read before the entry is written, so a bad key file fails first
        for _ in range(20):  # another process may take the same seq: read the new head, try again
            if store.append(self.catalog, GENESIS, build):
                entry = made[-1]
                if self.witness is not None:
                    self.witness.advance(self._catalog_id(), entry.seq, entry.hash, entry.at)
                return entry
        raise FacefindError("could not append to the audit log: it is being written too busily; try again")

    def entries(self, since: str | None = None, until: str | None = None) -> Iterator[AuditEntry]:
        """Entries in order; `since`/`until` are ISO dates or times (UTC), inclusive."""
        for r in self.stored_rows(since, until):
            try:
                details = json.loads(r.details)
            except json.JSONDecodeError:
                details = {"unreadable": r.details}
            yield AuditEntry(**{**r._mapping, "details": details})

    def stored_rows(self, since: str | None = None, until: str | None = None) -> list[Any]:
        """The entries as stored (details as their hashed JSON text), `since`/`until` as in `entries`."""
        for option, value in (("--since", since), ("--until", until)):
            try:
                if value:
                    datetime.fromisoformat(value)
            except ValueError:
                raise InvalidValue(
                    f"{option} {value!r} is not a date or time; use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC)"
                ) from None
        end = until + ("T99" if until and len(until) == 10 else "") if until else None
        return store.rows(self.catalog, since, end)

    def purge(self, older_than_days: int, actor: str) -> AuditEntry | None:
        """Delete entries older than `older_than_days` (retention; at least MIN_RETENTION_DAYS) and
        append a signed checkpoint recording where the remaining chain starts, so `verify` still
        vouches for it. None if nothing is due."""
        check_retention(older_than_days)
        before = (datetime.now(UTC) - timedelta(days=older_than_days)).isoformat()
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
        if self.witness is None:
            raise FacefindError("purging the audit log needs a signing key file; set FACEFIND_AUDIT_KEY")
        signature, public = self.witness.sign(message.encode()), self.witness.public_key() or ""
        known = self.catalog.get_setting("audit_public_key", "")
        if not known:
            self.catalog.set_setting("audit_public_key", public)
        elif known != public:
            raise FacefindError(
                f"{self.key_file} is not the key this audit log was signed with; restore the original"
            )
        return signature, public

    def head(self) -> SignedHead:
        """The newest entry, signed with the key file, to export (to the DPO, an authority, a
        notary): a later `verify(expect_head=...)` shows whether the log still holds it unchanged.
        Refused unless the log verifies."""
        if self.witness is None:
            raise FacefindError("signing the audit head needs the key file; set FACEFIND_AUDIT_KEY")
        result = self.verify()
        if not result.ok:
            raise FacefindError(
                "the audit log does not verify, so its head is not signed: `facefind audit verify` "
                "names the problems"
            )
        newest = store.newest(self.catalog)
        if newest is None:
            raise FacefindError("the audit log is empty: there is no head to export yet")
        return self.witness.advance(self._catalog_id(), int(newest.seq), newest.hash, newest.at)

    def catalog_id(self) -> str:
        """The catalog's audit id, as its signed heads name it (needs the key file)."""
        return self._catalog_id()

    def _catalog_id(self) -> str:
        """The catalog's audit id (meta `audit_catalog_id`), made under the key file's lock the first
        time: a catalog witnessed before ids existed keeps its location's hash, a new one a random id."""
        if self._id is None:
            assert self.witness is not None
            found = self.catalog.get_setting(CATALOG_ID, "")
            if not found:
                with self.witness.locked():
                    found = self.catalog.get_setting(CATALOG_ID, "")
                    if not found:
                        legacy = location_id(self.catalog.engine.url)
                        found = legacy if self.witness.holds(legacy) else secrets.token_hex(16)
                        self.catalog.set_setting(CATALOG_ID, found)
            self._id = found
        return self._id

    def verify(self, expect_head: str | None = None) -> AuditVerification:
        """Recompute the chain; name every entry that was edited, removed before, or moved. The
        newest entries are checked against the head signed with the key file (the witness) and
        against `expect_head` ('SEQ:HASH', exported earlier by `head()`), when there are any."""
        expected = parse_head(expect_head) if expect_head is not None else None
        problems: list[AuditProblem] = []
        rows = store.rows(self.catalog)
        public = self._public_key(problems)
        starts, bad_checkpoints = _chain_starts(rows, public)
        problems.extend(bad_checkpoints)
        problems.extend(_chain_problems(rows, starts))
        by_seq = {int(r.seq): r.hash for r in rows}
        first = int(rows[0].seq) if rows else None
        last = int(rows[-1].seq) if rows else None

        checked: list[Literal["witness", "expected_head"]] = []
        witness = self._witnessed(public, problems, last)
        if witness is not None:
            checked.append("witness")
            problems.extend(
                _anchor_problems(by_seq, last, starts, witness.seq, witness.hash, "the signed head")
            )
        if expected is not None:
            checked.append("expected_head")
            problems.extend(_anchor_problems(by_seq, last, starts, *expected, "the expected head"))
        return AuditVerification(
            ok=not problems,
            entries=len(rows),
            first_seq=first,
            last_seq=last,
            head_hash=rows[-1].hash if rows else None,
            problems=sorted(problems, key=lambda p: p.seq),
            checked_against=checked,
            witness=witness,
            scope=_scope(witness, expected, last),
        )

    def _public_key(self, problems: list[AuditProblem]) -> str | None:
        """The key file's public key: what checkpoints and heads are checked with. The catalog's copy
        is only compared with it (whoever writes the catalog could swap it)."""
        public = self.witness.public_key() if self.witness is not None else None
        known = self.catalog.get_setting("audit_public_key", "")
        if known and public is None:
            problems.append(
                AuditProblem(
                    seq=0,
                    problem="the key file that signed this log is missing, so its checkpoints cannot be "
                    "checked: restore it (or set FACEFIND_AUDIT_KEY to it)",
                )
            )
        elif known and known != public:
            problems.append(
                AuditProblem(
                    seq=0,
                    problem="the catalog's audit public key is not the key file's: it was replaced, or "
                    "the key file is not this catalog's",
                )
            )
        return public

    def _witnessed(
        self, public: str | None, problems: list[AuditProblem], last: int | None
    ) -> SignedHead | None:
        if self.witness is None:
            return None
        if public is None:
            if self.witness.head_file.exists():
                problem = "a signed head is kept, but the key file that signed it is missing: restore it"
                problems.append(AuditProblem(seq=0, problem=problem))
            return None
        # Verify only reads: a catalog without an id yet is named as before ids existed.
        catalog = self.catalog.get_setting(CATALOG_ID, "") or location_id(self.catalog.engine.url)
        try:
            witness = self.witness.read(catalog)
            others = self.witness.others(catalog)
        except FacefindError as e:
            problems.append(AuditProblem(seq=0, problem=str(e)))
            return None
        if witness is None:
            if last is not None and others:
                problems.append(AuditProblem(seq=0, problem=NO_HEAD.format(others=others)))
            return None
        if not signature_holds(public, witness.signature, witness.message()):
            problems.append(
                AuditProblem(seq=witness.seq, problem="the signed head's signature does not verify")
            )
            return None
        if witness.since is not None:
            late = NOT_WITNESSED.format(since=witness.since)
            problems.append(AuditProblem(seq=witness.since, problem=late))
        return witness


def _chain_problems(rows: Sequence[Any], starts: dict[str, int]) -> list[AuditProblem]:
    """Entries whose content does not match their hash, gaps, and links that do not follow."""
    problems: list[AuditProblem] = []
    expected_prev: str | None = None
    expected_seq: int | None = None
    for r in rows:
        own = entry_hash(r.seq, r.at, r.actor, r.action, r.purpose, r.query_sha256, r.details, r.prev_hash)
        if own != r.hash:
            problems.append(AuditProblem(seq=r.seq, problem="edited: its content no longer matches its hash"))
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
    return problems


def _anchor_problems(
    by_seq: dict[int, str], last: int | None, starts: dict[str, int], seq: int, digest: str, name: str
) -> list[AuditProblem]:
    """The log must still hold entry `seq` with hash `digest` (or a signed checkpoint purged it)."""
    if seq in by_seq:
        if by_seq[seq] == digest:
            return []
        return [
            AuditProblem(
                seq=seq,
                problem=f"re-chained: {name} has #{seq} with hash {digest[:16]}..., the log has "
                f"{by_seq[seq][:16]}...: the history up to it was rewritten and the hashes recomputed",
            )
        ]
    if last is None or seq > last:
        end = f"ends at #{last}" if last is not None else "is empty"
        gone = f"entries #{(last or 0) + 1}..#{seq} are" if seq > (last or 0) + 1 else f"entry #{seq} is"
        return [
            AuditProblem(
                seq=(last or 0) + 1,
                problem=f"{gone} missing: {name} is #{seq}, but the log {end} "
                "(the newest entries were deleted)",
            )
        ]
    purged_through = max((s for h, s in starts.items() if h != GENESIS), default=0)
    purged_hash = next((h for h, s in starts.items() if s == seq), None)
    if seq <= purged_through and (purged_hash is None or purged_hash == digest):
        return []  # purged under a signed checkpoint
    return [AuditProblem(seq=seq, problem=f"{name} #{seq} is missing: it was deleted")]


def _scope(witness: SignedHead | None, expected: tuple[int, str] | None, last: int | None) -> str:
    if witness is None and expected is None:
        return (
            "internal consistency only: there is no signed head or expected head to check against, so "
            "the newest entries could have been deleted, or the history rewritten with every hash "
            "recomputed, unseen; give --expect-head SEQ:HASH from an exported `facefind audit head`"
        )
    against = []
    if witness is not None:
        against.append(f"the head #{witness.seq} signed with the key file at {witness.at}")
    if expected is not None:
        against.append(f"the expected head #{expected[0]}")
    newest = max(witness.seq if witness else 0, expected[0] if expected else 0)
    unsigned = (
        f"; entries #{newest + 1}..#{last} are newer than that and vouched for by the chain only"
        if last is not None and last > newest
        else ""
    )
    return (
        f"the chain, and {' and '.join(against)}: entries up to it cannot have been deleted or "
        f"rewritten unseen by whoever could write the catalog but not the key file{unsigned}"
    )


def _chain_starts(rows: Sequence[Any], public_key: str | None) -> tuple[dict[str, int], list[AuditProblem]]:
    """Hashes a log may start from, each with the last seq before it: the genesis (0), or the last
    purged entry a checkpoint recorded and signed with the key file. Checkpoints whose signature
    does not verify with it are problems."""
    starts, problems = {GENESIS: 0}, []
    for r in rows:
        if r.action != "checkpoint":
            continue
        try:
            details = json.loads(r.details)
            statement = {
                k: details[k] for k in ("purged_through_seq", "purged_through_hash", "purged_before")
            }
            if public_key is None or not signature_holds(
                public_key, details["signature"], canonical(statement).encode()
            ):
                raise ValueError("signature")
            starts[str(details["purged_through_hash"])] = int(details["purged_through_seq"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            problems.append(AuditProblem(seq=r.seq, problem="checkpoint signature does not verify"))
    return starts, problems
