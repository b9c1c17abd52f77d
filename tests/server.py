"""A real `facefind serve` for the API and web UI tests: a copy of a catalog, a key per role."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

import facefind
from facefind.policy import Role

NAMES = {role: f"{role.value}-key" for role in Role}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, url: str, keys: dict[Role, str], db: str | Path) -> None:
        self.url, self.keys, self.db = url, keys, db

    def client(self, role: Role | None = None, key: str | None = None) -> httpx.Client:
        key = key or (self.keys[role] if role else None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


@contextmanager
def serve_copy(catalog: Path, folder: Path, workers: int = 2) -> Iterator[Server]:
    """`facefind serve --workers N` on a copy of `catalog` in `folder`, on a free local port."""
    db = folder / "catalog.db"
    db.write_bytes(catalog.read_bytes())
    with serve(db, folder, workers) as server:
        yield server


@contextmanager
def serve(db: str | Path, folder: Path, workers: int = 2) -> Iterator[Server]:
    """`facefind serve --workers N` on the catalog `db` (a file or a URL); its log in `folder`."""
    with facefind.open(db, actor="setup") as ff:
        keys = {role: ff.keys_add(NAMES[role], role.value).key for role in Role}
    port = free_port()
    log = (folder / "server.log").open("w")
    cmd = [
        sys.executable,
        "-m",
        "facefind",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--db",
        str(db),
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "FACEFIND_DB": ""})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise AssertionError((folder / "server.log").read_text())
    while (folder / "server.log").read_text().count("Application startup complete") < workers:
        if time.monotonic() > deadline:  # every worker must be up before a test counts on two
            proc.kill()
            raise AssertionError((folder / "server.log").read_text())
        time.sleep(0.2)
    try:
        yield Server(url, keys, db)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    assert "Traceback" not in (folder / "server.log").read_text()


def finished(client: httpx.Client, job: dict, seconds: float = 300) -> dict:
    """The index job `job` (as POST /v1/index-jobs answered) once it is no longer queued or
    running, polled through `client` (or as it last was, after `seconds`)."""
    deadline = time.monotonic() + seconds
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = client.get(f"/v1/index-jobs/{job['id']}").json()
    return job


def from_each_worker(
    server: Server,
    role: Role,
    ask: Callable[[httpx.Client], httpx.Response],
    workers: int = 2,
    tries: int = 30,
) -> list[httpx.Response]:
    """Responses to `ask` from `workers` different worker processes, asked in pairs of new
    connections at once (the kernel hands each connection to whichever worker accepts first,
    so one quiet worker can win many sequential ones). Fails if some worker never answered."""

    def once(_: int) -> httpx.Response:
        with server.client(role) as fresh:
            return ask(fresh)

    answers: dict[str, httpx.Response] = {}
    with ThreadPoolExecutor(2) as pool:
        for _ in range(tries):
            for response in pool.map(once, range(2)):
                answers.setdefault(response.headers["x-facefind-worker"], response)
            if len(answers) >= workers:
                return list(answers.values())
    raise AssertionError(f"only workers {sorted(answers)} answered {2 * tries} connections")
