"""The HTTP service: the guard in front (guard.py: Host, authentication, body caps), error
mapping and the per-process runtime.

Each server process opens the catalog once (one FaceFind: recognizer, vector index, calibration
loaded) and serves every request as `ff.acting_as(principal.name)`, one at a time: the recognizer
and the vector index are not thread-safe, and with one process per core nothing is lost. Index
jobs run beside it with their own runtime (jobs.py), so a long index never blocks a search.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path

from .. import engine
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
from ..paths import for_json
from ..policy import Principal
from ..settings import Settings
from .guard import NO_KEY, Guard, hosts_from_env
from .jobs import JobRunner
from .redactions import Redactions
from .throttle import ACTOR, Failures, keep_audited, record_failure

MAX_UPLOAD_BYTES = 32 * 2**20  # a photo upload; the guard stops reading a request past its photos
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


class Answer(JSONResponse):
    """Every JSON answer of the service, errors too: each text in its `paths.for_json` form, so
    a file name that is not UTF-8 (or any text) never makes an answer fail or invalid JSON."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(for_json(content), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")


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
        app.state.redactions = Redactions(ff.db)
        record = _audit_failures(ff)
        auditing = asyncio.create_task(keep_audited(failures, record))
        yield
        auditing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await auditing
        for details in failures.ended(everything=True):
            record(details)
        app.state.jobs.close()
        ff.close()

    app = FastAPI(
        title="facefind",
        version="1",
        summary="Self-hosted, consent-first face search over your own photos.",
        lifespan=lifespan,
        docs_url=None,  # served below from local files: no CDN, and it works offline
        redoc_url=None,
        # Not FastAPI's default: a route's answer is dumped by Pydantic (mode="json") and written
        # by Answer, never straight to JSON bytes by Pydantic (which fails on such a name).
        default_response_class=Answer,
    )
    _install_error_handlers(app)
    # Before anything else, for every request: Host check, authentication, body caps (guard.py).
    failures = app.state.failures = Failures()
    app.add_middleware(Guard, hosts=hosts_from_env(), failures=failures)
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_PAGE)  # no inline script: the guard's CSP allows none

    @app.get("/docs-init.js", include_in_schema=False)
    def docs_init() -> Response:
        return Response(DOCS_INIT, media_type="text/javascript")

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
    """The principal the guard authenticated before the body was read (guard.py): by its key
    (`Authorization: Bearer KEY`) or the web UI's session (with its CSRF token for a change)."""
    who = getattr(request.state, "principal", None)
    if not isinstance(who, Principal):  # a public route of the guard's that asks for a key
        raise HTTPException(401, f"no key: {NO_KEY}")
    return who


def refuse(request: Request, reason: str) -> NoReturn:
    """A failed sign-in (the web UI's, whose key is in the body): counted by the guard's throttle,
    audited in aggregate without the service lock, answered 401."""
    client = request.client.host if request.client else "?"  # the socket's peer (no proxy headers)
    failures: Failures = request.app.state.failures
    record_failure(failures, _audit_failures(service(request).ff), client, request.url.path, reason, True)
    raise HTTPException(401, f"{reason}: {NO_KEY}")


def _audit_failures(ff: engine.FaceFind) -> Any:
    def record(details: dict[str, Any]) -> None:
        ff.audit.record(ACTOR, "authenticate", details)

    return record


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
    return Answer({"error": {"type": kind, "message": message}}, status_code=status)


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
        kinds = {
            401: "Unauthenticated",
            404: "NotFound",
            405: "MethodNotAllowed",
            408: "Timeout",
            413: "TooLarge",
        }
        kind = kinds.get(err.status_code, "HTTP")
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


# Swagger UI from local files, started by a script file rather than inline: the page's
# Content-Security-Policy (the guard's) allows scripts from this server only.
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>facefind API</title>
<link rel="stylesheet" href="/docs-assets/swagger-ui.css">
<link rel="icon" href="/docs-assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs-assets/swagger-ui-bundle.js"></script>
<script src="/docs-init.js"></script>
</body>
</html>
"""
DOCS_INIT = """// The bundled Swagger UI (4.x) reads OpenAPI 3.0 only; FastAPI writes 3.1, which it shows well
fetch("/openapi.json")
  .then((answer) => answer.json())
  .then((spec) => {
    window.ui = SwaggerUIBundle({
      spec: { ...spec, openapi: "3.0.3" },
      dom_id: "#swagger-ui",
      layout: "BaseLayout",
      deepLinking: true,
      showExtensions: true,
      showCommonExtensions: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    });
  });
"""
