"""Follow-up messages: acknowledged and escalated alerts, reminders, status updates, receipts.

Every context here is built by hand after the render context contract in notifier/templating.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from catalogs import english_fragments

from notifier.i18n import Catalogs, formatter
from notifier.message import RenderedMessage
from notifier.settings import TemplateSettings
from notifier.templating import Renderer

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
LOCALES = ROOT / "locales"
LANGUAGES = ["en", "de", "es"]
BERLIN = "Europe/Berlin"

T0 = datetime(2026, 11, 20, 8, 2, tzinfo=UTC)
ACKNOWLEDGED_AT = T0 + timedelta(minutes=5)  # 09:07 in Berlin
DEADLINE = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 13:00 in Berlin, 21:00 in Tokyo
OPEN_FOR = timedelta(hours=2, minutes=3)
ALERT_ID = "alert-42"
ACK = "https://n.example/ack/TOKEN"
CONFIRM = "https://n.example/confirm/TOKEN"
SUMMARY = "Finality lag above 4 epochs on mainnet"
TITLE = "Mandatory client upgrade"
HOSTILE = "{{ 7*7 }} <script>alert(1)</script> & co"

# (template, status, kind, step): every follow-up the engine sends, plus the notice that
# asks for a receipt.
CASES = [
    ("alert", "acknowledged", "alert", None),
    ("alert", "escalated", "alert", 2),
    ("alert", "resolved", "alert", None),
    ("reminder", "ack-reminder", "alert", 1),
    ("reminder", "ack-escalated", "alert", None),
    ("reminder", "update-due", "alert", 3),
    ("reminder", "unreachable", "alert", None),
    ("status-update", "status-update", "alert", 2),
    ("receipt", "receipt-reminder", "policy", 1),
    ("receipt", "receipt-overdue", "policy", None),
    ("policy-change", "notice", "policy", None),
]
IDS = [status for _template, status, _kind, _step in CASES]
# Words that only English text has; none of them occurs in the event data used here.
ENGLISH_TELLS = ("Hello", "Please", " the ", "This is", "Severity", "Open for")
GREETING = {
    "en": "Hello Ada Lovelace,",
    "de": "Guten Tag Ada Lovelace,",
    "es": "Hola, Ada Lovelace:",
}


def details_for(status: str) -> dict[str, Any]:
    """The ``details`` the engine builds for ``status``, with every optional field filled."""
    every: dict[str, dict[str, Any]] = {
        "acknowledged": {"by": "Grace Hopper", "at": ACKNOWLEDGED_AT, "note": "Rolling back v5.3"},
        "resolved": {"by": "Grace Hopper", "at": T0 + timedelta(minutes=59), "note": "Fixed"},
        "ack-reminder": {
            "acknowledged_at": ACKNOWLEDGED_AT,
            "open_for": OPEN_FOR,
            "reminders_left": 5,
        },
        "ack-escalated": {
            "by": "Grace Hopper",
            "acknowledged_at": ACKNOWLEDGED_AT,
            "open_for": OPEN_FOR,
        },
        "update-due": {
            "state": "acknowledged",
            "by": "Grace Hopper",
            "open_for": OPEN_FOR,
            "every": timedelta(minutes=30),
            "last_update_at": T0 + timedelta(minutes=45),
        },
        "status-update": {
            "state": "acknowledged",
            "by": "Grace Hopper",
            "open_for": OPEN_FOR,
            "update": "v5.1.4 deployed on 40% of nodes",
            "update_by": "Linus Pauling",
            "update_at": T0 + timedelta(minutes=95),
        },
        "receipt-reminder": {"deadline": DEADLINE},
        "unreachable": {"person": "Grace Hopper", "channel": "email", "reason": "timeout"},
        "receipt-overdue": {
            "deadline": DEADLINE,
            "pending": [
                {"name": "Bob Kahn", "organization": "Acme Staking", "tier": "operators"},
                {"name": "Vint Cerf", "organization": None, "tier": "validators"},
            ],
        },
    }
    return every.get(status, {})


def make_context(
    status: str,
    *,
    kind: str = "alert",
    step: int | None = None,
    details: dict[str, Any] | None = None,
    links: dict[str, str] | None = None,
    locale: str = "en",
    timezone: str = BERLIN,
) -> dict[str, Any]:
    """Build a render context following the contract in notifier/templating.py."""
    context: dict[str, Any] = {
        "kind": kind,
        "status": status,
        "step": step,
        "details": details_for(status) if details is None else details,
        "recipient": {"name": "Ada Lovelace", "locale": locale, "timezone": timezone},
        "tier": "responders",
        "event": {"id": "evt-1", "source": "prometheus/mainnet", "time": T0},
        "confidential": None,
        "links": {} if links is None else links,
    }
    if kind == "alert":
        context["alert"] = {
            "id": ALERT_ID,
            "fingerprint": "fp-1",
            "alertname": "FinalityLag",
            "severity": "critical",
            "risk": None,
            "labels": {"network": "mainnet"},
            "summary": SUMMARY,
            "description": None,
            "runbook_url": "https://runbooks.example/finality",
            "starts_at": T0,
            "ends_at": None,
            "source": "prometheus/mainnet",
        }
    else:
        context["policy"] = {
            "policy_id": "POL-7",
            "version": 3,
            "change": "emergency_upgrade",
            "risk": "critical",
            "title": TITLE,
            "summary": "Upgrade all validators to 5.3.1.",
            "effective_at": datetime(2026, 11, 21, 6, 0, tzinfo=UTC),
            "authorized_by": "Network council",
            "affected": ["Validators"],
            "action_items": ["Upgrade to 5.3.1"],
            "rollback_plan": None,
        }
    return context


def case_context(
    status: str, kind: str, step: int | None, locale: str = "en", **changes: Any
) -> dict[str, Any]:
    """The context of one of CASES, with the links its template may offer."""
    links = {"confirm": CONFIRM} if kind == "policy" else {"acknowledge": ACK}
    return make_context(status, kind=kind, step=step, links=links, locale=locale, **changes)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    """The shipped templates and catalogs."""
    settings = TemplateSettings(directory=TEMPLATES, locales_directory=LOCALES)
    return Renderer(settings, Catalogs.load(LOCALES))


def render(
    renderer: Renderer,
    template: str,
    context: dict[str, Any],
    locale: str = "en",
    timezone: str = BERLIN,
) -> RenderedMessage:
    """Render the email channel of ``template`` for a reader of ``locale`` in ``timezone``."""
    return renderer.render(template, "email", locale=locale, timezone=timezone, context=context)


def parts(message: RenderedMessage) -> tuple[str, str]:
    """The text and HTML bodies (HTML is required of every template here)."""
    assert message.html is not None
    return message.text, message.html


def when(value: datetime, locale: str, timezone: str = BERLIN) -> str:
    """``value`` as the templates show it to a reader of ``locale`` in ``timezone``."""
    return formatter(locale, timezone).datetime(value)


def lasting(value: timedelta, locale: str) -> str:
    """``value`` as the templates show a duration to a reader of ``locale``."""
    return formatter(locale, BERLIN).timedelta(value)


# --- every follow-up, in every language --------------------------------------------------------


@pytest.mark.parametrize("locale", LANGUAGES)
@pytest.mark.parametrize(("template", "status", "kind", "step"), CASES, ids=IDS)
def test_every_followup_renders_in_every_shipped_language(
    renderer: Renderer, template: str, status: str, kind: str, step: int | None, locale: str
) -> None:
    """Subject, text and HTML render in the reader's language and name what they are about."""
    message = render(renderer, template, case_context(status, kind, step, locale), locale)
    text, html = parts(message)
    about = SUMMARY if kind == "alert" else TITLE
    assert message.language == locale
    assert f'<html lang="{locale}">' in html
    assert about in message.subject
    assert about in text
    assert about in html
    assert GREETING[locale] in text
    assert GREETING[locale] in html
    if locale != "en":
        everything = message.subject + text + html
        for tell in ENGLISH_TELLS:
            assert tell not in everything, tell
        for fragment in english_fragments(locale):
            assert fragment not in everything, fragment


