"""Version 1 of the REST API: one route per CLI command, each one library call as its principal.

Paths come and go in one JSON form (`paths.for_json`; a name that is not UTF-8 in its stored
form), so a path read from an answer can be sent back as it is: routes decode them with
`paths.from_stored`.

Every route but /healthz needs a key (`Authorization: Bearer KEY`); the action each one names is
checked against the key's role (policy.py). Photos come as multipart uploads and are not kept.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import AliasChoices, BaseModel, Field

from .. import results
from ..accountability import confirmations, consent, dpia, erasure, keys, optouts
from ..accountability.audit import AuditEntry, AuditVerification
from ..accountability.audit_export import ExportProof
from ..accountability.collections import Collection
from ..errors import InvalidValue, Refused
from ..paths import from_stored
from ..policy import LOOSEST_FMR, MAX_SERVICE_TOP_K, Principal, as_seen_by, require_searched
from ..publish.video import is_video_input
from .app import allowed, principal, read_upload, service
from .jobs import Job, jobs
from .redactions import Edit, FolderRequest, Redaction, redactions

router = APIRouter(prefix="/v1")
Who = Annotated[Principal, Depends(principal)]
# The principal, if their role allows the action (policy.ACTIONS): checked before the body is read.
CanAudit = Annotated[Principal, allowed("audit")]
CanErase = Annotated[Principal, allowed("erase")]
CanIndex = Annotated[Principal, allowed("index")]
CanSeeFaces = Annotated[Principal, allowed("faces.read")]
CanKeys = Annotated[Principal, allowed("keys")]
CanOptout = Annotated[Principal, allowed("optout")]
CanReadCollections = Annotated[Principal, allowed("collections.read")]
CanReadConsent = Annotated[Principal, allowed("consent.read")]
CanReadPeople = Annotated[Principal, allowed("people.read")]
CanReadReview = Annotated[Principal, allowed("review.read")]
CanDecideReview = Annotated[Principal, allowed("review.decide")]
CanRedact = Annotated[Principal, allowed("redact")]
CanReport = Annotated[Principal, allowed("report")]
CanSearch = Annotated[Principal, allowed("search")]
CanStats = Annotated[Principal, allowed("stats")]
CanExportSubject = Annotated[Principal, allowed("subject.export")]
CanReportDpia = Annotated[Principal, allowed("report.dpia")]
CanVerify = Annotated[Principal, allowed("verify")]
CanWriteCollections = Annotated[Principal, allowed("collections.write")]
CanWriteConsent = Annotated[Principal, allowed("consent.write")]
CanWritePeople = Annotated[Principal, allowed("people.write")]
Since = Annotated[str | None, Query(description="ISO date or time (UTC), inclusive.")]
Until = Annotated[str | None, Query(description="ISO date or time (UTC), inclusive.")]
Photo = Annotated[UploadFile, File(description="The photo (JPEG, PNG, WebP, BMP, TIFF, HEIC).")]


class WhoAmI(BaseModel):
    name: str
    role: str


@router.get("/whoami", tags=["service"])
def whoami(who: Who) -> WhoAmI:
    return WhoAmI(name=who.name, role=who.role)


@router.get("/stats", tags=["service"])
def stats(request: Request, who: CanStats) -> dict[str, Any]:
    with service(request).acting(who, "stats") as ff:
        data = ff.stats()
    data.pop("db", None)  # where the catalog file lives is the server's business
    return data


# keys ---------------------------------------------------------------------------------------
class KeyRequest(BaseModel):
    name: str
    role: str
    collections: list[str] | None = Field(
        None, description="Limit an operator or publisher key to these collections."
    )
    person: str | None = Field(
        None, description="Whose key it is (default: its name): two keys of one person confirm a match once."
    )


@router.get("/keys", tags=["keys"])
def keys_list(request: Request, who: CanKeys) -> list[keys.ApiKey]:
    with service(request).acting(who, "keys") as ff:
        return ff.keys()


@router.post("/keys", tags=["keys"], status_code=201)
def keys_add(request: Request, who: CanKeys, body: KeyRequest) -> keys.NewKey:
    """The key is in the answer, once; only its hash is stored."""
    with service(request).acting(who, "keys") as ff:
        return ff.keys_add(body.name, body.role, body.collections, person=body.person)


@router.delete("/keys/{name}", tags=["keys"])
def keys_revoke(request: Request, who: CanKeys, name: str) -> keys.ApiKey:
    with service(request).acting(who, "keys") as ff:
        return ff.keys_revoke(name)


# collections --------------------------------------------------------------------------------
class CollectionRequest(BaseModel):
    name: str
    owner: str
    basis: str
    retention: str = Field(examples=["5y"])
    note: str | None = None
    roots: list[str] = Field([], description="Folders on the server index jobs may read it from.")


class Roots(BaseModel):
    roots: list[str] = Field(description="Every index root of the collection (replacing the old ones).")


@router.get("/collections", tags=["collections"])
def collections_list(request: Request, who: CanReadCollections) -> list[Collection]:
    with service(request).acting(who, "collections.read") as ff:
        visible = who.within(None)
        return [c for c in ff.collections() if visible is None or c.name in visible]


@router.post("/collections", tags=["collections"], status_code=201)
def collections_create(request: Request, who: CanWriteCollections, body: CollectionRequest) -> Collection:
    with service(request).acting(who, "collections.write") as ff:
        return ff.create_collection(
            body.name,
            owner=body.owner,
            basis=body.basis,
            retention=body.retention,
            note=body.note,
            roots=[from_stored(r) for r in body.roots],
        )


@router.put("/collections/{name}/roots", tags=["collections"])
def collections_roots(request: Request, who: CanWriteCollections, name: str, body: Roots) -> Collection:
    """The folders index jobs may read this collection from; without any, it cannot be indexed
    through the service."""
    with service(request).acting(who, "collections.write") as ff:
        return ff.update_collection(name, roots=[from_stored(r) for r in body.roots])


# index jobs ---------------------------------------------------------------------------------
class IndexRequest(BaseModel):
    path: str = Field(description="A folder or photo under an index root of the collection.")
    collection: str = "default"
    retry_errors: bool = False


@router.post("/index-jobs", tags=["index"], status_code=202)
def index_start(request: Request, who: CanIndex, body: IndexRequest) -> Job:
    """Start indexing (or queue the job, if the server's or the key's jobs are at their limit);
    poll GET /v1/index-jobs/{id} for progress."""
    who.within([body.collection])
    with service(request).acting(who, "index") as ff:
        return jobs(request).start(ff, from_stored(body.path), body.collection, body.retry_errors)


@router.get("/index-jobs", tags=["index"])
def index_list(request: Request, who: CanIndex) -> list[Job]:
    visible = who.within(None)
    return [j for j in jobs(request).all() if visible is None or j.collection in visible]


@router.get("/index-jobs/{job_id}", tags=["index"])
def index_progress(request: Request, who: CanIndex, job_id: int) -> Job:
    job = jobs(request).get(job_id)
    who.within([job.collection])
    return job


@router.delete("/index-jobs/{job_id}", tags=["index"])
def index_cancel(request: Request, who: CanIndex, job_id: int) -> Job:
    """Stop a job (what it indexed so far stays), or take a queued one out of the queue."""
    who.within([jobs(request).get(job_id).collection])
    return jobs(request).cancel(job_id)


@router.get("/errors", tags=["index"])
def errors(request: Request, who: CanIndex, collection: str | None = None) -> list[results.FileError]:
    allowed = who.within([collection] if collection else None)
    with service(request).acting(who, "index") as ff:
        if allowed is None:
            return ff.errors()
        return [e for name in allowed for e in ff.errors(name)]


# search and verify --------------------------------------------------------------------------
@router.post("/search", tags=["search"])
def search(
    request: Request,
    who: CanSearch,
    photo: Annotated[
        list[UploadFile],
        File(description="The photo; several `photo` files are photos of one person, searched as one query."),
    ],
    purpose: Annotated[str, Form(description="Why (kept in the audit log); required.")],
    top_k: Annotated[int, Form()] = 10,
    max_fpir: Annotated[float | None, Form()] = None,
    max_fmr: Annotated[float | None, Form()] = None,
    threshold: Annotated[float | None, Form()] = None,
    face: Annotated[int | None, Form()] = None,
    collection: Annotated[list[str] | None, Form()] = None,
    include_low_quality: Annotated[bool, Form()] = False,
) -> results.SearchResult:
    """Candidates for human review per face of the photo, with the FPIR each implies. At most
    100 candidates a face, and no threshold looser than a false match rate of 1 in 100."""
    if top_k > MAX_SERVICE_TOP_K:
        raise InvalidValue(f"top_k {top_k}: the service returns at most {MAX_SERVICE_TOP_K} a face")
    data = [read_upload(request, p) for p in photo]
    with service(request).acting(who, "search", purpose) as ff:
        found = ff.search(
            data[0] if len(data) == 1 else tuple(data),
            top_k=top_k,
            max_fpir=max_fpir,
            max_fmr=max_fmr,
            threshold=threshold,
            face=face,
            collections=who.within(collection or None),
            include_low_quality=include_low_quality,
            loosest_fmr=LOOSEST_FMR,
        )
    return as_seen_by(who, found)


@router.post("/verify", tags=["search"])
def verify(
    request: Request,
    who: CanVerify,
    a: Photo,
    b: Photo,
    purpose: Annotated[str | None, Form()] = None,
    max_fmr: Annotated[float | None, Form()] = None,
    threshold: Annotated[float | None, Form()] = None,
) -> results.Verification:
    first, second = read_upload(request, a, "first photo"), read_upload(request, b, "second photo")
    with service(request).acting(who, "verify", purpose) as ff:
        return ff.verify(first, second, max_fmr=max_fmr, threshold=threshold)


# faces --------------------------------------------------------------------------------------
@router.get(
    "/faces/{face_id}/crop",
    tags=["people"],
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "The face, as a JPEG."}},
)
def face_crop(
    request: Request,
    who: CanSeeFaces,
    face_id: int,
    size: Annotated[int, Query(description="Longer side in pixels (16..1024).")] = 160,
) -> Response:
    """One catalogued face, cut from its photo on request (crops are never stored; each is
    audited as a view). An operator sees only faces its own searches returned in the last day.
    Opted-out faces, faces withheld by consent and faces outside the key's collections are 404."""
    with service(request).acting(who, "faces.read") as ff:
        require_searched(ff.catalog, who, face_id)
        jpeg = ff.face_crop(face_id, size=size, collections=who.within(None))
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@router.get(
    "/faces/{face_id}/photo",
    tags=["people"],
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "The photo, as a JPEG."}},
)
def face_photo(
    request: Request,
    who: CanReadPeople,
    face_id: int,
    size: Annotated[int, Query(description="Longer side at most this many pixels (64..4096).")] = 1600,
) -> Response:
    """The whole photo a face is in, for a reviewer to draw a missed face on (`POST /v1/faces`);
    faces no answer may show are covered. `X-Facefind-Scale`: shown pixels per photo pixel.
    Audited as a view."""
    with service(request).acting(who, "people.read") as ff:
        jpeg, scale = ff.face_photo(face_id, size=size)
    headers = {"Cache-Control": "private, no-store", "X-Facefind-Scale": f"{scale:.6f}"}
    return Response(jpeg, media_type="image/jpeg", headers=headers)


