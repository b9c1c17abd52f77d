"""Audit log exports for an authority, with the chain proof, checked again offline.

An export (JSON lines or CSV) holds every entry of a date range exactly as stored (the details as
their stored JSON text, so each entry's hash can be recomputed) and a proof: the range's first and
last entries and their hashes, signed with the audit key (witness.py) together with the catalog's
audit id, and the log's signed head at export time. `verify_export` recomputes every hash, checks
that each entry follows the one before (no entry left out, moved or edited) and that the signed
statement names exactly these entries. Whoever edits an entry, or edits it and recomputes every
hash, breaks the export: only the key's owner can sign a new statement. The public key is in the
export; an authority compares it with the one the operator published (`facefind audit head`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from ..catalog import now
from ..errors import FacefindError, InvalidValue
from .audit import AuditLog, AuditProblem, canonical, entry_hash
from .witness import SignedHead, signature_holds

FORMAT = "facefind-audit-export/1"
FORMATS = ("jsonl", "csv")
FIELDS = ["seq", "at", "actor", "action", "purpose", "query_sha256", "details", "prev_hash", "hash"]
STATEMENT = ["format", "catalog", "since", "until", "exported_at", "entries", "first_seq", "last_seq"]
STATEMENT += ["first_prev_hash", "last_hash"]


class ExportProof(BaseModel):
    format: str
    catalog: str  # the catalog's audit id (witness.py)
    since: str | None
    until: str | None
    exported_at: str
    entries: int
    first_seq: int | None
    last_seq: int | None
    first_prev_hash: str | None  # the hash the range follows (of the entry before it, or the genesis)
    last_hash: str | None
    signature: str | None  # Ed25519 over the statement (every field above), None without a key file
    public_key: str | None
    log_head: SignedHead | None  # the whole log's signed head when exported

    def statement(self) -> bytes:
        return canonical({k: getattr(self, k) for k in STATEMENT}).encode()


class ExportVerification(BaseModel):
    ok: bool
    entries: int
    first_seq: int | None
    last_seq: int | None
    signed: bool  # the statement's signature holds with `public_key`
    public_key: str | None
    problems: list[AuditProblem]  # seq 0: the export as a whole
    scope: str


def export(
    log: AuditLog, fmt: str = "jsonl", since: str | None = None, until: str | None = None
) -> tuple[ExportProof, str]:
    """The entries from `since` to `until` and their proof, as the text of an export file. Refused
    while the log does not verify (as `head` is): a broken log is not signed."""
    if fmt not in FORMATS:
        raise InvalidValue(f"--format {fmt!r}: give jsonl or csv")
    rows = log.stored_rows(since, until)
    result = log.verify()
    if not result.ok:
        raise FacefindError(
            "the audit log does not verify, so no signed export is made: `facefind audit verify` names "
            "the problems"
        )
    proof = ExportProof(
        format=FORMAT,
        catalog=log.catalog_id() if log.witness is not None else "",
        since=since,
        until=until,
        exported_at=now(),
        entries=len(rows),
        first_seq=int(rows[0].seq) if rows else None,
        last_seq=int(rows[-1].seq) if rows else None,
        first_prev_hash=rows[0].prev_hash if rows else None,
        last_hash=rows[-1].hash if rows else None,
        signature=None,
        public_key=None,
        log_head=result.witness,
    )
    if log.witness is not None:
        proof.signature = log.witness.sign(proof.statement())
        proof.public_key = log.witness.public_key()
    entries = [{k: (int(r.seq) if k == "seq" else getattr(r, k)) for k in FIELDS} for r in rows]
    return proof, _jsonl(proof, entries) if fmt == "jsonl" else _csv(proof, entries)


def _jsonl(proof: ExportProof, entries: list[dict[str, Any]]) -> str:
    lines = [json.dumps({"proof": proof.model_dump()})]  # ASCII: any odd name is kept as an escape
    lines += [json.dumps(e) for e in entries]
    return "\n".join(lines) + "\n"


def _csv(proof: ExportProof, entries: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["record", *FIELDS])
    writer.writerow(["proof", *[""] * (len(FIELDS) - 3), json.dumps(proof.model_dump()), "", ""])
    for e in entries:
        writer.writerow(["entry", *[_cell(e[k]) for k in FIELDS]])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    """A CSV cell: None is empty, text is escaped to ASCII like JSON (odd file names keep their bytes)."""
    if value is None:
        return ""
    return json.dumps(value)[1:-1] if isinstance(value, str) else str(value)


def read(path: Path) -> tuple[ExportProof, list[dict[str, Any]], Literal["jsonl", "csv"]]:
    """The proof and entries of an export file, either format."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidValue(f"cannot read the export {path}: {e}") from None
    try:
        if text.startswith("record,"):
            rows = list(csv.reader(io.StringIO(text)))
            proof = ExportProof(**json.loads(rows[1][FIELDS.index("details") + 1]))
            entries = [_from_cells(r[1:]) for r in rows[2:] if r and r[0] == "entry"]
            return proof, entries, "csv"
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        entries = lines[1:]
        for n, entry in enumerate(entries):
            if not isinstance(entry.get("seq"), int) or any(
                not isinstance(entry.get(k), str | None) for k in FIELDS[1:]
            ):
                raise ValueError(f"line {n + 2} is not an audit entry")
        return ExportProof(**lines[0]["proof"]), entries, "jsonl"
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise InvalidValue(
            f"{path} is not a facefind audit export (`facefind audit export --out FILE` makes one): {e}"
        ) from None


