"""Analyse photos on a Dask cluster: `facefind index --dask`, the local process pool spread over machines.

The client (the machine running `facefind index`) walks the folder, sends the photos to analyse to
the cluster in small batches and writes the results to the catalog as they come back, exactly as
with the local pool: the catalog decides what is done, so a re-run resumes.

What the workers need:
- the photos, at the same path as the client sees them (a shared mount such as NFS): workers read
  each photo themselves, from the path the client gives;
- facefind installed (`pip install 'facefind[server]'`) and its models (FACEFIND_MODELS, or a model
  cache they can download into).

For example::

    dask scheduler                                   # on one machine: tcp://HOST:8786
    FACEFIND_MODELS=/srv/models dask worker tcp://HOST:8786 --nworkers 4 --nthreads 1
    facefind index /mnt/photos --dask tcp://HOST:8786

`--dask local` starts a cluster of `--workers` processes on this machine for the run. Reaching
a scheduler gives up after Dask's connect timeout (30 s; DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT).

A worker that dies (killed, out of memory) loses nothing: the scheduler runs its tasks on another
worker, up to `distributed.scheduler.allowed-failures` times (3 by default). A batch that still
fails is retried one photo at a time, so that only a photo that kills every worker trying it is
reported failed.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from .analysis import FileResult, FileTask, process_file
from .errors import FacefindError
from .faces import FaceBackend, load_backend, prepare_backend
from .settings import Settings

if TYPE_CHECKING:
    from distributed import Client, Future

# Photos per Dask task: enough to amortise the scheduler's few milliseconds per task, few enough
# that a dead worker costs little to redo and the last tasks share out evenly.
FILES_PER_TASK = 8

LOCAL = "local"


def analyse_on_dask(
    tasks: list[FileTask], settings: Settings, scheduler: str, workers: int = 2
) -> Iterator[FileResult]:
    """Results of `process_file` for every task, in completion order, computed on the Dask cluster
    at `scheduler` (an address such as tcp://host:8786), or on a cluster of `workers` processes
    started here for the run when `scheduler` is "local"."""
    if not tasks:
        return  # nothing changed: no need to reach (or start) a cluster
    distributed = _import_distributed()
    with _connect(distributed, scheduler, workers) as client:
        yield from _analyse(distributed, client, tasks, settings, scheduler)


def _import_distributed() -> ModuleType:
    try:
        import distributed
    except ImportError:
        raise FacefindError(
            "--dask needs Dask, which is not installed: pip install 'facefind[server]'"
        ) from None
    return distributed


@contextmanager
def _connect(distributed: ModuleType, scheduler: str, workers: int) -> Iterator[Client]:
    import dask

    if scheduler == LOCAL:
        _require_main_guard()  # the cluster's worker processes are spawned like the local pool's
        prepare_backend()  # download or fail once, here, not in every worker
        with (
            # Workers sample their stacks every 10 ms for the dashboard's profile, which this cluster
            # does not serve: it cost ~7% of their CPU time indexing glint_dev12.
            dask.config.set({"distributed.worker.profile.enabled": False}),
            distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                # Ctrl-C reaches every process of the terminal: this run decides what it means (save
                # and stop), as the local pool's workers do; run by each worker (re)started.
                preload=["import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)"],
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
        return
    timeout = dask.config.get("distributed.comm.timeouts.connect")
    try:
        client = distributed.Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FacefindError(
            f"cannot reach the Dask scheduler at {scheduler} ({reason}); check the address and that "
            f"`dask scheduler` runs there, or use --dask local (a cluster on this machine)"
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            raise FacefindError(
                f"the Dask scheduler at {scheduler} has no workers; start some with "
                f"`dask worker {scheduler} --nthreads 1` on machines that see the photos at the same "
                f"path and have facefind and its models (FACEFIND_MODELS)"
            ) from None
        yield client
    finally:
        _close_quietly(client)


def _close_quietly(client: Client) -> None:
    """Close the client. When the scheduler is gone, Dask logs the reconnection it cancels as an
    error with a traceback: noise beside facefind's own message, which says what to do."""
    logger = logging.getLogger("distributed.client")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        client.close()
    finally:
        logger.setLevel(level)


def _analyse(
    distributed: ModuleType, client: Client, tasks: list[FileTask], settings: Settings, scheduler: str
) -> Iterator[FileResult]:
    batches = [tasks[i : i + FILES_PER_TASK] for i in range(0, len(tasks), FILES_PER_TASK)]
    # One call for all batches: the scheduler sees one large group, which it queues and hands out
    # as workers free up instead of piling it onto the first workers to connect.
    futures = client.map(_analyse_batch, batches, settings=settings, pure=False)
    # Dropping a future frees its result on the cluster: each is held only until handed on.
    batch_of: dict[Future, list[FileTask]] = dict(zip(futures, batches, strict=True))
    finished = distributed.as_completed(futures)
    del futures
    for future in finished:
        batch = batch_of.pop(future)
        if future.status == "finished":
            yield from future.result()
            continue
        failure = future.exception() if future.status == "error" else None
        if isinstance(failure, distributed.KilledWorker):
            if len(batch) > 1:
                for task in batch:
                    single: Future = client.submit(_analyse_batch, [task], settings=settings, pure=False)
                    batch_of[single] = [task]
                    finished.add(single)
            else:
                yield FileResult(
                    batch[0],
                    error=(
                        "every Dask worker that analysed it died (out of memory, or a crash decoding "
                        "the file); it was not indexed"
                    ),
                )
            continue
        if failure is None:
            raise FacefindError(
                f"the Dask scheduler at {scheduler} dropped the work (restarted, or the connection was "
                f"lost); what was analysed is saved: run the same command again to continue"
            )
        raise FacefindError(
            f"a Dask worker cannot analyse photos ({type(failure).__name__}: {failure}); every worker "
            f"needs facefind installed (pip install 'facefind[server]') and its models (FACEFIND_MODELS). "
            f"What was analysed is saved: run the same command again to continue"
        )


# Worker side ---------------------------------------------------------------------------------
# One backend per worker thread: OpenCV's networks must not run on two threads at once, and a
# worker started with --nthreads N runs N tasks at a time.
_per_thread = threading.local()


def _backend(settings: Settings) -> FaceBackend:
    backends: dict[Settings, FaceBackend] = _per_thread.__dict__.setdefault("backends", {})
    if settings not in backends:
        import cv2

        cv2.setNumThreads(1)  # parallelism comes from workers; threads would oversubscribe
        backends[settings] = load_backend(settings)
    return backends[settings]


def _analyse_batch(batch: list[FileTask], settings: Settings) -> list[FileResult]:
    """Runs on a worker. An exception here (facefind or its models missing) concerns the worker, not
    the photos, and stops the run; what goes wrong with one photo is that photo's error."""
    backend = _backend(settings)
    return [_analyse_one(task, backend, settings) for task in batch]


def _analyse_one(task: FileTask, backend: FaceBackend, settings: Settings) -> FileResult:
    try:
        result = process_file(task, backend, settings)
    except Exception as err:  # one odd photo must not fail the other photos of its batch
        return FileResult(task, error=f"analysis failed ({type(err).__name__}: {err})")
    if result.error and not os.path.lexists(task.path):
        # The client found the file: most likely this worker does not see the photos at all.
        result.error += (
            f" on Dask worker {socket.gethostname()}: every worker must see the photos at the path "
            f"given to facefind index (a shared mount)"
        )
    return result


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
