"""``GET|POST /receipt/{token}``: the pages behind the confirm-receipt link of a policy notice.

Like acknowledgment links, GET only shows what would be confirmed (mail scanners open links)
and POST confirms. Confirming is idempotent: a second confirmation says it was already done.
"""

from __future__ import annotations

import asyncio
from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from notifier.api.alerts import context
from notifier.api.deps import ApiContext
from notifier.api.pages import heading, page, refusal
from notifier.links import LinkClaim, LinkInvalid
from notifier.store.receipts import Confirmation, confirm_receipt

router = APIRouter(tags=["receipt links"])
Ctx = Annotated[ApiContext, Depends(context)]


def _verify(ctx: ApiContext, token: str) -> LinkClaim | HTMLResponse:
    if ctx.receipts is None:
        return page("Not available", "<p>This server does not take receipts.</p>", 404)
    try:
        return ctx.receipts.verify(token)
    except LinkInvalid as exc:
        return refusal(exc, "Reply to the notice's sender to confirm instead.")


@router.get("/receipt/{token}", response_class=HTMLResponse)
async def show(token: str, ctx: Ctx) -> HTMLResponse:
    """Show which notice would be confirmed, with a button; never confirms by itself."""
    claim = _verify(ctx, token)
    if isinstance(claim, HTMLResponse):
        return claim

    found = await heading(ctx, claim)
    if found is None:
        return page("Notice not found", "<p>It may have been removed.</p>", 404)
    name, summary, _status, who = found
    return page(
        "Confirm receipt?",
        f"<p><strong>{escape(name)}</strong></p><p>{escape(summary)}</p>"
        f"<p class=muted>Confirming records that <strong>{who}</strong> received this "
        f"notice.</p>"
        f'<form method="post"><button type="submit">Confirm receipt</button></form>',
    )


@router.post("/receipt/{token}", response_class=HTMLResponse)
async def confirm(token: str, ctx: Ctx) -> HTMLResponse:
    """Record the receipt as the person the link was sent to."""
    claim = _verify(ctx, token)
    if isinstance(claim, HTMLResponse):
        return claim
    now = ctx.clock.now()

    def apply() -> Confirmation:
        with ctx.db.transaction() as conn:
            return confirm_receipt(
                conn, claim.alert_id, claim.occurrence, claim.person_id, now, "email-link"
            )

    outcome = await asyncio.to_thread(apply)
    if outcome is Confirmation.NOT_ASKED:
        return page("Nothing to confirm", "<p>No receipt was asked of you for this.</p>", 404)
    if outcome is Confirmation.ALREADY:
        return page("Already confirmed", "<p>Your receipt was already recorded. Thank you.</p>")
    return page("Receipt confirmed", "<p>Thank you: your receipt is recorded.</p>")
