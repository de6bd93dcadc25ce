"""The contract every delivery channel (email, Slack, webhook, console) implements."""

from __future__ import annotations

from typing import Protocol

from notifier.message import OutgoingMessage

__all__ = ["Channel"]


class Channel(Protocol):
    """Hands one rendered message to one transport.

    ``send`` either returns the provider's id for the delivery (for email the ``Message-ID``,
    for Slack the message ``ts``) or raises
    :class:`~notifier.errors.TransientDeliveryError` (worth retrying) or
    :class:`~notifier.errors.PermanentDeliveryError` (not worth retrying), each with a
    :class:`~notifier.errors.Reason`. Channels never retry on their own: retrying happens once,
    in :func:`notifier.delivery.send_with_retry`.
    """

    name: str

    async def send(self, message: OutgoingMessage) -> str:
        """Deliver ``message``; return the provider's id for it."""
        ...

    async def close(self) -> None:
        """Release connections; wait for sends in flight. Calling it twice is harmless."""
        ...
