"""Redact video files (MP4, MOV, MKV, WebM): every face hidden but those of consenting persons.

Decoding, detection and encoding run in a pipeline of three threads (FFmpeg and OpenCV release
the GIL): a reader demuxes and decodes with PyAV (FFmpeg, frame threads), the caller's thread finds
faces with the recall detector (at lighter settings than photos: a frame is one of thousands, and
FFmpeg scales it and converts it to BGR in one step) and links them into tracks by overlap with
the previous frames' boxes, and a writer draws on a copy of the decoded frame's YUV planes (no
conversion to BGR and back) and encodes (H.264 when FFmpeg has libx264, else MPEG-4 Part 2) with
each frame's own timestamp, copying the audio packets unchanged. A hidden track's box covers its
own frames and `carry` frames before and after (a face the detector misses for a frame or two
stays covered), so a frame is written once the frames `carry` after it have been searched: at
most a few dozen frames are held.

With `keep="none"` every track is hidden as it is found, and the file is decoded once. With
`keep="consented"` a few faces of each track are recognised, and a track stays visible only when
every face of it that was recognised is the same consenting person (decide.py), which is known
only at the track's end: the file is decoded twice (find, then write), never held in memory. An
opted-out or withheld track is always hidden. `reapply_video` applies a reviewer-edited manifest.

The output and its manifest are written to temporary files in the output folder and linked to
their names at the end: an interrupted run (Ctrl-C) leaves nothing there.

Files only: URLs, devices and other non-regular files are refused (facefind never identifies
people in live streams).
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from pydantic import BaseModel, field_validator

from ..errors import FacefindError
from ..faces.backend import Detection
from ..filemodes import FILE_MODE
from ..paths import for_json, shown
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
# Frames decoded ahead of detection, and frames waiting for the writer (each 2.7 MB at 720p).
QUEUED_FRAMES = 8


# A URL (rtsp://, http://, ...); Path() turns its "//" into "/".
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


def is_video_input(path: str | Path) -> bool:
    """A video file by its extension, or something a video redaction refuses (a URL, a device)."""
    text = str(path)
    return Path(text).suffix.lower() in VIDEO_SUFFIXES or bool(_URL.match(text)) or text.startswith("/dev/")


@dataclass(frozen=True)
class VideoSettings:
    # The recall detector on a copy of the frame scaled to `detect_scale` (0.75: 1280x720 is
    # searched at 960x540, a face of 20 px at 15; YuNet finds faces from about 10 px), at that
    # copy's size and half of it (faces that fill the frame); the enlarged passes of photos cost
    # 3-6x more per frame (bench/redact_bench.py --video measured each; docs/benchmarks.md).
    detector: RecallSettings = field(default_factory=lambda: RecallSettings(threshold=0.2, scales=(0.5, 1.0)))
    detect_scale: float = 0.75
    # Detect in every frame (1), or every other (2); the carry covers the frames between.
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
    # libx264's speed preset (CRF 18 either way: a faster preset spends more bytes, not quality).
    preset: str = "veryfast"
    # OpenCV's threads while a video is redacted (process-wide, restored after): the pipeline's
    # threads already keep the cores busy, and OpenCV's pool waiting for work cost 10% more CPU.
    opencv_threads: int = 1


class VideoTrack(BaseModel):
    id: int
    decision: str  # kept | hidden
    reason: str = "reviewer"  # consent, optout, withheld, unknown, small, keep-none, reviewer
    person_id: int | None = None
    consent_id: int | None = None
    similarity: float | None = None
    first_frame: int | None = None  # written by facefind; a reviewer's added track may leave them out
    last_frame: int | None = None
    # [frame, x, y, w, h, score] of every detection of the track (a reviewer's box: score left out)
    boxes: list[list[float]]

    @field_validator("decision")
    @classmethod
    def _decision(cls, v: str) -> str:
        if v not in ("kept", "hidden"):
            raise ValueError(f"decision {v!r}: kept or hidden")
        return v

    @field_validator("boxes")
    @classmethod
    def _boxes(cls, v: list[list[float]]) -> list[list[float]]:
        for b in v:
            if len(b) not in (5, 6) or b[0] < 0 or b[0] != int(b[0]) or b[3] <= 0 or b[4] <= 0:
                raise ValueError(f"box {b}: give [frame, x, y, width, height] with a frame number >= 0")
        return v


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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def encoder_name() -> str:
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


# The pipeline's threads -----------------------------------------------------------------------
class _Stopped(Exception):
    """The other end of a pipe stopped (an error there, or Ctrl-C here)."""


_END = object()


class _Pipe:
    """A bounded queue between two threads that either end can stop."""

    def __init__(self, size: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(size)
        self._stopped = threading.Event()

    def put(self, item: Any) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def get(self) -> Any:
        while True:
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stopped.is_set():
                    raise _Stopped from None

    def stop(self) -> None:
        self._stopped.set()


class _Worker:
    """A thread running `target`; its error is kept for the caller's thread to raise."""

    def __init__(self, target: Callable[[], None], pipe: _Pipe, name: str) -> None:
        self.error: BaseException | None = None
        self.pipe = pipe
        self._target = target
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._target()
        except _Stopped:
            pass
        except BaseException as err:  # raised again in the caller's thread
            self.error = err
            self.pipe.stop()

    def stop(self) -> None:
        self.pipe.stop()
        self.thread.join()


