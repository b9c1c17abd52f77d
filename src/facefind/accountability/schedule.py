"""The public retention schedule: for each collection, whose photos, why, on what basis, and when
their faces are destroyed (Illinois BIPA Sec. 15(a) asks for it in writing, public, before
collection). Built from the collections as declared; Markdown to publish, HTML to put online.
"""

from __future__ import annotations

import html

from pydantic import BaseModel

from ..catalog import now
from .collections import BASES, Collection


class ScheduleEntry(BaseModel):
    collection: str
    owner: str | None
    basis: str | None
    basis_meaning: str | None
    purposes: str | None  # the collection's note (the purpose, the balancing test's place)
    retention_days: int | None  # destroyed this long after indexing
    destroy_after_last_use_days: int | None  # destroyed this long after the last interaction
    rule: str  # both in words


class RetentionSchedule(BaseModel):
    made_at: str
    collections: list[ScheduleEntry]


def build(found: list[Collection]) -> RetentionSchedule:
    entries = []
    for c in found:
        rules = []
        if c.retention_days:
            rules.append(f"destroyed {c.retention_days} days after indexing")
        if c.destroy_after_last_use_days:
            rules.append(
                f"destroyed within {c.destroy_after_last_use_days} days of the last interaction "
                "(last indexed, or last returned by a search or shown)"
            )
        entries.append(
            ScheduleEntry(
                collection=c.name,
                owner=c.owner,
                basis=c.basis,
                basis_meaning=BASES.get(c.basis or ""),
                purposes=c.note,
                retention_days=c.retention_days,
                destroy_after_last_use_days=c.destroy_after_last_use_days,
                rule="; ".join(rules) or "no retention period declared",
            )
        )
    return RetentionSchedule(made_at=now(), collections=entries)


INTRO = (
    "Face templates (biometric identifiers) are made from the photos of these collections to find "
    "faces in them. They are kept only as long as the schedule below says, and destroyed (with an "
    "erasure receipt) by `facefind purge` when the first of these periods ends, or earlier when a "
    "person's consent is withdrawn or they opt out."
)
COLUMNS = ["Collection", "Owner", "Lawful basis", "Purposes and notes", "Retention and destruction"]


def _cells(e: ScheduleEntry) -> list[str]:
    basis = f"{e.basis} ({e.basis_meaning})" if e.basis_meaning else (e.basis or "none declared")
    return [e.collection, e.owner or "-", basis, e.purposes or "-", e.rule]


def markdown(s: RetentionSchedule) -> str:
    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = [f"# Retention schedule and purposes\n\nAs of {s.made_at} (UTC).\n\n{INTRO}\n"]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "---|" * len(COLUMNS))
    lines += ["| " + " | ".join(cell(c) for c in _cells(e)) + " |" for e in s.collections]
    return "\n".join(lines) + "\n"


def to_html(s: RetentionSchedule) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(e)) + "</tr>\n" for e in s.collections
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Retention schedule and purposes</title></head><body>\n"
        f"<h1>Retention schedule and purposes</h1>\n<p>As of {html.escape(s.made_at)} (UTC).</p>\n"
        f"<p>{html.escape(INTRO)}</p>\n<table>\n<tr>{head}</tr>\n{rows}</table>\n</body></html>\n"
    )
