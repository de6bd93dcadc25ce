"""``GET|POST /ack/{token}``: the pages behind the acknowledgment link in every page.

GET only shows a confirmation page: mail scanners and link previews open links, and must not
acknowledge anything. POST acknowledges, once: the link's nonce is recorded in the same
transaction, so a second POST (or a replay) is refused. Expired and tampered links are refused
with a page that says what to do instead.
"""

from __future__ import annotations

import asyncio
from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from notifier.api.alerts import context
from notifier.api.deps import ApiContext
from notifier.lifecycle import Action, TransitionRefused, Verb
from notifier.links import LinkClaim, LinkExpired, LinkInvalid
from notifier.store.schema import alerts, used_links
from notifier.store.timeline import ActionResult, AlertNotFound, apply_action

router = APIRouter(tags=["acknowledgment links"])
Ctx = Annotated[ApiContext, Depends(context)]


class _AlreadyUsed(Exception):
    """The link's nonce is already recorded."""


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A small, self-contained HTML page (``body`` is HTML: escape what goes in it)."""
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;
line-height:1.5}}button{{font-size:1.1rem;padding:.7rem 1.4rem;border:0;border-radius:.4rem;
background:#b42318;color:#fff;cursor:pointer}}.muted{{color:#555}}</style></head>
<body><h1>{escape(title)}</h1>{body}</body></html>"""
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def refusal(exc: LinkInvalid, instead: str) -> HTMLResponse:
    """The page for a link that does not verify; ``instead`` says what to do (HTML)."""
    if isinstance(exc, LinkExpired):
        return page("This link has expired", f"<p>{instead}</p>", 410)
    return page(
        "This link is not valid",
        "<p>It may have been altered or cut. Use the link from the email as is.</p>",
        400,
    )


def _verify(ctx: ApiContext, token: str) -> LinkClaim | HTMLResponse:
    try:
        return ctx.signer.verify(token)
    except LinkInvalid as exc:
        return refusal(
            exc, "Acknowledge the alert with <code>notifier ack</code> or the API instead."
        )


async def heading(ctx: ApiContext, claim: LinkClaim) -> tuple[str, str, str, str] | None:
    """The claimed alert's name, summary and status, and the escaped name of the person the
    link was made for (None if the alert is gone): what a link's confirmation page shows."""

    def load() -> tuple[str, str, str] | None:
        with ctx.db.engine.connect() as conn:
            row = conn.execute(
                select(alerts.c.name, alerts.c.summary, alerts.c.status).where(
                    alerts.c.id == claim.alert_id
                )
            ).one_or_none()
        return None if row is None else (row[0], row[1], row[2])

    found = await asyncio.to_thread(load)
    if found is None:
        return None
    person = ctx.directory.get(claim.person_id)
    return (*found, escape(person.name if person else claim.person_id))


@router.get("/ack/{token}", response_class=HTMLResponse)
async def confirm(token: str, ctx: Ctx) -> HTMLResponse:
    """Show what would be acknowledged, with a button; never acknowledges by itself."""
    claim = _verify(ctx, token)
    if isinstance(claim, HTMLResponse):
        return claim

    found = await heading(ctx, claim)
    if found is None:
        return page("Alert not found", "<p>It may have been removed.</p>", 404)
    name, summary, status, who = found
    return page(
        f"Acknowledge {name}?",
        f"<p>{escape(summary)}</p><p class=muted>Status: {escape(status)}. Acknowledging tells "
        f"everyone that <strong>{who}</strong> is taking charge, and stops the escalation.</p>"
        f'<form method="post"><button type="submit">Acknowledge</button></form>',
    )


@router.post("/ack/{token}", response_class=HTMLResponse)
async def acknowledge(token: str, ctx: Ctx) -> HTMLResponse:
    """Acknowledge the alert as the person the link was sent to; each link works once."""
    claim = _verify(ctx, token)
    if isinstance(claim, HTMLResponse):
        return claim
    if not ctx.directory.may(claim.person_id, Verb.ACKNOWLEDGE):
        return page("Not allowed", "<p>Your role does not allow acknowledging alerts.</p>", 403)
    now = ctx.clock.now()
    action = Action(Verb.ACKNOWLEDGE, claim.person_id, "email-link", now)

    def apply() -> ActionResult:
        try:
            with ctx.db.transaction() as conn:
                conn.execute(
                    insert(used_links).values(
                        nonce=claim.nonce,
                        alert_id=claim.alert_id,
                        person_id=claim.person_id,
                        used_at=now,
                    )
                )
                return apply_action(
                    conn,
                    claim.alert_id,
                    action,
                    lock=not ctx.db.is_sqlite,
                    directory=ctx.directory,
                )
        except IntegrityError:
            raise _AlreadyUsed from None

    try:
        result = await asyncio.to_thread(apply)
    except _AlreadyUsed:
        return page(
            "This link was already used", "<p>Each acknowledgment link works once.</p>", 409
        )
    except AlertNotFound:
        return page("Alert not found", "<p>It may have been removed.</p>", 404)
    except TransitionRefused as exc:
        return page("Nothing to acknowledge", f"<p>{escape(str(exc))}</p>", 409)
    if result.follow_ups.notifications or result.follow_ups.timers:
        ctx.on_change()
    if result.outcome.already:
        by = escape(result.acknowledged_by or "someone")
        return page("Already acknowledged", f"<p>{by} has already taken charge.</p>")
    return page("Acknowledged", f"<p>Thank you. {escape(result.name)} is now yours.</p>")
