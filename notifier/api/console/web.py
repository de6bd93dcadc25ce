"""What every console page shares: the page templates, security headers, who is signed in,
CSRF-checked forms."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from starlette.datastructures import FormData

from notifier.api.console.auth import SESSION_COOKIE, Sessions, Viewer, csrf_ok
from notifier.api.deps import ApiContext
from notifier.directory import Capability
from notifier.slack_blocks import unescape

PREFIX = "/console"

# Scripts only from this origin (no inline script); styles may be inline because the email
# preview shows the message's own HTML (in a sandboxed frame that runs no script at all).
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def since(value: datetime, now: datetime) -> str:
    """A short "how long ago" (``3 h 12 min``)."""
    seconds = max(0, int((now - value).total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"


def until(now: datetime, due: datetime) -> str:
    """How long until ``due`` (``due now`` when it is past)."""
    return since(now, due) if due > now else "due now"


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


_BOLD = re.compile(r"\*([^*\n]+)\*")


def mrkdwn(text: str) -> Markup:
    """Slack mrkdwn shown as Slack shows it: its entities read back and ``*bold*`` bold;
    everything else escaped for the page."""
    plain = unescape(text)
    parts: list[Markup] = []
    at = 0
    for match in _BOLD.finditer(plain):
        parts.append(escape(plain[at : match.start()]))
        parts.append(Markup("<strong>%s</strong>") % match.group(1))
        at = match.end()
    parts.append(escape(plain[at:]))
    return Markup("").join(parts)


_env = Environment(
    loader=PackageLoader("notifier.api.console", "pages"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["since"] = since
_env.filters["when"] = _when
_env.filters["since_until"] = until
_env.filters["mrkdwn"] = mrkdwn
_env.globals["Capability"] = Capability
_env.globals["PREFIX"] = PREFIX


def render(
    request: Request, page: str, *, viewer: Viewer | None, status: int = 200, **values: Any
) -> HTMLResponse:
    """Render a console page with the security headers every page gets."""
    ctx: ApiContext = request.app.state.ctx
    html = _env.get_template(page).render(
        viewer=viewer, now=ctx.clock.now(), request_path=request.url.path, **values
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def message_page(
    request: Request,
    viewer: Viewer | None,
    status: int,
    title: str,
    message: str,
    back: str | None = None,
) -> HTMLResponse:
    """A page that says what happened (a refusal, a problem) and where to go back to."""
    values: dict[str, Any] = {"title": title, "message": message}
    if back is not None:
        values["back"] = back
    return render(request, "message.html", viewer=viewer, status=status, **values)


def fragment(page: str, **values: Any) -> str:
    """Render a part of a page (for the live parts: preview, incident rows)."""
    return _env.get_template(page).render(**values)


def secure_headers(response: Response) -> Response:
    """Add the security headers to a response built elsewhere."""
    response.headers.update(_HEADERS)
    return response


class SignInRequired(Exception):
    """No valid session: the browser is sent to the sign-in page."""


class Forbidden(Exception):
    """Signed in, but the person's roles do not allow this."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def context(request: Request) -> ApiContext:
    """The API context the app was built with."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


def sessions(request: Request) -> Sessions:
    """The session issuer installed with the console."""
    issuer: Sessions = request.app.state.console_sessions
    return issuer


def current_viewer(request: Request) -> Viewer:
    """The signed-in person (the sign-in page otherwise).

    A plain function on purpose: FastAPI runs it in its thread pool, and checking whether
    the session was signed out asks the store.
    """
    viewer = sessions(request).viewer(request.cookies.get(SESSION_COOKIE))
    if viewer is None:
        raise SignInRequired
    return viewer


SignedIn = Annotated[Viewer, Depends(current_viewer)]
Ctx = Annotated[ApiContext, Depends(context)]


def require(viewer: Viewer, capability: Capability, what: str) -> None:
    """Refuse (403) unless the viewer's roles allow ``capability``."""
    if not viewer.can(capability):
        raise Forbidden(f"Your roles do not allow you to {what}.")


async def checked_form(request: Request, viewer: SignedIn) -> FormData:
    """The POSTed form, if it carries the session's CSRF token (403 otherwise)."""
    form = await request.form()
    if not csrf_ok(viewer, form.get("csrf")):
        raise Forbidden(
            "This form is missing its security token or it is out of date: "
            "reload the page and try again."
        )
    return form


Form = Annotated[FormData, Depends(checked_form)]


def install(app: FastAPI, issuer: Sessions) -> None:
    """Give ``app`` the session issuer and the console's error pages."""
    app.state.console_sessions = issuer

    async def to_sign_in(request: Request, _: Exception) -> Response:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        if request.method != "GET":
            return message_page(
                request,
                None,
                401,
                "Signed out",
                "Your session has ended. Sign in again and repeat what you did.",
            )
        return RedirectResponse(f"{PREFIX}/login?next={quote(target)}", status_code=303)

    async def forbidden(request: Request, exc: Exception) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        viewer = await asyncio.to_thread(sessions(request).viewer, cookie)
        message = exc.message if isinstance(exc, Forbidden) else "Not allowed."
        return message_page(request, viewer, 403, "Not allowed", message)

    handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
        SignInRequired: to_sign_in,
        Forbidden: forbidden,
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)
