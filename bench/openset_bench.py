"""Open-set search: does "FPIR 0.01" mean 1 stranger in 100 gets a match, at every gallery size?

    python bench/openset_bench.py [--sizes 10000 100000 1000000] [--strangers 4000] [--trials 3] [--json]

1. Real photos: every labelled folder of ../shared/datasets pooled (identities that recur across
   folders merged), identities left out of the gallery in 100 random splits (evaluate.open_set).
   For stated FPIRs 0.1/0.01/0.003, search's decision (a threshold for that FPIR at each split's
   gallery size, from the shipped calibration) against what strangers really got, and the FNIR it
   costs; beside it, the old rule (FMR 1e-3 per comparison whatever the gallery size); and
   per-query score normalisation (z-scores against the query's own gallery scores), measured to
   decide whether to keep it.
2. Synthetic distractors: face-like embeddings (bench/index_bench.py's generator, spread measured
   on real SFace embeddings). A labelled set (default 1,200 people x 2 photos) is calibrated exactly as
   `facefind calibrate` does (measured table + generalised Pareto tail + identity bootstrap); then
   galleries of 10k/100k/1M faces are searched exactly (what every index kind re-ranks to) by
   strangers (identities in no gallery) and by new photos of enrolled people. FPIR 0.01 at 1M
   needs a per-comparison FMR of 1e-8, far below what the calibration pairs measure: this is
   where the tail model is tested. Each of --trials runs draws its own calibration set and
   strangers (the galleries stay); medians over trials are reported beside each trial.
Also: the cost of the decision itself per search (threshold + each hit's FPIR and bound).

    python bench/openset_bench.py --lfw [--cache /tmp/facefind-lfw-cache] [--json]

3. (--lfw, instead of 1 and 2) Issue 22's protocol on ../shared/datasets/lfw_dev, the same code as
   `facefind evaluate` (evaluate.open_set_table, evaluate.pairs_accuracy): gallery = every photo but
   the first of each person with 2+ photos, mated probes = those first photos, strangers = people
   with one photo. facefind at its default decision (FPIR 0.01 at the gallery size, shipped
   calibration): measured FPIR with a 95% interval and FNIR; the face_recognition baseline (HOG +
   dlib, the face nearest the centre, as the labelled face) at its default tolerance 0.6, and both
   at the threshold that really gives FPIR 0.01. LFW pairs accuracy (10 folds, threshold chosen on
   the other 9) for both on lfw_dev/pairs.tsv. Embeddings are cached in --cache (delete it after a
   model or detection change).

    python bench/openset_bench.py --synthetic-lfw [--sizes 100000 1000000] [--strangers 10000] [--trials 3]

4. (--synthetic-lfw, instead of 1 and 2) Synthetic galleries fitted to lfw_dev's real embeddings of
   2,864 people (bench/lfw_synth.py; the fit is checked first: impostor similarity at FMR 1e-3..1e-6
   and genuine quantiles, real against synthetic sets with lfw_dev's photos per person). Each trial
   calibrates on its own synthetic labelled set with lfw_dev's photos per person (2,864 people,
   ~20M impostor pairs, like the shipped table) exactly as `facefind calibrate` does, then searches
   galleries of 100k and 1M faces (4 photos a person, as LFW's gallery; the same in every trial)
   exactly, with its own strangers and new photos of enrolled people: measured FPIR at stated
   0.1/0.01/0.003 with 95% Wilson intervals, FNIR, and whether the threshold was extrapolated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import machine
from facefind import evaluate as ev
from facefind.calibration import DEFAULT_MAX_FMR, Calibration, default_calibration
from facefind.faces import load_backend
from facefind.recognizers import NEW_CATALOGS, builtin_settings
from facefind.settings import Settings
from index_bench import CHUNK, PER_IDENTITY, FaceLikeData, measure_spread
from lfw_synth import FittedFaces, score_quantiles

ROOT = Path(__file__).resolve().parents[1]
STATED = (0.1, 0.01, 0.003)
# The same people appear in more than one shared folder (checked by eye and by embeddings).
SAME_PERSON = {
    ("deepface", "person02"): "Jennifer_Aniston",
    ("deepface", "person12"): "Leonardo_DiCaprio",
    ("face_recognition", "Barack_Obama"): "Barack_Obama",
}


def pooled_shared(datasets: Path) -> ev.LabelledSet:
    settings, backend = Settings(), load_backend(Settings())
    parts = []
    for folder in sorted(p for p in datasets.iterdir() if p.is_dir()):
        if len([p for p in folder.iterdir() if p.is_dir()]) >= 2:
            parts.append(ev.load_labelled(folder, settings, 2, lambda: backend))
    persons = [
        SAME_PERSON.get(
            (part.root.name, p), f"{part.root.name}/{p}" if part.root.name != "glint_dev12" else p
        )
        for part in parts
        for p in part.persons
    ]
    return ev.LabelledSet(
        datasets,
        [p for part in parts for p in part.paths],
        persons,
        np.vstack([part.embeddings for part in parts]),
        np.concatenate([part.detected for part in parts]),
    )


def decisions(trials: ev.OpenSet, calibration: Calibration) -> dict:
    out: dict = {}
    for stated in STATED:
        cuts = np.array([calibration.threshold_for_fpir(stated, int(n)) for n in trials.gallery_sizes])
        fpir, fnir = trials.rates(cuts)
        out[f"{stated:g}"] = {
            "measured_fpir": round(fpir, 4),
            "fnir": round(fnir, 4),
            "ratio": round(fpir / stated, 2),
        }
    fpir, fnir = trials.rates(np.full(trials.splits, calibration.threshold(DEFAULT_MAX_FMR)))
    out["old_rule_fmr_1e-3"] = {"measured_fpir": round(fpir, 4), "fnir": round(fnir, 4)}
    return out


def normalisation(labelled: ev.LabelledSet, splits: int = 100, seed: int = 1) -> dict:
    """FNIR at equal (empirical) FPIR: raw top-1 similarity vs per-query normalised scores."""
    labels, rng = labelled.labels, np.random.default_rng(seed)
    identities = sorted(set(labelled.persons))
    variants = ("raw", "z_all", "z_without_top20", "minus_query_mean")
    fnirs: dict[str, dict[str, list[float]]] = {v: {"0.1": [], "0.01": []} for v in variants}
    for _ in range(splits):
        enrolled = rng.permutation(identities)[: len(identities) // 2]
        mated = np.zeros(len(labels), bool)
        for person in enrolled:
            photos = np.flatnonzero(labels == person)
            if len(photos) >= 2:
                mated[rng.choice(photos, max(1, len(photos) // 3), replace=False)] = True
        gallery = np.flatnonzero(np.isin(labels, enrolled) & ~mated & labelled.detected)
        strangers = np.flatnonzero(~np.isin(labels, enrolled) & labelled.detected)
        probes = np.flatnonzero(mated & labelled.detected)

        def scores(q: np.ndarray, gallery: np.ndarray = gallery) -> dict[str, np.ndarray]:
            sims = labelled.embeddings[q] @ labelled.embeddings[gallery].T
            ranked = -np.sort(-sims, axis=1)
            top = ranked[:, 0]
            rest = ranked[:, 20:]
            return {
                "raw": top,
                "z_all": (top - sims.mean(1)) / sims.std(1),
                "z_without_top20": (top - rest.mean(1)) / rest.std(1),
                "minus_query_mean": top - sims.mean(1),
            }

        m, s = scores(probes), scores(strangers)
        hit = (
            labels[gallery][np.argmax(labelled.embeddings[probes] @ labelled.embeddings[gallery].T, 1)]
            == labels[probes]
        )
        for v in variants:
            descending = np.sort(s[v])[::-1]
            for fpir in ("0.1", "0.01"):
                cut = np.nextafter(descending[int(float(fpir) * len(descending))], np.inf)
                fnirs[v][fpir].append(float(1 - (hit & (m[v] >= cut)).mean()))
    return {v: {k: round(float(np.mean(x)), 4) for k, x in d.items()} for v, d in fnirs.items()}


def synthetic(
    spread: dict,
    sizes: list[int],
    strangers: int,
    mated: int,
    trial: int = 0,
    calibration_identities: int = 120,
    calibration_photos: int = PER_IDENTITY,
) -> dict:
    """One trial: its own calibration set and strangers (new identities), the same galleries."""
    data = FaceLikeData(max(sizes), spread, seed=11)
    # Identities never in any gallery: centres from chunks far beyond the largest gallery.
    first_free = (max(sizes) + CHUNK - 1) // CHUNK + 10 + 2 * trial

    def faces_of(chunk: int, identities: int, per: int) -> tuple[np.ndarray, np.ndarray]:
        centers = np.repeat(data._centers(chunk)[:identities], per, axis=0)
        rng = np.random.default_rng((11, chunk, 5))
        return data._faces_of(centers, rng), np.repeat(np.arange(identities), per)

    calib_faces, calib_ids = faces_of(first_free, calibration_identities, calibration_photos)
    labelled = ev.LabelledSet(
        Path("synthetic"),
        [str(i) for i in range(len(calib_ids))],
        [str(i) for i in calib_ids],
        calib_faces,
        np.ones(len(calib_ids), bool),
    )
    calibration = labelled.calibration("synthetic")
    stranger_faces, _ = faces_of(first_free + 1, strangers, 1)
    shipped = default_calibration("sface-2021dec")
    out: dict = {
        "calibration": {
            "faces": len(calib_ids),
            "identities": calibration_identities,
            "impostor_pairs": calibration.impostor_pairs,
            "threshold_at_fmr": {
                f"{f:g}": round(calibration.threshold(f), 4) for f in (1e-3, 1e-4, 1e-5, 1e-6, 1e-8)
            },
            "real_sface_threshold_at_fmr": {
                f"{f:g}": round(shipped.threshold(f), 4) for f in (1e-3, 1e-4, 1e-5, 1e-6, 1e-8)
            },
        },
        "sizes": {},
    }
    gallery = np.concatenate([chunk for _, chunk in data.chunks()])
    for n in sorted(sizes):
        started = time.perf_counter()
        g = gallery[:n]
        queries, identities = mated_queries(data, n, mated)
        top_stranger = _top1(stranger_faces, g)[0]
        top_mated, where = _top1(queries, g)
        hit = where // PER_IDENTITY == identities
        row: dict = {"faces": n, "strangers": strangers, "mated_probes": mated}
        for stated in STATED:
            for name, bound in (("", True), ("point estimate ", False)):
                cut = calibration.threshold_for_fpir(stated, n, bound=bound)
                fpir = float((top_stranger >= cut).mean())
                row[f"{name}{stated:g}"] = {
                    "threshold": round(cut, 4),
                    "per_comparison_fmr": stated / n,
                    "measured_fpir": round(fpir, 4),
                    "ratio": round(fpir / stated, 2),
                    "fnir": round(float(1 - (hit & (top_mated >= cut)).mean()), 4),
                }
        row["old_rule_fmr_1e-3"] = {
            "measured_fpir": round(float((top_stranger >= calibration.threshold(1e-3)).mean()), 4)
        }
        row["seconds"] = round(time.perf_counter() - started, 1)
        out["sizes"][str(n)] = row
        print(f"synthetic {n}: {json.dumps(row)}", file=sys.stderr)
    return out


def synthetic_lfw(real: ev.LabelledSet, sizes: list[int], strangers: int, mated: int, trials: int) -> dict:
    """Issue 22's synthetic galleries, fitted to lfw_dev: the fit, then stated vs measured FPIR."""
    embeddings, persons = real.embeddings[real.detected], np.asarray(real.persons)[real.detected]
    model = FittedFaces.fit(embeddings, persons)
    _, owner = np.unique(persons, return_inverse=True)
    counts = np.bincount(owner)  # lfw_dev's photos per person
    fit = {"real": score_quantiles(embeddings, owner)}
    for seed in (1, 2):
        fit[f"synthetic seed {seed}"] = score_quantiles(*model.labelled(counts, np.random.default_rng(seed)))
    print(f"fit: {json.dumps(fit)}", file=sys.stderr, flush=True)
    per = 4  # photos a person in the galleries (LFW's gallery: 3,472 faces of 849 people)
    rng = np.random.default_rng(100)
    centres = model.people(max(sizes) // per, rng)
    gallery = model.photos(np.repeat(centres, per, axis=0), rng)
    out: dict = {"model": model.fitted_on | {"clusters": len(model.weights)}, "fit": fit, "trials": []}
    for trial in range(trials):
        rng = np.random.default_rng((200, trial))
        started = time.perf_counter()
        faces, who = model.labelled(counts, rng)
        labelled = ev.LabelledSet(
            Path("synthetic-lfw"),
            [str(i) for i in range(len(who))],
            [str(i) for i in who],
            faces,
            np.ones(len(who), bool),
        )
        calibration = labelled.calibration("synthetic-lfw")
        stranger_faces = model.photos(model.people(strangers, rng), rng)
        run: dict = {
            "calibration": {
                "people": len(counts),
                "impostor_pairs": calibration.impostor_pairs,
                "measured_floor": calibration.measured_floor,
                "seconds": round(time.perf_counter() - started, 1),
            },
            "sizes": {},
        }
        for n in sorted(sizes):
            started = time.perf_counter()
            enrolled = rng.integers(0, n // per, mated)
            top_stranger = _top1(stranger_faces, gallery[:n])[0]
            top_mated, where = _top1(model.photos(centres[enrolled], rng), gallery[:n])
            hit = where // per == enrolled
            row: dict = {"faces": n, "strangers": strangers, "mated_probes": mated}
            for stated in STATED:
                cut = calibration.threshold_for_fpir(stated, n)
                passed = int((top_stranger >= cut).sum())
                low, high = ev.wilson_interval(passed, strangers)
                row[f"{stated:g}"] = {
                    "threshold": round(cut, 4),
                    "extrapolated": calibration.estimate(cut).extrapolated,
                    "measured_fpir": round(passed / strangers, 4),
                    "fpir_ci95": [round(low, 4), round(high, 4)],
                    "ratio": round(passed / strangers / stated, 2),
                    "fnir": round(float(1 - (hit & (top_mated >= cut)).mean()), 4),
                }
                point = calibration.threshold_for_fpir(stated, n, bound=False)  # the tail's point estimate
                row[f"{stated:g}"]["point_estimate"] = {
                    "threshold": round(point, 4),
                    "measured_fpir": round(float((top_stranger >= point).mean()), 4),
                    "fnir": round(float(1 - (hit & (top_mated >= point)).mean()), 4),
                }
            row["seconds"] = round(time.perf_counter() - started, 1)
            run["sizes"][str(n)] = row
            print(f"synthetic-lfw trial {trial} {n}: {json.dumps(row)}", file=sys.stderr, flush=True)
        out["trials"].append(run)
    return out


def _synthetic_lfw_table(result: dict) -> str:
    fit = result["fit"]
    lines = ["fit (impostor similarity at FMR 1e-3/1e-4/1e-5/1e-6; genuine at 1%/5%/50%):"]
    for name, q in fit.items():
        lines.append(f"  {name}: {q['impostor_at_fmr']} {q['genuine_at_quantile']}")
    for t, run in enumerate(result["trials"]):
        for n, row in run["sizes"].items():
            lines.append(
                f"trial {t} {n} faces: "
                + "; ".join(
                    f"stated {s}: {row[s]['measured_fpir']} {row[s]['fpir_ci95']} FNIR {row[s]['fnir']}"
                    for s in ("0.1", "0.01", "0.003")
                )
            )
    return "\n".join(lines)


def mated_queries(data: FaceLikeData, n: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """New photos of people among the first `n` gallery faces, and their identity numbers."""
    rng = np.random.default_rng((11, n, 9))
    identities = rng.integers(0, n // PER_IDENTITY, count)
    per_chunk = CHUNK // PER_IDENTITY
    centers = {c: data._centers(c) for c in np.unique(identities // per_chunk)}
    picks = np.array([centers[i // per_chunk][i % per_chunk] for i in identities])
    return data._faces_of(picks, rng), identities


def _top1(queries: np.ndarray, gallery: np.ndarray, block: int = 25_000) -> tuple[np.ndarray, np.ndarray]:
    best = np.full(len(queries), -np.inf, np.float32)
    where = np.zeros(len(queries), np.int64)
    for start in range(0, len(gallery), block):
        sims = queries @ gallery[start : start + block].T
        i = sims.argmax(1)
        s = sims[np.arange(len(queries)), i]
        better = s > best
        best[better], where[better] = s[better], i[better] + start
    return best, where


def decision_cost(calibration: Calibration, gallery: int, hits: int = 10, repeat: int = 2000) -> float:
    """Microseconds per search for the threshold and each hit's FPIR with its bound."""
    scores = np.linspace(calibration.threshold_for_fpir(0.01, gallery), 0.9, hits)
    started = time.perf_counter()
    for _ in range(repeat):
        calibration.threshold_for_fpir(0.01, gallery)
        for s in scores:
            calibration.fpir(float(s), gallery)
    return (time.perf_counter() - started) / repeat * 1e6


def _cached(path: Path, make: Callable[[], ev.LabelledSet]) -> ev.LabelledSet:
    if path.exists():
        z = np.load(path, allow_pickle=False)
        return ev.LabelledSet(
            Path(str(z["root"])),
            [str(p) for p in z["paths"]],
            [str(p) for p in z["persons"]],
            z["embeddings"],
            z["detected"],
            metric=str(z["metric"]),
        )
    labelled = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        root=str(labelled.root),
        paths=np.array(labelled.paths),
        persons=np.array(labelled.persons),
        embeddings=labelled.embeddings,
        detected=labelled.detected,
        metric=labelled.metric,
    )
    return labelled


def _encode_centre_face(path: str) -> np.ndarray | None:
    """face_recognition's encoding of the face nearest the image centre (LFW's labelled face)."""
    import face_recognition

    try:
        image = face_recognition.load_image_file(path)
    except Exception:
        return None
    locations = face_recognition.face_locations(image, model="hog")
    if not locations:
        return None
    cy, cx = image.shape[0] / 2, image.shape[1] / 2
    top, right, bottom, left = min(
        locations, key=lambda b: ((b[0] + b[2]) / 2 - cy) ** 2 + ((b[1] + b[3]) / 2 - cx) ** 2
    )
    (encoding,) = face_recognition.face_encodings(image, [(top, right, bottom, left)])
    return np.asarray(encoding, np.float32)


def _baseline_set(ours: ev.LabelledSet) -> ev.LabelledSet:
    from multiprocessing import get_context

    with get_context("fork").Pool(2) as pool:
        encodings = pool.map(_encode_centre_face, ours.paths, chunksize=16)
    embeddings = np.zeros((len(encodings), 128), np.float32)
    detected = np.array([e is not None for e in encodings])
    for i, e in enumerate(encodings):
        if e is not None:
            embeddings[i] = e
    return ev.LabelledSet(ours.root, ours.paths, ours.persons, embeddings, detected, metric="euclidean")


def lfw(datasets: Path, cache: Path) -> dict:
    """Issue 22's open-set protocol and the LFW pairs on lfw_dev, facefind vs face_recognition."""
    folder = datasets / "lfw_dev"
    settings = builtin_settings(NEW_CATALOGS)  # what a new catalog indexes with
    backend = load_backend(settings)
    started = time.perf_counter()
    ours = _cached(
        cache / f"{backend.model_id}.npz", lambda: ev.load_labelled(folder, settings, 2, lambda: backend)
    )
    print(f"facefind embeddings: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    pairs = ev.read_pairs(folder / "pairs.tsv", ours)
    shipped = default_calibration(backend.model_id)
    result: dict = {
        "dataset": f"{folder.name}: {len(ours.paths)} photos, {len(set(ours.persons))} people",
        "protocol": ev.OPEN_SET_PROTOCOL,
        "calibration": shipped.source,
        "facefind": {
            "failures_to_detect": int((~ours.detected).sum()),
            "open_set": ev.open_set_table(ours, shipped, 0.01),
            "pairs": ev.pairs_accuracy(ours, pairs),
        },
    }
    try:
        import face_recognition  # noqa: F401
    except ImportError:
        result["face_recognition"] = "not installed: run `make bench-install`"
        return result
    started = time.perf_counter()
    theirs = _cached(cache / "face_recognition.npz", lambda: _baseline_set(ours))
    print(f"face_recognition embeddings: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    table = ev.open_set_table(theirs, None, 0.01)
    split = ev.first_photo_split(theirs)
    assert table is not None and split is not None
    false_positives, misses = split.rates(-0.6)  # its default: same person when distance <= 0.6
    table["default_tolerance_0.6"] = {
        "measured_fpir": round(false_positives / len(split.non_mated), 4),
        "fpir_ci95": [round(x, 4) for x in ev.wilson_interval(false_positives, len(split.non_mated))],
        "false_positives": false_positives,
        "fnir": round(misses / len(split.mated), 4),
        "misses": misses,
    }
    result["face_recognition"] = {
        "failures_to_detect": int((~theirs.detected).sum()),
        "open_set": table,
        "pairs": ev.pairs_accuracy(theirs, pairs),
    }
    return result


def _lfw_table(result: dict) -> str:
    lines = [f"{result['dataset']}; {result['protocol']}"]
    for system in ("facefind", "face_recognition"):
        r = result.get(system)
        if not isinstance(r, dict):
            lines.append(f"{system}: {r}")
            continue
        o, p = r["open_set"], r["pairs"]
        lines.append(
            f"{system}: {r['failures_to_detect']} photos without a face; gallery {o['gallery_faces']} faces "
            f"({o['gallery_people']} people), {o['mated_probes']} mated / {o['non_mated_probes']} strangers; "
            f"rank-1 {o['rank1']}, FNIR at measured FPIR 0.01: {o['fnir_at_fpir'].get('0.01')}"
        )
        decision = o.get("default") or o.get("default_tolerance_0.6")
        lines.append(f"  default decision: {json.dumps(decision)}")
        lines.append(
            f"  pairs: {p['pairs']} ({p['same']} same) in {len(p['folds'])} folds: "
            f"accuracy {p['accuracy']} +- {p['std_error']} ({p['correct']} right)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--strangers", type=int, default=4000)
    parser.add_argument("--mated", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=3, help="synthetic calibration sets and strangers")
    parser.add_argument(
        "--calibration",
        type=int,
        nargs=2,
        default=[1200, 2],
        metavar=("IDENTITIES", "PHOTOS"),
        help="synthetic calibration set: people and photos each (120 10 is glint-like: docs/benchmarks.md)",
    )
    parser.add_argument("--lfw", action="store_true", help="issue 22's protocol and pairs on lfw_dev only")
    parser.add_argument(
        "--cache", type=Path, default=Path("/tmp/facefind-lfw-cache"), help="--lfw embeddings"
    )
    parser.add_argument(
        "--synthetic-lfw", action="store_true", help="synthetic galleries fitted to lfw_dev's embeddings only"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.synthetic_lfw:
        settings = builtin_settings(NEW_CATALOGS)
        real = _cached(
            args.cache / f"{load_backend(settings).model_id}.npz",
            lambda: ev.load_labelled(args.datasets / "lfw_dev", settings, 2, lambda: load_backend(settings)),
        )
        result = {
            "machine": machine.describe(),
            **synthetic_lfw(real, args.sizes, args.strangers, args.mated, args.trials),
        }
        print(json.dumps(result, indent=1) if args.json else _synthetic_lfw_table(result))
        return
    if args.lfw:
        result = {"machine": machine.describe(), **lfw(args.datasets, args.cache)}
        print(json.dumps(result, indent=1) if args.json else _lfw_table(result))
        return
    shipped = default_calibration("sface-2021dec")
    labelled = pooled_shared(args.datasets)
    trials = ev.open_set(labelled, splits=100)
    assert trials is not None
    result: dict = {
        "machine": machine.describe(),
        "real": {
            "images": len(labelled.paths),
            "identities": len(set(labelled.persons)),
            "splits": trials.splits,
            "gallery_faces_median": int(np.median(trials.gallery_sizes)),
            "mated_probes": len(trials.mated_scores),
            "non_mated_probes": len(trials.non_mated_scores),
            "calibration": shipped.source,
            "stated_vs_measured": decisions(trials, shipped),
            "fnir_at_empirical_fpir": trials.summary(None, 0.01, DEFAULT_MAX_FMR)["fnir_at_fpir"],
            "per_query_normalisation": normalisation(labelled),
        },
        "decision_us_per_search_10_hits_at_1M": round(decision_cost(shipped, 1_000_000), 1),
    }
    print(json.dumps(result["real"], indent=1), file=sys.stderr)
    spread = measure_spread(args.datasets / "glint_dev12")
    runs = [
        synthetic(spread, args.sizes, args.strangers, args.mated, t, *args.calibration)
        for t in range(args.trials)
    ]
    result["synthetic"] = {"trials": runs, "median": _median(runs)}
    print(json.dumps(result, indent=1) if args.json else _table(result))


def _median(runs: list[dict]) -> dict:
    """Per gallery size and decision, the median over trials of measured FPIR and FNIR."""
    out: dict = {}
    for n, row in runs[0]["sizes"].items():
        out[n] = {}
        for key, cell in row.items():
            if isinstance(cell, dict):
                out[n][key] = {
                    m: round(float(np.median([r["sizes"][n][key][m] for r in runs])), 4)
                    for m in ("measured_fpir", "fnir")
                    if m in cell
                }
    return out


def _table(result: dict) -> str:
    lines = ["real photos (leave identities out):"]
    for k, v in result["real"]["stated_vs_measured"].items():
        lines.append(f"  stated {k}: {v}")
    for n, row in result["synthetic"]["median"].items():
        lines.append(
            f"synthetic {n} (median of trials): "
            + ", ".join(f"{s}: {row[s]['measured_fpir']}" for s in ("0.1", "0.01", "0.003"))
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
