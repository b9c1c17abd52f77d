"""The impact-assessment pack (`facefind report --dpia`): what a DPIA (GDPR Art. 35) or a
fundamental-rights impact assessment (EU AI Act Art. 27) needs from the software, gathered from
the catalog: purposes, lawful bases, retention and destruction rules from the collections;
volumes; accuracy (the calibration's provenance, the error rates at search's operating point at
this catalog's size, and an `evaluate --json` result if given, with its per-group table);
oversight settings; the audit log's state. What the software cannot know (necessity,
proportionality, consultation, the people affected) is listed as questions for the operator.
Markdown, HTML or JSON; no photos, names or embeddings.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import policy
from ..calibration import DEFAULT_MAX_FMR, DEFAULT_MAX_FPIR
from ..catalog import persons as person_store
from ..errors import InvalidValue
from . import collections, consent, optouts
from . import keys as service_keys
from .audit import MIN_RETENTION_DAYS

if TYPE_CHECKING:
    from ..engine import FaceFind

FORMATS = ("markdown", "html", "json")
# What an assessment needs of an `evaluate --json` result (no file lists).
EVALUATION_FIELDS = (
    "folder",
    "images",
    "identities",
    "failure_rate",
    "verification",
    "identification",
    "open_set",
    "per_group",
)
QUESTIONS = [
    "Necessity: why is face search needed for each purpose above, and what less intrusive means "
    "(searching by name, date or event; asking people) were considered and why are they not enough?",
    "Proportionality: are the collections, their retention periods and the people who can search "
    "limited to what each purpose needs? Who is in the photos, and do they expect this use?",
    "People affected: which groups appear in the collections (staff, customers, children, "
    "bystanders, vulnerable people), and how are they told (notices, the public retention schedule)?",
    "Accuracy for them: were the error rates in this pack measured on people like those in your collections? "
    "If not, run `facefind evaluate` on a labelled sample of your own (with groups.csv for per-group "
    "rates) and attach it (--evaluation).",
    "Harm of a wrong match: what is done on a candidate, by whom, and what stops one person acting "
    "on a false match alone? What does a person wrongly matched suffer, and how do they contest it?",
    "Consultation: were the data protection officer, staff representatives and, where fitting, "
    "the people affected or their representatives consulted, and what did they say?",
    "Lawful basis: for biometric data (GDPR Art. 9) which exception of Art. 9(2) applies to each "
    "collection; for remote biometric identification, which national law authorises it?",
    "Security: who can reach the catalog, its backups and the audit key file; how are keys "
    "handed out and revoked; what happens on a breach?",
]


def build(ff: FaceFind, evaluation: dict[str, Any] | None = None) -> dict[str, Any]:
    catalog, now, model = ff.catalog, datetime.now(UTC), ff.backend.model_id
    found = collections.all_(catalog)
    stats = ff.stats()
    calibration = ff.calibration()
    stored = catalog.load_calibration(ff.backend.model_id) is not None
    # The faces a default search compares with, counted as search counts them (size and quality
    # minimums; opted-out and consent-withheld faces left out): the gallery its FPIR is stated at.
    hidden = policy.hidden_faces(catalog, "search")
    gallery = ff.vector_index().count_allowed(ff.settings.min_face_px, ff.settings.min_quality, None, hidden)
    cut = calibration.threshold_for_fpir(DEFAULT_MAX_FPIR, max(gallery, 1))
    at_cut, fpir = calibration.estimate(cut), calibration.fpir(cut, max(gallery, 1))
    verify_cut = calibration.threshold(DEFAULT_MAX_FMR)
    since = {days: (now - timedelta(days=days)).isoformat(timespec="seconds") for days in (30, 365)}
    entries = list(ff.audit.entries(since[365]))
    records = consent.all_(catalog)
    first = next(iter(ff.audit.entries()), None)
    # Confirmations a collection requires before a candidate is an identification (issue 26, item 1).
    confirmations = {c.name: c.confirmations for c in found}
    return {
        "generated_at": now.isoformat(timespec="seconds"),
        "collections": [
            {
                "name": c.name,
                "owner": c.owner,
                "basis": c.basis,
                "basis_meaning": collections.BASES.get(c.basis or ""),
                "purposes": c.note,
                "retention_days": c.retention_days,
                "destroy_after_last_use_days": c.destroy_after_last_use_days,
                "index_roots": c.roots,
                "photos": c.images,
            }
            for c in found
        ],
        "volumes": {
            "photos": stats["images"],
            "faces": stats["faces"],
            "faces_searchable": gallery,
            "persons": len(person_store.rows(catalog, model, include_hidden=True, leave_out=set())),
            "consents_active": sum(c.active for c in records),
            "consents_total": len(records),
            "optouts_in_force": len(optouts.all_(catalog)),
            "faces_suppressed_by_optouts": len(optouts.suppressed_faces(catalog)),
            **{
                f"{name}_last_{days}_days": sum(e.action == action and e.at >= since[days] for e in entries)
                for name, action in (("searches", "search"), ("verifications", "verify"))
                for days in (30, 365)
            },
        },
        "accuracy": {
            "model": ff.backend.model_id,
            "calibration": {
                "kind": "measured on this site (`facefind calibrate`)" if stored else "shipped with facefind",
                "source": calibration.source,
                "impostor_pairs": calibration.impostor_pairs,
                "genuine_pairs": calibration.genuine_pairs,
                "provenance": calibration.provenance,
            },
            "search_operating_point": {
                "rule": f"FPIR {DEFAULT_MAX_FPIR:g} at the number of faces searched",
                "faces_searched": gallery,
                "threshold": round(cut, 4),
                "fpir": fpir.value,
                "fpir_upper": fpir.upper,
                "fmr_per_comparison": at_cut.value,
                "fmr_upper": at_cut.upper,
                "extrapolated": at_cut.extrapolated,
            },
            "verify_operating_point": {"fmr": DEFAULT_MAX_FMR, "threshold": round(verify_cut, 4)},
            "evaluation": _evaluation(evaluation),
        },
        "oversight": {
            "confirmations_per_collection": confirmations,
            "search_needs_purpose": True,
            "every_search_audited": True,
            "results_are_candidates_for_human_review": True,
            "service_loosest_fmr": policy.LOOSEST_FMR,
            "service_max_candidates_per_face": policy.MAX_SERVICE_TOP_K,
            "roles": {action: sorted(r.value for r in roles) for action, roles in policy.ACTIONS.items()},
            "api_keys": sum(key.revoked_at is None for key in service_keys.all_(catalog)),
        },
        "audit": {
            "entries_last_365_days": len(entries),
            "first_entry": first.at if first else None,
            "retention_floor_days": MIN_RETENTION_DAYS,
            "intact": ff.audit.verify().ok,
            "signed_head": ff.audit.key_file is not None,
        },
        "questions_for_the_operator": QUESTIONS,
    }


def _evaluation(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The parts of an `evaluate --json` result an assessment needs (no file lists)."""
    if data is None:
        return None
    if not isinstance(data, dict) or "verification" not in data:
        raise InvalidValue("--evaluation must be the JSON `facefind evaluate LABELLED --json` writes")
    return {k: data[k] for k in EVALUATION_FIELDS if k in data}


