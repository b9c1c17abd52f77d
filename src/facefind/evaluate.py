"""Accuracy on labelled PERSON/IMAGE folders, NIST-style.

Failures to detect are errors, never dropped: a photo without a face scores below every
threshold, so its genuine pairs are false non-matches and, as a probe, it is a miss.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .analysis import FileTask, analyse_files
from .calibration import DEFAULT_MAX_FMR, DEFAULT_MAX_FPIR, Calibration, Tail
from .errors import FacefindError
from .faces import Face, FaceBackend
from .images import is_image_path
from .ingest import Progress
from .results import FileError
from .settings import Settings

FARS = (1e-2, 1e-3, 1e-4)
FPIRS = (0.1, 0.01, 0.003)
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
    # Index of the labelled folder each image came from; pairs across folders are never formed.
    folders: np.ndarray | None = None
    folder_names: list[str] = field(default_factory=list)  # by that index

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
        if self.folders is not None and len(set(self.folders.tolist())) > 1:
            within = self.folders[first] == self.folders[second]
            first, second = first[within], second[within]
        return sims[first, second], first, second

    def pair_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """(genuine, impostor) similarities over all unordered pairs of images."""
        scores, first, second = self.pairs()
        _, owner = np.unique(self.labels, return_inverse=True)  # integers: millions of pairs
        same = owner[first] == owner[second]
        return scores[same], scores[~same]

    def calibration(self, model_id: str, resamples: int = 100) -> Calibration:
        genuine, impostor = self.pair_scores()
        folders = self.folders if self.folders is not None else np.zeros(len(self.paths), np.int32)
        per_folder = []
        for index, name in enumerate(self.folder_names or [self.root.name]):
            mine = folders == index
            people = {p for p, m in zip(self.persons, mine, strict=True) if m}
            per_folder.append(
                {
                    "folder": name,
                    "people": len(people),
                    "photos": int(mine.sum()),
                    "photos_without_a_face": int((mine & ~self.detected).sum()),
                }
            )
        return Calibration.from_scores(
            model_id,
            impostor[impostor > NO_FACE],
            int((genuine > NO_FACE).sum()),
            source=f"{self.root.name} ({len(self.paths)} images, {len(set(self.persons))} identities)",
            resamples=self.identity_resamples(resamples),
            provenance={
                "folders": per_folder,
                "people": len(set(self.persons)),
                "photos": len(self.paths),
                "labelled_face": "the face nearest the image centre",
                "pairs": "every two photos of one folder in which a face was found",
                "bootstrap_resamples": resamples,
            },
        )

    def identity_resamples(self, count: int, seed: int = 0) -> Iterator[tuple[np.ndarray, int]]:
        """`count` bootstrap resamples of the identities (drawn with replacement), each as the
        highest of its impostor scores and its number of impostor pairs (what Tail.fit_top needs).

        Impostor pairs are not independent: the highest ones come from a few look-alike identities,
        so resampling identities, not pairs, shows how much the tail rests on which people are in
        the set. A resample drawing person a c_a times and b c_b times holds each a-b pair
        c_a * c_b times (a person drawn twice is not an impostor of itself); weighting the measured
        pairs that way gives exactly the resample's scores without forming its millions of pairs.
        """
        identities, owner = np.unique(self.labels, return_inverse=True)
        scores, first, second = self.pairs()
        a, b = owner[first], owner[second]
        keep = (a != b) & (scores > NO_FACE)
        scores, a, b = scores[keep], a[keep], b[keep]
        n = len(scores)
        if not n:
            return
        # Resamples hold about n pairs; keep 20x the share the tail model is fitted to.
        top_count = min(n, 20 * Tail.size(n))
        top = np.argpartition(scores, n - top_count)[n - top_count :]
        scores, a, b = scores[top], a[top], b[top]
        faces = np.bincount(owner[self.detected], minlength=len(identities))
        folder = np.zeros(len(identities), np.int64)
        if self.folders is not None:
            folder[owner] = self.folders
        rng = np.random.default_rng(seed)
        for _ in range(count):
            drawn = np.bincount(rng.integers(0, len(identities), len(identities)), minlength=len(identities))
            weight = drawn[a] * drawn[b]
            per_identity = (drawn * faces).astype(np.float64)
            by_folder = np.bincount(folder, weights=per_identity)
            squares = np.bincount(folder, weights=per_identity**2)
            pairs = round(float((by_folder**2 - squares).sum()) / 2)
            sample = np.repeat(scores, weight)
            if pairs >= 1000 and len(sample) > Tail.size(pairs):
                yield sample, pairs


def load_labelled(
    roots: Path | Sequence[Path],
    settings: Settings,
    workers: int | None,
    backend: Callable[[], FaceBackend],
    on_progress: Progress | None = None,
) -> LabelledSet:
    """Embed the labelled face of every photo in ROOT/PERSON/... for each ROOT (files directly in a
    ROOT are ignored).

    The labelled face is the one whose box centre is nearest the image centre: labelled sets crop
    around the person they name (LFW centres the labelled face; others may stand beside them).
    With one folder a person is its folder's name; with several, FOLDER/PERSON, and only pairs
    within a folder count (the same person may be in two folders under two labels).
    """
    roots = [roots] if isinstance(roots, Path) else list(roots)
    if not roots:
        raise FacefindError("no labelled folder given. Give one or more folders of PERSON/IMAGE folders.")
    resolved = [r.expanduser().resolve() for r in roots]
    if len(set(resolved)) < len(resolved):
        raise FacefindError("the same labelled folder was given twice; give each folder once.")
    tasks: list[FileTask] = []
    persons: dict[str, str] = {}
    folder_of: dict[str, int] = {}
    for index, root in enumerate(resolved):
        if not root.is_dir():
            raise FacefindError(f"{root}: not a folder. Evaluation wants PERSON/IMAGE folders.")
        found: set[str] = set()
        for person_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            label = person_dir.name if len(resolved) == 1 else f"{root.name}/{person_dir.name}"
            for folder, dirs, names in os.walk(person_dir):
                dirs.sort()
                for name in sorted(names):
                    path = Path(folder) / name
                    if is_image_path(path):
                        tasks.append(FileTask(str(path), 0, 0))
                        persons[str(path)] = label
                        folder_of[str(path)] = index
                        found.add(label)
        if len(found) < 2:
            raise FacefindError(
                f"{root} needs at least two person folders with photos (layout: PERSON/IMAGE); "
                f"found {len(found)}."
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
            embeddings[i] = labelled_face(result.faces, result.shape).embedding
            detected[i] = True
        if on_progress:
            on_progress(done, len(tasks))
    paths = [t.path for t in tasks]
    shown = resolved[0] if len(resolved) == 1 else Path(" + ".join(r.name for r in resolved))
    return LabelledSet(
        shown,
        paths,
        [persons[p] for p in paths],
        embeddings,
        detected,
        errors,
        folders=np.array([folder_of[p] for p in paths], np.int32),
        folder_names=[r.name for r in resolved],
    )


def labelled_face(faces: list[Face], shape: tuple[int, int] | None) -> Face:
    """The face nearest the image centre (box centre to image centre); the largest without a shape."""
    if shape is None:
        return faces[0]
    cy, cx = shape[0] / 2, shape[1] / 2

    def distance(face: Face) -> float:
        x, y, w, h = face.box
        return (x + w / 2 - cx) ** 2 + (y + h / 2 - cy) ** 2

    return min(faces, key=distance)


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
    genuine, impostor = _genuine_impostor(labelled)
    out: dict = {"genuine_pairs": len(genuine), "impostor_pairs": len(impostor)}
    for far in FARS:
        tar, threshold = tar_at_far(genuine, impostor, far)
        out[f"tar_at_far_{far:g}"] = None if tar is None else round(tar, 4)
        out[f"threshold_at_far_{far:g}"] = None if threshold is None else round(threshold, 4)
    out["eer"] = round(equal_error_rate(genuine, impostor), 4) if len(genuine) and len(impostor) else None
    return out


def _genuine_impostor(labelled: LabelledSet) -> tuple[np.ndarray, np.ndarray]:
    """LabelledSet.pair_scores row by row: LFW's 20M pairs without 20M-long arrays of names."""
    _, owner = np.unique(labelled.labels, return_inverse=True)
    everything = np.arange(len(labelled.paths))
    sims = labelled.similarity(everything, everything)
    genuine, impostor = [], []
    for i in range(len(everything) - 1):
        row, same = sims[i, i + 1 :], owner[i + 1 :] == owner[i]
        genuine.append(row[same])
        impostor.append(row[~same])
    if not genuine:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    return np.concatenate(genuine), np.concatenate(impostor)


