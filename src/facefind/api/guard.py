"""The door of the service: what every request passes before a byte of its body is read.

`Guard` is one pure ASGI middleware in front of the whole application. In this order, it
1. refuses a Host header that is not one of the server's names (400): a page on another site
   that rebinds its DNS name to 127.0.0.1 still sends its own name (`--allowed-host` adds one);
2. authenticates every route but the public ones (health, docs, the web UI's files, sign-in):
   `Authorization: Bearer KEY`, or the web UI's session cookie with its CSRF token for anything
   but a read; the key or session is looked up first, so a valid one is never refused; failures
   are throttled per client address and audited in aggregate (throttle.py);
   the principal goes into `scope["state"]` for the routes' dependencies (app.principal); the
   cookie and the sign-in only from facefind's own pages (Sec-Fetch-Site: another port of the
   host is the same *site*, so SameSite=Strict alone lets its pages use the cookie);
3. caps the bytes actually received for the route (413 once over, whatever Content-Length says,
   chunked or not): 64 KiB for JSON and sign-in, the photos plus 64 KiB for photo uploads;
4. cuts off a body that stalls (no byte for `STALL_SECONDS`: 408), or that takes longer in all
   than its size allows at a slow link's pace (`body_seconds`; 10 s for the keyless sign-in: 408).
A refused request's connection is closed, so its unread body is never read. Every answer gets
a strict Content-Security-Policy unless it sets its own, and `/v1` answers `Cache-Control: no-store`.

`TimedH11Protocol` is uvicorn's HTTP/1.1 protocol with a deadline for a request's line and headers
(uvicorn has none: a half-sent head held its connection for ever).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
from collections.abc import Iterable

import anyio
import h11
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..accountability import keys, sessions
from ..policy import Principal
from .throttle import ACTOR, Failures, too_many

SMALL_BODY = 64 * 1024  # JSON, sign-in, form fields
# POST: photos each takes (a redaction's: a photo or a video)
PHOTO_ROUTES = {
    "/v1/search": 1,
    "/v1/verify": 2,
    "/v1/optouts": 1,
    "/v1/subjects/export": 1,
    "/v1/redactions": 1,
}
STALL_SECONDS = 10.0  # a body with no byte for this long is cut off
# And every body has a total deadline: BODY_SECONDS plus its size (as announced, else the route's
# cap) at MIN_BYTES_PER_SECOND (35 minutes for a 32 MiB photo at 128 kbit/s, 34 s for JSON); the
# sign-in, which anyone may send, SIGN_IN_SECONDS in all.
BODY_SECONDS = 30.0
MIN_BYTES_PER_SECOND = 16 * 1024
SIGN_IN_SECONDS = 10.0
HEAD_SECONDS = 10.0  # a request's line and headers must arrive within this
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("", "0.0.0.0", "::")

PUBLIC = {"/", "/healthz", "/docs", "/docs-init.js", "/openapi.json", "/ui", "/ui/"}  # GET and HEAD
PUBLIC_TREES = ("/docs-assets/", "/ui/assets/")
SESSION = "/ui/session"
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
CROSS_ORIGIN = "only facefind's own pages may use its session cookie; open them at this address"
NO_KEY = "send 'Authorization: Bearer KEY' (`facefind keys add NAME --role ROLE` makes one)"


def allowed_hosts(names: Iterable[str]) -> frozenset[str]:
    """The loopback names and `names` (the --host served on, --allowed-host), as compared."""
    given = {_bare(n) for n in names if n.strip()}
    return frozenset({*LOOPBACK, *given} - set(WILDCARDS))


def hosts_from_env() -> frozenset[str]:
    """FACEFIND_ALLOWED_HOSTS: names separated by commas or spaces (set by `facefind serve`)."""
    return allowed_hosts(os.environ.get("FACEFIND_ALLOWED_HOSTS", "").replace(",", " ").split())


def cookie_name(scope: Scope) -> str:
    """The session cookie's name: the port in it, so two servers on one host keep their own
    (cookies ignore ports), and unlike any other application's."""
    server = scope.get("server")
    return f"facefind_session_{server[1]}" if server and server[1] else "facefind_session"


class BodyRefused(HTTPException):
    """Raised into the application from `receive` (FastAPI lets HTTPException through): the
    body is over its cap or stalled; the connection is then closed."""


