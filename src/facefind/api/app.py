"""The HTTP service: authentication, error mapping and the per-process runtime.

Each server process opens the catalog once (one FaceFind: recognizer, vector index, calibration
loaded) and serves every request as `ff.acting_as(principal.name)`, one at a time: the recognizer
and the vector index are not thread-safe, and with one process per core nothing is lost. Index
jobs run beside it with their own runtime (jobs.py), so a long index never blocks a search.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn

from fastapi import Depends, FastAPI, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path

from .. import engine
from ..accountability import keys
from ..errors import (
    Conflict,
    FacefindError,
    ImageError,
    InvalidValue,
    NoFaceError,
    NotFound,
    Refused,
    TooLarge,
    TooManyRequests,
    Unavailable,
)
from ..images import Upload
from ..policy import Principal
from ..settings import Settings
from .jobs import JobRunner

SESSION_COOKIE = "facefind_session"
SESSION_SECONDS = 8 * 3600
MAX_UPLOAD_BYTES = 32 * 2**20  # a photo upload; larger requests get 413 before being read
# Per key and server process; `facefind serve --rate-limit N` (0: none) sets it for a server.
REQUESTS_PER_MINUTE = 600

STATUS: list[tuple[type[FacefindError], int]] = [
    (NotFound, 404),
    (Refused, 403),
    (Conflict, 409),
    (Unavailable, 503),
    (TooManyRequests, 429),
    (TooLarge, 413),
    (NoFaceError, 422),
    (InvalidValue, 400),
    (ImageError, 400),
    (FacefindError, 400),
]


@dataclass
class Service:
    ff: engine.FaceFind
    lock: threading.Lock = field(default_factory=threading.Lock)
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    requests_per_minute: int = REQUESTS_PER_MINUTE
    calls: dict[str, list[float]] = field(default_factory=dict)

    @contextmanager
    def acting(self, who: Principal, action: str, purpose: str | None = None) -> Iterator[engine.FaceFind]:
        """The runtime, acting as `who`, if their role allows `action`; one request at a time."""
        who.require(action)
        self._throttle(who.name)
        with self.lock:
            yield self.ff.acting_as(who.name, purpose)

    def _throttle(self, name: str) -> None:
        now = time.monotonic()
        recent = [t for t in self.calls.get(name, []) if now - t < 60]
        if self.requests_per_minute and len(recent) >= self.requests_per_minute:
            raise TooManyRequests(
                f"{name} made {len(recent)} requests in the last minute (the limit is "
                f"{self.requests_per_minute}); wait a little"
            )
        self.calls[name] = [*recent, now]


def create_app(db: str | Path | None = None, settings: Settings | None = None, **options: Any) -> FastAPI:
    """The FastAPI application serving the catalog at `db` (default: FACEFIND_DB)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        ff = engine.open(db, settings, actor="facefind-serve")
        ff.vector_index()  # load (or rebuild) before the first request, not during it
        ff.calibration()
        limit = os.environ.get("FACEFIND_RATE_LIMIT")
        if limit and "requests_per_minute" not in options:
            options["requests_per_minute"] = int(limit)
        app.state.service = Service(ff, **options)
        app.state.jobs = JobRunner(ff.catalog, ff.db)
        yield
        app.state.jobs.close()
        ff.close()

    app = FastAPI(
        title="facefind",
        version="1",
        summary="Self-hosted, consent-first face search over your own photos.",
        lifespan=lifespan,
        docs_url=None,  # served below from local files: no CDN, and it works offline
        redoc_url=None,
    )
    _install_error_handlers(app)
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="facefind API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    @app.middleware("http")
    async def limit_size(request: Request, call_next: Any) -> Any:
        size = request.headers.get("content-length")
        limit = request.app.state.service.max_upload_bytes * 2 + 65536  # two photos and form fields
        if size is not None and (not size.isdigit() or int(size) > limit):
            return _error(413, "TooLarge", f"the request is over {limit // 2**20} MiB; send smaller photos")
        response = await call_next(request)
        response.headers["X-Facefind-Worker"] = str(os.getpid())  # which process answered
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        """Liveness: the only route that needs no key."""
        return {"status": "ok"}

    from . import routes, ui

    app.include_router(routes.router)
    ui.install(app)
    return app


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def principal(request: Request) -> Principal:
    """The principal of the request's key: `Authorization: Bearer KEY`, or the web UI's session
    cookie (which then needs the CSRF token for anything but a read). A missing, unknown or
    revoked key is refused (and audited)."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if not header and SESSION_COOKIE in request.cookies:
        key, scheme = request.cookies[SESSION_COOKIE], "bearer"
        if request.method not in ("GET", "HEAD") and not hmac.compare_digest(
            request.headers.get("x-csrf-token", ""), csrf_token(key)
        ):
            raise Refused("this form lacks its CSRF token; reload the page and try again")
    svc = service(request)
    found = keys.authenticate(svc.ff.catalog, key.strip()) if scheme.lower() == "bearer" else None
    if found is None:
        reason = "no key" if not header and not key else "unknown or revoked key"
        refuse(request, reason)
    return found


def refuse(request: Request, reason: str) -> NoReturn:
    """Audit a failed authentication and answer 401."""
    svc = service(request)
    with svc.lock:
        client = request.client.host if request.client else "?"
        details = {"failed": reason, "route": request.url.path, "client": client}
        svc.ff.audit.record("anonymous", "authenticate", details)
    raise HTTPException(
        401,
        f"{reason}: send 'Authorization: Bearer KEY' (`facefind keys add NAME --role ROLE` makes one)",
    )


def csrf_token(key: str) -> str:
    """The token the web UI sends with every change: derived from the session's key, so the
    server keeps no session state, and unknown to a page on another site."""
    return hashlib.sha256(f"facefind-csrf:{key}".encode()).hexdigest()[:32]


def allowed(action: str) -> Any:
    """A dependency: the principal, if their role allows `action` (checked before the body is read)."""

    def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        who.require(action)
        return who

    return Depends(check)


def read_upload(request: Request, upload: UploadFile, what: str = "photo") -> Upload:
    limit = service(request).max_upload_bytes
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"the {what} is over {limit // 2**20} MiB; send a smaller photo")
    return Upload(data, upload.filename)


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FacefindError)
    async def facefind_error(request: Request, err: FacefindError) -> JSONResponse:
        status = next(code for kind, code in STATUS if isinstance(err, kind))
        response = _error(status, type(err).__name__, str(err))
        if status == 429:
            response.headers["Retry-After"] = "60"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        kind = {401: "Unauthenticated", 404: "NotFound", 405: "MethodNotAllowed"}.get(err.status_code, "HTTP")
        response = _error(err.status_code, kind, str(err.detail))
        if err.status_code == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in err.errors()
        )
        return _error(422, "InvalidRequest", problems)

    @app.exception_handler(Exception)
    async def internal(request: Request, err: Exception) -> JSONResponse:
        # Logged by the server with its traceback; the client gets no internals.
        return _error(500, "Internal", "internal error; the server log has the details")
