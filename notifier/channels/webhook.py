"""Outgoing webhooks: one signed JSON ``POST`` per notification to a configured endpoint.

A contact names an endpoint (``{channel: webhook, address: ops-bridge}``); its URL and secret
live only under ``webhooks.endpoints``, so event data never chooses where requests go. Before
every request the endpoint's host is resolved and checked by :mod:`notifier.netguard`
(loopback and private networks only with ``webhooks.allow_private_networks``; link-local and
cloud metadata addresses never), and the connection goes to exactly the addresses that were
checked, so a name cannot be re-pointed between the check and the connect. Redirects are never
followed: the new location could be an address the configuration does not allow.

The HTTP client is aiohttp: ``bench/delivery.py`` measured it at about 12,000 signed POSTs a
second on one core against a local receiver, httpx at about 900 (1.1 ms of CPU per request).

Request headers
---------------

- ``Content-Type: application/json`` (UTF-8)
- ``User-Agent: notifier/<version>``
- ``X-Notifier-Id``: the notification id. It is the same on every retry of a notification;
  receivers dedupe on it (a timeout after the receiver accepted leads to a second delivery).
- ``X-Notifier-Timestamp``: when this attempt was signed, in unix seconds.
- ``X-Notifier-Signature``: ``v1=`` + lowercase hex HMAC-SHA256, keyed by the endpoint's
  ``secret``, over ``b"<timestamp>." + body`` (the raw body bytes, as received).

Body (JSON object, schema ``version`` 1; a version only ever gains fields)::

    {
      "version": 1,
      "type": "notifier.notification",
      "id": "ntf-...",                     the notification id, as in X-Notifier-Id
      "sent_at": "2024-05-17T09:30:00.000Z",   this attempt, UTC (differs across retries)
      "recipient": "Jürgen Müller",        the contact's display name
      "alert": {
        "id": "...",                       the alert this is about
        "occurrence": 1,                   which firing of the alert (it may re-fire)
        "status": "firing",                firing, escalated, acknowledged, resolved, ...
        "severity": "critical",            or null
        "runbook_url": "https://..."       or null
      },
      "language": "de-CH",                 BCP 47 tag of the catalog the text is in
      "subject": "...",
      "text": "...",                       plain text
      "html": "...",                       or null
      "links": {"acknowledge": "https://..."},   signed links for this reader; may be {}
      "template_hash": "sha256:...",       the exact template version used
      "digest": null                       a digest's list (below); null for other messages
    }

A digest (``alert.status`` is ``digest``; ``alert`` is the first alert it lists) carries::

    {
      "reason": "grouped",                 grouped, throttled or quiet (hours)
      "group": {"network": "mainnet", "alertname": "..."},   the group's labels, or null
      "count": 5,                          alerts the digest stands for
      "due_at": "2024-05-17T09:35:00.000Z",
      "items": [                           the first of them (up to 50), in arrival order
        {"alert_id": "...", "name": "...", "severity": "warning", "status": "firing",
         "summary": "...", "labels": {"instance": "node-7"}}
      ]
    }

Receivers should check the signature with :func:`verify` (or the same computation: recompute
the HMAC, compare in constant time, refuse timestamps more than 5 minutes away from now), then
dedupe on ``X-Notifier-Id``, then answer 2xx quickly.

Responses: any 2xx is delivered (the provider id is the notification id). 429 and 503 are
retried, no sooner than their ``Retry-After`` (seconds or an HTTP date; at most an hour); other
5xx, 408, timeouts and connection failures are retried; 401/403 (auth), other 4xx and 3xx are
permanent. See :func:`classify_response` and :func:`classify_exception`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus

import aiohttp
import orjson
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDictProxy
from yarl import URL

from notifier import __version__, netguard
from notifier.clock import Clock, SystemClock
from notifier.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    Reason,
    TransientDeliveryError,
)
from notifier.message import OutgoingMessage
from notifier.settings import WebhookSettings

__all__ = [
    "BODY_VERSION",
    "MAX_RETRY_AFTER_SECONDS",
    "SIGNATURE_TOLERANCE_SECONDS",
    "WebhookChannel",
    "classify_exception",
    "classify_response",
    "encode_body",
    "parse_retry_after",
    "sign",
    "verify",
]

BODY_VERSION = 1
MAX_RETRY_AFTER_SECONDS = 3600.0
"""A receiver's ``Retry-After`` is honoured up to this many seconds."""
SIGNATURE_TOLERANCE_SECONDS = 300
"""How far a signature's timestamp may be from now before :func:`verify` refuses it."""

