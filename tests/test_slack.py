"""SlackChannel and its Block Kit layout against the Slack stand-in, over real HTTP.

No part of slack-sdk is mocked: the channel's AsyncWebClient talks to
:class:`~notifier.slack_standin.SlackStandIn` on a loopback port. Time is a FakeClock shared
by the channel and the stand-in, so pacing is measured without sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from notifier.channels.slack import AddressPacer, SlackChannel, classify, parse_thread
from notifier.errors import ConfigError, PermanentDeliveryError, Reason, TransientDeliveryError
from notifier.message import OutgoingMessage, RenderedMessage
from notifier.settings import SlackSettings
from notifier.slack_blocks import (
    MAX_BLOCKS,
    MAX_SECTION_CHARS,
    blocks,
    escape,
    fallback_text,
    split_text,
)
from notifier.slack_standin import SlackStandIn
from notifier.testing import FakeClock

TOKEN = "xoxb-test-0000-secret"
START = datetime(2024, 5, 17, 9, 30, tzinfo=UTC)
ALERTS = "C0ALERTS"
RUNBOOK = "https://runbooks.example.org/validator-down"


def alert(
    *,
    address: str = ALERTS,
    status: str = "firing",
    subject: str = "Node down: validator-7",
    text: str = "Node validator-7 stopped answering at 09:30 UTC.",
    severity: str | None = "critical",
    runbook_url: str | None = RUNBOOK,
    thread: str | None = None,
    mention: str | None = None,
    notification_id: str = "ntf-0001",
    labels: dict[str, str] | None = None,
) -> OutgoingMessage:
    return OutgoingMessage(
        notification_id=notification_id,
        recipient_name="Ops",
        address=address,
        rendered=RenderedMessage(
            subject=subject, text=text, html=None, language="en", template_hash="sha256:abc"
        ),
        alert_id="alr-42",
        occurrence=3,
        status=status,
        severity=severity,
        runbook_url=runbook_url,
        thread=thread,
        mention=mention,
        labels=labels or {},
    )


def settings_for(slack: SlackStandIn, **overrides: Any) -> SlackSettings:
    values: dict[str, Any] = {
        "enabled": True,
        "base_url": slack.base_url,
        "bot_token": SecretStr(TOKEN),
        "timeout_seconds": 2.0,
        "pace_seconds": 1.0,
    }
    values.update(overrides)
    return SlackSettings(**values)


def action_ids(layout: list[dict[str, Any]] | None) -> list[str]:
    return [
        element["action_id"]
        for block in layout or []
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def mrkdwn_texts(layout: list[dict[str, Any]] | None) -> list[str]:
    texts = []
    for block in layout or []:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
        elif block["type"] == "context":
            texts.extend(element["text"] for element in block["elements"])
    return texts


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def slack(clock: FakeClock) -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(token=TOKEN, clock=clock) as standin:
        yield standin


@pytest.fixture
async def channel(slack: SlackStandIn, clock: FakeClock) -> AsyncIterator[SlackChannel]:
    ch = SlackChannel(settings_for(slack), clock=clock)
    yield ch
    await ch.close()


# --- layout ----------------------------------------------------------------------------------


async def test_firing_alert_posts_exact_blocks(channel: SlackChannel, slack: SlackStandIn) -> None:
    """A firing alert is one chat.postMessage with header, severity and status, the text,
    Acknowledge/Resolve buttons carrying "<alert>:<occurrence>" and a Runbook link button;
    link unfurling is off and the provider id is "<channel>:<ts>"."""
    provider_id = await channel.send(alert())

    [call] = slack.calls
    assert call.method == "chat.postMessage" and call.ok
    assert provider_id == f"{ALERTS}:{call.ts}"
    assert call.text == "Node down: validator-7"
    assert call.arguments["unfurl_links"] is False and call.arguments["unfurl_media"] is False
    assert call.blocks == [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": "Node down: validator-7", "emoji": True},
        },
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": "*Severity:* critical", "verbatim": True},
                {"type": "mrkdwn", "text": "*Status:* firing", "verbatim": True},
            ],
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "Node validator-7 stopped answering at 09:30 UTC.",
                "verbatim": True,
            },
        },
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "notifier.acknowledge",
                    "text": {"type": "plain_text", "text": "Acknowledge"},
                    "value": "alr-42:3",
                    "style": "primary",
                },
                {
                    "type": "button",
                    "action_id": "notifier.resolve",
                    "text": {"type": "plain_text", "text": "Resolve"},
                    "value": "alr-42:3",
                },
                {
                    "type": "button",
                    "action_id": "notifier.runbook",
                    "text": {"type": "plain_text", "text": "Runbook"},
                    "url": RUNBOOK,
                },
            ],
        },
    ]


def button_texts(layout: list[dict[str, Any]]) -> list[str]:
    return [e["text"]["text"] for b in layout if b["type"] == "actions" for e in b["elements"]]


def test_framing_words_come_from_the_labels() -> None:
    """Headings, values and button texts are the message's labels (the reader's language):
    mrkdwn ones escaped, button texts (plain text) as written but cut to Slack's 75."""
    labels = {
        "severity": "Schweregrad",
        "severity_value": "Kritisch",
        "status": "Status",
        "status_value": "Aktiv <&>",
        "acknowledge": "Quittieren & übernehmen",
        "resolve": "Beheben",
        "runbook": "R" * 80,
    }
    layout = blocks(alert(labels=labels))
    assert mrkdwn_texts(layout)[:2] == ["*Schweregrad:* Kritisch", "*Status:* Aktiv &lt;&amp;&gt;"]
    assert button_texts(layout) == ["Quittieren & übernehmen", "Beheben", "R" * 74 + "…"]