@pytest.mark.parametrize("locale", LANGUAGES)
def test_subject_says_which_followup_it_is(renderer: Renderer, locale: str) -> None:
    """Each follow-up has its own subject: a reader can tell them apart in the inbox."""
    subjects = {
        render(renderer, t, case_context(s, k, n, locale), locale).subject for t, s, k, n in CASES
    }
    assert len(subjects) == len(CASES)


def test_german_reader_gets_german_times_and_durations(renderer: Renderer) -> None:
    """A Berlin reader of German sees 08:07Z as 09:07 MEZ and the duration in German words."""
    text = render(renderer, "reminder", make_context("ack-reminder", locale="de"), "de").text
    assert "20. November 2026, 09:07:00 MEZ" in text
    assert "2 Stunden und 3 Minuten" in text
    assert "Guten Tag" in text
    assert "Erinnerung" in text


@pytest.mark.parametrize(
    ("locale", "acknowledged", "reminder", "update", "confirm"),
    [
        ("en", "[Acknowledged] ", "[Reminder]", "[Update 2] ", "[Please confirm] "),
        ("de", "[Quittiert] ", "[Erinnerung]", "[Statusmeldung 2] ", "[Bitte bestätigen] "),
        ("es", "[Reconocida] ", "[Recordatorio]", "[Actualización 2] ", "[Confirme la recepción] "),
    ],
)
def test_subject_tags_are_translated(
    renderer: Renderer, locale: str, acknowledged: str, reminder: str, update: str, confirm: str
) -> None:
    """The bracketed tag that starts a follow-up's subject is in the reader's language."""

    def subject(template: str, status: str, kind: str = "alert", step: int | None = None) -> str:
        context = make_context(status, kind=kind, step=step, locale=locale)
        return render(renderer, template, context, locale).subject

    assert subject("alert", "acknowledged") == acknowledged + SUMMARY
    assert subject("reminder", "ack-reminder", step=1).startswith(reminder)
    assert subject("status-update", "status-update", step=2) == update + SUMMARY
    assert subject("receipt", "receipt-reminder", "policy", 1) == confirm + TITLE


