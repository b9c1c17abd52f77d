"""What the library returns: plain Pydantic models, whose `.model_dump(mode="json")` is the
`--json` output and the API's answer once written through `paths.for_json`.

Paths in them are the file names as the OS gives them (a name that is not UTF-8 holds surrogate
escapes, and opens the file). Such a name makes Pydantic's own `model_dump_json()` fail: write
JSON as facefind does, `json.dumps(paths.for_json(r.model_dump(mode="json")))`, and read a name
back with `paths.from_stored`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class FileError(BaseModel):
    path: str
    error: str
    collection: str | None = None
    # Failed on an earlier run and unchanged since, so not tried again (`index --retry-errors` does).
    earlier: bool = False


class ClusterReport(BaseModel):
    mode: str  # "incremental" or "full"
    faces_considered: int
    faces_assigned: int  # faces now belonging to a person (all faces for "full")
    persons: int
    new_persons: int
    unassigned: int
    seconds: float


class IndexReport(BaseModel):
    root: str
    collection: str
    files_seen: int = 0
    indexed: int = 0  # analysed in this run (new or changed)
    unchanged: int = 0
    removed: int = 0  # in the catalog but gone from disk: dropped with their faces
    errors: int = 0
    faces_found: int = 0
    faces_searchable: int = 0
    faces_refused: int = 0  # matched an opt-out: not stored
    seconds: float = 0.0
    images_per_second: float = 0.0
    stage_ms_per_image: dict[str, float] = {}
    error_files: list[FileError] = []
    # Indexed, but the decoder reported damage it worked around (e.g. "Corrupt JPEG data").
    damaged_files: list[FileError] = []
    interrupted: bool = False
    people: ClusterReport | None = None  # how the new faces were grouped into persons


class Box(BaseModel):
    x: float
    y: float
    w: float
    h: float


class Match(BaseModel):
    face_id: int
    image_id: int
    path: str
    collection: str
    box: Box
    person_id: int | None = None  # the person this face is grouped into (people view), if any
    person: str | None = None  # that person's name, if named (naming needs consent)
    similarity: float
    fmr: float  # share of different-person pairs scoring at least this high (one comparison)
    # Share of searches for someone absent from a gallery of this size that return a face this
    # similar: what the match means in 1:N terms. Extrapolated rates come with their 95% bound.
    fpir: float
    fpir_upper: float
    extrapolated: bool  # fmr/fpir are below what the calibration pairs measure (tail model)
    quality: float


class QueryFace(BaseModel):
    face: int  # index of the face in the query photo, largest first
    box: Box
    quality: float
    usable: bool
    warnings: list[str] = []  # why this query face may be unreliable (small, blurred, turned away)
    matches: list[Match]


class QueryPhoto(BaseModel):
    """One photo of a search by several photos of one person (its largest face)."""

    query: str
    box: Box
    quality: float
    usable: bool
    similarity_to_first: float | None  # to the first photo's face (None for the first photo)
    warnings: list[str] = []  # small, blurred, turned away; or perhaps not the same person


class SearchResult(BaseModel):
    query: str
    model_id: str
    threshold: float
    # The threshold rests on the calibration's tail model (the FMR it needs is below what the
    # calibration pairs measure): trustworthy only if the calibration set had many people.
    threshold_extrapolated: bool = False
    # The rule that set the threshold: "fpir" (default: at most max_fpir at this gallery size),
    # "fmr" (at most max_fmr per comparison) or "threshold" (a similarity given by the caller).
    rule: str
    max_fpir: float | None
    max_fmr: float | None
    fmr_floor: float  # smallest FMR the calibration pairs measure; below it rates are extrapolated
    # Catalogued faces searched (this model, passing the quality minimums and every filter:
    # collections, opt-outs, consent): the N of 1:N, which every fpir refers to.
    faces_searched: int
    faces: list[QueryFace]
    # Several photos of one person searched as one query (faces holds that one query): each
    # photo's face; empty for a search by one photo.
    fused: list[QueryPhoto] = []

    @property
    def matched(self) -> bool:
        return any(f.matches for f in self.faces)


class Verification(BaseModel):
    a: str
    b: str
    model_id: str
    similarity: float
    fmr: float
    fmr_floor: float
    threshold: float
    same_person: bool
    face_a: Box
    face_b: Box


class PersonFace(BaseModel):
    face_id: int
    image_id: int
    path: str
    box: Box
    quality: float
    pinned: bool  # placed here by a user (merge, split); clustering never moves it


class Person(BaseModel):
    id: int
    name: str | None
    hidden: bool
    face_count: int
    cover: PersonFace | None  # the chosen face, else the best-quality one
    faces: list[PersonFace]  # best quality first
    background: bool = False  # its only face is a bystander's (people/background.py): not listed by default


class PurgeReport(BaseModel):
    receipts: list[Any]  # ErasureReceipt, one per collection past retention and per lapsed consent
    audit_checkpoint_seq: int | None  # the signed checkpoint left by an audit purge
    # query face crops kept for two-person confirmation, deleted: past retention or no candidate left
    query_faces_deleted: int = 0


class Suggestion(BaseModel):
    """One question of the review queue (people/review.py): is `item` the person `candidate`?"""

    item: str  # "face:12" (a face in no person) or "person:7" (an unnamed person)
    # "face", "person" (candidate named: "is this Anna?"), "merge" (both unnamed: "one person?"),
    # "move" (a face in a named person, candidate another: "is this Beth, not Anna?"),
    # "together" (faces in no person: "are these one new person?", no candidate)
    kind: str
    items: list[str]  # what to answer: the item; for "together", every face shown
    candidate: int | None
    candidate_name: str | None
    similarity: float  # of the closest pair of faces, one on each side
    fmr: float  # the false match rate that similarity implies (calibration): the chance it is a stranger
    skipped: bool  # asked before and skipped: comes after every question not skipped
    face_count: int  # the item's faces that may be shown
    faces: list[PersonFace]  # a few of them, best first: crops via /v1/faces/{id}/crop
    candidate_face: PersonFace | None  # the candidate's face closest to the item


class SuggestionPage(BaseModel):
    suggestions: list[Suggestion]
    next: str | None  # give it as `after` for the next page; None: this was the last
    total: int  # questions in the queue
    fmr_floor: float  # rates below this are beyond what the calibration measured (an upper bound)


class Answer(BaseModel):
    item: str
    answer: str  # yes, no, skip
    person: int | None
    moved_faces: list[int]  # faces that went into the person (yes)


class ManualFace(BaseModel):
    """A face a user added by box (`facefind faces add`), embedded like a detected one."""

    face_id: int
    image_id: int
    path: str
    box: Box
    alignment: str  # "detector" (its landmarks, from the detector run on the box) or "centred"
    quality: float
    usable: bool  # searched by default (size and quality minimums)
    person_id: int | None  # the person it was put in (--person) or clustering gave it


class NotAFace(BaseModel):
    face_id: int
    path: str
    box: Box