def test_missing_labels_fall_back_to_english_and_the_raw_values() -> None:
    """A message without labels (or with some missing) still reads: English headings and
    buttons, the status and severity as the event gave them."""
    layout = blocks(alert(status="escalated", labels={"resolve": "Beheben"}))
    assert mrkdwn_texts(layout)[:2] == ["*Severity:* critical", "*Status:* escalated"]
    assert button_texts(layout) == ["Acknowledge", "Beheben", "Runbook"]


def test_escape_neutralises_slack_control_sequences() -> None:
    """escape() turns &, < and > into entities, & first so entities are not double-read."""
    assert escape("a & b <!channel> <@U1> x>y") == ("a &amp; b &lt;!channel&gt; &lt;@U1&gt; x&gt;y")
    assert escape("&lt;") == "&amp;lt;"


async def test_event_text_arrives_escaped(channel: SlackChannel, slack: SlackStandIn) -> None:
    """Mentions and links written in event data (<!channel>, <@U123>, <http://evil|click>, &)
    reach Slack escaped, in verbatim text: no mention or link can form."""
    hostile = "Ping <!channel> and <@U123>: <http://evil|click> & run"
    await channel.send(alert(subject=f"Down <!here> & {hostile}", text=hostile, severity="<!x>"))

    [call] = slack.calls
    escaped = "Ping &lt;!channel&gt; and &lt;@U123&gt;: &lt;http://evil|click&gt; &amp; run"
    assert call.text == f"Down &lt;!here&gt; &amp; {escaped}"
    texts = mrkdwn_texts(call.blocks)
    assert escaped in texts
    assert "*Severity:* &lt;!x&gt;" in texts
    for text in [*texts, call.text or ""]:
        assert "<" not in text and ">" not in text
    assert all(
        b.get("text", {}).get("verbatim") for b in call.blocks or [] if b["type"] == "section"
    )


