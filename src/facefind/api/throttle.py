"""Failed authentication: throttled per client address, audited in aggregate.

A client address (the socket's peer, never a header such as X-Forwarded-For; an IPv6 address
by its /64) that sends `LIMIT` unknown keys or sessions within `SECONDS` gets 429 for every
authentication, a valid key and the web UI's sign-in included, until that window has passed.
Requests without any key are answered 401 too but do not count towards the limit: they cost the
server no more than a 429 would, and a browser that opens a page signed out must not lock its
address out.

The audit log gets at most three entries per address and window, never one per failure: at the
window's first failure, when the address is throttled, and when the window ends (if anything
happened after the last entry), each with the window's counts so far, its routes and reasons.
Entries are written without the service lock. The counts live in each server process: with
`--workers N` an address may fail N x LIMIT times a window before every process throttles it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..catalog import now

LIMIT = 10  # failures with a key or session a window, per address and server process
SECONDS = 60.0
MAX_ADDRESSES = 10_000  # windows kept at once; past it, new addresses share one
MAX_ROUTES = 20  # distinct routes named per entry; the rest are counted as "(other)"
ACTOR = "anonymous"  # the audit log's actor for a failed authentication

Record = Callable[[dict[str, Any]], object]  # writes one audit entry with these details
log = logging.getLogger("facefind.api")


@dataclass
class Window:
    opened: float  # time.monotonic()
    since: str  # ISO time, for the audit entry
    failures: int = 0  # all failures (with and without a key)
    guesses: int = 0  # failures with a key or session: what the limit counts
    refused: int = 0  # requests answered 429 while throttled
    routes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    audited: tuple[int, int] = (0, 0)  # (failures, refused) in the last entry

    def details(self, client: str, stage: str) -> dict[str, Any]:
        self.audited = (self.failures, self.refused)
        return {
            "client": client,
            "stage": stage,
            "since": self.since,
            "failures": self.failures,
            "throttled_requests": self.refused,
            "routes": dict(self.routes),
            "reasons": dict(self.reasons),
        }


class Failures:
    """Failed authentications of one server process, by client address."""

    def __init__(self, limit: int = LIMIT, seconds: float = SECONDS) -> None:
        self.limit, self.seconds = limit, seconds
        self._windows: dict[str, Window] = {}
        self._lock = threading.Lock()  # the event loop and the route threads both count

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may authenticate again (counting this refusal); None: now."""
        with self._lock:
            window = self._windows.get(self._key(client))
            if window is None or self._passed(window) or window.guesses < self.limit:
                return None
            window.refused += 1
            return max(1, math.ceil(window.opened + self.seconds - time.monotonic()))

    def failed(self, client: str, route: str, reason: str, guess: bool = True) -> list[dict[str, Any]]:
        """Count a failure; the details of the audit entries to write now (none, mostly)."""
        with self._lock:
            key = self._key(client)
            due = []
            window = self._windows.get(key)
            if window is not None and self._passed(window):
                due += self._close(key)
                window = None
            if window is None:
                window = self._windows[key] = Window(time.monotonic(), now())
            window.failures += 1
            window.guesses += guess
            route = route[:200]
            if route not in window.routes and len(window.routes) >= MAX_ROUTES:
                route = "(other)"
            window.routes[route] += 1
            window.reasons[reason] += 1
            if window.failures == 1:
                due.append(window.details(_shown(key), "first failure of a window"))
            elif guess and window.guesses == self.limit:
                due.append(window.details(_shown(key), f"throttled for {self.seconds:g} s"))
            return due

    def ended(self, everything: bool = False) -> list[dict[str, Any]]:
        """Final entries of the windows that have passed (all of them, at shutdown), which are
        forgotten; only those with failures or refusals after their last entry get one."""
        with self._lock:
            passed = [key for key, w in self._windows.items() if everything or self._passed(w)]
            return [entry for key in passed for entry in self._close(key)]

    def _close(self, key: str) -> list[dict[str, Any]]:
        window = self._windows.pop(key)
        if (window.failures, window.refused) == window.audited:
            return []
        return [window.details(_shown(key), "window ended")]

    def _passed(self, window: Window) -> bool:
        return time.monotonic() - window.opened >= self.seconds

    def _key(self, client: str) -> str:
        client = _network(client)
        return client if client in self._windows or len(self._windows) < MAX_ADDRESSES else "*"


def _network(client: str) -> str:
    """An IPv6 client counts by its /64 (one host usually has a whole /64 to pick from)."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if address.version == 6 and address.ipv4_mapped is None and not address.is_loopback:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return client


def _shown(key: str) -> str:
    return "(many addresses)" if key == "*" else key


def record_failure(
    failures: Failures, record: Record, client: str, route: str, reason: str, guess: bool
) -> None:
    """Count a failed authentication and write the audit entries now due (outside any lock)."""
    for details in failures.failed(client, route, reason, guess):
        record(details)


async def keep_audited(failures: Failures, record: Record, every: float = 5.0) -> None:
    """Write the final entry of each window once it has passed; runs for the server's life."""
    while True:
        await asyncio.sleep(every)
        for details in failures.ended():
            try:
                await asyncio.to_thread(record, details)
            except Exception:  # the next round, or shutdown, must still run
                log.exception("could not write the audit entry of failed authentications")
