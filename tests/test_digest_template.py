"""The digest template: several held-back alerts in one message, in every shipped language.

A digest is grouped (alerts sharing a group), throttled (the recipient hit their rate limit) or
quiet (sent when their quiet hours end). Contexts are built by hand after the render context
contract in notifier/templating.py, with the ``details`` the fatigue store writes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from catalogs import english_fragments

from notifier.i18n import Catalogs
from notifier.message import RenderedMessage
from notifier.settings import TemplateSettings
from notifier.templating import Renderer

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
LOCALES = ROOT / "locales"
LANGUAGES = ["en", "de", "es"]
REASONS = ["grouped", "throttled", "quiet"]
CHANNELS = ["email", "slack"]
BERLIN = "Europe/Berlin"
DUE_AT = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
MAX_SUBJECT = TemplateSettings().max_subject_chars

GROUP = {"network": "mainnet", "alertname": "ConsensusFinalityLag"}
SHARED = "network=mainnet, alertname=ConsensusFinalityLag"
COUNT = 14
ITEMS: list[dict[str, Any]] = [
    {
        "alert_id": "alert-41",
        "name": "ConsensusFinalityLag",
        "severity": "high",
        "status": "firing",
        "summary": "Finality lag above 4 epochs on mainnet",
        "labels": {"network": "mainnet", "instance": "node-3"},
    },
    {
        "alert_id": "alert-42",
        "name": "ConsensusFinalityLag",
        "severity": "warning",
        "status": "resolved",
        "summary": "Finality lag above 2 epochs on mainnet",
        "labels": {"network": "mainnet", "instance": "node-7"},
    },
    {
        "alert_id": "alert-43",
        "name": "ConsensusFinalityLag",
        "severity": "info",
        "status": "firing",
        "summary": "Finality lag above 1 epoch on mainnet",
        "labels": {"network": "mainnet", "instance": "node-9"},
    },
]
SUMMARIES = [item["summary"] for item in ITEMS]
HOSTILE = "{{ 7*7 }} <script>alert(1)</script> & co"

GREETING = {
    "en": "Hello Ada Lovelace,",
    "de": "Guten Tag Ada Lovelace,",
    "es": "Hola, Ada Lovelace:",
}
SUBJECT = {
    ("grouped", "en"): "[Group] 14 alerts: mainnet ConsensusFinalityLag",
    ("throttled", "en"): "[Digest] 14 alerts while you were being paged",
    ("quiet", "en"): "[Morning digest] 14 alerts during your quiet hours",
    ("grouped", "de"): "[Gruppe] 14 Alarme: mainnet ConsensusFinalityLag",
    ("throttled", "de"): "[Sammelmeldung] 14 weitere Alarme, während Sie bereits alarmiert wurden",
    ("quiet", "de"): "[Morgenübersicht] 14 Alarme während Ihrer Ruhezeit",
    ("grouped", "es"): "[Grupo] 14 alertas: mainnet ConsensusFinalityLag",
    ("throttled", "es"): "[Resumen] 14 alertas más mientras ya recibía avisos",
    ("quiet", "es"): "[Resumen matinal] 14 alertas durante sus horas de silencio",
}
# The one sentence telling a throttled reader that they are being rate limited.
RATE_LIMITED = {
    "en": "You are being rate limited",
    "de": "Ihre Benachrichtigungen werden derzeit gedrosselt",
    "es": "Se está limitando la frecuencia de sus notificaciones",
}
QUIET_HOURS = {
    "en": "While your quiet hours were on, 14 alerts came in.",
    "de": "Während Ihrer Ruhezeit sind 14 Alarme eingegangen.",
    "es": "Durante sus horas de silencio han llegado 14 alertas.",
}
MORE = {"en": "and 11 more alerts", "de": "und 11 weitere Alarme", "es": "y 11 alertas más"}
# The labels of ITEMS' severities (high, warning, info) and states (firing, resolved).
SEVERITIES = {
    "en": ("[High]", "[Warning]", "[Info]"),
    "de": ("[Hoch]", "[Warnung]", "[Info]"),
    "es": ("[Alta]", "[Advertencia]", "[Informativa]"),
}
STATES = {"en": ("FIRING", "RESOLVED"), "de": ("AKTIV", "BEHOBEN"), "es": ("ACTIVA", "RESUELTA")}
# Words only the English text has; none of them occurs in the event data used here.
ENGLISH_TELLS = ("Hello", "Please", " the ", "This is", " alerts", "digest", "Digest", "FIRING")


def details(
    reason: str,
    *,
    count: int = COUNT,
    items: list[dict[str, Any]] | None = None,
    group: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ``details`` of a digest; ``group`` defaults to GROUP for a grouped one."""
    if group is None and reason == "grouped":
        group = GROUP
    return {
        "reason": reason,
        "group": group,
        "count": count,
        "items": ITEMS if items is None else items,
        "due_at": DUE_AT,
    }