# --- acknowledged, escalated and resolved alerts -----------------------------------------------


@pytest.mark.parametrize("locale", LANGUAGES)
def test_acknowledged_alert_names_who_took_charge_and_when(renderer: Renderer, locale: str) -> None:
    """The acknowledger, their note and the time (reader's zone) are shown; no ack link."""
    context = case_context("acknowledged", "alert", None, locale)
    text, html = parts(render(renderer, "alert", context, locale))
    for part in (text, html):
        assert "Grace Hopper" in part
        assert "Rolling back v5.3" in part
        assert when(ACKNOWLEDGED_AT, locale) in part
        assert ACK not in part
    assert "09:07" in when(ACKNOWLEDGED_AT, "de")


def test_acknowledged_alert_without_a_note(renderer: Renderer) -> None:
    """A note of None renders: the acknowledger is named and nothing is printed for the note."""
    details = {"by": "Grace Hopper", "at": ACKNOWLEDGED_AT, "note": None}
    with_note = render(renderer, "alert", make_context("acknowledged"))
    without = render(renderer, "alert", make_context("acknowledged", details=details))
    text, html = parts(without)
    assert "Grace Hopper" in text
    assert "Grace Hopper" in html
    assert "None" not in text + html
    assert "Rolling back" not in text + html
    assert len(without.text) < len(with_note.text)


