"""Fewer misses at the same FPIR (issue 22, item 3), measured on ../shared/datasets/lfw_dev.

    python bench/fnir_bench.py [--cache /tmp/facefind-lfw-cache] [--json]

Issue 22's open-set protocol (evaluate.first_photo_split: gallery = every photo but the first of
each person with 2+ photos, mated probes = those first photos, strangers = people with one photo;
the labelled face is the one nearest the centre), facefind's shipped calibration. Every variant is
reported at the stated FPIR 0.01 (the threshold search uses at that gallery size) and at the
measured FPIR 0.01 (the threshold that really lets 1% of strangers through), with counts and 95%
Wilson intervals:

1. person templates: the gallery clustered as facefind does (people/clustering.py at the
   Settings.people_max_fmr threshold, not the labels); each person of 2+ faces fused (mean of unit
   vectors, or quality-weighted) and searched beside the single faces. Templates get their own
   calibration: template-vs-photo scores of different people, measured in two halves of the people
   (templates of one half against photos of the other), so the stated FPIR of a template match is
   not read off the single-face table.
2. several query photos: people with 3+ photos probe with their first two (gallery = the rest),
   people with exactly two photos are the strangers (both photos), fused by mean embedding, by
   mean score or by max score, against one photo (the first) on the same gallery.
3. the pipeline on LFW's small faces (~68 px in 150 px photos): flip averaging, upscaling the photo
   2x (bicubic) before detection and alignment, both; and query quality rules (size, quality score).
   These re-embed every photo once (cached in --cache/variants-everyN.npz, ~8 min on 2 quiet cores;
   --people-every N runs them on every N-th person only, the same protocol on fewer people).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from facefind import evaluate as ev
from facefind.faces import load_backend
from facefind.faces.quality import assess
from facefind.images import load_image
from facefind.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("base", "flip", "up2", "up2_flip")
_BACKEND = None


def _centre(detections: list, shape: tuple[int, int]) -> int | None:
    if not detections:
        return None
    cy, cx = shape[0] / 2, shape[1] / 2
    return min(
        range(len(detections)),
        key=lambda i: (
            (detections[i].box[0] + detections[i].box[2] / 2 - cx) ** 2
            + (detections[i].box[1] + detections[i].box[3] / 2 - cy) ** 2
        ),
    )


def _embed_variants(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(4 x dim embeddings, 4 detected flags, [size px, sharpness, yaw, quality]) of the labelled face."""
    global _BACKEND
    if _BACKEND is None:
        _BACKEND = load_backend(Settings())
    backend = _BACKEND
    out = np.zeros((4, backend.dim), np.float32)
    found = np.zeros(4, bool)
    quality = np.full(4, np.nan)
    image = load_image(Path(path))
    for scale, first in ((1, 0), (2, 2)):
        im = image if scale == 1 else cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        detections = backend.detect(im)
        at = _centre(detections, im.shape[:2])
        if at is None:
            continue
        chip = backend.align(im, detections[at])
        plain, mirrored = backend.embed([chip, cv2.flip(chip, 1)])
        out[first] = plain
        flip = plain + mirrored
        out[first + 1] = flip / np.linalg.norm(flip)
        found[first : first + 2] = True
        if scale == 1:
            q = assess(detections[at], chip)
            quality[:] = (q.size_px, q.sharpness, q.yaw, q.score)
    return out, found, quality


def _embed_indexed(item: tuple[int, str]) -> tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return item[0], _embed_variants(item[1])


# --- scoring ------------------------------------------------------------------------------------


def _rates(fp: int, strangers: int, misses: int, mated: int) -> dict:
    return {
        "fpir": round(fp / strangers, 4),
        "fpir_ci95": [round(x, 4) for x in ev.wilson_interval(fp, strangers)],
        "false_positives": fp,
        "fnir": round(misses / mated, 4),
        "fnir_ci95": [round(x, 4) for x in ev.wilson_interval(misses, mated)],
        "misses": misses,
    }


