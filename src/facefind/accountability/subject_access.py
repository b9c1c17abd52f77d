"""Subject access (GDPR Art. 15, 20): one person's copy of everything the catalog holds about them,
as a zip: `subject.json` (machine-readable), `index.html` (a readable summary) and their photos.

What is theirs: the faces in their person(s) now, and faces bound to their consent that are in no
person (consent follows the faces), shown or withheld (opted out, consent lapsed); their person
record and name; their consent records, the opt-outs that suppressed their faces and the erasure
receipts of their person; every audit entry that found or touched them (a search whose results
include one of their faces, a view, a people decision, a consent or opt-out change naming them,
an earlier export), walked newest first so that persons merged into theirs count as theirs.

Nothing of anyone else: photos are re-encoded with every other face hidden (filled black): the
faces the catalog knows on that photo and every face redaction's recall detector finds that is
not theirs; `crops` exports only their face crops, cut after the others are hidden. Audit entries
are excerpts: fixed fields (when, who, what, why, the entry's hash to check against the full log)
and, per action, an allow-list of details, with only their own face, person, consent and opt-out
ids; the query photo's file name is left out (it may name someone), its SHA-256 kept.

A search by the subject's own photo (`photo`) is an audited search with the purpose
"subject access request"; its candidates are matches at an FPIR of 0.001 (MAX_FPIR), not proof of identity:
the DPO checks the requester is the person before handing the export over.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from .. import limits
from ..catalog import FaceRow, now, photos
from ..catalog import subjects as store
from ..errors import FacefindError, ImageError, InvalidValue, NotFound
from ..images import ImageSource, PhotoChanged, decode_image, face_thumbnail, read_catalogued
from ..paths import for_json, json_text
from ..publish.detect import RecallDetector
from ..publish.redact import ManifestFace, draw, encode, overlaps, write_new
from ..results import Box
from . import consent, optouts

if TYPE_CHECKING:
    from ..engine import FaceFind

PURPOSE = "subject access request"
# A false match hands one person's data to another: the search by the subject's own photo decides
# at a tenth of search's default FPIR (their own photo of them is usually far above it).
MAX_FPIR = 1e-3
COLLECTION_FIELDS = {"name", "owner", "basis", "note", "retention_days", "destroy_after_last_use_days"}
RECEIPT_FIELDS = (
    "receipt",
    "kind",
    "target",
    "at",
    "by",
    "faces_removed",
    "images_removed",
    "image_sha256",
    "data_removed",
    "file_scrub",
)
CROP_PX = 320
# A face the recall detector finds overlapping one of the subject's faces this much (IoU) is taken
# for that face; any other is someone else's and is hidden.
SAME_FACE_IOU = 0.3
# Recall detections below this score are hidden only if at most RECALL_MAX_SCALE times as tall as
# the subject's tallest face in the photo (see _hide_others).
RECALL_SURE, RECALL_MAX_SCALE = 0.5, 1.5
NOT_INCLUDED = [
    "Face templates (embeddings): biometric numbers, not readable, and never handed out; they are "
    "listed as stored for each face.",
    "Audit entries about faces of yours that were erased before this export: the log records face "
    "ids, and an erased face's id no longer leads to you (the erasure receipts are included).",
    "Anything about other people: other faces in your photos are hidden, and audit entries are "
    "excerpts naming only you.",
    "Copies outside the catalog: backups, exports others made, photos the operator keeps elsewhere.",
]


class SubjectMatch(BaseModel):
    face: int  # the face of the query photo
    face_id: int
    person_id: int | None
    similarity: float
    fmr: float
    fpir: float


class SubjectExport(BaseModel):
    out: str | None
    sha256: str  # of the zip
    size_bytes: int
    persons: list[int]
    faces: int
    photos: int
    crops: bool
    audit_entries: int
    unreadable: list[str]  # photos that could not be read now, with the reason (listed, not exported)
    matched: list[SubjectMatch]  # with a query photo: the matches that chose the person(s)
    audit_seq: int | None = None


def export(
    ff: FaceFind,
    out: str | Path | None,
    *,
    person: int | None = None,
    photo: ImageSource | None = None,
    face: int | None = None,
    crops: bool = False,
    rgb: bool = False,
) -> tuple[SubjectExport, bytes]:
    """The zip (also written to `out`, never over an existing file) and what it holds; audited."""
    if (person is None) == (photo is None):
        raise InvalidValue(
            "give the person (--person ID) or the subject's own photo (--photo FILE), one of them"
        )
    out_path = Path(out).expanduser() if out is not None else None
    if out_path is not None and (out_path.exists() or out_path.is_symlink()):
        raise FacefindError(f"{out_path} exists; it is never overwritten: choose another --out or move it")
    matched: list[SubjectMatch] = []
    loose: set[int] = set()
    if person is not None:
        if not limits.is_id(person) or not store.persons_known(ff.catalog, [person]):
            raise NotFound(f"no person with id {person}; `facefind people list` shows them")
        persons = {person}
    else:
        assert photo is not None
        matched = _matches(ff, photo, face, rgb)
        persons = {m.person_id for m in matched if m.person_id is not None}
        loose = {m.face_id for m in matched if m.person_id is None}
    record, files = _collect(ff, persons, loose, crops, photo is not None, matched)
    data = _zip(record, files)
    digest = hashlib.sha256(data).hexdigest()
    if out_path is not None:
        write_new(out_path, data)
    result = SubjectExport(
        out=str(out_path) if out_path is not None else None,
        sha256=digest,
        size_bytes=len(data),
        persons=sorted(record["persons_ids"]),
        faces=len(record["faces"]),
        photos=len(record["photos"]),
        crops=crops,
        audit_entries=len(record["audit"]),
        unreadable=[f"{u['path']}: {u['reason']}" for u in record["unreadable"]],
        matched=matched,
    )
    details = {
        "what": "subject access",
        "persons": result.persons,
        "faces": [f["face_id"] for f in record["faces"]],
        "photos": result.photos,
        "crops": crops,
        "audit_entries": result.audit_entries,
        "sha256": digest,
        "by_photo": photo is not None,
    }
    result.audit_seq = ff.audit.record(ff.actor, "export", details, PURPOSE).seq
    return result, data


def _matches(ff: FaceFind, photo: ImageSource, face: int | None, rgb: bool) -> list[SubjectMatch]:
    """The catalogued faces like the subject's face in their own photo (an audited search)."""
    found = ff.search(photo, face=face, purpose=PURPOSE, rgb=rgb, max_fpir=MAX_FPIR)
    if face is None and len(found.faces) > 1:
        raise FacefindError(
            f"the photo shows {len(found.faces)} faces; a subject access request is for one person: "
            "choose the subject's face with --face N (0 = largest)"
        )
    matched = [
        SubjectMatch(
            face=qf.face,
            face_id=m.face_id,
            person_id=m.person_id,
            similarity=m.similarity,
            fmr=m.fmr,
            fpir=m.fpir,
        )
        for qf in found.faces
        for m in qf.matches
    ]
    if not matched:
        raise NotFound(
            "no catalogued face matches the face in that photo (at an FPIR of "
            f"{found.max_fpir or '-'}); if the person opted out or their consent does not cover "
            "search, their faces are not searched: find them by id (--person ID, `facefind consent list`)"
        )
    return matched