class NewFace(BaseModel):
    path: str = Field(description="An indexed photo, as the catalog names it (a face's `path`).")
    box: str = Field(examples=["120,80,96,110"], description="x,y,w,h in pixels.")
    person: int | None = Field(None, description="Put the face in this person (pinned).")


@router.post("/faces", tags=["people"], status_code=201)
def faces_add(request: Request, who: CanWritePeople, body: NewFace) -> results.ManualFace:
    """Add a face the detector missed on an indexed photo, embedded like a detected one. Audited."""
    with service(request).acting(who, "people.write") as ff:
        return ff.add_face(from_stored(body.path), body.box, person=body.person)


@router.post("/faces/{face_id}/not-a-face", tags=["people"])
def faces_not_a_face(request: Request, who: CanWritePeople, face_id: int) -> results.NotAFace:
    """Remove a false detection for good (indexing the photo again does not bring it back). Audited."""
    with service(request).acting(who, "people.write") as ff:
        return ff.not_a_face(face_id)


# people -------------------------------------------------------------------------------------
class Name(BaseModel):
    name: str


class Merge(BaseModel):
    persons: list[int] = Field(description="Persons merged into the one in the path.")
    confirm: bool = False


class Faces(BaseModel):
    faces: list[int]


class Hidden(BaseModel):
    hidden: bool = True


