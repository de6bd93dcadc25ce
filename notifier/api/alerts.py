"""``/api/v1/alerts``: list and inspect alerts, acknowledge and resolve with a personal token."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from notifier.api.deps import ApiContext
from notifier.directory import Person
from notifier.lifecycle import Action, TransitionRefused, Verb
from notifier.store.queries import alert_detail, list_alerts
from notifier.store.timeline import (
    ActionResult,
    AlertNotFound,
    UpdateRefused,
    apply_action,
    post_update,
)

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
_bearer = HTTPBearer(auto_error=False, description="a personal API token")


def context(request: Request) -> ApiContext:
    """The API context the app was built with."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(context)]


def caller(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Person:
    """The person whose API token authenticates the request (401 otherwise)."""
    person = ctx.directory.by_token(credentials.credentials) if credentials else None
    if person is None:
        raise HTTPException(
            401,
            "a valid personal API token is required (Authorization: Bearer ...)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return person


class ActionBody(BaseModel):
    """An optional note for the alert's timeline."""

    note: str | None = Field(default=None, max_length=2000)


class ActionReply(BaseModel):
    """What the action did."""

    alert_id: str
    occurrence: int
    status: str
    changed: bool
    message: str


@router.get("")
async def alerts(
    ctx: Ctx,
    state: Annotated[str | None, Query(pattern="^(firing|acknowledged|resolved|notice)$")] = None,
    severity: Annotated[str | None, Query(pattern="^(critical|high|warning|info)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Alerts, most recently updated first, filtered by state and severity."""
    return await asyncio.to_thread(list_alerts, ctx.db, state=state, severity=severity, limit=limit)


@router.get("/{alert_id}")
async def alert(alert_id: str, ctx: Ctx) -> dict[str, Any]:
    """One alert with its timeline and the notifications sent about it."""
    try:
        return await asyncio.to_thread(alert_detail, ctx.db, alert_id)
    except AlertNotFound as exc:
        raise HTTPException(404, str(exc)) from None


async def act(
    ctx: ApiContext, alert_id: str, person: Person, verb: Verb, note: str | None, channel: str
) -> ActionReply:
    """Apply an action for ``person`` (403 if their roles do not allow it)."""
    if not ctx.directory.may(person.id, verb):
        raise HTTPException(403, f"{person.id} may not {verb.value} alerts")
    action = Action(verb, person.id, channel, ctx.clock.now(), note)

    def apply() -> ActionResult:
        with ctx.db.transaction() as conn:
            return apply_action(
                conn, alert_id, action, lock=not ctx.db.is_sqlite, directory=ctx.directory
            )

    try:
        result = await asyncio.to_thread(apply)
    except AlertNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except TransitionRefused as exc:
        raise HTTPException(409, str(exc)) from None
    if result.follow_ups.notifications or result.follow_ups.timers:
        ctx.on_change()
    status = result.outcome.after.value
    message = f"already {status}" if result.outcome.already else f"{status} by {person.id}"
    return ActionReply(
        alert_id=result.alert_id,
        occurrence=result.occurrence,
        status=status,
        changed=result.outcome.changed,
        message=message,
    )


@router.post("/{alert_id}/ack")
async def acknowledge(
    alert_id: str,
    ctx: Ctx,
    person: Annotated[Person, Depends(caller)],
    body: Annotated[ActionBody | None, Body()] = None,
) -> ActionReply:
    """Take charge of an alert. Acknowledging twice is harmless (``changed`` is false)."""
    return await act(ctx, alert_id, person, Verb.ACKNOWLEDGE, body.note if body else None, "api")


@router.post("/{alert_id}/resolve")
async def resolve(
    alert_id: str,
    ctx: Ctx,
    person: Annotated[Person, Depends(caller)],
    body: Annotated[ActionBody | None, Body()] = None,
) -> ActionReply:
    """Resolve an alert by hand."""
    return await act(ctx, alert_id, person, Verb.RESOLVE, body.note if body else None, "api")


class UpdateBody(BaseModel):
    """A status update for the stakeholders."""

    note: str = Field(min_length=1, max_length=4000)


class UpdateReply(BaseModel):
    """Where the update went."""

    alert_id: str
    message: str


@router.post("/{alert_id}/updates", status_code=201)
async def post_status_update(
    alert_id: str,
    body: UpdateBody,
    ctx: Ctx,
    person: Annotated[Person, Depends(caller)],
) -> UpdateReply:
    """Post a status update on an open alert; the next scheduled update carries it to the
    stakeholder tiers (people allowed to acknowledge may post)."""
    if not ctx.directory.may(person.id, Verb.ACKNOWLEDGE):
        raise HTTPException(403, f"{person.id} may not post status updates")
    now = ctx.clock.now()

    def record() -> str:
        with ctx.db.transaction() as conn:
            return post_update(conn, alert_id, person.id, body.note, now)

    try:
        found = await asyncio.to_thread(record)
    except AlertNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except UpdateRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return UpdateReply(alert_id=found, message="recorded; sent with the next scheduled update")