def make_context(reason: str, locale: str = "en", **changes: Any) -> dict[str, Any]:
    """A digest's render context: the usual notification context about its first alert."""
    first = (changes.get("items") or ITEMS)[0]
    return {
        "kind": "alert",
        "status": "digest",
        "step": None,
        "details": details(reason, **changes),
        "recipient": {"name": "Ada Lovelace", "locale": locale, "timezone": BERLIN},
        "tier": "responders",
        "event": {"id": "evt-1", "source": "prometheus/mainnet", "time": DUE_AT},
        "confidential": None,
        "links": {},
        "alert": {
            "id": first["alert_id"],
            "fingerprint": "fp-1",
            "alertname": first["name"],
            "severity": first["severity"],
            "risk": None,
            "labels": {"alertname": first["name"], **first["labels"]},
            "summary": first["summary"],
            "description": None,
            "runbook_url": None,
            "starts_at": DUE_AT,
            "ends_at": None,
            "source": "prometheus/mainnet",
        },
    }


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    """The shipped templates and catalogs."""
    settings = TemplateSettings(directory=TEMPLATES, locales_directory=LOCALES)
    return Renderer(settings, Catalogs.load(LOCALES))


def render(
    renderer: Renderer, context: dict[str, Any], locale: str = "en", channel: str = "email"
) -> RenderedMessage:
    """Render the digest on ``channel`` for a Berlin reader of ``locale``."""
    return renderer.render("digest", channel, locale=locale, timezone=BERLIN, context=context)


def everything(message: RenderedMessage) -> str:
    """Subject, text and (if any) HTML of ``message``."""
    return message.subject + message.text + (message.html or "")


# --- every reason, in every language, on email and Slack ---------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("locale", LANGUAGES)
@pytest.mark.parametrize("reason", REASONS)
def test_digest_renders_for_every_reason_language_and_channel(
    renderer: Renderer, reason: str, locale: str, channel: str
) -> None:
    """Subject and text say how many alerts, why they were held, and list them translated."""
    message = render(renderer, make_context(reason, locale), locale, channel)
    subject, text = message.subject, message.text
    assert message.language == locale
    assert subject == SUBJECT[(reason, locale)]
    assert len(subject) <= MAX_SUBJECT
    assert str(COUNT) in subject
    assert str(COUNT) in text
    assert GREETING[locale] in text
    for summary in SUMMARIES:
        assert summary in text
    for word in (*SEVERITIES[locale], *STATES[locale]):
        assert word in text, word
    assert MORE[locale] in text
    assert "None" not in everything(message)
    if reason == "grouped":
        assert "mainnet ConsensusFinalityLag" in subject
        # The shared labels once, in the intro; each alert adds only its own.
        assert text.count(SHARED) == 1
        assert text.count("network=mainnet") == 1
        assert "alert-41 · instance=node-3" in text
    else:
        assert SHARED not in text
        assert "alert-41 · instance=node-3, network=mainnet" in text
    if reason == "throttled":
        assert text.count(RATE_LIMITED[locale]) == 1
    else:
        assert RATE_LIMITED[locale] not in text
    if reason == "quiet":
        assert QUIET_HOURS[locale] in text
    else:
        assert QUIET_HOURS[locale] not in text
    if locale != "en":
        for tell in ENGLISH_TELLS:
            assert tell not in everything(message), tell
        for fragment in english_fragments(locale):
            assert fragment not in everything(message), fragment


@pytest.mark.parametrize("locale", LANGUAGES)
@pytest.mark.parametrize("reason", REASONS)
def test_email_html_says_what_the_text_says(renderer: Renderer, reason: str, locale: str) -> None:
    """The email's HTML carries the same facts as its text, in the reader's language."""
    message = render(renderer, make_context(reason, locale), locale)
    assert message.html is not None
    html = message.html
    assert f'<html lang="{locale}">' in html
    assert GREETING[locale] in html
    assert str(COUNT) in html
    for summary in SUMMARIES:
        assert summary in html
    for word in (*SEVERITIES[locale], *STATES[locale]):
        assert word in html, word
    assert MORE[locale] in html
    if reason == "grouped":
        # In the title, the heading and the intro; never repeated for each alert.
        assert html.count(SHARED) == html.count("network=mainnet") == 3
        assert "alert-41 · instance=node-3<" in html
    else:
        assert SHARED not in html
    assert html.count(RATE_LIMITED[locale]) == (1 if reason == "throttled" else 0)
    assert (QUIET_HOURS[locale] in html) is (reason == "quiet")


@pytest.mark.parametrize("reason", REASONS)
def test_slack_says_what_the_email_says(renderer: Renderer, reason: str) -> None:
    """Slack has no digest parts of its own: the email's subject and text, without the HTML."""
    email = render(renderer, make_context(reason, "de"), "de", "email")
    slack = render(renderer, make_context(reason, "de"), "de", "slack")
    assert slack.html is None
    assert (slack.subject, slack.text) == (email.subject, email.text)


