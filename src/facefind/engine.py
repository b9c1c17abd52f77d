"""`facefind.open(db)`: the library API the CLI (and later the web API) is a thin shell over."""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from . import filemodes, limits, manual_faces, policy, recognizers
from .accountability import (
    audit_export,
    collections,
    confirmations,
    consent,
    dpia,
    erasure,
    optouts,
    report,
    schedule,
    subject_access,
)
from .accountability import keys as service_keys
from .accountability.audit import AuditLog, check_retention, default_actor
from .accountability.optouts import OptOut
from .accountability.witness import default_key_file
from .analysis import Workers
from .calibration import DEFAULT_MAX_FMR, DEFAULT_MAX_FPIR, Calibration, default_calibration
from .catalog import Catalog, FaceRow
from .catalog.core import redacted
from .errors import FacefindError, ImageError, InvalidValue, NoFaceError, NotFound, Refused
from .faces import Face, FaceBackend, analyze, embedding_dim, load_backend, model_id
from .faces.quality import warnings as quality_warnings
from .images import (
    ImageSource,
    PhotoChanged,
    Upload,
    decode_image,
    face_thumbnail,
    load_image,
    read_catalogued,
    read_photo,
)
from .ingest import Indexer, Progress
from .paths import require_text
from .people import People, background, listing, people_fmr, people_threshold
from .people.review import REVIEW_MAX_FMR, ReviewQueue
from .publish import run as publishing
from .publish.detect import RecallDetector
from .publish.redact import RedactReport
from .results import (
    Box,
    FileError,
    IndexReport,
    ManualFace,
    Match,
    NotAFace,
    Person,
    PurgeReport,
    QueryFace,
    QueryPhoto,
    SearchResult,
    SuggestionPage,
    Verification,
)
from .settings import Settings, default_db_path, vectors_dir
from .vectors import KINDS, FaissIndex, IndexPolicy, VectorStore


def open(
    db: str | Path | None = None,
    settings: Settings | None = None,
    *,
    actor: str | None = None,
    purpose: str | None = None,
) -> FaceFind:
    """Open (creating if needed) the catalog at `db`; default: FACEFIND_DB or the user data dir.

    `actor` (default: the OS user) is who the audit log records; `purpose`, if given, is used for
    every search that does not state its own (a search without any purpose is refused).
    """
    return FaceFind(db, settings, actor=actor, purpose=purpose)


class Runtime:
    """What one process keeps loaded, shared by every FaceFind acting for someone (the service
    makes one FaceFind per request): the catalog, settings, audit log and, loaded on first use,
    the recognizer, the vector index and the calibration."""

    def __init__(self, db: str | Path | None, settings: Settings | None) -> None:
        # A path, or an SQLAlchemy URL (kept as given) for other databases and SQLite options.
        given = db or os.environ.get("FACEFIND_DB")
        self.db: str | Path = (
            str(given) if given and "://" in str(given) else Path(given or default_db_path()).expanduser()
        )
        # Only facefind's own default location is created; a folder the user named must exist.
        self.catalog = Catalog(
            self.db,
            create_folders=db is None and not os.environ.get("FACEFIND_DB"),
            new_settings=recognizers.new_catalog_settings(),
        )
        # The catalog's active recognizer (`facefind models use`): a new catalog's is
        # recognizers.NEW_CATALOGS, one made before it was recorded the built-in SFace.
        self.settings = recognizers.with_active(self.catalog, settings or Settings())
        self.settings = background.with_min_template(self.catalog, self.settings)
        # Keep the signing key away from the catalog (FACEFIND_AUDIT_KEY) so whoever can edit the
        # catalog cannot also sign a forged head or checkpoint; by default it sits beside an SQLite
        # file, and for a database server in the user data dir (accountability/witness.py).
        self.audit = AuditLog(self.catalog, default_key_file(self.catalog.engine.url))
        self.backend: FaceBackend | None = None
        self.vectors: VectorStore | None = None
        self.calibration: Calibration | None = None
        self.recall: RecallDetector | None = None  # redaction's detector (publish/detect.py)
        self.workers = Workers()  # indexing's worker processes, kept for the next folder