def _read(source: Any, path: Path, pipe: _Pipe, audio: bool) -> Callable[[], None]:
    """The reader: ("video", frame) and ("audio", packet) items in the file's order, then _END."""

    def run() -> None:
        import av

        vin = source.streams.video[0]
        vin.thread_type = "AUTO"  # frame threads
        streams = [vin] + ([source.streams.audio[0]] if audio and source.streams.audio else [])
        try:
            for packet in source.demux(streams):
                if packet.stream.type == "audio":
                    if packet.dts is not None:
                        pipe.put(("audio", packet))
                    continue
                for frame in packet.decode():
                    pipe.put(("video", frame))
        except av.error.FFmpegError as err:
            raise FacefindError(f"{shown(str(path))}: the video cannot be decoded ({err})") from None
        pipe.put(_END)

    return run


class _Sink:
    """The output file being written: its streams and the writer thread's work."""

    def __init__(self, source: Any, temp: Path, suffix: str, preset: str) -> None:
        import av

        vin = source.streams.video[0]
        ain = source.streams.audio[0] if source.streams.audio else None
        self.container = av.open(str(temp), "w", format=FORMATS[suffix])
        self.codec = encoder_name()
        vout: Any = self.container.add_stream(self.codec, rate=vin.average_rate or vin.guessed_rate or 25)
        # 4:2:0 encoders take even sizes only: an odd-sized video loses its last column or row
        self.width, self.height = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2
        self.odd = (self.width, self.height) != (vin.codec_context.width, vin.codec_context.height)
        vout.width, vout.height = self.width, self.height
        vout.pix_fmt = "yuv420p"
        vout.time_base = vin.time_base
        if self.codec == "libx264":
            vout.options = {"crf": "18", "preset": preset}
        else:
            vout.bit_rate = 8_000_000
        self.video = vout
        self.audio = self.container.add_stream_from_template(ain) if ain is not None else None

    def writer(self, pipe: _Pipe, style: str, margin: float) -> Callable[[], None]:
        """Items ("audio", packet) and ("video", frame, faces) until _END."""

        def run() -> None:
            import av

            while (item := pipe.get()) is not _END:
                if item[0] == "audio":
                    if self.audio is not None:
                        item[1].stream = self.audio
                        self.container.mux(item[1])
                    continue
                _, frame, faces = item
                if self.odd:
                    new = even_frame(frame, faces, style, margin, self.width, self.height)
                elif faces:
                    new = drawn_frame(frame, faces, style, margin)
                else:  # nothing to draw: the decoded frame as it is (the encoder converts its format)
                    new = frame
                    new.pict_type = av.video.frame.PictureType.NONE  # the encoder chooses frame types
                self.container.mux(self.video.encode(new))
            self.container.mux(self.video.encode(None))

        return run

    def close(self) -> None:
        self.container.close()


