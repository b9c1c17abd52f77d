"""Redactions of the service (`/v1/redactions`): uploads and their redacted copies, kept briefly.

A photo is redacted in its request (`ff.redact`, audited with its purpose); a video, or a folder
under a collection's index root, runs as a job in a thread of the process that took it, on its own
runtime, writing its progress (done, total, rate, ETA) where every server process reads it.

Each redaction is a private folder (0700) of the server's redaction folder (`folder()`: in the
system's temporary folder, one per user and catalog), named by a random id:
    state.json   the owner (the key's name: no other key sees it), kind, purpose, progress, state
    input/NAME   the upload (none for a folder: its photos are read where they are)
    out-N/       the N-th rendering: the redacted copy and its manifest
A redaction is deleted with everything in it by DELETE, and `TTL_SECONDS` after it was last
used (any request that lists, makes or renders redactions sweeps expired ones away).

What a publisher is shown (`shown_face`): a kept face's person and consent, which the person
agreed to publish; of a hidden face only that it lacks publication consent ("no-consent"), never
whether its person opted out or withheld consent, nor how similar it was to anyone.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from .. import engine
from ..accountability import collections
from ..errors import FacefindError, ImageError, InvalidValue, NotFound, TooManyRequests, Unavailable
from ..filemodes import FILE_MODE, make_folder
from ..images import Upload, decode_image, is_image_path
from ..paths import shown
from ..policy import Principal
from ..publish import redact as r
from ..publish.video import VIDEO_SUFFIXES
from ..results import Box

TTL_SECONDS = 30 * 60  # a redaction is deleted this long after its last use
HEARTBEAT_SECONDS = 1.0  # a running job writes its progress at most this often
STALE_SECONDS = 30.0  # a running job silent this long lost its process
MAX_RUNNING = 1  # video and folder jobs running at once in the whole server
# Reasons a publisher may read; any other reason of a hidden face (optout, withheld, unknown) is
# shown as NO_CONSENT, so that a redaction never tells who opted out or withdrew consent.
SHOWN_REASONS = ("consent", "reviewer", "small")
NO_CONSENT = "no-consent"
_ID = re.compile(r"^[A-Za-z0-9_-]{16}$")
log = logging.getLogger("facefind")


class ShownFace(BaseModel):
    box: Box
    decision: Literal["kept", "hidden"]
    reason: str = Field(description="consent, reviewer, small, or no-consent (any other hidden face)")
    score: float | None = None
    person_id: int | None = Field(None, description="A kept face's person (they consented to publication).")
    consent_id: int | None = None


class Redaction(BaseModel):
    id: str
    kind: Literal["photo", "video", "folder"]
    name: str  # the upload's file name, or the folder
    state: Literal["running", "done", "failed", "cancelled"]
    purpose: str
    style: str
    margin: float
    created_at: str
    expires_at: str
    renders: int = 0
    width: int | None = None
    height: int | None = None
    faces: list[ShownFace] = []  # a photo's, as the last rendering decided
    done: int = 0
    total: int = 0
    rate: float | None = None  # units (photos; a video's frames, each counted found and written) a second
    eta_seconds: float | None = None
    summary: dict[str, Any] | None = None  # counts of a video or folder job
    errors: list[r.RedactError] = []  # files of a folder that could not be redacted
    error: str | None = None
    download: str | None = None  # where the result is, once done


class EditedFace(BaseModel):
    box: Box
    decision: Literal["kept", "hidden"]


class Edit(BaseModel):
    faces: list[EditedFace] = Field(
        max_length=2000, description="Every face: kept or hidden; new boxes added."
    )
    style: str | None = None
    margin: float | None = None


class FolderRequest(BaseModel):
    path: str = Field(description="A folder (or photo) under an index root of the collection.")
    collection: str = "default"
    purpose: str | None = None
    style: str = "blur"
    margin: float = 0.2


def folder(db: str | Path) -> Path:
    """The server's redaction folder: private, the user's own, one per catalog."""
    base = Path(tempfile.gettempdir()) / f"facefind-redactions-{os.getuid()}"
    make_folder(base)
    info = base.lstat()
    if base.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise Unavailable(f"{base} is not a private folder of this user; remove it and try again")
    here = base / hashlib.sha256(str(db).encode()).hexdigest()[:16]
    make_folder(here)
    return here


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


class Redactions:
    """The redactions of one catalog, in its redaction folder, for the key that made each."""

    def __init__(self, db: str | Path) -> None:
        self.db = db

    @property
    def root(self) -> Path:
        """The redaction folder, made when first needed (a server nobody publishes with makes none)."""
        return folder(self.db)

    # state ------------------------------------------------------------------------------------
    def _dir(self, rid: str) -> Path:
        return self.root / rid

    def _read(self, rid: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self._dir(rid) / "state.json").read_text())
        except (OSError, ValueError):
            return None
        return data

    def _write(self, state: dict[str, Any]) -> None:
        path = self._dir(state["id"]) / "state.json"
        temp = path.with_name(f".state.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f)
        os.replace(temp, path)

    def _owned(self, who: Principal, rid: str) -> dict[str, Any]:
        state = self._read(rid) if _ID.match(rid) else None
        if state is None or state["owner"] != who.name:
            raise NotFound(
                f"no redaction {rid} of yours (each is deleted {TTL_SECONDS // 60} minutes after "
                "its last use)"
            )
        return self._alive(state)

    def _beat(self, state: dict[str, Any]) -> float:
        """When a job last showed it lives: its progress, or the heartbeat its thread keeps."""
        try:
            return max(state["beat"], (self._dir(state["id"]) / "beat").stat().st_mtime)
        except OSError:
            return float(state["beat"])

    def _alive(self, state: dict[str, Any]) -> dict[str, Any]:
        if state["state"] == "running" and time.time() - self._beat(state) > STALE_SECONDS:
            state.update(state="failed", error="the server process running it stopped; start it again")
        return state

    def _new(
        self, who: Principal, kind: str, name: str, purpose: str, style: str, margin: float
    ) -> dict[str, Any]:
        self.sweep()
        rid = secrets.token_urlsafe(12)
        make_folder(self._dir(rid))
        now = time.time()
        state = {
            "id": rid,
            "owner": who.name,
            "kind": kind,
            "name": name,
            "purpose": purpose,
            "style": style,
            "margin": margin,
            "created": now,
            "used": now,
            "beat": now,
            "state": "running",
            "renders": 0,
            "done": 0,
            "total": 0,
            "started": now,
            "collections": who.within(None),  # a key limited to collections recognises by their faces
        }
        self._write(state)
        return state

    def remove(self, rid: str) -> None:
        shutil.rmtree(self._dir(rid), ignore_errors=True)

    def sweep(self) -> None:
        """Delete every redaction unused for TTL_SECONDS (a running job's heartbeat is a use)."""
        cutoff = time.time() - TTL_SECONDS
        for entry in self.root.iterdir():
            state = self._read(entry.name)
            if state is None:
                # A folder being made has its state within a moment; one without for long is debris.
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime < cutoff:
                        shutil.rmtree(entry, ignore_errors=True)
                continue
            if max(state["used"], self._beat(state)) < cutoff:
                shutil.rmtree(entry, ignore_errors=True)

    # what the owner sees ------------------------------------------------------------------------
    def view(self, state: dict[str, Any]) -> Redaction:
        created = datetime.fromtimestamp(state["created"], UTC)
        expires = datetime.fromtimestamp(max(state["used"], state["beat"]) + TTL_SECONDS, UTC)
        out = Redaction(
            id=state["id"],
            kind=state["kind"],
            name=state["name"],
            state=state["state"],
            purpose=state["purpose"],
            style=state["style"],
            margin=state["margin"],
            created_at=_iso(created),
            expires_at=_iso(expires),
            renders=state["renders"],
            done=state["done"],
            total=state["total"],
            summary=state.get("summary"),
            error=state.get("error"),
            errors=[r.RedactError(**e) for e in state.get("errors", [])],
        )
        if state["state"] == "running" and state["done"]:
            elapsed = max(time.time() - state["started"], 1e-6)
            out.rate = round(state["done"] / elapsed, 2)
            out.eta_seconds = round((state["total"] - state["done"]) / out.rate, 1) if out.rate else None
        if state["kind"] == "photo" and state["renders"]:
            manifest = r.read_manifest(Path(state["manifest"]))
            out.width, out.height = manifest.width, manifest.height
            out.faces = [shown_face(f) for f in manifest.faces]
        if state["state"] == "done":
            out.download = f"/v1/redactions/{state['id']}/file"
        return out

    def mine(self, who: Principal) -> list[Redaction]:
        self.sweep()
        mine = [s for e in self.root.iterdir() if (s := self._read(e.name)) and s["owner"] == who.name]
        return [self.view(self._alive(s)) for s in sorted(mine, key=lambda s: s["created"])]

    def get(self, who: Principal, rid: str) -> Redaction:
        return self.view(self._owned(who, rid))

    def delete(self, who: Principal, rid: str) -> Redaction:
        """Delete a redaction now (a running job stops at its next progress step)."""
        state = self._owned(who, rid)
        running = state["state"] == "running"
        (self._dir(rid) / "cancel").touch()
        seen = self.view(state)
        seen.download = None
        if running:  # its thread deletes it (at its next step, or as it ends)
            seen.state = "cancelled"
        else:
            self.remove(rid)
        return seen

    def file(self, who: Principal, rid: str) -> tuple[Path, str, str]:
        """The result's path, its media type and the name to save it as."""
        state = self._owned(who, rid)
        if state["state"] != "done":
            raise FacefindError(f"redaction {rid} is {state['state']}: there is nothing to download")
        state["used"] = time.time()
        self._write(state)
        path = Path(state["output"])
        if state["kind"] == "folder":
            return path, "application/zip", "redacted.zip"
        types = {
            ".jpg": "image/jpeg",
            ".jpeg": "image/jpeg",
            ".png": "image/png",
            ".webp": "image/webp",
            ".bmp": "image/bmp",
            ".tif": "image/tiff",
            ".tiff": "image/tiff",
            ".mp4": "video/mp4",
            ".mov": "video/quicktime",
            ".mkv": "video/x-matroska",
        }
        return path, types.get(path.suffix.lower(), "application/octet-stream"), path.name

    # photos -------------------------------------------------------------------------------------
    def photo(
        self,
        ff: engine.FaceFind,
        who: Principal,
        upload: Upload,
        purpose: str | None,
        style: str,
        margin: float,
    ) -> Redaction:
        """Redact an uploaded photo now (in the request: `ff` is the service's runtime)."""
        name = _safe_name(upload.name, "photo")
        decode_image(upload, ff.settings, name=name, upload=True)  # a clear 400 before anything is kept
        if not is_image_path(Path(name)):
            name = f"{Path(name).stem or 'photo'}{_format_suffix(upload)}"
        state = self._new(who, "photo", upload.name or name, purpose or "", style, margin)
        try:
            source = self._save(state["id"], name, upload)
            out = self._dir(state["id"]) / "out-1"
            report = ff.redact(
                [source], out, style=style, margin=margin, purpose=purpose, collections=who.within(None)
            )
            if report.errors:
                raise ImageError(report.errors[0].error.replace(str(source), upload.name or name))
            self._rendered(state, report.photos[0])
        except BaseException:
            self.remove(state["id"])
            raise
        return self.view(state)

    def edit(self, ff: engine.FaceFind, who: Principal, rid: str, edit: Edit) -> Redaction:
        """Render a photo again with the owner's decisions: faces toggled, boxes added (reapplied
        by the library, which hides an opted-out or withheld face whatever the edit says)."""
        state = self._owned(who, rid)
        if state["kind"] != "photo" or state["state"] != "done":
            raise FacefindError(
                f"redaction {rid} is a {state['kind']} ({state['state']}): only a photo's faces can be edited"
            )
        manifest = r.read_manifest(Path(state["manifest"]))
        faces = []
        for e in edit.faces:
            box = _inside(e.box, manifest.width, manifest.height)
            same = next((f for f in manifest.faces if r.overlaps(f.box, box) >= 0.9), None)
            if same is not None and same.decision == e.decision:
                faces.append(same)
            else:
                faces.append(r.ManifestFace(box=box, decision=e.decision, reason="reviewer"))
        renders = state["renders"] + 1
        edited = manifest.model_copy(update={"faces": faces})
        path = self._dir(rid) / f"edit-{renders}{r.MANIFEST_SUFFIX}"
        r.write_new(path, json.dumps(edited.model_dump(mode="json")).encode())
        out = self._dir(rid) / f"out-{renders}"
        try:
            report = ff.redact(
                [], out, manifest=path, style=edit.style, margin=edit.margin, purpose=state["purpose"],
                collections=who.within(None),
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
        finally:
            path.unlink(missing_ok=True)
        previous = Path(state["output"]).parent
        if edit.style is not None:
            state["style"] = edit.style
        if edit.margin is not None:
            state["margin"] = edit.margin
        self._rendered(state, report.photos[0])
        shutil.rmtree(previous, ignore_errors=True)
        return self.view(state)

    def _rendered(self, state: dict[str, Any], done: r.Redacted) -> None:
        state.update(
            state="done",
            output=done.output,
            manifest=done.manifest,
            renders=state["renders"] + 1,
            done=1,
            total=1,
            used=time.time(),
            summary={"faces": done.faces, "kept": done.kept, "hidden": done.hidden},
        )
        self._write(state)

    def _save(self, rid: str, name: str, data: bytes) -> Path:
        source = self._dir(rid) / "input" / name
        r.write_new(source, data)
        return source

    # jobs -------------------------------------------------------------------------------------
    def video(
        self, who: Principal, upload: Upload, purpose: str | None, style: str, margin: float
    ) -> Redaction:
        """Start redacting an uploaded video (a job)."""
        name = _safe_name(upload.name, "video")
        if Path(name).suffix.lower() not in VIDEO_SUFFIXES:  # e.g. a URL's name
            raise InvalidValue(f"{shown(name)}: not a video file by its name (MP4, MOV, MKV, WebM)")
        _require_purpose(purpose)
        r.check_style(style, "consented", margin)
        self._room()
        state = self._new(who, "video", upload.name or name, purpose or "", style, margin)
        try:
            source = self._save(state["id"], name, upload)
        except BaseException:
            self.remove(state["id"])
            raise
        self._start(state, [source], None)
        return self.view(state)

    def folder_job(self, ff: engine.FaceFind, who: Principal, body: FolderRequest) -> Redaction:
        """Start redacting the photos under a folder the service may read (a collection's index root)."""
        who.within([body.collection])  # a key limited to other collections may not read its folders
        real, root = collections.index_root(ff.catalog, body.collection, body.path)
        _require_purpose(body.purpose)
        r.check_style(body.style, "consented", body.margin)
        self._room()
        state = self._new(who, "folder", body.path, body.purpose or "", body.style, body.margin)
        self._start(state, [real], root)
        return self.view(state)

    def _room(self) -> None:
        running = [
            s
            for e in self.root.iterdir()
            if (s := self._read(e.name)) and s["kind"] != "photo" and self._alive(s)["state"] == "running"
        ]
        if len(running) >= MAX_RUNNING:
            raise TooManyRequests(
                f"{len(running)} redaction job(s) running, the most this server runs at once; "
                "try again when it ends"
            )

    def _start(self, state: dict[str, Any], inputs: list[Path], within: Path | None) -> None:
        threading.Thread(
            target=self._run, args=(state, inputs, within), name=f"facefind-redact-{state['id']}", daemon=True
        ).start()

    def _run(self, state: dict[str, Any], inputs: list[Path], within: Path | None) -> None:
        rid = state["id"]
        out = self._dir(rid) / "out-1"
        last = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last
            if (self._dir(rid) / "cancel").exists():
                raise KeyboardInterrupt
            if time.monotonic() - last >= HEARTBEAT_SECONDS or done >= total:
                last = time.monotonic()
                state.update(done=done, total=total, beat=time.time())
                self._write(state)

        # The heartbeat goes on while the thread lives, however long one photo or frame takes.
        finished = threading.Event()
        threading.Thread(target=self._heartbeat, args=(rid, finished), daemon=True).start()
        try:
            with engine.open(self.db, actor=state["owner"]) as ff:
                report = ff.redact(
                    inputs,
                    out,
                    style=state["style"],
                    margin=state["margin"],
                    purpose=state["purpose"],
                    on_progress=progress,
                    within=within,
                    collections=state.get("collections"),
                )
            source = self._dir(rid) / "input"
            prefix = str(source) + os.sep
            errors = [
                {"path": e.path.replace(prefix, ""), "error": e.error.replace(prefix, "")}
                for e in report.errors
            ]
            if state["kind"] == "video":
                if not report.videos:
                    raise FacefindError(errors[0]["error"] if errors else "the video could not be redacted")
                v = report.videos[0]
                state.update(
                    output=v.output,
                    summary={
                        "frames": v.frames,
                        "tracks": v.tracks,
                        "kept": v.kept,
                        "hidden": v.hidden,
                        "fps_processed": v.fps_processed,
                    },
                )
            else:
                state.update(
                    output=str(self._zip(out, [Path(p.output) for p in report.photos])),
                    errors=errors,
                    summary={
                        "photos": len(report.photos),
                        "faces": sum(p.faces for p in report.photos),
                        "kept": sum(p.kept for p in report.photos),
                        "hidden": sum(p.hidden for p in report.photos),
                    },
                )
            state.update(state="done", done=state["total"] or 1, total=state["total"] or 1)
        except KeyboardInterrupt:
            finished.set()
            self.remove(rid)  # deleted, or asked to: nothing of it is kept
            return
        except FacefindError as err:
            state.update(state="failed", error=str(err).replace(str(self._dir(rid) / "input") + os.sep, ""))
        except Exception:  # logged, never shown: it could name anything the server touched
            log.exception("redaction job %s failed", rid)
            state.update(state="failed", error="internal error; the server log has the details")
        finally:
            finished.set()
        if (self._dir(rid) / "cancel").exists():  # deleted while it ran
            self.remove(rid)
            return
        state.update(beat=time.time(), used=time.time())
        self._write(state)

    def _heartbeat(self, rid: str, finished: threading.Event) -> None:
        beat = self._dir(rid) / "beat"
        with contextlib.suppress(OSError):
            beat.touch()
        while not finished.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError):
                os.utime(beat)  # never makes the file again once the redaction was deleted

    def _zip(self, out: Path, outputs: list[Path]) -> Path:
        """The folder's redacted copies in one ZIP file (their manifests stay on the server: they
        give the reasons a publisher is not shown)."""
        path = out.parent / "redacted.zip"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
            for p in outputs:
                z.write(p, p.relative_to(out).as_posix())
        r.write_new(path, buffer.getvalue())
        return path


def shown_face(f: r.ManifestFace) -> ShownFace:
    """A face as a publisher sees it (see the module's note)."""
    if f.decision == "kept":
        return ShownFace(
            box=f.box,
            decision="kept",
            reason=f.reason,
            score=f.score,
            person_id=f.person_id,
            consent_id=f.consent_id,
        )
    reason = f.reason if f.reason in SHOWN_REASONS else NO_CONSENT
    return ShownFace(box=f.box, decision="hidden", reason=reason, score=f.score, person_id=None)


def _require_purpose(purpose: str | None) -> None:
    if not (purpose or "").strip():
        raise InvalidValue(
            "a redaction recognises faces of consenting persons: state its purpose (e.g. 'club newsletter "
            "12'); it is kept in the audit log with who redacted what"
        )


def _safe_name(name: str | None, default: str) -> str:
    """The upload's file name as one safe component (it is the sender's word)."""
    base = re.sub(r"[^\w.+-]+", "_", Path((name or "").replace("\\", "/")).name).strip("._")[:100]
    return base or default


def _format_suffix(data: bytes) -> str:
    from PIL import Image

    with contextlib.suppress(Exception), Image.open(io.BytesIO(data)) as img:
        return {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}.get(
            img.format or "", ".png"
        )
    return ".png"


def _inside(box: Box, width: int, height: int) -> Box:
    x0, y0 = max(0.0, min(box.x, width)), max(0.0, min(box.y, height))
    x1, y1 = max(x0, min(box.x + box.w, width)), max(y0, min(box.y + box.h, height))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise InvalidValue(
            f"a box of {box.w:g}x{box.h:g} at ({box.x:g}, {box.y:g}) is not inside the {width}x{height} photo"
        )
    return Box(x=round(x0, 1), y=round(y0, 1), w=round(x1 - x0, 1), h=round(y1 - y0, 1))


def redactions(request: Any) -> Redactions:
    found: Redactions = request.app.state.redactions
    return found