_log = structlog.get_logger(__name__)

_ID = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII, no spaces: safe in a header
_DIGITS = re.compile(r"[0-9]{1,15}")
_READ_LIMIT = 65_536  # a response body up to this size is read so its connection is reused


@dataclass(frozen=True, slots=True)
class _Target:
    url: URL
    host: str
    port: int
    literal: bool  # an IP address: aiohttp connects without asking the resolver


class _GuardedResolver(AbstractResolver):
    """Resolves endpoint names for aiohttp and refuses them if any address is refused.

    aiohttp connects to the addresses this returns (and caches them for its DNS TTL), so
    what was checked is what is connected to: no DNS-rebinding window.
    """

    def __init__(self, resolver: netguard.Resolver, *, allow_private: bool) -> None:
        self._resolver = resolver
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await netguard.check_host(
            host, port, allow_private=self._allow_private, resolver=self._resolver
        )
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=socket.IPPROTO_TCP,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        """Nothing to release: lookups go through the loop's ``getaddrinfo`` or the fake."""


class WebhookChannel:
    """POSTs :class:`OutgoingMessage` objects to the endpoints under ``webhooks.endpoints``.

    One ``aiohttp.ClientSession`` is shared by all sends (up to ``webhooks.concurrency``
    connections, kept alive between sends), created on the first send. ``resolver`` replaces
    DNS (tests); its answers are checked, then connected to. Proxy environment variables are
    ignored, so the check is about the address connected to.
    """

    name = "webhook"

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        clock: Clock | None = None,
        resolver: netguard.Resolver | None = None,
    ) -> None:
        self._settings = settings
        self._clock: Clock = clock or SystemClock()
        self._resolver: netguard.Resolver = resolver or netguard.resolve
        self._targets = {name: _target(name, ep.url) for name, ep in settings.endpoints.items()}
        self._session: aiohttp.ClientSession | None = None
        # An IP literal's verdict never changes: judged once, not on every send.
        self._literal_refusals = {
            t.host: _refusal(t.host, settings.allow_private_networks)
            for t in self._targets.values()
            if t.literal
        }
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    async def send(self, message: OutgoingMessage) -> str:
        """POST ``message`` to the endpoint its address names; return the notification id."""
        name = message.address
        endpoint = self._settings.endpoints.get(name)
        if endpoint is None:
            raise PermanentDeliveryError(
                f"webhook endpoint {name[:100]!r} is not configured; add it under "
                "webhooks.endpoints or fix the contact's address in the directory",
                reason=Reason.CLIENT,
            )
        if not _ID.fullmatch(message.notification_id):
            raise PermanentDeliveryError(
                "notification id cannot be sent in a header (only printable ASCII allowed)",
                reason=Reason.CLIENT,
            )
        if self._closed:
            raise TransientDeliveryError("webhook channel is closed", reason=Reason.OTHER)
        now = self._clock.now()
        timestamp = int(now.timestamp())
        body = encode_body(message, now)
        secret = endpoint.secret.get_secret_value().encode()
        headers = {
            "Content-Type": "application/json",
            "X-Notifier-Id": message.notification_id,
            "X-Notifier-Timestamp": str(timestamp),
            "X-Notifier-Signature": sign(secret, timestamp, body),
        }
        self._in_flight += 1
        self._idle.clear()
        try:
            status, response_headers = await self._post(
                self._targets[name], body, headers, endpoint.timeout_seconds
            )
        except (aiohttp.ClientError, OSError, netguard.AddressRefused) as exc:
            raise classify_exception(exc, endpoint=name) from exc
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
        error = classify_response(status, response_headers, endpoint=name, now=self._clock.now())
        if error is not None:
            raise error
        _log.debug("webhook.sent", endpoint=name, status=status)
        return message.notification_id

    async def close(self) -> None:
        """Wait for sends in flight, then close the shared client's connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._idle.wait()
        if self._session is not None:
            await self._session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._settings.concurrency,
                resolver=_GuardedResolver(
                    self._resolver, allow_private=self._settings.allow_private_networks
                ),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": f"notifier/{__version__}"},
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # receivers' cookies are never sent back
                auto_decompress=False,  # the body is only drained, never read as content
            )
        return self._session

    async def _post(
        self, target: _Target, body: bytes, headers: dict[str, str], seconds: float
    ) -> tuple[int, CIMultiDictProxy[str]]:
        if target.literal:  # names are checked by the resolver; literals never reach it
            refused = self._literal_refusals.get(target.host)
            if refused is not None:
                raise netguard.AddressRefused(target.host, refused)
        # One deadline for the lookup, the connection and the response headers.
        timeout = aiohttp.ClientTimeout(total=seconds)
        async with self._client().post(
            target.url, data=body, headers=headers, allow_redirects=False, timeout=timeout
        ) as response:
            if response.status == 204 or (
                response.content_length is not None and response.content_length <= _READ_LIMIT
            ):
                # The status decides the outcome; reading a small body only lets the
                # connection be reused (a large or unsized one is closed instead).
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    await response.read()
            return response.status, response.headers


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_body(message: OutgoingMessage, now: datetime) -> bytes:
    """The JSON body for ``message`` sent at ``now`` (schema in the module docstring)."""
    rendered = message.rendered
    sent_at = _utc(now)
    digest = None
    if message.digest is not None:
        digest = dict(message.digest)
        due = digest.get("due_at")
        digest["due_at"] = _utc(due) if isinstance(due, datetime) else due
    document = {
        "version": BODY_VERSION,
        "type": "notifier.notification",
        "id": message.notification_id,
        "sent_at": sent_at,
        "recipient": message.recipient_name,
        "alert": {
            "id": message.alert_id,
            "occurrence": message.occurrence,
            "status": message.status,
            "severity": message.severity,
            "runbook_url": message.runbook_url,
        },
        "language": rendered.language.replace("_", "-"),
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
        "links": dict(message.links),
        "template_hash": rendered.template_hash,
        "digest": digest,
    }
    return orjson.dumps(document)


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Notifier-Signature`` value: ``v1=`` + hex HMAC-SHA256 of ``b"<ts>." + body``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(
    secret: bytes,
    timestamp: int | str,
    body: bytes,
    signature: str,
    *,
    now: float | datetime,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """Tell whether ``signature`` (the header value) signs ``body`` at ``timestamp``.

    For receivers: pass the ``X-Notifier-Timestamp`` and ``X-Notifier-Signature`` header
    values and the raw body bytes. A timestamp more than ``tolerance`` seconds from ``now``
    (unix seconds or an aware datetime) is refused, in either direction, so a captured
    request cannot be replayed later. Several comma-separated ``v1=`` values are accepted
    (one matching is enough), for secret rotation. Comparison is constant-time.
    """
    if isinstance(timestamp, str):
        if not _DIGITS.fullmatch(timestamp):
            return False
        timestamp = int(timestamp)
    current = now.timestamp() if isinstance(now, datetime) else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    candidates = [part.strip() for part in signature.split(",")]
    # Compare every candidate (no early exit) so timing does not tell which one matched.
    matches = [hmac.compare_digest(expected.encode(), c.encode()) for c in candidates if c]
    return any(matches)


def classify_response(
    status: int, headers: Mapping[str, str], *, endpoint: str, now: datetime
) -> DeliveryError | None:
    """Map a receiver's status to None (delivered) or a Transient/Permanent DeliveryError.

    ``Retry-After`` (seconds or an HTTP date, read against ``now``) is honoured on 429 and
    503, capped at :data:`MAX_RETRY_AFTER_SECONDS`; a malformed value is ignored. Messages
    name the endpoint and the setting to check, never the URL, the secret or the body.
    """
    if 200 <= status < 300:
        return None
    said = f"webhook endpoint {endpoint!r} answered {_status_text(status)}"
    setting = f"webhooks.endpoints.{endpoint}"
    if status == 429:
        return TransientDeliveryError(
            f"{said}: it is rate limiting; it will be retried",
            reason=Reason.RATE_LIMITED,
            retry_after=parse_retry_after(_header(headers, "retry-after"), now=now),
        )
    if status == 503:
        return TransientDeliveryError(
            f"{said}: it is unavailable; it will be retried",
            reason=Reason.SERVER,
            retry_after=parse_retry_after(_header(headers, "retry-after"), now=now),
        )
    if 500 <= status < 600 or status == 408:
        return TransientDeliveryError(
            f"{said}; it will be retried (check the receiver's logs if this persists)",
            reason=Reason.SERVER,
        )
    if status in (401, 403):
        return PermanentDeliveryError(
            f"{said}: it refused the request; check that the receiver verifies with the same "
            f"secret as {setting}.secret and that its clock is right",
            reason=Reason.AUTH,
        )
    if 300 <= status < 400:
        return PermanentDeliveryError(
            f"{said}: redirects are not followed; set {setting}.url to the final URL",
            reason=Reason.CLIENT,
        )
    if 400 <= status < 500:
        return PermanentDeliveryError(
            f"{said}: it refused the request; check {setting}.url and what the receiver "
            "expects (body schema version 1)",
            reason=Reason.CLIENT,
        )
    return PermanentDeliveryError(
        f"{said}, which is not a valid final HTTP status; check {setting}.url",
        reason=Reason.OTHER,
    )


def classify_exception(exc: BaseException, *, endpoint: str) -> DeliveryError:
    """Map an aiohttp, socket or :mod:`notifier.netguard` error to a DeliveryError with a reason.

    Timeouts are transient (``timeout``); connection and protocol failures transient
    (``server``); refused addresses and unusable URLs permanent (``client``).
    """
    where = f"webhook endpoint {endpoint!r}"
    setting = f"webhooks.endpoints.{endpoint}"
    if isinstance(exc, netguard.AddressRefused):
        hint = (
            f"check {setting}.url, or set webhooks.allow_private_networks: true if the "
            "receiver is meant to be internal"
            if exc.private
            else f"such addresses are never allowed; check {setting}.url"
        )
        return PermanentDeliveryError(
            f"{where} resolves to a refused address ({exc.category}: {exc.address}); {hint}",
            reason=Reason.CLIENT,
        )
    if isinstance(exc, TimeoutError):
        connecting = isinstance(exc, aiohttp.ConnectionTimeoutError)
        what = "did not accept a connection" if connecting else "did not answer"
        return TransientDeliveryError(
            f"{where} {what} in time; it will be retried (check the receiver, or raise "
            f"{setting}.timeout_seconds)",
            reason=Reason.TIMEOUT,
        )
    if isinstance(exc, aiohttp.InvalidURL):
        return PermanentDeliveryError(
            f"{where} has an unusable URL; check {setting}.url", reason=Reason.CLIENT
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransientDeliveryError(
            _connect_problem(exc.os_error, where, setting), reason=Reason.SERVER
        )
    if isinstance(exc, aiohttp.ClientError):
        return TransientDeliveryError(
            f"{where} broke off the exchange ({type(exc).__name__}); it will be retried",
            reason=Reason.SERVER,
        )
    if isinstance(exc, OSError):
        return TransientDeliveryError(_connect_problem(exc, where, setting), reason=Reason.SERVER)
    return PermanentDeliveryError(
        f"request to {where} failed ({type(exc).__name__}); check {setting}",
        reason=Reason.OTHER,
    )


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay seconds or an HTTP date).

    A date is read against ``now``; past dates give 0. The result is capped at
    :data:`MAX_RETRY_AFTER_SECONDS`; a missing or malformed value gives None.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # More than ten digits is centuries: cap without converting an absurd number.
        return (
            MAX_RETRY_AFTER_SECONDS if len(text) > 10 else min(float(text), MAX_RETRY_AFTER_SECONDS)
        )
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates: HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _connect_problem(exc: BaseException, where: str, setting: str) -> str:
    cause = _root_cause(exc)
    if isinstance(cause, socket.gaierror):
        return f"{where} has a host name that does not resolve; check {setting}.url and DNS"
    if isinstance(cause, ConnectionRefusedError):
        return f"{where} refused the connection; check {setting}.url and that the receiver runs"
    if isinstance(cause, ssl.SSLError):
        return (
            f"TLS with {where} failed ({type(cause).__name__}); check the receiver's "
            f"certificate and {setting}.url"
        )
    return (
        f"{where} could not be reached ({type(cause).__name__}); check {setting}.url and the "
        "network"
    )


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


def _status_text(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # aiohttp's headers are case-insensitive already; a plain dict (tests, other callers) is not.
    value = headers.get(name)
    if value is not None:
        return value
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _refusal(address: str, allow_private: bool) -> netguard.Category | None:
    try:
        netguard.check_address(address, allow_private=allow_private)
    except netguard.AddressRefused as exc:
        return exc.category
    return None


def _target(name: str, url: str) -> _Target:
    try:
        parsed = URL(url)
        host = parsed.host
        port = parsed.port
    except ValueError:
        parsed, host, port = None, None, None
    if parsed is None or parsed.scheme not in ("http", "https") or not host or port is None:
        raise ConfigError(
            f"webhooks.endpoints.{name}.url is not an http(s) URL with a host; fix it"
        )
    literal = host.strip("[]")
    try:
        ipaddress.ip_address(literal)
    except ValueError:
        return _Target(url=parsed, host=host, port=port, literal=False)
    return _Target(url=parsed, host=literal, port=port, literal=True)
