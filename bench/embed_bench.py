"""Embedding cost and agreement: SFace one chip a forward pass (cv2.FaceRecognizerSF.feature, as
before) against a batch a forward pass (faces/opencv.py), and optionally another ONNX file of the
same network (e.g. an int8-quantised SFace) run on cv2.dnn as a registered recognizer would be.

    python bench/embed_bench.py [--rounds 3] [--model sface_int8.onnx] [--no-accuracy] [--json]

1. Speed, one thread (as in an ingest worker), on the chips of real photos: glint_dev12 (one face a
   photo: the photo's chip and its mirror image; every --photos'th) and face_recognition_multiface
   (every face of a photo at once). The ways take turns photo by photo; CPU ms per face, medians
   of --rounds.
2. Agreement: cosine between the embeddings of both ways for every chip (plain and flip).
3. --model: ms per chip against SFace's, cosine to SFace's, and accuracy on lfw_dev (the labelled
   face of each photo, chips cut once and cached under --cache): TAR at FAR 1e-3 over all pairs
   and FNIR at FPIR 0.01 (issue 22's first-photo split, threshold measured on the strangers) for
   SFace plain, SFace flip, the model plain and flip.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

import facefind.evaluate as ev
from facefind import models
from facefind.faces import load_backend
from facefind.faces.onnx import OnnxBackend, RecognizerSpec
from facefind.faces.opencv import OpenCVBackend
from facefind.models import sha256_file
from facefind.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
import machine

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
Chips = list[list[np.ndarray]]  # the chips of each photo


def photo_chips(folder: Path, centre_only: bool = False) -> tuple[list[str], Chips]:
    backend = load_backend(Settings())
    paths, chips = [], []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        image = cv2.imread(str(path))
        if image is None:
            continue
        found = backend.detect(image)
        if centre_only and found:
            cy, cx = image.shape[0] / 2, image.shape[1] / 2
            found = [
                min(
                    found,
                    key=lambda d: (d.box[0] + d.box[2] / 2 - cx) ** 2 + (d.box[1] + d.box[3] / 2 - cy) ** 2,
                )
            ]
        paths.append(str(path))
        chips.append([backend.align(image, d) for d in found])
    return paths, chips


def per_chip(recognizer: cv2.FaceRecognizerSF, flip: bool) -> Callable[[list[np.ndarray]], np.ndarray]:
    """Embeddings the way facefind made them before: one FaceRecognizerSF.feature call a chip."""

    def features(chips: list[np.ndarray]) -> np.ndarray:
        return np.vstack([np.asarray(recognizer.feature(c), np.float32).reshape(1, -1) for c in chips])

    def embed(chips: list[np.ndarray]) -> np.ndarray:
        feats = unit(features(chips))
        return feats if not flip else unit(feats + unit(features([cv2.flip(c, 1) for c in chips])))

    return embed


def unit(x: np.ndarray) -> np.ndarray:
    return (x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)).astype(np.float32)


def speed(systems: dict[str, Callable[[list[np.ndarray]], np.ndarray]], photos: Chips, rounds: int) -> dict:
    """CPU ms per face of each system, one call a photo. The systems take turns photo by photo
    (who goes first rotates) and the time is this thread's CPU time, where all the work is with
    one OpenCV thread: a swing of the machine's load falls on every system alike."""
    names = list(systems)
    cpu = {name: [0.0] * rounds for name in names}
    for embed in systems.values():  # warm up (first passes allocate)
        embed(next(c for c in photos if c))
    for r in range(rounds):
        for i, chips in enumerate(p for p in photos if p):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                started = time.thread_time()
                systems[name](chips)
                cpu[name][r] += time.thread_time() - started
    faces = sum(map(len, photos))
    return {
        name: {
            "cpu_ms_per_face": round(statistics.median(c) * 1000 / faces, 2),
            "rounds": [round(x * 1000 / faces, 2) for x in c],
        }
        for name, c in cpu.items()
    }


def agreement(a: Callable, b: Callable, photos: Chips) -> dict:
    cos = np.concatenate([(a(chips) * b(chips)).sum(1) for chips in photos if chips])
    return {"faces": len(cos), "min": round(float(cos.min()), 6), "median": round(float(np.median(cos)), 6)}


def accuracy(paths: list[str], found: np.ndarray, embeddings: np.ndarray) -> dict:
    persons = [Path(p).parent.name for p in paths]
    labelled = ev.LabelledSet(DATASETS / "lfw_dev", paths, persons, embeddings, found)
    verification = ev.verification(labelled)
    table = ev.open_set_table(labelled, None, 0.01)
    assert table is not None
    return {
        "tar_at_far_1e-3": verification["tar_at_far_0.001"],
        "tar_at_far_1e-4": verification["tar_at_far_0.0001"],
        "fnir_at_fpir_0.01": table["fnir_at_fpir"]["0.01"],
        "rank1": table["rank1"],
    }


_CHIPS: np.ndarray | None = None  # lfw_dev's chips, shared with the forked processes


