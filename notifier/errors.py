"""The errors notifier raises, each carrying a reason from a fixed set and a retriable flag.

Exception tree::

    NotifierError                 base: .reason (Reason), .retriable (bool)
    ├── ConfigError               a configuration file or value is invalid (never retriable)
    ├── RejectedInput             an input record cannot be accepted (goes to the dead-letter topic)
    ├── TemplateError             a template is missing, broken, or renders too much
    └── DeliveryError             a channel could not deliver a message
        ├── TransientDeliveryError    worth retrying (timeouts, 4xx SMTP replies, connection loss)
        └── PermanentDeliveryError    not worth retrying (5xx SMTP replies, refused recipients)

The reason is meant for metrics and logs (a label), never ``str(exc)``.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why something failed; a closed set so it can label metrics."""

    CLIENT = "client"
    SERVER = "server"
    AUTH = "auth"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    TEMPLATE = "template"
    OTHER = "other"


class NotifierError(Exception):
    """Base class: every notifier error has a reason and says whether retrying may help."""

    reason: Reason = Reason.OTHER
    retriable: bool = False

    def __init__(self, message: str, *, reason: Reason | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ConfigError(NotifierError):
    """A configuration file or value is invalid; the message names the file and field."""

    reason = Reason.CLIENT


class RejectionCode(StrEnum):
    """Why an input record was refused; written to the dead-letter topic's headers."""

    NOT_JSON = "not_json"
    OVERSIZED = "oversized"
    SCHEMA = "schema"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_SPEC = "unsupported_spec"
    EMPTY = "empty"


class RejectedInput(NotifierError):
    """An input record that cannot be accepted; ``code`` says why, ``detail`` says where."""

    reason = Reason.CLIENT

    def __init__(self, code: RejectionCode, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail


class TemplateError(NotifierError):
    """A template is missing, does not compile, uses an undefined variable or renders too much."""

    reason = Reason.TEMPLATE


class DeliveryError(NotifierError):
    """A channel could not deliver a message.

    ``retry_after`` (seconds) is the receiver's own word on when to try again (an HTTP or
    Slack ``Retry-After``); retries never come sooner.
    """

    def __init__(
        self, message: str, *, reason: Reason | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class TransientDeliveryError(DeliveryError):
    """A delivery failure that may succeed if tried again later."""

    retriable = True


class PermanentDeliveryError(DeliveryError):
    """A delivery failure that will not succeed by retrying the same message."""

    retriable = False


def is_retriable(exc: BaseException) -> bool:
    """Tell whether ``exc`` is worth retrying (used as tenacity's retry predicate)."""
    return isinstance(exc, NotifierError) and exc.retriable