def read_evaluation(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InvalidValue(f"--evaluation {path}: cannot read it as JSON ({err})") from None
    _evaluation(data)
    return data


# text -------------------------------------------------------------------------------------
def _sections(r: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]] | None, list[str]]]:
    """(title, table columns, rows, lines) per section: the one layout Markdown and HTML share."""
    v, a, o, au = r["volumes"], r["accuracy"], r["oversight"], r["audit"]
    cal, op, verify = a["calibration"], a["search_operating_point"], a["verify_operating_point"]
    sections: list[tuple[str, list[str], list[list[Any]] | None, list[str]]] = [
        (
            "Purposes, lawful bases and retention",
            [
                "collection",
                "owner",
                "basis",
                "purposes and notes",
                "retention (days)",
                "destroyed after last use (days)",
                "photos",
            ],
            [
                [
                    c["name"],
                    c["owner"],
                    _basis(c),
                    c["purposes"],
                    c["retention_days"],
                    c["destroy_after_last_use_days"],
                    c["photos"],
                ]
                for c in r["collections"]
            ],
            [],
        ),
        ("Volumes", ["what", "count"], [[k.replace("_", " "), n] for k, n in v.items()], []),
        (
            "Accuracy",
            ["figure", "value"],
            [
                ["model", a["model"]],
                ["calibration", f"{cal['kind']}: {cal['source']}"],
                ["calibration pairs: genuine, impostor", f"{cal['genuine_pairs']}, {cal['impostor_pairs']}"],
                ["search decision", op["rule"]],
                ["faces a search compares with (this catalog)", op["faces_searched"]],
                ["threshold (similarity)", op["threshold"]],
                ["FPIR at it (upper bound)", f"{op['fpir']:.3g} ({op['fpir_upper']:.3g})"],
                ["FMR a comparison (upper bound)", f"{op['fmr_per_comparison']:.3g} ({op['fmr_upper']:.3g})"],
                ["extrapolated below the measured table", op["extrapolated"]],
                [f"verify (1:1) threshold at FMR {verify['fmr']:g}", verify["threshold"]],
            ],
            [f"Calibration provenance: {json.dumps(cal['provenance'], sort_keys=True)}"]
            if cal["provenance"]
            else [],
        ),
    ]
    e = a["evaluation"]
    if e is None:
        sections.append(
            (
                "Evaluation on your own photos",
                [],
                None,
                [
                    "None attached. Run `facefind evaluate LABELLED --json > evaluation.json` on a "
                    "labelled sample of people like those in your collections (groups.csv beside it "
                    "for per-group rates) and "
                    "give `--evaluation evaluation.json`."
                ],
            )
        )
    else:
        rows = [[k, value] for k, value in _flat({k: x for k, x in e.items() if k != "per_group"})]
        sections.append(("Evaluation on your own photos", ["figure", "value"], rows, []))
        groups = (e.get("per_group") or {}).get("groups") or {}
        if groups:
            sections.append(
                (
                    f"Error rates per group (threshold {e['per_group'].get('threshold')}; the groups "
                    "the operator labelled in groups.csv)",
                    ["group", *GROUP_COLUMNS],
                    [[g, *(x.get(k) for k in GROUP_COLUMNS)] for g, x in groups.items()],
                    [],
                )
            )
    confirm = [[c, n] for c, n in o["confirmations_per_collection"].items()] or None
    sections.append(
        (
            "Human oversight",
            ["collection", "confirmations needed"] if confirm else [],
            confirm,
            [
                "Every search states a purpose and is written to the hash-chained audit log; results are "
                "candidates for human review, each with its false positive rate.",
                f"The service refuses thresholds looser than FMR {o['service_loosest_fmr']:g} and more than "
                f"{o['service_max_candidates_per_face']} candidates a face; "
                f"{o['api_keys']} service key(s) exist.",
                "Roles: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in o["roles"].items()) + ".",
            ],
        )
    )
    sections.append(
        (
            "Audit log",
            [],
            None,
            [
                f"{au['entries_last_365_days']} entries in the last 365 days; first entry "
                f"{au['first_entry'] or '-'}; chain "
                f"{'intact' if au['intact'] else 'BROKEN (see `facefind audit verify`)'}; head "
                f"{'signed with a key kept outside the catalog' if au['signed_head'] else 'not signed'}.",
                f"Entries are kept at least {au['retention_floor_days']} days (EU AI Act Art. 26(6)); "
                "`facefind purge --audit-older-than` never deletes younger ones.",
            ],
        )
    )
    sections.append(("Questions only you can answer", [], None, r["questions_for_the_operator"]))
    return sections