class Purpose(BaseModel):
    purpose: str = Field(description="Why (kept in the audit log); required.")


@router.get("/people", tags=["people"])
def people_list(
    request: Request,
    response: Response,
    who: CanReadPeople,
    include_hidden: bool = False,
    offset: Annotated[int, Query(ge=0, description="Skip this many persons (paging).")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many persons.")] = 500,
    after: Annotated[str | None, Query(description="The previous page's X-Facefind-Next (keyset).")] = None,
) -> list[results.Person]:
    """Persons the people view may show (audited as a view), most faces first; `include_hidden`
    adds persons a reviewer hid, never persons whose consent was withdrawn. One page of `limit`
    from `offset`, or after the key `after`: the answer's `X-Facefind-More: true` says there are
    more, and `X-Facefind-Next` is the key of the next page (as fast deep in 100k persons)."""
    with service(request).acting(who, "people.read") as ff:
        found, following = ff.persons_page(include_hidden, offset=offset, limit=limit, after=after)
    response.headers["X-Facefind-More"] = "true" if following else "false"
    if following:
        response.headers["X-Facefind-Next"] = following
    return found


class Answers(BaseModel):
    items: list[str] = Field(description='Review items ("face:12", "person:7") as the suggestions list them.')
    yes: int | None = Field(None, description="They are this person.")
    no: int | None = Field(None, description="They are not this person (remembered).")
    skip: bool = Field(False, description="Ask again after every other question.")
    together: bool = Field(False, description="These faces in no person are one new person.")


# Before /people/{person_id}, which would take "suggestions" for an id.
@router.get("/people/suggestions", tags=["people"])
def people_suggestions(
    request: Request,
    who: CanReadPeople,
    after: Annotated[str | None, Query(description="The `next` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many questions.")] = 20,
    max_fmr: Annotated[float | None, Query(description="Ask only up to this false match rate.")] = None,
) -> results.SuggestionPage:
    """The review queue (audited as a view): faces in no person and unnamed persons with the most
    similar named person, its similarity and false match rate; persons that may be one."""
    with service(request).acting(who, "people.read") as ff:
        return ff.suggestions(after=after, limit=limit, max_fmr=max_fmr)


@router.post("/people/suggestions/answers", tags=["people"])
def people_answers(request: Request, who: CanWritePeople, body: Answers) -> list[results.Answer]:
    """Answer review questions: exactly one of `yes`, `no` (a person id), `skip` or `together`. Audited."""
    with service(request).acting(who, "people.write") as ff:
        return ff.review.answer(body.items, yes=body.yes, no=body.no, skip=body.skip, together=body.together)


@router.get("/people/{person_id}", tags=["people"])
def people_show(
    request: Request,
    who: CanReadPeople,
    person_id: int,
    offset: Annotated[int, Query(ge=0, description="Skip this many of the faces (paging).")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many faces.")] = 500,
) -> results.Person:
    """A person with one page of their faces (best quality first); `face_count` counts them all."""
    with service(request).acting(who, "people.read") as ff:
        return ff.person(person_id, offset=offset, limit=limit)


@router.post("/people/{person_id}/photos", tags=["people"])
def people_photos(request: Request, who: CanReadPeople, person_id: int, body: Purpose) -> list[str]:
    """Every photo of a person: a search by person (audited with its purpose). A POST, so that no
    link or image on another page can make a browser run it."""
    with service(request).acting(who, "people.read", body.purpose) as ff:
        return ff.person_photos(person_id)


@router.put("/people/{person_id}/name", tags=["people"])
def people_name(request: Request, who: CanWritePeople, person_id: int, body: Name) -> results.Person:
    with service(request).acting(who, "people.write") as ff:
        return ff.people.name(person_id, body.name)


@router.delete("/people/{person_id}/name", tags=["people"])
def people_unname(request: Request, who: CanWritePeople, person_id: int) -> results.Person:
    with service(request).acting(who, "people.write") as ff:
        return ff.people.unname(person_id)


@router.post("/people/{person_id}/merge", tags=["people"])
def people_merge(request: Request, who: CanWritePeople, person_id: int, body: Merge) -> results.Person:
    with service(request).acting(who, "people.write") as ff:
        return ff.people.merge(body.persons, person_id, confirm=body.confirm)


@router.post("/people/{person_id}/split", tags=["people"])
def people_split(request: Request, who: CanWritePeople, person_id: int, body: Faces) -> results.Person:
    """The faces go to a new person, which is returned."""
    with service(request).acting(who, "people.write") as ff:
        return ff.people.split(person_id, body.faces)


@router.post("/people/{person_id}/remove", tags=["people"])
def people_remove(request: Request, who: CanWritePeople, person_id: int, body: Faces) -> results.Person:
    """Not this person: the faces leave and never come back to it."""
    with service(request).acting(who, "people.write") as ff:
        return ff.people.remove(person_id, body.faces)


@router.put("/people/{person_id}/hidden", tags=["people"])
def people_hide(request: Request, who: CanWritePeople, person_id: int, body: Hidden) -> results.Person:
    with service(request).acting(who, "people.write") as ff:
        return ff.people.hide(person_id, body.hidden)


# two-person confirmation ------------------------------------------------------------------------
class Decision(BaseModel):
    note: str = Field(description="What you compared and why you decided (kept in the audit log).")


@router.get("/review", tags=["review"])
def review_pending(
    request: Request,
    who: CanReadReview,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many candidates.")] = 50,
) -> list[confirmations.Candidate]:
    """Candidates of searches awaiting confirmation, newest search first. A reviewer sees where
    each face is (audited as a view); an auditor sees who decided what, without paths."""
    with service(request).acting(who, "review.read") as ff:
        return ff.confirmations.pending(limit, show_paths=who.may("review.decide"))


@router.get("/review/{search_seq}", tags=["review"])
def review_show(request: Request, who: CanReadReview, search_seq: int) -> confirmations.SearchReview:
    """One search's candidates, their confirmations and rejections, and the search's verifiers."""
    with service(request).acting(who, "review.read") as ff:
        return ff.confirmations.status(search_seq, show_paths=who.may("review.decide"))


@router.post("/review/{search_seq}/{face_id}/confirm", tags=["review"])
def review_confirm(
    request: Request, who: CanDecideReview, search_seq: int, face_id: int, body: Decision
) -> confirmations.Candidate:
    """Confirm the candidate shows the person searched for: an identification once as many
    distinct people as its collection requires did (a person counts once, whatever the key)."""
    with service(request).acting(who, "review.decide") as ff:
        return ff.confirmations.confirm(search_seq, face_id, note=body.note)


@router.post("/review/{search_seq}/{face_id}/reject", tags=["review"])
def review_reject(
    request: Request, who: CanDecideReview, search_seq: int, face_id: int, body: Decision
) -> confirmations.Candidate:
    """Reject the candidate: not the person searched for; it can no longer become an identification."""
    with service(request).acting(who, "review.decide") as ff:
        return ff.confirmations.reject(search_seq, face_id, note=body.note)


@router.get(
    "/review/{search_seq}/{face_id}/query-face",
    tags=["review"],
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "The query face, as a JPEG."}},
)
def review_query_face(request: Request, who: CanDecideReview, search_seq: int, face_id: int) -> Response:
    """The face of the query photo this candidate was found for, to compare side by side
    (kept under the collection's retention; audited as a view)."""
    with service(request).acting(who, "review.decide") as ff:
        jpeg = ff.confirmations.query_crop(search_seq, face_id)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