def _collect(
    ff: FaceFind,
    persons: set[int],
    loose: set[int],
    crops: bool,
    by_photo: bool,
    matched: list[SubjectMatch],
) -> tuple[dict[str, Any], dict[str, bytes]]:
    catalog = ff.catalog
    candidates = set(store.faces_of(catalog, persons)) | loose
    rows = ff.catalog.face_rows(candidates)
    # A face bound to their consent but now in another person (a reviewer said it is not them) is
    # that person's: left out. Faces in theirs, or in no person, are theirs.
    mine = {f: r for f, r in rows.items() if r.person_id is None or r.person_id in persons or f in loose}
    suppressed = set(optouts.suppressed_faces(catalog).tolist())
    withheld = set(consent.withheld_faces(catalog, "results").tolist())
    by_image: dict[int, list[FaceRow]] = defaultdict(list)
    for r in sorted(mine.values(), key=lambda r: (r.path, r.id)):
        by_image[r.image_id].append(r)
    others = defaultdict(list)
    for o in store.faces_in_images(catalog, by_image):
        if int(o.id) not in mine:
            others[int(o.image_id)].append(Box(x=o.x, y=o.y, w=o.w, h=o.h))
    if ff.runtime.recall is None:
        ff.runtime.recall = RecallDetector()
    files: dict[str, bytes] = {}
    photo_records, unreadable, face_files = [], [], {}
    for n, (image_id, theirs) in enumerate(by_image.items(), 1):
        path, sha = theirs[0].path, photos.sha256(catalog, image_id)
        try:
            data = read_catalogued(Path(path), sha, ff.settings)
            image = decode_image(data, ff.settings, name=path)
        except PhotoChanged:
            unreadable.append({"path": path, "reason": "changed since it was indexed"})
            continue
        except ImageError as err:
            unreadable.append({"path": path, "reason": str(err)})
            continue
        hidden = _hide_others(image, theirs, others[image_id], ff.runtime.recall)
        photo_record: dict[str, Any] = {
            "path": path,
            "sha256": sha,
            "collection": theirs[0].collection,
            "faces": [r.id for r in theirs],
            "other_faces_hidden": hidden[1],
        }
        if crops:
            photo_record["files"] = []
            for r in theirs:
                name = f"crops/face-{r.id}.jpg"
                files[name] = face_thumbnail(hidden[0], r.box, CROP_PX)
                photo_record["files"].append(name)
                face_files[r.id] = name
        else:
            name = f"photos/photo-{n:04d}.jpg"
            files[name] = encode(hidden[0], ".jpg")
            photo_record["files"] = [name]
            for r in theirs:
                face_files[r.id] = name
        photo_records.append(photo_record)
    faces = [
        {
            "face_id": r.id,
            "person_id": r.person_id,
            "collection": r.collection,
            "path": r.path,
            "box": dict(zip("xywh", (round(float(v), 1) for v in r.box), strict=True)),
            "quality": round(float(r.quality), 3),
            "template_stored": True,
            "shown_in_searches": r.id not in suppressed and r.id not in withheld,
            "withheld_because": "opt-out" if r.id in suppressed else "consent" if r.id in withheld else None,
            "file": face_files.get(r.id),
        }
        for r in sorted(mine.values(), key=lambda r: r.id)
    ]
    consents = [c.model_dump() for c in consent.all_(catalog) if c.person_id in persons]
    by_optout = store.suppressing_optouts(catalog, mine)
    optout_records = [
        {**o.model_dump(exclude={"faces_suppressed", "threshold"}), "your_faces_suppressed": by_optout[o.id]}
        for o in optouts.all_(catalog)
        if o.id in by_optout
    ]
    audit, aliases, erasures = _audit(ff, persons, set(mine), {c["id"] for c in consents}, set(by_optout))
    used = {r.collection for r in mine.values()}
    record: dict[str, Any] = {
        "made_at": now(),
        "made_by": ff.actor,
        "about": "A copy of the data this facefind catalog holds about one person (GDPR Art. 15, 20).",
        "request": (
            {"photo": True, "matches": [m.model_dump() for m in matched]}
            if by_photo
            else {"person": sorted(persons)}
        ),
        "persons": [
            {
                "id": int(p.id),
                "name": p.name,
                "hidden_from_people_view": bool(p.hidden),
                "since": p.created_at,
            }
            for p in store.person_rows(catalog, persons)
        ],
        "persons_ids": sorted(persons),
        "earlier_person_ids": sorted(aliases - persons),
        "faces": faces,
        "photos": photo_records,
        "unreadable": unreadable,
        "collections": [c.model_dump(include=COLLECTION_FIELDS) for c in ff.collections() if c.name in used],
        "consents": consents,
        "optouts": optout_records,
        "erasures": erasures,
        "audit": audit,
        "not_included": NOT_INCLUDED,
    }
    return record, files


