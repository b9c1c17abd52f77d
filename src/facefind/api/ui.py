"""The web UI: static pages over the /v1 API, and its sign-in.

The pages are plain files in `web/` (ES modules, no build step), served by this process with a
strict Content-Security-Policy (guard.CSP): everything from facefind itself, nothing inline, no CDN.

Sign-in turns an API key into a server-side session (accountability/sessions.py): the HttpOnly,
SameSite=Strict cookie holds the session's random id, never the key; the server ends it at
sign-out, after 8 hours, or when the key is revoked. JavaScript cannot read the cookie, and every
change must also carry the session's CSRF token returned here (a header another site cannot set).
The guard (guard.py) authenticates the cookie before any route runs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from ..accountability import keys, sessions
from ..policy import ACTIONS, Principal
from .app import principal, refuse, service
from .guard import CSP, cookie_name

WEB = Path(__file__).with_name("web")
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
    signed_in: bool = True
    name: str
    role: str
    collections: list[str] | None
    actions: list[str]  # what the key's role may do (policy.ACTIONS): the pages follow it
    csrf_token: str


class SignedOut(BaseModel):
    signed_in: bool = False


def _session(who: Principal, csrf: str) -> Session:
    collections = sorted(who.collections) if who.collections is not None else None
    actions = [action for action in ACTIONS if who.may(action)]
    return Session(name=who.name, role=who.role, collections=collections, actions=actions, csrf_token=csrf)


@router.post("/session")
def sign_in(request: Request, response: Response, body: SignIn) -> Session:
    """Open a session with a key (the guard throttles failed ones per client address)."""
    catalog = service(request).ff.catalog
    who = keys.authenticate(catalog, body.key.strip())
    if who is None:
        refuse(request, "unknown or revoked key")
    name = cookie_name(request.scope)
    if previous := request.cookies.get(name):  # signing in again ends the session it replaces
        sessions.end(catalog, previous)
    opened = sessions.open_(catalog, who)
    response.set_cookie(
        name,
        opened.id,
        max_age=sessions.SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return _session(who, opened.csrf)


@router.get("/session")
def current_session(request: Request) -> Session | SignedOut:
    """The signed-in session (after a reload the page needs its CSRF token again), or
    `{"signed_in": false}` when the request carries neither cookie nor key: opening the page
    signed out is not an error (nor a failed authentication, so not audited). A bad or ended
    cookie is one (401, from the guard). Only a page of this origin can read the answer: the API
    sends no CORS headers."""
    if getattr(request.state, "principal", None) is None:  # the guard let it through signed out
        return SignedOut()
    who = principal(request)
    csrf = getattr(request.state, "csrf", None)
    if csrf is None:  # a key, not a session
        raise HTTPException(401, "not signed in")
    return _session(who, csrf)


@router.delete("/session")
def sign_out(request: Request, response: Response) -> dict[str, str]:
    """End the session on the server (its cookie stops working everywhere) and drop the cookie."""
    principal(request)
    session = getattr(request.state, "session", None)
    if session is None:
        raise HTTPException(401, "not signed in")
    sessions.end(service(request).ff.catalog, session)
    response.delete_cookie(cookie_name(request.scope), path="/", httponly=True, samesite="strict")
    return {"signed_out": "yes"}
