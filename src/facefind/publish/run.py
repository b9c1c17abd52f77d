"""`facefind redact` and `facefind publish-check`: photos in, redacted copies and answers out.

Each photo: detect every face for recall (detect.py), decide which stay visible (decide.py),
draw, write the output and its manifest (redact.py), and record one audit entry: who, the
purpose, the photo's hash, and which persons were kept under which consent. Identifying faces
(`keep="consented"`) is a search of the catalog: a purpose is required.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

from ..errors import FacefindError, ImageError
from ..images import decode_image, is_image_path, read_photo
from ..ingest import scan
from ..paths import shown
from ..results import Box, FileError
from . import redact as r
from . import video
from .decide import Decision, Gallery
from .detect import RecallDetector

if TYPE_CHECKING:
    from ..engine import FaceFind

Progress = Callable[[int, int], None]
# A fresh detection and a manifest box are the same face when they overlap this much.
SAME_FACE_IOU = 0.3


def photos(
    inputs: Sequence[str | Path], out: Path | None, within: Path | None = None
) -> tuple[list[tuple[Path, Path | None]], list[r.RedactError]]:
    """(photo, the folder it was found under) for every photo named or under a folder named;
    nothing under the output folder; `within` (the service's index root): no link leading out."""
    found: list[tuple[Path, Path | None]] = []
    errors: list[r.RedactError] = []
    skip = out.resolve() if out is not None and out.exists() else None
    for given in inputs:
        path = Path(given).expanduser()
        if not path.exists():
            errors.append(r.RedactError(path=str(path), error="no such file or folder"))
            continue
        root = path if path.is_dir() else None
        if root is None and not is_image_path(path):
            errors.append(r.RedactError(path=str(path), error="not a photo (by its extension); skipped"))
            continue
        for task in scan(path, within):
            if isinstance(task, FileError):
                errors.append(r.RedactError(path=task.path, error=task.error))
                continue
            photo = Path(task.path)
            if skip is not None and photo.resolve().is_relative_to(skip):
                continue
            found.append((photo, root))
    return found, errors


def _manifest_faces(detections: Iterable, decisions: list[Decision]) -> list[r.ManifestFace]:
    faces = []
    for d, dec in zip(detections, decisions, strict=True):
        x, y, w, h = (round(float(v), 1) for v in d.box)
        faces.append(
            r.ManifestFace(
                box=Box(x=x, y=y, w=w, h=h),
                decision="kept" if dec.kept else "hidden",
                reason=dec.reason,
                score=round(d.score, 3),
                person_id=dec.person_id,
                consent_id=dec.consent_id,
                similarity=dec.similarity,
            )
        )
    return faces


class Publisher:
    def __init__(
        self, ff: FaceFind, keep: str, purpose: str | None, collections: list[str] | None = None
    ) -> None:
        self.ff = ff
        self.keep = keep
        self.purpose = ff._purpose(purpose) if keep == "consented" else (purpose or ff.purpose)
        if ff.runtime.recall is None:
            ff.runtime.recall = RecallDetector()
        self.detector = ff.runtime.recall
        self.gallery = (
            Gallery.load(ff.catalog, ff.backend, ff.calibration(), ff.settings.min_face_px, collections)
            if keep == "consented"
            else None
        )

    def decide(self, image: np.ndarray) -> list[r.ManifestFace]:
        detections = self.detector.detect(image)
        if self.gallery is None:
            decisions = [Decision(False, "keep-none") for _ in detections]
        else:
            decisions = self.gallery.decide(self.ff.backend, image, detections)
        return _manifest_faces(detections, decisions)

    def read(self, photo: Path) -> tuple[bytes, np.ndarray]:
        data = read_photo(photo, self.ff.settings)
        return data, decode_image(data, self.ff.settings, name=str(photo))

    def audit(self, action: str, details: dict, digest: str | None) -> int:
        return self.ff.audit.record(self.ff.actor, action, details, self.purpose, digest).seq

    def write(
        self, photo: Path, data: bytes, image: np.ndarray, faces: list[r.ManifestFace],
        output: Path, style: str, margin: float, edited: bool = False,
    ) -> r.Redacted:  # fmt: skip
        digest = r.sha256(data)
        manifest = r.Manifest(
            input=str(photo), input_sha256=digest, output=str(output), width=image.shape[1],
            height=image.shape[0], keep=self.keep, style=style, margin=margin, faces=faces,
        )  # fmt: skip
        encoded = r.encode(r.draw(image, faces, style, margin), output.suffix.lower())
        manifest_path = r.write_pair(output, encoded, manifest)
        kept = [f for f in faces if f.decision == "kept"]
        details = {
            "input": str(photo),
            "output": str(output),
            "keep": self.keep,
            "manifest_applied": edited,
            "faces": len(faces),
            "hidden": len(faces) - len(kept),
            "kept": [
                {"person_id": f.person_id, "consent_id": f.consent_id, "reason": f.reason,
                 "box": [f.box.x, f.box.y, f.box.w, f.box.h]}
                for f in kept
            ],
        }  # fmt: skip
        seq = self.audit("redact", details, digest)
        return r.Redacted(
            input=str(photo), output=str(output), manifest=str(manifest_path), faces=len(faces),
            kept=len(kept), hidden=len(faces) - len(kept),
            kept_persons=sorted({f.person_id for f in kept if f.person_id is not None}), audit_seq=seq,
        )  # fmt: skip


def redact(
    ff: FaceFind,
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    keep: str = "consented",
    style: str = "blur",
    margin: float = 0.2,
    purpose: str | None = None,
    on_progress: Progress | None = None,
    within: Path | None = None,
    collections: list[str] | None = None,
) -> r.RedactReport:
    r.check_style(style, keep, margin)
    if not inputs:
        raise FacefindError("give photos or folders to redact (or --manifest FILE)")
    publisher = Publisher(ff, keep, purpose, collections)  # no purpose: refused before anything is made
    out = Path(out).expanduser()
    r.check_out_folder(out)
    clips = [Path(i).expanduser() for i in inputs if video.is_video_input(i)]
    found, errors = photos([i for i in inputs if Path(i).expanduser() not in clips], out, within)
    videos: list[r.RedactedVideo] = []
    for clip in clips:
        try:
            videos.append(video.redact_video(publisher, clip, out, style, margin, on_progress))
        except FacefindError as err:
            errors.append(r.RedactError(path=str(clip), error=str(err)))
    done: list[r.Redacted] = []
    for n, (photo, root) in enumerate(found, 1):
        output = out / r.output_name(photo, root)
        try:
            if photo.resolve() == output.resolve():
                raise FacefindError(f"{output} is the photo itself; it is never overwritten")
            data, image = publisher.read(photo)
            done.append(publisher.write(photo, data, image, publisher.decide(image), output, style, margin))
        except (ImageError, FacefindError) as err:
            errors.append(r.RedactError(path=str(photo), error=str(err)))
        if on_progress:
            on_progress(n, len(found))
    return r.RedactReport(out=str(out), keep=keep, style=style, photos=done, videos=videos, errors=errors)


def reapply(
    ff: FaceFind,
    manifest_file: str | Path,
    out: str | Path,
    *,
    style: str | None = None,
    margin: float | None = None,
    purpose: str | None = None,
    on_progress: Progress | None = None,
    collections: list[str] | None = None,
) -> r.RedactReport:
    """Apply a (reviewer-edited) manifest to its photo or video again: its boxes and decisions,
    except that a face recognised now as opted out or withheld is hidden whatever the manifest
    says (videos: video.reapply_video)."""
    path = Path(manifest_file).expanduser()
    shown_video = _video_manifest(path)
    if shown_video is not None:
        clip = video.read_manifest(path, shown_video)
        style = clip.style if style is None else style
        margin = clip.margin if margin is None else margin
        r.check_style(style, clip.keep, margin)
        publisher = Publisher(ff, "consented", purpose, collections)  # the opt-out check identifies
        out = Path(out).expanduser()
        r.check_out_folder(out)
        again = video.reapply_video(publisher, clip, out, style, margin, on_progress)
        return r.RedactReport(out=str(out), keep=clip.keep, style=style, photos=[], videos=[again], errors=[])
    manifest = r.read_manifest(path)
    style = manifest.style if style is None else style
    margin = manifest.margin if margin is None else margin
    r.check_style(style, manifest.keep, margin)
    publisher = Publisher(ff, "consented", purpose, collections)  # the opt-out check identifies
    out = Path(out).expanduser()
    r.check_out_folder(out)
    photo = Path(manifest.input)
    data, image = publisher.read(photo)
    if r.sha256(data) != manifest.input_sha256:
        raise FacefindError(f"{shown(str(photo))} changed since its manifest was made; redact it afresh")
    if (image.shape[1], image.shape[0]) != (manifest.width, manifest.height):  # pragma: no cover
        raise FacefindError(
            f"{shown(str(photo))} is not {manifest.width}x{manifest.height} as the manifest says"
        )
    fresh = publisher.decide(image)
    faces = []
    for f in manifest.faces:
        if f.decision == "kept":
            same = [g for g in fresh if r.overlaps(g.box, f.box) >= SAME_FACE_IOU]
            veto = next((g for g in same if g.reason in ("optout", "withheld")), None)
            now = next((g for g in same if g.decision == "kept"), None)
            if veto is not None:
                f = veto
            elif now is not None:
                f = now.model_copy(update={"box": f.box})
            else:
                f = f.model_copy(update={"reason": "reviewer", "person_id": None, "consent_id": None})
        faces.append(f)
    # A face recognised as opted out or withheld that the manifest no longer hides is hidden too.
    for g in fresh:
        if g.reason in ("optout", "withheld") and not any(
            f.decision == "hidden" and r.overlaps(f.box, g.box) >= SAME_FACE_IOU for f in faces
        ):
            faces.append(g)
    output = out / r.output_name(photo, None)
    publisher.keep = manifest.keep
    done = publisher.write(photo, data, image, faces, output, style, margin, edited=True)
    return r.RedactReport(out=str(out), keep=manifest.keep, style=style, photos=[done], errors=[])


def _video_manifest(path: Path) -> str | None:
    """The text of a video's manifest (`"kind": "video"`), None for a photo's."""
    import json

    try:
        text = path.read_text(encoding="utf-8")
        kind = json.loads(text).get("kind")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None  # r.read_manifest says what is wrong
    return text if kind == "video" else None


class CheckedPhoto(BaseModel):
    path: str
    faces: int
    kept: int
    hidden: int
    reasons: dict[str, int]
    kept_persons: list[int]


class PublishCheck(BaseModel):
    folder: str
    photos: int
    flagged: list[CheckedPhoto]  # photos showing faces without publication consent
    clear: list[str]  # photos every face of which may be published (or that show none)
    errors: list[r.RedactError]
    audit_seq: int | None = None


def check(
    ff: FaceFind,
    folder: str | Path,
    *,
    purpose: str | None = None,
    on_progress: Progress | None = None,
    collections: list[str] | None = None,
) -> PublishCheck:
    """Which photos under `folder` show faces without publication consent (nothing is written)."""
    path = Path(folder).expanduser()
    if not path.exists():
        raise FacefindError(f"{shown(str(path))}: no such file or folder")
    found, errors = photos([path], None)
    publisher = Publisher(ff, "consented", purpose, collections)
    flagged, clear = [], []
    everyone: set[int] = set()
    for n, (photo, _) in enumerate(found, 1):
        try:
            _, image = publisher.read(photo)
            faces = publisher.decide(image)
        except (ImageError, FacefindError) as err:
            errors.append(r.RedactError(path=str(photo), error=str(err)))
            faces = None
        if faces is not None:
            hidden = [f for f in faces if f.decision == "hidden"]
            everyone |= {f.person_id for f in faces if f.decision == "kept" and f.person_id is not None}
            if hidden:
                reasons: dict[str, int] = {}
                for f in hidden:
                    reasons[f.reason] = reasons.get(f.reason, 0) + 1
                kept = [f for f in faces if f.decision == "kept"]
                persons = sorted({f.person_id for f in kept if f.person_id is not None})
                flagged.append(
                    CheckedPhoto(path=str(photo), faces=len(faces), kept=len(kept), hidden=len(hidden),
                                 reasons=reasons, kept_persons=persons)
                )  # fmt: skip
            else:
                clear.append(str(photo))
        if on_progress:
            on_progress(n, len(found))
    result = PublishCheck(folder=str(path), photos=len(found), flagged=flagged, clear=clear, errors=errors)
    details = {
        "folder": str(path),
        "photos": len(found),
        "flagged": len(flagged),
        "kept_persons": sorted(everyone),
    }
    result.audit_seq = publisher.audit("publish-check", details, None)
    return result
