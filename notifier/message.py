"""What a rendered notification looks like on its way to a channel."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """The strings a template produced for one recipient, channel and language.

    ``language`` is the catalog actually used (``de`` for a ``de_CH`` reader when only German
    exists); ``template_hash`` identifies the exact template version that produced it.
    """

    subject: str
    text: str
    html: str | None
    language: str
    template_hash: str


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A rendered message addressed to one contact, with the stable id receivers dedupe on."""

    notification_id: str
    recipient_name: str
    address: str
    rendered: RenderedMessage