class Guard:
    def __init__(self, app: ASGIApp, hosts: frozenset[str], failures: Failures) -> None:
        self.app, self.hosts, self.failures = app, hosts, failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        door = _Door(scope, receive, send, has_body=_has_body(headers))
        host = _bare(headers.get("host", ""))
        if len(headers.getlist("host")) != 1 or host not in self.hosts:
            shown = headers.get("host", "")[:100]
            await door.refuse(
                400,
                "InvalidHost",
                f"this server does not answer to the Host {shown!r}; use its address (e.g. "
                "http://127.0.0.1:PORT), or start it with `facefind serve --allowed-host NAME`",
            )
            return
        method, path = scope["method"], scope["path"]
        if not _public(method, path):
            if not await self._authenticate(scope, headers, door):
                return
        elif (method, path) == ("POST", SESSION) and _cross_origin(headers):
            # A page elsewhere signing this browser in to its own key. (The sign-in's key is in
            # its body: the route checks it, and a failure there is counted and throttled.)
            await door.refuse(403, "Refused", CROSS_ORIGIN)
            return
        limit = _body_limit(scope, method, path)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await door.refuse(413, "TooLarge", _too_large(limit))
            return
        await door.run(self.app, limit, body_seconds(method, path, length, limit))

    async def _authenticate(self, scope: Scope, headers: Headers, door: _Door) -> bool:
        """Put the principal in the scope's state, or answer (401, 403, 429) and return False."""
        header, cookie = headers.get("authorization"), _cookie(headers, cookie_name(scope))
        path = scope["path"]
        if header is None and cookie is None:
            if (scope["method"], path) == ("GET", SESSION):  # the page opened signed out: not a
                return True  # failure, and no principal (ui.py answers {"signed_in": false})
            await self._failed(scope, "no key", guess=False)
            await door.refuse(401, "Unauthenticated", f"no key: {NO_KEY}")
            return False
        # The key or session is looked up first, throttled or not: a valid one is never refused.
        catalog = scope["app"].state.service.ff.catalog
        who: Principal | None = None
        state = scope.setdefault("state", {})
        if header is not None:
            scheme, _, key = header.partition(" ")
            if scheme.lower() == "bearer":
                who = await anyio.to_thread.run_sync(keys.authenticate, catalog, key.strip())
            reason = "unknown or revoked key"
        else:
            assert cookie is not None
            if _cross_origin(headers):  # e.g. <img src> on a page of another port of this host
                await door.refuse(403, "Refused", CROSS_ORIGIN)
                return False
            session = await anyio.to_thread.run_sync(sessions.find, catalog, cookie)
            reason = "unknown, ended or expired session"
            if session is not None:
                token = headers.get("x-csrf-token", "")
                if scope["method"] not in ("GET", "HEAD") and not hmac.compare_digest(token, session.csrf):
                    await door.refuse(
                        403, "Refused", "this form lacks its CSRF token; reload the page and try again"
                    )
                    return False
                who, state["session"], state["csrf"] = session.principal, cookie, session.csrf
        if who is None:
            forget = [(b"set-cookie", _expired(cookie_name(scope)))] if header is None else []
            if wait := await self._failed(scope, reason, guess=True):
                await door.too_many(wait, forget)
                return False
            await door.refuse(401, "Unauthenticated", f"{reason}: {NO_KEY}", forget)
            return False
        state["principal"] = who
        return True

    async def _failed(self, scope: Scope, reason: str, guess: bool) -> int | None:
        """Count it; write the audit entries now due (rarely: see throttle.py) in a thread,
        without the service lock. The seconds to wait if the address is throttled, else None."""
        failed = self.failures.failed(_client(scope), scope["path"], reason, guess)
        audit = scope["app"].state.service.ff.audit
        for details in failed.due:
            await anyio.to_thread.run_sync(audit.record, ACTOR, "authenticate", details)
        return failed.wait


