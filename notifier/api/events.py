"""``POST /api/v1/events`` and ``/api/v1/alertmanager``: validate, then publish to the topic.

The body is validated exactly as the consumer would (same decoder), so a client learns at once
what is wrong (4xx with the reason code and the offending field) instead of finding its event
in the dead-letter topic later. Accepted events are produced keyed by fingerprint.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from notifier.api.alerts import context
from notifier.api.deps import ApiContext
from notifier.broker import records_for, split_documents
from notifier.errors import RejectedInput, RejectionCode

router = APIRouter(prefix="/api/v1", tags=["ingest"])
Ctx = Annotated[ApiContext, Depends(context)]


class Accepted(BaseModel):
    """How many events were published."""

    accepted: int
    topic: str


async def _accept(request: Request, ctx: ApiContext, *, alertmanager: bool) -> Accepted:
    limit = ctx.settings.kafka.max_event_bytes
    body = await request.body()
    if len(body) > limit * 10:
        raise HTTPException(413, f"body is {len(body)} bytes; the limit is {limit * 10}")
    documents = [body] if alertmanager else split_documents(body)
    records: list[tuple[bytes, bytes]] = []
    for index, document in enumerate(documents):
        try:
            found = records_for(document, max_bytes=limit)
        except RejectedInput as exc:
            status = 413 if exc.code is RejectionCode.OVERSIZED else 400
            where = f"document {index + 1}: " if len(documents) > 1 else ""
            raise HTTPException(
                status, {"reason": exc.code.value, "detail": where + exc.detail}
            ) from None
        if alertmanager and b'"specversion"' in document:
            raise HTTPException(
                400,
                {
                    "reason": "schema",
                    "detail": "not an Alertmanager payload; POST CloudEvents to /api/v1/events",
                },
            )
        records.extend(found)
    try:
        await ctx.publish(records)
    except Exception as exc:
        raise HTTPException(
            503, f"the broker did not accept the events ({type(exc).__name__}); retry later"
        ) from None
    return Accepted(accepted=len(records), topic=ctx.settings.kafka.topic)


@router.post("/events", status_code=202)
async def events(request: Request, ctx: Ctx) -> Accepted:
    """Publish CloudEvents (one object, a JSON array or JSON lines) after validating them."""
    return await _accept(request, ctx, alertmanager=False)


@router.post("/alertmanager", status_code=202)
async def alertmanager(request: Request, ctx: Ctx) -> Accepted:
    """Receive a Prometheus Alertmanager webhook (version 4); each alert becomes an event."""
    return await _accept(request, ctx, alertmanager=True)
