"""Service throughput: `facefind serve` under concurrent clients against the library in one process.

    python bench/api_bench.py [--seconds 60] [--faces 10000] [--clients 8] [--workers 2] [--runs 3] [--json]

The catalog holds the real photos of ../shared/datasets/face_recognition plus random unit
embeddings up to `--faces` (search cost does not depend on their distribution). Queries are ~20
real photos (face_recognition and glint_dev12) sent as uploads. Each run measures (a) the library:
one FaceFind in this process searching the photos one after another, the ceiling; then (b) the
server, `facefind serve --workers N`, with `--clients` threads each searching in a loop over its own
keep-alive connection and its own key (operator role). Reported per run and as the median of the
runs: p50/p99 latency, searches/s, 5xx and other non-200 answers, requests per worker process, and
server searches/s as a share of the library's. The library's OpenCV may use more than one core:
its CPU seconds per wall second are reported beside it. Each measurement waits until no pytest
runs (it would share the cores), and is repeated if one started meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import facefind
import machine
from search_bench import add_synthetic_faces, percentiles

ROOT = Path(__file__).resolve().parents[1]
PURPOSE = "benchmark"
Query = tuple[str, bytes]


def pytest_running() -> bool:
    return subprocess.run(["pgrep", "-f", "pytest"], capture_output=True).returncode == 0


def wait_for_quiet(max_wait_s: float) -> float:
    """Seconds waited until no pytest runs on the machine (it would share our 2 cores)."""
    started = time.monotonic()
    while pytest_running() and time.monotonic() - started < max_wait_s:
        time.sleep(10)
    return round(time.monotonic() - started, 1)


class Watch(threading.Thread):
    """Notes whether a pytest ran at any point during a measurement (checked every 5 s)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen, self.stop = False, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(5):
            self.seen = self.seen or pytest_running()

    def __enter__(self) -> Watch:
        self.seen = pytest_running()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()


def quietly(measure: Callable[[], dict], max_wait_s: float, attempts: int = 3) -> dict:
    """`measure()` once no pytest runs; again (up to `attempts` in all) if one ran meanwhile."""
    waited, tries, seen = 0.0, 0, True
    while seen and tries < attempts:
        waited += wait_for_quiet(max_wait_s)
        with Watch() as watch:
            result = measure()
        tries, seen = tries + 1, watch.seen
    return {**result, "waited_for_pytest_s": waited, "attempts": tries, "pytest_seen": seen}


