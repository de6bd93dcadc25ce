"""Slack Block Kit for one notification, built from the strings a template rendered.

Templates never emit Slack's wire JSON: they render a subject and a text like for every other
channel, and this module lays them out as blocks (pure functions, no I/O):

* a ``header`` with the subject (plain text, cut to Slack's 150 characters);
* a ``context`` with the severity (a policy change's risk) and the status;
* ``section`` blocks with the text, escaped for mrkdwn and split at Slack's 3000 characters;
* a ``context`` mentioning the person the message is about (who acknowledged), if known;
* an ``actions`` block: Acknowledge and Resolve buttons while the alert is open (only Resolve
  once acknowledged), and a Runbook link button for an http(s) runbook URL.

The framing words (headings, statuses, button texts) are the message's ``labels``, translated
from the approved ``labels.j2`` for the reader (English when one is missing).

Event data reaches Slack only escaped (``&``, ``<``, ``>``) and in ``verbatim`` text objects, so
an event can never form ``<!channel>``, ``<@U…>`` mentions or ``<url|label>`` links; the only
mention is the one this module writes from a validated user id.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from notifier.message import OutgoingMessage

__all__ = [
    "ACKNOWLEDGE_ACTION",
    "MAX_BLOCKS",
    "MAX_HEADER_CHARS",
    "MAX_SECTION_CHARS",
    "RESOLVE_ACTION",
    "RUNBOOK_ACTION",
    "action_value",
    "blocks",
    "escape",
    "fallback_text",
    "split_text",
    "unescape",
]

Block = dict[str, Any]

ACKNOWLEDGE_ACTION = "notifier.acknowledge"
RESOLVE_ACTION = "notifier.resolve"
RUNBOOK_ACTION = "notifier.runbook"

MAX_BLOCKS = 50
MAX_HEADER_CHARS = 150
MAX_SECTION_CHARS = 3000
MAX_CONTEXT_VALUE_CHARS = 200
MAX_FALLBACK_CHARS = 3000
MAX_BUTTON_VALUE_CHARS = 2000
MAX_BUTTON_URL_CHARS = 3000
MAX_BUTTON_TEXT_CHARS = 75

# The framing words when a message carries no translation of them (notifier.compose asks the
# approved labels.j2 for the reader's).
_ENGLISH = {
    "severity": "Severity",
    "status": "Status",
    "acknowledge": "Acknowledge",
    "resolve": "Resolve",
    "runbook": "Runbook",
}

_ELLIPSIS = "…"
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_OPEN = frozenset({"firing", "escalated"})
_ACKNOWLEDGED = "acknowledged"
# An entity escape() writes; a cut must never fall inside one.
_ENTITY = re.compile(r"&(?:amp|lt|gt);")
_ENTITY_MAX = len("&amp;")


def escape(text: str) -> str:
    """Escape ``text`` for Slack mrkdwn: ``&``, ``<`` and ``>`` become entities.

    With these three escaped, no control sequence (``<!channel>``, ``<@U…>``,
    ``<https://…|label>``) can form; the rest of the text shows as written.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """The text :func:`escape` was given (for showing Slack text elsewhere)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def fallback_text(message: OutgoingMessage) -> str:
    """The message's ``text``: what notifications and clients without blocks show.

    The subject on one line, escaped, and cut to a sane length.
    """
    return _cut(escape(_one_line(message.rendered.subject)), MAX_FALLBACK_CHARS)


def blocks(message: OutgoingMessage) -> list[Block]:
    """Lay ``message`` out as Block Kit blocks (see the module docstring for the layout).

    Stays within Slack's limits: at most 50 blocks, 3000 characters per section, 150 per
    header; a text too long for the blocks left is cut, ending in ``…``.
    """
    head = [b for b in (_header(message), _facts(message)) if b is not None]
    tail = [b for b in (_mention(message), _actions(message)) if b is not None]
    sections = _sections(escape(message.rendered.text), MAX_BLOCKS - len(head) - len(tail))
    return [*head, *sections, *tail]


def action_value(message: OutgoingMessage) -> str | None:
    """The value the Acknowledge and Resolve buttons carry: ``"<alert_id>:<occurrence>"``.

    ``None`` when the message names no alert, or the value would exceed Slack's limit.
    """
    if not message.alert_id:
        return None
    value = f"{message.alert_id}:{message.occurrence}"
    return value if len(value) <= MAX_BUTTON_VALUE_CHARS else None


def split_text(text: str, limit: int = MAX_SECTION_CHARS) -> list[str]:
    """Split escaped ``text`` into non-blank chunks of at most ``limit`` characters.

    Prefers to split at a line break, then at a space, and never inside an entity.
    """
    if limit < _ENTITY_MAX:
        raise ValueError(f"limit must be at least {_ENTITY_MAX}")
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = _split_point(rest, limit)
        chunks.append(rest[:cut])
        rest = rest[cut:]
        if rest[:1] in ("\n", " "):
            rest = rest[1:]  # the separator we split at belongs to neither chunk
    chunks.append(rest)
    return [chunk for chunk in chunks if chunk.strip()]


def _header(message: OutgoingMessage) -> Block | None:
    subject = _cut(_one_line(message.rendered.subject), MAX_HEADER_CHARS)
    if not subject:
        return None
    return {"type": "header", "text": {"type": "plain_text", "text": subject, "emoji": True}}


def _facts(message: OutgoingMessage) -> Block | None:
    elements = []
    if message.severity:
        heading, value = _value(_word(message, "severity")), _word(message, "severity_value")
        elements.append(_mrkdwn(f"*{heading}:* {_value(value)}"))
    if message.status:
        heading, value = _value(_word(message, "status")), _word(message, "status_value")
        elements.append(_mrkdwn(f"*{heading}:* {_value(value)}"))
    return {"type": "context", "elements": elements} if elements else None


def _sections(escaped: str, room: int) -> list[Block]:
    chunks = split_text(escaped)
    if len(chunks) > room:
        chunks = chunks[: max(room, 0)]
        if chunks:
            chunks[-1] = _cut(chunks[-1] + _ELLIPSIS, MAX_SECTION_CHARS)
    return [{"type": "section", "text": _mrkdwn(chunk)} for chunk in chunks]


def _mention(message: OutgoingMessage) -> Block | None:
    if message.mention is None or not _USER_ID.fullmatch(message.mention):
        return None
    return {"type": "context", "elements": [_mrkdwn(f"<@{message.mention}>")]}


def _actions(message: OutgoingMessage) -> Block | None:
    buttons: list[Block] = []
    value = action_value(message)
    if value is not None and message.status in _OPEN:
        label = _button_text(message, "acknowledge")
        buttons.append(_button(label, ACKNOWLEDGE_ACTION, value=value, style="primary"))
    if value is not None and (message.status in _OPEN or message.status == _ACKNOWLEDGED):
        label = _button_text(message, "resolve")
        buttons.append(_button(label, RESOLVE_ACTION, value=value))
    if message.runbook_url is not None and _is_web_url(message.runbook_url):
        label = _button_text(message, "runbook")
        buttons.append(_button(label, RUNBOOK_ACTION, url=message.runbook_url))
    return {"type": "actions", "elements": buttons} if buttons else None


def _button(
    label: str,
    action_id: str,
    *,
    value: str | None = None,
    url: str | None = None,
    style: str | None = None,
) -> Block:
    button: Block = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
    }
    if value is not None:
        button["value"] = value
    if url is not None:
        button["url"] = url
    if style is not None:
        button["style"] = style
    return button


