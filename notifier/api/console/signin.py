"""``/console/login`` and ``/console/logout``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from notifier.api.console.auth import LOGIN_COOKIE, SESSION_COOKIE, check_password
from notifier.api.console.web import (
    PREFIX,
    Ctx,
    Form,
    SignedIn,
    message_page,
    render,
    secure_headers,
    sessions,
)
from notifier.api.deps import ApiContext
from notifier.directory import Capability
from notifier.store import audit
from notifier.store.sessions import revoke, revoke_everywhere

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# Password guessing: after this many failures for one id within LOCKOUT, sign-in for that id
# is refused until the oldest failure is LOCKOUT old.
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)


def _safe_next(target: str | None) -> str:
    # Only places inside the console: an open redirect would make the sign-in page a
    # phishing tool.
    if target and target.startswith(PREFIX + "/") and not target.startswith("//"):
        return target
    return f"{PREFIX}/incidents"


async def _too_many_failures(ctx: ApiContext, person_id: str, address: str) -> str | None:
    """Why sign-in is refused for now, or None: too many failed sign-ins for this id, or from
    this client address (whatever the ids: guessing one password for many people), within
    the lockout window. Read from the audit log, so every engine sharing the store counts
    the same attempts."""
    since = ctx.clock.now() - LOCKOUT
    per_address = ctx.settings.console.max_failed_sign_ins_per_address

    def check() -> str | None:
        with ctx.db.reading() as conn:
            failed = partial(audit.entries, conn, action="console.sign-in-failed", since=since)
            if len(failed(actor=person_id or "-", limit=MAX_FAILURES)) >= MAX_FAILURES:
                return "for this id"
            if per_address and len(failed(address=address, limit=per_address)) >= per_address:
                return "from your address"
            return None

    return await asyncio.to_thread(check)


def _secure(ctx: ApiContext) -> bool:
    return ctx.settings.http.public_url.startswith("https://")


async def _record(ctx: ApiContext, actor: str, action: str, details: dict[str, str]) -> None:
    def write() -> None:
        with ctx.db.transaction() as conn:
            audit.record(conn, ctx.clock.now(), actor, action, "console", details)

    await asyncio.to_thread(write)


def _sign_in_page(
    request: Request,
    ctx: ApiContext,
    *,
    next_: str,
    person: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    token, cookie = sessions(request).sign_in_token()
    response = render(
        request,
        "login.html",
        viewer=None,
        status=status,
        token=token,
        next=next_,
        person=person,
        error=error,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        cookie,
        max_age=3600,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=_secure(ctx),
    )
    return response


@router.get("/login")
async def sign_in_page(request: Request, ctx: Ctx, next: str | None = None) -> Response:
    """The sign-in form."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if await asyncio.to_thread(sessions(request).viewer, cookie) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _sign_in_page(request, ctx, next_=_safe_next(next))


async def _form(request: Request) -> FormData:
    return await request.form()


@router.post("/login")
async def sign_in(
    request: Request, ctx: Ctx, form: Annotated[FormData, Depends(_form)]
) -> Response:
    """Check the password; on success set the session cookie and go on."""
    person_id = str(form.get("person") or "").strip()[:64]
    password = str(form.get("password") or "")
    next_ = _safe_next(str(form.get("next") or ""))
    issuer = sessions(request)
    if not issuer.check_sign_in_token(request.cookies.get(LOGIN_COOKIE), form.get("csrf")):  # type: ignore[arg-type]
        return message_page(
            request,
            None,
            403,
            "Not allowed",
            "This sign-in form is missing its security token or it is out of date: "
            "reload the page and try again.",
        )
    address = request.client.host if request.client else "-"
    attempt = {"person": person_id, "address": address}
    refused = await _too_many_failures(ctx, person_id, address)
    if refused is not None:
        await _record(ctx, person_id or "-", "console.sign-in-refused", attempt)
        return _sign_in_page(
            request,
            ctx,
            next_=next_,
            person=person_id,
            status=429,
            error=f"Too many failed sign-ins {refused}: wait {LOCKOUT.seconds // 60} minutes "
            "and try again, or ask an administrator to check the audit log.",
        )
    person = ctx.directory.get(person_id)
    # Argon2 takes tens of milliseconds: keep the event loop free meanwhile.
    valid = await asyncio.to_thread(check_password, person, password)
    if person is None or not valid or not ctx.directory.may(person.id, Capability.VIEW):
        await _record(ctx, person_id or "-", "console.sign-in-failed", attempt)
        return _sign_in_page(
            request,
            ctx,
            next_=next_,
            person=person_id,
            status=401,
            error="That id and password do not match, or your roles do not include the console.",
        )
    await _record(ctx, person.id, "console.sign-in", {"address": address})
    response = RedirectResponse(next_, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        issuer.issue(person),
        max_age=issuer.ttl_seconds,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=_secure(ctx),
    )
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return secure_headers(response)


@router.post("/logout")
async def sign_out(ctx: Ctx, viewer: SignedIn, _: Form) -> Response:
    """End the session: this cookie, and any copy of it, no longer signs anyone in."""

    def record() -> None:
        now = ctx.clock.now()
        with ctx.db.transaction() as conn:
            revoke(conn, viewer.session_hash, viewer.person.id, now, viewer.expires_at)
            audit.record(conn, now, viewer.person.id, "console.sign-out", "console", {})

    await asyncio.to_thread(record)
    return _signed_out()


@router.post("/logout/everywhere")
async def sign_out_everywhere(ctx: Ctx, viewer: SignedIn, _: Form) -> Response:
    """End every session of the signed-in person, on every device (a lost laptop, a shared
    computer): each cookie issued until now stops working; signing in again starts anew."""

    def record() -> None:
        now = ctx.clock.now()
        # The last session issued now would expire after one session lifetime.
        lasts = now + timedelta(seconds=ctx.settings.console.session_ttl_seconds)
        with ctx.db.transaction() as conn:
            revoke_everywhere(conn, viewer.person.id, now, lasts)
            audit.record(conn, now, viewer.person.id, "console.sign-out-everywhere", "console", {})

    await asyncio.to_thread(record)
    return _signed_out()


def _signed_out() -> Response:
    """To the sign-in page, the session cookie dropped."""
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return secure_headers(response)