def drawn_frame(frame: Any, faces: list[r.ManifestFace], style: str, margin: float) -> Any:
    """A new frame: `frame` with `faces` drawn (redact.draw) on its YUV 4:2:0 planes, the
    encoder's own format: no conversion to BGR and back (a blur or a pixelation is the same on
    either, being linear; black is Y 16 and colour 128). The encoders take even sizes only."""
    import av

    w, h = frame.width, frame.height
    yuv = frame.to_ndarray(format="yuv420p")  # a copy: Y, then U and V at half size, flat
    flat, cw, ch = yuv.reshape(-1), w // 2, h // 2
    luma = flat[: w * h].reshape(h, w)
    luma[:] = r.draw(luma, faces, style, margin, fill=16)
    half = [
        f.model_copy(update={"box": Box(x=f.box.x / 2, y=f.box.y / 2, w=f.box.w / 2, h=f.box.h / 2)})
        for f in faces
    ]
    for start in (w * h, w * h + cw * ch):
        plane = flat[start : start + cw * ch].reshape(ch, cw)
        plane[:] = r.draw(plane, half, style, margin, fill=128)
    new = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
    new.pts, new.time_base = frame.pts, frame.time_base
    return new


def even_frame(
    frame: Any, faces: list[r.ManifestFace], style: str, margin: float, width: int, height: int
) -> Any:
    """An odd-sized frame cut to `width` x `height` (even: its last column or row dropped), with
    `faces` drawn on it in BGR (the YUV planes of an odd size cannot be cut that way)."""
    import av

    image = frame.to_ndarray(format="bgr24")[:height, :width]
    if faces:
        image = r.draw(image, faces, style, margin)
    new = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
    new.pts, new.time_base = frame.pts, frame.time_base
    return new


# Which boxes are drawn in a frame -------------------------------------------------------------
def faces_at(
    u: int, near: Iterable[_Track], verdict: Callable[[_Track], Decision], carry: int
) -> list[r.ManifestFace]:
    """The faces drawn in frame `u`: a kept track's box where it was found; a hidden track's box
    where it was found, elsewhere within `carry` frames of it the boxes of the nearest frames
    before and after where it was found and, between two, the box interpolated between them.
    `near`: the tracks found within `carry` frames of `u`."""
    out: list[r.ManifestFace] = []
    for tr in near:
        dec = verdict(tr)
        frames = tr.frames  # sorted; a reviewer's track may have several boxes in a frame
        lo, hi = bisect.bisect_left(frames, u), bisect.bisect_right(frames, u)
        if lo < hi:
            rows = tr.rows[lo:hi]
        elif dec.kept:
            continue
        else:
            rows = []
            before = lo > 0 and u - frames[lo - 1] <= carry
            after = hi < len(frames) and frames[hi] - u <= carry
            if before:
                rows += tr.rows[bisect.bisect_left(frames, frames[lo - 1]) : lo]
            if after:
                rows += tr.rows[hi : bisect.bisect_right(frames, frames[hi])]
            if before and after:  # between two detections: where the face is on its way from one to the other
                k = (u - frames[lo - 1]) / (frames[hi] - frames[lo - 1])
                a, b = tr.rows[lo - 1], tr.rows[hi]
                rows.append(tuple(a[j] + k * (b[j] - a[j]) for j in range(5)))  # type: ignore[arg-type]
        out.extend(
            r.ManifestFace(
                box=Box(x=x, y=y, w=w, h=h), decision="kept" if dec.kept else "hidden", reason=dec.reason
            )
            for x, y, w, h, _ in rows
        )
    return out


def _near(found_at: dict[int, list[_Track]], u: int, carry: int) -> list[_Track]:
    seen: dict[int, _Track] = {}
    for t in range(u - carry, u + carry + 1):
        for tr in found_at.get(t, ()):
            seen.setdefault(id(tr), tr)
    return sorted(seen.values(), key=lambda tr: (tr.frames[0], tr.id))


def drawn_faces(
    tracks: list[_Track], verdicts: dict[int, Decision], frames: int, carry: int
) -> list[list[r.ManifestFace]]:
    """`faces_at` for every frame of a video whose tracks are all known."""
    found_at: dict[int, list[_Track]] = {}
    for tr in tracks:
        for t in dict.fromkeys(tr.frames):
            found_at.setdefault(t, []).append(tr)
    by_id = {id(tr): verdicts[tr.id] for tr in tracks}
    return [faces_at(u, _near(found_at, u, carry), lambda tr: by_id[id(tr)], carry) for u in range(frames)]


