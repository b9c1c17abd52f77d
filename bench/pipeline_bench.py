"""Squeeze the pipeline before blaming the model: flip averaging, alignment tweaks, query quality.

    python bench/pipeline_bench.py [--datasets ../shared/datasets] [--splits 100] [--boot 200] [--json]

Photos: the three labelled folders of ../shared/datasets pooled (identities that recur across
folders merged: deepface person02 = Jennifer_Aniston, person12 = Leonardo_DiCaprio,
face_recognition Barack_Obama = glint Barack_Obama), and glint_dev12 alone. Every photo goes
through the product path once (`images.decode_image`, `faces.analyze`: YuNet with its padded
retry, SFace alignCrop, `quality.assess`, SFace embedding); its largest face is the photo's face.
Variants re-use that detection and differ only where named:

- baseline: what `analyze` returns today.
- flip_mean / flip_sum: the horizontally flipped chip is embedded too; the two embeddings are
  averaged after L2-normalising each (mean) or summed raw (sum), then L2-normalised.
- own_align: own similarity transform to the ArcFace 112x112 five-point template
  (cv2.estimateAffinePartial2D, LMEDS) + warpAffine, instead of SFace's alignCrop.
- antialias: as own_align, but a face larger than the chip is first shrunk with INTER_AREA
  (warpAffine's bilinear sampling aliases when it shrinks a 400 px face to 112 px).
- pad_detect: detection always on a copy with a 50% border (tight crops such as glint's).
- antialias+flip: both.

Scores (same code as `facefind evaluate`: facefind.evaluate.tar_at_far / equal_error_rate /
threshold_at_fpir; a photo without a face scores below every threshold):
- verification over all pairs: TAR at FMR 1e-3 and 1e-4, EER; 95% identity-level bootstrap
  intervals of each variant's TAR difference to baseline (identities resampled with replacement,
  genuine pairs weighted by the identity's count, impostor pairs by the product of the two);
- open-set identification over --splits random splits: half the identities enrolled with all
  but a third of their photos, the held-out third probe as mated, the other identities' photos
  as non-mated; FNIR at FPIR 0.01 and 0.1 (mated probe whose top-1 is another identity or under
  the threshold giving that FPIR on the non-mated probes), mean over splits, the mean paired
  difference to baseline and in how many splits the variant was better / worse;
- embedding cost: ms per face of what the variant adds after detection (align + forward passes),
  one OpenCV thread.

Query quality: probes of the open-set splits by quality band (FNIR / FPIR at the threshold set
on all non-mated probes), refuse rules (share refused vs FNIR / FPIR of the rest), and probes
degraded synthetically (faces downscaled to 16/24/32/48 px; Gaussian blur of sigma 1-4 chip
pixels) against the undegraded gallery and threshold, to see where recognition breaks and which
reasons `faces.quality.warnings` would give.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import machine
from facefind import evaluate as ev
from facefind.faces import Detection, analyze, load_backend
from facefind.faces.opencv import OpenCVBackend
from facefind.images import decode_image, is_image_path
from facefind.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("glint_dev12", "deepface", "face_recognition")
SAME_PERSON = {
    ("deepface", "person02"): "Jennifer_Aniston",
    ("deepface", "person12"): "Leonardo_DiCaprio",
    ("face_recognition", "Barack_Obama"): "Barack_Obama",
}
ARCFACE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)
CHIP = 112
VARIANTS = ("baseline", "flip_mean", "flip_sum", "own_align", "antialias", "antialias+flip", "pad_detect")
FMRS = (1e-3, 1e-4)
FPIRS = (0.01, 0.1)
# Degradations of probes: ("size", face px) or ("blur", Gaussian sigma in chip pixels).
DEGRADE = (
    ("size", 16),
    ("size", 24),
    ("size", 32),
    ("size", 48),
    ("blur", 1),
    ("blur", 2),
    ("blur", 3),
    ("blur", 4),
)
DEGRADE_PER_GLINT_ID = 12  # glint photos per identity degraded (all web photos are)
FLIPPED: OpenCVBackend | None = None  # Settings(flip_average=True), checked on a few photos


@dataclass
class Photo:
    path: str
    label: str
    folder: str
    detected: bool = False
    quality: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # size, sharpness, yaw, score
    eye_px: float = 0.0
    raw: dict[str, np.ndarray] = field(default_factory=dict)  # un-normalised SFace features
    ms: Counter = field(default_factory=Counter)


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


# --- alignment variants ---------------------------------------------------------------------
def similarity_to_template(landmarks: np.ndarray) -> np.ndarray:
    matrix, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), ARCFACE, method=cv2.LMEDS)
    return matrix


def own_align(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(image, similarity_to_template(landmarks), (CHIP, CHIP))


def antialias_align(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Shrink the region the chip comes from to chip scale with INTER_AREA, then warp."""
    matrix = similarity_to_template(landmarks)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale >= 0.8:  # the face is about chip size or smaller: nothing to antialias
        return cv2.warpAffine(image, matrix, (CHIP, CHIP))
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [CHIP, 0, 1], [0, CHIP, 1], [CHIP, CHIP, 1]], np.float32) @ inverse.T
    h, w = image.shape[:2]
    x0, y0 = (max(0, int(np.floor(v)) - 2) for v in corners.min(0))
    x1, y1 = min(w, int(np.ceil(corners[:, 0].max())) + 2), min(h, int(np.ceil(corners[:, 1].max())) + 2)
    roi = image[y0:y1, x0:x1]
    small = cv2.resize(
        roi,
        (max(1, round(roi.shape[1] * scale)), max(1, round(roi.shape[0] * scale))),
        interpolation=cv2.INTER_AREA,
    )
    sx, sy = small.shape[1] / roi.shape[1], small.shape[0] / roi.shape[0]
    moved = (landmarks - np.array([x0, y0], np.float32)) * np.array([sx, sy], np.float32)
    return cv2.warpAffine(small, similarity_to_template(moved), (CHIP, CHIP))


