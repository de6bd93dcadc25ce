"""``/console/audit``: the append-only audit log, filterable, and as CSV."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from notifier.api.console.web import PREFIX, Ctx, SignedIn, render
from notifier.store import audit

router = APIRouter(prefix=PREFIX, include_in_schema=False)

Day = Annotated[str | None, Query(pattern=r"^(\d{4}-\d{2}-\d{2})?$")]
Text = Annotated[str | None, Query(max_length=128)]
PAGE = 500


def _day(value: str | None, *, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.fromisoformat(value).date()
    except ValueError:  # the pattern lets 2026-13-45 through
        raise HTTPException(422, f"{value} is not a date") from None
    start = datetime.combine(day, time(), UTC)
    return start + timedelta(days=1) if end else start


@dataclass(frozen=True, slots=True)
class Filters:
    """The audit log's filters, from the query string (empty: no filter)."""

    action: str = ""
    actor: str = ""
    subject: str = ""
    since: str = ""
    until: str = ""

    def query(self) -> str:
        """The filters as a query string (for the CSV link)."""
        return urlencode({k: v for k, v in asdict(self).items() if v})


def filters(
    action: Text = None,
    actor: Text = None,
    subject: Text = None,
    since: Day = None,
    until: Day = None,
) -> Filters:
    """Read the filters from the query string."""
    return Filters(action or "", actor or "", subject or "", since or "", until or "")


Filtered = Annotated[Filters, Depends(filters)]


async def _entries(ctx: Ctx, f: Filters, limit: int | None) -> list[dict[str, Any]]:
    def load() -> list[dict[str, Any]]:
        with ctx.db.reading() as conn:
            return audit.entries(
                conn,
                action=f.action or None,
                actor=f.actor or None,
                subject=f.subject or None,
                since=_day(f.since),
                until=_day(f.until, end=True),
                limit=limit,
            )

    return await asyncio.to_thread(load)


@router.get("/audit")
async def audit_page(request: Request, ctx: Ctx, viewer: SignedIn, f: Filtered) -> HTMLResponse:
    """Who did what and when, newest first (the latest 500; the CSV has everything)."""
    rows = await _entries(ctx, f, PAGE)
    return render(
        request,
        "audit.html",
        viewer=viewer,
        rows=rows,
        filters=f,
        query=f.query(),
        limit=PAGE,
        details=lambda d: orjson.dumps(d).decode() if d else "",
    )


@router.get("/audit.csv")
async def audit_csv(ctx: Ctx, viewer: SignedIn, f: Filtered) -> Response:
    """The filtered log as CSV (every matching entry, newest first)."""
    rows = await _entries(ctx, f, None)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "at", "actor", "action", "subject", "details"])
    for row in rows:
        writer.writerow(
            [
                row["id"],
                row["at"].isoformat(),
                _cell(row["actor"]),
                _cell(row["action"]),
                _cell(row["subject"]),
                _cell(orjson.dumps(row["details"]).decode() if row["details"] else ""),
            ]
        )
    stamp = ctx.clock.now().strftime("%Y%m%dT%H%M%SZ")
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="notifier-audit-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


def _cell(value: str) -> str:
    # A cell starting with = + - @ is a formula to spreadsheet programs: a person id or a
    # subject must not run as one when the export is opened.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
