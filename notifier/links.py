"""Signed, expiring links: who may take charge of (or confirm receipt of) which occurrence.

Acknowledgment links (``/ack/{token}``) and confirm-receipt links (``/receipt/{token}``)
are signed alike, under different salts, so neither verifies as the other.

A token names an alert occurrence and a person, carries a random nonce (every token is unique)
and the time it was issued, and is signed with HMAC (itsdangerous) under a salt that keeps it
from verifying anywhere else the same secrets sign. The first secret signs, every secret
verifies: to rotate, put the new secret first, keep the old one until its tokens expire, then
remove it.

Exception tree (see notifier.errors)::

    NotifierError
    └── LinkInvalid          tampered, signed with an unknown key, or malformed (reason CLIENT)
        └── LinkExpired      genuine, but older than the time to live

Tokens and secrets are credentials: never log them, and never put them in error messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from secrets import token_urlsafe
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import SecretStr

from notifier.clock import Clock
from notifier.errors import ConfigError, NotifierError, Reason

__all__ = ["LinkClaim", "LinkExpired", "LinkInvalid", "LinkSigner"]

# Links travel in URLs and email; anything much longer than a real token is not one, and is
# refused before any decoding work.
MAX_TOKEN_CHARS = 512
_NONCE_BYTES = 12
_PAYLOAD_VERSION = 1


@dataclass(frozen=True, slots=True)
class LinkClaim:
    """What a genuine, unexpired token says: this person may acknowledge this occurrence."""

    alert_id: str
    occurrence: int
    person_id: str
    nonce: str
    issued_at: datetime


class LinkInvalid(NotifierError):
    """A token that is tampered with, signed with an unknown key, or not a token at all."""

    reason = Reason.CLIENT


class LinkExpired(LinkInvalid):
    """A genuine token older than the links' time to live."""


class LinkSigner:
    """Signs acknowledgment tokens with the first secret and verifies them with any secret.

    Expiry design: the serializer used is itsdangerous's *untimed* one, and the issue time is
    a field of the signed payload, read from the injected Clock when signing and compared with
    the same Clock when verifying. itsdangerous's timed classes call ``time.time()``; this way
    no subclass has to override their internals, and tests move a FakeClock instead of waiting.
    The issue time cannot be forged, since the payload is signed.
    """

    def __init__(
        self,
        secrets: Sequence[SecretStr],
        ttl_seconds: int,
        clock: Clock,
        salt: str = "notifier.ack",
        *,
        path: str = "ack",
        what: str = "acknowledgment link",
    ) -> None:
        if not secrets:
            raise ConfigError("links.secrets: at least one secret is needed to sign links")
        if ttl_seconds <= 0:
            raise ConfigError("links.ttl_seconds: must be positive")
        keys = [secret.get_secret_value() for secret in secrets]
        if not all(keys):
            raise ConfigError("links.secrets: a secret is empty")
        # itsdangerous signs with the *last* key and verifies with all: reverse ours.
        self._serializer = URLSafeSerializer(keys[::-1], salt=salt)
        self._ttl = ttl_seconds
        self._clock = clock
        self._path = path
        self._what = what

    def sign(self, alert_id: str, occurrence: int, person_id: str) -> str:
        """Return a URL-safe token letting ``person_id`` acknowledge the alert occurrence."""
        issued = int(self._clock.now().timestamp())
        payload = [_PAYLOAD_VERSION, alert_id, occurrence, person_id, token_urlsafe(_NONCE_BYTES)]
        token: str = self._serializer.dumps([*payload, issued])
        return token

    def verify(self, token: str) -> LinkClaim:
        """Return the claim of a genuine token; raise LinkExpired or LinkInvalid otherwise.

        Age is judged by the injected clock. A token issued "in the future" (clocks of two
        instances disagree) is accepted: only a holder of a secret could have made it.
        To tell tokens apart (one-time use), compare claims' nonces, not token text: base64
        leaves spare bits in a token's last character, so a few spellings verify alike.
        """
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise LinkInvalid(f"{self._what} is malformed")
        try:
            payload = self._serializer.loads(token)
        except BadSignature:  # also covers a signed payload that does not decode (BadPayload)
            raise LinkInvalid(f"{self._what} is invalid") from None
        except (UnicodeError, ValueError):  # text that cannot even be checked
            raise LinkInvalid(f"{self._what} is malformed") from None
        try:
            claim = _claim(payload)
        except LinkInvalid:
            raise LinkInvalid(f"{self._what} is malformed") from None
        age = int(self._clock.now().timestamp()) - int(claim.issued_at.timestamp())
        if age > self._ttl:
            raise LinkExpired(f"{self._what} has expired")
        return claim

    def url(self, base_url: str, token: str) -> str:
        """Return the link page's address for ``token`` under ``base_url``."""
        return f"{base_url.rstrip('/')}/{self._path}/{token}"


def _claim(payload: Any) -> LinkClaim:
    """Check the shape of a verified payload; a signed but foreign shape is still invalid."""
    if not isinstance(payload, list) or len(payload) != 6 or payload[0] != _PAYLOAD_VERSION:
        raise LinkInvalid("link is malformed")
    _version, alert_id, occurrence, person_id, nonce, issued = payload
    well_formed = (
        all(isinstance(value, str) and value for value in (alert_id, person_id, nonce))
        and _is_int(occurrence)
        and _is_int(issued)
    )
    if not well_formed:
        raise LinkInvalid("link is malformed")
    try:
        issued_at = datetime.fromtimestamp(issued, UTC)
    except (OverflowError, OSError, ValueError):
        raise LinkInvalid("link is malformed") from None
    return LinkClaim(alert_id, occurrence, person_id, nonce, issued_at)


def _is_int(value: object) -> bool:
    # JSON true/false decode to bool, a subclass of int: not a count nor a time.
    return isinstance(value, int) and not isinstance(value, bool)