class VideoRedactor:
    def __init__(self, publisher: Publisher, settings: VideoSettings | None = None) -> None:
        self.publisher = publisher
        self.settings = settings or VideoSettings()
        self.detector = RecallDetector(self.settings.detector)
        self.tracks: list[_Track] = []
        self._live: list[_Track] = []
        self._found_at: dict[int, list[_Track]] = {}

    def detect(self, frame: Any) -> list[Detection]:
        """Faces of a decoded frame, found on a BGR copy scaled by `detect_scale` (FFmpeg scales
        and converts in one step, averaging pixels as cv2.INTER_AREA does), in the frame's pixels."""
        k = self.settings.detect_scale
        if k == 1.0:
            return self.detector.detect(frame.to_ndarray(format="bgr24"))
        w, h = max(1, round(frame.width * k)), max(1, round(frame.height * k))
        small = frame.reformat(width=w, height=h, format="bgr24", interpolation="AREA").to_ndarray()
        kx, ky = frame.width / w, frame.height / h
        scale = np.array([kx, ky], np.float32)
        return [
            Detection(
                box=(d.box[0] * kx, d.box[1] * ky, d.box[2] * kx, d.box[3] * ky),
                landmarks=d.landmarks * scale,
                score=d.score,
            )
            for d in self.detector.detect(small)
        ]

    def _link(
        self, t: int, found: list[Detection], frame: Any, recognise: Callable[[tuple], None] | None
    ) -> None:
        """Detections of frame `t` continue tracks or start new ones; the faces due for
        recognition go to `recognise` as (frame, [(detection, track)]) (None: keep none)."""
        s = self.settings
        self._live = [tr for tr in self._live if t - tr.frames[-1] <= s.max_gap]
        pairs = []
        for i, d in enumerate(found):
            b = Box(x=d.box[0], y=d.box[1], w=d.box[2], h=d.box[3])
            for tr in self._live:
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
        due_now: list[tuple[Detection, _Track]] = []
        for i, d in enumerate(found):
            tr = assigned.get(i) or _Track(id=len(self.tracks) + 1)
            if tr.id > len(self.tracks):
                self.tracks.append(tr)
                self._live.append(tr)
            due = len(tr.frames) % s.sample_every == 0
            tr.frames.append(t)
            tr.rows.append((d.box[0], d.box[1], d.box[2], d.box[3], d.score))
            self._found_at.setdefault(t, []).append(tr)
            if due:
                due_now.append((d, tr))
        if not due_now:
            return
        if recognise is None:
            for _, tr in due_now:
                tr.decisions.append(Decision(False, "keep-none"))
            return
        recognise((frame, due_now))

    def _recogniser(self, pipe: _Pipe, gallery: Any) -> Callable[[], None]:
        """The recogniser thread (keep consented): decides each (frame, [(detection, track)]) in
        the order they come, beside the thread that detects and tracks (on 2 cores the two ran
        one after the other before: 16.7 fps at 720p)."""

        def run() -> None:
            while (item := pipe.get()) is not _END:
                frame, due = item
                image = frame.to_ndarray(format="bgr24")  # recognition's crops at the frame's own size
                decisions = gallery.decide(self.publisher.ff.backend, image, [d for d, _ in due])
                for (_, tr), dec in zip(due, decisions, strict=True):
                    tr.decisions.append(dec)

        return run

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

    def boxes_by_frame(
        self, tracks: list[_Track], verdicts: dict[int, Decision], frames: int
    ) -> list[list[r.ManifestFace]]:
        return drawn_faces(tracks, verdicts, frames, self.settings.carry)

    def run(
        self, path: Path, *, find: bool, gallery: Any = None,
        write: tuple[Path, str, str, float] | None = None, faces: list[list[r.ManifestFace]] | None = None,
        progress: tuple[int, int] = (0, 1),
        on_progress: Progress | None = None,
    ) -> tuple[int, dict, str | None]:  # fmt: skip
        """One pass over the file: decode (reader thread), find and track faces (`find`; this
        thread), recognise the tracks' faces against `gallery` (recogniser thread), draw and encode
        into `write` = (temp file, suffix, style, margin) (writer thread).
        Drawn: `faces[t]` when given, else every track found so far hidden (keep none). Returns
        the frame count, the stream's facts and the codec written."""
        s = self.settings
        limit = self.publisher.ff.settings.max_image_pixels
        source = _open(path)
        sink: _Sink | None = None
        workers: list[_Worker] = []
        threads = cv2.getNumThreads()
        cv2.setNumThreads(s.opencv_threads)
        try:
            vin = source.streams.video[0]
            width, height = vin.codec_context.width, vin.codec_context.height
            if width < 2 or height < 2:
                raise FacefindError(
                    f"{shown(str(path))}: frames of {width}x{height} are too small to be a video"
                )
            if width * height > limit:
                raise FacefindError(
                    f"{shown(str(path))}: frames of {width}x{height} exceed the limit of {limit} pixels; "
                    f"if it is a real video, raise it, e.g. FACEFIND_MAX_PIXELS={width * height}"
                )
            decoded = _Pipe(QUEUED_FRAMES)
            reader = _Worker(
                _read(source, path, decoded, audio=write is not None), decoded, "facefind-decode"
            )
            workers.append(reader)
            recogniser: _Worker | None = None
            if find and gallery is not None:
                recognising = _Pipe(QUEUED_FRAMES)
                recogniser = _Worker(
                    self._recogniser(recognising, gallery), recognising, "facefind-recognise"
                )
                workers.append(recogniser)

            def recognise(item: tuple) -> None:
                assert recogniser is not None
                try:
                    recognising.put(item)
                except _Stopped:
                    raise recogniser.error or FacefindError("the recogniser stopped") from None

            writer: _Worker | None = None
            if write is not None:
                sink = _Sink(source, write[0], write[1], s.preset)
                encoding = _Pipe(QUEUED_FRAMES)
                writer = _Worker(sink.writer(encoding, write[2], write[3]), encoding, "facefind-encode")
                workers.append(writer)
            # Items waiting for the writer: a frame is drawn once the `carry` frames after it were searched.
            pending: deque[tuple] = deque()
            lag = s.carry if find and faces is None else 0
            hidden = Decision(False, "keep-none")

            def flush(until: int) -> None:
                assert writer is not None
                while pending and (pending[0][0] == "audio" or pending[0][1] <= until):
                    item = pending.popleft()
                    if item[0] == "audio":
                        encoding.put(item)
                        continue
                    _, u, frame = item
                    if faces is not None and u >= len(faces):  # not seen when the faces were found
                        continue
                    drawn = faces[u] if faces is not None else faces_at(
                        u, _near(self._found_at, u, s.carry), lambda tr: hidden, s.carry
                    )  # fmt: skip
                    encoding.put(("video", frame, drawn))
                    for old in [t for t in self._found_at if t < u - s.carry]:
                        del self._found_at[old]

            n = 0
            done, total = progress
            while True:
                try:
                    item = decoded.get()
                except _Stopped:
                    raise reader.error or FacefindError("the video reader stopped") from None
                if item is _END:
                    break
                if item[0] == "audio":
                    pending.append(item)
                    continue
                frame, t = item[1], n
                n += 1
                if frame.width * frame.height > limit:  # a stream may change size midway
                    raise FacefindError(f"{shown(str(path))}: a frame exceeds the limit of {limit} pixels")
                if find and t % s.detect_every == 0:
                    self._link(t, self.detect(frame), frame, recognise if recogniser is not None else None)
                if writer is not None:
                    pending.append(("video", t, frame))
                    try:
                        flush(t - lag)
                    except _Stopped:
                        raise writer.error or FacefindError("the video writer stopped") from None
                if on_progress:
                    on_progress(done + n, total)
            if recogniser is not None:  # every decision made before the tracks' verdicts
                recognise(_END)
                recogniser.thread.join()
                if recogniser.error is not None:
                    raise recogniser.error
            if writer is not None and sink is not None:
                try:
                    flush(n)
                    encoding.put(_END)
                except _Stopped:
                    raise writer.error or FacefindError("the video writer stopped") from None
                writer.thread.join()
                if writer.error is not None:
                    raise writer.error
            if n == 0:
                raise FacefindError(f"{shown(str(path))}: the video has no frames")
            info = {
                "width": width,
                "height": height,
                "fps": float(vin.average_rate or vin.guessed_rate or 0),
                "duration_s": float(vin.duration * vin.time_base)
                if vin.duration and vin.time_base
                else float((source.duration or 0) / 1_000_000),
                "audio": bool(source.streams.audio),
            }
            return n, info, sink.codec if sink is not None else None
        finally:
            for w in workers:
                w.stop()
            if sink is not None:
                sink.close()
            source.close()
            cv2.setNumThreads(threads)


