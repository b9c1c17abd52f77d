"""Accuracy on labelled PERSON/IMAGE folders, NIST-style.

Failures to detect are errors, never dropped: a photo without a face scores below every
threshold, so its genuine pairs are false non-matches and, as a probe, it is a miss.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .calibration import Calibration
from .errors import FacefindError
from .faces import FaceBackend
from .images import is_image_path
from .ingest import FileTask, Progress, analyse_files
from .results import FileError
from .settings import Settings

FARS = (1e-2, 1e-3, 1e-4)
FPIR = 0.003
NO_FACE = -np.inf  # below any similarity, whatever the metric


@dataclass
class LabelledSet:
    root: Path
    paths: list[str]
    persons: list[str]
    embeddings: np.ndarray  # rows of failures are zero
    detected: np.ndarray  # bool per image
    errors: list[FileError] = field(default_factory=list)
    # "cosine" for L2-normalised embeddings (ours); "euclidean" scores -distance (dlib's way).
    metric: str = "cosine"

    def similarity(self, rows: np.ndarray | list[int], cols: np.ndarray | list[int]) -> np.ndarray:
        """Similarity matrix between two subsets of images; failures score NO_FACE."""
        a, b = self.embeddings[rows], self.embeddings[cols]
        if self.metric == "euclidean":
            sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
            sims = -np.sqrt(np.maximum(sq, 0))
        else:
            sims = a @ b.T
        sims[~self.detected[rows], :] = NO_FACE
        sims[:, ~self.detected[cols]] = NO_FACE
        return sims

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.persons)

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, first, second) for all unordered pairs of images; failures score NO_FACE."""
        everything = np.arange(len(self.paths))
        sims = self.similarity(everything, everything)
        first, second = np.triu_indices(len(self.paths), 1)
        return sims[first, second], first, second

    def pair_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """(genuine, impostor) similarities over all unordered pairs of images."""
        scores, first, second = self.pairs()
        same = self.labels[first] == self.labels[second]
        return scores[same], scores[~same]

    def calibration(self, model_id: str) -> Calibration:
        genuine, impostor = self.pair_scores()
        return Calibration.from_scores(
            model_id,
            impostor[impostor > NO_FACE],
            int((genuine > NO_FACE).sum()),
            source=f"{self.root.name} ({len(self.paths)} images, {len(set(self.persons))} identities)",
        )


def load_labelled(
    root: Path,
    settings: Settings,
    workers: int | None,
    backend: Callable[[], FaceBackend],
    on_progress: Progress | None = None,
) -> LabelledSet:
    """Embed the largest face of every photo in ROOT/PERSON/... (files directly in ROOT ignored)."""
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise FacefindError(f"{root}: not a folder. Evaluation wants PERSON/IMAGE folders.")
    tasks: list[FileTask] = []
    persons: dict[str, str] = {}
    for person_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for folder, dirs, names in os.walk(person_dir):
            dirs.sort()
            for name in sorted(names):
                path = Path(folder) / name
                if is_image_path(path):
                    tasks.append(FileTask(str(path), 0, 0))
                    persons[str(path)] = person_dir.name
    if len(set(persons.values())) < 2:
        raise FacefindError(
            f"{root} needs at least two person folders with photos (layout: PERSON/IMAGE); "
            f"found {len(set(persons.values()))}."
        )
    order = {t.path: i for i, t in enumerate(tasks)}
    dim = backend().dim
    embeddings = np.zeros((len(tasks), dim), np.float32)
    detected = np.zeros(len(tasks), bool)
    errors: list[FileError] = []
    for done, result in enumerate(analyse_files(tasks, settings, workers or os.cpu_count() or 1, backend), 1):
        i = order[result.task.path]
        if result.error:
            errors.append(FileError(path=result.task.path, error=result.error))
        elif result.faces:
            embeddings[i] = result.faces[0].embedding  # largest face: whom the photo is of
            detected[i] = True
        if on_progress:
            on_progress(done, len(tasks))
    paths = [t.path for t in tasks]
    return LabelledSet(root, paths, [persons[p] for p in paths], embeddings, detected, errors)


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[float | None, float | None]:
    """(TAR, threshold) where at most `far` of impostors pass; None if too few impostor pairs."""
    if len(impostor) * far < 1:
        return None, None
    descending = np.sort(impostor)[::-1]
    allowed = int(np.floor(far * len(impostor)))
    threshold = float(np.nextafter(descending[allowed], np.float32(np.inf)))
    return float((genuine >= threshold).mean()), threshold


