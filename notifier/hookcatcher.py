"""A local webhook receiver for tests, benchmarks and the demo (what MailCatcher is for SMTP).

It verifies each request's signature with the endpoint secret, records it, and answers 204;
requests with a notification id it already has are answered 204 and counted as duplicates
(the receiver-side dedup the ``X-Notifier-Id`` header is for). Failures can be scripted:
``fail_next(n, status=503, retry_after=2)`` answers the next ``n`` requests that way, and
``down()`` / ``up()`` make it refuse everything until told otherwise; ``delay`` makes it
slow.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from notifier.channels.webhook import verify

__all__ = ["Hook", "HookCatcher"]


@dataclass(frozen=True, slots=True)
class Hook:
    """One accepted request."""

    id: str
    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float


@dataclass
class _Script:
    remaining: int = 0
    status: int = 503
    retry_after: float | None = None
    down: bool = False


@dataclass
class HookCatcher:
    """Receives webhooks at ``url`` (``http://127.0.0.1:<port>/hook``) until stopped."""

    secret: bytes
    host: str = "127.0.0.1"
    port: int = 0
    delay: float = 0.0  # seconds each accepted request takes (a slow receiver)
    hooks: list[Hook] = field(default_factory=list)
    duplicates: int = 0
    refused: int = 0
    _script: _Script = field(default_factory=_Script)
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        """Where to send webhooks."""
        return f"http://{self.host}:{self.port}/hook"

    def fail_next(self, n: int, *, status: int = 503, retry_after: float | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` (and a Retry-After, if given)."""
        self._script = _Script(n, status, retry_after)

    def down(self, *, status: int = 503) -> None:
        """Answer every request with ``status`` until :meth:`up`."""
        self._script = _Script(0, status, None, down=True)

    def up(self) -> None:
        """Accept requests again."""
        self._script = _Script()

    async def start(self) -> None:
        """Start listening (on a free port unless one was given)."""
        # aiohttp's server, not the engine's FastAPI stack: it answers about ten times more
        # requests per core, so in benchmarks the receiver is never what is measured.
        self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int, within: float = 10.0) -> list[Hook]:
        """Wait until ``count`` distinct notifications arrived; return them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.hooks) < count:
            self._arrived.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"{len(self.hooks)} of {count} webhooks arrived")
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                continue
        return self.hooks

    def _app(self) -> web.Application:
        app = web.Application()
        seen: set[str] = set()

        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            headers = {k.lower(): v for k, v in request.headers.items()}
            script = self._script
            if script.down or script.remaining > 0:
                script.remaining -= 1
                self.refused += 1
                extra = (
                    {} if script.retry_after is None else {"Retry-After": f"{script.retry_after:g}"}
                )
                return web.Response(status=script.status, headers=extra)
            ok = verify(
                self.secret,
                headers.get("x-notifier-timestamp", ""),
                body,
                headers.get("x-notifier-signature", ""),
                now=time.time(),
            )
            if not ok:
                return web.Response(status=401)
            hook_id = headers.get("x-notifier-id", "")
            if self.delay:
                await asyncio.sleep(self.delay)  # slow work before it is recorded as received
            if hook_id in seen:
                self.duplicates += 1
                return web.Response(status=204)
            seen.add(hook_id)
            self.hooks.append(Hook(hook_id, orjson.loads(body), headers, time.time()))
            self._arrived.set()
            return web.Response(status=204)

        app.router.add_post("/hook", hook)
        return app


async def _serve(host: str, port: int, secret: bytes) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    catcher = HookCatcher(secret, host=host, port=port)
    await catcher.start()
    print(f"hookcatcher: listening on {catcher.url}", flush=True)
    await stop.wait()
    await catcher.stop()
    print(
        f"hookcatcher: {len(catcher.hooks)} received, {catcher.duplicates} duplicates", flush=True
    )


def main(argv: list[str] | None = None) -> int:
    """Run the receiver until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m notifier.hookcatcher",
        description="Local webhook receiver: checks signatures, counts deliveries and duplicates.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8027, help="port to listen on (0: any free)")
    parser.add_argument("--secret", required=True, help="the endpoint's HMAC secret")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port, args.secret.encode()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