@pytest.mark.parametrize(
    "runbook",
    [
        "javascript:alert(1)",
        "ftp://files.example.org/runbook",
        "file:///etc/passwd",
        "data:text/html,<b>x</b>",
        "http:///no-host",
        "/relative/runbook",
        "https://example.org/run book",
    ],
)
async def test_non_http_runbook_gets_no_button(
    channel: SlackChannel, slack: SlackStandIn, runbook: str
) -> None:
    """A runbook URL that is not an absolute http(s) URL gets no button; the rest stays."""
    await channel.send(alert(runbook_url=runbook))

    [call] = slack.calls
    assert action_ids(call.blocks) == ["notifier.acknowledge", "notifier.resolve"]
    assert runbook not in str(call.blocks)


async def test_long_text_is_split_into_sections_within_limits(
    channel: SlackChannel, slack: SlackStandIn
) -> None:
    """A 10,000-character text becomes several sections of at most 3000 characters, split at
    line breaks, which Slack (the stand-in checks the limits) accepts; nothing is lost."""
    lines = [f"line {i:04d} " + "x" * 60 for i in range(140)]
    await channel.send(alert(text="\n".join(lines)))

    [call] = slack.calls
    assert call.ok
    sections = [b["text"]["text"] for b in call.blocks or [] if b["type"] == "section"]
    assert len(sections) == 4
    assert all(len(s) <= MAX_SECTION_CHARS for s in sections)
    assert "\n".join(sections) == "\n".join(lines)


async def test_huge_text_stays_within_block_limit(
    channel: SlackChannel, slack: SlackStandIn
) -> None:
    """A text larger than 50 sections can hold is cut, ending in "…", and still accepted."""
    await channel.send(alert(text="word " * 40_000, mention="U04MEILIN"))

    [call] = slack.calls
    assert call.ok
    layout = call.blocks or []
    assert len(layout) == MAX_BLOCKS
    sections = [b["text"]["text"] for b in layout if b["type"] == "section"]
    assert sections[-1].endswith("…") and len(sections[-1]) <= MAX_SECTION_CHARS
    assert [b["type"] for b in layout[-2:]] == ["context", "actions"]  # mention, buttons kept


def test_split_never_cuts_an_entity() -> None:
    """Text made only of escaped characters is split between entities, never inside one."""
    escaped = escape("&" * 2000 + "<" * 2000)
    chunks = split_text(escaped, limit=MAX_SECTION_CHARS)
    assert "".join(chunks) == escaped
    for chunk in chunks:
        assert len(chunk) <= MAX_SECTION_CHARS
        assert chunk.replace("&amp;", "").replace("&lt;", "") == ""


def test_mention_only_for_slack_user_ids() -> None:
    """The mention context appears for a Slack user id, and never for anything else."""
    assert {"type": "mrkdwn", "text": "<@U04MEILIN>", "verbatim": True} in [
        element
        for block in blocks(alert(mention="U04MEILIN"))
        if block["type"] == "context"
        for element in block["elements"]
    ]
    for bad in ("!channel", "U1>|<!here", "C0ALERTS", "u04meilin", ""):
        assert "<@" not in str(blocks(alert(mention=bad)))


def test_header_is_cut_to_slack_limit() -> None:
    """A subject longer than 150 characters is cut to 150 ending in "…"; the fallback text
    keeps it whole."""
    subject = "S" * 400
    header = blocks(alert(subject=subject))[0]
    assert header["type"] == "header"
    assert header["text"]["text"] == "S" * 149 + "…"
    assert fallback_text(alert(subject=subject)) == subject


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("firing", ["notifier.acknowledge", "notifier.resolve"]),
        ("escalated", ["notifier.acknowledge", "notifier.resolve"]),
        ("acknowledged", ["notifier.resolve"]),
        ("resolved", []),
        ("reminder", []),
    ],
)
def test_buttons_follow_status(status: str, expected: list[str]) -> None:
    """Acknowledge and Resolve while open, only Resolve once acknowledged, none otherwise."""
    assert action_ids(blocks(alert(status=status, runbook_url=None))) == expected