# consent, opt-out, erasure ------------------------------------------------------------------
class ConsentRequest(BaseModel):
    """The shape of a consent as `/v1/consents` answers it, so a client can send back what it
    read; the older shape (scope a comma-separated string, `expires`) is accepted too."""

    person_id: int
    given_by: str
    scope: list[str] | str = Field(
        ["search", "results", "clustering"],
        description="What the consent covers: any of search, results, clustering, publication (a list, or a "
        "comma-separated string).",
    )
    expires_on: str = Field(
        validation_alias=AliasChoices("expires_on", "expires"),
        examples=["2027-12-31"],
        description="The last day it holds (YYYY-MM-DD); `expires` is accepted as its older name.",
    )
    evidence: str


@router.get("/consents", tags=["requests"])
def consents_list(
    request: Request, who: CanReadConsent, person_id: int | None = None
) -> list[consent.Consent]:
    with service(request).acting(who, "consent.read") as ff:
        return ff.consents(person_id)


@router.post("/consents", tags=["requests"], status_code=201)
def consents_add(request: Request, who: CanWriteConsent, body: ConsentRequest) -> consent.Consent:
    with service(request).acting(who, "consent.write") as ff:
        return ff.consent_add(
            body.person_id,
            given_by=body.given_by,
            scope=body.scope if isinstance(body.scope, str) else ",".join(body.scope),
            expires=body.expires_on,
            evidence=body.evidence,
        )