@pytest.mark.parametrize("locale", LANGUAGES)
def test_escalated_alert_pages_with_its_step_and_the_ack_link(
    renderer: Renderer, locale: str
) -> None:
    """An escalation page says its step, offers the acknowledge link and differs from firing."""
    escalated = render(renderer, "alert", case_context("escalated", "alert", 2, locale), locale)
    firing = render(renderer, "alert", case_context("firing", "alert", None, locale), locale)
    text, html = parts(escalated)
    assert ACK in text
    assert f'href="{ACK}"' in html
    assert "2" in escalated.subject.replace(SUMMARY, "")
    assert " 2)" in text  # "(escalation step 2)" in each language
    assert escalated.subject != firing.subject
    assert escalated.text != firing.text


def test_escalated_alert_without_a_step(renderer: Renderer) -> None:
    """An escalation without a step number still renders as a page."""
    message = render(renderer, "alert", make_context("escalated", links={"acknowledge": ACK}))
    assert ACK in message.text
    assert "None" not in message.subject + message.text


@pytest.mark.parametrize("locale", LANGUAGES)
def test_resolved_by_hand_names_the_person(renderer: Renderer, locale: str) -> None:
    """A resolution by hand names who resolved it and their note, at the resolution time."""
    text, html = parts(render(renderer, "alert", make_context("resolved", locale=locale), locale))
    for part in (text, html):
        assert "Grace Hopper" in part
        assert "Fixed" in part
        assert when(T0 + timedelta(minutes=59), locale) in part
        assert lasting(timedelta(minutes=59), locale) in part


def test_resolved_by_the_monitoring_system_names_nobody(renderer: Renderer) -> None:
    """With empty details (the monitoring system resolved it), no person and no note appear."""
    context = make_context("resolved", details={})
    context["alert"]["ends_at"] = T0 + timedelta(minutes=30)
    by_hand = render(renderer, "alert", make_context("resolved"))
    text, html = parts(render(renderer, "alert", context))
    assert "Grace Hopper" not in text + html
    assert "Resolved by" in by_hand.text
    assert "Resolved by" not in text + html
    assert lasting(timedelta(minutes=30), "en") in text


# --- reminders ---------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LANGUAGES)
def test_ack_reminder_gives_the_acknowledgment_time_and_the_open_duration(
    renderer: Renderer, locale: str
) -> None:
    """The reminder shows when the reader took charge and how long it has been open."""
    context = case_context("ack-reminder", "alert", 1, locale)
    text, html = parts(render(renderer, "reminder", context, locale))
    for part in (text, html):
        assert when(ACKNOWLEDGED_AT, locale) in part
        assert lasting(OPEN_FOR, locale) in part
        assert ALERT_ID in part
        assert ACK not in part  # someone already took charge
        assert " 5 " in part  # reminders left


def test_ack_reminder_counts_the_reminders_left(renderer: Renderer) -> None:
    """One reminder left is singular; none left says this is the last one."""

    def text_with(left: int) -> str:
        details = {**details_for("ack-reminder"), "reminders_left": left}
        return render(renderer, "reminder", make_context("ack-reminder", details=details)).text

    assert "5 more reminders" in text_with(5)
    assert "1 more reminder " in text_with(1)
    last = text_with(0)
    assert "more reminder" not in last
    assert "last reminder" in last


@pytest.mark.parametrize("locale", LANGUAGES)
def test_ack_escalated_names_who_acknowledged(renderer: Renderer, locale: str) -> None:
    """Escalation contacts learn who took charge, when, and how long it has been open."""
    context = case_context("ack-escalated", "alert", None, locale)
    text, html = parts(render(renderer, "reminder", context, locale))
    for part in (text, html):
        assert part.count("Grace Hopper") >= 2  # who took charge, and whom to check with
        assert when(ACKNOWLEDGED_AT, locale) in part
        assert lasting(OPEN_FOR, locale) in part
        assert ACK not in part


@pytest.mark.parametrize("locale", LANGUAGES)
def test_update_due_explains_how_to_post_the_update(renderer: Renderer, locale: str) -> None:
    """The commander sees the interval, the last update's time and the command and API call."""
    context = case_context("update-due", "alert", 3, locale)
    text, html = parts(render(renderer, "reminder", context, locale))
    for part in (text, html):
        assert lasting(timedelta(minutes=30), locale) in part
        assert when(T0 + timedelta(minutes=45), locale) in part
        assert "Grace Hopper" in part
        assert f"notifier update {ALERT_ID} --by " in part
        assert f"POST /api/v1/alerts/{ALERT_ID}/updates" in part


