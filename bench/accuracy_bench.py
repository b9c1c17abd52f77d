"""Accuracy: `facefind evaluate` vs the face_recognition baseline on each labelled dataset folder.

    python bench/accuracy_bench.py [--datasets ../shared/datasets] [--json]

Both systems are scored by the same code (facefind.evaluate); detection failures count as errors
for both. The baseline compares dlib encodings by Euclidean distance, as face_recognition does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import baseline
import machine
from facefind import evaluate as ev
from facefind.faces import load_backend
from facefind.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("failures_to_detect", "failure_rate")
VERIFICATION = ("tar_at_far_0.01", "tar_at_far_0.001", "tar_at_far_0.0001", "eer")


def baseline_set(ours: ev.LabelledSet) -> ev.LabelledSet:
    results = baseline.encode_files(ours.paths, processes=2)
    embeddings = np.zeros((len(results), 128), np.float32)
    detected = np.zeros(len(results), bool)
    for i, (_, encoding) in enumerate(results):
        if encoding is not None:
            embeddings[i], detected[i] = encoding, True
    return ev.LabelledSet(ours.root, ours.paths, ours.persons, embeddings, detected, metric="euclidean")


def summary(labelled: ev.LabelledSet) -> dict:
    report = ev.report(labelled)
    out = {k: report[k] for k in KEYS}
    out.update({k: report["verification"][k] for k in VERIFICATION})
    ident = report["identification"]
    out["rank1"] = ident.get("rank1")
    out["fnir_at_fpir"] = ident.get("fnir_at_fpir", {}).get("0.01")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--plots", type=Path, help="write a DET/ROC PNG per folder here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = Settings()
    backend = load_backend(settings)
    result: dict = {"machine": machine.describe(), "folders": {}}
    for folder in sorted(p for p in args.datasets.iterdir() if p.is_dir()):
        persons = [p for p in folder.iterdir() if p.is_dir()]
        if len(persons) < 2:
            result["folders"][folder.name] = {"skipped": "not PERSON/IMAGE folders (no identity labels)"}
            continue
        ours = ev.load_labelled(folder, settings, 2, lambda: backend)
        theirs = baseline_set(ours)
        result["folders"][folder.name] = {
            "images": len(ours.paths),
            "identities": len(set(ours.persons)),
            "facefind": summary(ours),
            "face_recognition": summary(theirs),
        }
        if args.plots:
            curves = {"facefind (YuNet + SFace)": ours, "face_recognition (HOG + dlib)": theirs}
            ev.plot(curves, args.plots / f"{folder.name}.png")
        print(f"{folder.name} done", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"machine: {result['machine']}")
    cols = ("failures_to_detect", "tar_at_far_0.01", "tar_at_far_0.001", "tar_at_far_0.0001", "eer", "rank1")
    print(f"{'folder':18} {'system':17} " + " ".join(f"{c:>18}" for c in cols))
    for name, row in result["folders"].items():
        if "skipped" in row:
            print(f"{name:18} skipped: {row['skipped']}")
            continue
        for system in ("facefind", "face_recognition"):
            print(f"{name:18} {system:17} " + " ".join(f"{row[system][c]!s:>18}" for c in cols))


if __name__ == "__main__":
    main()