@router.post("/consents/{consent_id}/withdraw", tags=["requests"])
def consents_withdraw(request: Request, who: CanWriteConsent, consent_id: int) -> consent.Consent:
    with service(request).acting(who, "consent.write") as ff:
        return ff.consent_withdraw(consent_id)


@router.get("/optouts", tags=["requests"])
def optouts_list(request: Request, who: CanOptout) -> list[optouts.OptOut]:
    with service(request).acting(who, "optout") as ff:
        return ff.optouts()


@router.post("/optouts", tags=["requests"], status_code=201)
def optouts_add(
    request: Request,
    who: CanOptout,
    photo: Photo,
    note: Annotated[str | None, Form()] = None,
    face: Annotated[int | None, Form()] = None,
) -> optouts.OptOut:
    """Only the face template is kept, never the photo."""
    data = read_upload(request, photo)
    with service(request).acting(who, "optout") as ff:
        return ff.optout_add(data, note=note, face=face)


@router.delete("/optouts/{optout_id}", tags=["requests"])
def optouts_remove(request: Request, who: CanOptout, optout_id: int) -> optouts.OptOut:
    with service(request).acting(who, "optout") as ff:
        return ff.optout_remove(optout_id)


class EraseRequest(BaseModel):
    kind: str = Field(
        description="image (a path), person (an id), collection (a name) or optout-matches (an id)"
    )
    target: str
    confirm: bool = Field(
        False,
        description="Erase them: needed for a folder (several photos) or a collection; without it, "
        "nothing is erased",
    )