def test_update_due_before_any_update_and_before_anyone_took_charge(
    renderer: Renderer,
) -> None:
    """No last update and nobody acknowledging render fine, and say so."""
    details = {
        "state": "firing",
        "by": None,
        "open_for": OPEN_FOR,
        "every": timedelta(hours=1),
        "last_update_at": None,
    }
    text, html = parts(render(renderer, "reminder", make_context("update-due", details=details)))
    for part in (text, html):
        assert "None" not in part
        assert "No status update has been posted yet" in part
        assert "not yet acknowledged" in part
        assert "1 hour" in part


@pytest.mark.parametrize(
    ("locale", "tag", "channel", "reason"),
    [
        ("en", "[Unreachable] ", "last tried: email", "reason: timed out"),
        ("de", "[Nicht erreichbar] ", "zuletzt versucht: E-Mail", "Grund: Zeitüberschreitung"),
        (
            "es",
            "[No localizable] ",
            "último intento: correo electrónico",
            "motivo: tiempo de espera agotado",
        ),
    ],
)
def test_unreachable_names_the_person_the_channel_and_the_reason(
    renderer: Renderer, locale: str, tag: str, channel: str, reason: str
) -> None:
    """The commander learns who could not be reached, on what channel last, and why."""
    context = case_context("unreachable", "alert", None, locale)
    message = render(renderer, "reminder", context, locale)
    text, html = parts(message)
    assert message.subject == f"{tag}Grace Hopper: {SUMMARY}"
    for part in (text, html):
        assert "Grace Hopper" in part
        assert channel in part
        assert reason in part
        assert ALERT_ID in part
        assert "timeout" not in part  # the code is shown as its label
        assert ACK not in part  # nothing to acknowledge: the page did not get through
        assert "None" not in part


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("client", "the address was refused"),
        ("server", "the server failed"),
        ("auth", "the credentials were refused"),
        ("rate_limited", "rate limited"),
        ("timeout", "timed out"),
        ("template", "the message could not be rendered"),
        ("other", "unknown error"),
        ("quota_exceeded", "quota_exceeded"),  # unknown codes are shown as they arrive
    ],
)
def test_unreachable_labels_every_failure_reason(
    renderer: Renderer, reason: str, label: str
) -> None:
    """Each reason code reads as a human label; an unknown code is printed as is."""
    details = {"person": "Grace Hopper", "channel": "webhook", "reason": reason}
    text, html = parts(render(renderer, "reminder", make_context("unreachable", details=details)))
    for part in (text, html):
        assert f"(last tried: webhook, reason: {label})" in part


@pytest.mark.parametrize(
    ("locale", "labels"),
    [
        ("en", {"email": "email", "slack": "Slack", "webhook": "webhook", "sms": "sms"}),
        ("de", {"email": "E-Mail", "slack": "Slack", "webhook": "Webhook", "sms": "sms"}),
        (
            "es",
            {"email": "correo electrónico", "slack": "Slack", "webhook": "webhook", "sms": "sms"},
        ),
    ],
)
def test_unreachable_names_the_channel_in_the_readers_language(
    renderer: Renderer, locale: str, labels: dict[str, str]
) -> None:
    """Channel names are translated; an unknown channel is shown as it arrived."""
    tried = {"en": "last tried: ", "de": "zuletzt versucht: ", "es": "último intento: "}[locale]
    for channel, label in labels.items():
        details = {"person": "Grace Hopper", "channel": channel, "reason": "server"}
        context = make_context("unreachable", details=details, locale=locale)
        for part in parts(render(renderer, "reminder", context, locale)):
            assert f"{tried}{label}," in part