def _word(message: OutgoingMessage, key: str) -> str:
    """The framing word ``key`` in the reader's language (``labels``), else in English."""
    text = message.labels.get(key) or _ENGLISH.get(key)
    if text is None:  # a value: the status or severity as the event gave it
        text = message.status if key == "status_value" else message.severity or ""
    return text


def _button_text(message: OutgoingMessage, key: str) -> str:
    # plain_text: shown as written, so not escaped; Slack allows 75 characters.
    return _cut(_one_line(_word(message, key)), MAX_BUTTON_TEXT_CHARS)


def _mrkdwn(text: str) -> Block:
    # verbatim: Slack must not turn bare URLs, #channel names or @mentions into links.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _value(text: str) -> str:
    return _cut(escape(_one_line(text)), MAX_CONTEXT_VALUE_CHARS)


def _is_web_url(url: str) -> bool:
    """An absolute http(s) URL with a host, no whitespace or control characters, that fits."""
    if len(url) > MAX_BUTTON_URL_CHARS or any(c.isspace() or ord(c) < 0x20 for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _split_point(text: str, limit: int) -> int:
    """Where to end a chunk of at most ``limit`` characters of ``text``."""
    for separator in ("\n", " "):
        at = text.rfind(separator, 0, limit + 1)
        if at > limit // 2:
            return at
    return _entity_safe(text, limit)


def _entity_safe(text: str, end: int) -> int:
    """``end`` moved back to before an entity it would cut (``&am|p;``)."""
    start = max(end - _ENTITY_MAX + 1, 0)
    for match in _ENTITY.finditer(text, start, end + _ENTITY_MAX):
        if match.start() < end < match.end():
            return match.start()
    return end


def _cut(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start ending in ``…``."""
    if len(text) <= limit:
        return text
    return text[: _entity_safe(text, limit - 1)] + _ELLIPSIS


def _one_line(text: str) -> str:
    return " ".join(text.split())