@router.post("/erasures", tags=["requests"])
def erase(request: Request, who: CanErase, body: EraseRequest) -> erasure.ErasureReceipt:
    """Erase everywhere it is stored; the receipt is also kept in the audit log."""
    with service(request).acting(who, "erase") as ff:
        target = from_stored(body.target) if body.kind == "image" else body.target
        return ff.erase(body.kind, target, confirm=body.confirm)


class PurgeRequest(BaseModel):
    audit_older_than: str | None = Field(
        None,
        description="Not accepted: audit retention is the machine administrator's CLI action "
        "(`facefind purge --audit-older-than`, at least 183 days).",
    )


@router.post("/purge", tags=["requests"])
def purge(request: Request, who: CanErase, body: PurgeRequest) -> results.PurgeReport:
    """Retention of photos and lapsed consents. The audit log is never purged through the API."""
    if body.audit_older_than is not None:
        raise Refused(
            "audit retention is not an API action: the machine's administrator purges old audit "
            "entries with `facefind purge --audit-older-than` (at least 183 days)"
        )
    with service(request).acting(who, "erase") as ff:
        return ff.purge()


# publishing ---------------------------------------------------------------------------------
@router.post("/redactions", tags=["publish"], status_code=201)
def redactions_add(
    request: Request,
    who: CanRedact,
    file: Annotated[UploadFile, File(description="A photo, or a short video (MP4, MOV, MKV, WebM).")],
    purpose: Annotated[str | None, Form(description="Why (kept in the audit log); required.")] = None,
    style: Annotated[str, Form(description="blur, pixelate or fill")] = "blur",
    margin: Annotated[float, Form(description="Grow each hidden box by this share of its size.")] = 0.2,
) -> Redaction:
    """A redacted copy to publish: faces of persons whose consent covers publication kept, every
    other face hidden, metadata stripped; audited with its purpose. A photo is done in the answer
    (every face with its box and decision); a video is a job: poll GET /v1/redactions/{id}. Kept
    on the server 30 minutes after last use, then deleted (DELETE deletes it at once)."""
    data = read_upload(request, file, "file")
    if is_video_input(data.name or ""):
        with service(request).acting(who, "redact"):
            pass  # the role, and the key's request rate
        return redactions(request).video(who, data, purpose, style, margin)
    with service(request).acting(who, "redact", purpose) as ff:
        return redactions(request).photo(ff, who, data, purpose, style, margin)