# --- threads -----------------------------------------------------------------------------------


async def test_thread_updates_reply_and_rewrite_the_first_message(
    channel: SlackChannel, slack: SlackStandIn
) -> None:
    """Later messages about an alert are replies in the first message's thread, and the first
    message is updated to the new state: no Acknowledge after acknowledgment (with a mention of
    who acknowledged), no action buttons after resolution."""
    parent_id = await channel.send(alert(runbook_url=None))
    parent_ts = parent_id.split(":")[1]

    ack_id = await channel.send(
        alert(status="acknowledged", thread=parent_id, mention="U04MEILIN", runbook_url=None)
    )
    _, reply, update = slack.calls
    assert reply.method == "chat.postMessage" and reply.thread_ts == parent_ts
    assert ack_id == f"{ALERTS}:{reply.ts}" and ack_id != parent_id
    assert update.method == "chat.update" and update.ts == parent_ts and update.ok
    parent = slack.messages(ALERTS)[0]
    assert parent.ts == parent_ts and parent.updates == 1
    assert action_ids(parent.blocks) == ["notifier.resolve"]
    assert "<@U04MEILIN>" in mrkdwn_texts(parent.blocks)

    await channel.send(alert(status="resolved", thread=parent_id, runbook_url=None))
    parent = slack.messages(ALERTS)[0]
    assert parent.updates == 2
    assert action_ids(parent.blocks) == []
    assert [m.thread_ts for m in slack.messages(ALERTS)] == [None, parent_ts, parent_ts]


async def test_failing_update_still_returns_the_delivered_reply(
    channel: SlackChannel, slack: SlackStandIn
) -> None:
    """When chat.update fails after the reply was posted, the send succeeds with the reply's
    id (a retry would post the reply twice); the first message keeps its old state."""
    parent_id = await channel.send(alert())
    slack.fail_next(1, error="internal_error", method="chat.update")

    reply_id = await channel.send(alert(status="acknowledged", thread=parent_id))

    reply = slack.calls[1]
    assert reply_id == f"{ALERTS}:{reply.ts}"
    assert slack.calls[2].method == "chat.update" and not slack.calls[2].ok
    assert slack.messages(ALERTS)[0].updates == 0


async def test_lost_thread_posts_a_new_message(channel: SlackChannel, slack: SlackStandIn) -> None:
    """A thread whose first message is gone (thread_not_found) does not lose the update: it
    is posted as a new message; a malformed thread id is treated the same way."""
    gone = await channel.send(alert(status="acknowledged", thread=f"{ALERTS}:1700000000.000001"))
    malformed = await channel.send(alert(status="acknowledged", thread="not-a-thread"))

    posted = [c for c in slack.calls if c.ok]
    assert [c.thread_ts for c in posted] == [None, None]
    assert {gone, malformed} == {f"{ALERTS}:{c.ts}" for c in posted}


async def test_direct_message_id_is_the_dm_channel(
    channel: SlackChannel, slack: SlackStandIn
) -> None:
    """A message to a user id lands in the DM, and the provider id names the channel Slack
    answered (D…), so later replies thread there."""
    provider_id = await channel.send(alert(address="U04MEILIN"))
    assert provider_id.startswith("DU04MEILIN:")
    assert parse_thread(provider_id) == tuple(provider_id.split(":"))

    await channel.send(alert(address="U04MEILIN", status="acknowledged", thread=provider_id))
    assert [m.thread_ts for m in slack.messages("U04MEILIN")][1] == provider_id.split(":")[1]


# --- pacing ------------------------------------------------------------------------------------


