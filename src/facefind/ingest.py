"""Index a folder: find photos, analyse new and changed ones in parallel, record them.

Work is committed in small batches, each one transaction, so Ctrl-C or kill -9 at any moment
loses at most the batch in flight, which the next run simply redoes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

from sqlalchemy.engine import Connection

from .accountability.erasure import refusal
from .analysis import IN_PROCESS_MAX, FileResult, FileTask, Workers, analyse_files
from .catalog import Catalog, manual
from .errors import FacefindError
from .faces import Face, FaceBackend
from .faces.pipeline import StageTimes
from .images import EXTENSIONS, is_image_path
from .limits import WORKERS
from .manual_faces import marked
from .results import FileError, IndexReport
from .settings import Settings

Progress = Callable[[int, int], None]
BATCH_IMAGES, BATCH_SECONDS = 64, 2.0
OUTSIDE = "a link leading outside the collection's index root; skipped"


def scan(root: Path, within: Path | None = None) -> Iterator[FileTask | FileError]:
    """Photos under `root` (or `root` itself) by extension, skipping hidden folders. Links to
    folders are not followed. `within` (the service's index root): files and folders in `root`
    that are links leading outside it are skipped, each reported without its target."""
    for path in [root] if root.is_file() else _walk(root, within):
        if isinstance(path, FileError):
            yield path
            continue
        if not is_image_path(path):
            continue
        if within is not None and not _inside(path, within):
            yield FileError(path=str(path), error=OUTSIDE)
            continue
        try:
            st = path.stat()
        except OSError as err:
            yield FileError(path=str(path), error=f"cannot read ({err.strerror})")
            continue
        yield FileTask(str(path), st.st_size, st.st_mtime_ns, within=None if within is None else str(within))


def _walk(root: Path, within: Path | None) -> Iterator[Path | FileError]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if within is not None:  # os.walk does not enter linked folders; say which lead out
            for name in dirs:
                if os.path.islink(Path(folder) / name) and not _inside(Path(folder) / name, within):
                    yield FileError(path=str(Path(folder) / name), error=OUTSIDE)
        for name in sorted(names):
            yield Path(folder) / name


def _inside(path: Path, root: Path) -> bool:
    """Whether `path`, every link resolved, lies under `root` (a broken link lies nowhere)."""
    try:
        return Path(os.path.realpath(path, strict=True)).is_relative_to(root)
    except (OSError, ValueError):
        return False


class Indexer:
    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        backend: Callable[[], FaceBackend],
        workers: int | None = None,
        refuse: Callable[[Face], bool] | None = None,
        dask: str | None = None,
        pool: Workers | None = None,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.refuse = refuse  # faces never to store (opt-outs)
        self.backend = backend  # only used when indexing in this process
        self.workers = WORKERS.check(workers) if workers is not None else min(os.cpu_count() or 1, 8)
        self.dask = dask  # a Dask scheduler address, or "local": analyse photos there (dask_ingest.py)
        self.pool = pool  # the session's worker processes, kept for its next folder (Workers)

    def run(
        self,
        root: Path,
        collection: str,
        on_progress: Progress | None = None,
        *,
        retry_errors: bool = False,
        within: Path | None = None,
    ) -> IndexReport:
        root = root.expanduser().resolve()
        if not root.exists():
            raise FacefindError(f"{root}: no such file or folder")
        if root.is_file() and not is_image_path(root):
            raise FacefindError(
                f"{root}: not a photo facefind reads (extensions: {', '.join(sorted(EXTENSIONS))})"
            )
        started = time.perf_counter()
        report = IndexReport(root=str(root), collection=collection)
        collection_id = self.catalog.collection_id(collection)
        known = self.catalog.known_images(collection_id, root)
        pool = self.pool or Workers()  # started by _run once it is sure to be needed
        finished = False
        try:
            report = self._run(
                root,
                collection,
                collection_id,
                known,
                report,
                started,
                pool,
                on_progress,
                retry_errors,
                within,
            )
            finished = not report.interrupted
            return report
        finally:
            if pool is not self.pool or not finished:  # an interrupted run leaves no busy worker behind
                pool.close()

    def _run(
        self,
        root: Path,
        collection: str,
        collection_id: int,
        known: dict,
        report: IndexReport,
        started: float,
        pool: Workers,
        on_progress: Progress | None,
        retry_errors: bool,
        within: Path | None,
    ) -> IndexReport:

        tasks: list[FileTask] = []
        unreadable: list[FileError] = []
        failed_before: list[FileError] = []
        seen: set[str] = set()
        for item in scan(root, within):
            if isinstance(item, FileError):
                unreadable.append(item)
                seen.add(item.path)
                continue
            seen.add(item.path)
            old = known.get(item.path)
            if old and old.size == item.size and old.mtime_ns == item.mtime_ns:
                if old.status != "error":
                    report.unchanged += 1
                    continue
                if not retry_errors:
                    failed_before.append(FileError(path=item.path, error=old.error or "", earlier=True))
                    continue
            tasks.append(
                item
                if old is None
                else replace(
                    item, known_id=old.id, known_sha256=old.sha256 if old.status == "indexed" else None
                )
            )
            if len(tasks) == IN_PROCESS_MAX + 1 and self.workers > 1 and not self.dask:
                # Work for the workers: they start (import, load the models: a second or two)
                # while the rest of the folder is scanned, not after.
                pool.start(self.settings, self.workers)
        report.files_seen = len(seen)
        gone = [img.id for path, img in known.items() if path not in seen]
        with self.catalog.transaction() as conn:
            self.catalog.remove_images(conn, gone)
            for bad in unreadable:
                self.catalog.save_image(
                    conn,
                    collection_id,
                    bad.path,
                    sha256=None,
                    size=0,
                    mtime_ns=0,
                    shape=None,
                    found=[],
                    error=bad.error,
                )
        report.removed = len(gone)
        report.errors = len(unreadable) + len(failed_before)
        report.error_files = unreadable + failed_before

        times = StageTimes()
        done = report.unchanged + report.errors
        total = report.files_seen
        if on_progress:
            on_progress(done, total)
        pending: list[FileResult] = []
        last_flush = time.perf_counter()

        def flush() -> None:
            nonlocal last_flush
            t = time.perf_counter()
            with self.catalog.transaction() as conn:
                for r in pending:
                    self._record(conn, collection_id, r, report)
            times.add("store", t)
            pending.clear()
            last_flush = time.perf_counter()

        if self.dask:
            from .dask_ingest import analyse_on_dask

            file_results = analyse_on_dask(tasks, self.settings, self.dask, self.workers)
        else:
            running = pool.running(self.settings, self.workers)
            file_results = analyse_files(tasks, self.settings, self.workers, self.backend, running)
        try:
            for result in file_results:
                pending.append(result)
                times.merge(result.times)
                done += 1
                if len(pending) >= BATCH_IMAGES or time.perf_counter() - last_flush > BATCH_SECONDS:
                    flush()
                if on_progress:
                    on_progress(done, total)
        except KeyboardInterrupt:
            report.interrupted = True
        except BrokenProcessPool:
            flush()
            raise FacefindError(
                f"a worker process died (out of memory, or a crash decoding a file) after "
                f"{report.indexed} photos were saved; run the same command again to continue (with "
                f"--workers 1 to find a file that crashes the decoder)."
            ) from None
        finally:
            if pending:
                flush()
        for error in report.error_files:
            error.collection = collection
        report.seconds = round(time.perf_counter() - started, 3)
        analysed = report.indexed or 1
        report.images_per_second = round(report.indexed / max(report.seconds, 1e-9), 2)
        report.stage_ms_per_image = {
            stage: round(1000 * s / analysed, 2) for stage, s in times.seconds.items()
        }
        return report

    def _record(self, conn: Connection, collection_id: int, r: FileResult, report: IndexReport) -> None:
        t = r.task
        if r.unchanged and t.known_id is not None:
            self.catalog.touch_image(conn, t.known_id, t.size, t.mtime_ns)
            report.unchanged += 1
            return
        # An erased photo (any name, any collection) stays erased: checked in this transaction.
        erased = refusal(conn, r.sha256) if r.sha256 else None
        if erased:
            r.error, r.faces, r.shape, r.damage = erased, [], None, []
        kept = [f for f in r.faces if not (self.refuse and self.refuse(f))]
        report.faces_refused += len(r.faces) - len(kept)
        # Detections a user removed as "not a face" on this photo's content stay removed.
        not_faces = manual.marks(conn, r.sha256) if r.sha256 else []
        kept = [f for f in kept if not marked(f.box, not_faces)]
        self.catalog.save_image(
            conn,
            collection_id,
            t.path,
            sha256=r.sha256,
            size=t.size,
            mtime_ns=t.mtime_ns,
            shape=r.shape,
            found=kept,
            error=r.error,
        )
        if r.error:
            report.errors += 1
            report.error_files.append(FileError(path=t.path, error=r.error))
        else:
            if r.damage:
                report.damaged_files.append(FileError(path=t.path, error="; ".join(r.damage)))
            report.indexed += 1
            report.faces_found += len(kept)
            report.faces_searchable += sum(f.usable for f in kept)
