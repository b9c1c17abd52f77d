"""The transparency report: what this catalog was used for, and what was done to honour people.

Built from the audit log and the accountability tables only (no photos, no embeddings), so it
can be published: searches per actor and purpose with hit rates, opt-outs honoured, erasures,
consents (and those expiring soon), and each collection's declared basis.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from . import collections, consent, optouts
from .audit import AuditLog

SOON_DAYS = 30


def build(catalog: Catalog, audit: AuditLog, since: str | None = None) -> dict[str, Any]:
    entries = list(audit.entries(since))
    searches = [e for e in entries if e.action == "search"]
    by_actor: dict[str, dict[str, Any]] = defaultdict(lambda: {"searches": 0, "with_match": 0})
    by_purpose: Counter[str] = Counter()
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    for e in searches:
        hit = any(f["matches"] for f in e.details.get("faces", [])) or bool(e.details.get("photos"))
        by_actor[e.actor]["searches"] += 1
        by_actor[e.actor]["with_match"] += int(hit)
        by_purpose[e.purpose or "-"] += 1
        per_day[e.at[:10]][e.actor] += 1
    for row in by_actor.values():
        row["hit_rate"] = round(row["with_match"] / row["searches"], 3) if row["searches"] else None
    erasures = [e.details for e in entries if e.action == "erase"]
    decided = [e for e in entries if e.action == "confirm"]
    exports = [e for e in entries if e.action == "export"]
    records = consent.all_(catalog)
    soon = (datetime.now(UTC).date() + timedelta(days=SOON_DAYS)).isoformat()
    in_force = optouts.all_(catalog)
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "since": since or (entries[0].at if entries else None),
        "audit_entries": len(entries),
        "audit_intact": audit.verify().ok,
        "searches": {
            "total": len(searches),
            "with_match": sum(r["with_match"] for r in by_actor.values()),
            "by_actor": dict(by_actor),
            "by_purpose": dict(by_purpose.most_common()),
            "per_day": {day: dict(c) for day, c in sorted(per_day.items())},
        },
        "verifications": sum(e.action == "verify" for e in entries),
        # Human oversight and people's access to their data (issue 26): every decision on a candidate,
        # every subject access export, every copy published with faces hidden.
        "oversight": {
            "confirmations": len(decided),
            "rejections": sum(e.action == "reject" for e in entries),
            "identified": sum(e.details.get("state") == "identified" for e in decided),
            "subject_access_exports": sum(e.details.get("what") == "subject access" for e in exports),
            "redacted_copies": sum(e.action == "redact" for e in entries),
        },
        "optouts": {
            "in_force": len(in_force),
            # distinct faces: two opt-outs of one person suppress the same faces once
            "faces_suppressed": len(optouts.suppressed_faces(catalog)),
            "requests_in_period": sum(e.action == "optout" and "added" in e.details for e in entries),
        },
        "erasures": {
            "total": len(erasures),
            "by_kind": dict(Counter(d["kind"] for d in erasures)),
            "faces_removed": sum(d["faces_removed"] for d in erasures),
            "images_removed": sum(d["images_removed"] for d in erasures),
        },
        "consents": {
            "active": sum(c.active for c in records),
            "withdrawn": sum(c.withdrawn_at is not None for c in records),
            "expired": sum(not c.active and c.withdrawn_at is None for c in records),
            "expiring_within_30_days": [
                {"consent": c.id, "person": c.person_id, "expires_on": c.expires_on}
                for c in records
                if c.active and c.expires_on <= soon
            ],
        },
        "collections": [c.model_dump(exclude={"created_at"}) for c in collections.all_(catalog)],
    }


def markdown(report: dict[str, Any]) -> str:
    s = report["searches"]
    integrity = (
        "intact (hash chain verified)" if report["audit_intact"] else "BROKEN: see `facefind audit verify`"
    )
    e = report["erasures"]
    o = report["oversight"]
    lines = [
        "# facefind transparency report",
        "",
        f"Generated {report['generated_at']}, covering {report['since'] or 'no activity yet'} onwards. "
        f"Audit log: {report['audit_entries']} entries, {integrity}.",
        "",
        "## Searches",
        "",
        f"{s['total']} searches, {s['with_match']} with at least one match; "
        f"{report['verifications']} verifications.",
        "",
        "| actor | searches | with a match | hit rate |",
        "|---|---|---|---|",
        *(
            f"| {_cell(actor)} | {r['searches']} | {r['with_match']} | {r['hit_rate']} |"
            for actor, r in sorted(s["by_actor"].items())
        ),
        "",
        "| purpose | searches |",
        "|---|---|",
        *(f"| {_cell(purpose)} | {n} |" for purpose, n in s["by_purpose"].items()),
        "",
        "## Human oversight",
        "",
        f"- Candidates confirmed by a reviewer: {o['confirmations']} decision(s), {o['identified']} "
        f"reaching the confirmations their collection requires; {o['rejections']} rejected.",
        f"- Copies published with faces hidden: {o['redacted_copies']}.",
        "",
        "## People's requests honoured",
        "",
        f"- Subject access exports: {o['subject_access_exports']}.",
        f"- Opt-outs in force: {report['optouts']['in_force']}, suppressing "
        f"{report['optouts']['faces_suppressed']} stored faces; "
        f"{report['optouts']['requests_in_period']} new in this period.",
        f"- Erasures: {e['total']} ({_kinds(e['by_kind'])}), "
        f"{e['faces_removed']} faces and {e['images_removed']} photos removed.",
        f"- Consents: {report['consents']['active']} active, {report['consents']['withdrawn']} withdrawn, "
        f"{report['consents']['expired']} expired; "
        f"{len(report['consents']['expiring_within_30_days'])} expiring within {SOON_DAYS} days"
        + "".join(
            f"\n  - person {c['person']}: consent {c['consent']} ends {c['expires_on']}"
            for c in report["consents"]["expiring_within_30_days"]
        ),
        "",
        "## Collections and their lawful basis",
        "",
        "| collection | owner | basis | retention (days) | photos |",
        "|---|---|---|---|---|",
        *(
            f"| {_cell(c['name'])} | {_cell(c['owner'] or '-')} | {c['basis'] or 'none'} | "
            f"{c['retention_days'] or '-'} | {c['images']} |"
            for c in report["collections"]
        ),
        "",
    ]
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path) -> None:
    """Searches per day, stacked by actor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = sorted(report["searches"]["per_day"])
    actors = sorted({a for d in days for a in report["searches"]["per_day"][d]})
    fig, ax = plt.subplots(figsize=(8, 3.5))
    bottom = [0] * len(days)
    for actor in actors:
        counts = [report["searches"]["per_day"][d].get(actor, 0) for d in days]
        ax.bar(days, counts, bottom=bottom, label=actor)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set_ylabel("searches")
    ax.set_title("Searches per day, by actor")
    if actors:
        ax.legend(fontsize="small")
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _kinds(by_kind: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(by_kind.items())) or "none"


_MARKUP = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def _cell(text: str) -> str:
    """Free text (a purpose, an actor, a name) as one inert Markdown table cell: no new rows, no
    links, images or HTML, whatever the text holds."""
    flat = " ".join(str(text).split())
    return _MARKUP.sub(r"\\\1", flat)