async def test_messages_to_one_channel_are_paced(
    channel: SlackChannel, slack: SlackStandIn, clock: FakeClock
) -> None:
    """Three messages to one channel, sent at once with pace 1 s, go out in order at least
    1 s apart: 2 s of (fake) waiting in all."""
    texts = ["first", "second", "third"]
    await asyncio.gather(*(channel.send(alert(text=t)) for t in texts))

    assert sum(clock.sleeps) >= 2.0
    calls = slack.calls
    assert [mrkdwn_texts(c.blocks)[-1] for c in calls] == texts
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(calls)]
    assert all(gap >= 1.0 for gap in gaps)


async def test_different_channels_are_not_paced_together(
    channel: SlackChannel, slack: SlackStandIn, clock: FakeClock
) -> None:
    """Messages to two different channels do not wait for each other."""
    await asyncio.gather(channel.send(alert()), channel.send(alert(address="C0OTHER")))
    assert clock.sleeps == []
    assert len(slack.calls) == 2


async def test_pacer_forgets_idle_addresses(clock: FakeClock) -> None:
    """Per-address state is dropped once an address has been idle for over a minute."""
    pacer = AddressPacer(clock, 1.0)
    for i in range(100):
        async with pacer.turn(f"C{i:04d}"):
            pass
    assert len(pacer) == 100
    clock.advance(61)
    async with pacer.turn("C9999"):
        pass
    assert len(pacer) == 1


# --- errors ------------------------------------------------------------------------------------


async def test_rate_limit_is_transient_with_retry_after(
    channel: SlackChannel, slack: SlackStandIn
) -> None:
    """HTTP 429 with Retry-After: 3 is a transient rate_limited error carrying retry_after 3."""
    slack.fail_next(1, status=429, retry_after=3)
    with pytest.raises(TransientDeliveryError) as caught:
        await channel.send(alert())
    assert caught.value.reason is Reason.RATE_LIMITED
    assert caught.value.retry_after == 3.0
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("error", "reason", "hint"),
    [
        ("channel_not_found", Reason.CLIENT, "directory"),
        ("not_in_channel", Reason.CLIENT, "invite"),
        ("invalid_blocks", Reason.CLIENT, "template"),
        ("invalid_auth", Reason.AUTH, "NOTIFIER_SLACK__BOT_TOKEN"),
        ("token_revoked", Reason.AUTH, "NOTIFIER_SLACK__BOT_TOKEN"),
        ("some_new_error", Reason.CLIENT, "some_new_error"),
    ],
)
async def test_slack_errors_are_permanent(
    channel: SlackChannel, slack: SlackStandIn, error: str, reason: Reason, hint: str
) -> None:
    """Slack's refusals (unknown channel, not a member, bad token...) are permanent, with a
    reason and a message saying what to check, never the token."""
    slack.fail_next(1, error=error)
    with pytest.raises(PermanentDeliveryError) as caught:
        await channel.send(alert())
    assert caught.value.reason is reason
    assert hint in str(caught.value)
    assert TOKEN not in str(caught.value)


async def test_wrong_token_is_permanent_auth(slack: SlackStandIn, clock: FakeClock) -> None:
    """A token Slack does not know is refused as invalid_auth: permanent, reason auth."""
    ch = SlackChannel(settings_for(slack, bot_token=SecretStr("xoxb-wrong")), clock=clock)
    try:
        with pytest.raises(PermanentDeliveryError) as caught:
            await ch.send(alert())
    finally:
        await ch.close()
    assert caught.value.reason is Reason.AUTH
    assert "xoxb-wrong" not in str(caught.value)


@pytest.mark.parametrize(("status", "error"), [(500, None), (503, None), (200, "fatal_error")])
async def test_server_errors_are_transient(
    channel: SlackChannel, slack: SlackStandIn, status: int, error: str | None
) -> None:
    """Slack's 5xx answers and server-side error codes are transient, reason server."""
    slack.fail_next(1, status=status, error=error)
    with pytest.raises(TransientDeliveryError) as caught:
        await channel.send(alert())
    assert caught.value.reason is Reason.SERVER