def _hide_others(
    image: np.ndarray, theirs: list[FaceRow], known: list[Box], detector: RecallDetector
) -> tuple[np.ndarray, int]:
    """The photo with every face but the subject's filled: the catalog's other faces, and the
    recall detector's faces that are not the subject's. Returns it and how many were hidden."""
    mine = [Box(x=r.box[0], y=r.box[1], w=r.box[2], h=r.box[3]) for r in theirs]
    # The recall detector is tuned to miss nothing (score 0.2): its unsure boxes much larger than
    # the subject's own faces are texture (a suit, a curtain), and would black out half the photo.
    tallest = max(b.h for b in mine)
    found = [
        Box(x=d.box[0], y=d.box[1], w=d.box[2], h=d.box[3])
        for d in detector.detect(image)
        if d.score >= RECALL_SURE or d.box[3] <= RECALL_MAX_SCALE * tallest
    ]
    strangers = [b for b in found if all(overlaps(b, m) < SAME_FACE_IOU for m in mine)]
    hidden = [*known, *(b for b in strangers if all(overlaps(b, k) < SAME_FACE_IOU for k in known))]
    faces = [ManifestFace(box=b, decision="kept", reason="subject") for b in mine]
    faces += [ManifestFace(box=b, decision="hidden", reason="other person") for b in hidden]
    return draw(image, faces, "fill", 0.2), len(hidden)