class _Door:
    """One request at the door: its answers, and the counting `receive` the app gets."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, has_body: bool) -> None:
        self.scope, self.receive, self.send = scope, receive, send
        self.unread = has_body  # body bytes may still be on their way: close after answering
        self.received, self.limit = 0, SMALL_BODY
        self.tripped: BodyRefused | None = None
        self.started = False
        self.seconds, self.deadline = 0.0, 0.0  # the body's total time, and when it runs out

    async def run(self, app: ASGIApp, limit: int, seconds: float) -> None:
        self.limit, self.seconds = limit, seconds
        self.deadline = anyio.current_time() + seconds
        try:
            await app(self.scope, self.counting_receive, self.send_with_headers)
        except BodyRefused as refused:  # it escaped the app's error handlers
            if self.started:
                raise
            await self.refuse(
                refused.status_code, "TooLarge" if refused.status_code == 413 else "Timeout", refused.detail
            )

    async def counting_receive(self) -> Message:
        if self.tripped is not None:
            raise self.tripped
        if not self.unread:  # the body is in: the app may wait for a disconnect as long as it likes
            return await self.receive()
        left = self.deadline - anyio.current_time()
        try:
            with anyio.fail_after(max(0.0, min(STALL_SECONDS, left))):
                message = await self.receive()
        except TimeoutError:
            if left < STALL_SECONDS:
                late = f"the request body took over {self.seconds:g} s in all; send it again, faster"
                self.tripped = BodyRefused(408, late)
            else:
                self.tripped = BodyRefused(
                    408, f"the request body stalled (no byte for {STALL_SECONDS:g} s); send it again"
                )
            raise self.tripped from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.tripped = BodyRefused(413, _too_large(self.limit))
                raise self.tripped
            self.unread = bool(message.get("more_body", False))
        else:
            self.unread = False
        return message

    async def send_with_headers(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            message["headers"] = list(message.get("headers", []))
            headers = MutableHeaders(raw=message["headers"])
            headers["x-facefind-worker"] = str(os.getpid())  # which process answered
            headers["x-content-type-options"] = "nosniff"
            headers.setdefault("content-security-policy", CSP)
            path = self.scope["path"]
            if path.startswith("/v1/") or path == SESSION:
                headers.setdefault("cache-control", "no-store")
            if self.unread or self.tripped is not None:
                headers["connection"] = "close"  # what is left of the body is never read
        await self.send(message)

    async def refuse(
        self, status: int, kind: str, message: str, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        body = json.dumps({"error": {"type": kind, "message": message}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        headers += extra or []
        await self.send_with_headers({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def too_many(self, wait: int, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b"retry-after", str(wait).encode()), *(extra or [])]
        await self.refuse(429, "TooManyRequests", too_many(wait), headers)


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request line and headers have not all
    arrived `HEAD_SECONDS` after it opened or after the first byte of a later request. (Between
    requests uvicorn's keep-alive timeout applies; a stalled body is the Guard's.)"""

    head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # part of a head, or the next request's
            self._expect_head()
        else:
            self._head_arrived()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def _expect_head(self) -> None:
        if self.head_timer is None and not self.transport.is_closing():
            self.head_timer = self.loop.call_later(HEAD_SECONDS, self._head_timed_out)

    def _head_arrived(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def _public(method: str, path: str) -> bool:
    if method == "POST" and path == SESSION:
        return True  # the sign-in: its key is checked by the route, and throttled here
    return method in ("GET", "HEAD") and (path in PUBLIC or path.startswith(PUBLIC_TREES))


def _body_limit(scope: Scope, method: str, path: str) -> int:
    photos = PHOTO_ROUTES.get(path, 0) if method == "POST" else 0
    if not photos:
        return SMALL_BODY
    per_photo: int = scope["app"].state.service.max_upload_bytes
    return photos * per_photo + SMALL_BODY


def body_seconds(method: str, path: str, length: str | None, limit: int) -> float:
    """How long a body may take in all: SIGN_IN_SECONDS for the sign-in (anyone may send it), else
    BODY_SECONDS plus its size (as announced, else the route's cap) at MIN_BYTES_PER_SECOND."""
    if (method, path) == ("POST", SESSION):
        return SIGN_IN_SECONDS
    size = int(length) if length is not None and length.isdigit() else limit
    return BODY_SECONDS + min(size, limit) / MIN_BYTES_PER_SECOND


def _too_large(limit: int) -> str:
    size = f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit // 1024} KiB"
    return f"the request is over {size}, the most this route takes; send less (smaller photos)"


def _cross_origin(headers: Headers) -> bool:
    """A browser's request made by a page of another origin. Cookies ignore ports and SameSite
    counts every port of a host as the same site, so the cookie alone does not tell."""
    return headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


def _has_body(headers: Headers) -> bool:
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "?"


def _cookie(headers: Headers, name: str) -> str | None:
    found = cookie_parser(headers.get("cookie", "")).get(name)
    return found if found else None


def _expired(name: str) -> bytes:
    return f"{name}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict".encode()


def _bare(host: str) -> str:
    """A Host header's name, without port, brackets or a final dot, in lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")