class FaceFind:
    def __init__(
        self,
        db: str | Path | None = None,
        settings: Settings | None = None,
        *,
        actor: str | None = None,
        purpose: str | None = None,
    ) -> None:
        self.runtime = Runtime(db, settings)
        self.actor = require_text(actor or default_actor(), "the actor")
        self.purpose = purpose
        self._finish_pending_scrub()  # an erasure's file scrub that a reader held up

    def acting_as(self, actor: str, purpose: str | None = None) -> FaceFind:
        """The same runtime, acting (and audited) as `actor`: how the service serves each request."""
        other = copy.copy(self)
        other.actor, other.purpose = require_text(actor, "the actor"), purpose
        return other

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def catalog(self) -> Catalog:
        return self.runtime.catalog

    @property
    def audit(self) -> AuditLog:
        return self.runtime.audit

    @property
    def db(self) -> str | Path:
        return self.runtime.db

    def __enter__(self) -> FaceFind:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.runtime.workers.close()
        if self.runtime.vectors is not None:
            self.runtime.vectors.save()
        self.catalog.close()

    @property
    def backend(self) -> FaceBackend:
        if self.runtime.backend is None:
            self.runtime.backend = load_backend(self.settings)
        return self.runtime.backend

    @property
    def model_id(self) -> str:
        """The id of the recognizer in use (stored with every embedding), without loading it."""
        return model_id(self.settings)

    @property
    def models(self) -> recognizers.Models:
        """Recognizers: `ff.models.all()`, `.add(path, name=, sha256=)`, `.use(name)`, `.remove(name)`."""
        return recognizers.Models(self)

    def _switched(self, settings: Settings, backend: FaceBackend) -> None:
        """After `models.use`: run the new model and rebuild its vector index from the catalog."""
        self.runtime.settings, self.runtime.backend, self.runtime.calibration = settings, backend, None
        self.runtime.vectors = None
        self.vectors.rebuild()
        self.vectors.save(force=True)
        self._drop_other_indexes()  # other models' saved indexes are stale now

    # indexing ----------------------------------------------------------------------------
    def index(
        self,
        path: str | Path,
        *,
        collection: str = "default",
        workers: int | None = None,
        on_progress: Progress | None = None,
        retry_errors: bool = False,
        dask: str | None = None,
        confine: bool = False,
    ) -> IndexReport:
        """Detect, align and embed every face in the photos under `path`; incremental.

        The collection must exist with a lawful basis (`create_collection`). Files that failed
        before and have not changed since are reported again, not retried, unless `retry_errors`.
        `dask` analyses the photos on a Dask cluster: a scheduler address (tcp://host:8786), or
        "local" for a cluster of `workers` processes here (see dask_ingest.py for what workers need).
        `confine` (the service): `path` must lie under one of the collection's index roots, and
        files or folders in it that are links leading out of that root are skipped and reported.
        """
        collections.require_basis(self.catalog, collection)
        within = None
        if confine:
            path, within = collections.index_root(self.catalog, collection, str(path))
        backend: Callable[[], FaceBackend] = lambda: self.backend  # noqa: E731
        # The models load here only if photos are analysed here (the workers load their own).
        templates = optouts.Templates(self.catalog, self.model_id)
        refuse = (lambda face: templates.matches(face.embedding)) if len(templates.vectors) else None
        indexer = Indexer(self.catalog, self.settings, backend, workers, refuse, dask, self.runtime.workers)
        report = indexer.run(Path(path), collection, on_progress, retry_errors=retry_errors, within=within)
        # The vector index catches up with what was just catalogued (rebuilding, compacting or
        # switching kind if due, with progress) and is saved.
        self.vectors.index(on_progress)
        self.vectors.save(on_progress=on_progress)
        # New faces join persons (or form new ones) without re-clustering the catalog.
        report.people = self.people.update()
        optouts.suppress(self.catalog, self.model_id)  # new faces of opted-out persons
        return report

    # consent -----------------------------------------------------------------------------
    def consent_add(
        self, person_id: int, *, given_by: str, scope: str, expires: str, evidence: str
    ) -> consent.Consent:
        """Record a person's consent (required before naming them)."""
        added = consent.add(self.catalog, person_id, given_by, scope, expires, evidence, self.actor)
        details = {
            "added": added.id,
            **added.model_dump(exclude={"id", "active", "recorded_at", "recorded_by"}),
        }
        self.audit.record(self.actor, "consent", details)
        return added

    def consent_withdraw(self, consent_id: int) -> consent.Consent:
        """Withdraw a consent: the person's faces drop out of searches and the people view at once."""
        withdrawn = consent.withdraw(self.catalog, consent_id)
        self.audit.record(self.actor, "consent", {"withdrawn": consent_id, "person_id": withdrawn.person_id})
        return withdrawn

    def consents(self, person_id: int | None = None) -> list[consent.Consent]:
        return consent.all_(self.catalog, person_id)

    # opt-outs ----------------------------------------------------------------------------
    def optout_add(
        self, photo: ImageSource, *, note: str | None = None, face: int | None = None, rgb: bool = False
    ) -> OptOut:
        """Leave the person in `photo` out: keep their face template (not the photo), suppress
        their stored faces and refuse their faces in future indexing. An RGB array needs `rgb=True`
        (see `faces`)."""
        if face is not None:
            limits.FACE.check(face)
        found = self.faces(photo, rgb=rgb)
        if not found:
            raise NoFaceError(f"no face found in {_describe(photo)}; an opt-out needs one clear face")
        if face is None and len(found) > 1:
            raise FacefindError(
                f"{_describe(photo)} shows {len(found)} faces; an opt-out is for one person. Use a photo "
                f"of that person alone, or choose the face with --face N (0 = largest)."
            )
        if face is not None and not 0 <= face < len(found):
            raise FacefindError(f"face {face} does not exist: the photo has {len(found)} face(s)")
        chosen = found[face or 0]
        threshold = self.calibration().threshold(optouts.DEFAULT_MAX_FMR)
        added = optouts.add(self.catalog, self.model_id, chosen.embedding, threshold, note, self.actor)
        self.audit.record(
            self.actor,
            "optout",
            {"added": added.id, "faces_suppressed": added.faces_suppressed, "note": added.note},
            query_sha256=_sha256(photo, self.settings),
        )
        return added

    def optouts(self) -> list[OptOut]:
        return optouts.all_(self.catalog)

    def optout_remove(self, optout_id: int) -> OptOut:
        removed = optouts.remove(self.catalog, optout_id)
        self.audit.record(self.actor, "optout", {"removed": optout_id, "note": removed.note})
        return removed

    # service keys ------------------------------------------------------------------------
    def keys(self) -> list[service_keys.ApiKey]:
        return service_keys.all_(self.catalog)

    def keys_add(
        self, name: str, role: str, collections: list[str] | None = None, *, person: str | None = None
    ) -> service_keys.NewKey:
        """A key for the service (`facefind serve`), optionally limited to some collections; the
        answer holds the key, once. `person`: whose key it is, so that two keys of one person
        count once among the people confirming a match (default: the key's name)."""
        added = service_keys.add(self.catalog, name, role, self.actor, collections, person)
        details = {"added": added.name, "role": added.role, "collections": added.collections}
        if person is not None:
            details["person"] = added.person
        self.audit.record(self.actor, "key", details)
        return added

    def keys_revoke(self, name: str) -> service_keys.ApiKey:
        revoked = service_keys.revoke(self.catalog, name)
        self.audit.record(self.actor, "key", {"revoked": name})
        return revoked

    # collections -------------------------------------------------------------------------
    def create_collection(
        self,
        name: str,
        *,
        owner: str,
        basis: str,
        retention: str,
        note: str | None = None,
        roots: Sequence[str] = (),
    ) -> collections.Collection:
        """A collection with its lawful basis (own, consent, contract, legitimate-interest) and
        retention period ('5y', '18m', '30d'); indexing needs one. `roots`: the folders the service
        may index it from (none: the service may not index it; the CLI indexes any path)."""
        created = collections.create(self.catalog, name, owner, basis, retention, note, roots)
        self.audit.record(self.actor, "collection", created.model_dump(exclude={"images"}))
        return created

    def update_collection(
        self,
        name: str,
        *,
        roots: Sequence[str] | None = None,
        add_roots: Sequence[str] = (),
        remove_roots: Sequence[str] = (),
    ) -> collections.Collection:
        """Change a collection's index roots: replace them all (`roots`), or add and remove some."""
        before = collections.get(self.catalog, name).roots
        updated = collections.set_roots(self.catalog, name, roots, add_roots, remove_roots)
        details = {"updated": name, "roots_before": before, "roots": updated.roots}
        self.audit.record(self.actor, "collection", details)
        return updated

    def set_destroy_rule(self, name: str, days: int | None) -> collections.Collection:
        """Destroy the photos of collection `name` `days` after their last interaction: last
        indexed, or last returned by a search or shown as a crop (`purge` applies it; None: no rule)."""
        updated = collections.set_destroy_rule(self.catalog, name, days)
        self.audit.record(self.actor, "collection", {"updated": name, "destroy_after_last_use_days": days})
        return updated

    def set_confirmations(
        self, name: str, count: int, *, allow_single: bool = False
    ) -> collections.Collection:
        """How many distinct people must confirm a candidate of a 1:N search in collection `name`
        before it is an identification (default 2; 1 only with `allow_single`)."""
        confirmations.set_required(self.catalog, name, count, allow_single)
        self.audit.record(self.actor, "collection", {"updated": name, "confirmations": count})
        return collections.get(self.catalog, name)

    @property
    def confirmations(self) -> confirmations.Confirmations:
        """Two-person confirmation of search candidates: `ff.confirmations.pending()`,
        `.status(search_seq)`, `.confirm(search_seq, face_id, note=...)`, `.reject(...)`."""
        return confirmations.Confirmations(self)

    def collections(self) -> list[collections.Collection]:
        return collections.all_(self.catalog)

    def policy(self) -> schedule.RetentionSchedule:
        """The public retention schedule and purposes of every collection (BIPA Sec. 15(a))."""
        return schedule.build(collections.all_(self.catalog))

    def export_audit(
        self,
        out: str | Path | None,
        *,
        fmt: str = "jsonl",
        since: str | None = None,
        until: str | None = None,
    ) -> tuple[audit_export.ExportProof, str]:
        """The audit entries from `since` to `until` with their chain proof, as the text of an export
        file (jsonl or csv), also written to `out` if given; for an authority, checked offline by
        `audit_export.verify_export`. The export itself is audited."""
        proof, text = audit_export.export(self.audit, fmt, since, until)
        if out is not None:
            filemodes.create_file(Path(out))  # private (0600) when new: it names who searched for what
            Path(out).write_text(text, encoding="utf-8")
        details = {
            "what": "audit log",
            "format": fmt,
            "since": since,
            "until": until,
            "entries": proof.entries,
        }
        self.audit.record(
            self.actor, "export", {**details, "first_seq": proof.first_seq, "last_seq": proof.last_seq}
        )
        return proof, text

    def subject_export(
        self,
        out: str | Path | None,
        *,
        person: int | None = None,
        photo: ImageSource | None = None,
        face: int | None = None,
        crops: bool = False,
        rgb: bool = False,
    ) -> tuple[subject_access.SubjectExport, bytes]:
        """Everything the catalog holds about one person (GDPR Art. 15, 20) as a zip, also written
        to `out` (never over a file): their photos with every other face hidden (`crops`: only
        their face crops), faces, person, consents, opt-outs, erasure receipts and the audit
        entries that found or touched them (accountability/subject_access.py). The person by id,
        or by their own `photo` (an audited search, purpose "subject access request"; `face` picks
        the face of a photo with several). The export itself is audited with the zip's SHA-256."""
        return subject_access.export(self, out, person=person, photo=photo, face=face, crops=crops, rgb=rgb)

    # erasure -----------------------------------------------------------------------------
    def erase(self, kind: str, target: str, *, confirm: bool = False) -> erasure.ErasureReceipt:
        """Erase a photo (path; a folder erases every photo under it), a person (id) or a collection
        (name) everywhere it is stored, and return the receipt (also kept in the audit log). A
        folder or a collection needs `confirm` (without it nothing is erased). Erased photos are
        refused by indexing from now on (`erase_allow` lets one back)."""
        receipt = erasure.erase(self.catalog, kind, target, self.actor, confirm=confirm)
        self._scrub([receipt])
        return self._receipt(receipt)

    def erase_allow(self, target: str) -> erasure.AllowedAgain:
        """Let indexing take an erased photo again (a DPO's decision): its file or its SHA-256."""
        allowed = erasure.allow(self.catalog, target, self.actor)
        details = allowed.model_dump(exclude={"audit_seq", "by", "at"})
        allowed.audit_seq = self.audit.record(self.actor, "erase.allow", details).seq
        return allowed

    def purge(self, *, audit_older_than: str | None = None) -> PurgeReport:
        """Retention: erase photos older than their collection's retention period and the faces of
        persons whose consent lapsed; delete audit entries older than `audit_older_than` ('2y'; at
        least 183 days, refused before anything is erased)."""
        audit_days = None
        if audit_older_than:
            audit_days = collections.parse_retention(audit_older_than, "--audit-older-than")
            check_retention(audit_days)
        today = datetime.now(UTC)
        receipts = []
        for c in collections.all_(self.catalog):
            # Periods over 100 years (accepted before they were refused) keep photos for good.
            if not c.retention_days or not limits.RETENTION_DAYS.contains(c.retention_days):
                continue
            cutoff = (today - timedelta(days=c.retention_days)).isoformat(timespec="seconds")
            expired = self.catalog.images_indexed_before(c.name, cutoff)
            if expired:
                target = f"{c.name}: indexed before {cutoff[:10]}"
                receipts.append(erasure.erase(self.catalog, "retention", target, self.actor, expired))
        for c in collections.all_(self.catalog):  # destroy after the last interaction (BIPA Sec. 15(a))
            if c.destroy_after_last_use_days is None:
                continue
            cutoff = (today - timedelta(days=c.destroy_after_last_use_days)).isoformat(timespec="seconds")
            unused = collections.unused_since(self.catalog, c.name, cutoff)
            if unused:
                target = f"{c.name}: no interaction since {cutoff[:10]} (destroy after last use)"
                receipts.append(erasure.erase(self.catalog, "retention", target, self.actor, unused))
        for person_id in sorted(consent.lapsed_persons(self.catalog)):
            receipts.append(erasure.erase(self.catalog, "person", str(person_id), self.actor))
        crops = confirmations.drop_expired_crops(self.catalog)  # query faces kept for review, past retention
        crops += self._scrub(receipts)
        receipts = [self._receipt(r) for r in receipts]
        checkpoint = None
        if audit_days:
            entry = self.audit.purge(audit_days, self.actor)
            checkpoint = entry.seq if entry else None
        return PurgeReport(receipts=receipts, audit_checkpoint_seq=checkpoint, query_faces_deleted=crops)

    def _drop_other_indexes(self) -> None:
        """Delete the saved vector indexes of models other than the active one (they rebuild on demand)."""
        for folder in vectors_dir(self.db).glob("*"):
            if folder.is_dir() and folder.name != self.model_id:
                shutil.rmtree(folder, ignore_errors=True)

    def _scrub(self, receipts: list[erasure.ErasureReceipt]) -> int:
        """Scrub what `receipts` erased from every file (the receipts then say what was done or is
        pending), and finish earlier erasures' pending file scrubs if nothing blocks them now.
        Returns how many query face crops went with them (searches with no candidate left)."""
        scrub, crops = None, 0
        if receipts:
            # No saved generation of the vector index may keep erased vectors: rebuild, save (which
            # deletes older generations) and drop other models' indexes, which rebuild on demand.
            self.vectors.rebuild()
            self.vectors.save(force=True)
            self._drop_other_indexes()
            crops = confirmations.drop_expired_crops(self.catalog)  # searches with no candidate left
            scrub = erasure.scrub_file(self.catalog)
            erasure.settle(self.catalog, receipts, scrub)
        if scrub is None or scrub.done:
            self._finish_pending_scrub(scrub)
        return crops

    def _finish_pending_scrub(self, scrub: erasure.Scrub | None = None) -> None:
        """Earlier erasures whose file scrub was pending: finish it if nothing blocks it now."""
        finished = erasure.finish_pending(self.catalog, scrub)
        if finished:
            self.audit.record(self.actor, "erase.scrub", finished)

    def _receipt(self, receipt: erasure.ErasureReceipt) -> erasure.ErasureReceipt:
        entry = self.audit.record(self.actor, "erase", receipt.model_dump(exclude={"audit_seq"}))
        receipt.audit_seq = entry.seq
        return receipt

    # publishing --------------------------------------------------------------------------
    def redact(
        self,
        inputs: Sequence[str | Path],
        out: str | Path,
        *,
        keep: str = "consented",
        style: str | None = None,
        margin: float | None = None,
        purpose: str | None = None,
        manifest: str | Path | None = None,
        on_progress: Progress | None = None,
        within: Path | None = None,
        collections: list[str] | None = None,
    ) -> RedactReport:
        """Redacted copies of photos (files, or every photo under folders) in the folder `out`:
        faces of persons whose active consent covers `publication` stay visible (`keep="none"`:
        none do), every other face is hidden (`style` blur, pixelate or fill, the box grown by
        `margin`; default blur, 0.2), metadata stripped, nothing overwritten, a manifest beside
        each output and an audit entry per photo. Recognising faces is an audited identification:
        `purpose` required.
        `manifest`: apply that (reviewer-edited) manifest to its photo instead (publish/run.py); its
        style and margin unless given. `within` (the service's index root): links under a folder
        that lead out of it are skipped and reported. `collections`: consenting persons are
        recognised only by their faces in these (a key limited to them); others stay hidden."""
        if manifest is not None:
            if inputs:
                raise FacefindError("give photos to redact, or --manifest FILE to re-apply one, not both")
            return publishing.reapply(
                self, manifest, out, style=style, margin=margin, purpose=purpose, on_progress=on_progress,
                collections=collections,
            )  # fmt: skip
        return publishing.redact(
            self, inputs, out, keep=keep, style=style or "blur", margin=0.2 if margin is None else margin,
            purpose=purpose, on_progress=on_progress, within=within, collections=collections,
        )  # fmt: skip

    def publish_check(
        self, folder: str | Path, *, purpose: str | None = None, on_progress: Progress | None = None
    ) -> publishing.PublishCheck:
        """Which photos under `folder` show faces without publication consent (audited; purpose required)."""
        return publishing.check(self, folder, purpose=purpose, on_progress=on_progress)

    # people ------------------------------------------------------------------------------
    @property
    def people(self) -> People:
        """Faces grouped into persons: `ff.people.all()`, `.get(id)`, `.name(id, "Ann")`, `.merge`..."""
        return People(
            self.catalog,
            self.model_id,
            self.settings,
            lambda: people_threshold(
                self.calibration(), people_fmr(self.catalog, self.model_id, self.settings)
            ),
            log=lambda decision, details: self.audit.record(
                self.actor, "person", {"decision": decision, **details}
            ),
        )

    @property
    def review(self) -> ReviewQueue:
        """The review queue's answers: `ff.review.answer(["face:12"], yes=7)` (people/review.py);
        its questions are read through `suggestions`, which audits them as a view."""
        people = self.people
        return ReviewQueue(people, self.calibration(), people._log)

    def suggestions(
        self, *, after: str | None = None, limit: int = 20, max_fmr: float | None = None
    ) -> SuggestionPage:
        """One page of the review queue (audited as a view: it shows faces and who they may be)."""
        limits.PAGE.check(limit)
        if max_fmr is not None:
            limits.MAX_FMR.check(max_fmr)
        page = self.review.page(
            after=after, limit=limit, max_fmr=REVIEW_MAX_FMR if max_fmr is None else max_fmr
        )
        # Each question: [item, candidate]; an "are these one person?" one: the faces it shows.
        shown = {
            "review": [
                [s.item, s.candidate] if s.candidate is not None else s.items for s in page.suggestions
            ]
        }
        self.audit.record(self.actor, "view", shown, self.purpose)
        return page

    def add_face(self, photo: str | Path, box: str, *, person: int | None = None) -> ManualFace:
        """Add a face the detector missed: `box` "x,y,w,h" on an indexed photo, embedded like a
        detected face (manual_faces.py says how it is aligned); into `person` (pinned), else
        clustered. Refused if it matches an opt-out. Audited."""
        from .catalog import manual, photos
        from .catalog import review as review_store

        path = str(Path(photo).expanduser().resolve())
        found = manual.images_at(self.catalog, path)
        if not found:
            raise NotFound(f"{path} is not an indexed photo; `facefind index` it first, then add the face")
        image_id = int(found[0].id)
        if person is not None:
            self.people._decidable(person, "given a face")
        try:
            data = read_catalogued(Path(path), photos.sha256(self.catalog, image_id), self.settings)
            image = decode_image(data, self.settings, name=path)
        except PhotoChanged:
            raise FacefindError(f"{path} changed since it was indexed; index it again first") from None
        face, alignment = manual_faces.embed_box(
            self.backend, image, manual_faces.parse_box(box, image.shape), self.settings
        )
        if optouts.Templates(self.catalog, self.model_id).matches(face.embedding):
            raise Refused("that face matches an opt-out: it is never stored")
        face_id = manual.add(self.catalog, image_id, face, self.actor)
        self.vectors.index()
        self.vectors.save()
        if person is not None:
            review_store.place(self.catalog, person, [face_id])
        self.people.update()
        placed = self.catalog.face_rows([face_id])[face_id].person_id
        self.audit.record(
            self.actor, "face", {"added": face_id, "path": path, "box": list(face.box), "person": placed}
        )
        return ManualFace(
            face_id=face_id,
            image_id=image_id,
            path=path,
            box=_box(face.box),
            alignment=alignment,
            quality=round(face.quality.score, 3),
            usable=face.usable,
            person_id=placed,
        )

    def not_a_face(self, face_id: int) -> NotAFace:
        """Remove a false detection for good: the face goes, and the box is remembered on the
        photo's content so that analysing the photo again does not bring it back. Audited."""
        from .catalog import manual, photos

        row = self.catalog.face_rows([face_id]).get(face_id) if limits.is_id(face_id) else None
        if row is None or face_id in policy.hidden_faces(self.catalog, "results"):
            raise NotFound(f"no face {face_id} that you may see")
        sha256 = photos.sha256(self.catalog, row.image_id)
        if sha256 is None:
            raise FacefindError(f"the photo of face {face_id} has no content hash; index it again first")
        manual.mark_not_a_face(self.catalog, face_id, sha256, row.box, self.actor)
        self.vectors.index()
        self.vectors.save()
        self.audit.record(self.actor, "face", {"not_a_face": face_id, "path": row.path, "box": list(row.box)})
        return NotAFace(face_id=face_id, path=row.path, box=_box(row.box))

    # faces -------------------------------------------------------------------------------
    def faces(self, image: ImageSource, *, rgb: bool = False) -> list[Face]:
        """Every face in a photo, largest first.

        `image` is a path, the file's bytes, or a numpy array of 8-bit pixels in BGR order, as
        OpenCV's `cv2.imread` gives them. An RGB array (`face_recognition.load_image_file`,
        `np.asarray(PIL.Image)`) needs `rgb=True`: taken as BGR it still finds faces, but with
        red and blue swapped every similarity is lower (0.85 instead of 1.0 for the same photo).
        """
        return analyze(self.backend, load_image(image, self.settings, rgb), self.settings)

    def calibration(self) -> Calibration:
        """The user's calibration (`facefind calibrate`) if there is one, else the shipped one."""
        if self.runtime.calibration is None:
            stored = self.catalog.load_calibration(self.model_id)
            self.runtime.calibration = (
                Calibration.from_dict(stored) if stored else default_calibration(self.model_id)
            )
        return self.runtime.calibration

    def threshold(self, max_fmr: float | None, threshold: float | None) -> float:
        if threshold is not None:
            return limits.THRESHOLD.check(threshold)
        return self.calibration().threshold(DEFAULT_MAX_FMR if max_fmr is None else max_fmr)

    # search ------------------------------------------------------------------------------
    def search(
        self,
        image: ImageSource | list[ImageSource] | tuple[ImageSource, ...],
        *,
        top_k: int = 10,
        max_fpir: float | None = None,
        max_fmr: float | None = None,
        threshold: float | None = None,
        face: int | None = None,
        include_low_quality: bool = False,
        collections: list[str] | None = None,
        exclude: Iterable[int] | None = None,
        purpose: str | None = None,
        loosest_fmr: float | None = None,
        rgb: bool = False,
    ) -> SearchResult:
        """Catalogued faces like each face in `image` (or only face number `face`), best first.

        Only matches at or above the threshold are returned: no match is an answer, not an error.
        The threshold keeps the false positive identification rate (FPIR: the share of searches
        for someone absent from the gallery that return anyone) at most `max_fpir` (default 0.01)
        at the number of faces actually searched; experts may set `max_fmr` (per comparison) or a
        similarity `threshold` instead (at most one of the three).
        `collections` limits the search to those collections; `exclude` face ids are never returned.
        Both are applied inside the vector search, so up to `top_k` valid matches still come back.
        Every search is recorded in the audit log with its purpose, which is required.
        `loosest_fmr` refuses a threshold whose false match rate per comparison is above it (the
        service sets it, policy.LOOSEST_FMR, so no key can list the gallery with a threshold of -1).
        An array `image` is BGR (as `cv2.imread`); an RGB one needs `rgb=True` (see `faces`).

        A list of photos is several photos of one person searched as one query: the largest face
        of each, a catalogued face scoring its best similarity to any of them (one `faces` entry,
        the photos in `fused`). The FPIR (or FMR) is shared between the n photos, each searched
        at max_fpir / n, so the stated rate holds whatever the photos; on lfw_dev two photos miss
        1.1% of people instead of one photo's 4.8% (docs/pipeline.md, bench/fnir_bench.py).
        """
        started = _moment()  # Art. 12(3) EU AI Act: the start and end of each use are logged
        photos: list[ImageSource] = list(image) if isinstance(image, list | tuple) else [image]
        limits.PHOTOS.check(len(photos))
        share = len(photos)  # photos sharing the FPIR (FMR) of the search: a union bound
        if share > 1 and face is not None:
            raise FacefindError(
                "--face picks a face of one photo; with several photos the largest face of each is searched"
            )
        purpose = self._purpose(purpose)
        # Opted-out faces, and faces of persons whose consent does not cover search, are never
        # returned, whatever the caller asks.
        withheld = policy.withheld_faces(self.catalog, "search")  # also the guards below
        hidden = policy.hidden_faces(self.catalog, "search", withheld)
        exclude = np.union1d(hidden, np.fromiter(exclude, np.int64)) if exclude is not None else hidden
        limits.TOP_K.check(top_k)
        if face is not None:
            limits.FACE.check(face)
        if sum(x is not None for x in (max_fpir, max_fmr, threshold)) > 1:
            raise FacefindError("give at most one of max_fpir, max_fmr and threshold (--max-fpir ...)")
        calibration = self.calibration()
        index = self.vector_index()
        min_px, min_q = (
            (0.0, 0.0) if include_low_quality else (self.settings.min_face_px, self.settings.min_quality)
        )
        allowed = self.catalog.collection_ids(collections) if collections is not None else None
        gallery = index.count_allowed(min_px, min_q, allowed, exclude)
        if max_fmr is not None or threshold is not None:
            per_photo = None if max_fmr is None else limits.MAX_FMR.check(max_fmr) / share
            rule, cut = ("fmr" if threshold is None else "threshold"), self.threshold(per_photo, threshold)
        else:
            rule, max_fpir = "fpir", DEFAULT_MAX_FPIR if max_fpir is None else max_fpir
            cut = calibration.threshold_for_fpir(limits.MAX_FPIR.check(max_fpir) / share, gallery)
        if loosest_fmr is not None and cut < (floor := calibration.threshold(loosest_fmr)):
            raise InvalidValue(
                f"a threshold of {cut:.3f} would match strangers too often (a false match rate above "
                f"{loosest_fmr:g} per comparison); the service allows {floor:.3f} or higher: use the "
                f"default, or a smaller --max-fpir or --max-fmr"
            )
        first = load_image(photos[0], self.settings, rgb)  # decoded once: its faces, then their crops
        if share == 1:
            query_faces = self._query_faces(photos[0], face, rgb, first)
            groups = [[i] for i in range(len(query_faces))]  # each face of the photo on its own
            fused: list[QueryPhoto] = []
        else:
            query_faces = [
                self._query_faces(p, 0, rgb, first if n == 0 else None)[0] for n, p in enumerate(photos)
            ]
            groups = [list(range(share))]  # one person: one query
            fused = self._fused_photos(photos, [f for _, f in query_faces], calibration)
        queries = np.vstack([f.embedding for _, f in query_faces])
        _, ids = index.search(queries, index.candidates(top_k), min_px, min_q, allowed, exclude)
        rows = self.catalog.face_rows(int(i) for i in ids.ravel() if i >= 0)
        guards = self._guards(withheld)
        guard_cut = max(cut, calibration.threshold(policy.LOOSEST_FMR))  # -1 would guard everything
        out = []
        for group in groups:
            number, qf = query_faces[group[0]]
            vectors = queries[group]
            # Approximate indexes hold quantised vectors: rank and report exact cosines instead.
            # A fused query's top matches are among its photos' own top candidates.
            found = [
                rows[int(fid)] for fid in dict.fromkeys(ids[group].ravel()) if fid >= 0 and int(fid) in rows
            ]
            scored = sorted(((float(np.max(vectors @ r.embedding)), r) for r in found), key=lambda x: -x[0])
            exact = [(s, r) for s, r in scored if s >= cut and not _guarded(r.embedding, guards, guard_cut)]
            matches = [_match(r, s, calibration, gallery, share) for s, r in exact[:top_k]]
            members = [query_faces[i][1] for i in group]
            out.append(
                QueryFace(
                    face=number,
                    box=_box(qf.box),
                    quality=min(f.quality.score for f in members),
                    usable=all(f.usable for f in members),
                    warnings=quality_warnings(qf.quality, self.settings) if share == 1 else [],
                    matches=matches,
                )
            )
        result = SearchResult(
            query=" + ".join(_describe(p) for p in photos),
            model_id=self.model_id,
            threshold=round(cut, 4),
            threshold_extrapolated=calibration.estimate(cut).extrapolated,
            rule=rule,
            max_fpir=max_fpir if rule == "fpir" else None,
            max_fmr=max_fmr if rule == "fmr" else None,
            fmr_floor=calibration.fmr_floor,
            faces_searched=gallery,
            faces=out,
            fused=fused,
        )
        details = {
            "query": result.query,
            "threshold": result.threshold,
            "rule": rule,
            "top_k": top_k,
            "collections": collections,
            "searched": result.faces_searched,
            # The reference database (EU AI Act Art. 12(3)): the collections searched and the state
            # of the catalog's faces (catalog.state_id), so a past search is tied to what it searched.
            "reference": {
                "collections": collections
                if collections is not None
                else [c.name for c in self.collections()],
                "catalog_state": self.catalog.state_id(),
            },
            "started": started,
            "ended": _moment(),
            # Who verified and confirmed a candidate: nobody yet. They come later, each in a "confirm"
            # entry naming this one (accountability/confirmations.py); this entry is never rewritten.
            "verifiers": [],
            "faces": [
                {"face": f.face, "matches": [[m.face_id, m.similarity] for m in f.matches]} for f in out
            ],
        }
        if share > 1:
            details["photos_sha256"] = [_sha256(p, self.settings) for p in photos]
        entry = self.audit.record(self.actor, "search", details, purpose, _sha256(photos[0], self.settings))
        self._await_confirmation(entry.seq, entry.at, purpose, first, out)
        return result

    def _await_confirmation(
        self, seq: int, at: str, purpose: str, image: np.ndarray, out: list[QueryFace]
    ) -> None:
        """The matches of search `seq` await confirmation, with the query faces they were found
        for (small crops of the decoded query photo, kept under the collections' retention) for
        reviewers to compare."""
        if not any(f.matches for f in out):
            return
        box = lambda f: (f.box.x, f.box.y, f.box.w, f.box.h)  # noqa: E731
        crops = {f.face: face_thumbnail(image, box(f), 160) for f in out if f.matches}
        confirmations.record(self.catalog, seq, self.actor, at, purpose, out, crops)

    def _fused_photos(
        self, photos: list[ImageSource], faces: list[Face], calibration: Calibration
    ) -> list[QueryPhoto]:
        """The photos of a fused query as the result shows them; a photo whose face is not like
        the first photo's (at the default FMR of verify) is flagged: the search looks for either."""
        same = calibration.threshold(DEFAULT_MAX_FMR)
        described = []
        for n, (photo, f) in enumerate(zip(photos, faces, strict=True)):
            warnings = quality_warnings(f.quality, self.settings)
            similarity = None if n == 0 else round(float(f.embedding @ faces[0].embedding), 4)
            if similarity is not None and similarity < same:
                warnings.append(
                    f"may not show the same person as photo 1 (similarity {similarity:.3f}, verify's "
                    f"threshold {same:.3f}): the search looks for either"
                )
            described.append(
                QueryPhoto(
                    query=_describe(photo),
                    box=_box(f.box),
                    quality=f.quality.score,
                    usable=f.usable,
                    similarity_to_first=similarity,
                    warnings=warnings,
                )
            )
        return described

    def persons(
        self, include_hidden: bool = False, *, offset: int = 0, limit: int | None = None
    ) -> list[Person]:
        """Every person the people view may show (audited as a view: it names people and their
        photos); `include_hidden` adds persons a reviewer hid, never persons withheld by consent.
        Most faces first; `offset` and `limit` pick one page of them (see `persons_page`)."""
        return self.persons_page(include_hidden, offset=offset, limit=limit)[0]

    def persons_page(
        self,
        include_hidden: bool = False,
        *,
        offset: int = 0,
        limit: int | None = None,
        after: str | None = None,
    ) -> tuple[list[Person], str | None]:
        """One page of `persons` and the key of the next page (None: none follows); `after` is
        such a key, and reads a page deep in 100k persons as fast as the first (people/listing.py).
        The audit entry names that page only."""
        limits.OFFSET.check(offset)
        if limit is not None:
            limits.PAGE.check(limit)
        found, following = listing.page(
            self.people, include_hidden, after=after, offset=offset, limit=limit or 2**31 - 1
        )
        shown = {"people": [p.id for p in found], "faces": sum(p.face_count for p in found)}
        self.audit.record(self.actor, "view", shown, self.purpose)
        return found, following

    def _guards(self, withheld: np.ndarray) -> np.ndarray:
        """The faces no search may find, as vectors: opt-out templates and the stored faces of
        opted-out and withheld persons. A match as like one of them as the search's threshold
        asks could be that person's photo that clustering missed (a new photo, a poor one): it
        is left out too, so a looser threshold never reaches around an opt-out or a withdrawal
        (down to a false match rate of policy.LOOSEST_FMR, the loosest the service allows)."""
        templates = optouts.Templates(self.catalog, self.model_id).vectors
        stored = [r.embedding for r in self.catalog.face_rows(int(i) for i in withheld).values()]
        vectors = [templates.reshape(-1, self.backend.dim), *(v.reshape(1, -1) for v in stored)]
        return np.vstack(vectors).astype(np.float32) if stored or len(templates) else np.zeros((0, 0))

    def person(self, person_id: int, *, offset: int = 0, limit: int | None = None) -> Person:
        """A person and their faces as the people view may show them (audited as a view): refused
        while their consent does not cover showing results; opted-out faces are never among them.
        `faces` holds the page `offset`, `limit` of them (best quality first); `face_count` all."""
        limits.OFFSET.check(offset)
        if limit is not None:
            limits.PAGE.check(limit)
        found = self.people.get(person_id)
        policy.require_shown(self.catalog, person_id)
        if not found.faces:  # every face opted out or erased: nothing of them may be shown
            raise NotFound(f"no person with id {person_id}; `facefind people list` shows them")
        page = found.faces[offset : None if limit is None else offset + limit]
        details: dict[str, object] = {"person": person_id, "faces": found.face_count}
        if len(page) < found.face_count:
            details["shown"] = [f.face_id for f in page]
        self.audit.record(self.actor, "view", details, self.purpose)
        return found.model_copy(update={"faces": page})

    def face_crop(self, face_id: int, *, size: int = 160, collections: list[str] | None = None) -> bytes:
        """A JPEG of one catalogued face, cut from its photo now: crops are never stored.

        Faces no answer may show (opted out, or of a person whose consent does not cover showing
        results) and faces outside `collections` are "not found", as are faces that do not exist.
        """
        limits.CROP_PX.check(size)
        row = self.catalog.face_rows([face_id]).get(face_id) if limits.is_id(face_id) else None
        outside = row is not None and collections is not None and row.collection not in collections
        if row is None or outside or face_id in policy.hidden_faces(self.catalog, "results"):
            raise NotFound(f"no face {face_id} that you may see")
        crop = face_thumbnail(self._photo_of(face_id, row), row.box, size)
        self.audit.record(self.actor, "view", {"face": face_id, "collection": row.collection}, self.purpose)
        return crop

    def _photo_of(self, face_id: int, row: FaceRow) -> np.ndarray:
        """The photo `row` (face `face_id`) was indexed from, decoded: read only if it is the photo
        that was indexed (no link followed, the same content hash), else "not found"."""
        from .catalog import photos

        try:
            data = read_catalogued(Path(row.path), photos.sha256(self.catalog, row.image_id), self.settings)
            return decode_image(data, self.settings, name=row.path)
        except PhotoChanged:
            raise NotFound(f"the photo of face {face_id} changed since it was indexed; re-index it") from None
        except ImageError as err:
            raise NotFound(f"the photo of face {face_id} cannot be read now: {err}") from err

    def face_photo(self, face_id: int, *, size: int = 1600) -> tuple[bytes, float]:
        """The whole photo of a face, for a reviewer to draw a missed face on: a JPEG at most `size`
        pixels on its longer side, and its scale (shown pixels per photo pixel). Faces no answer
        may show are covered (photo_view.py); "not found" as for `face_crop`. Audited as a view."""
        from . import photo_view
        from .catalog import photos

        limits.PHOTO_PX.check(size)
        row = self.catalog.face_rows([face_id]).get(face_id) if limits.is_id(face_id) else None
        hidden = set(policy.hidden_faces(self.catalog, "results").tolist())
        if row is None or face_id in hidden:
            raise NotFound(f"no face {face_id} that you may see")
        image = self._photo_of(face_id, row)
        covered = [box for f, box in photos.face_boxes(self.catalog, row.image_id).items() if f in hidden]
        templates = optouts.Templates(self.catalog, self.model_id)
        if len(templates.vectors):  # faces an opt-out kept out of the catalog are in the photo still
            covered += [
                f.box for f in analyze(self.backend, image, self.settings) if templates.matches(f.embedding)
            ]
        shown, scale = photo_view.jpeg(photo_view.cover(image, covered), size)
        self.audit.record(
            self.actor, "view", {"photo_of_face": face_id, "collection": row.collection}, self.purpose
        )
        return shown, scale

    def person_photos(self, person_id: int, *, purpose: str | None = None) -> list[str]:
        """Every photo of a catalogued person (a search by person: audited, purpose required)."""
        purpose = self._purpose(purpose)
        self.people.get(person_id)
        policy.require_shown(self.catalog, person_id)
        photos = self.people.photos(person_id)
        self.audit.record(self.actor, "search", {"person": person_id, "photos": len(photos)}, purpose)
        return photos

    def _purpose(self, purpose: str | None) -> str:
        purpose = require_text((purpose or self.purpose or "").strip(), "the purpose")
        if not purpose:
            raise InvalidValue(
                "a search must state its purpose (--purpose TEXT, e.g. 'case 2026-114: photos for the "
                "subject's own request'); it is kept in the audit log with who searched and what was found"
            )
        return purpose

    def verify(
        self,
        a: ImageSource,
        b: ImageSource,
        *,
        max_fmr: float | None = None,
        threshold: float | None = None,
        purpose: str | None = None,
        rgb: bool = False,
    ) -> Verification:
        """Do the largest faces in photos `a` and `b` show the same person? (audited) Arrays are
        BGR (as `cv2.imread`); `rgb=True` says the array photos among them are RGB (see `faces`)."""
        cut = self.threshold(max_fmr, threshold)
        ((_, fa),) = self._query_faces(a, 0, rgb and isinstance(a, np.ndarray))
        ((_, fb),) = self._query_faces(b, 0, rgb and isinstance(b, np.ndarray))
        similarity = float(np.dot(fa.embedding, fb.embedding))
        calibration = self.calibration()
        verification = Verification(
            a=_describe(a),
            b=_describe(b),
            model_id=self.model_id,
            similarity=round(similarity, 4),
            fmr=calibration.fmr(similarity),
            fmr_floor=calibration.fmr_floor,
            threshold=round(cut, 4),
            same_person=similarity >= cut,
            face_a=_box(fa.box),
            face_b=_box(fb.box),
        )
        details = {
            "a": verification.a,
            "b": verification.b,
            "b_sha256": _sha256(b, self.settings),
            "similarity": verification.similarity,
            "same_person": verification.same_person,
        }
        self.audit.record(self.actor, "verify", details, purpose or self.purpose, _sha256(a, self.settings))
        return verification

    def _query_faces(
        self, image: ImageSource, face: int | None, rgb: bool = False, decoded: np.ndarray | None = None
    ) -> list[tuple[int, Face]]:
        """The faces of a query photo (`decoded`: the photo already decoded), numbered."""
        if decoded is None:
            decoded = load_image(image, self.settings, rgb)
        found = analyze(self.backend, decoded, self.settings)
        if not found:
            raise NoFaceError(
                f"no face found in {_describe(image)}. Use a photo in which the face is clearly "
                f"visible and at least {self.settings.min_face_px} pixels wide."
            )
        if face is None:
            return list(enumerate(found))
        if not 0 <= face < len(found):
            raise FacefindError(
                f"face {face} does not exist: {_describe(image)} has {len(found)} face(s), "
                f"numbered 0..{len(found) - 1} from largest to smallest."
            )
        return [(face, found[face])]

    # vector index --------------------------------------------------------------------------
    @property
    def vectors(self) -> VectorStore:
        """The vector index of the current model, kept where `settings.vectors_dir` says."""
        if self.runtime.vectors is None:
            folder = vectors_dir(self.db)
            kind = self.catalog.get_setting("index_kind", "auto")
            self.runtime.vectors = VectorStore(
                self.catalog, self.model_id, embedding_dim(self.settings), folder, IndexPolicy(kind=kind)
            )
        return self.runtime.vectors

    def vector_index(self, on_progress: Progress | None = None) -> FaissIndex:
        """The loaded index; rebuilt from the catalog (reporting progress) if it is missing or stale."""
        return self.vectors.index(on_progress)

    def index_info(self, on_progress: Progress | None = None) -> dict:
        self.vectors.index(on_progress)
        return self.vectors.info()

    def reindex(self, kind: str = "auto", on_progress: Progress | None = None) -> dict:
        """Rebuild the vector index from the catalog; `kind` other than auto is kept for the future."""
        if kind != "auto" and kind not in KINDS:
            raise FacefindError(f"--kind must be auto or one of {', '.join(KINDS)}, got {kind!r}")
        self.catalog.set_setting("index_kind", kind)
        self.runtime.vectors = None
        self.vectors.rebuild(None if kind == "auto" else kind, on_progress)
        self.vectors.save(force=True)
        return self.vectors.info()

    # calibration and stats -----------------------------------------------------------------
    def calibrate(
        self,
        labelled_dir: str | Path | Sequence[str | Path],
        *,
        workers: int | None = None,
        on_progress: Progress | None = None,
        save: bool = True,
        model: str | None = None,
    ) -> Calibration:
        """Measure the similarity->FMR table on one or more PERSON/IMAGE folders and use it from now on
        (each photo's labelled face is the one nearest its centre; pairs only within a folder: see
        evaluate.load_labelled).

        `model` calibrates a registered recognizer other than the active one (before `models use`).
        """
        from .evaluate import load_labelled

        settings, backend = self.settings, lambda: self.backend
        if model is not None and model != self.models.active:
            settings = self.models.settings_for(model)
            other = load_backend(settings)
            backend = lambda: other  # noqa: E731
        folders = [labelled_dir] if isinstance(labelled_dir, str | Path) else list(labelled_dir)
        labelled = load_labelled([Path(f) for f in folders], settings, workers, backend, on_progress)
        calibration = labelled.calibration(backend().model_id)
        if save:
            self.catalog.save_calibration(calibration.model_id, calibration.to_dict())
            if calibration.model_id == self.models.active:
                self.runtime.calibration = calibration
        return calibration

    def report(self, since: str | None = None) -> dict:
        """The transparency report (accountability/report.py) as a dict; see `report.markdown`."""
        return report.build(self.catalog, self.audit, since)

    def dpia(self, evaluation: dict | None = None) -> dict:
        """The impact-assessment pack (accountability/dpia.py) as a dict: purposes, bases, volumes,
        accuracy at the operating point (with an `evaluate --json` result if given), oversight,
        the audit log, and the questions only the operator can answer; see `dpia.markdown`."""
        return dpia.build(self, evaluation)

    def errors(self, collection: str | None = None) -> list[FileError]:
        """Every file that could not be indexed, with the reason (all collections by default)."""
        collection_id = self.catalog.collection_ids([collection])[0] if collection else None
        return [
            FileError(collection=c, path=p, error=e) for c, p, e in self.catalog.failed_images(collection_id)
        ]

    def stats(self) -> dict:
        stats = self.catalog.stats(self.settings.min_face_px, self.settings.min_quality)
        stats["db"] = redacted(str(self.db))  # no password in a printout
        return stats