@router.post("/redactions/folders", tags=["publish"], status_code=201)
def redactions_folder(request: Request, who: CanRedact, body: FolderRequest) -> Redaction:
    """Redact every photo under a folder on the server (under an index root of the collection):
    a job; GET /v1/redactions/{id} for its progress, then its file (a ZIP of the copies)."""
    with service(request).acting(who, "redact", body.purpose) as ff:
        body = body.model_copy(update={"path": from_stored(body.path)})
        return redactions(request).folder_job(ff, who, body)


@router.get("/redactions", tags=["publish"])
def redactions_list(request: Request, who: CanRedact) -> list[Redaction]:
    """Your redactions still kept, oldest first (jobs with their progress, rate and ETA)."""
    return redactions(request).mine(who)


@router.get("/redactions/{redaction_id}", tags=["publish"])
def redactions_show(request: Request, who: CanRedact, redaction_id: str) -> Redaction:
    return redactions(request).get(who, redaction_id)


@router.get(
    "/redactions/{redaction_id}/file",
    tags=["publish"],
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}, "video/mp4": {}, "application/zip": {}}}},
)
def redactions_file(request: Request, who: CanRedact, redaction_id: str) -> FileResponse:
    """The redacted copy (a folder's: a ZIP of them), without metadata."""
    path, media_type, name = redactions(request).file(who, redaction_id)
    headers = {"Cache-Control": "private, no-store"}
    return FileResponse(path, media_type=media_type, filename=name, headers=headers)


@router.post("/redactions/{redaction_id}/manifest", tags=["publish"])
def redactions_edit(request: Request, who: CanRedact, redaction_id: str, body: Edit) -> Redaction:
    """Render a photo again with your decisions: every face kept or hidden, boxes added for faces
    the detector missed. A face of someone who opted out or withheld consent stays hidden."""
    with service(request).acting(who, "redact") as ff:
        return redactions(request).edit(ff, who, redaction_id, body)


@router.delete("/redactions/{redaction_id}", tags=["publish"])
def redactions_delete(request: Request, who: CanRedact, redaction_id: str) -> Redaction:
    """Delete a redaction and its files now (a running job stops)."""
    return redactions(request).delete(who, redaction_id)


# audit and report ---------------------------------------------------------------------------
@router.get("/audit", tags=["audit"])
def audit_show(
    request: Request,
    response: Response,
    who: CanAudit,
    since: Since = None,
    until: Until = None,
    actor: Annotated[str | None, Query(description="Only this actor's entries.")] = None,
    action: Annotated[str | None, Query(description="Only this action (search, erase, ...).")] = None,
    purpose: Annotated[str | None, Query(description="Only entries whose purpose contains this.")] = None,
    before_seq: Annotated[int | None, Query(description="Only entries older than this one (paging).")] = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="At most this many, the newest.")] = 500,
) -> list[AuditEntry]:
    """The newest `limit` entries that match, oldest first; for older ones pass the first
    entry's seq as `before_seq`. The answer's `X-Facefind-More: true` says there are more."""
    with service(request).acting(who, "audit") as ff:
        picked = [
            e
            for e in ff.audit.entries(since, until)
            if (actor is None or e.actor == actor)
            and (action is None or e.action == action)
            and (purpose is None or purpose.casefold() in (e.purpose or "").casefold())
            and (before_seq is None or e.seq < before_seq)
        ]
    response.headers["X-Facefind-More"] = "true" if len(picked) > limit else "false"
    return picked[-limit:]


@router.get("/audit/verify", tags=["audit"])
def audit_verify(
    request: Request,
    who: CanAudit,
    expect_head: Annotated[
        str | None, Query(description="SEQ:HASH of a head exported earlier (`facefind audit head`).")
    ] = None,
) -> AuditVerification:
    """Recompute the chain, and check it against the signed head kept outside the catalog and
    against `expect_head`; `scope` says what the answer can vouch for."""
    with service(request).acting(who, "audit") as ff:
        return ff.audit.verify(expect_head)


