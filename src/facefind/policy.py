"""Who may do what, and which faces anyone may see.

Roles: the service turns an API key into a Principal (the key's name and role) and every route
names the action it performs; `require` refuses what the role does not allow. The name, never a
request field, is what the audit log records. The CLI acts as the machine's user with every role:
whoever can run it can read the catalog file anyway.

Faces: `hidden_faces` and `require_shown` are the rules every read path applies, whoever asks:
opted-out faces are never returned, and a person's faces are used only as their consent allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import numpy as np

from .accountability import consent, optouts
from .catalog import Catalog
from .catalog import audit as audit_store
from .catalog import persons as person_store
from .errors import NotFound, Refused
from .results import SearchResult


class Role(StrEnum):
    admin = "admin"  # keys and collections
    operator = "operator"  # index, search, verify
    reviewer = "reviewer"  # people decisions
    dpo = "dpo"  # consent, opt-out, erasure, purge
    auditor = "auditor"  # audit log and transparency report, read-only
    publisher = "publisher"  # redacted copies to publish (faces without publication consent hidden)


EVERYONE = frozenset(Role)

# action -> roles allowed. Reads a role needs for its own work are granted with it: a reviewer sees
# consent records (naming needs one), an operator sees collections (to index into one), a publisher
# too (to redact a folder under one's index root).
ACTIONS: dict[str, frozenset[Role]] = {
    "stats": EVERYONE,
    "collections.read": frozenset({Role.admin, Role.operator, Role.dpo, Role.auditor, Role.publisher}),
    "collections.write": frozenset({Role.admin}),
    "keys": frozenset({Role.admin}),
    "index": frozenset({Role.operator}),
    "search": frozenset({Role.operator}),
    "verify": frozenset({Role.operator}),
    # Reading people, faces and crops shows who is in which photo: only a reviewer, whose work it
    # is, may browse them (audited as views); an operator sees crops of its own search results
    # only (`require_searched`), so that indexing a photo and browsing the people view is never a
    # way to identify someone without an audited search (docs/security.md).
    "faces.read": frozenset({Role.operator, Role.reviewer}),
    "people.read": frozenset({Role.reviewer}),
    "people.write": frozenset({Role.reviewer}),
    # Two-person confirmation of search candidates (accountability/confirmations.py): reviewers
    # compare and decide; an auditor reads who decided what (without photo paths or faces). An
    # operator, whose search found them, confirms only through a reviewer key of their own.
    "review.read": frozenset({Role.reviewer, Role.auditor}),
    "review.decide": frozenset({Role.reviewer}),
    "consent.read": frozenset({Role.dpo, Role.reviewer}),
    "consent.write": frozenset({Role.dpo}),
    "optout": frozenset({Role.dpo}),
    "erase": frozenset({Role.dpo}),
    "audit": frozenset({Role.auditor}),
    "report": frozenset({Role.auditor}),
    # A subject access export holds a person's photos and every audit entry about them: the DPO's.
    "subject.export": frozenset({Role.dpo}),
    "report.dpia": frozenset({Role.auditor, Role.dpo}),
    # Redacting recognises faces, but only against persons whose consent covers publication: the
    # publisher learns who of them is in its own photo (audited with a purpose), nothing of anyone
    # else; why another face is hidden (opted out, consent withheld) it is never told
    # (docs/security.md, "Publishing"). A role of its own: a club secretary who publishes photos
    # needs no search of the catalog, and an operator who may search needs no second power.
    "redact": frozenset({Role.publisher}),
}


# The loosest decision a service search may use: a threshold whose false match rate per
# comparison is above this would list strangers, and with a large top-k the gallery itself.
LOOSEST_FMR = 1e-2
MAX_SERVICE_TOP_K = 100
# How long an operator may fetch crops of the faces an audited search returned to it.
SEARCH_RESULT_HOURS = 24

# A key may be limited to some collections (an operator for one newsroom desk, a publisher for one
# club): it may then only search, verify and index there, and redact their folders, recognising
# consenting people by their faces there. People, consent, opt-outs and the audit log span the catalog.
SCOPED_ROLES = (Role.operator, Role.publisher)
SCOPED_ACTIONS = frozenset({"collections.read", "faces.read", "index", "search", "verify", "redact"})


@dataclass(frozen=True)
class Principal:
    """An authenticated actor: the audit log's "who"; `collections`, if set, the only ones it may use."""

    name: str
    role: Role
    collections: frozenset[str] | None = None

    def may(self, action: str) -> bool:
        scoped_out = self.collections is not None and action not in SCOPED_ACTIONS
        return not scoped_out and self.role in ACTIONS[action]

    def require(self, action: str) -> None:
        if self.may(action):
            return
        if self.role in ACTIONS[action]:  # the role allows it; the key's collection limit does not
            raise Refused(
                f"{self.name} is limited to the collections {', '.join(sorted(self.collections or ()))}; "
                f"{action} spans the whole catalog"
            )
        allowed = ", ".join(sorted(ACTIONS[action]))
        raise Refused(f"{self.name} ({self.role}) may not do {action}; that needs the role {allowed}")

    def within(self, collections: list[str] | None) -> list[str] | None:
        """The collections an operation may use: those asked for, if the key allows them all;
        by default, every collection the key is limited to (None: the whole catalog)."""
        if self.collections is None:
            return collections
        if collections is None:
            return sorted(self.collections)
        outside = sorted(set(collections) - self.collections)
        if outside:
            raise Refused(
                f"{self.name} is limited to the collections {', '.join(sorted(self.collections))}, "
                f"not {', '.join(outside)}"
            )
        return collections


