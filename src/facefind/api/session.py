"""Sign-in for the web UI: an API key becomes an HttpOnly, SameSite=Strict session cookie.

The cookie holds the key itself, so revoking the key ends the session at once and the server
keeps no session state; JavaScript cannot read it, and every change must also carry the CSRF
token returned here (a header a page on another site cannot set).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from ..accountability import keys
from .app import SESSION_COOKIE, SESSION_SECONDS, csrf_token, refuse, service

router = APIRouter(prefix="/ui", tags=["web UI"])


class SignIn(BaseModel):
    key: str


class Session(BaseModel):
    name: str
    role: str
    collections: list[str] | None
    csrf_token: str


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
    collections = sorted(who.collections) if who.collections is not None else None
    return Session(
        name=who.name, role=who.role, collections=collections, csrf_token=csrf_token(body.key.strip())
    )


@router.delete("/session")
def sign_out(response: Response) -> dict[str, str]:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return {"signed_out": "yes"}
