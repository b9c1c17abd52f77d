"""Keep one FAISS index per model in step with the catalog, and on disk crash-safely.

The catalog is the truth. The index catches up with it by adding faces with ids above the last
one it holds and replaying the catalog's tombstone log; a saved index records how far it got.
On disk each save is a new generation folder, written and fsynced in full before a small
CURRENT file is atomically replaced to point at it: a crash at any moment leaves CURRENT on a
complete generation. On opening, the index is checked against the catalog (count and checksums
of face ids) and rebuilt from the catalog when they disagree.

Erasure must leave no copy of a face anywhere, and every machine (and process) keeps its own index.
A deleted face is only tombstoned in an index, so an index built before an erasure still holds the
erased vectors, in memory and in its saved files. The catalog records the erasure's point in the
tombstone log; an index built before that point is replaced (by a saved generation built after
it, or by a rebuild) and saved at once, at its next search or on opening.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import filemodes
from ..catalog import Catalog
from .faiss_index import KINDS, FaissIndex, Rows, nlist_for

Progress = Callable[[int, int], None]
CHUNK = 50_000
# Quantised indexes learn their value ranges (and IVF its lists) from the faces: with fewer than
# this many, an exact flat index is used until a later save can switch.
TRAIN_MIN_FACES = {"flat": 0, "pq": 1_000, "hnsw": 100, "ivf": 1_000}
RECALL_QUERIES = 200
ERASED = "an erasure happened after this index was built (it may hold erased faces)"


@dataclass(frozen=True)
class IndexPolicy:
    """Which index to build for how many faces (measured: see docs/benchmarks.md, bench/index_bench.py)."""

    kind: str = "auto"  # or one of KINDS to force it
    flat_max: int = 100_000  # exact search: 2-3 ms per query at 100k faces; PQ fast scan above
    compact_dead_share: float = 0.2  # rebuild once this share of rows are tombstones

    def choose(self, n: int) -> str:
        if self.kind != "auto":
            if self.kind not in KINDS:
                raise ValueError(f"index kind must be auto or one of {', '.join(KINDS)}")
            return self.kind
        return "flat" if n <= self.flat_max else "pq"


class VectorStore:
    def __init__(
        self,
        catalog: Catalog,
        model_id: str,
        dim: int,
        folder: Path | None,
        policy: IndexPolicy | None = None,
    ) -> None:
        self.catalog, self.model_id, self.dim = catalog, model_id, dim
        self.folder = folder / model_id if folder else None
        self.policy = policy or IndexPolicy()
        self._index: FaissIndex | None = None
        self.tombstone_seq = 0
        self.built_through = 0  # the tombstone seq at the last rebuild: no face deleted by then is inside
        self.recall_estimate: float | None = None
        self.dirty = False
        self.rebuilt_because: str | None = None

    # opening -------------------------------------------------------------------------------
    def index(self, on_progress: Progress | None = None) -> FaissIndex:
        """The index, loaded (or rebuilt) and caught up with the catalog."""
        if self._index is None:
            reason = self._load()
            if reason is None:
                self.sync()
                if self._index is not None and self._index.checksum() != self.catalog.face_checksum(
                    self.model_id
                ):
                    reason = "the saved index disagrees with the catalog (count or face ids)"
            if reason is not None:
                self.rebuilt_because = reason
                self.rebuild(on_progress=on_progress)
                if reason == ERASED:
                    self.save(force=True)  # the saved generations hold erased faces: replace them now
        else:
            self.sync()
        assert self._index is not None
        return self._index

    def _load(self) -> str | None:
        """Load the current saved generation; returns why not, or None on success."""
        if self.folder is None:
            return "no saved index (catalog is not a file)"
        for folder in (self.folder.parent, self.folder):
            filemodes.warn_if_shared(folder, "the vector index folder")
        current = self.folder / "CURRENT"
        if not current.exists():
            return "no saved index yet"
        try:
            generation = self.folder / current.read_text().strip()
            meta = json.loads((generation / "meta.json").read_text())
            with np.load(generation / "rows.npz") as data:
                rows = Rows(**{name: data[name] for name in data.files})
            if meta["model_id"] != self.model_id:
                return "the saved index is for another model"
            index = FaissIndex.read(generation, self.dim, meta["kind"], rows)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            return f"the saved index could not be read ({err})"
        self._index = index
        self.tombstone_seq = int(meta["tombstone_seq"])
        self.built_through = int(meta.get("built_through", 0))
        self.recall_estimate = meta.get("recall_at_10")
        if self.built_through < self.catalog.erased_through():
            return ERASED
        return None

    # keeping up with the catalog ---------------------------------------------------------------
    def sync(self) -> int:
        """Apply the catalog's new faces and deletions; returns how many changes were applied."""
        assert self._index is not None
        changes = 0
        while True:
            ids, vectors, collections, size_px, quality = self.catalog.faces_after(
                self.model_id, self._index.max_id, CHUNK
            )
            if not len(ids):
                break
            self._index.add(vectors, Rows(ids, collections, size_px, quality, np.ones(len(ids), bool)))
            changes += len(ids)
        seq, dead = self.catalog.tombstones_after(self.model_id, self.tombstone_seq)
        if len(dead):
            changes += self._index.remove(dead)
        self.tombstone_seq = seq
        self.dirty |= changes > 0
        if len(dead) and self.built_through < self.catalog.erased_through():
            self._replace_after_erasure()
        return changes

    def _replace_after_erasure(self) -> None:
        """Take the saved generation if another process here already rebuilt it after the erasure
        (0.4 s to load at 1M faces); otherwise rebuild, and save so no generation keeps erased faces."""
        if self._load() is None:
            self.sync()
            return
        self.rebuilt_because = ERASED
        self.rebuild()
        self.save(force=True)

    def rebuild(self, kind: str | None = None, on_progress: Progress | None = None) -> FaissIndex:
        """Build a fresh index from the catalog (this is also how deleted rows are compacted)."""
        seq = self.catalog.last_tombstone()  # deletions up to here are already absent from faces
        total = self.catalog.face_count(self.model_id)
        chosen = kind or self.policy.choose(total)
        if total < TRAIN_MIN_FACES[chosen]:
            chosen = "flat"
        index = FaissIndex(self.dim, chosen, expected=total)
        rng = np.random.default_rng(0)
        if index.needs_training:
            index.train(self._training_sample(total))
        # Exact top-10 of a few stored faces, kept while adding, gives a recall estimate.
        probes: np.ndarray | None = None
        best = np.full((RECALL_QUERIES, 10), -np.inf, np.float32)
        best_ids = np.full((RECALL_QUERIES, 10), -1, np.int64)
        done = 0
        while True:
            ids, vectors, collections, size_px, quality = self.catalog.faces_after(
                self.model_id, index.max_id, CHUNK
            )
            if not len(ids):
                break
            index.add(vectors, Rows(ids, collections, size_px, quality, np.ones(len(ids), bool)))
            if probes is None:
                probes = vectors[rng.choice(len(vectors), min(RECALL_QUERIES, len(vectors)), replace=False)]
                best, best_ids = best[: len(probes)], best_ids[: len(probes)]
            best, best_ids = _merge_top10(best, best_ids, probes @ vectors.T, ids)
            done += len(ids)
            if on_progress:
                on_progress(done, total)
        self.recall_estimate = None
        if probes is not None and chosen != "flat":
            _, found = index.search(probes, index.candidates(10))  # as searches re-rank them
            self.recall_estimate = round(_recall(found, best_ids), 4)
        elif probes is not None:
            self.recall_estimate = 1.0
        self._index, self.tombstone_seq, self.built_through, self.dirty = index, seq, seq, True
        self.sync()  # anything committed while we were reading
        return index

    def _training_sample(self, total: int) -> np.ndarray:
        want = min(total, max(nlist_for(total) * 40, 50_000))
        sample = self.catalog.face_sample(self.model_id, every=max(1, total // max(want, 1)))
        return sample if len(sample) else np.zeros((0, self.dim), np.float32)

    # saving ------------------------------------------------------------------------------------
    def save(self, force: bool = False, on_progress: Progress | None = None) -> bool:
        """Write the index as a new generation if it changed; compact or switch kind first if due."""
        if self.folder is None or self._index is None or not (self.dirty or force):
            return False
        index = self._index
        due_kind = self.policy.choose(len(index))
        switch = due_kind != index.kind and len(index) >= TRAIN_MIN_FACES[due_kind]
        if index.dead > self.policy.compact_dead_share * max(len(index.rows.ids), 1) or (
            switch and (self.policy.kind != "auto" or _far_from_threshold(len(index), self.policy))
        ):
            index = self.rebuild(on_progress=on_progress)
        filemodes.make_folder(self.folder)
        # Several processes may share the folder (CLI runs, the service's workers and jobs): one
        # save at a time, or one's cleanup would delete another's generation while it is written.
        with os.fdopen(filemodes.open_file(self.folder / ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._write_generation(index)
        self.dirty = False
        return True

    def _write_generation(self, index: FaissIndex) -> None:
        assert self.folder is not None
        name = f"gen-{time.time_ns()}"
        tmp = self.folder / f".tmp-{name}"
        tmp.mkdir(filemodes.FOLDER_MODE)
        os.chmod(tmp, filemodes.FOLDER_MODE)
        index.write(tmp)
        with (tmp / "rows.npz").open("wb") as f:
            np.savez(
                f,
                **{k: getattr(index.rows, k) for k in ("ids", "collections", "size_px", "quality", "alive")},
            )
        meta = {
            "model_id": self.model_id,
            "kind": index.kind,
            "faces": len(index),
            "dead": index.dead,
            "tombstone_seq": self.tombstone_seq,
            "built_through": self.built_through,
            "recall_at_10": self.recall_estimate,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        _failpoint("save:written")
        for path in tmp.iterdir():
            filemodes.make_private(path)  # FAISS and numpy create files by the umask
            _fsync(path)
        os.rename(tmp, self.folder / name)
        _fsync(self.folder)
        _failpoint("save:renamed")
        pointer = self.folder / ".CURRENT.tmp"
        pointer.unlink(missing_ok=True)
        with os.fdopen(os.open(pointer, os.O_WRONLY | os.O_CREAT | os.O_EXCL, filemodes.FILE_MODE), "w") as f:
            f.write(name)
        _fsync(pointer)
        _failpoint("save:pointer-written")
        os.replace(pointer, self.folder / "CURRENT")
        _fsync(self.folder)
        _failpoint("save:pointer-replaced")
        for old in self.folder.iterdir():  # older generations and leftovers of crashed saves
            if old.name not in (name, "CURRENT", ".lock"):
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)

    def info(self) -> dict:
        index = self.index()
        return {
            "model_id": self.model_id,
            "kind": index.kind,
            "faces": len(index),
            "deleted_not_compacted": index.dead,
            "memory_bytes": index.memory_bytes(),
            "bytes_per_face": round(index.memory_bytes() / max(len(index.rows.ids), 1), 1),
            "recall_at_10_estimate": self.recall_estimate,
            "policy": self.policy.kind,
            "folder": str(self.folder) if self.folder else None,
            "rebuilt_because": self.rebuilt_because,
        }


def _far_from_threshold(n: int, policy: IndexPolicy) -> bool:
    """Switch kind only well past a threshold, so an index near one does not flip back and forth."""
    return abs(n - policy.flat_max) > 0.25 * policy.flat_max


def _merge_top10(
    best: np.ndarray, best_ids: np.ndarray, scores: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The best 10 of each row among the kept ones and a chunk's scores. The chunk's own best 10
    are picked first (a partition): sorting whole chunks was 60% of a rebuild at 1M faces."""
    if scores.shape[1] > 10:
        part = np.argpartition(-scores, 10, axis=1)[:, :10]
        scores, ids = np.take_along_axis(scores, part, 1), ids[part]
    else:
        ids = np.broadcast_to(ids, scores.shape)
    all_scores = np.hstack([best, scores])
    all_ids = np.hstack([best_ids, ids])
    top = np.argsort(-all_scores, axis=1, kind="stable")[:, :10]
    return np.take_along_axis(all_scores, top, 1), np.take_along_axis(all_ids, top, 1)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth, strict=True))
    return hits / max(int((truth >= 0).sum()), 1)


def _failpoint(name: str) -> None:
    """Crash tests set FACEFIND_FAILPOINT to die with SIGKILL at exactly this step of a save."""
    if os.environ.get("FACEFIND_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
