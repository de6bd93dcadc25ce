"""A local SMTP server that captures mail, for the demo and the tests (built on aiosmtpd).

It runs inside the caller's event loop (``loop.create_server``), so tests need no threads:
``async with MailCatcher(directory) as catcher: ...; await catcher.wait_for(1, timeout=5)``.
Each message is saved as ``<timestamp>-<n>.eml`` and kept parsed in :attr:`MailCatcher.messages`.
Failures can be scripted: :meth:`MailCatcher.fail_next` (the next n RCPT or DATA commands get
a given reply) and :meth:`MailCatcher.reject_recipient` (one address always refused).

Standalone: ``python -m notifier.mailcatcher --dir var/mail --port 8025``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import warnings
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["CapturedMail", "MailCatcher", "main"]

Command = Literal["RCPT", "DATA"]


@dataclass(frozen=True, slots=True)
class CapturedMail:
    """One received message: parsed content, SMTP envelope and where it was saved."""

    message: EmailMessage
    mail_from: str
    rcpt_tos: tuple[str, ...]
    path: Path | None


@dataclass(slots=True)
class _Script:
    """Replies the next commands must get instead of success."""

    pending: dict[str, deque[str]] = field(
        default_factory=lambda: {"RCPT": deque(), "DATA": deque()}
    )
    rejected: dict[str, str] = field(default_factory=dict)


class MailCatcher:
    """Receives mail on ``host:port`` (port 0 picks a free one, kept across restarts)."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.messages: list[CapturedMail] = []
        self.connections = 0
        self._directory = directory
        self._host = host
        self._port = port
        self._credentials = credentials
        self._script = _Script()
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._sessions: set[_CatcherSMTP] = set()
        self._saved = 0

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port the server listens on (the real one once started with port 0)."""
        return self._port

    async def start(self) -> None:
        """Start listening; does nothing if already started."""
        if self._server is not None:
            return
        if self._directory is not None:
            self._directory.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _CatcherSMTP(self, loop), self._host, self._port
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every client connection (clients see a disconnect)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self.drop_connections()
        await server.wait_closed()
        # Wait until every session has run connection_lost, so no task outlives the server.
        await asyncio.gather(*(session.finished for session in list(self._sessions)))

    def drop_connections(self) -> None:
        """Close every open client connection, as a relay does on idle timeout or restart."""
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()

    async def __aenter__(self) -> MailCatcher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def fail_next(
        self, n: int = 1, code: int = 451, message: str = "try later", *, command: Command = "DATA"
    ) -> None:
        """Answer the next ``n`` ``command`` (RCPT or DATA) commands with ``code message``."""
        self._script.pending[command].extend([f"{code} {message}"] * n)

    def reject_recipient(
        self, address: str, code: int = 550, message: str = "no such user"
    ) -> None:
        """Always refuse RCPT TO ``address`` with ``code message``."""
        self._script.rejected[address.lower()] = f"{code} {message}"

    # The timeout argument is part of the helper on purpose: every test wants one.
    async def wait_for(self, count: int, timeout: float = 5.0) -> list[CapturedMail]:  # noqa: ASYNC109
        """Return the captured messages once at least ``count`` arrived; TimeoutError if not."""
        try:
            async with asyncio.timeout(timeout), self._arrived:
                await self._arrived.wait_for(lambda: len(self.messages) >= count)
        except TimeoutError:
            raise TimeoutError(
                f"{len(self.messages)} of {count} messages arrived within {timeout}s"
            ) from None
        return list(self.messages)

    # aiosmtpd handler hooks (called with the session's SMTP instance).

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Accept the recipient unless it is rejected or a failure is scripted."""
        refusal = self._script.rejected.get(address.lower())
        if refusal is None and self._script.pending["RCPT"]:
            refusal = self._script.pending["RCPT"].popleft()
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Store the message unless a failure is scripted."""
        if self._script.pending["DATA"]:
            return self._script.pending["DATA"].popleft()
        content = envelope.original_content or b""
        path = None
        if self._directory is not None:
            self._saved += 1
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            path = self._directory / f"{stamp}-{self._saved}.eml"
            await asyncio.to_thread(_write_new, path, content)
        parsed = BytesParser(_class=EmailMessage, policy=default_policy).parsebytes(content)
        mail = CapturedMail(parsed, envelope.mail_from or "", tuple(envelope.rcpt_tos), path)
        async with self._arrived:
            self.messages.append(mail)
            self._arrived.notify_all()
        return "250 OK: message queued"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            self._credentials is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self._credentials
        )
        # handled=False: let aiosmtpd answer a failure with its standard 535.
        return AuthResult(success=ok, handled=False)


class _CatcherSMTP(SMTP):
    """aiosmtpd's protocol, tracked by its catcher so stop() can close and await it."""

    def __init__(self, catcher: MailCatcher, loop: asyncio.AbstractEventLoop) -> None:
        auth = catcher._credentials is not None
        with warnings.catch_warnings():
            # AUTH without TLS is deliberate: a loopback test server, never a real relay.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            super().__init__(
                catcher,
                hostname="mailcatcher.local",  # default is socket.getfqdn(): DNS per client
                enable_SMTPUTF8=True,
                auth_required=auth,
                auth_require_tls=False,
                authenticator=catcher._authenticate if auth else None,
                loop=loop,
            )
        self._catcher = catcher
        self.finished: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # not the STARTTLS re-entry
            self._catcher.connections += 1
            self._catcher._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._catcher._sessions.discard(self)
        if not self.finished.done():
            self.finished.set_result(None)


def _write_new(path: Path, content: bytes) -> None:
    with path.open("xb") as file:  # "x": never overwrite a capture from another process
        file.write(content)


async def _serve(directory: Path, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with MailCatcher(directory, host=host, port=port) as catcher:
        where = f"{catcher.host}:{catcher.port}"
        print(f"mailcatcher: listening on {where}, saving to {directory}/", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the catcher until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m notifier.mailcatcher",
        description="Local SMTP server that saves every received message as an .eml file.",
    )
    parser.add_argument("--dir", type=Path, default=Path("var/mail"), help="where .eml files go")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8025, help="port to listen on (0: any free)")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.dir, args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
