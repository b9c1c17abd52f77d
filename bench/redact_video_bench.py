"""Video redaction: speed at 720p 25 fps and labelled faces left visible (`redact_bench.py --video`).

    python bench/redact_bench.py --video [--data ../shared/datasets/wider_dev] [--photos 5]
        [--seconds 2] [--detect-every N] [--detect-scale S] [--preset P] [--keep none|consented]
        [--runs 3] [--baseline REV] [--also SETTINGS ...] [--json]

The clip: 1280x720 at 25 fps, `--seconds` per photo, panning and zooming (1x to 1.6x) across
WIDER FACE validation photos of wider_dev with 4-15 labelled faces (the first `--photos` of them
by name), with a 440 Hz audio track. Every labelled face (boxes.tsv, not marked invalid) is
carried through the pan and zoom into each frame: the known boxes.

The run: what `facefind.open(catalog).redact([clip], out, keep=...)` runs for a video, on a
fresh catalog (`--keep none`, the default: every face hidden, one decode; `consented`: faces
recognised against the catalog's empty gallery, two decodes), `--runs` times. fps = frames /
wall time of the whole redaction (decoding, detection, tracking, drawing, H.264 encoding, audio
copy), on the cores the machine has (2 here); CPU = the process's CPU time (all threads) per
frame, which a loaded machine moves least. `--baseline REV`: publish/video.py of that git
revision runs too, alternating with today's, so both see the same load; `--also
detect_every=2,preset=superfast` adds variants of today's settings to the same rotation. Bytes
and PSNR (dB, every output frame against the input's, outside the boxes drawn over faces)
compare encoder presets.

Faces left visible: in each output frame, a labelled face of 20 px or more (height in the frame,
at least 80% inside it) is *visible* when facefind's indexing detector finds a face overlapping it
with IoU >= 0.3 there. *Uncovered* is stricter: less than half of the labelled box lies under
the boxes drawn over that frame (the manifest's hidden tracks grown by the margin and carried).
Both are also counted on the input clip (how many faces there were to hide). `--clip lfw`: the
clip is a mosaic of lfw_dev people instead, and the run also counts how many faces facefind's own
search still ties to their people in the output (bench/video_identities.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import machine
import video_identities as identities
from facefind.faces.opencv import OpenCVBackend

SIZE = (1280, 720)
FPS = 25
MIN_PX = 20


def labelled(data: Path, count: int) -> list[tuple[Path, np.ndarray]]:
    faces: dict[str, list[list[float]]] = defaultdict(list)
    with open(data / "boxes.tsv", newline="") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            if r["invalid"] == "0" and r["nonzero_box"] == "1":
                faces[r["image_path"]].append([float(r[k]) for k in "xywh"])
    chosen = []
    for name in sorted(faces):
        boxes = np.array(faces[name], np.float32)
        image = cv2.imread(str(data / "images" / name))
        if image is not None and 4 <= len(boxes) <= 15 and image.shape[1] > image.shape[0]:
            chosen.append((data / "images" / name, boxes))
        if len(chosen) == count:
            break
    return chosen


def make_clip(path: Path, photos: list[tuple[Path, np.ndarray]], seconds: float) -> list[np.ndarray]:
    """Write the clip; the labelled boxes of each frame (x, y, w, h in the frame's pixels)."""
    width, height = SIZE
    container = av.open(str(path), "w")
    video = container.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.options = {"crf": "18", "preset": "veryfast"}
    sound = container.add_stream("aac", rate=16000)
    truth = []
    per = round(seconds * FPS)
    for k, (photo, boxes) in enumerate(photos):
        image = cv2.imread(str(photo))
        ih, iw = image.shape[:2]
        for t in range(per):
            u = t / (per - 1)
            zoom = 1.0 + 0.6 * (u if k % 2 == 0 else 1 - u)
            vw = min(iw, ih * width / height) / zoom
            vh = vw * height / width
            x0, y0 = (iw - vw) * (u if k % 2 == 0 else 1 - u), (ih - vh) * 0.5
            frame, moved = identities.pan_zoom(image, boxes, x0, y0, width / vw, SIZE)
            truth.append(moved)
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
    container.mux(video.encode(None))
    n = 16000 * len(truth) // FPS
    wave = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)).astype(np.float32)
    for i in range(0, n, 1024):
        chunk = av.AudioFrame.from_ndarray(wave[None, i : i + 1024], format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 16000, i
        container.mux(sound.encode(chunk))
    container.mux(sound.encode(None))
    container.close()
    return truth


def counted(boxes: np.ndarray) -> np.ndarray:
    """Labelled faces of 20 px or more, at least 80% inside the frame."""
    x, y, w, h = boxes.T
    inside = np.clip(np.minimum(x + w, SIZE[0]) - np.maximum(x, 0), 0, None) * np.clip(
        np.minimum(y + h, SIZE[1]) - np.maximum(y, 0), 0, None
    )
    return boxes[(h >= MIN_PX) & (inside >= 0.8 * w * h)]


def iou(a: np.ndarray, b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return float(iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih))


def covered(face: np.ndarray, drawn: list[tuple[float, ...]]) -> float:
    """Share of a labelled box under the union of the drawn boxes."""
    x, y, w, h = (round(float(v)) for v in face)
    mask = np.zeros((max(1, h), max(1, w)), bool)
    for bx, by, bw, bh in drawn:
        x0, y0 = max(0, int(np.floor(bx)) - x), max(0, int(np.floor(by)) - y)
        x1, y1 = min(w, int(np.ceil(bx + bw)) - x), min(h, int(np.ceil(by + bh)) - y)
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = True
    return float(mask.mean())


def drawn_boxes(manifest: dict, frames: int) -> list[list[tuple[float, ...]]]:
    """The boxes `facefind redact` covered in each frame (its own carry rule, grown by the margin)."""
    from facefind.publish.decide import Decision
    from facefind.publish.video import _Track, drawn_faces

    tracks, verdicts = [], {}
    for t in manifest["tracks"]:
        tracks.append(_Track(t["id"], [int(b[0]) for b in t["boxes"]], [tuple(b[1:]) for b in t["boxes"]]))
        verdicts[t["id"]] = Decision(t["decision"] == "kept", t["reason"])
    m = manifest["margin"]
    return [
        [(f.box.x - f.box.w * m / 2, f.box.y - f.box.h * m / 2, f.box.w * (1 + m), f.box.h * (1 + m))
         for f in faces if f.decision == "hidden"]
        for faces in drawn_faces(tracks, verdicts, frames, manifest["carry"])
    ]  # fmt: skip


def detected(path: Path, truth: list[np.ndarray]) -> tuple[int, list[tuple[int, np.ndarray]]]:
    """(labelled faces counted, those the indexing detector finds (IoU >= 0.3) as (frame, box))."""
    backend = OpenCVBackend()
    faces, hits = 0, []
    with av.open(str(path)) as container:
        for t, frame in enumerate(container.decode(video=0)):
            boxes = [d.box for d in backend.detect(frame.to_ndarray(format="bgr24"))]
            for face in counted(truth[t]):
                faces += 1
                if any(iou(face, b) >= 0.3 for b in boxes):
                    hits.append((t, face))
    return faces, hits


def detail_left(clip: Path, output: Path, hits: list[tuple[int, np.ndarray]]) -> list[float]:
    """For each (frame, labelled box): the share of the input's fine detail (mean absolute
    Laplacian of the grey pixels in the box) the output still shows there. A blurred face keeps
    ~0.04-0.11 of it, a face left alone ~0.9-1 (tests/test_redact_video.py's `visible`)."""
    wanted: dict[int, list[np.ndarray]] = {}
    for t, face in hits:
        wanted.setdefault(t, []).append(face)
    grey: dict[tuple[str, int], np.ndarray] = {}
    for name, path in (("in", clip), ("out", output)):
        with av.open(str(path)) as container:
            for t, frame in enumerate(container.decode(video=0)):
                if t in wanted:
                    grey[(name, t)] = cv2.cvtColor(frame.to_ndarray(format="bgr24"), cv2.COLOR_BGR2GRAY)

    def detail(image: np.ndarray, box: np.ndarray) -> float:
        x, y, w, h = (round(float(v)) for v in box[:4])
        crop = image[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)]
        return float(np.abs(cv2.Laplacian(crop, cv2.CV_32F)).mean()) if crop.size else 0.0

    return [detail(grey[("out", t)], face) / max(detail(grey[("in", t)], face), 1e-9) for t, face in hits]