class _Temp:
    """A temporary file in the output folder, removed unless linked to its name."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.path = final.with_name(f".{final.name}.{os.getpid()}.partial{final.suffix}")

    def __enter__(self) -> _Temp:
        return self

    def create(self) -> None:
        """Make the file, inside the `with` block: a Ctrl-C right after it exists still removes it
        (made in __enter__, an interrupt before __enter__ returned left it behind)."""
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))

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


def _frame_count(path: Path) -> int:
    probe = _open(path)
    try:
        stream = probe.streams.video[0]
        total = stream.frames or round(
            float((stream.duration or 0) * (stream.time_base or 0)) * float(stream.average_rate or 0)
        )
    finally:
        probe.close()
    return max(int(total), 1)


def _outputs(path: Path, out: Path) -> tuple[str, Path, Path]:
    suffix = VIDEO_SUFFIXES[path.suffix.lower()]
    output = out / (path.stem + suffix)
    manifest_path = output.with_name(output.name + r.MANIFEST_SUFFIX)
    for p in (output, manifest_path):
        if p.exists() or p.is_symlink():
            raise FacefindError(f"{p} exists; it is never overwritten: choose another --out or move it")
    return suffix, output, manifest_path


def _write(
    publisher: Publisher, redactor: VideoRedactor, path: Path, digest: str, out: Path, style: str,
    margin: float, on_progress: Progress | None,
    given: tuple[list[_Track], dict[int, Decision], int] | None = None,
) -> r.RedactedVideo:  # fmt: skip
    """Find, draw, encode, write the manifest, audit. `given`: tracks, their verdicts and the
    frame count already known (a manifest re-applied): only drawn."""
    import av

    started = time.monotonic()
    suffix, output, manifest_path = _outputs(path, out)
    total = _frame_count(path)
    with _Temp(output) as video_temp:
        video_temp.create()
        write = (video_temp.path, suffix, style, margin)
        tracks, verdicts, frames = given or (None, None, 0)
        try:
            if tracks is None and publisher.gallery is None:  # keep none: one pass, every face hidden
                frames, info, codec = redactor.run(
                    path, find=True, write=write, progress=(0, total), on_progress=on_progress
                )
                tracks = redactor.tracks
                verdicts = {tr.id: redactor.verdict(tr) for tr in tracks}
            else:
                if tracks is None:  # keep consented: find, decide each track, then write
                    frames, info, _ = redactor.run(
                        path, find=True, gallery=publisher.gallery, progress=(0, 2 * total),
                        on_progress=on_progress,
                    )  # fmt: skip
                    tracks = redactor.tracks
                    verdicts = {tr.id: redactor.verdict(tr) for tr in tracks}
                    progress = (frames, 2 * frames)
                else:
                    progress = (frames, 2 * frames)
                assert verdicts is not None
                faces = drawn_faces(tracks, verdicts, frames, redactor.settings.carry)
                frames, info, codec = redactor.run(
                    path, find=False, write=write, faces=faces, progress=progress, on_progress=on_progress
                )
        except (av.error.FFmpegError, ValueError, OSError) as err:  # e.g. audio the container cannot hold
            raise FacefindError(f"{shown(str(path))}: could not write {output.name}: {err}") from None
        manifest = VideoManifest(
            input=str(path), input_sha256=digest, output=str(output), width=info["width"],
            height=info["height"], frames=frames, fps=round(info["fps"], 3),
            duration_s=round(info["duration_s"], 3), video_codec=codec or "", audio=info["audio"],
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
            manifest_temp.create()
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
        "manifest_applied": given is not None,
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


def redact_video(
    publisher: Publisher, path: Path, out: Path, style: str, margin: float,
    on_progress: Progress | None = None, settings: VideoSettings | None = None,
) -> r.RedactedVideo:  # fmt: skip
    """Redact one video file into the folder `out` (see the module's note)."""
    check_source(path)
    _outputs(path, out)  # an existing output is refused before the file is read
    digest = _sha256(path)
    return _write(
        publisher, VideoRedactor(publisher, settings), path, digest, out, style, margin, on_progress
    )


def read_manifest(path: Path, text: str) -> VideoManifest:
    try:
        manifest = VideoManifest.model_validate_json(text)
    except ValueError as err:
        first = str(err).splitlines()[1:3]
        raise FacefindError(f"{path} is not a video redaction manifest: {' '.join(first)}") from None
    if manifest.version != MANIFEST_VERSION:
        raise FacefindError(
            f"{path}: manifest version {manifest.version}; this facefind reads {MANIFEST_VERSION}"
        )
    ids = [t.id for t in manifest.tracks]
    if len(set(ids)) != len(ids):
        raise FacefindError(f"{path}: two tracks have the same id; give each added track a new id")
    for t in manifest.tracks:
        if any(b[0] >= manifest.frames for b in t.boxes):
            raise FacefindError(f"{path}: track {t.id} has a box past the last frame ({manifest.frames - 1})")
    return manifest


def _same_face(a: _Track, b: _Track) -> bool:
    """Two tracks overlap (IoU >= 0.3) in a frame both were found in."""
    rows = dict(zip(b.frames, b.rows, strict=True))
    for t, (x, y, w, h, _) in zip(a.frames, a.rows, strict=True):
        if t in rows:
            bx, by, bw, bh, _ = rows[t]
            if r.overlaps(Box(x=x, y=y, w=w, h=h), Box(x=bx, y=by, w=bw, h=bh)) >= r.SAME_FACE_IOU:
                return True
    return False


def reapply_video(
    publisher: Publisher, manifest: VideoManifest, out: Path, style: str, margin: float,
    on_progress: Progress | None = None, settings: VideoSettings | None = None,
) -> r.RedactedVideo:  # fmt: skip
    """Apply a reviewer-edited video manifest to its video: its tracks and decisions (tracks
    un-hidden, tracks added), except that a track recognised now as opted out or withheld is
    hidden whatever the manifest says. The video is searched again (`publisher` keeps consented)
    for those; a vetoed face the manifest's hidden tracks do not cover becomes a track of its own."""
    path = Path(manifest.input)
    check_source(path)
    _outputs(path, out)
    digest = _sha256(path)
    if digest != manifest.input_sha256:
        raise FacefindError(f"{shown(str(path))} changed since its manifest was made; redact it afresh")
    redactor = VideoRedactor(publisher, settings)
    total = _frame_count(path)
    frames, _, _ = redactor.run(
        path, find=True, gallery=publisher.gallery, progress=(0, 2 * total), on_progress=on_progress
    )
    if frames != manifest.frames:
        raise FacefindError(
            f"{shown(str(path))} has {frames} frames, not {manifest.frames} as the manifest says"
        )
    fresh = {tr.id: redactor.verdict(tr) for tr in redactor.tracks}
    tracks: list[_Track] = []
    verdicts: dict[int, Decision] = {}
    for t in manifest.tracks:
        rows = sorted(b if len(b) == 6 else [*b, 1.0] for b in t.boxes)
        tr = _Track(id=t.id, frames=[int(b[0]) for b in rows], rows=[tuple(b[1:6]) for b in rows])  # type: ignore[misc]
        if not tr.frames:
            continue
        dec = Decision(t.decision == "kept", t.reason, t.person_id, t.consent_id, t.similarity)
        if dec.kept:
            same = [f for f in redactor.tracks if _same_face(tr, f)]
            veto = next((fresh[f.id] for f in same if fresh[f.id].reason in r.VETO), None)
            now = next((fresh[f.id] for f in same if fresh[f.id].kept), None)
            dec = veto or now or Decision(True, "reviewer")
        tracks.append(tr)
        verdicts[tr.id] = dec
    # A face recognised as opted out or withheld where the manifest draws no hidden box over it;
    # and a face found now that the manifest does not know (a track it has not, e.g. where the
    # first run's detector missed frames): hidden unless it is kept now, as `redact` would.
    covered = drawn_faces(tracks, verdicts, frames, redactor.settings.carry)
    known = list(tracks)
    next_id = max(verdicts, default=0) + 1
    for f in redactor.tracks:
        if fresh[f.id].reason not in r.VETO and (fresh[f.id].kept or any(_same_face(m, f) for m in known)):
            continue
        boxes = [Box(x=x, y=y, w=w, h=h) for x, y, w, h, _ in f.rows]
        if all(
            any(g.decision == "hidden" and r.overlaps(g.box, b) >= r.SAME_FACE_IOU for g in covered[t])
            for t, b in zip(f.frames, boxes, strict=True)
        ):
            continue
        tracks.append(_Track(id=next_id, frames=f.frames, rows=f.rows))
        verdicts[next_id] = fresh[f.id]
        next_id += 1
    tracks.sort(key=lambda tr: (tr.frames[0], tr.id))
    publisher.keep = manifest.keep
    return _write(
        publisher, redactor, path, digest, out, style, margin, on_progress, (tracks, verdicts, frames)
    )