def _decide(
    matches: Callable[[float], tuple[np.ndarray, np.ndarray, np.ndarray]], strangers: int, mated: int
) -> dict:
    """`matches(budget)` -> (stranger matched, mated matched, mated matched the right person), bool
    arrays, for a stated FPIR budget. Reported at the stated 0.01 and at the largest budget whose
    measured FPIR is still <= 0.01 (a grid of budgets: monotone decisions)."""
    out: dict = {}
    s, m, right = matches(0.01)
    out["stated_0.01"] = _rates(int(s.sum()), strangers, int(mated - (m & right).sum()), mated)
    best = None
    for budget in np.geomspace(1e-4, 0.5, 140):
        s, m, right = matches(float(budget))
        if s.sum() / strangers > 0.01:
            break
        best = (float(budget), s, m, right)
    if best is not None:
        budget, s, m, right = best
        out["measured_0.01"] = {
            "budget": round(budget, 5),
            **_rates(int(s.sum()), strangers, int(mated - (m & right).sum()), mated),
        }
    return out


def _top1(queries: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sims = queries @ targets.T
    at = sims.argmax(1)
    return sims[np.arange(len(at)), at], at


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cluster_templates(
    embeddings: np.ndarray, threshold: float, weights: np.ndarray | None = None, min_faces: int = 2
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Persons as facefind's clustering forms them (not the labels); (unit templates, members)."""
    from facefind.people.clustering import chinese_whispers, threshold_graph

    labels = chinese_whispers(threshold_graph(embeddings, threshold, 60))
    members = [np.flatnonzero(labels == x) for x in np.unique(labels)]
    members = [m for m in members if len(m) >= min_faces]
    w = np.ones(len(embeddings)) if weights is None else weights
    templates = (
        np.stack([(embeddings[m] * w[m, None]).sum(0) for m in members])
        if members
        else np.zeros((0, embeddings.shape[1]))
    )
    return _unit(templates.astype(np.float32)), members


def template_calibration(
    labelled: ev.LabelledSet,
    people: set[str],
    threshold: float,
    model_id: str,
    weights: np.ndarray | None = None,
):
    """Template-vs-photo scores of different people: `people` halved by name; the photos of one half
    clustered into templates and scored against every photo of the other half, both ways."""
    from facefind.calibration import Calibration

    names = sorted(people)
    halves = [set(names[0::2]), set(names[1::2])]
    ok = labelled.detected
    persons = np.asarray(labelled.persons)
    scores, genuine = [], 0
    for mine, theirs in (halves, halves[::-1]):
        own = np.flatnonzero(ok & np.isin(persons, list(mine)))
        other = np.flatnonzero(ok & np.isin(persons, list(theirs)))
        templates, members = cluster_templates(
            labelled.embeddings[own], threshold, None if weights is None else weights[own]
        )
        scores.append((labelled.embeddings[other] @ templates.T).ravel())
        genuine += sum(len(m) for m in members)
    impostor = np.concatenate(scores)
    rng = np.random.default_rng(0)
    resamples = [rng.choice(impostor, len(impostor)) for _ in range(20)]
    return Calibration.from_scores(
        model_id, impostor, genuine, f"templates vs photos of {len(names)} other people", resamples
    )


def templates_experiment(
    labelled: ev.LabelledSet, shipped, settings: Settings, quality: np.ndarray | None
) -> dict:
    """Person templates beside single faces; strangers of half the people (by name) are held out
    from the template calibration, which is made from the other half's people."""
    split = ev.first_photo_split(labelled)
    assert split is not None
    persons = np.asarray(labelled.persons)
    names = sorted(set(persons[split.non_mated]) | set(persons[split.mated]))
    calib_people = set(names[0::2])
    held_out = np.asarray([persons[i] not in calib_people for i in split.non_mated])
    strangers = split.non_mated[held_out & labelled.detected[split.non_mated]]
    n_strangers = int(held_out.sum())  # probes without a face never match: they count as strangers
    mated = split.mated
    E, G = labelled.embeddings, split.gallery
    threshold = shipped.threshold(settings.people_max_fmr)
    out: dict = {"held_out_strangers": n_strangers, "mated_probes": len(mated), "gallery_faces": len(G)}

    f_s, _ = _top1(E[strangers], E[G])
    f_m, f_at = _top1(E[mated], E[G])
    f_m[~labelled.detected[mated]] = -np.inf
    f_right = persons[G[f_at]] == persons[mated]

    def face_only(budget: float):
        t = shipped.threshold_for_fpir(budget, len(G))
        return f_s >= t, f_m >= t, f_right

    out["faces only (today)"] = _decide(face_only, n_strangers, len(mated))
    for kind in ("mean", "quality") if quality is not None else ("mean",):
        weights = None if kind == "mean" else np.nan_to_num(quality, nan=0.0) + 1e-3
        tcal = template_calibration(labelled, calib_people, threshold, shipped.model_id, weights)
        templates, members = cluster_templates(E[G], threshold, None if weights is None else weights[G])
        majority = np.asarray(
            [max(sorted(set(persons[G[m]])), key=list(persons[G[m]]).count) for m in members]
        )
        t_s, _ = _top1(E[strangers], templates)
        t_m, t_at = _top1(E[mated], templates)
        t_m[~labelled.detected[mated]] = -np.inf
        t_right = majority[t_at] == persons[mated]
        pure = np.mean([len(set(persons[G[m]])) == 1 for m in members])

        def fused(budget: float, tcal=tcal, templates=templates, t_s=t_s, t_m=t_m, t_right=t_right):
            # Bonferroni: half the budget to single faces, half to templates.
            tf = shipped.threshold_for_fpir(budget / 2, len(G))
            tt = tcal.threshold_for_fpir(budget / 2, len(templates))
            face_m, tmpl_m = f_m >= tf, t_m >= tt
            # when both pass, the more significant one (by its own calibration) names the person
            use_t = tmpl_m & (
                ~face_m
                | (
                    np.array([tcal.fmr(x) for x in t_m]) * len(templates)
                    < np.array([shipped.fmr(x) for x in f_m]) * len(G)
                )
            )
            right = np.where(use_t, t_right, f_right)
            return (f_s >= tf) | (t_s >= tt), face_m | tmpl_m, right

        def templates_only(budget: float, tcal=tcal, templates=templates, t_s=t_s, t_m=t_m, t_right=t_right):
            tt = tcal.threshold_for_fpir(budget, len(templates))
            return t_s >= tt, t_m >= tt, t_right

        out[f"templates ({kind}) only"] = {
            "templates": len(templates),
            "pure_templates": round(float(pure), 4),
            "calibration_pairs": tcal.impostor_pairs,
            "threshold_at_fpir_0.01": round(tcal.threshold_for_fpir(0.01, len(templates)), 4),
            **_decide(templates_only, n_strangers, len(mated)),
        }
        out[f"faces + templates ({kind})"] = _decide(fused, n_strangers, len(mated))
    return out


def multi_photo_experiment(labelled: ev.LabelledSet, shipped) -> dict:
    """Two query photos of one person against one. People with 3+ photos are halved by name; in each
    of the two folds one half is enrolled (every photo but the first two) and probes with its first
    two photos (mated), while the other half's first two photos and the people with exactly two
    photos are the strangers (never enrolled). Counts are pooled over both folds; every variant
    decides with the single-face calibration at its fold's gallery size."""
    persons = np.asarray(labelled.persons)
    by_person: dict[str, list[int]] = {}
    for i in sorted(range(len(labelled.paths)), key=lambda i: labelled.paths[i]):
        by_person.setdefault(persons[i], []).append(i)
    ok = labelled.detected
    E = labelled.embeddings
    three = sorted(p for p, v in by_person.items() if len(v) >= 3)
    two = [v[:2] for v in by_person.values() if len(v) == 2]
    folds = []
    for f in (0, 1):
        enrolled = three[f::2]
        G = np.asarray([i for p in enrolled for i in by_person[p][2:] if ok[i]])
        mated = np.asarray([by_person[p][:2] for p in enrolled])
        strangers = np.asarray([by_person[p][:2] for p in three[1 - f :: 2]] + two)
        folds.append((G, mated, strangers))
    out: dict = {
        "gallery_faces": [len(f[0]) for f in folds],
        "mated_queries": sum(len(f[1]) for f in folds),
        "stranger_queries": sum(len(f[2]) for f in folds),
    }

    def scores(G: np.ndarray, pairs: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
        a, b = pairs[:, 0], pairs[:, 1]
        sa, sb = E[a] @ E[G].T, E[b] @ E[G].T
        sa[~ok[a]] = -np.inf
        sb[~ok[b]] = -np.inf
        both = ok[a] & ok[b]
        if how == "first photo":
            s = sa
        elif how == "mean embedding":
            s = np.where(both[:, None], _unit(E[a] + E[b] + 1e-12) @ E[G].T, np.maximum(sa, sb))
        elif how == "mean score":
            s = np.where(both[:, None], (sa + sb) / 2, np.maximum(sa, sb))
        else:  # max score
            s = np.maximum(sa, sb)
        at = s.argmax(1)
        return s[np.arange(len(at)), at], at

    for how, share in (
        ("first photo", 1),
        ("mean embedding", 1),
        ("mean score", 1),
        ("max score", 1),
        ("max score, budget halved", 2),
    ):
        per_fold = []
        for G, mated, strangers in folds:
            s_s, _ = scores(G, strangers, how.split(",")[0])
            m_s, m_at = scores(G, mated, how.split(",")[0])
            per_fold.append((len(G), s_s, m_s, persons[G[m_at]] == persons[mated[:, 0]]))

        def decide(budget: float, per_fold=per_fold, share=share):
            parts = [
                (s_s >= (t := shipped.threshold_for_fpir(budget / share, n)), m_s >= t, right)
                for n, s_s, m_s, right in per_fold
            ]
            return tuple(np.concatenate(x) for x in zip(*parts, strict=True))

        out[how] = _decide(decide, out["stranger_queries"], out["mated_queries"])
    return out


def _variant_set(labelled: ev.LabelledSet, variants: dict, k: int) -> ev.LabelledSet:
    assert [str(p) for p in variants["paths"]] == labelled.paths, "variants.npz is of other photos"
    return ev.LabelledSet(
        labelled.root,
        labelled.paths,
        labelled.persons,
        variants["embeddings"][:, k],
        variants["detected"][:, k],
    )


def _protocol(labelled: ev.LabelledSet, calibration, keep: np.ndarray | None = None) -> dict:
    """Issue 22's protocol, the gallery limited to faces where `keep` (a quality rule) holds."""
    split = ev.first_photo_split(labelled)
    assert split is not None
    persons = np.asarray(labelled.persons)
    E = labelled.embeddings
    G = split.gallery if keep is None else split.gallery[keep[split.gallery]]
    f_s, _ = _top1(E[split.non_mated], E[G])
    f_s[~labelled.detected[split.non_mated]] = -np.inf
    f_m, at = _top1(E[split.mated], E[G])
    f_m[~labelled.detected[split.mated]] = -np.inf
    right = persons[G[at]] == persons[split.mated]

    def decide(budget: float):
        t = calibration.threshold_for_fpir(budget, len(G))
        return f_s >= t, f_m >= t, right

    return {"gallery_faces": len(G), **_decide(decide, len(split.non_mated), len(split.mated))}


def pipeline_experiment(labelled: ev.LabelledSet, variants: dict) -> dict:
    """Flip averaging and 2x upscaling on LFW's small faces, each at its own model's calibration
    (flip embeddings are the built-in model sface-2021dec-flip; upscaling keeps the model)."""
    from facefind.calibration import default_calibration

    plain, flip = default_calibration("sface-2021dec"), default_calibration("sface-2021dec-flip")
    out: dict = {}
    for k, name in enumerate(VARIANTS):
        s = _variant_set(labelled, variants, k)
        out[name] = {"no_face": int((~s.detected).sum()), **_protocol(s, flip if "flip" in name else plain)}
    return out


def quality_experiment(labelled: ev.LabelledSet, variants: dict, shipped) -> dict:
    """Query and gallery quality rules on the base embeddings: who is missed, and what excluding
    low-quality gallery faces (as search does below Settings.min_face_px / min_quality) does."""
    s = _variant_set(labelled, variants, 0)
    size, sharp, yaw, score = (variants["quality"][:, j] for j in range(4))
    split = ev.first_photo_split(s)
    assert split is not None
    out: dict = {
        "median_face_px": round(float(np.nanmedian(size)), 1),
        "faces_under_32px": int((size < 32).sum()),
        "quality_under_0.25": int((score < 0.25).sum()),
    }
    base = _protocol(s, shipped)
    threshold = shipped.threshold_for_fpir(0.01, len(split.gallery))
    hit = split.mated_hits & (split.mated_scores >= threshold)
    m = split.mated
    out["misses_by_probe"] = {
        "median_px (missed / found)": [
            round(float(np.nanmedian(size[m][~hit])), 1),
            round(float(np.nanmedian(size[m][hit])), 1),
        ],
        "median_quality (missed / found)": [
            round(float(np.nanmedian(score[m][~hit])), 3),
            round(float(np.nanmedian(score[m][hit])), 3),
        ],
        "median_sharpness (missed / found)": [
            round(float(np.nanmedian(sharp[m][~hit])), 1),
            round(float(np.nanmedian(sharp[m][hit])), 1),
        ],
        "median_yaw (missed / found)": [
            round(float(np.nanmedian(yaw[m][~hit])), 3),
            round(float(np.nanmedian(yaw[m][hit])), 3),
        ],
    }
    out["gallery: every face"] = base
    settings = Settings()
    for name, keep in (
        (
            "gallery: search's rule (32 px, quality 0.25)",
            (size >= settings.min_face_px) & (score >= settings.min_quality),
        ),
        ("gallery: quality >= 0.5", score >= 0.5),
        ("gallery: yaw < 0.6", yaw < 0.6),
    ):
        out[name] = _protocol(s, shipped, np.nan_to_num(keep, nan=False).astype(bool))
    return out


def people_subset(labelled: ev.LabelledSet, every: int) -> ev.LabelledSet:
    """Every `every`-th person by name, all their photos (the protocol stays the same)."""
    keep = set(sorted(set(labelled.persons))[::every])
    idx = [i for i, p in enumerate(labelled.persons) if p in keep]
    return ev.LabelledSet(
        labelled.root,
        [labelled.paths[i] for i in idx],
        [labelled.persons[i] for i in idx],
        labelled.embeddings[idx],
        labelled.detected[idx],
    )


def variant_embeddings(paths: list[str], path: Path) -> dict:
    """_embed_variants of every photo, 2 processes, saved to `path` as it goes (a long run)."""
    from multiprocessing import get_context

    if path.exists():
        variants = dict(np.load(path, allow_pickle=False))
        if [str(p) for p in variants["paths"]] == paths:
            return variants
    started, found = time.perf_counter(), {}
    with get_context("fork").Pool(2) as pool:
        for i, r in pool.imap_unordered(_embed_indexed, list(enumerate(paths)), chunksize=8):
            found[i] = r
    done = sorted(found)
    variants = {
        "paths": np.array([paths[i] for i in done]),
        "embeddings": np.stack([found[i][0] for i in done]),
        "detected": np.stack([found[i][1] for i in done]),
        "quality": np.stack([found[i][2] for i in done]),
    }
    np.savez(path, **variants)
    print(f"variant embeddings: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return variants


def main() -> None:
    import os

    os.environ.setdefault("FACEFIND_MODELS", str(ROOT.parent / "shared" / "models"))
    from facefind.calibration import default_calibration
    from openset_bench import _cached

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/facefind-lfw-cache"))
    parser.add_argument(
        "--people-every",
        type=int,
        default=1,
        help="the pipeline variants (which re-embed) on every N-th person only (by name)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = Settings()
    backend = load_backend(settings)
    folder = args.datasets / "lfw_dev"
    labelled = _cached(
        args.cache / "facefind.npz", lambda: ev.load_labelled(folder, settings, 2, lambda: backend)
    )
    shipped = default_calibration(backend.model_id)
    subset = people_subset(labelled, args.people_every)
    variants = variant_embeddings(subset.paths, args.cache / f"variants-every{args.people_every}.npz")
    quality = variants["quality"][:, 3] if args.people_every == 1 else None
    result = {
        "dataset": f"{folder.name}: {len(labelled.paths)} photos, {len(set(labelled.persons))} people",
        "calibration": shipped.source,
        "templates": templates_experiment(labelled, shipped, settings, quality),
        "several_photos": multi_photo_experiment(labelled, shipped),
        "variants_on": f"{len(subset.paths)} photos of every {args.people_every} people by name",
        "pipeline": pipeline_experiment(subset, variants),
        "quality": quality_experiment(subset, variants, shipped),
    }
    print(json.dumps(result, indent=1) if args.json else _summary(result))


def _summary(result: dict, prefix: str = "") -> str:
    lines = []
    for key, value in result.items():
        if isinstance(value, dict) and {"fpir", "fnir"} <= value.keys():
            lines.append(
                f"{prefix}{key}: FPIR {value['fpir']} ({value['false_positives']}; {value['fpir_ci95']}), "
                f"FNIR {value['fnir']} ({value['misses']}; {value['fnir_ci95']})"
            )
        elif isinstance(value, dict):
            lines.append(f"{prefix}{key}:")
            lines.append(_summary(value, prefix + "  "))
        else:
            lines.append(f"{prefix}{key}: {value}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