def _match(row: FaceRow, similarity: float, calibration: Calibration, gallery: int, photos: int = 1) -> Match:
    """A match and its rates; for `photos` fused query photos each rate is the union bound over them."""
    fmr, fpir = calibration.estimate(similarity), calibration.fpir(similarity, gallery)
    fmr_value, fpir_value, fpir_upper = (min(1.0, photos * x) for x in (fmr.value, fpir.value, fpir.upper))
    return Match(
        face_id=row.id,
        image_id=row.image_id,
        path=row.path,
        collection=row.collection,
        box=_box(row.box),
        person_id=row.person_id,
        person=row.person_name,
        similarity=round(similarity, 4),
        fmr=fmr_value,
        fpir=fpir_value,
        fpir_upper=fpir_upper,
        extrapolated=fmr.extrapolated,
        quality=row.quality,
    )


def _guarded(embedding: np.ndarray, guards: np.ndarray, cut: float) -> bool:
    """Whether a match is at least as like a withheld face (or an opt-out template) as the
    search's threshold, so that it may be that person (see FaceFind._guards)."""
    return bool(len(guards)) and float(np.max(guards @ embedding)) >= cut


def _box(box: tuple[float, float, float, float]) -> Box:
    x, y, w, h = (round(float(v), 1) for v in box)
    return Box(x=x, y=y, w=w, h=h)


def _moment() -> str:
    """Now in UTC to the millisecond: the start and end of a search (audit log, Art. 12(3))."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _sha256(image: ImageSource, settings: Settings) -> str | None:
    """Content hash of a query photo: the audit log keeps this, never the photo."""
    try:
        if isinstance(image, str | Path):  # read as photos are: regular files only, bounded
            data = read_photo(Path(image).expanduser(), settings)
        elif isinstance(image, np.ndarray):
            data = np.ascontiguousarray(image).tobytes()
        else:
            data = bytes(image)
    except ImageError:
        return None
    return hashlib.sha256(data).hexdigest()


def _describe(image: ImageSource) -> str:
    if isinstance(image, str | Path):
        return str(image)
    if isinstance(image, np.ndarray):
        return f"<array {'x'.join(map(str, image.shape))}>"
    if isinstance(image, Upload) and image.name:
        return f"<upload {image.name!r}, {len(image)} bytes>"
    return f"<{len(image)} bytes>"