@dataclass
class OpenSet:
    """Open-set 1:N trials pooled over splits that leave identities out of the gallery."""

    splits: int
    gallery_sizes: np.ndarray  # faces in the gallery, per split
    mated_scores: np.ndarray  # top-1 similarity of each mated probe (its person is in the gallery)
    mated_hits: np.ndarray  # bool: that top-1 face is of the probe's person
    mated_split: np.ndarray  # split of each mated probe
    non_mated_scores: np.ndarray  # top-1 similarity of each probe whose person is not in the gallery
    non_mated_split: np.ndarray

    def threshold_at(self, fpir: float) -> float:
        """The lowest threshold at which at most `fpir` of the non-mated probes return anyone."""
        return threshold_at_fpir(self.non_mated_scores, fpir)

    def rates(self, thresholds: np.ndarray) -> tuple[float, float]:
        """(FPIR, FNIR) when split i decides at thresholds[i]."""
        fpir = float((self.non_mated_scores >= thresholds[self.non_mated_split]).mean())
        found = self.mated_hits & (self.mated_scores >= thresholds[self.mated_split])
        return fpir, float(1 - found.mean())

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(FPIR, FNIR) at every threshold, for a DET plot."""
        cuts = np.unique(np.concatenate([self.mated_scores, self.non_mated_scores]))
        cuts = cuts[np.isfinite(cuts)]
        fpir = 1 - np.searchsorted(np.sort(self.non_mated_scores), cuts, side="left") / len(
            self.non_mated_scores
        )
        found = np.sort(self.mated_scores[self.mated_hits])
        fnir = 1 - (len(found) - np.searchsorted(found, cuts, side="left")) / len(self.mated_scores)
        return fpir, fnir

    def summary(self, calibration: Calibration | None, max_fpir: float, max_fmr: float) -> dict:
        out: dict = {
            "splits": self.splits,
            "gallery_faces": int(np.median(self.gallery_sizes)),
            "mated_probes": len(self.mated_scores),
            "non_mated_probes": len(self.non_mated_scores),
            "rank1": round(float(self.mated_hits.mean()), 4),
            "fnir_at_fpir": {},
        }
        for fpir in FPIRS:
            if fpir * len(self.non_mated_scores) >= 1:
                _, fnir = self.rates(np.full(self.splits, self.threshold_at(fpir)))
                out["fnir_at_fpir"][f"{fpir:g}"] = round(fnir, 4)
        if calibration is not None:
            # As search decides: a threshold for max_fpir at each split's gallery size ...
            cuts = np.array([calibration.threshold_for_fpir(max_fpir, int(n)) for n in self.gallery_sizes])
            fpir, fnir = self.rates(cuts)
            out["default"] = {
                "stated_fpir": max_fpir,
                "measured_fpir": round(fpir, 4),
                "fnir": round(fnir, 4),
                "threshold": round(float(np.median(cuts)), 4),
            }
            # ... and as it did before: one threshold per comparison, whatever the gallery size.
            fpir, fnir = self.rates(np.full(self.splits, calibration.threshold(max_fmr)))
            out["per_comparison_rule"] = {
                "max_fmr": max_fmr,
                "measured_fpir": round(fpir, 4),
                "fnir": round(fnir, 4),
            }
        return out


def threshold_at_fpir(non_mated_scores: np.ndarray, fpir: float) -> float:
    """Lowest threshold at which at most `fpir` of the non-mated probes' top-1 scores pass."""
    descending = np.sort(non_mated_scores)[::-1]
    allowed = min(int(np.floor(fpir * len(descending))), len(descending) - 1)
    return float(np.nextafter(descending[allowed], np.float32(np.inf)))