# audit excerpts ------------------------------------------------------------------------------
# Details an excerpt may keep, per action: values that say how, never whom.
KEEP = {
    "search": ("rule", "threshold", "top_k", "searched", "started", "ended", "reference", "photos"),
    "consent": ("given_by", "scope", "expires_on", "evidence"),
    "optout": ("note", "faces_suppressed"),
    "export": ("what", "crops", "sha256"),
    "view": ("collection",),
    "face": ("box",),
}


def _ids(value: Any) -> set[int]:
    if isinstance(value, bool):
        return set()
    if isinstance(value, int):
        return {value}
    if isinstance(value, str) and value.isdigit():
        return {int(value)}
    if isinstance(value, list | tuple):
        return set().union(*(_ids(v) for v in value)) if value else set()
    return set()


def _items(value: Any, kind: str) -> set[int]:
    """Ids of review items ("face:12", "person:7") of `kind` in a list (of lists)."""
    out: set[int] = set()
    for v in value if isinstance(value, list) else []:
        if isinstance(v, list):
            out |= _items(v, kind)
        elif isinstance(v, str) and v.startswith(kind + ":") and v[len(kind) + 1 :].isdigit():
            out.add(int(v[len(kind) + 1 :]))
    return out


PERSON_KEYS = ("person", "person_id", "persons", "into", "new_person", "kept_persons", "people")