def _raw_vectors(job: tuple[str, int, int]) -> np.ndarray:
    """Raw vectors of chips[start:stop] and of their mirror images, by the network in `path`."""
    path, start, stop = job
    assert _CHIPS is not None
    cv2.setNumThreads(1)
    net = cv2.dnn.readNetFromONNX(path)
    out = []
    for i in range(start, stop, 8):
        batch = list(_CHIPS[i : min(stop, i + 8)])
        for chips in (batch, [cv2.flip(c, 1) for c in batch]):
            net.setInput(cv2.dnn.blobFromImages(chips, 1.0, (112, 112), (0, 0, 0), swapRB=True))
            out.append(np.asarray(net.forward(), np.float32).reshape(len(chips), -1))
    plain = np.vstack(out[0::2])
    mirrored = np.vstack(out[1::2])
    return np.stack([plain, mirrored])


def lfw_vectors(cache: Path, files: dict[str, Path]) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """lfw_dev's labelled chips (cut once) and each model's raw vectors of them and their mirror
    images (cached by the model file's sha256), computed in two forked processes."""
    global _CHIPS
    from multiprocessing import get_context

    chips_file = cache / "lfw_dev_chips.npz"
    if chips_file.exists():
        z = np.load(chips_file)
        paths, _CHIPS, found = [str(p) for p in z["paths"]], z["chips"], z["found"]
    else:
        paths, chips = photo_chips(DATASETS / "lfw_dev", centre_only=True)
        found = np.array([bool(c) for c in chips])
        _CHIPS = np.stack([c[0] if c else np.zeros((112, 112, 3), np.uint8) for c in chips])
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(chips_file, paths=np.array(paths), chips=_CHIPS, found=found)
    vectors = {}
    for name, path in files.items():
        vectors_file = cache / f"vectors-{sha256_file(path)[:16]}.npy"
        if not vectors_file.exists():
            half = len(_CHIPS) // 2
            jobs = [(str(path), 0, half), (str(path), half, len(_CHIPS))]
            with get_context("fork").Pool(2) as pool:
                np.save(vectors_file, np.concatenate(pool.map(_raw_vectors, jobs), axis=1))
        vectors[name] = np.load(vectors_file)
    return paths, found, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--photos", type=int, default=300, help="glint_dev12 photos timed")
    parser.add_argument("--model", type=Path, help="another ONNX file of SFace (RGB 0..255 input)")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--no-speed", action="store_true", help="only the --model's accuracy")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/facefind-embed-bench"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # as in a worker
    plain = load_backend(Settings())
    flipped = load_backend(Settings(flip_average=True))
    assert isinstance(plain, OpenCVBackend)
    old = cv2.FaceRecognizerSF.create(str(models.resolve(models.SFACE)), "")  # as before
    result: dict = {"machine": machine.describe(), "speed": {}, "agreement": {}}
    sets = (
        {}
        if args.no_speed
        else {
            "glint_dev12": photo_chips(DATASETS / "glint_dev12")[1][:: max(1, 1166 // args.photos)],
            "multiface": photo_chips(DATASETS / "face_recognition_multiface")[1],
        }
    )
    for name, photos in sets.items():
        print(f"{name}: {len(photos)} photos, {sum(map(len, photos))} faces", file=sys.stderr)
        systems = {
            "plain, a chip a pass": per_chip(old, False),
            "plain, batched": plain.embed,
            "flip, a chip a pass": per_chip(old, True),
            "flip, batched": flipped.embed,
        }
        result["speed"][name] = speed(systems, photos, args.rounds)
        result["agreement"][name] = {
            "plain": agreement(per_chip(old, False), plain.embed, photos),
            "flip": agreement(per_chip(old, True), flipped.embed, photos),
        }
    if args.model and args.no_speed:
        result["model"] = {"file": str(args.model)}
    elif args.model:
        spec = RecognizerSpec(
            model_id="candidate",
            path=str(args.model.resolve()),
            sha256=sha256_file(args.model),
            input_size=112,
            dim=128,
            color="rgb",
            mean=0.0,
            std=1.0,
        )
        model = OnnxBackend(spec)
        glint = sets["glint_dev12"]
        result["model"] = {
            "file": str(args.model),
            "speed_glint_dev12": speed(
                {"sface": per_chip(old, False), "model": model.embed}, glint, args.rounds
            ),
            "cosine_to_sface": agreement(plain.embed, model.embed, glint),
        }
    if args.model and not args.no_accuracy:
        files = {"sface": models.resolve(models.SFACE), "model": args.model}
        paths, found, vectors = lfw_vectors(args.cache, files)
        lfw = {}
        for name, (plain_raw, mirrored_raw) in vectors.items():
            one = unit(plain_raw)
            lfw[f"{name} plain"] = accuracy(paths, found, one)
            lfw[f"{name} flip"] = accuracy(paths, found, unit(one + unit(mirrored_raw)))
        result["model"]["lfw_dev"] = lfw
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
