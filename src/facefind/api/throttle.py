"""Failed authentication: throttled per client address, audited in aggregate.

Keys are 256-bit random and sessions too, so no throttle protects them: it protects the server
and the audit log from what failures cost. A valid key or session is never refused: the guard
looks a key up first (a lookup costs the same whether it succeeds or not) and only a failure is
counted here. A client address (the socket's peer, never a header such as X-Forwarded-For; an IPv6
address by its /64) that sends `LIMIT` unknown keys or sessions within `SECONDS` is throttled: its
further failures get 429 and no audit entry, until that window has passed. Requests without any key
are answered 401 too but do not count towards the limit: they cost the server no more than a 429
would, and a browser that opens a page signed out must not lock its address out.

At most `MAX_ADDRESSES` windows are kept; past it the oldest is forgotten (never a bucket shared by
strangers, which they could fill to throttle everyone). The audit log gets at most three entries per
address and window (its first failure, its throttling, its end, each with the counts so far, routes
and reasons), for at most `AUDITED_ADDRESSES` addresses a period of `SECONDS`; the failures of any
further addresses of that period are summed up in one entry when it ends ("N addresses, M failures").
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
from ..errors import TooManyRequests

LIMIT = 10  # failures with a key or session a window, per address and server process
SECONDS = 60.0
MAX_ADDRESSES = 10_000  # windows kept at once; past it, the oldest is forgotten
AUDITED_ADDRESSES = 5  # addresses with entries of their own a period; the rest summed up in one
MAX_ROUTES = 20  # distinct routes named per entry; the rest are counted as "(other)"
ACTOR = "anonymous"  # the audit log's actor for a failed authentication
MANY = "(many addresses)"  # the summary entry's client

Record = Callable[[dict[str, Any]], object]  # writes one audit entry with these details
log = logging.getLogger("facefind.api")


@dataclass
class Window:
    opened: float  # time.monotonic()
    since: str  # ISO time, for the audit entry
    summed: bool = False  # its failures go to the period's summary, not to entries of its own
    failures: int = 0  # all failures (with and without a key)
    guesses: int = 0  # failures with a key or session: what the limit counts
    refused: int = 0  # failures answered 429 while throttled
    addresses: int = 0  # the summary's: how many addresses it sums up
    routes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    audited: tuple[int, int] = (0, 0)  # (failures, refused) in the last entry

    def count(self, route: str, reason: str) -> None:
        route = route[:200]
        if route not in self.routes and len(self.routes) >= MAX_ROUTES:
            route = "(other)"
        self.routes[route] += 1
        self.reasons[reason] += 1

    def details(self, client: str, stage: str) -> dict[str, Any]:
        self.audited = (self.failures, self.refused)
        found = {
            "client": client,
            "stage": stage,
            "since": self.since,
            "failures": self.failures,
            "throttled_requests": self.refused,
            "routes": dict(self.routes),
            "reasons": dict(self.reasons),
        }
        return {**found, "addresses": self.addresses} if client == MANY else found


@dataclass
class Failed:
    """What a failure brought: the audit entries to write now (none, mostly), and the seconds the
    address must wait if it is throttled (its failure is then answered 429), else None."""

    due: list[dict[str, Any]]
    wait: int | None = None


class Failures:
    """Failed authentications of one server process, by client address."""

    def __init__(self, limit: int = LIMIT, seconds: float = SECONDS) -> None:
        self.limit, self.seconds = limit, seconds
        self._windows: dict[str, Window] = {}  # oldest first
        self._audited: set[str] = set()  # addresses with entries of their own this period
        self._summary: Window | None = None  # this period's other addresses, summed up
        self._period: float | None = None  # when this period opened (its first failure)
        self._lock = threading.Lock()  # the event loop and the route threads both count

    def retry_after(self, client: str) -> int | None:
        """Seconds until failures from `client` are counted again rather than refused; None: now."""
        with self._lock:
            window = self._windows.get(_network(client))
            return None if window is None else self._wait(window)

    def failed(self, client: str, route: str, reason: str, guess: bool = True) -> Failed:
        """Count a failure (or, from a throttled address, a refusal)."""
        with self._lock:
            key = _network(client)
            due = self._rotate()
            window = self._windows.get(key)
            if window is not None and self._passed(window):
                due += self._close(key)
                window = None
            if window is not None and (wait := self._wait(window)) is not None:
                window.refused += 1
                if window.summed:
                    self._summed(window.since).refused += 1
                return Failed(due, wait)
            if window is None:
                window = self._open(key, due)
            window.failures += 1
            window.guesses += guess
            window.count(route, reason)
            if window.summed:
                summary = self._summed(window.since)
                summary.failures += 1
                summary.count(route, reason)
            elif window.failures == 1:
                due.append(window.details(key, "first failure of a window"))
            elif guess and window.guesses == self.limit:
                due.append(window.details(key, f"throttled for {self.seconds:g} s"))
            return Failed(due)

    def ended(self, everything: bool = False) -> list[dict[str, Any]]:
        """Final entries of the windows that have passed (all of them, at shutdown), which are
        forgotten; only those with failures or refusals after their last entry get one; and the
        summary of the period's other addresses once it has passed."""
        with self._lock:
            passed = [key for key, w in self._windows.items() if everything or self._passed(w)]
            due = [entry for key in passed for entry in self._close(key)]
            return due + self._rotate(everything)

    def _open(self, key: str, due: list[dict[str, Any]]) -> Window:
        while len(self._windows) >= MAX_ADDRESSES:  # forget the oldest, never share a window
            due += self._close(next(iter(self._windows)))
        if self._period is None:
            self._period = time.monotonic()
        summed = key not in self._audited and len(self._audited) >= AUDITED_ADDRESSES
        window = self._windows[key] = Window(time.monotonic(), now(), summed=summed)
        if not summed:
            self._audited.add(key)
        elif self._summary is not None:
            self._summary.addresses += 1
        else:
            self._summed(window.since)
        return window

    def _summed(self, since: str) -> Window:
        """This period's summary (made, counting one address, by the first of them)."""
        if self._period is None:
            self._period = time.monotonic()
        if self._summary is None:
            self._summary = Window(time.monotonic(), since, summed=True, addresses=1)
        return self._summary

    def _rotate(self, everything: bool = False) -> list[dict[str, Any]]:
        """End the period once it has passed: the summary of its other addresses, if any."""
        if self._period is None or not (everything or time.monotonic() - self._period >= self.seconds):
            return []
        summary, self._summary, self._period = self._summary, None, None
        self._audited = {key for key, w in self._windows.items() if not w.summed}
        if summary is None or (summary.failures, summary.refused) == (0, 0):
            return []
        return [summary.details(MANY, "period ended")]

    def _close(self, key: str) -> list[dict[str, Any]]:
        window = self._windows.pop(key)
        if window.summed or (window.failures, window.refused) == window.audited:
            return []
        return [window.details(key, "window ended")]

    def _wait(self, window: Window) -> int | None:
        if self._passed(window) or window.guesses < self.limit:
            return None
        return max(1, math.ceil(window.opened + self.seconds - time.monotonic()))

    def _passed(self, window: Window) -> bool:
        return time.monotonic() - window.opened >= self.seconds


def _network(client: str) -> str:
    """An IPv6 client counts by its /64 (one host usually has a whole /64 to pick from)."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if address.version == 6 and address.ipv4_mapped is None and not address.is_loopback:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return client


def record_failure(
    failures: Failures, record: Record, client: str, route: str, reason: str, guess: bool
) -> None:
    """Count a failed authentication and write the audit entries now due (outside any lock);
    TooManyRequests (429) if the address is throttled."""
    failed = failures.failed(client, route, reason, guess)
    for details in failed.due:
        record(details)
    if failed.wait is not None:
        raise TooManyRequests(too_many(failed.wait))


def too_many(wait: int) -> str:
    return f"too many failed sign-ins from this address; try again in {wait} s"


async def keep_audited(failures: Failures, record: Record, every: float = 5.0) -> None:
    """Write the final entry of each window once it has passed; runs for the server's life."""
    while True:
        await asyncio.sleep(every)
        for details in failures.ended():
            try:
                await asyncio.to_thread(record, details)
            except Exception:  # the next round, or shutdown, must still run
                log.exception("could not write the audit entry of failed authentications")
