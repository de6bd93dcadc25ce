"""What a rendered notification looks like on its way to a channel."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """The strings a template produced for one recipient, channel and language.

    ``language`` is the catalog actually used (``de`` for a ``de_CH`` reader when only German
    exists); ``template_hash`` identifies the exact template sources that produced it, and
    ``template_version`` names their approved library versions (``alert v3, shared v1``;
    empty when rendered straight from files).
    """

    subject: str
    text: str
    html: str | None
    language: str
    template_hash: str
    template_version: str = ""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A rendered message addressed to one contact, with the stable id receivers dedupe on.

    ``address`` is what the contact says for its channel: an email address, a Slack channel
    or user id, a webhook endpoint's name. The rest describes the alert for channels that
    show more than text (Slack blocks and buttons, webhook bodies): ``status`` is the
    notification's status (``firing``, ``escalated``, ``acknowledged``, ``resolved``, ...),
    ``links`` the signed links made for this reader (``acknowledge``, ``confirm``),
    ``thread`` the provider id of the first message about this alert occurrence at this
    address (Slack threads replies under it and updates it), ``mention`` the Slack user id
    of the person the message is about (who acknowledged), if known. ``labels`` are the
    framing words a channel lays out around the text, in the reader's language (Slack:
    ``severity``/``status`` headings and values, button texts; see
    :func:`notifier.compose.slack_labels`); a missing one is shown in English. ``digest`` is
    what a digest lists (``reason``, ``group``, ``count``, ``due_at``, ``items``: see
    :func:`notifier.compose.digest_summary`), None for any other message.
    """

    notification_id: str
    recipient_name: str
    address: str
    rendered: RenderedMessage
    alert_id: str = ""
    occurrence: int = 0
    status: str = ""
    severity: str | None = None
    runbook_url: str | None = None
    links: Mapping[str, str] = field(default_factory=dict)
    thread: str | None = None
    mention: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    digest: Mapping[str, Any] | None = None
