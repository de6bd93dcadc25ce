"""``/console/silences``: see, create and expire silences (roles with ``silence``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from notifier.api.console.web import (
    PREFIX,
    Ctx,
    Form,
    SignedIn,
    message_page,
    render,
    require,
    secure_headers,
)
from notifier.directory import Capability
from notifier.silences import Silence, SilenceRefused, new_silence
from notifier.store.holds import HoldOutcome
from notifier.store.silences import create_silence, expire_silence, list_silences

router = APIRouter(prefix=f"{PREFIX}/silences", include_in_schema=False)

_MAX_HOURS = 24 * 90


@router.get("")
async def silence_list(request: Request, ctx: Ctx, viewer: SignedIn) -> HTMLResponse:
    """Active and pending silences, then the latest expired ones."""
    now = ctx.clock.now()

    def read() -> list[Silence]:
        with ctx.db.reading() as conn:
            return list_silences(conn, now, None, 200)

    silences = await asyncio.to_thread(read)
    return render(
        request,
        "silences.html",
        viewer=viewer,
        silences=[(s, s.state(now)) for s in silences],
    )


@router.post("")
async def create(request: Request, ctx: Ctx, viewer: SignedIn, form: Form) -> Response:
    """Create a silence from the form (one matcher per line)."""
    require(viewer, Capability.SILENCE, "manage silences")
    now = ctx.clock.now()
    matchers = [line.strip() for line in str(form.get("matchers") or "").splitlines()]
    try:
        hours = float(str(form.get("hours") or "2"))
    except ValueError:
        hours = -1.0
    try:
        if not 0 < hours <= _MAX_HOURS:
            raise SilenceRefused(f"the duration must be between 0 and {_MAX_HOURS} hours")
        silence = new_silence(
            [m for m in matchers if m][:32],
            created_by=viewer.person.id,
            comment=str(form.get("comment") or "").strip()[:1000],
            now=now,
            duration=timedelta(hours=hours),
        )
    except SilenceRefused as exc:
        return message_page(
            request, viewer, 422, "Silence not created", str(exc), f"{PREFIX}/silences"
        )

    def store() -> HoldOutcome:
        with ctx.db.transaction() as conn:
            return create_silence(conn, silence, now)

    await asyncio.to_thread(store)
    ctx.on_change()  # the hold keeper sleeps until this silence starts or ends
    return secure_headers(RedirectResponse(f"{PREFIX}/silences", status_code=303))


@router.post("/{silence_id}/expire")
async def expire(
    request: Request, silence_id: str, ctx: Ctx, viewer: SignedIn, form: Form
) -> Response:
    """Expire a silence now; alerts it held that still fire are notified at once."""
    require(viewer, Capability.SILENCE, "manage silences")
    now = ctx.clock.now()

    def store() -> None:
        with ctx.db.transaction() as conn:
            expire_silence(conn, silence_id, viewer.person.id, now, ctx.inhibit_rules)

    try:
        await asyncio.to_thread(store)
    except SilenceRefused as exc:
        return message_page(request, viewer, 409, "Not expired", str(exc), f"{PREFIX}/silences")
    ctx.on_change()
    return secure_headers(RedirectResponse(f"{PREFIX}/silences", status_code=303))
