"""The web UI: static pages over the /v1 API, and its sign-in.

The pages are plain files in `web/` (ES modules, no build step), served by this process with a
strict Content-Security-Policy: everything from facefind itself, nothing inline, no CDN.

Sign-in turns an API key into an HttpOnly, SameSite=Strict session cookie. The cookie holds the
key itself, so revoking the key ends the session at once and the server keeps no session state;
JavaScript cannot read it, and every change must also carry the CSRF token returned here (a header
a page on another site cannot set).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from ..accountability import keys
from ..policy import ACTIONS, Principal
from .app import SESSION_COOKIE, SESSION_SECONDS, csrf_token, principal, refuse, service

WEB = Path(__file__).with_name("web")
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
router = APIRouter(prefix="/ui", tags=["web UI"])


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/ui/assets", StaticFiles(directory=WEB), name="ui-assets")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/")


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    headers = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache"}
    return FileResponse(WEB / "index.html", headers=headers)


class SignIn(BaseModel):
    key: str


class Session(BaseModel):
    name: str
    role: str
    collections: list[str] | None
    actions: list[str]  # what the key's role may do (policy.ACTIONS): the pages follow it
    csrf_token: str


def _session(who: Principal, key: str) -> Session:
    collections = sorted(who.collections) if who.collections is not None else None
    actions = [action for action in ACTIONS if who.may(action)]
    return Session(
        name=who.name, role=who.role, collections=collections, actions=actions, csrf_token=csrf_token(key)
    )


@router.post("/session")
def sign_in(request: Request, response: Response, body: SignIn) -> Session:
    key = body.key.strip()
    who = keys.authenticate(service(request).ff.catalog, key)
    if who is None:
        refuse(request, "unknown or revoked key")
    response.set_cookie(
        SESSION_COOKIE,
        key,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return _session(who, key)


@router.get("/session")
def current_session(request: Request) -> Session:
    """The signed-in session (after a reload the page needs its CSRF token again); 401 if none.
    Only a page of this origin can read the answer: the API sends no CORS headers. Opening the
    page signed out is not a failed authentication (not audited); a bad cookie is."""
    if SESSION_COOKIE not in request.cookies:
        raise HTTPException(401, "not signed in")
    who = principal(request)
    return _session(who, request.cookies.get(SESSION_COOKIE, "").strip())


@router.delete("/session")
def sign_out(response: Response) -> dict[str, str]:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return {"signed_out": "yes"}