async def test_unreachable_slack_is_transient(slack: SlackStandIn, clock: FakeClock) -> None:
    """A refused connection (the stand-in stopped) is transient, reason server."""
    ch = SlackChannel(settings_for(slack), clock=clock)
    await slack.stop()
    try:
        with pytest.raises(TransientDeliveryError) as caught:
            await ch.send(alert())
    finally:
        await ch.close()
    assert caught.value.reason is Reason.SERVER
    assert "NOTIFIER_SLACK__BASE_URL" in str(caught.value)


async def test_silent_server_is_a_transient_timeout(clock: FakeClock) -> None:
    """A server that accepts the connection but never answers is a transient timeout."""

    writers: list[asyncio.StreamWriter] = []
    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()  # until the client gives up and closes
        done.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = SlackSettings(
        base_url=f"http://127.0.0.1:{port}/api/", bot_token=SecretStr(TOKEN), timeout_seconds=0.2
    )
    ch = SlackChannel(settings, clock=clock)
    try:
        with pytest.raises(TransientDeliveryError) as caught:
            await ch.send(alert())
    finally:
        await ch.close()
        async with asyncio.timeout(2):
            await done.wait()
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()
    assert caught.value.reason is Reason.TIMEOUT


def test_classify_transport_errors() -> None:
    """Timeouts map to reason timeout, socket errors to server; both transient."""
    timeout = classify(TimeoutError())
    assert isinstance(timeout, TransientDeliveryError) and timeout.reason is Reason.TIMEOUT
    refused = classify(ConnectionRefusedError())
    assert isinstance(refused, TransientDeliveryError) and refused.reason is Reason.SERVER


async def test_bad_address_is_refused_without_a_call(
    channel: SlackChannel, slack: SlackStandIn
) -> None:
    """An address that is no Slack channel or user id is a permanent client error, and
    nothing is sent."""
    with pytest.raises(PermanentDeliveryError) as caught:
        await channel.send(alert(address="#alerts"))
    assert caught.value.reason is Reason.CLIENT
    assert slack.calls == []


# --- configuration and lifecycle ---------------------------------------------------------------


@pytest.mark.parametrize("token", [None, SecretStr(""), SecretStr("  ")])
def test_missing_bot_token_is_a_config_error(token: SecretStr | None) -> None:
    """Without a bot token the channel refuses to start, naming NOTIFIER_SLACK__BOT_TOKEN."""
    with pytest.raises(ConfigError, match="NOTIFIER_SLACK__BOT_TOKEN"):
        SlackChannel(SlackSettings(enabled=True, bot_token=token))


async def test_close_is_idempotent_and_stops_sends(slack: SlackStandIn, clock: FakeClock) -> None:
    """close() can be called twice; a send after it is a transient error, and nothing is
    sent."""
    ch = SlackChannel(settings_for(slack), clock=clock)
    await ch.send(alert())
    await ch.close()
    await ch.close()
    with pytest.raises(TransientDeliveryError):
        await ch.send(alert())
    assert len(slack.calls) == 1


async def test_standin_checks_token_and_records_calls(slack: SlackStandIn) -> None:
    """The stand-in refuses a missing bot token, takes form bodies (blocks as a JSON string)
    as well as JSON, and records every call."""
    url = f"{slack.base_url}chat.postMessage"
    layout = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
    async with httpx.AsyncClient() as client:
        refused = await client.post(url, json={"channel": ALERTS, "text": "hi"})
        form = await client.post(
            url,
            data={"channel": ALERTS, "text": "hi", "blocks": json.dumps(layout)},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert refused.json() == {"ok": False, "error": "not_authed"}
    assert form.json()["ok"] is True and form.json()["channel"] == ALERTS
    assert [c.error for c in slack.calls] == ["not_authed", None]
    assert slack.messages(ALERTS)[0].blocks == layout
    assert slack.base_url.endswith("/api/")