def padded_detection(backend: OpenCVBackend, image: np.ndarray, settings: Settings) -> Detection | None:
    rows = backend._detect_rows(image, settings.detect_max_side, pad=0.5)
    if len(rows) == 0:
        return None
    r = rows[int(np.argmax(rows[:, 2] * rows[:, 3]))]
    return Detection(
        (float(r[0]), float(r[1]), float(r[2]), float(r[3])), r[4:14].reshape(5, 2).copy(), float(r[14])
    )


# --- extraction -----------------------------------------------------------------------------
def list_photos(datasets: Path) -> list[Photo]:
    photos = []
    for folder in FOLDERS:
        for person in sorted(p for p in (datasets / folder).iterdir() if p.is_dir()):
            for path in sorted(person.rglob("*")):
                if is_image_path(path):
                    label = SAME_PERSON.get(
                        (folder, person.name),
                        person.name if folder == "glint_dev12" else f"{folder}/{person.name}",
                    )
                    photos.append(Photo(str(path), label, folder))
    return photos


def timed(ms: Counter, key: str, fn, *args):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn(*args)
    ms[key] += 1000 * (time.perf_counter() - t)
    return out


def raw_feature(backend: OpenCVBackend, chip: np.ndarray) -> np.ndarray:
    """SFace's vector of one chip, before normalisation."""
    return backend._features([chip])


