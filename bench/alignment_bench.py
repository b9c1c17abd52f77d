"""Small faces (LFW's ~68 px): alignment variants and flip averaging, at search's decision (issue 22).

    python bench/alignment_bench.py [--cache /tmp/f-cache] [--workers 2] [--json]
    python bench/alignment_bench.py --cost [--photos 40] [--json]

1. Every photo of ../shared/datasets/lfw_dev and glint_dev12 (the shipped calibration's folders),
   its labelled face (the one nearest the centre) detected once, then cut into a chip six ways and
   embedded plain and flip-averaged (cached in --cache/alignment-variants.npz, ~20 min on 2 quiet
   cores):
   - base: YuNet's landmarks, cv2.FaceRecognizerSF.alignCrop (bilinear), as shipped;
   - cubic: the same similarity transform, bicubic warp;
   - mirror_lm: landmarks averaged with those YuNet finds on the mirrored photo (mirrored back);
   - refine: landmarks found again by a second detection on the face's surroundings (box + half
     its side each way) upscaled 2x (bicubic), for faces under 112 px; chip cut from the photo;
   - refine_mirror: refine, averaged with the mirrored crop's landmarks;
   - refine_chip: refine's landmarks, chip cut from the upscaled crop.
   Each variant gets its own calibration exactly as `facefind calibrate lfw_dev glint_dev12` makes
   it (LabelledSet.calibration, LFW's three aliases merged as bench/make_calibration.py does), and
   issue 22's protocol on lfw_dev (evaluate.first_photo_split) is measured twice: with that
   calibration (in-sample: the strangers are among its people) and 2-fold held out (lfw_dev's people
   halved at random; each half searched with a calibration made without it; counts pooled). Also
   FNIR at the measured FPIR 0.01 (the best any threshold could do) and TAR at FMR 1e-4 / 1e-5
   over lfw_dev's 20M pairs (the least noisy comparison of embeddings).
2. --cost: per photo, milliseconds in each stage of faces.analyze (decode, detect, align, embed)
   for plain, flip and mirror (the recognizer of new catalogs), alternating per photo (paired, same
   load), on web photos (../shared/datasets/{deepface,face_recognition,face_recognition_multiface}
   as they are) and camera photos (the same scaled to 24 MP: bench/camera_bench.py's set, made if missing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("FACEFIND_MODELS", str(REPO.parent / "shared" / "models"))

from facefind import evaluate as ev  # noqa: E402
from facefind import recognizers  # noqa: E402
from facefind.faces import load_backend  # noqa: E402
from facefind.faces.backend import Detection  # noqa: E402
from facefind.faces.opencv import OpenCVBackend, detections  # noqa: E402
from facefind.images import load_image  # noqa: E402
from facefind.settings import Settings  # noqa: E402

FOLDERS = ("lfw_dev", "glint_dev12")
VARIANTS = ("base", "cubic", "mirror_lm", "refine", "refine_mirror", "refine_chip")
# ArcFace's five points in SFace's 112 x 112 chip (what alignCrop maps the landmarks to).
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
MIRRORED = [1, 0, 2, 4, 3]  # the order of the five points in a mirrored face
REFINE_MAX_FACE, REFINE_UPSCALE, REFINE_MARGIN = 112, 2.0, 0.5
_BACKENDS: dict[str, OpenCVBackend] = {}


def similarity_transform(points: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (Umeyama) taking `points` to TEMPLATE, as alignCrop computes it."""
    src = np.asarray(points, np.float64)
    ms, md = src.mean(0), TEMPLATE.mean(0)
    sc, dc = src - ms, TEMPLATE - md
    a = dc.T @ sc / len(src)
    u, s, vt = np.linalg.svd(a)
    d = np.array([1.0, -1.0 if np.linalg.det(a) < 0 else 1.0])
    r = u @ np.diag(d) @ vt
    scale = (s * d).sum() / ((sc**2).sum() / len(src))
    return np.hstack([scale * r, (md - scale * r @ ms)[:, None]])