def _audit(
    ff: FaceFind, persons: set[int], faces: set[int], consents: set[int], optout_ids: set[int]
) -> tuple[list[dict[str, Any]], set[int], list[dict[str, Any]]]:
    """Excerpts of every entry that found or touched the subject, oldest first; their person ids
    over time (persons merged into theirs); their erasure receipts."""
    aliases = set(persons)
    excerpts: list[dict[str, Any]] = []
    erasures: list[dict[str, Any]] = []
    for e in reversed(list(ff.audit.entries())):
        d = e.details
        named_persons = set().union(*(_ids(d.get(k)) for k in PERSON_KEYS)) if d else set()
        named_persons |= _items(d.get("items"), "person") | _items(d.get("review"), "person")
        if e.action == "redact":  # the faces a published copy kept visible, with their persons
            named_persons |= _ids([k.get("person_id") for k in d.get("kept") or [] if isinstance(k, dict)])
        if e.action == "consent":
            named_persons = _ids(d.get("person_id"))
        if e.action in (
            "optout",
            "key",
            "collection",
            "models",
            "erase.allow",
            "erase.scrub",
            "authenticate",
        ):
            named_persons = set()
        if e.action == "erase":
            named_persons = _ids(d.get("target")) if d.get("kind") == "person" else set()
        if e.action == "person" and d.get("decision") == "merge" and _ids(d.get("into")) & aliases:
            aliases |= _ids(d.get("persons"))  # earlier entries about the merged persons are theirs
        found: set[int] = set()
        if e.action == "search":
            found = {
                m[0] for f in d.get("faces") or [] for m in f.get("matches") or [] if m and m[0] in faces
            }
        named_faces = _ids(d.get("face")) | _ids(d.get("added") if e.action == "face" else None)
        named_faces |= _ids(d.get("faces")) if e.action in ("person", "export") else set()
        named_faces |= _items(d.get("items"), "face") | _items(d.get("review"), "face")
        mine_p, mine_f = named_persons & aliases, (named_faces | found) & faces
        mine_c = (
            (_ids(d.get("added")) | _ids(d.get("withdrawn"))) & consents if e.action == "consent" else set()
        )
        mine_o = (
            (_ids(d.get("added")) | _ids(d.get("removed"))) & optout_ids if e.action == "optout" else set()
        )
        if not (mine_p or mine_f or mine_c or mine_o):
            continue
        excerpt: dict[str, Any] = {
            "seq": e.seq,
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "purpose": e.purpose,
            "query_sha256": e.query_sha256,
            "hash": e.hash,
            "concerning": {
                "persons": sorted(mine_p),
                "faces": sorted(mine_f),
                "consents": sorted(mine_c),
                "optouts": sorted(mine_o),
            },
            "details": {k: d[k] for k in KEEP.get(e.action, ()) if k in d},
        }
        if e.action == "search" and d.get("faces"):
            returned = [m for f in d["faces"] for m in f.get("matches") or []]
            excerpt["details"]["your_matches"] = [m for m in returned if m and m[0] in faces]
            excerpt["details"]["other_matches"] = len(returned) - len(excerpt["details"]["your_matches"])
        if e.action == "person":
            excerpt["details"]["decision"] = d.get("decision")
            if d.get("decision") in ("name", "merge") and d.get("name") is not None:
                target = _ids(d.get("person") if d.get("decision") == "name" else d.get("into"))
                if target & aliases:
                    excerpt["details"]["name"] = d["name"]
            if "answer" in d:
                excerpt["details"]["answer"] = d["answer"]
        if e.action == "erase":
            receipt = {k: d[k] for k in RECEIPT_FIELDS if k in d}
            excerpt["details"] = receipt
            erasures.append({**receipt, "audit_seq": e.seq})
        excerpts.append(excerpt)
    return excerpts[::-1], aliases, erasures[::-1]


# the zip -------------------------------------------------------------------------------------
def _zip(record: dict[str, Any], files: dict[str, bytes]) -> bytes:
    shown = {k: v for k, v in record.items() if k != "persons_ids"}
    text = json.dumps(for_json(shown), indent=1, ensure_ascii=False, default=str) + "\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("subject.json", text)
        z.writestr("index.html", to_html(shown))
        for name, data in files.items():
            z.writestr(name, data, compress_type=zipfile.ZIP_STORED)  # JPEGs: already compressed
    return buffer.getvalue()


def _e(value: Any) -> str:
    """A value as HTML text: escaped, and a file name that is not UTF-8 in its stored form."""
    return html.escape(json_text("-" if value is None or value == [] else str(value)))


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p>None.</p>\n"
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in r) + "</tr>\n" for r in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>\n"


