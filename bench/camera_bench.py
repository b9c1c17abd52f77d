"""Camera-size ingest: facefind vs face_recognition vs facefind before the change, whole process.

    python bench/ingest_bench.py --camera [--runs 3] [--before main] [--sets camera,web]
        [--no-accuracy] [--detector-sizes 960,1600] [--chip-rule] [--json]

Sets, made once under $FACEFIND_BENCH_CACHE (default /tmp/facefind-camera-bench), never in the repo:
- camera: every photo of ../shared/datasets/{deepface,face_recognition,face_recognition_multiface}
  scaled to 24 MP (6000x4000 for a 3:2 photo), JPEG quality 92;
- lfw24: lfw_dev photos of people with 2+ photos, each upscaled 2-12x and pasted at a known place
  into a 6000x4000 frame (JPEG q92), for TAR at FAR 1e-3 (all pairs of the set's photos; the face
  taken is the one at the known place, a photo where none was found counts as a miss);
- web: ../shared/datasets/{glint_dev12,deepface,face_recognition} as they are.

Speed (sets camera and web): every system runs as its own process (start-up included), on the
same files, in the same run (paired): `facefind` is this checkout, `before` the source of git ref
--before (extracted with git archive), `face_recognition` the baseline (HOG + dlib, photos
resized to 1024 px, 2 processes). The process tree is sampled every 50 ms: CPU seconds / wall
seconds = cores busy, and the peak resident memory (VmHWM) of each process. Ratios are per run,
then the median; CPU ms per photo is the figure least moved by other load on the machine.
Accuracy: lfw24 through facefind and facefind before, once each (the pipeline is deterministic).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).parent))
import machine

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CACHE = Path(os.environ.get("FACEFIND_BENCH_CACHE", "/tmp/facefind-camera-bench"))
PIXELS = 24_000_000
FRAME = (4000, 6000)  # height, width of the lfw24 frames
UPSCALES = (2.0, 3.0, 4.5, 6.0, 9.0, 12.0)  # LFW's face is ~68 px: 136-816 px in the frame
LFW_FACE = 68


# --- the sets -------------------------------------------------------------------------------
def build_camera(out: Path) -> Path:
    if (out / ".done").exists():
        return out
    from facefind.images import is_image_path, load_image

    for folder in ("deepface", "face_recognition", "face_recognition_multiface"):
        for src in sorted((SHARED / "datasets" / folder).rglob("*")):
            if not (src.is_file() and is_image_path(src)):
                continue
            image = load_image(src)
            h, w = image.shape[:2]
            z = (PIXELS / (w * h)) ** 0.5
            big = cv2.resize(image, (round(w * z), round(h * z)), interpolation=cv2.INTER_CUBIC)
            dest = out / folder / src.relative_to(SHARED / "datasets" / folder).with_suffix(".jpg")
            dest.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(dest), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    (out / ".done").touch()
    return out


def build_lfw24(out: Path, people: int, per_person: int, seed: int = 23) -> Path:
    if (out / "labels.json").exists():
        return out
    lfw = SHARED / "datasets" / "lfw_dev"
    rng = np.random.default_rng(seed)
    names = sorted(d.name for d in lfw.iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= 2)
    chosen = sorted(rng.choice(names, size=min(people, len(names)), replace=False))
    backgrounds = []
    for _ in range(4):  # smooth random scenery with some grain, like a photo's background
        coarse = rng.integers(30, 225, (8, 12, 3)).astype(np.uint8)
        bg = cv2.resize(coarse, FRAME[::-1], interpolation=cv2.INTER_CUBIC)
        grain = rng.normal(0, 4, (FRAME[0] // 4, FRAME[1] // 4, 3)).astype(np.int16)
        bg = np.clip(bg + cv2.resize(grain, FRAME[::-1], interpolation=cv2.INTER_NEAREST), 0, 255)
        backgrounds.append(bg.astype(np.uint8))
    labels = {}
    n = 0
    for person in chosen:
        for src in sorted((lfw / person).glob("*.jpg"))[:per_person]:
            photo = cv2.imread(str(src))
            u = UPSCALES[n % len(UPSCALES)]
            big = cv2.resize(photo, None, fx=u, fy=u, interpolation=cv2.INTER_CUBIC)
            frame = backgrounds[n % len(backgrounds)].copy()
            bh, bw = big.shape[:2]
            x, y = int(rng.integers(0, FRAME[1] - bw)), int(rng.integers(0, FRAME[0] - bh))
            frame[y : y + bh, x : x + bw] = big
            dest = out / person / src.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(dest), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
            labels[str(dest)] = {"person": person, "cx": x + bw / 2, "cy": y + bh / 2, "face": LFW_FACE * u}
            n += 1
    (out / "labels.json").write_text(json.dumps(labels, indent=1))
    return out


def web_folders() -> list[Path]:
    return [SHARED / "datasets" / f for f in ("glint_dev12", "deepface", "face_recognition")]


# --- running one system as a process ------------------------------------------------------------
def before_source(ref: str) -> Path:
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", ref], check=True, capture_output=True, text=True
    ).stdout.strip()
    dest = CACHE / f"before-{sha[:12]}"
    if not (dest / "src" / "facefind").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", sha, "src"], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src"


def run(
    system: str, src: Path, folders: list[Path], db: Path, workers: int, settings: dict | None = None
) -> dict:
    kind = "face_recognition" if system == "face_recognition" else "facefind"
    cmd = [sys.executable, str(ROOT / "bench" / "ingest_child.py"), kind, str(db), *map(str, folders)]
    cmd += ["--workers", str(workers), "--settings", json.dumps(settings or {})]
    env = {**os.environ, "PYTHONPATH": str(src)}
    env.setdefault("FACEFIND_MODELS", str(SHARED / "models"))
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cpu: dict[int, float] = {}
    peak: dict[int, int] = {}
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        for p in tree:
            try:
                t = p.cpu_times()
                cpu[p.pid] = t.user + t.system
                peak[p.pid] = max(peak.get(p.pid, 0), _vm_hwm(p.pid))
            except (psutil.Error, OSError):
                pass
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{system} failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    workers = [pid for pid in peak if pid != proc.pid]
    result.update(
        seconds=seconds,
        cpu_seconds=sum(cpu.values()),
        cores=sum(cpu.values()) / seconds,
        peak_main_mb=round(peak.get(proc.pid, 0) / 2**20),
        peak_worker_mb=round(max((peak[pid] for pid in workers), default=0) / 2**20),
    )
    return result


def _vm_hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


# --- accuracy on lfw24 ------------------------------------------------------------------------------
def tar_at_far(db: Path, labels: dict) -> dict:
    """TAR at FAR 1e-3 over all pairs of lfw24 photos indexed into `db`."""
    import facefind

    with facefind.open(db) as ff:
        ids = ff.catalog.faces_after(ff.model_id, 0, 10**9)[0]
        rows = ff.catalog.face_rows(ids).values()
    faces: dict[str, list] = {}
    for row in rows:
        faces.setdefault(row.path, []).append((row.box, row.embedding))
    return _tar(faces, labels)


def _tar(faces: dict[str, list], labels: dict, far: float = 1e-3) -> dict:
    """TAR at FAR over all pairs of the labelled photos, taking in each the face found at its known
    place (a photo where none was found there matches nothing)."""
    found: dict[str, np.ndarray] = {}
    for path, label in labels.items():
        best = 0.5  # the face's centre within half a face of the known place, its size within 2x
        for (x, y, w, h), embedding in faces.get(path, []):
            off = np.hypot(x + w / 2 - label["cx"], y + h / 2 - label["cy"]) / label["face"]
            if off < best and 0.5 < max(w, h) / label["face"] < 2.0:
                best, found[path] = off, embedding
    paths = sorted(labels)
    people = np.array([labels[p]["person"] for p in paths])
    emb = np.zeros((len(paths), 128), np.float32)
    have = np.array([p in found for p in paths])
    for i, p in enumerate(paths):
        if p in found:
            emb[i] = found[p]
    sim = emb @ emb.T
    sim[~have, :] = -1.0
    sim[:, ~have] = -1.0
    iu = np.triu_indices(len(paths), 1)
    same = people[iu[0]] == people[iu[1]]
    scores = sim[iu]
    impostor = np.sort(scores[~same])[::-1]
    threshold = impostor[max(0, int(far * len(impostor)) - 1)]
    return {
        "tar_percent": round(100 * float(np.mean(scores[same] > threshold)), 2),
        "genuine_pairs": int(same.sum()),
        "impostor_pairs": int((~same).sum()),
        "found_percent": round(100 * float(have.mean()), 2),
    }


# --- chip rule: a face's chip from the reduced image vs from the full one ---------------------------
def chip_agreement(camera: Path) -> list[dict]:
    """Cosine between the embedding of a face cut from the photo decoded at 1/2 and 1/4 and cut from
    the full decode (the same detection), by the face's size in the reduced image."""
    from facefind.faces import load_backend
    from facefind.faces.pipeline import _scaled
    from facefind.settings import Settings

    backend = load_backend(Settings())
    rows = []
    for path in sorted(camera.rglob("*.jpg")):
        data = np.fromfile(path, np.uint8)
        full = cv2.imdecode(data, cv2.IMREAD_COLOR)
        for flag in (cv2.IMREAD_REDUCED_COLOR_2, cv2.IMREAD_REDUCED_COLOR_4):
            small = cv2.imdecode(data, flag)
            sx, sy = full.shape[1] / small.shape[1], full.shape[0] / small.shape[0]
            for d in backend.detect(small):
                e = backend.embed([backend.align(small, d), backend.align(full, _scaled(d, sx, sy))])
                rows.append((min(d.box[2:]), float(e[0] @ e[1])))
    table = []
    for lo, hi in ((0, 64), (64, 96), (96, 128), (128, 192), (192, 10**6)):
        cos = [c for size, c in rows if lo <= size < hi]
        if cos:
            table.append(
                {
                    "face_px_reduced": f"{lo}-{hi if hi < 10**6 else ''}",
                    "faces": len(cos),
                    "cos_median": round(float(np.median(cos)), 4),
                    "cos_p10": round(float(np.percentile(cos, 10)), 4),
                }
            )
    return table


