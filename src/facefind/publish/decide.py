"""Which faces of a photo may stay visible when it is published, and why.

A face stays visible only when it is recognised as a person with an active consent whose scope
includes `publication`; every other face is hidden. Recognising is an identification like a
search: the caller (engine.py) requires a purpose and writes it to the audit log. The gallery is
the catalogued faces of consenting persons only, less every face any read path hides for this
use (opted out, bound to a person whose consent does not or no longer covers publication, not
yet clustered). A face that matches an opt-out template, or is at least as like a withheld face
as like the consenting person, is hidden whatever the gallery says (the guards of a search,
engine.FaceFind._guards). A face too small to recognise reliably is hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import policy
from ..accountability import consent, optouts
from ..calibration import Calibration
from ..catalog import Catalog
from ..catalog import persons as person_store
from ..faces.backend import Detection, FaceBackend

# Share of searches for a stranger that would keep them visible: stricter than a search's 0.01,
# since a false match here publishes a stranger's face.
PUBLICATION_MAX_FPIR = 1e-3
SCOPE = "publication"


@dataclass
class Decision:
    kept: bool
    reason: str  # consent, optout, withheld, unknown, small, keep-none, reviewer
    person_id: int | None = None
    consent_id: int | None = None
    similarity: float | None = None


@dataclass
class Gallery:
    """The faces a redaction may keep visible, and the faces it must never keep."""

    vectors: np.ndarray  # unit embeddings of consenting persons' faces
    persons: np.ndarray  # their person ids
    consents: dict[int, int]  # person id -> the active consent covering publication
    guards: np.ndarray  # stored faces of opted-out and withheld persons
    optouts: optouts.Templates
    threshold: float
    guard_threshold: float
    min_face_px: float

    @classmethod
    def load(
        cls,
        catalog: Catalog,
        backend: FaceBackend,
        calibration: Calibration,
        min_face_px: float,
        collections: list[str] | None = None,
    ) -> Gallery:
        """`collections`: recognise consenting persons only by their faces in these collections
        (a key limited to them); opted-out and withheld persons are hidden whatever their collection."""
        active: dict[int, int] = {}
        for c in consent.all_(catalog):
            if c.active and SCOPE in c.scope:
                active.setdefault(c.person_id, c.id)
        withheld = policy.withheld_faces(catalog, SCOPE)
        hidden = set(policy.hidden_faces(catalog, SCOPE, withheld).tolist())
        within = None if collections is None else catalog.collection_ids(collections)
        rows = person_store.faces_of(catalog, sorted(active), within) if active else []
        ids = [r.id for r in rows if r.id not in hidden]
        stored = catalog.face_rows(ids)
        vectors, persons = [], []
        for r in rows:
            face = stored.get(r.id)
            if face is not None and face.embedding.shape == (backend.dim,):
                vectors.append(face.embedding)
                persons.append(r.person_id)
        guard_rows = catalog.face_rows(int(i) for i in withheld)
        guards = [g.embedding for g in guard_rows.values() if g.embedding.shape == (backend.dim,)]
        threshold = calibration.threshold_for_fpir(PUBLICATION_MAX_FPIR, max(1, len(vectors)))
        return cls(
            vectors=np.array(vectors, np.float32).reshape(-1, backend.dim),
            persons=np.array(persons, np.int64),
            consents=active,
            guards=np.array(guards, np.float32).reshape(-1, backend.dim),
            optouts=optouts.Templates(catalog, backend.model_id),
            threshold=threshold,
            guard_threshold=max(threshold, calibration.threshold(policy.LOOSEST_FMR)),
            min_face_px=min_face_px,
        )

    def decide(self, backend: FaceBackend, image: np.ndarray, detections: list[Detection]) -> list[Decision]:
        """One decision per detection, in order."""
        out = [Decision(False, "unknown") for _ in detections]
        big = [i for i, d in enumerate(detections) if min(d.box[2], d.box[3]) >= self.min_face_px]
        small = set(range(len(detections))) - set(big)
        for i in small:
            out[i] = Decision(False, "small")
        if not big:
            return out
        chips = [backend.align(image, detections[i]) for i in big]
        embeddings = backend.embed(chips)
        for i, e in zip(big, embeddings, strict=True):
            out[i] = self._one(e)
        return out

    def _one(self, embedding: np.ndarray) -> Decision:
        if self.optouts.matches(embedding):
            return Decision(False, "optout")
        guard = float(np.max(self.guards @ embedding)) if len(self.guards) else -1.0
        if not len(self.vectors):
            return Decision(False, "withheld" if guard >= self.guard_threshold else "unknown")
        sims = self.vectors @ embedding
        best = int(np.argmax(sims))
        similarity = float(sims[best])
        if guard >= self.guard_threshold and guard >= similarity:
            return Decision(False, "withheld")
        if similarity < self.threshold:
            return Decision(False, "unknown", similarity=round(similarity, 4))
        person = int(self.persons[best])
        return Decision(True, "consent", person, self.consents[person], round(similarity, 4))
