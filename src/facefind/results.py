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