# --- detector input size and chip rule, in one process -------------------------------------------------
def pipeline_study(labels: dict, sizes: list[int], thresholds: list[int], people: int) -> dict:
    """TAR at FAR 1e-3, faces found at their place, and CPU ms per photo of decoding + analysis, on
    the lfw24 photos of the first `people` people, for each detector input size (chips cut as the
    default rule says) and each chip_from_reduced_px (detector at its default size)."""
    from facefind.faces import load_backend
    from facefind.faces.pipeline import analyze
    from facefind.images import decode_photo
    from facefind.settings import Settings

    cv2.setNumThreads(1)
    names = sorted({v["person"] for v in labels.values()})[:people]
    chosen = {p: v for p, v in labels.items() if v["person"] in names}
    variants = [("detect_max_side", n) for n in sizes] + [("chip_from_reduced_px", t) for t in thresholds]
    out = {}
    for field, value in variants:
        settings = Settings(**{field: value})
        backend = load_backend(settings)
        faces: dict[str, list] = {}
        cpu = time.process_time()
        for path in chosen:
            data = Path(path).read_bytes()
            photo = decode_photo(data, settings, settings.decode_min_side)
            faces[path] = [(f.box, f.embedding) for f in analyze(backend, photo, settings)]
        ms = 1000 * (time.process_time() - cpu) / len(chosen)
        out[f"{field}={value}"] = {"cpu_ms_per_photo": round(ms), **_tar(faces, chosen)}
        print(f"{field}={value}: {out[f'{field}={value}']}", file=sys.stderr)
    return out


