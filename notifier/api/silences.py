"""``/api/v1/silences``: create, list, inspect and expire silences with a personal token.

Reading needs any valid token; creating and expiring need a role with the ``silence``
permission. Every change is written to the audit log with who made it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, Field

from notifier.api.alerts import Ctx, caller
from notifier.directory import Person
from notifier.lifecycle import Verb
from notifier.silences import Silence, SilenceRefused, SilenceState, new_silence
from notifier.store.holds import HoldOutcome
from notifier.store.silences import create_silence, expire_silence, get_silence, list_silences

router = APIRouter(prefix="/api/v1/silences", tags=["silences"])


class SilenceBody(BaseModel):
    """A new silence: matchers, a window (``ends_at`` or ``duration_minutes``), and why."""

    matchers: list[str] = Field(
        min_length=1,
        max_length=32,
        examples=[['alertname="ConsensusFinalityLag"', 'network="testnet"']],
    )
    comment: str = Field(min_length=1, max_length=1000, examples=["testnet upgrade, CHG-1234"])
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    duration_minutes: float | None = Field(default=None, gt=0)


class SilenceView(BaseModel):
    """A silence as the API shows it."""

    id: str
    matchers: list[str]
    starts_at: datetime
    ends_at: datetime
    state: SilenceState
    created_by: str
    comment: str
    created_at: datetime
    expired_at: datetime | None
    expired_by: str | None
    held_now: int | None = None


def view(silence: Silence, now: datetime, held_now: int | None = None) -> SilenceView:
    """The API form of ``silence`` at ``now``."""
    return SilenceView(
        id=silence.id,
        matchers=[str(m) for m in silence.matchers],
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        state=silence.state(now),
        created_by=silence.created_by,
        comment=silence.comment,
        created_at=silence.created_at,
        expired_at=silence.expired_at,
        expired_by=silence.expired_by,
        held_now=held_now,
    )


def _may_silence(ctx: Ctx, person: Person) -> None:
    if not ctx.directory.may(person.id, Verb.SILENCE):
        raise HTTPException(403, f"{person.id} may not manage silences")


@router.post("", status_code=201)
async def create(
    body: SilenceBody, ctx: Ctx, person: Annotated[Person, Depends(caller)]
) -> SilenceView:
    """Create a silence; alerts it covers that fire now are held at once (``held_now``)."""
    _may_silence(ctx, person)
    now = ctx.clock.now()
    try:
        silence = new_silence(
            body.matchers,
            created_by=person.id,
            comment=body.comment,
            now=now,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            duration=(timedelta(minutes=body.duration_minutes) if body.duration_minutes else None),
        )
    except SilenceRefused as exc:
        raise HTTPException(422, str(exc)) from None

    def store() -> HoldOutcome:
        with ctx.db.transaction() as conn:
            return create_silence(conn, silence, now)

    outcome = await asyncio.to_thread(store)
    ctx.on_change()  # the hold keeper sleeps until this silence starts or ends
    return view(silence, now, held_now=outcome.held)


@router.get("")
async def silences(
    ctx: Ctx,
    _person: Annotated[Person, Depends(caller)],
    state: Annotated[SilenceState | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[SilenceView]:
    """Silences, newest first, optionally only those ``active``, ``pending`` or ``expired``."""
    now = ctx.clock.now()

    def read() -> list[Silence]:
        with ctx.db.engine.connect() as conn:
            return list_silences(conn, now, state, limit)

    return [view(s, now) for s in await asyncio.to_thread(read)]


@router.get("/{silence_id}")
async def silence(
    silence_id: str, ctx: Ctx, _person: Annotated[Person, Depends(caller)]
) -> SilenceView:
    """One silence."""

    def read() -> Silence | None:
        with ctx.db.engine.connect() as conn:
            return get_silence(conn, silence_id)

    found = await asyncio.to_thread(read)
    if found is None:
        raise HTTPException(404, f"no silence {silence_id!r}")
    return view(found, ctx.clock.now())


@router.delete("/{silence_id}")
async def expire(
    silence_id: str, ctx: Ctx, person: Annotated[Person, Depends(caller)]
) -> dict[str, Any]:
    """Expire a silence now. Alerts it held that still fire are notified at once."""
    _may_silence(ctx, person)
    now = ctx.clock.now()

    def store() -> tuple[Silence, HoldOutcome]:
        with ctx.db.transaction() as conn:
            return expire_silence(conn, silence_id, person.id, now, ctx.inhibit_rules)

    try:
        expired, outcome = await asyncio.to_thread(store)
    except SilenceRefused as exc:
        code = 404 if str(exc).startswith("no silence") else 409
        raise HTTPException(code, str(exc)) from None
    ctx.on_change()
    return {
        "silence": view(expired, now).model_dump(mode="json"),
        "released": outcome.released,
        "still_held": outcome.held,
        "lapsed": outcome.lapsed,
    }
