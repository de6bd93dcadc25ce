"""``/console/incidents``: the open alerts, and per alert its timeline with Acknowledge and
Resolve buttons for those allowed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import select

from notifier.api.alerts import act
from notifier.api.console.web import (
    PREFIX,
    Ctx,
    Form,
    SignedIn,
    message_page,
    render,
    require,
    secure_headers,
    since,
    until,
)
from notifier.directory import Capability
from notifier.lifecycle import Verb
from notifier.store.incidents import OpenAlert, open_alerts, timeline_entries
from notifier.store.schema import alerts
from notifier.store.timeline import AlertNotFound

router = APIRouter(prefix=f"{PREFIX}/incidents", include_in_schema=False)

Severity = Annotated[str | None, Query(pattern="^(critical|high|warning|info)?$")]
State = Annotated[str | None, Query(pattern="^(firing|acknowledged)?$")]


def rows_html(rows: Sequence[OpenAlert], now: datetime) -> Markup:
    """The incident table's body.

    Written out here rather than in a page template: it is the one part of the console that
    grows with the incident (10,000 rows), and autoescaping wraps every value of every row in
    a Markup object, which took two thirds of the page's time. Every value still goes through
    ``html.escape``; the markup is the same as the pages'.
    """
    if not rows:
        return Markup('<tbody><tr><td colspan="5" class="muted">Nothing is open.</td></tr></tbody>')
    out = ["<tbody>"]
    for a in rows:
        severity = escape(a.severity)
        state = escape(a.status)
        if a.acknowledged_by:
            state += " · " + escape(a.acknowledged_by)
        if a.held:
            state += ' · <span class="badge">held</span>'
        step = f"step {a.escalation_step}" if a.escalation_step else "first page"
        if a.next_escalation_at is not None:
            step += f'<br><span class="muted">next in {until(now, a.next_escalation_at)}</span>'
        out.append(
            f'<tr><td class="sev sev-{severity}">{severity}</td>'
            f'<td class="alert"><a href="{PREFIX}/incidents/{escape(a.id)}">{escape(a.name)}</a>'
            f'<br><span class="muted">{escape(a.summary)}</span></td>'
            f'<td class="state">{state}</td><td class="hide-narrow">{step}</td>'
            f'<td class="when">{since(a.started_at, now)}</td></tr>'
        )
    out.append("</tbody>")
    return Markup("".join(out))  # noqa: S704 - every value above is escaped


async def _rows(ctx: Ctx, severity: str | None, state: str | None) -> list[Any]:
    def load() -> list[Any]:
        with ctx.db.reading() as conn:
            return list(open_alerts(conn, severity=severity or None, status=state or None))

    return await asyncio.to_thread(load)


@router.get("")
async def incident_list(
    request: Request, ctx: Ctx, viewer: SignedIn, severity: Severity = None, state: State = None
) -> HTMLResponse:
    """Every open alert, most severe first."""
    started = time.perf_counter()
    rows = await _rows(ctx, severity, state)
    response = render(
        request,
        "incidents.html",
        viewer=viewer,
        count=len(rows),
        rows_html=rows_html(rows, ctx.clock.now()),
        severity=severity or "",
        state=state or "",
    )
    # Server time, for the browser's developer tools and the console bench.
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


@router.get("/rows")
async def incident_rows(
    ctx: Ctx, viewer: SignedIn, severity: Severity = None, state: State = None
) -> HTMLResponse:
    """The table body alone (the list refreshes itself with it)."""
    rows = await _rows(ctx, severity, state)
    html = rows_html(rows, ctx.clock.now())
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/{alert_id}")
async def incident(request: Request, alert_id: str, ctx: Ctx, viewer: SignedIn) -> HTMLResponse:
    """One alert: what is known, who was told, who acted."""

    def load() -> tuple[dict[str, Any], list[Any]] | None:
        with ctx.db.reading() as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
            if row is None:
                return None
            return dict(row), timeline_entries(conn, alert_id)

    try:
        found = await asyncio.to_thread(load)
    except AlertNotFound:
        found = None
    if found is None:
        return message_page(
            request,
            viewer,
            404,
            "Alert not found",
            f"There is no alert {alert_id}.",
            f"{PREFIX}/incidents",
        )
    alert, entries = found
    return render(request, "incident.html", viewer=viewer, alert=alert, entries=entries)


async def _act(
    request: Request, ctx: Ctx, viewer: SignedIn, alert_id: str, verb: Verb, note: str | None
) -> Response:
    try:
        await act(ctx, alert_id, viewer.person, verb, note, "console")
    except HTTPException as exc:
        return message_page(
            request,
            viewer,
            exc.status_code,
            f"Could not {verb.value}",
            str(exc.detail),
            f"{PREFIX}/incidents/{alert_id}",
        )
    return secure_headers(RedirectResponse(f"{PREFIX}/incidents/{alert_id}", status_code=303))


def _note(form: Form) -> str | None:
    note = str(form.get("note") or "").strip()
    return note[:2000] or None


@router.post("/{alert_id}/acknowledge")
async def acknowledge(
    request: Request, alert_id: str, ctx: Ctx, viewer: SignedIn, form: Form
) -> Response:
    """Take charge of the alert (stops its escalation)."""
    require(viewer, Capability.ACKNOWLEDGE, "acknowledge alerts")
    return await _act(request, ctx, viewer, alert_id, Verb.ACKNOWLEDGE, _note(form))


@router.post("/{alert_id}/resolve")
async def resolve(
    request: Request, alert_id: str, ctx: Ctx, viewer: SignedIn, form: Form
) -> Response:
    """Close the alert by hand."""
    require(viewer, Capability.RESOLVE, "resolve alerts")
    return await _act(request, ctx, viewer, alert_id, Verb.RESOLVE, _note(form))
