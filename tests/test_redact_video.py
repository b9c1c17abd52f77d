"""`facefind redact CLIP` end to end: a short clip made here from real photos (panning and zooming
across Obama and Biden, with a sine audio track) is redacted through the CLI; the consenting
person stays visible, the other is found by no detector frame in any output frame, timing and
audio survive; bad inputs are refused and leave nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from facefind.faces.backend import Detection

from .conftest import BIDEN, OBAMA, run_cli, run_json

SIZE = (480, 270)
FPS = 25
FRAMES = 50  # 2 s
PUBLICATION = ("--by", "the person", "--expires", "2099-12-31", "--evidence", "form 2026-9")


def largest_face(image: np.ndarray) -> tuple[float, float, float, float]:
    from facefind.faces.opencv import OpenCVBackend

    found = OpenCVBackend().detect(image)
    return max((d.box for d in found), key=lambda b: b[2] * b[3])


def make_clip(
    path: Path,
    size: tuple[int, int] = SIZE,
    frames: int = FRAMES,
    audio: bool = True,
    codecs: tuple[str, str, int] = ("libx264", "aac", 16000),
) -> list[dict[str, tuple[float, float, float, float]]]:
    """Pan from Obama to Biden while zooming in; each frame's true face box of each person.

    H.264 is written losslessly (qp 0): libx264 in PyAV's FFmpeg does not write the same frames
    twice from the same input (its macroblock tree differs run to run, more often on a loaded
    machine), so a lossy clip would differ between runs and so would what the detector sees."""
    photos = {"obama": cv2.imread(str(OBAMA)), "biden": cv2.imread(str(BIDEN))}
    height = max(p.shape[0] for p in photos.values())
    boxes, parts, x = {}, [], 0
    for name, photo in photos.items():
        k = height / photo.shape[0]
        photo = cv2.resize(photo, (round(photo.shape[1] * k), height))
        bx, by, bw, bh = largest_face(photo)
        boxes[name] = (bx + x, by, bw, bh)
        parts.append(photo)
        x += photo.shape[1]
    canvas = np.hstack(parts)
    ch, cw = canvas.shape[:2]
    width, high = size
    container = av.open(str(path), "w")
    video = container.add_stream(codecs[0], rate=FPS)
    video.width, video.height, video.pix_fmt = width, high, "yuv420p"
    if codecs[0] == "libx264":
        video.options = {"qp": "0", "preset": "ultrafast"}
    hz = codecs[2]
    sound = container.add_stream(codecs[1], rate=hz) if audio else None
    truth = []
    for t in range(frames):
        zoom = 1.0 + 0.4 * t / frames
        vw = min(cw / zoom, ch * width / high)
        x0, y0 = (cw - vw) * t / (frames - 1), 0.0  # the faces are in the top part of the photos
        s = width / vw
        image = cv2.warpAffine(canvas, np.array([[s, 0, -x0 * s], [0, s, -y0 * s]]), size)
        truth.append({n: ((b[0] - x0) * s, (b[1] - y0) * s, b[2] * s, b[3] * s) for n, b in boxes.items()})
        for packet in video.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            container.mux(packet)
    container.mux(video.encode(None))
    if sound is not None:
        n = hz * frames // FPS
        wave = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / hz)).astype(np.float32)
        step = 960 if codecs[1] == "libopus" else 1024
        for i in range(0, n, step):
            frame = av.AudioFrame.from_ndarray(wave[None, i : i + step], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = hz, i
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    container.close()
    return truth


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)


def in_view(box: tuple[float, ...], size: tuple[int, int] = SIZE) -> bool:
    """At least 80% of the face inside the frame and 20 px or more high."""
    x, y, w, h = box
    inside = max(0.0, min(x + w, size[0]) - max(x, 0.0)) * max(0.0, min(y + h, size[1]) - max(y, 0.0))
    return h >= 20 and inside >= 0.8 * w * h


def detail(image: np.ndarray, box: tuple[float, ...]) -> float:
    """Mean absolute Laplacian of the grey pixels inside `box`: how much fine detail they show."""
    x, y, w, h = (round(v) for v in box)
    crop = image[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)]
    return float(np.abs(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.CV_32F)).mean())


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def visible(source: Path, output: Path, truth: list, names: tuple[str, ...] = ("obama", "biden")) -> list:
    """(name, frame) of every labelled face in view that the output shows: facefind's indexing
    detector finds it there (IoU >= 0.3) and at least a quarter of its fine detail in the input is
    left. The detector alone also fires, now and then, on the blurred patch drawn over a face (a
    face-shaped blob, a tenth of the face's detail left): that hides the face, it does not show it."""
    inputs, outputs, found = frames_of(source), frames_of(output), shown_faces(output)
    assert len(inputs) == len(outputs) == len(found)
    return [
        (name, t)
        for t, faces in enumerate(found)
        for name in names
        if in_view(truth[t][name])
        and any(iou(d.box, truth[t][name]) >= 0.3 for d in faces)
        and detail(outputs[t], truth[t][name]) >= 0.25 * detail(inputs[t], truth[t][name])
    ]


def shown_faces(path: Path) -> list[list[Detection]]:
    """The boxes facefind's indexing detector finds in each frame of a video (the recall detector,
    at its score threshold of 0.2, also fires on the blurred patches themselves: larger blobs)."""
    from facefind.faces.opencv import OpenCVBackend

    backend = OpenCVBackend()
    with av.open(str(path)) as container:
        return [backend.detect(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]


def streams(path: Path) -> tuple[int, float, bool]:
    """Frame count, video duration (s) and whether there is an audio stream."""
    with av.open(str(path)) as container:
        v = container.streams.video[0]
        pts = [f.pts for f in container.decode(video=0)]
        duration = float((max(pts) - min(pts)) * v.time_base) + 1 / FPS
        return len(pts), duration, bool(container.streams.audio)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("clip") / "match day.mp4"
    return path, make_clip(path)


def test_video_keeps_the_consenting_person_and_hides_everyone_else(
    fr_copy: Path, clip: tuple[Path, list], tmp_path: Path
) -> None:
    source, truth = clip
    people = run_json("people", "list", "--all", db=fr_copy)
    obama = next(p["id"] for p in people if "Barack_Obama" in p["faces"][0]["path"])
    granted = run_json("consent", "add", str(obama), "--scope", "publication", *PUBLICATION, db=fr_copy)

    out = tmp_path / "out"
    proc = run_cli("redact", source, "--out", out, "--purpose", "club video", db=fr_copy)
    assert proc.returncode == 0, proc.stderr
    assert "match day.mp4: 50 frames" in proc.stdout and "frames/s" in proc.stdout
    assert "redacting" in proc.stderr and "ETA" in proc.stderr  # progress with rate and ETA
    output = out / "match day.mp4"
    assert sorted(p.name for p in out.iterdir()) == ["match day.mp4", "match day.mp4.manifest.json"]

    frames, duration, audio = streams(output)
    assert frames == FRAMES and abs(duration - FRAMES / FPS) <= 1 / FPS and audio

    shown = visible(source, output, truth)
    assert [t for name, t in shown if name == "biden"] == []  # Biden visible in no frame
    obama_frames = sum(in_view(truth[t]["obama"]) for t in range(FRAMES))
    biden_frames = sum(in_view(truth[t]["biden"]) for t in range(FRAMES))
    assert biden_frames >= 15 and obama_frames >= 15  # the pan shows both
    assert len([t for name, t in shown if name == "obama"]) >= 0.9 * obama_frames

    manifest = json.loads((out / "match day.mp4.manifest.json").read_text())
    assert (manifest["frames"], manifest["width"], manifest["height"], manifest["audio"]) == (
        50,
        480,
        270,
        True,
    )
    kept = [t for t in manifest["tracks"] if t["decision"] == "kept"]
    assert kept and all((t["person_id"], t["consent_id"]) == (obama, granted["id"]) for t in kept)
    assert any(t["decision"] == "hidden" and t["reason"] == "unknown" for t in manifest["tracks"])
    entry = run_json("audit", "show", db=fr_copy)[-1]
    assert (entry["action"], entry["purpose"], entry["details"]["kind"]) == ("redact", "club video", "video")
    assert entry["details"]["kept"][0]["consent_id"] == granted["id"]

    # --keep none: Obama hidden as well.
    hidden = run_json("redact", source, "--out", tmp_path / "none", "--keep", "none", db=fr_copy)
    (video,) = hidden["videos"]
    assert video["kept"] == 0 and video["hidden"] >= 2
    assert visible(source, Path(video["output"]), truth) == []  # (name, frame) of faces shown
    # The same faces found in the same frames, whether the writer thread ran beside the search
    # (keep none: one decode) or not (keep consented: the search, then the writing).
    again = json.loads(Path(video["manifest"]).read_text())
    assert [t["boxes"] for t in again["tracks"]] == [t["boxes"] for t in manifest["tracks"]]


def test_bad_videos_are_refused_and_leave_nothing(fr_copy: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.mp4").write_text("not a video at all\n")
    for name, video in (("sound only.mp4", False), ("empty.mkv", True)):  # no video stream; no frame
        with av.open(str(bad / name), "w") as c:
            if video:
                v = c.add_stream("mpeg4", rate=25)
                v.width, v.height = 64, 64
            sound = c.add_stream("aac", rate=16000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, 0
            c.mux(sound.encode(frame))
            c.mux(sound.encode(None))
    inputs = [bad / "notes.mp4", bad / "sound only.mp4", bad / "empty.mkv", "rtsp://camera.local/live",
              "/dev/video0", bad / "missing.webm"]  # fmt: skip
    out = tmp_path / "out"
    report = run_json("redact", *inputs, "--out", out, "--keep", "none", db=fr_copy, ok_codes=(3,))
    errors = {Path(e["path"]).name: e["error"] for e in report["errors"]}
    assert "not a video" in errors["notes.mp4"]
    assert "no video stream" in errors["sound only.mp4"]
    assert "no frames" in errors["empty.mkv"]
    assert "never URLs or streams" in errors["live"]
    assert "never devices" in errors["video0"]
    assert "no such file" in errors["missing.webm"]
    assert report["videos"] == [] and list(out.iterdir()) == []

    big = bad / "big.mp4"
    make_clip(big, size=(1280, 800), frames=2, audio=False)  # 1.02 MP frames over a 1 MP limit
    env = {**os.environ, "FACEFIND_MAX_PIXELS": "1000000"}
    proc = run_cli("redact", big, "--out", out, "--keep", "none", "--json", db=fr_copy, env=env)
    assert proc.returncode == 3, proc.stderr
    (error,) = json.loads(proc.stdout)["errors"]
    assert "exceed the limit of 1000000 pixels" in error["error"] and "FACEFIND_MAX_PIXELS" in error["error"]
    assert list(out.iterdir()) == []


def test_interrupted_video_leaves_nothing(fr_copy: Path, tmp_path: Path) -> None:
    """Ctrl-C while the output is being written: no file, partial or whole, is left in --out."""
    import signal
    import subprocess
    import sys
    import time

    source = tmp_path / "long.mp4"
    make_clip(source, frames=150, audio=True)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "facefind", "redact", str(source), "--out", str(out), "--keep", "none",
           "--db", str(fr_copy)]  # fmt: skip
    # A shell running this suite in the background ignores SIGINT, and children inherit that (as
    # tests/test_interrupt.py says): the child gets the default back, as at a terminal.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = False
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if out.is_dir() and any(p.name.endswith(".partial.mp4") for p in out.iterdir()):
            seen = True
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.01)
    _, stderr = proc.communicate(timeout=120)
    assert seen, "the run ended before its output was being written"
    assert proc.returncode == 130, (proc.returncode, stderr[-500:])
    assert list(out.iterdir()) == []


def test_webm_becomes_matroska_with_its_audio(fr_copy: Path, tmp_path: Path) -> None:
    """A WebM (VP9 + Opus) comes out as Matroska: H.264 video, the Opus audio copied, same frames."""
    source = tmp_path / "clip.webm"
    truth = make_clip(source, frames=25, codecs=("libvpx-vp9", "libopus", 48000))
    report = run_json("redact", source, "--out", tmp_path / "out", "--keep", "none", db=fr_copy)
    (video,) = report["videos"]
    output = Path(video["output"])
    assert output == tmp_path / "out" / "clip.mkv" and video["frames"] == 25
    with av.open(str(output)) as container:
        codecs = {s.type: s.codec_context.name for s in container.streams}
    assert codecs == {"video": "h264", "audio": "opus"}
    frames, _, _ = streams(output)
    assert frames == 25
    assert visible(source, output, truth) == []  # (name, frame) of faces shown


def test_an_odd_sized_video_comes_out_one_pixel_smaller_with_its_faces_hidden(
    fr_copy: Path, tmp_path: Path
) -> None:
    """H.264 in 4:2:0 takes even sizes only: a 481x271 video (FFV1, which takes any size) comes
    out 480x270 (its last column and row dropped), faces hidden, frames and audio kept."""
    source = tmp_path / "odd.mkv"
    truth = make_clip(source, size=(481, 271), frames=25, codecs=("ffv1", "aac", 16000))
    report = run_json("redact", source, "--out", tmp_path / "out", "--keep", "none", db=fr_copy)
    (video,) = report["videos"]
    output = Path(video["output"])
    with av.open(str(output)) as container:
        v = container.streams.video[0].codec_context
        assert (v.name, v.width, v.height) == ("h264", 480, 270)
        assert container.streams.audio
    frames, _, _ = streams(output)
    assert frames == 25 and video["hidden"] >= 2
    assert visible(source, output, truth) == []


def test_video_manifest_round_trip_reviewer_unhides_and_adds_but_never_over_an_opt_out(
    fr_copy: Path, clip: tuple[Path, list], tmp_path: Path
) -> None:
    source, truth = clip
    first = run_json("redact", source, "--out", tmp_path / "a", "--keep", "none", db=fr_copy)
    manifest = json.loads(Path(first["videos"][0]["manifest"]).read_text())
    assert {(t["decision"], t["reason"]) for t in manifest["tracks"]} == {("hidden", "keep-none")}

    def of(name: str, tracks: list[dict]) -> list[dict]:
        return [t for t in tracks if any(iou(b[1:5], truth[int(b[0])][name]) >= 0.3 for b in t["boxes"])]

    for t in of("biden", manifest["tracks"]):
        t["decision"] = "kept"  # the reviewer un-hides Biden...
    drawn = [400.0, 200.0, 60.0, 50.0]  # ... and draws a box the detector missed, in frames 10 and 20
    manifest["tracks"].append({"id": 1000, "decision": "hidden", "boxes": [[10, *drawn], [20, *drawn]]})
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(manifest))

    review = ("--purpose", "review", "--style", "fill")
    again = run_json("redact", "--manifest", edited, "--out", tmp_path / "b", *review, db=fr_copy)
    (video,) = again["videos"]
    output = Path(video["output"])
    assert output == tmp_path / "b" / "match day.mp4" and video["frames"] == FRAMES
    applied = json.loads(Path(video["manifest"]).read_text())
    assert applied["style"] == "fill" and len(applied["tracks"]) == len(manifest["tracks"])
    assert {(t["decision"], t["reason"]) for t in of("biden", applied["tracks"])} == {("kept", "reviewer")}
    added = next(t for t in applied["tracks"] if t["id"] == 1000)
    assert (added["decision"], added["first_frame"], added["last_frame"]) == ("hidden", 10, 20)
    entry = run_json("audit", "show", db=fr_copy)[-1]
    assert (entry["action"], entry["details"]["kind"], entry["details"]["manifest_applied"]) == (
        "redact",
        "video",
        True,
    )

    x, y, w, h = (round(v) for v in drawn)
    with av.open(str(output)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == FRAMES and streams(output)[2]  # the audio is kept
    black = [frames[t][y : y + h, x : x + w].mean() < 8 for t in range(FRAMES)]
    assert all(black[4:27]) and not any(black[30:])  # its frames and 6 before and after
    shown = visible(source, output, truth)
    assert [t for name, t in shown if name == "obama"] == []  # Obama visible in no frame
    biden_frames = sum(in_view(truth[t]["biden"]) for t in range(FRAMES))
    assert biden_frames >= 15 and len([t for name, t in shown if name == "biden"]) >= 0.9 * biden_frames

    # Biden opts out: the same edited manifest no longer shows him.
    run_json("optout", "add", BIDEN, db=fr_copy)
    vetoed = run_json(
        "redact", "--manifest", edited, "--out", tmp_path / "c", "--purpose", "review", db=fr_copy
    )
    (video,) = vetoed["videos"]
    applied = json.loads(Path(video["manifest"]).read_text())
    assert {(t["decision"], t["reason"]) for t in of("biden", applied["tracks"])} == {("hidden", "optout")}
    assert visible(source, Path(video["output"]), truth, ("biden",)) == []  # frames showing Biden
