"""Ingest throughput: facefind index (2 workers) vs face_recognition (HOG + dlib, 2 processes).

    python bench/ingest_bench.py [--runs 3] [--datasets ../shared/datasets] [--json]
    python bench/ingest_bench.py --camera [--runs 3] [--before main] [--json]

Each run indexes every folder of the datasets into a fresh catalog, and the baseline encodes the
same files; medians over runs are reported, with facefind's ms per stage.

--camera (bench/camera_bench.py): camera-size photos (24 MP, JPEG q92) made under /tmp, whole
process, paired runs of facefind, facefind before the change and face_recognition; CPU cores busy,
peak memory per process, and TAR at FAR 1e-3 on lfw_dev photos upscaled into 24 MP frames.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import baseline
import facefind
import machine

ROOT = Path(__file__).resolve().parents[1]


def run_facefind(folders: list[Path], workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, facefind.open(Path(tmp) / "bench.db") as ff:
        out = {}
        for folder in folders:
            t = time.perf_counter()
            if "default" not in {c.name for c in ff.collections()}:
                ff.create_collection("default", owner="benchmark", basis="own", retention="30d")
            report = ff.index(folder, workers=workers)
            out[folder.name] = {
                "images": report.indexed,
                "seconds": time.perf_counter() - t,
                "faces": report.faces_found,
                "stage_ms": report.stage_ms_per_image,
            }
        return out


def run_baseline(folders: list[Path], processes: int) -> dict:
    out = {}
    for folder in folders:
        files = baseline.image_files(folder)
        t = time.perf_counter()
        results = baseline.encode_files(files, processes)
        out[folder.name] = {
            "images": len(files),
            "seconds": time.perf_counter() - t,
            "faces": sum(n for n, _ in results),
        }
    return out


def main() -> None:
    if "--camera" in sys.argv:
        import camera_bench

        sys.argv.remove("--camera")
        camera_bench.main()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folders = sorted(p for p in args.datasets.iterdir() if p.is_dir())

    runs: dict[str, list[dict]] = {"facefind": [], "face_recognition": []}
    for n in range(args.runs):
        runs["facefind"].append(run_facefind(folders, args.workers))
        runs["face_recognition"].append(run_baseline(folders, args.workers))
        print(f"run {n + 1}/{args.runs} done", file=sys.stderr)

    result: dict = {"machine": machine.describe(), "runs": args.runs, "workers": args.workers, "folders": {}}
    for name in [f.name for f in folders] + ["all"]:
        row = {}
        for system, per_run in runs.items():
            seconds = [
                sum(r[f]["seconds"] for f in r) if name == "all" else r[name]["seconds"] for r in per_run
            ]
            images = (
                sum(per_run[0][f]["images"] for f in per_run[0])
                if name == "all"
                else per_run[0][name]["images"]
            )
            faces = (
                sum(per_run[0][f]["faces"] for f in per_run[0])
                if name == "all"
                else per_run[0][name]["faces"]
            )
            median = statistics.median(seconds)
            row[system] = {
                "images": images,
                "faces": faces,
                "median_s": round(median, 2),
                "runs_s": [round(s, 2) for s in seconds],
                "images_per_s": round(images / median, 1),
            }
        row["speedup"] = round(row["facefind"]["images_per_s"] / row["face_recognition"]["images_per_s"], 2)
        if name != "all":
            stage_runs = [r[name]["stage_ms"] for r in runs["facefind"]]
            row["facefind"]["stage_ms_per_image"] = {
                stage: round(statistics.median(s[stage] for s in stage_runs), 2) for stage in stage_runs[0]
            }
        result["folders"][name] = row

    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"machine: {result['machine']}")
    print(f"{'folder':28} {'images':>6} {'facefind img/s':>15} {'face_recognition img/s':>23} {'speedup':>8}")
    for name, row in result["folders"].items():
        print(
            f"{name:28} {row['facefind']['images']:>6} {row['facefind']['images_per_s']:>15} "
            f"{row['face_recognition']['images_per_s']:>23} {row['speedup']:>7}x"
        )
    for name, row in result["folders"].items():
        if "stage_ms_per_image" in row["facefind"]:
            print(f"  {name} ms/image per stage: {row['facefind']['stage_ms_per_image']}")


if __name__ == "__main__":
    main()