def test_unreachable_escapes_names_and_unknown_codes_in_html(renderer: Renderer) -> None:
    """A hostile name, channel or reason code prints verbatim in text and escaped in HTML."""
    details = {"person": "<b>Grace</b> & co", "channel": "<i>pager</i>", "reason": "<img src=x>"}
    message = render(renderer, "reminder", make_context("unreachable", details=details))
    text, html = parts(message)
    assert message.subject.startswith("[Unreachable] <b>Grace</b> & co: ")
    assert "<b>Grace</b> & co could not be reached" in text
    assert "(last tried: <i>pager</i>, reason: <img src=x>)" in text
    assert "&lt;b&gt;Grace&lt;/b&gt; &amp; co could not be reached" in html
    assert "(last tried: &lt;i&gt;pager&lt;/i&gt;, reason: &lt;img src=x&gt;)" in html
    for tag in ("<b>", "<i>", "<img"):
        assert tag not in html


@pytest.mark.parametrize("locale", LANGUAGES)
def test_unreachable_about_a_policy_notice(renderer: Renderer, locale: str) -> None:
    """For kind "policy" the message names the notice's title and facts, and no alert."""
    details = {"person": "Grace Hopper", "channel": "slack", "reason": "auth"}
    context = make_context("unreachable", kind="policy", details=details, locale=locale)
    message = render(renderer, "reminder", context, locale)
    text, html = parts(message)
    refused = {
        "en": "the credentials were refused",
        "de": "Zugangsdaten abgelehnt",
        "es": "credenciales rechazadas",
    }[locale]
    assert message.language == locale
    assert "Grace Hopper" in message.subject
    assert TITLE in message.subject
    for part in (text, html):
        assert GREETING[locale] in part
        assert "Grace Hopper" in part
        assert TITLE in part
        assert refused in part
        assert "POL-7" in part
        assert SUMMARY not in part
        assert "None" not in part
    if locale == "en":
        assert "could not be reached with this notice" in text
        assert "page someone else" not in text + html
    else:
        everything = message.subject + text + html
        for tell in ENGLISH_TELLS:
            assert tell not in everything, tell
        for fragment in english_fragments(locale):
            assert fragment not in everything, fragment


# --- status updates ----------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LANGUAGES)
def test_status_update_quotes_the_latest_update_with_author_and_time(
    renderer: Renderer, locale: str
) -> None:
    """Stakeholders read the latest update, who posted it and when, and who is handling it."""
    context = case_context("status-update", "alert", 2, locale)
    text, html = parts(render(renderer, "status-update", context, locale))
    for part in (text, html):
        assert "v5.1.4 deployed on 40% of nodes" in part
        assert "Linus Pauling" in part
        assert when(T0 + timedelta(minutes=95), locale) in part
        assert "Grace Hopper" in part
        assert lasting(OPEN_FOR, locale) in part


@pytest.mark.parametrize("locale", LANGUAGES)
def test_status_update_without_news_promises_the_next_update(
    renderer: Renderer, locale: str
) -> None:
    """With no update text (nor author or time), the message says none was posted yet."""
    details = {
        "state": "firing",
        "by": None,
        "open_for": OPEN_FOR,
        "update": None,
        "update_by": None,
        "update_at": None,
    }
    with_news = render(renderer, "status-update", case_context("status-update", "alert", 2))
    context = make_context("status-update", step=2, details=details, locale=locale)
    text, html = parts(render(renderer, "status-update", context, locale))
    assert "None" not in text + html
    assert "Linus Pauling" not in text + html
    if locale == "en":
        assert "next scheduled update" in text
        assert "next scheduled update" in html
        assert "next scheduled update" not in with_news.text


def test_status_update_with_author_but_no_time(renderer: Renderer) -> None:
    """An update whose time is unknown still credits its author."""
    details = {**details_for("status-update"), "update_at": None}
    text, html = parts(
        render(renderer, "status-update", make_context("status-update", step=1, details=details))
    )
    assert "Linus Pauling" in text
    assert "Linus Pauling" in html
    assert "None" not in text + html


