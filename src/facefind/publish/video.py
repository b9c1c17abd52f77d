"""Redact video files (MP4, MOV, MKV, WebM): every face hidden but those of consenting persons.

Two passes over the file with PyAV (FFmpeg). The first decodes every frame, finds faces with the
recall detector (at lighter settings than photos: a frame is one of thousands), links them into
tracks by overlap with the previous frames' boxes, and recognises a few faces of each track. A
track stays visible only when every face of it that was recognised is the same consenting person
(decide.py); any other track is hidden, an opted-out or withheld one always. The second pass
decodes again and covers each hidden track's boxes in its own frames and in `carry` frames before
and after (a face the detector misses for a frame or two stays covered), encodes the frames (H.264
when FFmpeg has libx264, else MPEG-4 Part 2) with their own timestamps and copies the audio
packets unchanged. The output and its manifest are written to temporary files in the output
folder and linked to their names at the end: an interrupted run (Ctrl-C) leaves nothing there.

Files only: URLs, devices and other non-regular files are refused (facefind never identifies
people in live streams).
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from pydantic import BaseModel

from ..errors import FacefindError
from ..faces.backend import Detection
from ..filemodes import FILE_MODE
from ..paths import shown
from ..results import Box
from . import redact as r
from .decide import Decision
from .detect import RecallDetector, RecallSettings

if TYPE_CHECKING:
    from .run import Publisher

Progress = Callable[[int, int], None]
# Containers read, and the container each is written as (WebM's VP8/VP9 are not encoded here:
# its redacted copy is Matroska, which holds the H.264 video and the original Opus/Vorbis audio).
VIDEO_SUFFIXES = {".mp4": ".mp4", ".m4v": ".mp4", ".mov": ".mov", ".mkv": ".mkv", ".webm": ".mkv"}
FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
MANIFEST_VERSION = 1


# A URL (rtsp://, http://, ...); Path() turns its "//" into "/".
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


def is_video_input(path: str | Path) -> bool:
    """A video file by its extension, or something a video redaction refuses (a URL, a device)."""
    text = str(path)
    return Path(text).suffix.lower() in VIDEO_SUFFIXES or bool(_URL.match(text)) or text.startswith("/dev/")


@dataclass(frozen=True)
class VideoSettings:
    # The recall detector on every frame, on a copy scaled to `detect_scale` (0.75: 1280x720 is
    # searched at 960x540, a face of 20 px at 15; YuNet finds faces from about 10 px), at that
    # copy's size and half of it (faces that fill the frame); the enlarged passes of photos cost
    # 3-6x more per frame (bench/redact_bench.py --video measured each; docs/benchmarks.md).
    detector: RecallSettings = field(default_factory=lambda: RecallSettings(scales=(0.5, 1.0)))
    detect_scale: float = 0.75
    # Detect in every frame (1), or every other (2: about 1.6x faster; the carry covers the rest).
    detect_every: int = 1
    # A hidden box also covers this many frames before and after the frame it was found in.
    carry: int = 6
    # A detection continues a track when it overlaps the track's last box this much (IoU) and
    # the track was seen within `max_gap` frames.
    track_iou: float = 0.3
    max_gap: int = 12
    # Faces of a track recognised: its first, then one every `sample_every` detections to its end
    # (a track that passes from one person to another, as two cross, is caught within 10 frames).
    sample_every: int = 10


class VideoTrack(BaseModel):
    id: int
    decision: str  # kept | hidden
    reason: str  # consent, optout, withheld, unknown, small, keep-none
    person_id: int | None = None
    consent_id: int | None = None
    similarity: float | None = None
    first_frame: int
    last_frame: int
    # [frame, x, y, w, h, score] of every detection of the track
    boxes: list[list[float]]


class VideoManifest(BaseModel):
    version: int = MANIFEST_VERSION
    kind: str = "video"
    input: str
    input_sha256: str
    output: str
    width: int
    height: int
    frames: int
    fps: float
    duration_s: float
    video_codec: str
    audio: bool
    keep: str
    style: str
    margin: float
    carry: int
    metadata: str = "stripped"
    tracks: list[VideoTrack]


@dataclass
class _Track:
    id: int
    frames: list[int] = field(default_factory=list)
    rows: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def box(self) -> Box:
        x, y, w, h, _ = self.rows[-1]
        return Box(x=x, y=y, w=w, h=h)


def check_source(path: Path) -> None:
    """Refuse anything but a regular video file: URLs, devices, pipes, streams."""
    text = str(path)
    if _URL.match(text) or text.startswith("pipe:"):
        raise FacefindError(f"{shown(text)}: only video files are redacted, never URLs or streams")
    resolved = path.resolve()
    if resolved.is_relative_to("/dev") or resolved.is_relative_to("/proc"):
        raise FacefindError(f"{shown(text)}: only video files are redacted, never devices or cameras")
    if not path.exists():
        raise FacefindError(f"{shown(text)}: no such file")
    if not path.is_file():
        raise FacefindError(f"{shown(text)}: not a regular file; only video files are redacted")


def _open(path: Path) -> Any:
    import av

    try:
        container = av.open(str(path), "r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise FacefindError(f"{shown(str(path))} is not a video FFmpeg can read ({err})") from None
    if not container.streams.video:
        container.close()
        raise FacefindError(f"{shown(str(path))} has no video stream")
    return container


def _frames(container: Any, path: Path) -> Iterator[Any]:
    import av

    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    try:
        yield from container.decode(stream)
    except av.error.FFmpegError as err:
        raise FacefindError(f"{shown(str(path))}: the video cannot be decoded ({err})") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def encoder_name() -> str:
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


class VideoRedactor:
    def __init__(self, publisher: Publisher, settings: VideoSettings | None = None) -> None:
        self.publisher = publisher
        self.settings = settings or VideoSettings()
        self.detector = RecallDetector(self.settings.detector)

    # pass 1 ---------------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces of a frame, found on a copy scaled by `detect_scale`, in the frame's pixels."""
        k = self.settings.detect_scale
        if k == 1.0:
            return self.detector.detect(image)
        small = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        return [
            Detection(
                box=(d.box[0] / k, d.box[1] / k, d.box[2] / k, d.box[3] / k),
                landmarks=d.landmarks / k,
                score=d.score,
            )
            for d in self.detector.detect(small)
        ]

    def track(self, path: Path, total: int, on_progress: Progress | None) -> tuple[list[_Track], int, dict]:
        ff = self.publisher.ff
        gallery = self.publisher.gallery
        container = _open(path)
        try:
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            limit = ff.settings.max_image_pixels
            if width * height > limit:
                raise FacefindError(
                    f"{shown(str(path))}: frames of {width}x{height} exceed the limit of {limit} pixels; "
                    f"if it is a real video, raise it, e.g. FACEFIND_MAX_PIXELS={width * height}"
                )
            tracks: list[_Track] = []
            n = 0
            for n, frame in enumerate(_frames(container, path), 1):
                image = frame.to_ndarray(format="bgr24")
                if image.shape[1] * image.shape[0] > limit:  # a stream may change size midway
                    raise FacefindError(f"{shown(str(path))}: a frame exceeds the limit of {limit} pixels")
                if (n - 1) % self.settings.detect_every == 0:
                    self._link(tracks, n - 1, self.detect(image), image, gallery)
                if on_progress:
                    on_progress(n, 2 * total)  # each frame is counted twice: found, then written
            info = {
                "width": width,
                "height": height,
                "fps": float(stream.average_rate or stream.guessed_rate or 0),
                "duration_s": float(stream.duration * stream.time_base)
                if stream.duration and stream.time_base
                else float((container.duration or 0) / 1_000_000),
                "audio": bool(container.streams.audio),
            }
        finally:
            container.close()
        if n == 0:
            raise FacefindError(f"{shown(str(path))}: the video has no frames")
        return tracks, n, info

    def _link(
        self, tracks: list[_Track], t: int, found: list[Detection], image: np.ndarray, gallery: Any
    ) -> None:
        s = self.settings
        live = [tr for tr in tracks if t - tr.frames[-1] <= s.max_gap]
        pairs = []
        for i, d in enumerate(found):
            b = Box(x=d.box[0], y=d.box[1], w=d.box[2], h=d.box[3])
            for tr in live:
                iou = r.overlaps(b, tr.box())
                if iou >= s.track_iou:
                    pairs.append((iou, i, tr))
        pairs.sort(key=lambda p: -p[0])
        assigned: dict[int, _Track] = {}
        used: set[int] = set()
        for _, i, tr in pairs:
            if i in assigned or tr.id in used:
                continue
            assigned[i] = tr
            used.add(tr.id)
        recognise: list[tuple[Detection, _Track]] = []
        for i, d in enumerate(found):
            tr = assigned.get(i) or _Track(id=len(tracks) + 1)
            if tr.id > len(tracks):
                tracks.append(tr)
            due = len(tr.frames) % s.sample_every == 0
            tr.frames.append(t)
            tr.rows.append((d.box[0], d.box[1], d.box[2], d.box[3], d.score))
            if due:
                recognise.append((d, tr))
        if not recognise:
            return
        if gallery is None:
            for _, tr in recognise:
                tr.decisions.append(Decision(False, "keep-none"))
            return
        decisions = gallery.decide(self.publisher.ff.backend, image, [d for d, _ in recognise])
        for (_, tr), dec in zip(recognise, decisions, strict=True):
            tr.decisions.append(dec)

    @staticmethod
    def verdict(tr: _Track) -> Decision:
        """Kept only when every recognised face of the track is the same consenting person."""
        for dec in tr.decisions:
            if dec.reason in r.VETO:
                return dec
        kept = [d for d in tr.decisions if d.kept]
        if kept and len(kept) == len(tr.decisions) and len({d.person_id for d in kept}) == 1:
            return max(kept, key=lambda d: d.similarity or 0.0)
        hidden = [d for d in tr.decisions if not d.kept]
        return hidden[0] if hidden else Decision(False, "unknown")

    # pass 2 ---------------------------------------------------------------------------------
    def boxes_by_frame(
        self, tracks: list[_Track], verdicts: dict[int, Decision], frames: int
    ) -> list[list[r.ManifestFace]]:
        """The faces to draw in each frame: kept tracks' boxes where found, hidden tracks' boxes
        where found and `carry` frames before and after."""
        carry = self.settings.carry
        out: list[list[r.ManifestFace]] = [[] for _ in range(frames)]
        for tr in tracks:
            dec = verdicts[tr.id]
            boxes = [Box(x=x, y=y, w=w, h=h) for x, y, w, h, _ in tr.rows]
            if dec.kept:
                for t, b in zip(tr.frames, boxes, strict=True):
                    out[t].append(r.ManifestFace(box=b, decision="kept", reason=dec.reason))
                continue
            # In a frame where the track was found, its box there; elsewhere within `carry` frames
            # of it, the boxes of the nearest frames before and after where it was found.
            for u in range(max(0, tr.frames[0] - carry), min(frames, tr.frames[-1] + carry + 1)):
                i = bisect.bisect_left(tr.frames, u)
                if i < len(tr.frames) and tr.frames[i] == u:
                    near = [boxes[i]]
                else:
                    near = [
                        boxes[j]
                        for j in (i - 1, i)
                        if 0 <= j < len(tr.frames) and abs(tr.frames[j] - u) <= carry
                    ]
                out[u].extend(r.ManifestFace(box=b, decision="hidden", reason=dec.reason) for b in near)
        return out

    def write(
        self, path: Path, temp: Path, suffix: str, faces: list[list[r.ManifestFace]], style: str,
        margin: float, total: int, on_progress: Progress | None,
    ) -> str:  # fmt: skip
        import av

        source = _open(path)
        try:
            vin = source.streams.video[0]
            ain = source.streams.audio[0] if source.streams.audio else None
            sink = av.open(str(temp), "w", format=FORMATS[suffix])
            try:
                codec = encoder_name()
                rate = vin.average_rate or vin.guessed_rate or 25
                vout: Any = sink.add_stream(codec, rate=rate)
                vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
                vout.pix_fmt = "yuv420p"
                vout.time_base = vin.time_base
                if codec == "libx264":
                    vout.options = {"crf": "18", "preset": "veryfast"}
                else:
                    vout.bit_rate = 8_000_000
                aout = sink.add_stream_from_template(ain) if ain is not None else None
                streams = [vin] + ([ain] if ain is not None else [])
                n = 0
                for packet in source.demux(streams):
                    if packet.stream.type == "audio":
                        if packet.dts is None or aout is None:
                            continue
                        packet.stream = aout
                        sink.mux(packet)
                        continue
                    try:
                        decoded = packet.decode()
                    except av.error.FFmpegError as err:
                        raise FacefindError(
                            f"{shown(str(path))}: the video cannot be decoded ({err})"
                        ) from None
                    for frame in decoded:
                        if n < len(faces):
                            image = frame.to_ndarray(format="bgr24")
                            drawn = r.draw(image, faces[n], style, margin) if faces[n] else image
                            new = av.VideoFrame.from_ndarray(drawn, format="bgr24")
                            new.pts, new.time_base = frame.pts, frame.time_base
                            sink.mux(vout.encode(new))
                        n += 1
                        if on_progress:
                            on_progress(total + n, 2 * total)
                sink.mux(vout.encode(None))
            finally:
                sink.close()
        finally:
            source.close()
        return codec


