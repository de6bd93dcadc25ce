"""Email delivery over SMTP (aiosmtplib), on a small pool of reused connections.

Each message is a ``multipart/alternative`` (text + HTML) with a stable ``Message-ID`` built
from the notification id, so a repeated send of the same notification can be deduplicated by
the receiver. SMTP failures are mapped to :class:`~notifier.errors.DeliveryError` by
:func:`classify`: transient for timeouts, lost connections and 4xx replies, permanent for 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from email.errors import HeaderParseError
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.policy import default as default_policy
from email.utils import format_datetime, parseaddr

import aiosmtplib
import structlog

from notifier.clock import Clock, SystemClock
from notifier.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    Reason,
    TransientDeliveryError,
)
from notifier.message import OutgoingMessage
from notifier.settings import SmtpSettings

__all__ = ["EmailChannel", "classify"]

_log = structlog.get_logger(__name__)

# RFC 5322 atext plus '.', the characters a Message-ID's left part may use unquoted.
_ID_LEFT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_ID_RIGHT = re.compile(r"[A-Za-z0-9.-]+")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")
_ADDRESS_LIKE = re.compile(r"\S+@\S+")
_AUTH_CODES = frozenset({530, 534, 535})
_RECIPIENT_CODES = frozenset({550, 551, 553, 554})
_TRANSPORT_ERRORS = (aiosmtplib.SMTPException, OSError)


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, making each header's class once.

    The stdlib's registry builds a new class with ``type()`` for every header it parses,
    which was a seventh of the engine's time per email; the classes are stateless, so one
    per header name serves every message alike.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


# email.policy.default (what EmailMessage() uses), with the header classes made once.
POLICY: EmailPolicy[EmailMessage] = default_policy.clone(header_factory=_HeaderClasses())


class EmailChannel:
    """Sends :class:`OutgoingMessage` objects through the configured SMTP relay.

    Up to ``concurrency`` connections are opened lazily and reused across sends (a connect,
    EHLO and login per message costs far more than the message itself); a connection the
    server dropped while idle is replaced transparently.
    """

    name = "email"

    def __init__(
        self, settings: SmtpSettings, *, concurrency: int = 1, clock: Clock | None = None
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not _ID_RIGHT.fullmatch(settings.message_id_domain):
            raise ConfigError(
                "smtp.message_id_domain must be a plain domain name "
                "(check NOTIFIER_SMTP__MESSAGE_ID_DOMAIN)"
            )
        self._settings = settings
        self._sender = _parse_sender(settings.sender)
        self._clock: Clock = clock or SystemClock()
        self._server = f"{settings.host}:{settings.port}"
        self._concurrency = concurrency
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        for _ in range(concurrency):
            self._idle.put_nowait(self._new_client())
        self._closed = False

    async def send(self, message: OutgoingMessage) -> str:
        """Deliver ``message`` and return its ``Message-ID`` (``<id@domain>``)."""
        message_id = f"<{message.notification_id}@{self._settings.message_id_domain}>"
        mail = self._compose(message, message_id)
        client = await self._idle.get()
        try:
            if self._closed:
                raise TransientDeliveryError("email channel is closed", reason=Reason.OTHER)
            await self._deliver(client, mail, message.address)
        finally:
            self._idle.put_nowait(client)
        return message_id

    async def close(self) -> None:
        """Wait for sends in flight, then QUIT every open connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        clients = [await self._idle.get() for _ in range(self._concurrency)]
        for client in clients:
            if client.is_connected:
                with contextlib.suppress(*_TRANSPORT_ERRORS):
                    await client.quit()
            client.close()
            # Put them back so that sends queued behind close() wake up and see _closed.
            self._idle.put_nowait(client)

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.use_tls,
            # None lets aiosmtplib upgrade whenever the server offers STARTTLS; implicit TLS
            # and STARTTLS are mutually exclusive, so never ask for both.
            start_tls=False if s.use_tls else s.starttls,
            validate_certs=s.validate_certs,
            timeout=s.timeout_seconds,
        )

    async def _connect(self, client: aiosmtplib.SMTP) -> None:
        password = self._settings.password
        await client.connect(
            username=self._settings.username,
            password=password.get_secret_value() if password is not None else None,
        )
        _log.debug("smtp.connected", server=self._server)

    async def _deliver(self, client: aiosmtplib.SMTP, mail: EmailMessage, rcpt: str) -> None:
        try:
            reused = client.is_connected
            if not reused:
                await self._connect(client)
            try:
                await client.send_message(mail, sender=self._sender.addr_spec, recipients=[rcpt])
            except aiosmtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # The server closed an idle connection (its timeout, a restart) before taking
                # the message; one fresh connection is the expected recovery, not a retry.
                _log.debug("smtp.reconnecting", server=self._server)
                client.close()
                await self._connect(client)
                await client.send_message(mail, sender=self._sender.addr_spec, recipients=[rcpt])
        except asyncio.CancelledError:
            # Cancelled mid-transaction: the session state is unknown, never reuse it.
            client.close()
            raise
        except (*_TRANSPORT_ERRORS, ValueError) as exc:
            if not _session_still_usable(exc):
                client.close()
            raise classify(exc, server=self._server) from exc

    def _compose(self, message: OutgoingMessage, message_id: str) -> EmailMessage:
        if not _ID_LEFT.fullmatch(message.notification_id):
            raise PermanentDeliveryError(
                "notification id cannot form a Message-ID (only RFC 5322 atext allowed)",
                reason=Reason.CLIENT,
            )
        rendered = message.rendered
        mail = EmailMessage(policy=POLICY)
        try:
            mail["To"] = Address(
                display_name=_one_line(message.recipient_name), addr_spec=message.address
            )
        except (ValueError, HeaderParseError) as exc:
            raise PermanentDeliveryError(
                "recipient address is not a valid email address; fix the contact in the directory",
                reason=Reason.CLIENT,
            ) from exc
        mail["From"] = self._sender
        mail["Subject"] = _one_line(rendered.subject)
        mail["Date"] = format_datetime(self._clock.now())
        mail["Message-ID"] = message_id
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Notifier-Notification-Id"] = message.notification_id
        mail["X-Notifier-Template-Hash"] = _one_line(rendered.template_hash)
        mail.set_content(rendered.text)
        if rendered.html is not None:
            mail.add_alternative(rendered.html, subtype="html")
        language = rendered.language.replace("_", "-")
        # Last on purpose: set_content()/add_alternative() drop or move Content-* headers.
        if _LANGUAGE_TAG.fullmatch(language):
            mail["Content-Language"] = language
        return mail