def to_html(r: dict[str, Any]) -> str:
    """The readable summary: every text escaped, no script, no style, pictures linked by name."""
    pictures = "".join(
        f'<figure><img src="{html.escape(f, quote=True)}" alt="photo" width="240">'
        f"<figcaption>{_e(p['path'])}</figcaption></figure>\n"
        for p in r["photos"]
        for f in p["files"]
    )
    parts = [
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
        "<title>Your data in this face search catalog</title></head><body>\n",
        "<h1>Your data in this face search catalog</h1>\n",
        f"<p>{_e(r['about'])} Made {_e(r['made_at'])} (UTC) by {_e(r['made_by'])}. The full data is in "
        "<code>subject.json</code> in this archive.</p>\n",
        "<h2>You, as the catalog groups your faces</h2>\n",
        _table(
            ["person id", "name", "hidden from the people view", "since"],
            [[p["id"], p["name"], p["hidden_from_people_view"], p["since"]] for p in r["persons"]],
        ),
        "<h2>Your faces</h2>\n",
        "<p>For each face a template (numbers describing it) is stored: it is what searches compare.</p>\n",
        _table(
            ["face id", "photo", "collection", "box (x, y, w, h)", "searchable", "withheld because"],
            [
                [
                    f["face_id"],
                    f["path"],
                    f["collection"],
                    "{x}, {y}, {w}, {h}".format(**f["box"]),
                    f["shown_in_searches"],
                    f["withheld_because"],
                ]
                for f in r["faces"]
            ],
        ),
        "<h2>Your photos</h2>\n<p>Other people's faces are hidden.</p>\n",
        pictures or "<p>None.</p>\n",
        _table(["photo", "reason it is not included"], [[u["path"], u["reason"]] for u in r["unreadable"]])
        if r["unreadable"]
        else "",
        "<h2>Why these photos are kept</h2>\n",
        _table(
            [
                "collection",
                "owner",
                "lawful basis",
                "purposes and notes",
                "retention (days)",
                "destroyed after last use (days)",
            ],
            [
                [
                    c["name"],
                    c["owner"],
                    c["basis"],
                    c["note"],
                    c["retention_days"],
                    c["destroy_after_last_use_days"],
                ]
                for c in r["collections"]
            ],
        ),
        "<h2>Your consents</h2>\n",
        _table(
            ["id", "given by", "scope", "expires", "evidence", "withdrawn", "active"],
            [
                [
                    c["id"],
                    c["given_by"],
                    ", ".join(c["scope"]),
                    c["expires_on"],
                    c["evidence"],
                    c["withdrawn_at"],
                    c["active"],
                ]
                for c in r["consents"]
            ],
        ),
        "<h2>Your opt-outs</h2>\n",
        _table(
            ["id", "note", "made", "by", "your faces suppressed"],
            [
                [o["id"], o["note"], o["created_at"], o["created_by"], len(o["your_faces_suppressed"])]
                for o in r["optouts"]
            ],
        ),
        "<h2>Erasures of your data</h2>\n",
        _table(
            ["receipt", "at", "by", "faces removed"],
            [[x.get("receipt"), x.get("at"), x.get("by"), x.get("faces_removed")] for x in r["erasures"]],
        ),
        "<h2>Who searched for you or handled your data</h2>\n",
        _table(
            ["entry", "when", "who", "what", "why", "your faces found"],
            [
                [
                    a["seq"],
                    a["at"],
                    a["actor"],
                    a["action"],
                    a["purpose"],
                    len(a["details"].get("your_matches", [])),
                ]
                for a in r["audit"]
            ],
        ),
        "<h2>Not in this export</h2>\n<ul>\n",
        "".join(f"<li>{_e(x)}</li>\n" for x in r["not_included"]),
        "</ul>\n</body></html>\n",
    ]
    return "".join(parts)