def video_defaults():  # type: ignore[no-untyped-def]
    from facefind.publish.video import VideoSettings

    return VideoSettings()


def baseline_module(revision: str):  # type: ignore[no-untyped-def]
    """publish/video.py as it was at a git revision, importable beside today's (paired runs)."""
    import importlib.util
    import subprocess

    repo = Path(__file__).parents[1]
    text = subprocess.run(
        ["git", "-C", str(repo), "show", f"{revision}:src/facefind/publish/video.py"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp(prefix="facefind-video-baseline-")) / "video_baseline.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("facefind.publish.video_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def psnr(a: Path, b: Path, drawn: list[list[tuple[float, ...]]]) -> float:
    """PSNR (dB) of the frames of b against those of a, outside the boxes drawn over faces: what
    the encoder kept of the rest of the picture."""
    err, count = 0.0, 0
    with av.open(str(a)) as ca, av.open(str(b)) as cb:
        for t, (fa, fb) in enumerate(zip(ca.decode(video=0), cb.decode(video=0), strict=False)):
            x, y = fa.to_ndarray(format="bgr24").astype(np.float32), fb.to_ndarray(format="bgr24")
            keep = np.ones(x.shape[:2], bool)
            for bx, by, bw, bh in drawn[t]:
                keep[
                    max(0, int(by)) : max(0, int(np.ceil(by + bh))),
                    max(0, int(bx)) : max(0, int(np.ceil(bx + bw))),
                ] = False
            diff = (x - y)[keep]
            err += float((diff * diff).sum())
            count += diff.size
    return round(float(10 * np.log10(255.0**2 / max(err / max(count, 1), 1e-12))), 2)


def one_run(ff, module, settings, clip: Path, out: Path, keep: str):  # type: ignore[no-untyped-def]
    from facefind.publish.run import Publisher

    out.mkdir()
    publisher = Publisher(ff, keep, "benchmark")  # what `ff.redact([clip], out, keep=...)` runs
    wall, cpu = time.perf_counter(), time.process_time()
    done = module.redact_video(publisher, clip, out, "blur", 0.2, settings=settings)
    return done, time.perf_counter() - wall, time.process_time() - cpu


def run(args: argparse.Namespace) -> dict:
    import statistics

    import facefind
    from facefind.publish import video

    work = Path(tempfile.mkdtemp(prefix="facefind-video-bench-"))
    clip = work / "clip.mp4"
    who: list[list[str]] | None = None
    if args.clip == "lfw":
        chosen = identities.people(args.lfw, args.people)
        truth, who = identities.make_clip(clip, chosen, args.seconds * args.photos, SIZE, FPS)
        faces_known = identities.gallery(chosen)
        shown = [name for name, _ in chosen]
    else:
        photos = labelled(args.data, args.photos)
        truth = make_clip(clip, photos, args.seconds)
        shown = [str(p.relative_to(args.data)) for p, _ in photos]
    faces, hits_in = detected(clip, truth)
    variants = {
        "new": (
            video,
            video.VideoSettings(
                detect_every=args.detect_every, detect_scale=args.detect_scale, preset=args.preset
            ),
        )
    }
    for spec in args.also or []:  # more settings of today's code, e.g. "detect_every=2,preset=superfast"
        given = dict(part.split("=", 1) for part in spec.split(","))
        fields = video.VideoSettings.__dataclass_fields__
        typed = {k: type(getattr(video_defaults(), k))(v) for k, v in given.items() if k in fields}
        if len(typed) != len(given):
            raise SystemExit(f"--also {spec}: settings are {', '.join(fields)}")
        variants[spec] = (video, video.VideoSettings(**typed))
    if args.baseline:
        old = baseline_module(args.baseline)
        variants["baseline"] = (old, old.VideoSettings())
    results: dict[str, dict] = {k: {"fps": [], "cpu_ms_per_frame": []} for k in variants}
    with facefind.open(work / "catalog.db") as ff:
        for i in range(args.runs):
            for name, (module, settings) in variants.items():  # alternating: paired under the same load
                done, seconds, cpu = one_run(ff, module, settings, clip, work / f"out-{name}-{i}", args.keep)
                res = results[name]
                res["fps"].append(round(done.frames / seconds, 2))
                res["cpu_ms_per_frame"].append(round(1000 * cpu / done.frames, 1))
                if i:
                    continue
                manifest = json.loads(Path(done.manifest).read_text())
                drawn = drawn_boxes(manifest, done.frames)
                cover = {
                    (t, tuple(face)): covered(face, drawn[t])
                    for t in range(done.frames)
                    for face in counted(truth[t])
                }
                _, hits_out = detected(Path(done.output), truth)
                partly = [(t, face) for t, face in hits_out if cover[(t, tuple(face))] < 0.9]
                left = detail_left(clip, Path(done.output), partly)
                res.update(
                    frames=done.frames,
                    tracks=done.tracks,
                    bytes=Path(done.output).stat().st_size,
                    psnr_db=psnr(clip, Path(done.output), drawn),
                    less_than_half_covered=sum(c < 0.5 for c in cover.values()),
                    least_covered=round(min(cover.values(), default=1.0), 3),
                    # the indexing detector fires on the output at a labelled face less than 90% covered ...
                    detected_in_output=len(hits_out),
                    detector_hits_under_90_covered=len(partly),
                    # ... and at least a quarter of the face's fine detail is left there: visible
                    visible_in_output=sum(d >= 0.25 for d in left),
                    detail_left_at_those_hits=[round(d, 3) for d in sorted(left)],
                    # ... and can the output's faces still be tied to their people (--clip lfw)?
                    identity=None
                    if who is None
                    else identities.identified(
                        clip, Path(done.output), truth, who, faces_known, counted, iou
                    ),
                )
    for res in results.values():
        res["fps_median"] = statistics.median(res["fps"])
        res["realtime"] = round(res["fps_median"] / FPS, 2)
        res["cpu_ms_per_frame_median"] = statistics.median(res["cpu_ms_per_frame"])
    return {
        "machine": machine.describe(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "clip": {
            "size": list(SIZE),
            "fps": FPS,
            "frames": len(truth),
            "seconds": len(truth) / FPS,
            "bytes": clip.stat().st_size,
            "source": args.clip,
            "photos": shown,
        },
        "detect_every": args.detect_every,
        "detect_scale": args.detect_scale,
        "preset": args.preset,
        "keep": args.keep,
        "baseline": args.baseline,
        "labelled_faces_20px": faces,
        "detected_in_input": len(hits_in),
        "results": results,
        "work": str(work),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", action="store_true")
    ap.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared/datasets/wider_dev")
    ap.add_argument("--photos", type=int, default=5)
    ap.add_argument(
        "--clip",
        choices=("wider", "lfw"),
        default="wider",
        help="wider: WIDER FACE crowds (faces of every size); lfw: a mosaic of lfw_dev people, and "
        "whether redaction leaves them identifiable (bench/video_identities.py)",
    )
    ap.add_argument("--lfw", type=Path, default=Path(__file__).parents[2] / "shared/datasets/lfw_dev")
    ap.add_argument("--people", type=int, default=48, help="--clip lfw: people in the mosaic")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--detect-every", type=int, default=video_defaults().detect_every)
    ap.add_argument("--detect-scale", type=float, default=video_defaults().detect_scale)
    ap.add_argument("--preset", default=video_defaults().preset, help="libx264 preset")
    ap.add_argument("--keep", default="none", choices=("none", "consented"))
    ap.add_argument("--runs", type=int, default=3, help="runs of each variant (medians reported)")
    ap.add_argument(
        "--baseline", metavar="REV", help="also run publish/video.py of this git revision, alternating"
    )
    ap.add_argument(
        "--also",
        action="append",
        metavar="SETTINGS",
        help="another variant of today's VideoSettings, e.g. detect_every=2,preset=superfast (repeatable)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = run(args)
    if args.json:
        print(json.dumps(res, indent=1))
        return
    c = res["clip"]
    print(
        f"clip: {c['size'][0]}x{c['size'][1]}, {c['fps']} fps, {c['frames']} frames, "
        f"{len(c['photos'])} photos; labelled faces >= {MIN_PX} px, all frames: "
        f"{res['labelled_faces_20px']}, "
        f"{res['detected_in_input']} found by the indexing detector in the input"
    )
    for name, r in res["results"].items():
        print(
            f"{name}: {r['fps_median']} fps median of {r['fps']} ({r['realtime']}x real time), CPU "
            f"{r['cpu_ms_per_frame_median']} ms/frame; {r['bytes']} bytes, PSNR {r['psnr_db']} dB; "
            f"less than half covered {r['less_than_half_covered']}, least covered {r['least_covered']}, "
            f"indexing detector in the output {r['detected_in_output']} "
            f"({r['detector_hits_under_90_covered']} < 90% covered; of those, {r['visible_in_output']} "
            f"with a quarter of the face's detail left)"
        )
        i = r["identity"]
        if i is not None:
            print(
                f"  identified (search, threshold {i['search_threshold']}): input {i['input']['identified']} "
                f"of {i['input']['searched']}, output {i['output']['identified']}; verified against the "
                f"person's own photos at FMR 1e-3 ({i['verify_threshold_fmr_1e-3']}): input "
                f"{i['input']['verified']}, output {i['output']['verified']} (as the next person: input "
                f"{i['input']['verified_as_next_person']}, output {i['output']['verified_as_next_person']}); "
                f"output's highest similarity "
                f"to the person's photos {i['output_highest_similarity_to_own_photos']}"
            )
    print(f"load average {res['load_average']}; {json.dumps(res['machine'])}")


if __name__ == "__main__":
    main()