GROUP_COLUMNS = ("identities", "genuine_pairs", "impostor_pairs", "fnmr", "fmr")


def _basis(c: dict[str, Any]) -> str | None:
    return f"{c['basis']} ({c['basis_meaning']})" if c["basis_meaning"] else c["basis"]


def _flat(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested figures as (dotted name, value) rows."""
    rows: list[tuple[str, Any]] = []
    for k, v in data.items():
        if isinstance(v, dict):
            rows += _flat(v, f"{prefix}{k}.")
        else:
            rows.append((f"{prefix}{k}", ", ".join(map(str, v)) if isinstance(v, list) else v))
    return rows


def markdown(r: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        text = "-" if value is None or value == "" else str(value)
        return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())

    lines = [
        f"# Impact assessment pack\n\nGenerated {r['generated_at']} (UTC) by facefind from this catalog.\n"
    ]
    for title, columns, rows, notes in _sections(r):
        lines.append(f"## {title}\n")
        if columns and rows is not None:
            lines.append("| " + " | ".join(columns) + " |")
            lines.append("|" + "---|" * len(columns))
            lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
            lines.append("")
        lines += [f"- {n}" for n in notes]
        if notes:
            lines.append("")
    return "\n".join(lines)


def to_html(r: dict[str, Any]) -> str:
    def e(value: Any) -> str:
        return html.escape("-" if value is None or value == "" else str(value))

    parts = [
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Impact assessment pack</title>'
        f"</head><body>\n<h1>Impact assessment pack</h1>\n<p>Generated {e(r['generated_at'])} (UTC) by "
        "facefind from this catalog.</p>\n"
    ]
    for title, columns, rows, notes in _sections(r):
        parts.append(f"<h2>{e(title)}</h2>\n")
        if columns and rows is not None:
            parts.append("<table>\n<tr>" + "".join(f"<th>{e(c)}</th>" for c in columns) + "</tr>\n")
            parts += ["<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>\n" for row in rows]
            parts.append("</table>\n")
        if notes:
            parts.append("<ul>\n" + "".join(f"<li>{e(n)}</li>\n" for n in notes) + "</ul>\n")
    parts.append("</body></html>\n")
    return "".join(parts)
