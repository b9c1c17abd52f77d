"""Rebuild the shipped calibrations from ../shared: lfw_dev and glint_dev12 together.

    python bench/make_calibration.py [--datasets ../shared/datasets] [--cache /tmp/facefind-calibration]
                                     [--variants plain flip mirror] [--resamples 100] [--workers 2]

Exactly what `facefind calibrate lfw_dev glint_dev12` does (evaluate.load_labelled: the face
nearest each photo's centre, identities per folder, pairs only within a folder; then
LabelledSet.calibration), once per shipped model id (sface-2021dec, -flip and -mirror), written
to src/facefind/data/calibration-<model>.json. Only numbers are written, never photos. The
embeddings are cached under --cache (a few minutes of work per variant on 2 cores), so a rerun
only refits. Also prints the FPIR check of docs/design.md ("Calibrated scores"): on lfw_dev,
gallery = every photo but the first of each person with 2+ photos, mated probes = those first
photos, strangers = the people with one photo.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("FACEFIND_MODELS", str(REPO.parent / "shared" / "models"))

from facefind.calibration import DEFAULT_MAX_FPIR, Calibration  # noqa: E402
from facefind.evaluate import LabelledSet, load_labelled, open_set_table  # noqa: E402
from facefind.faces import load_backend  # noqa: E402
from facefind.recognizers import BUILTIN, FLIPPED, MIRRORED, builtin_settings  # noqa: E402
from facefind.settings import Settings  # noqa: E402

FOLDERS = ("lfw_dev", "glint_dev12")
# One person filed under two names in LFW: their pairs are genuine, not impostor pairs. Found by
# `top_impostors` (10 of the 12 highest "different-person" pairs were these; the next ones are
# different people, the Phelps twins first), they set the threshold at the measured floor.
SAME_PERSON = {
    "lfw_dev/Sepp_Blatter": "lfw_dev/Joseph_Blatter",
    "lfw_dev/Noer_Muis": "lfw_dev/Noer_Moeis",
    "lfw_dev/Prince_Felipe": "lfw_dev/Felipe_De_Borbon",
}


def merged(s: LabelledSet) -> LabelledSet:
    """`s` with each person of SAME_PERSON under one name."""
    persons = [SAME_PERSON.get(p, p) for p in s.persons]
    return LabelledSet(
        s.root, s.paths, persons, s.embeddings, s.detected, folders=s.folders, folder_names=s.folder_names
    )


# The built-in recognizers' settings, by variant name.
VARIANTS = {
    "plain": builtin_settings(BUILTIN),
    "flip": builtin_settings(FLIPPED),
    "mirror": builtin_settings(MIRRORED),
}


def labelled(datasets: Path, settings: Settings, cache: Path, workers: int) -> LabelledSet:
    backend = load_backend(settings)
    cached = cache / f"{backend.model_id}.npz"
    if cached.exists():
        z = np.load(cached, allow_pickle=False)
        return LabelledSet(
            Path(str(z["root"])),
            z["paths"].tolist(),
            z["persons"].tolist(),
            z["embeddings"],
            z["detected"],
            folders=z["folders"],
            folder_names=list(FOLDERS),
        )
    started = time.monotonic()
    done = {"n": 0}

    def progress(n: int, total: int) -> None:
        if n - done["n"] >= 500 or n == total:
            done["n"] = n
            print(f"  {backend.model_id}: {n}/{total} photos, {time.monotonic() - started:.0f} s", flush=True)

    s = load_labelled([datasets / f for f in FOLDERS], settings, workers, lambda: backend, progress)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(
        cached,
        root=str(s.root),
        paths=np.array(s.paths),
        persons=np.array(s.persons),
        embeddings=s.embeddings,
        detected=s.detected,
        folders=s.folders if s.folders is not None else np.zeros(len(s.paths), np.int32),
    )
    return s


def lfw_only(s: LabelledSet) -> LabelledSet:
    """The photos of lfw_dev (folder 0) as a set of their own."""
    lfw = np.flatnonzero(s.folders == 0) if s.folders is not None else np.arange(len(s.paths))
    return LabelledSet(
        s.root,
        [s.paths[i] for i in lfw],
        [s.persons[i] for i in lfw],
        s.embeddings[lfw],
        s.detected[lfw],
        folder_names=s.folder_names[:1],
    )


def lfw_protocol(s: LabelledSet, calibration: Calibration, max_fpir: float = DEFAULT_MAX_FPIR) -> dict:
    """Stated vs measured FPIR on lfw_dev (folder 0) as a new user would search it: the protocol of
    `facefind evaluate` (evaluate.first_photo_split), at search's decision."""
    table = open_set_table(lfw_only(s), calibration, max_fpir)
    assert table is not None, "lfw_dev has mated and non-mated probes"
    counts = ("gallery_faces", "gallery_people", "mated_probes", "non_mated_probes")
    return {**{k: table[k] for k in counts}, **table["default"]}