def classify(exc: BaseException, *, server: str) -> DeliveryError:
    """Map an aiosmtplib/socket error to a Transient or Permanent DeliveryError with a reason.

    The message says what happened and what to check; it never holds credentials, the message
    body or an email address (those in server replies are redacted).
    """
    host = server.rpartition(":")[0]
    if isinstance(exc, TimeoutError):
        what = "did not connect" if isinstance(exc, aiosmtplib.SMTPConnectError) else "stalled"
        return TransientDeliveryError(
            f"SMTP server {server} timed out ({what}); check NOTIFIER_SMTP__HOST/PORT and the "
            "network, or raise NOTIFIER_SMTP__TIMEOUT_SECONDS",
            reason=Reason.TIMEOUT,
        )
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        refused = exc.recipients[0]
        return _from_reply(refused.code, refused.message, server, stage="the recipient")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        connecting = isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPHeloError)
        stage = "the connection" if connecting else "the message"
        return _from_reply(exc.code, exc.message, server, stage=stage)
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        return TransientDeliveryError(
            _connect_problem(exc.__cause__, server, host), reason=Reason.SERVER
        )
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError):
        return TransientDeliveryError(
            f"SMTP server {server} closed the connection unexpectedly; it will be retried",
            reason=Reason.SERVER,
        )
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentDeliveryError(
            f"SMTP server {server} lacks a needed extension: {exc.message}", reason=Reason.CLIENT
        )
    if isinstance(exc, aiosmtplib.SMTPException):
        return PermanentDeliveryError(
            f"SMTP session with {server} failed: {exc.message}; check NOTIFIER_SMTP__* settings",
            reason=Reason.OTHER,
        )
    if isinstance(exc, OSError):
        return TransientDeliveryError(_connect_problem(exc, server, host), reason=Reason.SERVER)
    return PermanentDeliveryError(
        "recipient address cannot be sent over SMTP; fix the contact in the directory",
        reason=Reason.CLIENT,
    )


def _from_reply(code: int, text: str, server: str, *, stage: str) -> DeliveryError:
    reply = f"{code} {_redact(text)}"
    if code in _AUTH_CODES:
        return PermanentDeliveryError(
            f"SMTP server {server} refused authentication ({reply}); "
            "check NOTIFIER_SMTP__USERNAME/PASSWORD and TLS settings",
            reason=Reason.AUTH,
        )
    if 500 <= code < 600:
        # A refused recipient or message is about what we sent; a 5xx at connect/EHLO, or any
        # other 5xx, is the relay refusing service.
        about_us = code in _RECIPIENT_CODES and stage != "the connection"
        hint = "fix the contact's address or the message" if about_us else "check the relay"
        return PermanentDeliveryError(
            f"SMTP server {server} permanently refused {stage} ({reply}); {hint}",
            reason=Reason.CLIENT if about_us else Reason.SERVER,
        )
    # 4xx and anything unexpected: the server asked us to come back later.
    return TransientDeliveryError(
        f"SMTP server {server} deferred {stage} ({reply}); it will be retried",
        reason=Reason.SERVER,
    )


def _connect_problem(cause: BaseException | None, server: str, host: str) -> str:
    if isinstance(cause, socket.gaierror):
        return f"SMTP host {host!r} could not be resolved; check NOTIFIER_SMTP__HOST"
    if isinstance(cause, ConnectionRefusedError):
        return f"SMTP server {server} refused the connection; check NOTIFIER_SMTP__HOST/PORT"
    if isinstance(cause, ssl.SSLError):
        return (
            f"TLS with SMTP server {server} failed ({type(cause).__name__}); check "
            "NOTIFIER_SMTP__USE_TLS/STARTTLS/VALIDATE_CERTS"
        )
    detail = type(cause).__name__ if cause is not None else "unknown error"
    return f"SMTP server {server} could not be reached ({detail}); check NOTIFIER_SMTP__HOST/PORT"


def _session_still_usable(exc: BaseException) -> bool:
    # After a 4xx/5xx reply aiosmtplib has sent RSET, so the session can carry the next
    # message; 421 means the server is closing it anyway.
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return True
    return isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code != 421


def _parse_sender(sender: str) -> Address:
    name, addr = parseaddr(sender)
    try:
        return Address(display_name=name, addr_spec=addr)
    except (ValueError, HeaderParseError) as exc:
        raise ConfigError(
            f"smtp.sender {sender!r} is not 'Name <address>' (check NOTIFIER_SMTP__SENDER)"
        ) from exc


def _one_line(value: str) -> str:
    # Headers must never carry CR/LF (header injection); collapse all whitespace runs.
    return " ".join(value.split())


def _redact(text: str) -> str:
    return _ADDRESS_LIKE.sub("<address>", " ".join(text.split()))[:200]
