"""Index a folder: find photos, analyse new and changed ones in parallel, record them.

Work is committed in small batches, each one transaction, so Ctrl-C or kill -9 at any moment
loses at most the batch in flight, which the next run simply redoes.
"""

from __future__ import annotations

import ctypes
import hashlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path

from sqlalchemy.engine import Connection

from .accountability.erasure import refusal
from .catalog import Catalog, manual
from .errors import FacefindError, ImageError
from .faces import Face, FaceBackend, analyze, load_backend, prepare_backend
from .faces.pipeline import StageTimes
from .images import EXTENSIONS, Photo, decode_image, decode_photo, is_image_path, read_photo
from .limits import WORKERS
from .manual_faces import marked
from .results import FileError, IndexReport
from .settings import Settings

Progress = Callable[[int, int], None]
BATCH_IMAGES, BATCH_SECONDS = 64, 2.0
# Starting worker processes costs about a second; a handful of photos is quicker done here.
IN_PROCESS_MAX = 8


@dataclass(frozen=True)
class FileTask:
    path: str
    size: int
    mtime_ns: int
    known_id: int | None = None  # catalog id when the path was indexed before
    known_sha256: str | None = None  # if the content still hashes to this, nothing changed
    within: str | None = None  # a service job's index root: read from it down, following no link


@dataclass
class FileResult:
    task: FileTask
    sha256: str | None = None
    shape: tuple[int, int] | None = None
    faces: list[Face] = field(default_factory=list)
    error: str | None = None
    damage: list[str] = field(default_factory=list)  # what the decoder worked around
    unchanged: bool = False
    times: StageTimes = field(default_factory=StageTimes)


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


def process_file(task: FileTask, backend: FaceBackend, settings: Settings) -> FileResult:
    result = FileResult(task)
    started = time.perf_counter()
    try:
        within = Path(task.within) if task.within is not None else None
        data = read_photo(Path(task.path), settings, within=within)
    except ImageError as err:
        result.error = str(err).removeprefix(f"{task.path}: ")
        return result
    result.sha256 = hashlib.sha256(data).hexdigest()
    if result.sha256 == task.known_sha256:
        result.unchanged = True
        return result
    name = Path(task.path).name
    try:
        if settings.reduced_decode:
            photo = decode_photo(data, settings, settings.decode_min_side, name=name, notes=result.damage)
        else:
            photo = Photo.of(decode_image(data, settings, name=name, notes=result.damage))
    except ImageError as err:
        result.error = str(err).removeprefix(name + ": ")
        return result
    except MemoryError:
        result.error = f"not enough memory to decode it ({len(data) / 2**20:.1f} MiB file)"
        return result
    result.times.add("decode", started)
    result.shape = photo.shape
    try:
        result.faces = analyze(backend, photo, settings, result.times)
    except ImageError as err:  # the full decode a small face needed failed
        result.error = str(err).removeprefix(name + ": ")
        result.faces = []
    except MemoryError:
        result.error = f"not enough memory to analyse it ({photo.shape[1]}x{photo.shape[0]})"
    except Exception as err:  # one odd image must not stop a run of thousands
        result.error = f"face analysis failed ({type(err).__name__}: {err})"
    return result


_worker: tuple[FaceBackend, Settings] | None = None


def _init_worker(settings: Settings, parent: int) -> None:
    import cv2

    global _worker
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    cv2.setNumThreads(1)  # parallelism comes from processes; threads would oversubscribe
    _worker = (load_backend(settings), settings)


def _die_with(parent: int) -> None:
    """A worker must not outlive its parent killed with SIGKILL: it would go on decoding for
    a minute, holding ~200 MB, with nobody to take its results."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:  # pragma: no cover - elsewhere, watch for being re-parented

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _work(task: FileTask) -> FileResult:
    assert _worker is not None
    return process_file(task, *_worker)


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


def analyse_files(
    tasks: list[FileTask],
    settings: Settings,
    workers: int,
    backend: Callable[[], FaceBackend],
    pool: ProcessPoolExecutor | None = None,
) -> Iterator[FileResult]:
    """Results of `process_file` for every task, in completion order, on `workers` processes
    (those of `pool` if given: the caller shuts it down; a handful of photos without a running
    pool are analysed in this process, saving the workers' start-up)."""
    if workers <= 1 or (len(tasks) <= IN_PROCESS_MAX and pool is None):
        in_process = backend()
        for task in tasks:
            yield process_file(task, in_process, settings)
        return
    own = pool is None
    pool = pool or start_pool(settings, workers)
    try:
        queue = iter(tasks)
        # Each worker has work queued behind the photo it is on: never waits for the parent.
        running = {pool.submit(_work, task): task for task in islice(queue, workers * 4)}
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                running.update({pool.submit(_work, t): t for t in islice(queue, 1)})
                yield _result(future, task)
    finally:
        if own:
            pool.shutdown(wait=False, cancel_futures=True)


def start_pool(settings: Settings, workers: int) -> ProcessPoolExecutor:
    """`workers` processes, started now (each imports facefind and loads the models)."""
    prepare_backend()  # download or fail once, here, not in every worker
    _require_main_guard()
    context = multiprocessing.get_context("spawn")  # OpenCV is not fork-safe
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(settings, os.getpid())
    )
    for _ in range(workers):  # a process is spawned per submission, up to `workers`
        pool.submit(_ready)
    return pool


class Workers:
    """The worker processes of a session (`facefind.open`): started when a folder first needs them,
    while its scan goes on, and kept for the session's next folder, so indexing several folders
    starts them (imports, models: about a second of CPU each) once. `close()` stops them; the
    session closes them with itself, and a run that was interrupted or failed closes them at once."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._made_for: tuple[Settings, int] | None = None

    def running(self, settings: Settings, workers: int) -> ProcessPoolExecutor | None:
        """The pool, if it runs `workers` processes with these settings."""
        return self._pool if self._made_for == (settings, workers) else None

    def start(self, settings: Settings, workers: int) -> None:
        """Start the pool unless it runs already; if it cannot start (a script without a main
        guard) a handful of photos is still indexed in this process, and more get the error from
        analyse_files."""
        if self.running(settings, workers) is not None:
            return
        self.close()
        try:
            self._pool = start_pool(settings, workers)
        except FacefindError:
            return
        self._made_for = (settings, workers)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._made_for = None


def _ready() -> None:
    """Nothing: submitted to start a worker."""


def _result(future: Future[FileResult], task: FileTask) -> FileResult:
    """The worker's result; an exception it raised (it catches what it expects) fails that file
    only. A worker that died is a BrokenProcessPool, which stops the run."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise
    except Exception as err:
        return FileResult(task, error=f"analysis failed ({type(err).__name__}: {err})")


def _require_main_guard() -> None:
    """Worker processes start by re-importing the caller's script: one that calls facefind at its
    top level, without `if __name__ == "__main__":`, would start workers from every worker."""
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if main is None or getattr(main, "__spec__", None) is not None or not script:
        return  # `python -m ...`, an interactive session or a notebook: nothing is re-imported
    try:
        text = Path(script).read_text(errors="replace")
    except OSError:
        return
    if "__main__" not in text:
        raise FacefindError(
            f"facefind analyses photos in worker processes, which start by importing your script "
            f'{script}; put the code that calls facefind under `if __name__ == "__main__":` '
            f"(as Python's multiprocessing requires), or pass workers=1."
        )