def test_status_update_shows_confidential_details_only_when_cleared(renderer: Renderer) -> None:
    """The confidential section appears only when ``confidential`` is not None."""
    cleared = make_context("status-update", step=1, locale="de")
    cleared["confidential"] = {"root_cause": "weight underflow in fork choice"}
    shown = render(renderer, "status-update", cleared, "de")
    hidden = render(renderer, "status-update", make_context("status-update", step=1), "de")
    for part in parts(shown):
        assert "VERTRAULICH" in part
        assert "weight underflow in fork choice" in part
    for part in parts(hidden):
        assert "VERTRAULICH" not in part
        assert "underflow" not in part


# --- receipts and the confirm link -------------------------------------------------------------


@pytest.mark.parametrize("locale", LANGUAGES)
def test_receipt_reminder_gives_the_deadline_in_the_readers_zone(
    renderer: Renderer, locale: str
) -> None:
    """The deadline is shown in the reader's timezone and language."""
    context = case_context("receipt-reminder", "policy", 1, locale, timezone="Asia/Tokyo")
    text, html = parts(render(renderer, "receipt", context, locale, "Asia/Tokyo"))
    deadline = when(DEADLINE, locale, "Asia/Tokyo")
    assert "21:00" in deadline or "9:00:00\u202fPM" in deadline
    for part in (text, html):
        assert deadline in part
        assert when(DEADLINE, locale) not in part  # not Berlin time


@pytest.mark.parametrize("locale", LANGUAGES)
def test_receipt_overdue_lists_who_did_not_confirm(renderer: Renderer, locale: str) -> None:
    """The liaison sees each missing person with organization and tier, and the deadline."""
    context = case_context("receipt-overdue", "policy", None, locale)
    text, html = parts(render(renderer, "receipt", context, locale))
    assert "  - Bob Kahn (Acme Staking) — operators\n" in text
    assert "  - Vint Cerf — validators\n" in text  # no organization: no empty parentheses
    for part in (text, html):
        assert when(DEADLINE, locale) in part
        for fact in ("Bob Kahn", "Acme Staking", "operators", "Vint Cerf", "validators"):
            assert fact in part
        assert "None" not in part
        assert CONFIRM not in part  # the liaison has nothing to confirm
    assert " 2 " in text  # two recipients


def test_receipt_overdue_for_a_single_recipient_is_singular(renderer: Renderer) -> None:
    """One missing recipient reads in the singular."""
    details = {
        **details_for("receipt-overdue"),
        "pending": details_for("receipt-overdue")["pending"][:1],
    }
    text = render(
        renderer, "receipt", make_context("receipt-overdue", kind="policy", details=details)
    ).text
    assert "The following recipient did" in text
    assert "Vint Cerf" not in text


def test_receipt_templates_work_for_an_alert_too(renderer: Renderer) -> None:
    """A receipt about an alert (kind "alert") names the alert's summary."""
    for status in ("receipt-reminder", "receipt-overdue"):
        context = make_context(status, links={"confirm": CONFIRM})
        message = render(renderer, "receipt", context)
        text, html = parts(message)
        assert SUMMARY in message.subject
        assert SUMMARY in text
        assert ALERT_ID in html


@pytest.mark.parametrize("locale", LANGUAGES)
@pytest.mark.parametrize(
    ("template", "status"), [("policy-change", "notice"), ("receipt", "receipt-reminder")]
)
def test_confirm_link_is_offered_when_given(
    renderer: Renderer, template: str, status: str, locale: str
) -> None:
    """With a confirm link, the text shows the URL and the HTML links a button to it."""
    context = make_context(status, kind="policy", links={"confirm": CONFIRM}, locale=locale)
    text, html = parts(render(renderer, template, context, locale))
    assert CONFIRM in text
    assert f'href="{CONFIRM}"' in html