def warp(image: np.ndarray, points: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    return cv2.warpAffine(image, similarity_transform(points), (112, 112), flags=interpolation)


def _nearest(found: list[Detection], x: float, y: float) -> Detection | None:
    if not found:
        return None
    return min(found, key=lambda d: (d.box[0] + d.box[2] / 2 - x) ** 2 + (d.box[1] + d.box[3] / 2 - y) ** 2)


def mirror_landmarks(backend: OpenCVBackend, image: np.ndarray, d: Detection) -> np.ndarray | None:
    """The landmarks YuNet finds for the same face in the mirrored image, mirrored back."""
    width = image.shape[1]
    found = detections(backend._detect_rows(cv2.flip(image, 1), max(image.shape[:2]), pad=0.0))
    cx, cy = width - 1 - (d.box[0] + d.box[2] / 2), d.box[1] + d.box[3] / 2
    other = _nearest(found, cx, cy)
    if other is None or abs(other.box[0] + other.box[2] / 2 - cx) > d.box[2] / 3:
        return None
    marks = other.landmarks.copy()
    marks[:, 0] = width - 1 - marks[:, 0]
    return marks[MIRRORED]


def upscaled_surroundings(image: np.ndarray, d: Detection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The crop `refined` detects on: (upscaled crop, its origin, its scale)."""
    x, y, w, h = d.box
    margin = REFINE_MARGIN * max(w, h)
    left, top = int(np.floor(x - margin)), int(np.floor(y - margin))
    right, bottom = int(np.ceil(x + w + margin)), int(np.ceil(y + h + margin))
    height, width = image.shape[:2]
    pad = max(0, -left, -top, right - width, bottom - height)
    source = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT) if pad else image
    crop = source[top + pad : bottom + pad, left + pad : right + pad]
    up = cv2.resize(crop, None, fx=REFINE_UPSCALE, fy=REFINE_UPSCALE, interpolation=cv2.INTER_CUBIC)
    factor = np.array([up.shape[1] / crop.shape[1], up.shape[0] / crop.shape[0]], np.float32)
    return up, np.array([left, top], np.float32), factor


def refined(backend: OpenCVBackend, image: np.ndarray, d: Detection) -> Detection:
    """`d` with the landmarks of a second detection on its upscaled surroundings (faces under
    REFINE_MAX_FACE; `d` itself when that detection finds no face where `d` was)."""
    x, y, w, h = d.box
    side = max(w, h)
    if not 0 < side < REFINE_MAX_FACE:
        return d
    up, origin, factor = upscaled_surroundings(image, d)
    found = detections(backend._detect_rows(up, max(up.shape[:2]), pad=0.0))
    centre = np.array([x + w / 2, y + h / 2], np.float32)

    def centre_of(f: Detection) -> np.ndarray:
        fx, fy, fw, fh = f.box
        return (np.array([fx + fw / 2, fy + fh / 2], np.float32) + 0.5) / factor - 0.5 + origin

    if not found:
        return d
    best = min(found, key=lambda f: float(np.sum((centre_of(f) - centre) ** 2)))
    if float(np.linalg.norm(centre_of(best) - centre)) > side / 3:
        return d  # another face
    marks = (best.landmarks + 0.5) / factor - 0.5 + origin
    return Detection(box=d.box, landmarks=marks.astype(np.float32), score=d.score)


def chips_of(path: str, names: tuple[str, ...]) -> tuple[bool, list[np.ndarray]]:
    """The labelled face of one photo cut each way in `names` (of VARIANTS)."""
    if not _BACKENDS:
        cv2.setNumThreads(1)
        _BACKENDS["plain"] = OpenCVBackend(Settings())
    plain = _BACKENDS["plain"]
    image = load_image(Path(path))
    d = _nearest(plain.detect(image), image.shape[1] / 2, image.shape[0] / 2)  # evaluate.labelled_face
    if d is None:
        return False, []
    chips = []
    better = refined(plain, image, d) if any(n.startswith("refine") for n in names) else d
    up, origin, factor = upscaled_surroundings(image, d)
    marks_up = (better.landmarks - origin + 0.5) * factor - 0.5
    for name in names:
        if name == "base":
            chips.append(plain.align(image, d))
        elif name == "cubic":
            chips.append(warp(image, d.landmarks, cv2.INTER_CUBIC))
        elif name == "mirror_lm":
            mirror = mirror_landmarks(plain, image, d)
            chips.append(warp(image, d.landmarks if mirror is None else (d.landmarks + mirror) / 2))
        elif name == "refine":
            chips.append(plain.align(image, better))
        elif name == "refine_mirror":
            both = better.landmarks
            if better is not d:
                xs, ys = marks_up[:, 0], marks_up[:, 1]
                box = (float(xs.min()), float(ys.min()), float(np.ptp(xs)), float(np.ptp(ys)))
                m = mirror_landmarks(plain, up, Detection(box=box, landmarks=marks_up, score=1.0))
                if m is not None:
                    both = (better.landmarks + (m + 0.5) / factor - 0.5 + origin) / 2
            chips.append(warp(image, both))
        elif name == "refine_chip":
            chips.append(warp(up, marks_up) if better is not d else plain.align(image, d))
    return True, chips


def embed_one(path: str, names: tuple[str, ...] = VARIANTS) -> tuple[str, bool, np.ndarray]:
    """(path, found, len(names) x (plain, flip) x dim embeddings)."""
    ok, chips = chips_of(path, names)
    out = np.zeros((len(names), 2, 128), np.float32)
    if ok:
        backend = _BACKENDS["plain"]
        feats = backend._features(chips + [cv2.flip(c, 1) for c in chips])
        feats /= np.linalg.norm(feats, axis=1, keepdims=True)
        plain, mirrored = feats[: len(chips)], feats[len(chips) :]
        flip = plain + mirrored
        out[:, 0], out[:, 1] = plain, flip / np.linalg.norm(flip, axis=1, keepdims=True)
    return path, ok, out


def embed_all(datasets: Path, cache: Path, workers: int, names: tuple[str, ...]) -> dict:
    target = cache / f"alignment-{'-'.join(names)}.npz"
    if target.exists():
        return dict(np.load(target, allow_pickle=False))
    from functools import partial
    from multiprocessing import get_context

    paths, persons, folders = [], [], []
    for k, name in enumerate(FOLDERS):
        for person in sorted(p for p in (datasets / name).iterdir() if p.is_dir()):
            for f in sorted(person.iterdir()):
                paths.append(str(f))
                persons.append(f"{name}/{person.name}")
                folders.append(k)
    started, done = time.perf_counter(), {}
    with get_context("fork").Pool(workers) as pool:
        work = pool.imap_unordered(partial(embed_one, names=names), paths, chunksize=8)
        for n, (path, ok, emb) in enumerate(work, 1):
            done[path] = (ok, emb)
            if n % 250 == 0:
                print(f"  {n}/{len(paths)} photos, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    result = {
        "names": np.array(names),
        "paths": np.array(paths),
        "persons": np.array(persons),
        "folders": np.array(folders, np.int32),
        "detected": np.array([done[p][0] for p in paths]),
        "embeddings": np.stack([done[p][1] for p in paths]),
    }
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(target, **result)
    return result


# --- the protocol -------------------------------------------------------------------------------
def labelled_set(z: dict, variant: int, flip: int) -> ev.LabelledSet:
    from make_calibration import SAME_PERSON

    return ev.LabelledSet(
        Path(" + ".join(FOLDERS)),
        [str(p) for p in z["paths"]],
        [SAME_PERSON.get(str(p), str(p)) for p in z["persons"]],
        z["embeddings"][:, variant, flip],
        z["detected"],
        folders=z["folders"],
        folder_names=list(FOLDERS),
    )


def subset(s: ev.LabelledSet, keep: np.ndarray, lfw_only: bool = False) -> ev.LabelledSet:
    idx = np.flatnonzero(keep)
    return ev.LabelledSet(
        s.root,
        [s.paths[i] for i in idx],
        [s.persons[i] for i in idx],
        s.embeddings[idx],
        s.detected[idx],
        folders=None if lfw_only or s.folders is None else s.folders[idx],
        folder_names=s.folder_names[:1] if lfw_only else s.folder_names,
    )


def protocol(lfw: ev.LabelledSet, calibration) -> dict:
    split = ev.first_photo_split(lfw)
    assert split is not None
    cut = calibration.threshold_for_fpir(0.01, len(split.gallery))
    false_positives, misses = split.rates(cut)
    return {
        "strangers": len(split.non_mated),
        "mated": len(split.mated),
        "false_positives": false_positives,
        "misses": misses,
        "misses_at_measured_fpir_0.01": split.rates(ev.threshold_at_fpir(split.non_mated_scores, 0.01))[1],
        "misses_at_rank1": int((~split.mated_hits).sum()),
        "threshold": round(cut, 4),
    }


def rates(counts: dict) -> dict:
    s, m = counts["strangers"], counts["mated"]
    return {
        "fpir": round(counts["false_positives"] / s, 4),
        "fpir_ci95": [round(x, 4) for x in ev.wilson_interval(counts["false_positives"], s)],
        "fnir": round(counts["misses"] / m, 4),
        "fnir_ci95": [round(x, 4) for x in ev.wilson_interval(counts["misses"], m)],
        "fnir_at_measured_fpir_0.01": round(counts["misses_at_measured_fpir_0.01"] / m, 4),
        **counts,
    }


def measure(s: ev.LabelledSet, seed: int = 0) -> dict:
    lfw = s.folders == 0
    in_sample = protocol(subset(s, lfw, True), s.calibration("variant", resamples=0))
    people = sorted({p for p, here in zip(s.persons, lfw, strict=True) if here})
    order = np.random.default_rng(seed).permutation(people)
    pooled: dict = {}
    for half in (set(order[0::2]), set(order[1::2])):
        mine = np.array([p in half for p in s.persons])
        part = protocol(subset(s, mine, True), subset(s, ~mine).calibration("variant", resamples=0))
        for k, v in part.items():
            pooled[k] = [*pooled.get(k, []), v] if k == "threshold" else pooled.get(k, 0) + v
    genuine, impostor = subset(s, lfw, True).pair_scores()
    return {
        "in_sample": rates(in_sample),
        "held_out_2_fold": rates(pooled),
        "tar_at_fmr": {f"{f:g}": ev.tar_at_far(genuine, impostor, f)[0] for f in (1e-4, 1e-5)},
    }


# --- cost -----------------------------------------------------------------------------------------
def cost(photos: int) -> dict:
    from camera_bench import CACHE, build_camera
    from facefind.faces import analyze
    from facefind.faces.pipeline import StageTimes
    from facefind.images import decode_photo, is_image_path

    shared = REPO.parent / "shared" / "datasets"
    web = sorted(
        p
        for folder in ("deepface", "face_recognition", "face_recognition_multiface")
        for p in (shared / folder).rglob("*")
        if p.is_file() and is_image_path(p)
    )
    camera = sorted(p for p in build_camera(CACHE / "camera").rglob("*.jpg"))
    kinds = {
        "plain": recognizers.builtin_settings(recognizers.BUILTIN),
        "flip": recognizers.builtin_settings(recognizers.FLIPPED),
        "mirror": recognizers.builtin_settings(recognizers.MIRRORED),
    }
    cv2.setNumThreads(1)
    backends = {k: load_backend(s) for k, s in kinds.items()}
    out: dict = {}
    for name, files in (("web", web), ("camera (24 MP)", camera)):
        step = max(1, len(files) // photos)
        per: dict[str, list[dict]] = {k: [] for k in kinds}
        faces = 0
        for path in files[::step][:photos]:
            for k, settings in kinds.items():  # alternating: each photo through every kind
                times = StageTimes()
                t = time.perf_counter()
                photo = decode_photo(path.read_bytes(), settings, settings.decode_min_side)
                times.add("decode", t)
                found = analyze(backends[k], photo, settings, times)
                per[k].append(times.seconds)
            faces += len(found)
        out[name] = {
            "photos": len(per["plain"]),
            "faces": faces,
            "ms_per_photo (median)": {
                k: {
                    stage: round(1000 * statistics.median(r.get(stage, 0.0) for r in rows), 2)
                    for stage in ("decode", "detect", "align", "embed")
                }
                | {"total": round(1000 * statistics.median(sum(r.values()) for r in rows), 1)}
                for k, rows in per.items()
            },
            "ms_per_face (embed + align, mean)": {
                k: round(1000 * sum(r.get("embed", 0) + r.get("align", 0) for r in rows) / max(faces, 1), 2)
                for k, rows in per.items()
            },
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/f-cache"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--embed", nargs="+", default=list(VARIANTS), choices=VARIANTS, help="variants to cut")
    ap.add_argument("--cost", action="store_true")
    ap.add_argument("--photos", type=int, default=40)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.cost:
        print(json.dumps(cost(args.photos), indent=1))
        return
    z = embed_all(args.datasets, args.cache, args.workers, tuple(args.embed))
    result: dict = {"photos": len(z["paths"]), "no_face": int((~z["detected"]).sum()), "variants": {}}
    for v, name in enumerate(z["names"]):
        for k, kind in enumerate(("plain", "flip")):
            key = f"{name}/{kind}"
            result["variants"][key] = r = measure(labelled_set(z, v, k))
            print(
                f"{key}: in-sample FPIR {r['in_sample']['fpir']} FNIR {r['in_sample']['fnir']} "
                f"({r['in_sample']['misses']}); held out FPIR {r['held_out_2_fold']['fpir']} "
                f"FNIR {r['held_out_2_fold']['fnir']} ({r['held_out_2_fold']['misses']}); "
                f"TAR {r['tar_at_fmr']}",
                file=sys.stderr,
                flush=True,
            )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