class _Temp:
    """A temporary file in the output folder, removed unless linked to its name."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.path = final.with_name(f".{final.name}.{os.getpid()}.partial{final.suffix}")

    def __enter__(self) -> _Temp:
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def link(self) -> None:
        try:
            os.link(self.path, self.final)
        except FileExistsError:
            raise FacefindError(
                f"{self.final} exists; it is never overwritten: choose another --out or move it"
            ) from None


def redact_video(
    publisher: Publisher, path: Path, out: Path, style: str, margin: float,
    on_progress: Progress | None = None, settings: VideoSettings | None = None,
) -> r.RedactedVideo:  # fmt: skip
    """Redact one video file into the folder `out` (see the module's note)."""
    import json
    import time

    import av

    from ..paths import for_json

    check_source(path)
    suffix = VIDEO_SUFFIXES[path.suffix.lower()]
    output = out / (path.stem + suffix)
    manifest_path = output.with_name(output.name + r.MANIFEST_SUFFIX)
    for p in (output, manifest_path):
        if p.exists() or p.is_symlink():
            raise FacefindError(f"{p} exists; it is never overwritten: choose another --out or move it")
    started = time.monotonic()
    redactor = VideoRedactor(publisher, settings)
    probe = _open(path)
    try:
        stream = probe.streams.video[0]
        total = stream.frames or round(
            float((stream.duration or 0) * (stream.time_base or 0)) * float(stream.average_rate or 0)
        )
    finally:
        probe.close()
    digest = _sha256(path)
    tracks, frames, info = redactor.track(path, max(total, 1), on_progress)
    verdicts = {tr.id: redactor.verdict(tr) for tr in tracks}
    faces = redactor.boxes_by_frame(tracks, verdicts, frames)
    with _Temp(output) as video_temp:
        try:
            codec = redactor.write(path, video_temp.path, suffix, faces, style, margin, frames, on_progress)
        except (av.error.FFmpegError, ValueError, OSError) as err:  # e.g. audio the container cannot hold
            raise FacefindError(f"{shown(str(path))}: could not write {output.name}: {err}") from None
        manifest = VideoManifest(
            input=str(path), input_sha256=digest, output=str(output), width=info["width"],
            height=info["height"], frames=frames, fps=round(info["fps"], 3),
            duration_s=round(info["duration_s"], 3), video_codec=codec, audio=info["audio"],
            keep=publisher.keep, style=style, margin=margin, carry=redactor.settings.carry,
            tracks=[
                VideoTrack(
                    id=tr.id, decision="kept" if verdicts[tr.id].kept else "hidden",
                    reason=verdicts[tr.id].reason, person_id=verdicts[tr.id].person_id,
                    consent_id=verdicts[tr.id].consent_id, similarity=verdicts[tr.id].similarity,
                    first_frame=tr.frames[0], last_frame=tr.frames[-1],
                    boxes=[[t, *(round(float(v), 1) for v in row[:4]), round(float(row[4]), 3)]
                           for t, row in zip(tr.frames, tr.rows, strict=True)],
                )
                for tr in tracks
            ],
        )  # fmt: skip
        text = json.dumps(for_json(manifest.model_dump()), indent=1, ensure_ascii=False) + "\n"
        with _Temp(manifest_path) as manifest_temp:
            manifest_temp.path.write_bytes(text.encode())
            video_temp.link()
            try:
                manifest_temp.link()
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(output)
                raise
    kept = [t for t in manifest.tracks if t.decision == "kept"]
    details = {
        "input": str(path),
        "output": str(output),
        "kind": "video",
        "keep": publisher.keep,
        "frames": frames,
        "tracks": len(tracks),
        "hidden": len(tracks) - len(kept),
        "kept": [
            {"person_id": t.person_id, "consent_id": t.consent_id, "reason": t.reason, "track": t.id,
             "frames": [t.first_frame, t.last_frame]}
            for t in kept
        ],
    }  # fmt: skip
    seq = publisher.audit("redact", details, digest)
    elapsed = max(time.monotonic() - started, 1e-9)
    return r.RedactedVideo(
        input=str(path), output=str(output), manifest=str(manifest_path), frames=frames, tracks=len(tracks),
        kept=len(kept), hidden=len(tracks) - len(kept),
        kept_persons=sorted({t.person_id for t in kept if t.person_id is not None}),
        fps_processed=round(frames / elapsed, 2), audit_seq=seq,
    )  # fmt: skip