# --- main ---------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description="camera-size ingest benchmark")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--before", default="main", help="git ref of facefind before the change")
    parser.add_argument("--sets", default="camera,web", help="speed sets, paired runs of the 3 systems")
    parser.add_argument("--no-accuracy", action="store_true", help="skip TAR on lfw24")
    parser.add_argument("--lfw-people", type=int, default=120)
    parser.add_argument("--lfw-per-person", type=int, default=4)
    parser.add_argument("--detector-sizes", default="", help="e.g. 960,1600: facefind once each")
    parser.add_argument("--chip-rule", action="store_true", help="measure where chips are cut from")
    parser.add_argument(
        "--study",
        action="store_true",
        help="in one process on lfw24: detector input 960/1280/1600 and chip_from_reduced_px 0/96/inf",
    )
    parser.add_argument("--study-people", type=int, default=60)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("FACEFIND_MODELS", str(SHARED / "models"))

    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"building sets under {CACHE} (once)", file=sys.stderr)
    camera = build_camera(CACHE / "camera")
    lfw24 = build_lfw24(
        CACHE / f"lfw24-{args.lfw_people}x{args.lfw_per_person}", args.lfw_people, args.lfw_per_person
    )
    labels = json.loads((lfw24 / "labels.json").read_text())
    folders = {"camera": [camera], "web": web_folders()}
    sets = [s for s in args.sets.split(",") if s]
    sources = {
        "facefind": ROOT / "src",
        "before": before_source(args.before),
        "face_recognition": ROOT / "src",
    }
    systems = list(sources)

    result: dict = {"machine": machine.describe(), "runs": args.runs, "workers": args.workers, "sets": {}}
    raw: dict = {s: {system: [] for system in systems} for s in sets}
    with tempfile.TemporaryDirectory(prefix="camera-bench-") as tmp:
        for n in range(args.runs):
            for name in sets:
                order = systems[n % 3 :] + systems[: n % 3]  # who goes first rotates
                for system in order:
                    db = Path(tmp) / f"{name}-{system}-{n}.db"
                    r = run(system, sources[system], folders[name], db, args.workers)
                    raw[name][system].append(r)
                    print(f"run {n + 1} {name} {system}: {r['seconds']:.1f} s", file=sys.stderr)
        for name in sets:
            result["sets"][name] = summarise(raw[name])

        if not args.no_accuracy:  # lfw24: the same photos through facefind and facefind before
            result["accuracy_lfw24"] = {}
            for system in ("facefind", "before"):
                db = Path(tmp) / f"lfw24-{system}.db"
                r = run(system, sources[system], [lfw24], db, args.workers)
                result["accuracy_lfw24"][system] = {**tar_at_far(db, labels), **_cost(r)}
                print(f"lfw24 {system}: {result['accuracy_lfw24'][system]}", file=sys.stderr)

        if args.detector_sizes:
            result["detector_sizes"] = {}
            for size in [int(x) for x in args.detector_sizes.split(",")]:
                entry = {}
                for name, where in (("camera", [camera]), ("lfw24", [lfw24])):
                    db = Path(tmp) / f"size-{size}-{name}.db"
                    settings = {"detect_max_side": size}
                    r = run("facefind", sources["facefind"], where, db, args.workers, settings)
                    entry[name] = {"faces": r["faces"], **_cost(r)}
                    if name == "lfw24":
                        entry[name].update(tar_at_far(db, labels))
                result["detector_sizes"][size] = entry
                print(f"detector {size}: {entry}", file=sys.stderr)

        if args.chip_rule:
            result["chip_rule"] = {"agreement": chip_agreement(camera), "tar_by_threshold": {}}
            for px in (0, 96, 100_000):
                db = Path(tmp) / f"chip-{px}.db"
                settings = {"chip_from_reduced_px": px}
                r = run("facefind", sources["facefind"], [lfw24], db, args.workers, settings)
                result["chip_rule"]["tar_by_threshold"][px] = {
                    "decode_full_ms": r["stage_ms"].get("decode_full", 0.0),
                    **_cost(r),
                    **tar_at_far(db, labels),
                }
                print(f"chip rule {px}: {result['chip_rule']['tar_by_threshold'][px]}", file=sys.stderr)

    if args.study:
        result["study"] = pipeline_study(labels, [960, 1280, 1600], [0, 100_000], args.study_people)

    if args.json:
        print(json.dumps(result, indent=2))
        return
    print_table(result)


