"""Slack delivery over the Web API (slack-sdk's AsyncWebClient on aiohttp).

``message.address`` is a Slack channel id (``C…``, ``G…``, ``D…``) or user id (``U…``, ``W…``:
Slack opens the direct message). The first message about an alert occurrence is posted with
``chat.postMessage``; its provider id is ``"<channel>:<ts>"`` with the channel id Slack
answered (a ``D…`` id for a direct message). Later messages about that occurrence carry it as
``message.thread``: they are posted as replies in that thread, then ``chat.update`` rewrites
the first message with the new blocks so it shows the alert's current state (no Acknowledge
button once acknowledged). Their provider id is the reply's ``"<channel>:<ts>"``.

Messages to one address are paced (``slack.pace_seconds`` apart: Slack allows about one
message per second per channel) and sent in order. Slack's answers are mapped to
:class:`~notifier.errors.DeliveryError` by :func:`classify`. The channel never retries, and
slack-sdk's own retry handlers are not installed: retrying happens once, in
:func:`notifier.delivery.send_with_retry`, honouring Slack's ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from notifier.clock import Clock, SystemClock
from notifier.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    Reason,
    TransientDeliveryError,
)
from notifier.message import OutgoingMessage
from notifier.settings import SlackSettings
from notifier.slack_blocks import blocks, fallback_text

__all__ = ["AddressPacer", "SlackChannel", "classify", "parse_thread"]

_log = structlog.get_logger(__name__)

_ADDRESS = re.compile(r"[CGDUW][A-Z0-9]{2,}")
_CONVERSATION = re.compile(r"[CGD][A-Z0-9]{2,}")
_TS = re.compile(r"[0-9]{1,12}\.[0-9]{1,9}")
_ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")

_RATE_LIMITED = frozenset({"ratelimited", "rate_limited"})
_AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "missing_scope"}
)
_SERVER_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_CONTENT = "Slack rejected the message content; check the template's output"
_CLIENT_HINTS: Mapping[str, str] = {
    "channel_not_found": "the channel does not exist or the app cannot see it; "
    "check the contact's Slack address in the directory",
    "not_in_channel": "the app is not a member of the channel; invite it to the channel "
    "or fix the contact's Slack address in the directory",
    "is_archived": "the channel is archived; unarchive it or fix the contact's Slack address",
    "user_not_found": "there is no such Slack user; check the contact's Slack address",
    "msg_too_long": _CONTENT,
    "invalid_blocks": _CONTENT,
    "no_text": _CONTENT,
}
# The thread a reply was meant for is gone (its first message was deleted): post anew.
_LOST_THREAD = frozenset({"thread_not_found", "invalid_thread_ts", "message_not_found"})
# Entries idle this long are dropped, so per-address state stays bounded.
_IDLE_SECONDS = 60.0
_TRANSPORT_ERRORS = (SlackClientError, aiohttp.ClientError, OSError, TimeoutError)


class SlackChannel:
    """Sends :class:`OutgoingMessage` objects as Slack messages with Block Kit layout.

    Up to ``slack.concurrency`` API calls are in flight at once, over one reused connection
    pool. A ``client`` may be passed (tests, custom transports); it is used as given.
    """

    name = "slack"

    def __init__(
        self,
        settings: SlackSettings,
        *,
        clock: Clock | None = None,
        client: AsyncWebClient | None = None,
    ) -> None:
        token = settings.bot_token.get_secret_value().strip() if settings.bot_token else ""
        if not token:
            raise ConfigError(
                "slack.bot_token is not set: set NOTIFIER_SLACK__BOT_TOKEN to the Slack app's "
                "bot token (xoxb-...) to deliver to Slack"
            )
        self._settings = settings
        self._clock: Clock = clock or SystemClock()
        self._owns_client = client is None
        self._client = client or AsyncWebClient(
            token=token,
            base_url=settings.base_url,
            timeout=math.ceil(settings.timeout_seconds),
            retry_handlers=[],  # never retry here: send_with_retry does, once
        )
        self._pacer = AddressPacer(self._clock, settings.pace_seconds)
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._closed = False

    async def send(self, message: OutgoingMessage) -> str:
        """Post ``message`` (or reply in its thread); return the ``"<channel>:<ts>"`` posted."""
        if not _ADDRESS.fullmatch(message.address):
            raise PermanentDeliveryError(
                "the contact's Slack address is not a channel or user id (like C024BE91L); "
                "fix it in the directory",
                reason=Reason.CLIENT,
            )
        self._check_open()
        thread = parse_thread(message.thread) if message.thread is not None else None
        if message.thread is not None and thread is None:
            _log.warning("slack.thread_unusable", notification_id=message.notification_id)
        async with self._pacer.turn(message.address):
            if thread is None:
                return await self._post(message)
            return await self._reply(message, *thread)

    async def close(self) -> None:
        """Wait for API calls in flight, then close the HTTP session. Idempotent."""
        if self._closed:
            return
        self._closed = True
        slots = self._settings.concurrency
        for _ in range(slots):
            await self._slots.acquire()
        try:
            session = self._client.session
            if session is not None and not session.closed:
                await session.close()
        finally:
            # Calls queued behind close() wake up and see that the channel is closed.
            for _ in range(slots):
                self._slots.release()

    async def _post(self, message: OutgoingMessage) -> str:
        response = await self._call(
            self._client.chat_postMessage,
            channel=message.address,
            text=fallback_text(message),
            blocks=blocks(message),
            unfurl_links=False,
            unfurl_media=False,
        )
        return _provider_id(response, message.address)

    async def _reply(self, message: OutgoingMessage, channel: str, ts: str) -> str:
        layout = blocks(message)
        text = fallback_text(message)
        try:
            response = await self._call(
                self._client.chat_postMessage,
                channel=channel,
                thread_ts=ts,
                text=text,
                blocks=layout,
                unfurl_links=False,
                unfurl_media=False,
            )
        except DeliveryError as exc:
            if _slack_error(exc.__cause__) not in _LOST_THREAD:
                raise
            _log.warning("slack.thread_lost", notification_id=message.notification_id)
            return await self._post(message)
        reply = _provider_id(response, channel)
        try:
            await self._call(
                self._client.chat_update, channel=channel, ts=ts, text=text, blocks=layout
            )
        except DeliveryError as exc:
            # The reply was delivered; a stale first message is not worth a second reply.
            _log.warning(
                "slack.update_failed",
                notification_id=message.notification_id,
                reason=exc.reason.value,
                error=_slack_error(exc.__cause__),
            )
        return reply

    async def _call(
        self, method: Callable[..., Awaitable[AsyncSlackResponse]], **arguments: Any
    ) -> AsyncSlackResponse:
        async with self._slots:
            self._check_open()
            self._ensure_session()
            try:
                return await method(**arguments)
            except _TRANSPORT_ERRORS as exc:
                raise classify(exc) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise TransientDeliveryError("slack channel is closed", reason=Reason.OTHER)

    def _ensure_session(self) -> None:
        # Without a session slack-sdk opens (and closes) one per call: a TLS handshake per
        # message. Our own client gets one pool, sized to the concurrency.
        if not self._owns_client:
            return
        session = self._client.session
        if session is None or session.closed:
            self._client.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_seconds),
                connector=aiohttp.TCPConnector(limit=self._settings.concurrency),
            )


def parse_thread(thread: str) -> tuple[str, str] | None:
    """Split a provider id ``"<channel>:<ts>"`` into ``(channel, ts)``; ``None`` if malformed."""
    channel, _, ts = thread.partition(":")
    if _CONVERSATION.fullmatch(channel) and _TS.fullmatch(ts):
        return channel, ts
    return None


def classify(exc: BaseException) -> DeliveryError:
    """Map a slack-sdk/aiohttp error to a Transient or Permanent DeliveryError with a reason.

    The message says what happened and what to check; it never holds the token, the message
    or an address (Slack's error codes are quoted only when they look like one).
    """
    if isinstance(exc, SlackApiError):
        return _from_answer(exc)
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
        return TransientDeliveryError(
            "Slack API did not answer in time; it will be retried (the limit is "
            "NOTIFIER_SLACK__TIMEOUT_SECONDS)",
            reason=Reason.TIMEOUT,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransientDeliveryError(
            f"Slack API could not be reached ({type(exc).__name__}); check "
            "NOTIFIER_SLACK__BASE_URL and the network",
            reason=Reason.SERVER,
        )
    if isinstance(exc, aiohttp.ClientError | OSError):
        return TransientDeliveryError(
            f"connection to the Slack API failed ({type(exc).__name__}); it will be retried",
            reason=Reason.SERVER,
        )
    return PermanentDeliveryError(
        f"the Slack request could not be made ({type(exc).__name__}); check NOTIFIER_SLACK__*",
        reason=Reason.OTHER,
    )


def _from_answer(exc: SlackApiError) -> DeliveryError:
    status = _status(exc.response)
    error = _slack_error(exc)
    shown = error or f"HTTP {status}"
    if status == 429 or error in _RATE_LIMITED:
        retry_after = _retry_after(getattr(exc.response, "headers", None))
        when = f" after {retry_after:g}s" if retry_after is not None else ""
        return TransientDeliveryError(
            f"Slack rate-limited the request ({shown}); it will be retried{when}",
            reason=Reason.RATE_LIMITED,
            retry_after=retry_after,
        )
    if error in _AUTH_ERRORS or (error is None and status in (401, 403)):
        return PermanentDeliveryError(
            f"Slack refused the bot token ({shown}); check NOTIFIER_SLACK__BOT_TOKEN and that "
            "the app is installed with the chat:write scope",
            reason=Reason.AUTH,
        )
    if error is not None and error in _CLIENT_HINTS:
        return PermanentDeliveryError(
            f"Slack refused the message ({error}): {_CLIENT_HINTS[error]}", reason=Reason.CLIENT
        )
    if error in _SERVER_ERRORS or (status is not None and status >= 500):
        return TransientDeliveryError(
            f"Slack had a server problem ({shown}); it will be retried", reason=Reason.SERVER
        )
    if error is None and status == 404:
        return PermanentDeliveryError(
            "Slack API answered HTTP 404; check NOTIFIER_SLACK__BASE_URL (like "
            "https://slack.com/api/)",
            reason=Reason.CLIENT,
        )
    if error is not None:
        return PermanentDeliveryError(
            f"Slack refused the request ({error}); see Slack's documentation of that error",
            reason=Reason.CLIENT,
        )
    return TransientDeliveryError(
        f"Slack API answered unexpectedly ({shown}); check NOTIFIER_SLACK__BASE_URL",
        reason=Reason.SERVER,
    )


def _status(response: object) -> int | None:
    # An AsyncSlackResponse has status_code; for an unreadable body slack-sdk passes the
    # aiohttp response, which has status.
    for attribute in ("status_code", "status"):
        value = getattr(response, attribute, None)
        if isinstance(value, int):
            return value
    return None


def _slack_error(exc: BaseException | None) -> str | None:
    """Slack's error code (``channel_not_found``) from an API error, if it looks like one."""
    if not isinstance(exc, SlackApiError):
        return None
    data = getattr(exc.response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else None


def _retry_after(headers: object) -> float | None:
    if not isinstance(headers, Mapping):
        return None
    raw = headers.get("Retry-After", headers.get("retry-after"))
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _provider_id(response: AsyncSlackResponse, channel: str) -> str:
    answered = response.get("channel")
    ts = response.get("ts")
    if isinstance(answered, str) and _CONVERSATION.fullmatch(answered):
        channel = answered
    return f"{channel}:{ts if isinstance(ts, str) else ''}"


@dataclass(slots=True)
class _Lane:
    """One address's turn-taking: who is sending, and when the last message went."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    last: datetime | None = None


class AddressPacer:
    """Spaces sends to one address ``interval`` seconds apart, one at a time, in order.

    Different addresses do not wait for each other. An address idle for a minute (or
    ``interval``, if longer) is forgotten, so memory stays bounded by recent traffic.
    """

    def __init__(self, clock: Clock, interval: float) -> None:
        self._clock = clock
        self._interval = interval
        self._idle = max(_IDLE_SECONDS, interval)
        self._lanes: dict[str, _Lane] = {}
        self._pruned_at: datetime | None = None

    def __len__(self) -> int:
        """How many addresses are remembered."""
        return len(self._lanes)

    @contextlib.asynccontextmanager
    async def turn(self, address: str) -> AsyncIterator[None]:
        """Wait until ``address`` may get the next message, and hold it while sending."""
        self._prune()
        lane = self._lanes.setdefault(address, _Lane())
        lane.users += 1
        try:
            async with lane.lock:
                if lane.last is not None and self._interval > 0:
                    elapsed = (self._clock.now() - lane.last).total_seconds()
                    wait = min(self._interval - elapsed, self._interval)
                    if wait > 0:
                        await self._clock.sleep(wait)
                lane.last = self._clock.now()
                yield
        finally:
            lane.users -= 1

    def _prune(self) -> None:
        now = self._clock.now()
        if self._pruned_at is not None and (now - self._pruned_at).total_seconds() < self._idle:
            return
        self._pruned_at = now
        for address, lane in list(self._lanes.items()):
            # users counts waiters too: a lane someone waits on must keep its lock.
            idle = lane.last is None or (now - lane.last).total_seconds() > self._idle
            if lane.users == 0 and idle:
                del self._lanes[address]
