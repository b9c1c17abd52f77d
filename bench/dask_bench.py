"""Ingest on Dask vs the local process pool: images/s of `index` on the same photos.

    python bench/dask_bench.py [--runs 3] [--workers 2] [--photos ../shared/datasets/glint_dev12] [--json]

Each run indexes the photos into a fresh catalog twice: with the local process pool (`--workers N`)
and on a Dask LocalCluster of N single-threaded worker processes (`--dask local --workers N`), the
two alternating which goes first so that a busy neighbour on the machine weighs on both alike.
Reported: medians over runs of the whole `index` call (cluster start-up, scan, analysis, catalog
writes, vector index, people), of the analysis loop alone (the report's images/s) and of CPU time
per photo (this process and its workers: less distorted by a busy machine than wall time), and the ratio
Dask / local pool of each (target >= 0.85).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import facefind
import machine

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.85
SYSTEMS = {"local_pool": None, "dask_local": "local"}


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (the workers of either kind)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def index_once(photos: Path, workers: int, dask: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp, facefind.open(Path(tmp) / "bench.db") as ff:
        ff.create_collection("default", owner="benchmark", basis="own", retention="30d")
        cpu = cpu_seconds()
        started = time.perf_counter()
        report = ff.index(photos, workers=workers, dask=dask)
        seconds = time.perf_counter() - started
        deadline = time.monotonic() + 30
        while multiprocessing.active_children() and time.monotonic() < deadline:  # reaps the pool's
            time.sleep(0.1)
        cpu = cpu_seconds() - cpu
    assert report.errors == 0, report.error_files[:3]
    return {
        "images": report.indexed,
        "faces": report.faces_found,
        "seconds": seconds,
        "indexer_images_per_s": report.images_per_second,
        "cpu_ms_per_image": 1000 * cpu / report.indexed,
    }


def summary(runs: list[dict]) -> dict:
    images = runs[0]["images"]
    median_s = statistics.median(r["seconds"] for r in runs)
    return {
        "images": images,
        "faces": runs[0]["faces"],
        "median_s": round(median_s, 2),
        "runs_s": [round(r["seconds"], 2) for r in runs],
        "images_per_s": round(images / median_s, 1),
        "indexer_images_per_s": round(statistics.median(r["indexer_images_per_s"] for r in runs), 1),
        "indexer_runs": [r["indexer_images_per_s"] for r in runs],
        "cpu_ms_per_image": round(statistics.median(r["cpu_ms_per_image"] for r in runs), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "datasets" / "glint_dev12")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {name: [] for name in SYSTEMS}
    for n in range(args.runs):
        order = list(SYSTEMS) if n % 2 == 0 else list(SYSTEMS)[::-1]
        for name in order:
            runs[name].append(index_once(args.photos, args.workers, SYSTEMS[name]))
        print(f"run {n + 1}/{args.runs} done", file=sys.stderr)

    result: dict = {
        "machine": machine.describe(),
        "load_average_1m": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "photos": str(args.photos),
        "runs": args.runs,
        "workers": args.workers,
        **{name: summary(per_run) for name, per_run in runs.items()},
    }
    local, dask = result["local_pool"], result["dask_local"]
    assert local["images"] == dask["images"] and local["faces"] == dask["faces"]
    result["ratio"] = round(dask["images_per_s"] / local["images_per_s"], 3)
    result["ratio_indexer"] = round(dask["indexer_images_per_s"] / local["indexer_images_per_s"], 3)
    # Roughly the ratio on an idle machine (the work is CPU-bound); a busy one distorts it less.
    result["ratio_cpu"] = round(local["cpu_ms_per_image"] / dask["cpu_ms_per_image"], 3)
    result["target_ratio"] = TARGET_RATIO
    result["meets_target"] = result["ratio"] >= TARGET_RATIO

    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"machine: {result['machine']} (load average {result['load_average_1m']})")
    print(f"{args.photos}: {local['images']} photos, {args.workers} workers, median of {args.runs} runs")
    for name in SYSTEMS:
        row = result[name]
        print(
            f"  {name:11} {row['images_per_s']:>7} images/s (runs {row['runs_s']} s); "
            f"analysis loop {row['indexer_images_per_s']} images/s; {row['cpu_ms_per_image']} CPU ms/image"
        )
    print(
        f"  Dask / local pool: {result['ratio']} (analysis loop {result['ratio_indexer']}, "
        f"by CPU time {result['ratio_cpu']}), target >= {TARGET_RATIO}"
    )


if __name__ == "__main__":
    main()