def equal_error_rate(genuine: np.ndarray, impostor: np.ndarray) -> float:
    thresholds = np.unique(np.concatenate([genuine, impostor]))
    gen, imp = np.sort(genuine), np.sort(impostor)
    frr = np.searchsorted(gen, thresholds, side="left") / len(gen)
    far = 1 - np.searchsorted(imp, thresholds, side="left") / len(imp)
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2)


def verification(labelled: LabelledSet) -> dict:
    genuine, impostor = labelled.pair_scores()
    out: dict = {"genuine_pairs": len(genuine), "impostor_pairs": len(impostor)}
    for far in FARS:
        tar, threshold = tar_at_far(genuine, impostor, far)
        out[f"tar_at_far_{far:g}"] = None if tar is None else round(tar, 4)
        out[f"threshold_at_far_{far:g}"] = None if threshold is None else round(threshold, 4)
    out["eer"] = round(equal_error_rate(genuine, impostor), 4) if len(genuine) and len(impostor) else None
    return out


def identification(labelled: LabelledSet, fpir: float = FPIR) -> dict:
    """Open-set 1:N: every other identity enrolled with one photo; the rest probe as strangers."""
    labels = labelled.labels
    identities = sorted(set(labelled.persons))
    enrolled = set(identities[::2])
    gallery: list[int] = []
    for person in sorted(enrolled):
        members = [i for i in np.flatnonzero(labels == person) if labelled.detected[i]]
        if members:
            gallery.append(int(members[0]))
    mated = [i for i in range(len(labels)) if labels[i] in enrolled and i not in gallery]
    non_mated = [i for i in range(len(labels)) if labels[i] not in enrolled]
    if not gallery or not mated or not non_mated:
        return {"note": "too few identities or images for open-set identification"}
    g_labels = labels[gallery]

    def top1(probes: list[int]) -> tuple[np.ndarray, np.ndarray]:
        sims = labelled.similarity(probes, gallery)
        best = sims.argmax(axis=1)
        return sims[np.arange(len(probes)), best], g_labels[best]

    mated_scores, mated_names = top1(mated)
    hit = (mated_names == labels[mated]) & labelled.detected[mated]
    non_mated_scores, _ = top1(non_mated)
    threshold = threshold_at_fpir(non_mated_scores, fpir)
    fnir = float(1 - (hit & (mated_scores >= threshold)).mean())
    return {
        "enrolled_identities": len(gallery),
        "mated_probes": len(mated),
        "non_mated_probes": len(non_mated),
        "rank1": round(float(hit.mean()), 4),
        "fpir": fpir,
        "fpir_achieved": round(float((non_mated_scores >= threshold).mean()), 4),
        "fnir_at_fpir": round(fnir, 4),
        "threshold": round(threshold, 4),
    }


def threshold_at_fpir(non_mated_scores: np.ndarray, fpir: float) -> float:
    """Lowest threshold at which at most `fpir` of the non-mated probes' top-1 scores pass."""
    allowed = int(np.floor(fpir * len(non_mated_scores)))
    descending = np.sort(non_mated_scores)[::-1]
    return float(np.nextafter(descending[allowed], np.float32(np.inf)))