def build_catalog(
    db: Path, datasets: Path, faces: int, clients: int, rng: np.random.Generator
) -> tuple[int, list[str]]:
    """Real photos plus synthetic faces up to `faces` (or 1-3 over: they come 4 to an image);
    the number of faces, and one operator key per client."""
    with facefind.open(db, actor="benchmark") as ff:
        ff.create_collection("default", owner="benchmark", basis="own", retention="1y")
        ff.index(datasets / "face_recognition", collection="default", workers=1)
        real = len(ff.vector_index())
        ff.create_collection("synthetic", owner="benchmark", basis="own", retention="1y")
        add_synthetic_faces(ff, -(-(faces - real) // 4) * 4, rng)
        total = len(ff.vector_index())  # caught up with the synthetic faces now; saved on close
        return total, [ff.keys_add(f"client-{i}", "operator").key for i in range(clients)]


def pick_queries(ff: facefind.FaceFind, datasets: Path, rng: np.random.Generator) -> list[Query]:
    """8 face_recognition photos and one glint_dev12 photo per identity (12), each with a face."""

    def pick(photos: list[Path], n: int) -> list[Path]:
        return list(islice((photos[i] for i in rng.permutation(len(photos)) if ff.faces(photos[i])), n))

    real = [
        p for p in sorted((datasets / "face_recognition").rglob("*")) if p.suffix in (".jpg", ".jpeg", ".png")
    ]
    chosen = pick(real, 8)
    for person in sorted(p for p in (datasets / "glint_dev12").iterdir() if p.is_dir()):
        chosen += pick(sorted(person.glob("*.png")), 1)
    return [(p.name, p.read_bytes()) for p in chosen]


def library_run(ff: facefind.FaceFind, queries: list[Query], seconds: float, warmup: float) -> dict:
    """The same searches one after another in this process: the ceiling for one process."""

    def search(i: int) -> None:
        ff.search(queries[i % len(queries)][1], purpose=PURPOSE, top_k=10)

    i, stop_at = 0, time.perf_counter() + warmup
    while time.perf_counter() < stop_at:
        search(i := i + 1)
    samples: list[float] = []
    start, cpu_at_start = time.perf_counter(), time.process_time()
    while (t := time.perf_counter()) < start + seconds:
        search(i := i + 1)
        samples.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    return {
        "searches": len(samples),
        "searches_per_s": round(len(samples) / wall, 2),
        **percentiles(samples),
        "cpu_s_per_wall_s": round((time.process_time() - cpu_at_start) / wall, 2),
    }


def client(
    url: str, key: str, queries: list[Query], first: int, start: float, stop: float, out: list
) -> None:
    """One client: searches in a loop on one keep-alive connection; records those started after `start`."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        i = first
        while (t := time.perf_counter()) < stop:
            name, data = queries[i % len(queries)]
            i += 1
            try:
                r = http.post(
                    "/v1/search", files={"photo": (name, data)}, data={"purpose": PURPOSE, "top_k": "10"}
                )
                status, worker = r.status_code, r.headers.get("x-facefind-worker", "?")
                kind = "" if status == 200 else r.json().get("error", {}).get("type", "?")
            except (httpx.HTTPError, ValueError) as e:
                status, worker, kind = 0, "?", type(e).__name__
            if t >= start:
                out.append((time.perf_counter() - t, status, worker, kind))


def server_run(
    url: str, workers: list[int], keys: list[str], queries: list[Query], seconds: float, warmup: float
) -> dict:
    """`len(keys)` concurrent clients for `seconds` after `warmup`; the CPU the workers and the
    clients (this process) used meanwhile."""
    results: list[list] = [[] for _ in keys]
    start = time.perf_counter() + warmup
    at_start: list[float] = []  # workers' and this process's CPU seconds when measuring starts
    threading.Timer(warmup, lambda: at_start.extend((cpu_seconds(workers), time.process_time()))).start()
    threads = [
        threading.Thread(target=client, args=(url, key, queries, 3 * n, start, start + seconds, results[n]))
        for n, key in enumerate(keys)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    workers_cpu, clients_cpu = cpu_seconds(workers) - at_start[0], time.process_time() - at_start[1]
    answers = [a for r in results for a in r]
    ok = [latency for latency, status, _, _ in answers if status == 200]
    return {
        "requests": len(answers),
        "searches_per_s": round(len(ok) / seconds, 2),
        **(percentiles(ok) if ok else {}),
        "status_5xx": sum(1 for a in answers if a[1] >= 500),
        "other_non_200": sum(1 for a in answers if a[1] != 200 and a[1] < 500),
        "errors": dict(Counter(f"{a[1]} {a[3]}" for a in answers if a[1] != 200)),
        "per_worker": dict(Counter(a[2] for a in answers)),
        # each client keeps one connection, so one worker: fewer clients there, more searches/s each
        "clients_per_worker": dict(
            Counter(Counter(a[2] for a in r).most_common(1)[0][0] for r in results if r)
        ),
        "workers_cpu_s_per_wall_s": round(workers_cpu / wall, 2),
        "clients_cpu_s_per_wall_s": round(clients_cpu / wall, 2),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have used so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def start_server(db: Path, workers: int, log: Path) -> tuple[subprocess.Popen, str, list[int]]:
    """`facefind serve` once every worker answers (each loads the model and index first); its
    process, address and worker pids."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # No rate limit: this measures capacity; the default (600 a minute per key and worker) is policy.
    command = [sys.executable, "-m", "facefind", "serve", "--port", str(port), "--workers", str(workers)]
    command += ["--rate-limit", "0"]
    server = subprocess.Popen([*command, "--db", str(db)], stdout=log.open("w"), stderr=subprocess.STDOUT)
    seen: set[str] = set()
    deadline = time.monotonic() + 180
    while len(seen) < workers and time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:  # a new connection each time, so that every worker gets to answer
            r = httpx.get(f"{url}/healthz", timeout=5)
            if r.status_code == 200:
                seen.add(r.headers["x-facefind-worker"])
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    if len(seen) < workers:
        time.sleep(5)  # the rest may still be loading: give them a little longer
    return server, url, sorted(int(pid) for pid in seen)


def median_of(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs if key in r), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--seconds", type=float, default=60, help="server measurement per run")
    parser.add_argument("--library-seconds", type=float, default=30, help="library measurement per run")
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--faces", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-wait", type=float, default=1200, help="seconds to wait for pytest to end")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    result: dict = {
        "machine": machine.describe(),
        "setup": {k: getattr(args, k) for k in ("faces", "clients", "workers", "seconds", "library_seconds")},
    }
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        result["setup"]["faces"], keys = build_catalog(db, args.datasets, args.faces, args.clients, rng)
        server, url, pids = start_server(db, args.workers, Path(tmp) / "server.log")
        try:
            with facefind.open(db, actor="benchmark") as ff:
                queries = pick_queries(ff, args.datasets, rng)
                result["setup"]["queries"] = len(queries)
                for _ in range(args.runs):
                    run: dict = {
                        "library": quietly(
                            lambda: library_run(ff, queries, args.library_seconds, args.warmup), args.max_wait
                        ),
                        "server": quietly(
                            lambda: server_run(url, pids, keys, queries, args.seconds, args.warmup),
                            args.max_wait,
                        ),
                    }
                    run["ratio"] = round(
                        run["server"]["searches_per_s"] / run["library"]["searches_per_s"], 3
                    )
                    runs.append(run)
                    if not args.json:
                        print(json.dumps(run), flush=True)
        finally:
            server.terminate()
            server.wait(30)
        log = (Path(tmp) / "server.log").read_text().splitlines()
        result["server_log_errors"] = [line for line in log if "ERROR" in line or "Traceback" in line][:10]
    result["runs"] = runs
    library = {k: median_of([r["library"] for r in runs], k) for k in ("searches_per_s", "p50_ms", "p99_ms")}
    served = {k: median_of([r["server"] for r in runs], k) for k in ("searches_per_s", "p50_ms", "p99_ms")}
    result["median"] = {
        "library": library,
        "server": {**served, "status_5xx_all_runs": sum(r["server"]["status_5xx"] for r in runs)},
        "ratio": round(served["searches_per_s"] / library["searches_per_s"], 3),
        "ratio_per_worker": round(served["searches_per_s"] / library["searches_per_s"] / args.workers, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"machine: {result['machine']}")
    print(f"median of {args.runs} runs: {result['median']}")


if __name__ == "__main__":
    main()
