"""Photos -> faces, in worker processes: the work on one file (read, hash, decode, analyse) and
the processes that do it for indexing and evaluation. Kept apart from the catalog: a worker
imports this, the images and the face models, nothing else (start-up is paid per worker).
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from .errors import FacefindError, ImageError
from .faces import Face, FaceBackend, analyze, load_backend, prepare_backend
from .faces.pipeline import StageTimes
from .images import Photo, decode_image, decode_photo, read_photo
from .settings import Settings

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
    context = multiprocessing.get_context("spawn")  # OpenCV is not fork-safe
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(settings, os.getpid())
    )
    with _callers_script_not_imported():
        for _ in range(workers):  # a process is spawned per submission, up to `workers`
            pool.submit(_ready)
    return pool


@contextmanager
def _callers_script_not_imported() -> Iterator[None]:
    """Workers run facefind's own functions only, so they need not import the script that started
    them (as spawned processes do): `facefind index` would otherwise make each worker import the
    whole CLI, the service and their libraries first (0.6 s of CPU a worker, against 0.2 s for
    this module and the models), and a script without `if __name__ == "__main__":` would run
    again in every worker. Multiprocessing skips a main module it cannot locate."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved: dict[str, Any] = {k: main.__dict__.pop(k) for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__spec__ = None
    try:
        yield
    finally:
        del main.__spec__
        main.__dict__.update(saved)


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
        """Start the pool unless it runs already; if it cannot start (no model files) a handful of
        photos is still indexed in this process, and more get the error from analyse_files."""
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
