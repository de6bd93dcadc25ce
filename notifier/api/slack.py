"""``POST /slack/actions``: the Acknowledge and Resolve buttons of Slack messages.

Every request is checked before anything else: Slack's v0 signature (HMAC-SHA256 of
``v0:{timestamp}:{body}`` with the app's signing secret), a timestamp within five minutes of
our clock, and no replay (a signature is accepted once: it is recorded in the same
transaction as the action). Then the Slack user is mapped to a person of the directory by
the Slack user id in their contacts, their role must allow the action, and the action is
applied like any other (the alert's Slack messages are updated through the outbox). The
answer is immediate: the work is one short transaction, well within Slack's 3 seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated, Any
from urllib.parse import parse_qs

import orjson
import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from notifier.api.alerts import context
from notifier.api.deps import ApiContext
from notifier.clock import Clock
from notifier.directory import Person
from notifier.lifecycle import Action, TransitionRefused, Verb
from notifier.slack_blocks import ACKNOWLEDGE_ACTION, RESOLVE_ACTION, RUNBOOK_ACTION
from notifier.store.schema import used_links
from notifier.store.timeline import ActionResult, AlertNotFound, apply_action

router = APIRouter(tags=["slack"])
Ctx = Annotated[ApiContext, Depends(context)]
log = structlog.get_logger(__name__)

ACTIONS = {ACKNOWLEDGE_ACTION: Verb.ACKNOWLEDGE, RESOLVE_ACTION: Verb.RESOLVE}
MAX_BODY = 64 * 1024


class _Replay(Exception):
    """The signature was already used."""


class _SlackTime(SlackClock):
    """slack-sdk's clock interface over ours, so tests move a FakeClock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now().timestamp()


def _reply(text: str, status: int = 200) -> JSONResponse:
    # Slack shows "text" of an ephemeral response to the user who clicked.
    return JSONResponse(
        {"response_type": "ephemeral", "replace_original": False, "text": text},
        status_code=status,
    )


@router.post("/slack/actions")
async def slack_actions(request: Request, ctx: Ctx) -> JSONResponse:
    """Handle a button click from a Slack message (signed by Slack; replays refused)."""
    secret = ctx.settings.slack.signing_secret
    if secret is None:
        raise HTTPException(404, "Slack interactivity is not configured (slack.signing_secret)")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, "request too large")
    timestamp = request.headers.get("x-slack-request-timestamp", "")
    signature = request.headers.get("x-slack-signature", "")
    verifier = SignatureVerifier(secret.get_secret_value(), _SlackTime(ctx.clock))
    if not timestamp.isdigit() or not verifier.is_valid(body, timestamp, signature):
        log.warning("slack.refused", why="bad or stale signature")
        raise HTTPException(401, "invalid or stale Slack signature")
    action = _parse(body)
    if action is None:
        return _reply("Nothing to do for this interaction.")
    slack_user, action_id, value = action
    if action_id == RUNBOOK_ACTION:
        return JSONResponse({})  # a link button: Slack opened the URL, nothing to do here
    verb = ACTIONS.get(action_id)
    alert_id, _, occurrence = value.partition(":")
    if verb is None or not alert_id or not occurrence.isdigit():
        return _reply("This button is not one of notifier's.")
    person = ctx.directory.by_slack_id(slack_user)
    if person is None:
        # Nobody to take a language from: the deployment's default language.
        unknown = (
            "Your Slack account is not in notifier's directory: "
            "ask an administrator to add your Slack id."
        )
        locale = ctx.settings.templates.default_locale
        return _reply(_words(ctx, locale, "", "unknown-person", verb.value, default=unknown))
    if not ctx.directory.may(person.id, verb):
        refused = f"Your role does not allow you to {verb.value} alerts."
        return _reply(_said(ctx, person, "refused", verb.value, default=refused))
    now = ctx.clock.now()
    act = Action(verb, person.id, "slack", now)
    nonce = "slack:" + hashlib.sha256(signature.encode()).hexdigest()[:56]

    def apply() -> ActionResult:
        try:
            with ctx.db.transaction() as conn:
                conn.execute(
                    insert(used_links).values(
                        nonce=nonce, alert_id=alert_id[:32], person_id=person.id, used_at=now
                    )
                )
                return apply_action(
                    conn,
                    alert_id,
                    act,
                    lock=not ctx.db.is_sqlite,
                    directory=ctx.directory,
                    occurrence=int(occurrence),
                )
        except IntegrityError:
            raise _Replay from None

    try:
        result = await asyncio.to_thread(apply)
    except _Replay:
        log.warning("slack.refused", why="replay")
        raise HTTPException(409, "this request was already processed") from None
    except AlertNotFound:
        gone = "This alert is no longer in notifier's store: nothing was changed."
        return _reply(_said(ctx, person, "no-alert", verb.value, default=gone))
    except TransitionRefused as exc:
        return _reply(_said(ctx, person, exc.kind, verb.value, default=str(exc)))
    if result.follow_ups.notifications or result.follow_ups.timers:
        ctx.on_change()
    log.info("slack.action", alert_id=result.alert_id, verb=verb.value, person=person.id)
    after = result.outcome.after.value
    if result.outcome.already:
        return _reply(_said(ctx, person, "already", after, default=f"Already {after}."))
    done = f"{after.capitalize()} by {person.name}."
    return _reply(_said(ctx, person, "done", after, default=done))


def _said(ctx: ApiContext, person: Person, reply: str, outcome: str, *, default: str) -> str:
    """The reply in the presser's language."""
    return _words(ctx, person.locale, person.name, reply, outcome, default=default)


def _words(
    ctx: ApiContext, locale: str, name: str, reply: str, outcome: str, *, default: str
) -> str:
    """The reply in ``locale``'s language (the approved labels' ``slack_reply``), else
    ``default`` (English)."""
    if ctx.renderer is None:
        return default
    return ctx.renderer.label(locale, "slack_reply", reply, outcome, name, default=default)


def _parse(body: bytes) -> tuple[str, str, str] | None:
    """(Slack user id, action id, value) of a block_actions payload, or None."""
    try:
        form = parse_qs(body.decode(), strict_parsing=False)
        payload: Any = orjson.loads(form["payload"][0])
        if payload.get("type") != "block_actions":
            return None
        first = payload["actions"][0]
        return str(payload["user"]["id"]), str(first["action_id"]), str(first.get("value", ""))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, UnicodeDecodeError):
        return None