def extract(photo: Photo, backend: OpenCVBackend, settings: Settings) -> None:
    image = decode_image(Path(photo.path).read_bytes(), settings, name=photo.path)
    feature = partial(raw_feature, backend)
    faces = analyze(backend, image, settings)
    pad = timed(photo.ms, "pad_detect", padded_detection, backend, image, settings)
    if pad is not None:
        chip = timed(photo.ms, "pad_detect", backend.align, image, pad)
        photo.raw["pad_detect"] = timed(photo.ms, "pad_detect", feature, chip).ravel().copy()
    if not faces:
        return
    face = faces[0]
    det = face.detection
    photo.detected = True
    q = face.quality
    photo.quality = (q.size_px, q.sharpness, q.yaw, q.score)
    photo.eye_px = float(np.linalg.norm(det.landmarks[1] - det.landmarks[0]))
    chip = timed(photo.ms, "align", backend.align, image, det)
    photo.raw["base"] = timed(photo.ms, "forward", feature, chip).ravel().copy()
    assert float(unit(photo.raw["base"]) @ face.embedding) > 0.9999, "bench path differs from analyze()"
    flipped = timed(photo.ms, "flip", cv2.flip, chip, 1)
    photo.raw["flip"] = timed(photo.ms, "forward_flip", feature, flipped).ravel().copy()
    if FLIPPED is not None:  # the product's flip_average path gives the flip_mean variant
        product = FLIPPED.embed([chip])[0]
        assert float(product @ unit(unit(photo.raw["base"]) + unit(photo.raw["flip"]))) > 0.9999
    own = timed(photo.ms, "own_align", own_align, image, det.landmarks)
    photo.raw["own"] = feature(own).ravel().copy()
    aa = timed(photo.ms, "antialias", antialias_align, image, det.landmarks)
    photo.raw["aa"] = feature(aa).ravel().copy()
    photo.raw["aa_flip"] = feature(cv2.flip(aa, 1)).ravel().copy()


def embeddings(photos: list[Photo], variant: str) -> tuple[np.ndarray, np.ndarray]:
    """(L2-normalised embeddings, detected) of one variant; failures are zero rows."""
    emb = np.zeros((len(photos), 128), np.float32)
    ok = np.zeros(len(photos), bool)
    for i, p in enumerate(photos):
        r = p.raw
        if variant == "pad_detect":
            if "pad_detect" in r:
                emb[i], ok[i] = unit(r["pad_detect"]), True
            continue
        if not p.detected:
            continue
        ok[i] = True
        if variant == "baseline":
            emb[i] = unit(r["base"])
        elif variant == "flip_mean":
            emb[i] = unit(unit(r["base"]) + unit(r["flip"]))
        elif variant == "flip_sum":
            emb[i] = unit(r["base"] + r["flip"])
        elif variant == "own_align":
            emb[i] = unit(r["own"])
        elif variant == "antialias":
            emb[i] = unit(r["aa"])
        elif variant == "antialias+flip":
            emb[i] = unit(unit(r["aa"]) + unit(r["aa_flip"]))
        else:
            raise ValueError(variant)
    return emb, ok


def cost_ms(photos: list[Photo], variant: str) -> float:
    """Mean ms per face of what the variant does after detection (alignment + forward passes)."""
    done = [p for p in photos if p.detected]
    base = np.mean([p.ms["align"] + p.ms["forward"] for p in done])
    flip = np.mean([p.ms["flip"] + p.ms["forward_flip"] for p in done])
    fwd = np.mean([p.ms["forward"] for p in done])
    costs = {
        "baseline": base,
        "flip_mean": base + flip,
        "flip_sum": base + flip,
        "own_align": np.mean([p.ms["own_align"] for p in done]) + fwd,
        "antialias": np.mean([p.ms["antialias"] for p in done]) + fwd,
        "antialias+flip": np.mean([p.ms["antialias"] for p in done]) + fwd + flip,
        # the padded detection replaces nothing in this bench; its extra cost is the detection
        "pad_detect": np.mean([p.ms["pad_detect"] for p in photos if "pad_detect" in p.raw]),
    }
    return round(float(costs[variant]), 2)