def read_groups(path: Path) -> dict[str, str]:
    groups: dict[str, str] = {}
    with path.open(newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or row[0].strip().lower() == "person":
                continue
            if len(row) < 2:
                raise FacefindError(f"{path}:{n}: expected 'person,group', got {row!r}")
            groups[row[0].strip()] = row[1].strip()
    return groups


def per_group(labelled: LabelledSet, groups: dict[str, str], threshold: float) -> dict:
    """FMR and FNMR per group at one global threshold (impostor pairs within the group)."""
    scores, first, second = labelled.pairs()
    a, b = labelled.labels[first], labelled.labels[second]
    group_of = np.vectorize(lambda p: groups.get(p, ""), otypes=[object])
    ga, gb = group_of(a), group_of(b)
    out: dict = {"threshold": round(threshold, 4), "groups": {}}
    for group in sorted(set(groups.values())):
        both = (ga == group) & (gb == group)
        gen = scores[both & (a == b)]
        imp = scores[both & (a != b)]
        out["groups"][group] = {
            "identities": sum(1 for p in set(labelled.persons) if groups.get(p) == group),
            "genuine_pairs": len(gen),
            "impostor_pairs": len(imp),
            "fnmr": round(float((gen < threshold).mean()), 5) if len(gen) else None,
            "fmr": round(float((imp >= threshold).mean()), 6) if len(imp) else None,
        }
    out["identities_without_group"] = sorted(set(labelled.persons) - set(groups))
    return out


def report(labelled: LabelledSet, threshold: float | None = None) -> dict:
    out: dict = {
        "folder": str(labelled.root),
        "images": len(labelled.paths),
        "identities": len(set(labelled.persons)),
        "failures_to_detect": int((~labelled.detected).sum()) - len(labelled.errors),
        "unreadable": len(labelled.errors),
        "failure_rate": round(float((~labelled.detected).mean()), 4),
        "failed_files": [p for p, ok in zip(labelled.paths, labelled.detected, strict=True) if not ok],
        "verification": verification(labelled),
        "identification": identification(labelled),
    }
    groups_csv = labelled.root / "groups.csv"
    if groups_csv.exists() and threshold is not None:
        out["per_group"] = per_group(labelled, read_groups(groups_csv), threshold)
    return out


def plot(curves: dict[str, LabelledSet], path: Path) -> None:
    """DET (FNMR vs FMR) and ROC (TAR vs FAR) curves of one or more systems, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (det, roc) = plt.subplots(1, 2, figsize=(11, 4.5))
    for label, labelled in curves.items():
        genuine, impostor = labelled.pair_scores()
        thresholds = np.unique(np.concatenate([genuine, impostor]))
        fmr = 1 - np.searchsorted(np.sort(impostor), thresholds, side="left") / len(impostor)
        fnmr = np.searchsorted(np.sort(genuine), thresholds, side="left") / len(genuine)
        measurable = fmr > 0  # a log axis cannot show FMR 0
        det.loglog(fmr[measurable], np.maximum(fnmr[measurable], 1 / len(genuine)), label=label)
        roc.semilogx(fmr[measurable], 1 - fnmr[measurable], label=label)
    det.set(xlabel="false match rate (FMR)", ylabel="false non-match rate (FNMR)", title="DET")
    roc.set(xlabel="false accept rate (FAR)", ylabel="true accept rate (TAR)", title="ROC", ylim=(0, 1.01))
    for ax in (det, roc):
        ax.grid(True, which="both", alpha=0.3)
        for far in FARS:
            ax.axvline(far, color="grey", lw=0.5, ls=":")
        ax.legend()
    first = next(iter(curves.values()))
    genuine, impostor = first.pair_scores()
    fig.suptitle(
        f"{first.root.name}: {len(first.paths)} images, {len(set(first.persons))} identities, "
        f"{len(genuine)} genuine / {len(impostor)} impostor pairs"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def clustering_scores(labels: np.ndarray, truth: np.ndarray) -> dict:
    """Pairwise and BCubed precision/recall/F1 of a grouping against true identities.

    Unassigned faces (label -1) count as groups of one, so leaving a face out costs recall.
    """
    labels = np.asarray(labels, np.int64).copy()
    lonely = labels < 0
    labels[lonely] = labels.max(initial=-1) + 1 + np.arange(int(lonely.sum()))
    _, truth = np.unique(np.asarray(truth), return_inverse=True)
    joint = np.zeros((labels.max() + 1, truth.max() + 1), np.int64)
    np.add.at(joint, (labels, truth), 1)
    in_group, in_truth = joint.sum(1), joint.sum(0)
    both = joint[labels, truth]
    b_precision = float(np.mean(both / in_group[labels]))
    b_recall = float(np.mean(both / in_truth[truth]))

    def pairs(counts: np.ndarray) -> float:
        return float((counts * (counts - 1) / 2).sum())

    same_both, same_group, same_truth = pairs(joint), pairs(in_group), pairs(in_truth)
    p_precision = same_both / same_group if same_group else 1.0
    p_recall = same_both / same_truth if same_truth else 1.0

    def f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r else 0.0

    return {
        "bcubed_precision": round(b_precision, 4),
        "bcubed_recall": round(b_recall, 4),
        "bcubed_f1": round(f1(b_precision, b_recall), 4),
        "pairwise_precision": round(p_precision, 4),
        "pairwise_recall": round(p_recall, 4),
        "pairwise_f1": round(f1(p_precision, p_recall), 4),
        "persons_found": int((np.bincount(labels) > 0).sum() - lonely.sum()),
        "identities": int(truth.max() + 1),
        "unassigned_share": round(float(lonely.mean()), 4),
    }