def _cost(r: dict) -> dict:
    return {
        "seconds": round(r["seconds"], 2),
        "cpu_ms_per_photo": round(1000 * r["cpu_seconds"] / max(r["images"], 1)),
        "peak_worker_mb": r["peak_worker_mb"],
    }


def summarise(raw: dict) -> dict:
    """Medians over runs per system; speed-ups as medians of the per-run (paired) ratios."""
    row: dict = {}
    for system, runs in raw.items():
        row[system] = {
            "images": runs[0]["images"],
            "faces": runs[0]["faces"],
            "median_s": round(statistics.median(r["seconds"] for r in runs), 2),
            "runs_s": [round(r["seconds"], 2) for r in runs],
            "cores": round(statistics.median(r["cores"] for r in runs), 2),
            "cpu_ms_per_photo": round(
                statistics.median(1000 * r["cpu_seconds"] / max(r["images"], 1) for r in runs)
            ),
            "peak_main_mb": max(r["peak_main_mb"] for r in runs),
            "peak_worker_mb": max(r["peak_worker_mb"] for r in runs),
        }
        if "stage_ms" in runs[0]:
            row[system]["stage_ms"] = runs[0]["stage_ms"]
    for other in ("face_recognition", "before"):
        pairs = zip(raw["facefind"], raw[other], strict=True)
        row[f"speedup_vs_{other}"] = round(
            statistics.median(b["seconds"] / a["seconds"] for a, b in pairs), 2
        )
        pairs = zip(raw["facefind"], raw[other], strict=True)
        row[f"cpu_ratio_vs_{other}"] = round(
            statistics.median(b["cpu_seconds"] / a["cpu_seconds"] for a, b in pairs), 2
        )
    return row