@router.get("/audit/export", tags=["audit"])
def audit_export(
    request: Request, who: CanAudit, since: Since = None, until: Until = None
) -> list[AuditEntry]:
    """Entries with their hashes, for archiving; the export itself is audited."""
    with service(request).acting(who, "audit") as ff:
        entries = list(ff.audit.entries(since, until))
        details = {"what": "audit log", "since": since, "until": until, "entries": len(entries)}
        ff.audit.record(ff.actor, "export", details)
        return entries


class SignedExport(BaseModel):
    format: str
    proof: ExportProof
    content: str  # the export file (ASCII): save it, then `facefind audit verify-export FILE`


@router.get("/audit/export/signed", tags=["audit"])
def audit_export_signed(
    request: Request,
    who: CanAudit,
    since: Since = None,
    until: Until = None,
    format: Annotated[str, Query(description="jsonl or csv")] = "jsonl",
) -> SignedExport:
    """An export file for an authority: the entries with their hashes and the signed chain proof
    (`facefind audit verify-export FILE` checks it offline); the export itself is audited."""
    with service(request).acting(who, "audit") as ff:
        proof, text = ff.export_audit(None, fmt=format, since=since, until=until)
    return SignedExport(format=format, proof=proof, content=text)


# subject access -------------------------------------------------------------------------------
ZIP: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {}}, "description": "subject.json, index.html and the photos."}
}


def _zip(data: bytes) -> Response:
    headers = {
        "Cache-Control": "private, no-store",
        "Content-Disposition": 'attachment; filename="subject.zip"',
    }
    return Response(data, media_type="application/zip", headers=headers)


@router.get("/subjects/export", tags=["requests"], response_class=Response, responses=ZIP)
def subject_export(
    request: Request,
    who: CanExportSubject,
    person: Annotated[int | None, Query(description="The person's id.")] = None,
    crops: Annotated[bool, Query(description="Only crops of their faces, not their photos.")] = False,
) -> Response:
    """Everything the catalog holds about one person (GDPR Art. 15, 20) as a zip: their photos
    with every other face hidden, faces, person, consents, opt-outs, erasure receipts, the audit
    entries that found them. The export is audited with the zip's SHA-256."""
    with service(request).acting(who, "subject.export") as ff:
        _, data = ff.subject_export(None, person=person, crops=crops)
    return _zip(data)


@router.post("/subjects/export", tags=["requests"], response_class=Response, responses=ZIP)
def subject_export_by_photo(
    request: Request,
    who: CanExportSubject,
    photo: Photo,
    face: Annotated[int | None, Form(description="The subject's face, if the photo shows several.")] = None,
    crops: Annotated[bool, Form()] = False,
) -> Response:
    """The same, for the person the subject's own photo finds (an audited search, purpose
    "subject access request"); check the requester is that person before handing it over."""
    data = read_upload(request, photo)
    with service(request).acting(who, "subject.export") as ff:
        _, zipped = ff.subject_export(None, photo=data, face=face, crops=crops)
    return _zip(zipped)


@router.get("/report", tags=["audit"])
def report(request: Request, who: CanReport, since: str | None = None) -> dict[str, Any]:
    with service(request).acting(who, "report") as ff:
        return ff.report(since)


@router.get("/report/dpia", tags=["audit"], response_model=None)
def report_dpia(
    request: Request,
    who: CanReportDpia,
    format: Annotated[
        Literal["json", "markdown", "html"], Query(description="json, or a file to download: markdown, html.")
    ] = "json",
) -> dict[str, Any] | Response:
    """The impact-assessment pack: purposes, bases, volumes, accuracy at the operating point,
    oversight, the audit log, and the questions only the operator can answer."""
    with service(request).acting(who, "report.dpia") as ff:
        pack = ff.dpia()
    if format == "json":
        return pack
    text, kind, suffix = (
        (dpia.markdown(pack), "text/markdown", "md")
        if format == "markdown"
        else (dpia.to_html(pack), "text/html", "html")
    )
    headers = {
        "Cache-Control": "private, no-store",
        "Content-Disposition": f'attachment; filename="facefind-dpia.{suffix}"',
    }
    return Response(text, media_type=f"{kind}; charset=utf-8", headers=headers)
