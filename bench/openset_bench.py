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
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import machine
from facefind import evaluate as ev
from facefind.calibration import DEFAULT_MAX_FMR, Calibration, default_calibration
from facefind.faces import load_backend
from facefind.settings import Settings
from index_bench import CHUNK, PER_IDENTITY, FaceLikeData, measure_spread

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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
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