def print_table(result: dict) -> None:
    runs, workers = result["runs"], result["workers"]
    print(f"machine: {result['machine']}  (medians of {runs} paired runs, {workers} workers)")
    print(
        f"{'set':6} {'system':16} {'photos':>6} {'faces':>6} {'wall s':>8} {'cores':>5} {'CPU ms/photo':>12} "
        f"{'peak MB main/worker':>19}"
    )
    for name, row in result["sets"].items():
        for system in ("facefind", "before", "face_recognition"):
            r = row[system]
            print(
                f"{name:6} {system:16} {r['images']:>6} {r['faces']:>6} {r['median_s']:>8} {r['cores']:>5} "
                f"{r['cpu_ms_per_photo']:>12} {str(r['peak_main_mb']) + '/' + str(r['peak_worker_mb']):>19}"
            )
        print(
            f"{name:6} facefind speed-up (wall, paired): x{row['speedup_vs_face_recognition']} vs "
            f"face_recognition, "
            f"x{row['speedup_vs_before']} vs before; CPU: x{row['cpu_ratio_vs_face_recognition']}, "
            f"x{row['cpu_ratio_vs_before']}"
        )
        print(f"{name:6} facefind ms/photo per stage: {row['facefind'].get('stage_ms')}")
    for system, acc in result.get("accuracy_lfw24", {}).items():
        print(f"lfw24 TAR at FAR 1e-3, {system}: {acc}")
    for size, entry in result.get("detector_sizes", {}).items():
        print(f"detector input {size}: {entry}")
    for variant, entry in result.get("study", {}).items():
        print(f"lfw24 in one process, {variant}: {entry}")
    if "chip_rule" in result:
        for line in result["chip_rule"]["agreement"]:
            print(f"chip agreement: {line}")
        for px, entry in result["chip_rule"]["tar_by_threshold"].items():
            print(f"chip_from_reduced_px={px}: {entry}")


if __name__ == "__main__":
    main()
