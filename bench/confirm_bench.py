"""What two-person confirmation costs a search: candidates recorded and the query face kept.

    python bench/confirm_bench.py [--datasets ../shared/datasets] [--rounds 15] [--json]

face_recognition (23 photos) is indexed into a fresh catalog; then searches for its photos that
have matches run in pairs, one as facefind does it (each match recorded as a candidate, the query
face cut and kept) and one with that step skipped, alternately, in the same process. Reported:
median search times of both and their ratio, the median time of the step itself, and the time of
`review list` (`Confirmations.pending`) over every candidate so made.
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
import facefind
import machine
from facefind import engine

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    fr = (args.datasets / "face_recognition").resolve()
    photos = [
        fr / "Barack_Obama" / "obama.jpg",
        fr / "Joe_Biden" / "biden.jpg",
        fr / "Kit_Harington" / "john1.jpeg",
    ]
    recorded = engine.FaceFind._await_confirmation
    step: list[float] = []

    def timed(self: engine.FaceFind, *a: object, **k: object) -> None:
        started = time.perf_counter()
        recorded(self, *a, **k)  # type: ignore[arg-type]
        step.append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "catalog.db"
        with facefind.open(db, actor="bench") as ff:
            ff.create_collection("default", owner="bench", basis="own", retention="1y")
            ff.index(fr, workers=1)
            ff.search(photos[0], purpose="warm-up")
            times: dict[str, list[float]] = {"with": [], "without": []}
            for n in range(args.rounds):
                for mode in ("with", "without") if n % 2 else ("without", "with"):
                    engine.FaceFind._await_confirmation = (  # type: ignore[method-assign]
                        timed if mode == "with" else (lambda self, *a, **k: None)
                    )
                    started = time.perf_counter()
                    ff.search(photos[n % len(photos)], purpose=f"bench {n}")
                    times[mode].append(time.perf_counter() - started)
            engine.FaceFind._await_confirmation = recorded  # type: ignore[method-assign]
            candidates = len(ff.confirmations.pending(10_000, show_paths=False))
            started = time.perf_counter()
            ff.confirmations.pending(50)
            listed = time.perf_counter() - started
    ms = lambda xs: round(statistics.median(xs) * 1000, 1)  # noqa: E731
    out = {
        "machine": machine.describe(),
        "searches_each": args.rounds,
        "search_ms_with": ms(times["with"]),
        "search_ms_without": ms(times["without"]),
        "ratio": round(statistics.median(times["with"]) / statistics.median(times["without"]), 3),
        "step_ms": ms(step),
        "candidates": candidates,
        "review_list_50_ms": round(listed * 1000, 1),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for key, value in out.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