@pytest.mark.parametrize(
    "links",
    [{}, {"acknowledge": ACK}, {"confirm": "javascript:alert(1)"}, {"confirm": "ftp://x/y"}],
    ids=["empty", "other-link", "javascript", "ftp"],
)
@pytest.mark.parametrize(
    ("template", "status"), [("policy-change", "notice"), ("receipt", "receipt-reminder")]
)
def test_confirm_link_is_offered_only_when_it_is_a_web_address(
    renderer: Renderer, template: str, status: str, links: dict[str, str]
) -> None:
    """No confirm link, or one that is not http(s): no call to action and no link at all."""
    context = make_context(status, kind="policy", links=links)
    text, html = parts(render(renderer, template, context))
    for part in (text, html):
        assert "javascript:" not in part
        assert "ftp://" not in part
        assert "Confirm receipt" not in part
        assert "confirm that you received this notice" not in part
        assert ACK not in part


def test_policy_notice_without_links_is_unchanged_by_the_confirm_feature(
    renderer: Renderer,
) -> None:
    """A notice rendered without ``links`` (older contexts) still renders, without the CTA."""
    context = make_context("notice", kind="policy")
    del context["links"]
    assert render(renderer, "policy-change", context) == render(
        renderer, "policy-change", make_context("notice", kind="policy")
    )


@pytest.mark.parametrize(("template", "status", "kind", "step"), CASES, ids=IDS)
def test_every_link_in_html_is_a_web_address(
    renderer: Renderer, template: str, status: str, kind: str, step: int | None
) -> None:
    """Whatever a follow-up links to, it is an http(s) address."""
    html = parts(render(renderer, template, case_context(status, kind, step)))[1]
    for target in re.findall(r'href="([^"]*)"', html):
        assert target.startswith(("https://", "http://")), target


# --- event data stays data ---------------------------------------------------------------------


@pytest.mark.parametrize(("template", "status", "kind", "step"), CASES, ids=IDS)
def test_event_text_is_escaped_in_html_and_verbatim_in_text(
    renderer: Renderer, template: str, status: str, kind: str, step: int | None
) -> None:
    """Markup and template syntax in event text print literally; HTML escapes them."""
    context = case_context(status, kind, step)
    context["alert" if kind == "alert" else "policy"]["summary" if kind == "alert" else "title"] = (
        HOSTILE
    )
    for key in ("by", "note", "update_by", "person"):
        if key in context["details"]:
            context["details"][key] = f"<b>{key}</b>"
    if "update" in context["details"]:
        context["details"]["update"] = "<img src=x onerror=alert(1)>"
    message = render(renderer, template, context)
    text, html = parts(message)
    assert HOSTILE in message.subject
    assert HOSTILE in text
    assert "49" not in message.subject + text
    assert "<script>" not in html
    assert "{{ 7*7 }} &lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "<b>" not in html
    assert "<img" not in html
    if status in ("acknowledged", "ack-escalated"):
        assert "&lt;b&gt;by&lt;/b&gt;" in html
        assert "<b>by</b>" in text
    if status == "unreachable":
        assert "&lt;b&gt;person&lt;/b&gt;" in html
        assert "<b>person</b>" in text
        assert "<b>person</b>" in message.subject


def test_pending_recipients_are_escaped_in_html(renderer: Renderer) -> None:
    """Names and organizations of pending recipients are escaped in the HTML table."""
    pending = [{"name": "<i>Bob</i>", "organization": "A&B <Corp>", "tier": "<t>"}]
    details = {"deadline": DEADLINE, "pending": pending}
    context = make_context("receipt-overdue", kind="policy", details=details)
    text, html = parts(render(renderer, "receipt", context))
    assert "<i>" not in html
    assert "&lt;i&gt;Bob&lt;/i&gt;" in html
    assert "A&amp;B &lt;Corp&gt;" in html
    assert "<i>Bob</i> (A&B <Corp>) — <t>" in text


# --- the template set --------------------------------------------------------------------------


def test_new_templates_are_listed_with_every_part(renderer: Renderer) -> None:
    """The follow-up templates are found, each with subject, text and HTML for email."""
    listed = renderer.templates()
    for template in ("reminder", "status-update", "receipt"):
        assert template in listed
        assert renderer.parts(template) == {"email": ["subject", "text", "html"]}
