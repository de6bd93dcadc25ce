"""A local stand-in for Slack's Web API, for the tests and the demo (like the mailcatcher).

It serves ``POST /api/chat.postMessage`` and ``POST /api/chat.update`` over real HTTP (an
embedded uvicorn in the caller's event loop), takes JSON or form bodies as slack-sdk sends
them, checks the ``Authorization: Bearer`` token, and answers as Slack does::

    async with SlackStandIn(token="xoxb-test") as slack:
        settings = SlackSettings(base_url=slack.base_url, bot_token="xoxb-test")
        ...
        [message] = slack.messages("C0123ABC")

Every call is recorded in :attr:`SlackStandIn.calls`; :meth:`SlackStandIn.messages` shows a
channel's messages as they stand after updates. A user id (``U…``, ``W…``) is answered with its
direct-message channel ``D<user id>``. Blocks are checked against Slack's main limits (an
``invalid_blocks`` answer otherwise). Failures can be scripted with
:meth:`SlackStandIn.fail_next`: an HTTP status (429 with ``Retry-After``, 5xx) or a Slack error
code (``channel_not_found``, ``invalid_auth``...).

Standalone: ``python -m notifier.slack_standin --port 8026 --token xoxb-dev``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from notifier.api.server import HttpServer
from notifier.clock import Clock, SystemClock

__all__ = ["SlackCall", "SlackMessage", "SlackStandIn", "main"]

Block = dict[str, Any]

_CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,}")
_USER = re.compile(r"[UW][A-Z0-9]{2,}")
_MAX_TEXT = 40_000
_MAX_BLOCKS = 50
_MAX_BUTTON_VALUE = 2000
_MAX_BUTTON_URL = 3000
_LIMITS = {"header": 150, "section": 3000, "context": 3000, "button": 75}


@dataclass(frozen=True, slots=True)
class SlackCall:
    """One API call as it arrived: what was asked and what was answered.

    ``ts`` is the message posted or updated (``None`` when the call failed), ``error`` the
    Slack error code or ``"http_<status>"`` answered (``None`` on success), ``arguments``
    every argument as sent (the token travels in a header, never here).
    """

    method: str
    channel: str | None
    ts: str | None
    thread_ts: str | None
    text: str | None
    blocks: list[Block] | None
    at: datetime
    error: str | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.error is None


@dataclass(slots=True)
class SlackMessage:
    """A message in a channel as it stands now (after any chat.update)."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str | None
    blocks: list[Block] | None
    posted_at: datetime
    updates: int = 0


@dataclass(frozen=True, slots=True)
class _Failure:
    method: str | None
    status: int
    error: str
    retry_after: float | None


@dataclass(slots=True)
class _State:
    calls: list[SlackCall] = field(default_factory=list)
    messages: dict[tuple[str, str], SlackMessage] = field(default_factory=dict)
    failures: list[_Failure] = field(default_factory=list)
    last_ts: int = 0


class SlackStandIn:
    """Slack's chat.postMessage and chat.update on ``host:port`` (port 0: any free port, kept
    across restarts)."""

    def __init__(
        self,
        *,
        token: str = "xoxb-standin",  # noqa: S107 - the stand-in's own placeholder
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
    ) -> None:
        self._token = token
        self._host = host
        self._port = port
        self._clock: Clock = clock or SystemClock()
        self._state = _State()
        self._server: HttpServer | None = None
        self.app = self._build_app()

    @property
    def base_url(self) -> str:
        """The Web API's base URL, for ``slack.base_url`` (ends in ``/api/``)."""
        return f"http://{self._host}:{self._port}/api/"

    @property
    def port(self) -> int:
        """The port served (the real one once started with port 0)."""
        return self._port

    @property
    def calls(self) -> list[SlackCall]:
        """Every call received, in order, failed ones included."""
        return list(self._state.calls)

    def messages(self, channel: str) -> list[SlackMessage]:
        """The messages in ``channel`` (a user id means its DM), in posting order."""
        conversation = _conversation(channel)
        return [m for (c, _), m in self._state.messages.items() if c == conversation]

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 200,
        error: str | None = None,
        retry_after: float | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``n`` calls (of ``method``, or any) with a failure.

        ``status=429`` answers Slack's ``ratelimited`` with ``Retry-After: retry_after``; a 5xx
        status answers ``internal_error``; ``error="channel_not_found"`` answers HTTP 200 with
        that error, as Slack does.
        """
        if status == 200 and error is None:
            raise ValueError("fail_next needs an error code or a failing HTTP status")
        code = error or ("ratelimited" if status == 429 else "internal_error")
        self._state.failures.extend([_Failure(method, status, code, retry_after)] * n)

    async def start(self) -> None:
        """Start serving and wait until the port listens; does nothing if already started."""
        if self._server is not None:
            return
        server = HttpServer(self.app, self._host, self._port)
        await server.start()
        self._server = server
        self._port = server.port

    async def stop(self) -> None:
        """Stop serving (clients then get connection refused)."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    async def __aenter__(self) -> SlackStandIn:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- the API ------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.post("/api/{method}")
        async def api(method: str, request: Request) -> JSONResponse:
            arguments = await _arguments(request)
            return self._answer(method, request.headers.get("authorization"), arguments)

        return app

    def _answer(
        self, method: str, authorization: str | None, arguments: dict[str, Any]
    ) -> JSONResponse:
        at = self._clock.now()
        channel = _text(arguments.get("channel"))
        text = _text(arguments.get("text"))
        thread_ts = _text(arguments.get("thread_ts"))
        layout = _blocks(arguments.get("blocks"))

        def record(ts: str | None, error: str | None) -> None:
            call = SlackCall(method, channel, ts, thread_ts, text, layout, at, error, arguments)
            self._state.calls.append(call)

        failure = self._take_failure(method)
        if failure is not None:
            record(None, failure.error if failure.status == 200 else f"http_{failure.status}")
            return _failed(failure.error, failure.status, failure.retry_after)
        error = _auth_error(authorization, self._token) or _content_error(text, layout)
        ts: str | None = None
        if error is None and method == "chat.postMessage":
            error, ts = self._post(channel, thread_ts, text, layout, at)
        elif error is None and method == "chat.update":
            error, ts = self._update(channel, _text(arguments.get("ts")), text, layout)
        elif error is None:
            error = "unknown_method"
        if error is not None or ts is None:
            record(None, error)
            return _failed(error or "internal_error")
        record(ts, None)
        conversation = _conversation(channel or "")
        message = self._state.messages[(conversation, ts)]
        return JSONResponse(
            {"ok": True, "channel": conversation, "ts": ts, "message": _message_json(message)}
        )

    def _post(
        self,
        channel: str | None,
        thread_ts: str | None,
        text: str | None,
        layout: list[Block] | None,
        at: datetime,
    ) -> tuple[str | None, str | None]:
        conversation = _conversation(channel or "")
        if not _CHANNEL.fullmatch(conversation):
            return "channel_not_found", None
        if thread_ts is not None and (conversation, thread_ts) not in self._state.messages:
            return "thread_not_found", None
        ts = self._next_ts(at)
        message = SlackMessage(conversation, ts, thread_ts, text, layout, at)
        self._state.messages[(conversation, ts)] = message
        return None, ts

    def _update(
        self,
        channel: str | None,
        ts: str | None,
        text: str | None,
        layout: list[Block] | None,
    ) -> tuple[str | None, str | None]:
        conversation = _conversation(channel or "")
        if not _CHANNEL.fullmatch(conversation):
            return "channel_not_found", None
        message = self._state.messages.get((conversation, ts or ""))
        if message is None or ts is None:
            return "message_not_found", None
        message.text = text
        message.blocks = layout
        message.updates += 1
        return None, ts

    def _take_failure(self, method: str) -> _Failure | None:
        for index, failure in enumerate(self._state.failures):
            if failure.method in (None, method):
                return self._state.failures.pop(index)
        return None

    def _next_ts(self, at: datetime) -> str:
        # Slack's ts: seconds.microseconds, unique and increasing within a channel.
        micros = max(int(at.timestamp() * 1_000_000), self._state.last_ts + 1)
        self._state.last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