def top_impostors(s: LabelledSet, count: int = 12) -> list[str]:
    """The highest different-person pairs, by file: in lfw_dev most are one person filed under two
    names (Joseph_Blatter / Sepp_Blatter ...), and they set the measured floor (docs/benchmarks.md)."""
    scores, first, second = s.pairs()
    different = s.labels[first] != s.labels[second]
    scores, first, second = scores[different], first[different], second[different]
    top = np.argsort(-scores)[:count]
    return [f"{scores[k]:.3f} {Path(s.paths[first[k]]).name} {Path(s.paths[second[k]]).name}" for k in top]


def held_out(s: LabelledSet, seed: int = 0) -> tuple[LabelledSet, list[str]]:
    """The set with half of lfw_dev's people removed (their names returned), for an honest check."""
    lfw_people = sorted({p for p, f in zip(s.persons, s.folders, strict=True) if f == 0})  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    out = set(rng.permutation(lfw_people)[: len(lfw_people) // 2].tolist())
    keep = [i for i, p in enumerate(s.persons) if p not in out]
    part = LabelledSet(
        s.root,
        [s.paths[i] for i in keep],
        [s.persons[i] for i in keep],
        s.embeddings[keep],
        s.detected[keep],
        folders=None if s.folders is None else s.folders[keep],
        folder_names=s.folder_names,
    )
    return part, sorted(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/facefind-calibration"))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--resamples", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--output-dir", type=Path, default=REPO / "src" / "facefind" / "data")
    ap.add_argument("--embed-only", action="store_true", help="fill the cache and stop")
    ap.add_argument("--check-only", action="store_true", help="only the FPIR checks, with the shipped files")
    args = ap.parse_args()
    if not (args.datasets / "lfw_dev").is_dir():
        sys.exit(
            f"{args.datasets / 'lfw_dev'} is missing: give --datasets (the folder of ../shared/datasets)"
        )
    for variant in args.variants:
        s = merged(labelled(args.datasets, VARIANTS[variant], args.cache, args.workers))
        model_id = load_backend(VARIANTS[variant]).model_id
        if args.embed_only:
            continue
        path = args.output_dir / f"calibration-{model_id}.json"
        if args.check_only:
            calibration = Calibration.from_dict(json.loads(path.read_text()))
        else:
            started = time.monotonic()
            calibration = s.calibration(model_id, resamples=args.resamples)
            print(f"{model_id}: fitted in {time.monotonic() - started:.0f} s", flush=True)
            path.write_text(json.dumps(calibration.to_dict(), indent=1) + "\n")
            print(f"wrote {path}: {json.dumps(calibration.provenance)}", flush=True)
        print("  highest different-person pairs (check the labels):", top_impostors(s), flush=True)
        print(
            "  lfw_dev protocol, same people calibrated (in-sample; stricter than held out on lfw_dev):",
            lfw_protocol(s, calibration),
            flush=True,
        )
        part, out = held_out(s)
        honest = part.calibration(model_id, resamples=0)  # the check's threshold is measured: no tail
        only_out = LabelledSet(
            s.root,
            [p for p, q in zip(s.paths, s.persons, strict=True) if q in set(out)],
            [q for q in s.persons if q in set(out)],
            s.embeddings[[q in set(out) for q in s.persons]],
            s.detected[[q in set(out) for q in s.persons]],
            folders=np.zeros(sum(q in set(out) for q in s.persons), np.int32),
            folder_names=["lfw_dev"],
        )
        print(
            f"  lfw_dev protocol on {len(out)} people held out of a calibration on the rest "
            f"({honest.provenance['people']} people, {honest.impostor_pairs} impostor pairs):",
            lfw_protocol(only_out, honest),
        )


if __name__ == "__main__":
    main()