def degrade(image: np.ndarray, photo: Photo, kind: str, level: float) -> np.ndarray | None:
    if kind == "size":
        scale = level / photo.quality[0]
        if scale >= 1:
            return None  # already that small
        h, w = image.shape[:2]
        return cv2.resize(
            image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    sigma = level * photo.eye_px / (ARCFACE[1, 0] - ARCFACE[0, 0])  # chip pixels -> image pixels
    return cv2.GaussianBlur(image, (0, 0), sigma)


@dataclass
class Probe:
    """One probe image: a photo as it is ("none") or degraded; the face analyze() found in it."""

    photo: int
    kind: str
    level: float
    detected: bool
    quality: tuple[float, float, float, float]  # size, sharpness, yaw, score
    base: np.ndarray
    flip: np.ndarray


def degraded_probes(photos: list[Photo], backend: OpenCVBackend, settings: Settings, rng) -> list[Probe]:  # type: ignore[no-untyped-def]
    chosen = [i for i, p in enumerate(photos) if p.folder != "glint_dev12" and p.detected]
    for label in sorted({p.label for p in photos if p.folder == "glint_dev12"}):
        members = [
            i for i, p in enumerate(photos) if p.label == label and p.folder == "glint_dev12" and p.detected
        ]
        chosen += sorted(rng.choice(members, min(DEGRADE_PER_GLINT_ID, len(members)), replace=False).tolist())
    feature = partial(raw_feature, backend)
    out = []
    for i in chosen:
        image = decode_image(Path(photos[i].path).read_bytes(), settings, name=photos[i].path)
        for kind, level in DEGRADE:
            worse = degrade(image, photos[i], kind, level)
            if worse is None:
                continue
            faces = analyze(backend, worse, settings)
            if not faces:
                out.append(
                    Probe(
                        i,
                        kind,
                        level,
                        False,
                        (0.0, 0.0, 0.0, 0.0),
                        np.zeros(128, np.float32),
                        np.zeros(128, np.float32),
                    )
                )
                continue
            f = faces[0]
            flipped = unit(feature(cv2.flip(backend.align(worse, f.detection), 1)).ravel())
            q = f.quality
            out.append(
                Probe(
                    i,
                    kind,
                    level,
                    True,
                    (q.size_px, q.sharpness, q.yaw, q.score),
                    f.embedding,
                    unit(f.embedding + flipped),
                )
            )
    return out


# --- verification ---------------------------------------------------------------------------
def verification(name: str, photos: list[Photo], emb: np.ndarray, ok: np.ndarray) -> tuple[dict, dict]:
    labelled = ev.LabelledSet(Path(name), [p.path for p in photos], [p.label for p in photos], emb, ok)
    scores, first, second = labelled.pairs()
    ids = np.unique(labelled.labels, return_inverse=True)[1]
    a, b = ids[first], ids[second]
    same = a == b
    genuine, impostor = scores[same], scores[~same]
    out: dict = {}
    for fmr in FMRS:
        out[f"tar_at_fmr_{fmr:g}"] = round(ev.tar_at_far(genuine, impostor, fmr)[0] or float("nan"), 4)
    out["eer"] = round(ev.equal_error_rate(genuine, impostor), 4)
    order = np.argsort(-impostor, kind="stable")
    boot = {
        "gen": genuine,
        "gen_id": a[same],
        "imp": impostor[order],
        "imp_a": a[~same][order],
        "imp_b": b[~same][order],
    }
    return out, boot


def weighted_tars(boot: dict, w: np.ndarray) -> dict[float, float]:
    """TAR at each FMR with identity weights `w` (as ev.tar_at_far when all weights are 1)."""
    cum = np.cumsum(w[boot["imp_a"]] * w[boot["imp_b"]])
    gen_w = w[boot["gen_id"]]
    out = {}
    for fmr in FMRS:
        k = min(int(np.searchsorted(cum, np.floor(fmr * cum[-1]), side="right")), len(cum) - 1)
        threshold = np.nextafter(boot["imp"][k], np.float32(np.inf))
        out[fmr] = float(gen_w[boot["gen"] >= threshold].sum() / gen_w.sum())
    return out


def bootstrap_differences(boots: dict[str, dict], identities: int, rounds: int, seed: int) -> dict:
    """95% interval of (variant - baseline) TAR, identities resampled with replacement."""
    rng = np.random.default_rng(seed)
    diffs: dict[str, dict[float, list[float]]] = {v: {f: [] for f in FMRS} for v in boots if v != "baseline"}
    for _ in range(rounds):
        w = np.bincount(rng.integers(0, identities, identities), minlength=identities)
        base = weighted_tars(boots["baseline"], w)
        for v in diffs:
            tars = weighted_tars(boots[v], w)
            for f in FMRS:
                diffs[v][f].append(tars[f] - base[f])
    return {
        v: {
            f"d_tar_at_fmr_{f:g}_ci95": [round(float(x), 4) for x in np.percentile(d[f], [2.5, 97.5])]
            for f in FMRS
        }
        for v, d in diffs.items()
    }


# --- open-set identification ----------------------------------------------------------------
def splits(labels: np.ndarray, n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(gallery, mated, non_mated) photo indices of n random leave-identities-out splits."""
    rng = np.random.default_rng(seed)
    identities = np.unique(labels)
    out = []
    for _ in range(n):
        enrolled = rng.permutation(identities)[: len(identities) // 2]
        gallery: list[int] = []
        mated: list[int] = []
        for person in enrolled:
            members = rng.permutation(np.flatnonzero(labels == person))
            held = len(members) // 3 if len(members) >= 3 else 0
            mated += members[:held].tolist()
            gallery += members[held:].tolist()
        non_mated = np.flatnonzero(~np.isin(labels, enrolled))
        out.append((np.array(gallery), np.array(mated), non_mated))
    return out


def top1(queries: np.ndarray, q_ok: np.ndarray, gallery: np.ndarray, g_labels: np.ndarray):  # type: ignore[no-untyped-def]
    sims = queries @ gallery.T
    best = sims.argmax(axis=1)
    scores = sims[np.arange(len(queries)), best]
    scores[~q_ok] = ev.NO_FACE
    return scores, g_labels[best]


def open_set(labels: np.ndarray, emb: np.ndarray, ok: np.ndarray, parts: list) -> dict[float, np.ndarray]:  # type: ignore[type-arg]
    """FNIR at each FPIR, one value per split."""
    fnir: dict[float, list[float]] = {f: [] for f in FPIRS}
    for gallery, mated, non_mated in parts:
        g = gallery[ok[gallery]]
        m_scores, m_names = top1(emb[mated], ok[mated], emb[g], labels[g])
        n_scores, _ = top1(emb[non_mated], ok[non_mated], emb[g], labels[g])
        hit = (m_names == labels[mated]) & ok[mated]
        for f in FPIRS:
            threshold = ev.threshold_at_fpir(n_scores, f)
            fnir[f].append(float(1 - (hit & (m_scores >= threshold)).mean()))
    return {f: np.array(v) for f, v in fnir.items()}


# --- query quality ----------------------------------------------------------------------------
def probe_outcomes(photos: list[Photo], probes: list[Probe], systems: dict, parts: list) -> dict:  # type: ignore[type-arg]
    """Per probe row, over the splits: times it probed as mated / non-mated, misses, false alarms.

    The threshold of each split and FPIR is the one the undegraded non-mated probes give, so a
    degraded probe is judged at the operating point an operator calibrated on good photos.
    """
    labels = np.array([p.label for p in photos])
    photo_of = np.array([r.photo for r in probes])
    p_ok = np.array([r.detected for r in probes])
    p_emb = {
        "baseline": np.vstack([r.base for r in probes]),
        "flip_mean": np.vstack([r.flip for r in probes]),
    }
    out: dict = {"mated": np.zeros(len(probes)), "non_mated": np.zeros(len(probes))}
    for system in systems:
        for f in FPIRS:
            out[system, "miss", f] = np.zeros(len(probes))
            out[system, "false_alarm", f] = np.zeros(len(probes))
    for gallery, mated, non_mated in parts:
        role = np.zeros(len(photos), np.int8)
        role[mated], role[non_mated] = 1, 2
        r = role[photo_of]
        out["mated"] += r == 1
        out["non_mated"] += r == 2
        for system, (emb, ok) in systems.items():
            g = gallery[ok[gallery]]
            n_scores, _ = top1(emb[non_mated], ok[non_mated], emb[g], labels[g])
            scores, names = top1(p_emb[system], p_ok, emb[g], labels[g])
            right = names == labels[photo_of]
            for f in FPIRS:
                passes = scores >= ev.threshold_at_fpir(n_scores, f)
                out[system, "miss", f] += (r == 1) & ~(passes & right)
                out[system, "false_alarm", f] += (r == 2) & passes
    return out


def rates(outcomes: dict, rows: np.ndarray, system: str = "baseline") -> dict:
    mated, non_mated = outcomes["mated"][rows].sum(), outcomes["non_mated"][rows].sum()
    out = {"mated_trials": int(mated), "non_mated_trials": int(non_mated)}
    for f in FPIRS:
        out[f"fnir@{f:g}"] = (
            round(float(outcomes[system, "miss", f][rows].sum() / mated), 4) if mated else None
        )
        out[f"fpir@{f:g}"] = (
            round(float(outcomes[system, "false_alarm", f][rows].sum() / non_mated), 4) if non_mated else None
        )
    return out


def quality_report(photos: list[Photo], probes: list[Probe], outcomes: dict, settings: Settings) -> dict:
    from facefind.faces.quality import Quality, warnings

    q = np.array([r.quality for r in probes])
    det = np.array([r.detected for r in probes])
    kinds = [(r.kind, r.level) for r in probes]
    reasons = [warnings(Quality(*r.quality), settings) if r.detected else ["no face found"] for r in probes]
    warned = np.array([bool(x) for x in reasons])
    out: dict = {"levels": {}, "bins": {}, "rules": {}}
    for kind, level in [("none", 0), *DEGRADE]:
        rows = np.array([k == (kind, level) for k in kinds])
        if not rows.any():
            continue
        d = rows & det
        counts = Counter(
            "too small" if reason.startswith("face is") else reason.split(" (")[0]
            for i in np.flatnonzero(rows)
            for reason in reasons[i]
        )
        out["levels"][f"{kind} {level:g}" if kind != "none" else "as is"] = {
            "probes": int(rows.sum()),
            "no_face": round(float(1 - det[rows].mean()), 3),
            "median_size_px": round(float(np.median(q[d, 0])), 1) if d.any() else None,
            "median_sharpness": round(float(np.median(q[d, 1])), 1) if d.any() else None,
            "median_quality": round(float(np.median(q[d, 3])), 3) if d.any() else None,
            "warned": round(float(warned[rows].mean()), 3),
            "reasons": {k: round(v / rows.sum(), 3) for k, v in counts.most_common()},
            "baseline": rates(outcomes, rows),
            "flip_mean": rates(outcomes, rows, "flip_mean"),
        }
    real = np.array([k[0] == "none" for k in kinds])
    # Each term on its own: size among faces that are not blurred, sharpness among faces of 48 px
    # and more, yaw on the real photos (it cannot be degraded synthetically), the score on all.
    bins = {
        "size_px (sharpness >= 20)": (0, [0, 16, 20, 24, 28, 32, 40, 48, 64, 1e9], q[:, 1] >= 20),
        "sharpness (size >= 48 px)": (1, [0, 3, 5, 7, 10, 15, 20, 40, 80, 1e9], q[:, 0] >= 48),
        "yaw (real photos)": (2, [0, 0.15, 0.3, 0.45, 0.6, 9], real),
        "quality score": (3, [0, 0.25, 0.5, 0.75, 1.01], np.ones(len(probes), bool)),
    }
    for name, (col, edges, among) in bins.items():
        out["bins"][name] = {}
        for lo, hi in itertools.pairwise(edges):
            rows = det & among & (q[:, col] >= lo) & (q[:, col] < hi)
            if rows.any():
                out["bins"][name][f"[{lo:g}, {hi:g})"] = {"probes": int(rows.sum()), **rates(outcomes, rows)}
    rules = {
        "none": np.zeros(len(probes), bool),
        f"quality < {settings.min_quality:g} (today's search minimum)": det
        & (q[:, 3] < settings.min_quality),
        "quality < 0.5": det & (q[:, 3] < 0.5),
        f"size < {settings.warn_face_px} px": det & (q[:, 0] < settings.warn_face_px),
        f"sharpness < {settings.warn_sharpness:g}": det & (q[:, 1] < settings.warn_sharpness),
        f"yaw > {settings.warn_yaw:g}": det & (q[:, 2] > settings.warn_yaw),
        "warnings() non-empty (any of the three)": det & warned,
    }
    for population, pop in (("real photos", real), ("real + degraded", np.ones(len(probes), bool))):
        out["rules"][population] = {}
        for name, refused in rules.items():
            kept = pop & ~refused
            out["rules"][population][name] = {
                "refused": round(float((pop & refused).sum() / pop.sum()), 4),
                **rates(outcomes, kept),
            }
    return out


# --- main -----------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict:
    cv2.setNumThreads(1)
    settings = Settings()
    backend = load_backend(settings)
    assert isinstance(backend, OpenCVBackend)
    t0 = time.perf_counter()
    if args.cache and args.cache.exists():  # embeddings of an earlier run (development only)
        with args.cache.open("rb") as f:
            photos, probes = pickle.load(f)
    else:
        photos = list_photos(args.datasets)
        global FLIPPED
        for n, photo in enumerate(photos, 1):
            FLIPPED = OpenCVBackend(Settings(flip_average=True)) if n % 100 == 1 else None
            extract(photo, backend, settings)
            if n % 200 == 0:
                print(
                    f"embedded {n}/{len(photos)} photos ({time.perf_counter() - t0:.0f} s)", file=sys.stderr
                )
        probes = [
            Probe(
                i,
                "none",
                0,
                p.detected,
                p.quality,
                *(embeddings(photos, v)[0][i] for v in ("baseline", "flip_mean")),
            )
            for i, p in enumerate(photos)
        ]
        t1 = time.perf_counter()
        probes += degraded_probes(photos, backend, settings, np.random.default_rng(args.seed))
        print(
            f"degraded probes: {len(probes) - len(photos)} ({time.perf_counter() - t1:.0f} s)",
            file=sys.stderr,
        )
        if args.cache:
            with args.cache.open("wb") as f:
                pickle.dump((photos, probes), f)
    result: dict = {"machine": machine.describe(), "splits": args.splits, "bootstrap": args.boot, "sets": {}}
    for name, keep in (
        ("pooled", lambda p: True),
        ("glint_dev12", lambda p: p.folder == "glint_dev12"),
        ("web photos", lambda p: p.folder != "glint_dev12"),
    ):
        subset = [p for p in photos if keep(p)]
        labels = np.array([p.label for p in subset])
        parts = splits(labels, args.splits, args.seed)
        rows: dict = {}
        boots: dict = {}
        per_split: dict = {}
        for variant in VARIANTS:
            emb, ok = embeddings(subset, variant)
            rows[variant], boots[variant] = verification(name, subset, emb, ok)
            rows[variant]["failures_to_detect"] = int((~ok).sum())
            per_split[variant] = open_set(labels, emb, ok, parts)
            for f in FPIRS:
                rows[variant][f"fnir_at_fpir_{f:g}"] = round(float(per_split[variant][f].mean()), 4)
            rows[variant]["embed_ms_per_face"] = cost_ms(subset, variant)
        if name != "web photos":  # 84 photos: too few pairs for FMR 1e-4 and for a bootstrap
            cis = bootstrap_differences(boots, len(np.unique(labels)), args.boot, args.seed)
            for variant, ci in cis.items():
                rows[variant].update(ci)
        for variant in VARIANTS[1:]:
            for f in FPIRS:
                d = per_split[variant][f] - per_split["baseline"][f]
                rows[variant][f"d_fnir_at_fpir_{f:g}"] = {
                    "mean": round(float(d.mean()), 4),
                    "better_splits": int((d < 0).sum()),
                    "worse_splits": int((d > 0).sum()),
                }
        result["sets"][name] = {"photos": len(subset), "identities": len(np.unique(labels)), "variants": rows}
        print(f"{name} scored ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    labels = np.array([p.label for p in photos])
    parts = splits(labels, args.splits, args.seed)
    systems = {v: embeddings(photos, v) for v in ("baseline", "flip_mean")}
    outcomes = probe_outcomes(photos, probes, systems, parts)
    result["quality"] = quality_report(photos, probes, outcomes, settings)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def print_table(result: dict) -> None:
    print(f"machine: {result['machine']}  ({result['seconds']} s)")
    cols = (
        "failures_to_detect",
        "tar_at_fmr_0.001",
        "tar_at_fmr_0.0001",
        "eer",
        "fnir_at_fpir_0.01",
        "fnir_at_fpir_0.1",
        "embed_ms_per_face",
    )
    for name, s in result["sets"].items():
        print(f"\n{name}: {s['photos']} photos, {s['identities']} identities")
        print(f"{'variant':16} " + " ".join(f"{c[:18]:>18}" for c in cols))
        for variant, row in s["variants"].items():
            print(f"{variant:16} " + " ".join(f"{row.get(c)!s:>18}" for c in cols))
        for variant, row in s["variants"].items():
            if variant == "baseline":
                continue
            extra = {k: v for k, v in row.items() if k.startswith("d_")}
            print(f"  {variant:14} {extra}")
    q = result["quality"]
    print("\nprobes by degradation (threshold set on undegraded non-mated probes of each split):")
    for level, row in q["levels"].items():
        b, f = row["baseline"], row["flip_mean"]
        print(
            f"  {level:8} n={row['probes']:5} no_face={row['no_face']:.3f} size={row['median_size_px']} "
            f"sharp={row['median_sharpness']} q={row['median_quality']} warned={row['warned']:.3f} "
            f"FNIR@.01={b['fnir@0.01']} FPIR@.01={b['fpir@0.01']} "
            f"FNIR@.1={b['fnir@0.1']} FPIR@.1={b['fpir@0.1']} "
            f"flip FNIR@.01={f['fnir@0.01']} reasons={row['reasons']}"
        )
    for name, bins in q["bins"].items():
        print(f"\nprobes (real + degraded, detected) by {name}:")
        for band, row in bins.items():
            print(
                f"  {band:14} n={row['probes']:5} "
                + " ".join(f"{k}={row[k]}" for k in ("fnir@0.01", "fpir@0.01", "fnir@0.1", "fpir@0.1"))
            )
    for population, rules in q["rules"].items():
        print(f"\nrefuse rules on {population}:")
        for name, row in rules.items():
            print(
                f"  {name:45} refused={row['refused']:.4f} "
                + " ".join(f"{k}={row[k]}" for k in ("fnir@0.01", "fpir@0.01", "fnir@0.1", "fpir@0.1"))
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--boot", type=int, default=200, help="identity bootstrap rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, help="keep embeddings here between runs (never commit it)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("FACEFIND_MODELS", str(ROOT.parent / "shared" / "models"))
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2, default=float))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