def open_set(labelled: LabelledSet, splits: int = 50, seed: int = 0) -> OpenSet | None:
    """Leave-identities-out 1:N trials, as a catalog sees them.

    In each split half the identities are enrolled with all their photos except a third (at
    least one, for identities with two or more), which probe as mated searches; every photo of
    the other identities probes as a stranger. A photo without a face is in no gallery, and as a
    probe it is a miss (mated) or finds no one (non-mated).
    """
    labels = labelled.labels
    identities = sorted(set(labelled.persons))
    if len(identities) < 4:
        return None
    members = {p: np.flatnonzero(labels == p) for p in identities}
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    m_scores: list[np.ndarray] = []
    m_hits: list[np.ndarray] = []
    n_scores: list[np.ndarray] = []
    m_split: list[np.ndarray] = []
    n_split: list[np.ndarray] = []
    for _ in range(splits):
        enrolled = rng.permutation(identities)[: len(identities) // 2]
        gallery, mated = [], []
        for person in enrolled:
            photos = rng.permutation(members[person])
            held = max(1, len(photos) // 3) if len(photos) >= 2 else 0
            mated += list(photos[:held])
            gallery += [i for i in photos[held:] if labelled.detected[i]]
        non_mated = np.flatnonzero(~np.isin(labels, enrolled))
        if not gallery or not mated:
            continue
        for probes, scores, hits in ((mated, m_scores, m_hits), (non_mated, n_scores, None)):
            sims = labelled.similarity(probes, gallery)
            best = sims.argmax(axis=1)
            scores.append(sims[np.arange(len(probes)), best])
            if hits is not None:
                hits.append(labels[np.asarray(gallery)[best]] == labels[probes])
        sizes.append(len(gallery))
        m_split.append(np.full(len(mated), len(sizes) - 1))
        n_split.append(np.full(len(non_mated), len(sizes) - 1))
    if not sizes:
        return None
    return OpenSet(
        splits=len(sizes),
        gallery_sizes=np.asarray(sizes),
        mated_scores=np.concatenate(m_scores),
        mated_hits=np.concatenate(m_hits),
        mated_split=np.concatenate(m_split),
        non_mated_scores=np.concatenate(n_scores),
        non_mated_split=np.concatenate(n_split),
    )


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


def report(
    labelled: LabelledSet,
    threshold: float | None = None,
    calibration: Calibration | None = None,
    max_fpir: float = DEFAULT_MAX_FPIR,
    pairs: Path | None = None,
) -> dict:
    """Verification (1:1) and open-set identification (1:N) figures; with a calibration, also the
    FPIR and FNIR that search's default decision (`max_fpir` at the gallery size) gives. Folders
    with people of one photo (LFW-style) also get the fixed open-set table (OPEN_SET_PROTOCOL);
    a pairs file adds the LFW pairs accuracy."""
    trials = open_set(labelled)
    out: dict = {
        "folder": str(labelled.root),
        "images": len(labelled.paths),
        "identities": len(set(labelled.persons)),
        "failures_to_detect": int((~labelled.detected).sum()) - len(labelled.errors),
        "unreadable": len(labelled.errors),
        "failure_rate": round(float((~labelled.detected).mean()), 4),
        "failed_files": [p for p, ok in zip(labelled.paths, labelled.detected, strict=True) if not ok],
        "verification": verification(labelled),
        "identification": (
            trials.summary(calibration, max_fpir, DEFAULT_MAX_FMR)
            if trials
            else {"note": "open-set identification needs at least 4 identities"}
        ),
    }
    table = open_set_table(labelled, calibration, max_fpir)
    if table is not None:
        out["open_set"] = table
    if pairs is not None:
        out["pairs"] = {"file": str(pairs), **pairs_accuracy(labelled, read_pairs(pairs, labelled))}
    groups_csv = labelled.root / "groups.csv"
    if groups_csv.exists() and threshold is not None:
        out["per_group"] = per_group(labelled, read_groups(groups_csv), threshold)
    return out


def plot(curves: dict[str, LabelledSet], path: Path) -> None:
    """DET (FNMR vs FMR) and ROC (TAR vs FAR) curves of one or more systems, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (det, roc, ident) = plt.subplots(1, 3, figsize=(16, 4.5))
    for label, labelled in curves.items():
        trials = open_set(labelled)
        if trials is not None:
            fpir, fnir = trials.curve()
            shown = fpir > 0
            ident.loglog(fpir[shown], np.maximum(fnir[shown], 1 / len(trials.mated_scores)), label=label)
        genuine, impostor = labelled.pair_scores()
        thresholds = np.unique(np.concatenate([genuine, impostor]))
        fmr = 1 - np.searchsorted(np.sort(impostor), thresholds, side="left") / len(impostor)
        fnmr = np.searchsorted(np.sort(genuine), thresholds, side="left") / len(genuine)
        measurable = fmr > 0  # a log axis cannot show FMR 0
        det.loglog(fmr[measurable], np.maximum(fnmr[measurable], 1 / len(genuine)), label=label)
        roc.semilogx(fmr[measurable], 1 - fnmr[measurable], label=label)
    det.set(xlabel="false match rate (FMR)", ylabel="false non-match rate (FNMR)", title="DET")
    roc.set(xlabel="false accept rate (FAR)", ylabel="true accept rate (TAR)", title="ROC", ylim=(0, 1.01))
    ident.set(
        xlabel="false positive identification rate (FPIR)",
        ylabel="false negative identification rate (FNIR)",
        title="1:N DET, identities left out of the gallery",
    )
    for ax, marks in ((det, FARS), (roc, FARS), (ident, FPIRS)):
        ax.grid(True, which="both", alpha=0.3)
        for rate in marks:
            ax.axvline(rate, color="grey", lw=0.5, ls=":")
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


# The open-set table and LFW pairs (issue 22) ------------------------------------------------
# A fixed, repeatable protocol for LFW-style folders (many people with one photo): no random
# splits, so two systems or two versions are scored on exactly the same searches.

OPEN_SET_PROTOCOL = (
    "gallery = every photo but the first of each person with 2+ photos; mated probes = those first "
    "photos; non-mated probes (strangers) = people with one photo"
)


def wilson_interval(hits: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% (by default) Wilson score interval of a binomial rate; (0, 1) when there are no trials."""
    if trials == 0:
        return 0.0, 1.0
    p = hits / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


@dataclass
class FirstPhotoSplit:
    """The open-set protocol of issue 22 over one labelled set (indices into it)."""

    gallery: np.ndarray  # photos with a face, enrolled
    mated: np.ndarray  # the first photo of each person with 2+ photos
    non_mated: np.ndarray  # the photo of each person with exactly one
    mated_scores: np.ndarray  # top-1 similarity (NO_FACE when the probe has no face)
    mated_hits: np.ndarray  # bool: that top-1 face is of the probe's person
    non_mated_scores: np.ndarray

    def rates(self, threshold: float) -> tuple[int, int]:
        """(false positives among strangers, misses among mated probes) at one threshold."""
        false_positives = int((self.non_mated_scores >= threshold).sum())
        found = int((self.mated_hits & (self.mated_scores >= threshold)).sum())
        return false_positives, len(self.mated) - found


def first_photo_split(labelled: LabelledSet) -> FirstPhotoSplit | None:
    """Gallery, mated and non-mated probes as OPEN_SET_PROTOCOL says ("first" in path order).

    A gallery photo without a face is not enrolled; a probe without a face finds no one (a miss
    when mated). None unless there is at least one mated and one non-mated probe.
    """
    labels = labelled.labels
    by_person: dict[str, list[int]] = {}
    for i in sorted(range(len(labelled.paths)), key=lambda i: labelled.paths[i]):
        by_person.setdefault(labelled.persons[i], []).append(i)
    gallery = [i for photos in by_person.values() if len(photos) >= 2 for i in photos[1:]]
    gallery_arr = np.asarray([i for i in gallery if labelled.detected[i]], np.int64)
    mated = np.asarray([p[0] for p in by_person.values() if len(p) >= 2], np.int64)
    non_mated = np.asarray([p[0] for p in by_person.values() if len(p) == 1], np.int64)
    if not len(mated) or not len(non_mated) or not len(gallery_arr):
        return None
    m_scores, m_best = _top1_in(labelled, mated, gallery_arr)
    n_scores, _ = _top1_in(labelled, non_mated, gallery_arr)
    return FirstPhotoSplit(
        gallery_arr,
        mated,
        non_mated,
        m_scores,
        (labels[gallery_arr[m_best]] == labels[mated]) & np.isfinite(m_scores),
        n_scores,
    )


def _top1_in(
    labelled: LabelledSet, probes: np.ndarray, gallery: np.ndarray, block: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 similarity, its position in `gallery`) per probe, in blocks to bound memory."""
    scores, best = np.empty(len(probes)), np.empty(len(probes), np.int64)
    for start in range(0, len(probes), block):
        sims = labelled.similarity(probes[start : start + block], gallery)
        at = sims.argmax(axis=1)
        best[start : start + block] = at
        scores[start : start + block] = sims[np.arange(len(at)), at]
    return scores, best


def open_set_table(labelled: LabelledSet, calibration: Calibration | None, max_fpir: float) -> dict | None:
    """Issue 22's open-set table: at search's default decision (`max_fpir` at the gallery size,
    from the calibration), the FPIR strangers really get (95% Wilson interval) beside the stated
    one, and the FNIR (the right person not first above the threshold)."""
    split = first_photo_split(labelled)
    if split is None:
        return None
    strangers, mated = len(split.non_mated), len(split.mated)
    out: dict = {
        "protocol": OPEN_SET_PROTOCOL,
        "gallery_faces": len(split.gallery),
        "gallery_people": len(set(labelled.labels[split.gallery])),
        "mated_probes": mated,
        "non_mated_probes": strangers,
        "probes_without_face": int(
            (~labelled.detected[np.concatenate([split.mated, split.non_mated])]).sum()
        ),
        "rank1": round(float(split.mated_hits.mean()), 4),
        "fnir_at_fpir": {},
    }
    for fpir in FPIRS:
        if fpir * strangers >= 1:
            out["fnir_at_fpir"][f"{fpir:g}"] = round(
                split.rates(threshold_at_fpir(split.non_mated_scores, fpir))[1] / mated, 4
            )
    if calibration is not None:
        threshold = calibration.threshold_for_fpir(max_fpir, len(split.gallery))
        false_positives, misses = split.rates(threshold)
        out["default"] = {
            "stated_fpir": max_fpir,
            "threshold": round(threshold, 4),
            "threshold_extrapolated": calibration.estimate(threshold).extrapolated,
            "measured_fpir": round(false_positives / strangers, 4),
            "fpir_ci95": [round(x, 4) for x in wilson_interval(false_positives, strangers)],
            "false_positives": false_positives,
            "fnir": round(misses / mated, 4),
            "fnir_ci95": [round(x, 4) for x in wilson_interval(misses, mated)],
            "misses": misses,
        }
    return out


@dataclass
class Pair:
    fold: str
    first: int  # index into the labelled set
    second: int
    same: bool


def read_pairs(path: Path, labelled: LabelledSet) -> list[Pair]:
    """LFW-style pairs, tab-separated: fold, person_a, image_a, person_b, image_b, same (1/0);
    a header line is skipped. Every photo named must be in the labelled set."""
    where = {
        (p, Path(path_).name): i
        for i, (p, path_) in enumerate(zip(labelled.persons, labelled.paths, strict=True))
    }
    pairs: list[Pair] = []
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise FacefindError(f"{path}: cannot read the pairs file ({e.strerror}).") from None
    for n, line in enumerate(lines, 1):
        row = [c.strip() for c in line.split("\t")]
        if not line.strip() or row[0].lower() == "fold":
            continue
        if len(row) != 6 or row[5] not in ("0", "1"):
            raise FacefindError(
                f"{path}:{n}: expected 6 tab-separated columns 'fold person_a image_a person_b image_b same' "
                f"with same 1 or 0, got {line!r}"
            )
        ends = []
        for person, image in ((row[1], row[2]), (row[3], row[4])):
            if (person, Path(image).name) not in where:
                raise FacefindError(
                    f"{path}:{n}: {person}/{image} is not in {labelled.root} "
                    "(pairs must name photos of the evaluated folder)."
                )
            ends.append(where[(person, Path(image).name)])
        pairs.append(Pair(row[0], ends[0], ends[1], row[5] == "1"))
    if not pairs:
        raise FacefindError(f"{path}: no pairs found.")
    return pairs


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold (same person when score >= it) with the most right answers on these pairs:
    the midpoint between two neighbouring scores, so it sits between the classes."""
    finite = np.unique(scores[np.isfinite(scores)])
    if not len(finite):
        return 0.0
    cuts = np.concatenate([[finite[0] - 1], (finite[1:] + finite[:-1]) / 2, [finite[-1] + 1]])
    genuine, impostor = np.sort(scores[same]), np.sort(scores[~same])
    right = (len(genuine) - np.searchsorted(genuine, cuts, "left")) + np.searchsorted(impostor, cuts, "left")
    return float(cuts[int(np.argmax(right))])


def pairs_accuracy(labelled: LabelledSet, pairs: list[Pair]) -> dict:
    """The standard LFW protocol: for each fold, the threshold that is best on the other folds,
    applied to it; accuracy is the mean over folds (with its standard error). A photo without a
    face scores NO_FACE, so its pair is 'different': an error when the two are the same person."""
    first = np.array([p.first for p in pairs])
    second = np.array([p.second for p in pairs])
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    a, b = labelled.embeddings[first], labelled.embeddings[second]
    if labelled.metric == "euclidean":
        scores = -np.linalg.norm(a - b, axis=1)
    else:
        scores = (a * b).sum(1).astype(np.float64)
    scores[~(labelled.detected[first] & labelled.detected[second])] = NO_FACE
    names = sorted(set(folds), key=lambda f: (len(f), f))
    rows = []
    for fold in names:
        test = folds == fold
        train = ~test if len(names) > 1 else test
        cut = best_threshold(scores[train], same[train])
        right = int(((scores[test] >= cut) == same[test]).sum())
        rows.append(
            {
                "fold": fold,
                "pairs": int(test.sum()),
                "threshold": round(cut, 4),
                "correct": right,
                "accuracy": round(right / int(test.sum()), 4),
            }
        )
    accuracies = np.array([r["accuracy"] for r in rows])
    return {
        "pairs": len(pairs),
        "same": int(same.sum()),
        "different": int((~same).sum()),
        "folds": rows,
        "correct": sum(r["correct"] for r in rows),
        "accuracy": round(float(accuracies.mean()), 4),
        "std_error": round(float(accuracies.std(ddof=1) / np.sqrt(len(rows))), 4) if len(rows) > 1 else None,
        "pairs_with_a_photo_without_face": int((~np.isfinite(scores)).sum()),
    }