# --- counts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "subject", "intro"),
    [
        (
            "en",
            "[Digest] 1 alert while you were being paged",
            "1 more alert came in while you were being paged.",
        ),
        (
            "de",
            "[Sammelmeldung] 1 weiterer Alarm, während Sie bereits alarmiert wurden",
            "1 weiterer Alarm ist eingegangen, während Sie bereits alarmiert wurden.",
        ),
        (
            "es",
            "[Resumen] 1 alerta más mientras ya recibía avisos",
            "Ha llegado 1 alerta más mientras ya recibía avisos.",
        ),
    ],
)
def test_a_digest_of_one_alert_is_singular(
    renderer: Renderer, locale: str, subject: str, intro: str
) -> None:
    """One alert reads in the singular and nothing is said about further alerts."""
    context = make_context("throttled", locale, count=1, items=ITEMS[:1])
    message = render(renderer, context, locale)
    assert message.subject == subject
    assert intro in message.text
    assert MORE[locale] not in everything(message)
    assert "…" not in everything(message)


@pytest.mark.parametrize("locale", LANGUAGES)
def test_and_more_only_when_the_digest_counts_more_than_it_lists(
    renderer: Renderer, locale: str
) -> None:
    """With every alert listed there is no "and N more"; one unlisted alert is singular."""
    listed = render(renderer, make_context("quiet", locale, count=len(ITEMS)), locale)
    assert "…" not in everything(listed)
    one_more = render(renderer, make_context("quiet", locale, count=len(ITEMS) + 1), locale)
    singular = {"en": "and 1 more alert", "de": "und 1 weiterer Alarm", "es": "y 1 alerta más"}
    for part in (one_more.text, one_more.html or ""):
        assert f"… {singular[locale]}" in part


# --- event data and optional values ------------------------------------------------------------


def test_html_escapes_event_data_and_text_prints_it_as_written(renderer: Renderer) -> None:
    """A summary, name or label value with markup is escaped in HTML and never evaluated."""
    hostile: dict[str, Any] = {
        **ITEMS[0],
        "name": "<b>Lag</b>",
        "summary": HOSTILE,
        "labels": {"instance": "<i>node-3</i>"},
    }
    context = make_context("grouped", items=[hostile], group={"network": "<img src=x>"})
    message = render(renderer, context)
    assert message.html is not None
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in message.html
    assert "<b>Lag</b>" not in message.html
    assert "&lt;b&gt;Lag&lt;/b&gt;" in message.html
    assert "<i>" not in message.html
    assert "<img" not in message.html
    assert "network=&lt;img src=x&gt;" in message.html
    assert HOSTILE in message.text
    assert "{{ 7*7 }}" in message.html
    assert "49" not in message.subject + message.text


def test_subject_stays_short_whatever_the_group(renderer: Renderer) -> None:
    """Long group label values are cut in the subject, which stays within the renderer's limit."""
    group = {"network": "m" * 150, "alertname": "A" * 150, "region": "eu-" * 50}
    for locale in LANGUAGES:
        context = make_context("grouped", locale, group=group, count=1234)
        message = render(renderer, context, locale)
        assert len(message.subject) <= MAX_SUBJECT
        assert "1234" in message.subject
        assert message.subject.endswith("…")
        # The body still names the whole group.
        assert "alertname=" + "A" * 150 in message.text


@pytest.mark.parametrize("locale", LANGUAGES)
def test_optional_values_are_guarded(renderer: Renderer, locale: str) -> None:
    """No group, an empty summary, name or labels, or an unknown status never print None."""
    bare: dict[str, Any] = {
        "alert_id": "alert-50",
        "name": "",
        "severity": "warning",
        "status": "resolved",
        "summary": "",
        "labels": {},
    }
    odd: dict[str, Any] = {**bare, "alert_id": "alert-51", "status": "pending", "severity": "x"}
    for reason in (*REASONS, "other"):
        group: dict[str, str] | None = {} if reason == "grouped" else None
        context = make_context(reason, locale, items=[bare, odd], group=group, count=2)
        for channel in CHANNELS:
            message = render(renderer, context, locale, channel)
            assert "None" not in everything(message)
            assert "alert-50" in message.text
            assert "pending" in message.text  # an unknown state is shown as it arrived
            assert "2" in message.subject


@pytest.mark.parametrize(
    ("locale", "subject"),
    [("en", "[Group] 3 alerts"), ("de", "[Gruppe] 3 Alarme"), ("es", "[Grupo] 3 alertas")],
)
def test_grouped_digest_without_group_labels(renderer: Renderer, locale: str, subject: str) -> None:
    """A grouped digest without the group's labels says so without naming any."""
    context = make_context("grouped", locale, group={}, count=3)
    message = render(renderer, context, locale)
    assert message.subject == subject
    assert SHARED not in message.text
    assert "3" in message.text
    assert "None" not in everything(message)