def hidden_faces(catalog: Catalog, use: str, withheld: np.ndarray | None = None) -> np.ndarray:
    """Ids of faces no answer may include for `use` ("search", "results"): opted out, or bound to
    (or now in) a person whose consent does not (or no longer) cover that use; a face stays bound
    to every consented person it was ever a face of (consent follows the faces). Faces indexed
    but not yet clustered are hidden too: clustering is what binds a withheld person's new photo
    to their consent, so until it ran (at the end of the index job) the face is not shown.
    `withheld`: `withheld_faces(catalog, use)` if the caller has it already."""
    withheld = withheld_faces(catalog, use) if withheld is None else withheld
    return np.union1d(withheld, person_store.unsettled_faces(catalog))


def withheld_faces(catalog: Catalog, use: str) -> np.ndarray:
    """Ids of the faces of people who opted out or whose consent does not cover `use`."""
    return np.union1d(optouts.suppressed_faces(catalog), consent.withheld_faces(catalog, use))


def require_shown(catalog: Catalog, person_id: int, decision: str | None = None) -> None:
    """Refuse to show a person whose consent does not (or no longer) cover showing results, or to
    let a reviewer change them (`decision`: "split", "merged"...): such a person is a DPO's to handle."""
    if person_id not in consent.withheld_persons(catalog, "results"):
        return
    if decision is None:
        raise Refused(
            f"person {person_id}'s consent does not (or no longer) cover showing their photos; "
            f"`facefind consent list --person {person_id}` shows it"
        )
    raise Refused(
        f"person {person_id}'s consent does not (or no longer) cover showing their photos, so they "
        f"cannot be {decision}: a DPO handles them (`facefind erase person {person_id}`, "
        f"`facefind purge`; `facefind consent list --person {person_id}` shows the consent)"
    )


def require_searched(catalog: Catalog, who: Principal, face_id: int) -> None:
    """An operator sees a face only as a result of its own audited search (in the last
    SEARCH_RESULT_HOURS): a face it did not search for is "not found", like a missing one."""
    if who.role != Role.operator:
        return
    since = (datetime.now(UTC) - timedelta(hours=SEARCH_RESULT_HOURS)).isoformat(timespec="seconds")
    if not audit_store.searched_face(catalog, who.name, face_id, since):
        raise NotFound(f"no face {face_id} that you may see: an operator sees the faces its searches found")


def as_seen_by(who: Principal, result: SearchResult) -> SearchResult:
    """A search result as `who` may see it: a key limited to some collections gets no person ids
    or names, since persons (and the names reviewers gave them) span the whole catalog: a name
    learnt from photos in another collection would cross the key's limit."""
    if who.collections is None:
        return result
    for face in result.faces:
        for match in face.matches:
            match.person_id, match.person = None, None
    return result
