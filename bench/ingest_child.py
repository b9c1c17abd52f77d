"""One whole-process ingest run, timed from outside by bench/ingest_bench.py --camera.

    python bench/ingest_child.py facefind DB FOLDER... [--workers 2] [--settings JSON]
    python bench/ingest_child.py face_recognition - FOLDER... [--workers 2] [--max-side 1024]

`facefind` indexes the folders into a new catalog DB with whatever facefind PYTHONPATH gives (the
checkout under test, or an older one for "before"); `--settings` overrides Settings fields
(e.g. {"detect_max_side": 960}). `face_recognition` is the baseline (bench/baseline.py): HOG and
dlib's encoder on each photo resized to `--max-side`. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("system", choices=["facefind", "face_recognition"])
    parser.add_argument("db")
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--settings", default="{}")
    parser.add_argument("--max-side", type=int, default=1024)
    args = parser.parse_args()
    if args.system == "face_recognition":
        import baseline

        files = [f for folder in args.folders for f in baseline.image_files(folder)]
        results = baseline.encode_files(files, args.workers, max_side=args.max_side)
        print(json.dumps({"images": len(files), "faces": sum(n for n, _ in results)}))
        return
    import facefind
    from facefind.settings import Settings

    settings = Settings(**json.loads(args.settings))
    out = {"images": 0, "faces": 0, "errors": 0, "stage_ms": {}}
    with facefind.open(Path(args.db), settings=settings) as ff:
        ff.create_collection("default", owner="benchmark", basis="own", retention="30d")
        for folder in args.folders:
            report = ff.index(folder, workers=args.workers)
            out["images"] += report.indexed
            out["faces"] += report.faces_found
            out["errors"] += report.errors
            for stage, ms in report.stage_ms_per_image.items():
                out["stage_ms"][stage] = out["stage_ms"].get(stage, 0) + ms * report.indexed
    out["stage_ms"] = {k: round(v / max(out["images"], 1), 1) for k, v in out["stage_ms"].items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