async def _arguments(request: Request) -> dict[str, Any]:
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    # application/x-www-form-urlencoded; a query string works the same way.
    pairs = parse_qs(body.decode("utf-8", "replace")) | parse_qs(request.url.query)
    return {key: values[-1] for key, values in pairs.items()}


def _auth_error(authorization: str | None, token: str) -> str | None:
    if not authorization or not authorization.startswith("Bearer "):
        return "not_authed"
    return None if authorization.removeprefix("Bearer ") == token else "invalid_auth"


def _content_error(text: str | None, layout: list[Block] | None) -> str | None:
    if layout is None and not text:
        return "no_text"
    if text is not None and len(text) > _MAX_TEXT:
        return "msg_too_long"
    if layout is not None and not _blocks_valid(layout):
        return "invalid_blocks"
    return None


def _blocks_valid(layout: list[Block]) -> bool:
    """Slack's main Block Kit limits: count, header, section, context and button texts."""
    if len(layout) > _MAX_BLOCKS:
        return False
    for block in layout:
        kind = block.get("type")
        texts: list[Any] = []
        if kind in ("header", "section"):
            texts = [(kind, block.get("text"))]
        elif kind == "context":
            texts = [("context", element) for element in block.get("elements", [])]
        elif kind == "actions":
            for button in block.get("elements", []):
                texts.append(("button", button.get("text")))
                value, url = str(button.get("value", "")), str(button.get("url", ""))
                if len(value) > _MAX_BUTTON_VALUE or len(url) > _MAX_BUTTON_URL:
                    return False
        for limit_kind, obj in texts:
            content = obj.get("text") if isinstance(obj, dict) else None
            if not isinstance(content, str) or not 1 <= len(content) <= _LIMITS[limit_kind]:
                return False
    return True


def _failed(error: str, status: int = 200, retry_after: float | None = None) -> JSONResponse:
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    return JSONResponse({"ok": False, "error": error}, status_code=status, headers=headers)


def _conversation(channel: str) -> str:
    """The channel a message to ``channel`` lands in: a user id's DM is ``D<user id>``."""
    return f"D{channel}" if _USER.fullmatch(channel) else channel


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _blocks(value: object) -> list[Block] | None:
    if isinstance(value, str):  # form bodies carry blocks as a JSON string
        try:
            value = json.loads(value)
        except ValueError:
            return [{"type": "unparseable"}]
    if isinstance(value, list):
        return [b if isinstance(b, dict) else {"type": "unparseable"} for b in value]
    return None


def _message_json(message: SlackMessage) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text or ""}
    if message.thread_ts is not None:
        body["thread_ts"] = message.thread_ts
    if message.blocks is not None:
        body["blocks"] = message.blocks
    return body


async def _serve(host: str, port: int, token: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with SlackStandIn(token=token, host=host, port=port) as slack:
        print(f"slack stand-in: serving {slack.base_url}", flush=True)
        await stop.wait()
        print(f"slack stand-in: {len(slack.calls)} calls received", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Serve the stand-in until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m notifier.slack_standin",
        description="Local stand-in for Slack's chat.postMessage and chat.update.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8026, help="port to listen on (0: any free)")
    parser.add_argument("--token", default="xoxb-standin", help="the bot token to accept")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port, args.token))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
