"""Console sign-in: password hashes, signed session cookies, CSRF tokens, capabilities.

Sessions are stateless: the cookie holds the person's id, the session's CSRF token and when
it was issued, signed with the links secrets (the first signs, all verify) under the console's
own salt; the clock decides expiry, so tests can move time. Every form carries the session's
CSRF token and every POST checks it; the sign-in form, before any session, uses a signed
token of its own (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import SecretStr

from notifier.clock import Clock
from notifier.directory import Capability, Directory, Person

SESSION_COOKIE = "notifier_session"
LOGIN_COOKIE = "notifier_signin"

_hasher = PasswordHasher()
# Verified when the person has no hash, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An Argon2id hash for the directory's ``password_hash``."""
    return _hasher.hash(password)


def check_password(person: Person | None, password: str) -> bool:
    """Whether ``password`` is the person's (False for nobody, or nobody with a password)."""
    stored = person.password_hash if person is not None else None
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person, what they may do, and their session's CSRF token."""

    person: Person
    capabilities: frozenset[Capability]
    csrf: str
    expires_at: datetime

    @property
    def session_hash(self) -> str:
        """What names this session in the store (a hash: the token itself stays secret)."""
        return session_hash(self.csrf)

    def can(self, capability: Capability) -> bool:
        """Whether the person's roles allow ``capability``."""
        return capability in self.capabilities


class Sessions:
    """Issues and checks session cookies and CSRF tokens."""

    def __init__(
        self,
        secrets_: list[SecretStr],
        ttl_seconds: int,
        clock: Clock,
        directory: Directory,
        revoked: Callable[[str, str, datetime], bool] = lambda *_: False,
    ) -> None:
        """``revoked(session_hash, person_id, issued_at)`` says whether a session (by
        :func:`session_hash`) was signed out, itself or everywhere."""
        # itsdangerous signs with the last key and verifies with all: the first links secret
        # is the newest.
        keys = [s.get_secret_value() for s in reversed(secrets_)]
        self._sessions = URLSafeSerializer(keys, salt="notifier.console.session")
        self._login = URLSafeSerializer(keys, salt="notifier.console.sign-in")
        self._ttl = ttl_seconds
        self._clock = clock
        self._directory = directory
        self._revoked = revoked

    @property
    def ttl_seconds(self) -> int:
        """How long a session lasts."""
        return self._ttl

    def issue(self, person: Person) -> str:
        """A session cookie value for ``person``, with a fresh CSRF token."""
        payload = {"p": person.id, "c": secrets.token_urlsafe(24), "t": self._now()}
        return self._sessions.dumps(payload)

    def viewer(self, cookie: str | None) -> Viewer | None:
        """The person a valid, unexpired, not signed-out session cookie names, if they may
        still view. Blocking (asks the store whether the session was signed out)."""
        if not cookie:
            return None
        try:
            payload: Any = self._sessions.loads(cookie)
        except BadSignature:
            return None
        if not isinstance(payload, dict):
            return None
        issued, person_id, csrf = payload.get("t"), payload.get("p"), payload.get("c")
        if not isinstance(issued, int) or not isinstance(csrf, str):
            return None
        if not 0 <= self._now() - issued < self._ttl:
            return None
        person = self._directory.get(person_id) if isinstance(person_id, str) else None
        if person is None:
            return None
        capabilities = self._directory.capabilities(person.id)
        if Capability.VIEW not in capabilities:
            return None  # roles changed since sign-in
        if self._revoked(session_hash(csrf), person.id, datetime.fromtimestamp(issued, UTC)):
            return None  # signed out: a copy of the cookie must not work
        expires = datetime.fromtimestamp(issued + self._ttl, UTC)
        return Viewer(person, capabilities, csrf, expires)

    def sign_in_token(self) -> tuple[str, str]:
        """A token for the sign-in form and the signed cookie that vouches for it."""
        token = secrets.token_urlsafe(24)
        return token, self._login.dumps({"c": token, "t": self._now()})

    def check_sign_in_token(self, cookie: str | None, submitted: str | None) -> bool:
        """Whether the sign-in form's token matches its cookie (and is at most an hour old)."""
        if not cookie or not submitted:
            return False
        try:
            payload: Any = self._login.loads(cookie)
        except BadSignature:
            return False
        if not isinstance(payload, dict) or not isinstance(payload.get("c"), str):
            return False
        fresh = isinstance(payload.get("t"), int) and 0 <= self._now() - payload["t"] < 3600
        return fresh and hmac.compare_digest(payload["c"], submitted)

    def _now(self) -> int:
        return int(self._clock.now().timestamp())


def session_hash(token: str) -> str:
    """The sha256 (hex) of a session's secret token."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_ok(viewer: Viewer, submitted: object) -> bool:
    """Whether a form's token is the session's."""
    return isinstance(submitted, str) and hmac.compare_digest(viewer.csrf, submitted)