def _from_cells(cells: list[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for key, cell in zip(FIELDS, cells, strict=True):
        if key == "seq":
            entry[key] = int(cell)
        elif key in ("purpose", "query_sha256") and cell == "":
            entry[key] = None
        else:
            entry[key] = json.loads(f'"{cell}"')
    return entry


def verify_export(path: Path, public_key: str | None = None) -> ExportVerification:
    """Check an export offline: every entry's hash, the links between them, and the signed statement
    (against `public_key` when given, else the key the export names)."""
    proof, entries, _ = read(path)
    problems: list[AuditProblem] = []
    previous: dict[str, Any] | None = None
    for e in entries:
        try:
            own = entry_hash(
                e["seq"],
                e["at"],
                e["actor"],
                e["action"],
                e["purpose"],
                e["query_sha256"],
                e["details"],
                e["prev_hash"],
            )
        except KeyError as missing:
            problems.append(AuditProblem(seq=int(e.get("seq") or 0), problem=f"has no {missing} field"))
            continue
        if own != e["hash"]:
            problems.append(
                AuditProblem(seq=e["seq"], problem="edited: its content no longer matches its hash")
            )
        if previous is not None and e["seq"] != previous["seq"] + 1:
            problems.append(
                AuditProblem(
                    seq=e["seq"], problem=f"entries {previous['seq'] + 1}..{e['seq'] - 1} are missing"
                )
            )
        elif previous is not None and e["prev_hash"] != previous["hash"]:
            problems.append(
                AuditProblem(seq=e["seq"], problem="out of chain: it does not follow the entry before it")
            )
        previous = e
    claimed = (proof.entries, proof.first_seq, proof.last_seq, proof.first_prev_hash, proof.last_hash)
    found = (
        len(entries),
        entries[0]["seq"] if entries else None,
        entries[-1]["seq"] if entries else None,
        entries[0]["prev_hash"] if entries else None,
        entries[-1]["hash"] if entries else None,
    )
    if claimed != found:
        problems.append(
            AuditProblem(
                seq=0,
                problem=f"the signed statement names {proof.entries} entries "
                f"#{proof.first_seq}..#{proof.last_seq} "
                f"ending in hash {(proof.last_hash or '-')[:16]}, the export holds {found[0]} entries "
                f"#{found[1]}..#{found[2]} ending in {(found[4] or '-')[:16]}: entries were added, left out "
                "or rewritten",
            )
        )
    key = public_key or proof.public_key
    if public_key and proof.public_key and public_key != proof.public_key:
        problems.append(
            AuditProblem(seq=0, problem="the export was signed with another key than the one given")
        )
    signed = bool(key and proof.signature and signature_holds(key, proof.signature, proof.statement()))
    if proof.signature and not signed:
        problems.append(AuditProblem(seq=0, problem="the statement's signature does not verify"))
    head = proof.log_head
    if head is not None and key and not signature_holds(key, head.signature, head.message()):
        problems.append(AuditProblem(seq=0, problem="the log head's signature does not verify"))
    elif head is not None and proof.last_seq == head.seq and proof.last_hash != head.hash:
        problems.append(AuditProblem(seq=head.seq, problem="the last entry is not the signed log head"))
    if signed:
        scope = (
            f"every entry's hash and link, and the statement signed with key {key}: compare that key with "
            "the one the operator published (`facefind audit head`); the export shows the entries "
            "exactly as the log held them when exported"
        )
    else:
        scope = (
            "every entry's hash and link only: the export is not signed, so a range rewritten with every "
            "hash recomputed would pass; ask for an export made with the audit key"
        )
    return ExportVerification(
        ok=not problems,
        entries=len(entries),
        first_seq=found[1],
        last_seq=found[2],
        signed=signed,
        public_key=key,
        problems=sorted(problems, key=lambda p: p.seq),
        scope=scope,
    )
