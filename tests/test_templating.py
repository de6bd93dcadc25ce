"""Rendering the shipped templates: every language, the sandbox, limits and template hashes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from notifier.decoding import decode_record
from notifier.errors import ConfigError, TemplateError
from notifier.events import AlertData
from notifier.i18n import Catalogs
from notifier.message import RenderedMessage
from notifier.settings import TemplateSettings
from notifier.templating import Renderer

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "config" / "samples"
TEMPLATES = ROOT / "templates"
LOCALES = ROOT / "locales"

FIRING = "alert-firing.json"
RESOLVED = "alert-resolved.json"
UPGRADE = "policy-emergency-upgrade.json"  # carries a confidential section
HOT_PATCH = "policy-hot-patch.json"  # carries none

# (template, sample) pairs the engine renders in practice.
CASES = [
    ("alert", FIRING),
    ("alert", RESOLVED),
    ("policy-change", UPGRADE),
    ("policy-change", HOT_PATCH),
    ("public-advisory", UPGRADE),
    ("public-advisory", HOT_PATCH),
]
# Words each language's rendering must contain, proving the catalog was used.
WORDS = {
    ("alert", "en"): ("Severity", "Source"),
    ("alert", "de"): ("Schweregrad", "Quelle"),
    ("alert", "es"): ("Gravedad", "Origen"),
    ("policy-change", "en"): ("Effective", "Authorized by"),
    ("policy-change", "de"): ("Gültig ab", "Genehmigt von"),
    ("policy-change", "es"): ("En vigor desde", "Autorizado por"),
    ("public-advisory", "en"): ("Public notice", "Risk level"),
    ("public-advisory", "de"): ("Öffentliche Mitteilung", "Risikostufe"),
    ("public-advisory", "es"): ("Aviso público", "Nivel de riesgo"),
}


def sample_context(
    sample: str, *, locale: str = "en", timezone: str = "UTC", cleared: bool = True
) -> dict[str, Any]:
    """Build the render context (the contract in notifier/templating.py) from a sample event."""
    [event] = decode_record((SAMPLES / sample).read_bytes())
    data = event.data
    context: dict[str, Any] = {
        "recipient": {"name": "Ada Lovelace", "locale": locale, "timezone": timezone},
        "tier": "responders",
        "event": {"id": event.id, "source": event.source, "time": event.time},
        "confidential": None,
    }
    if isinstance(data, AlertData):
        context.update(kind="alert", status=data.status)
        context["alert"] = {
            "id": "alert-42",
            "fingerprint": event.fingerprint,
            "alertname": data.alertname,
            "severity": data.severity.value,
            "risk": data.risk.value if data.risk else None,
            "labels": dict(data.labels),
            "summary": data.annotations.summary,
            "description": data.annotations.description,
            "runbook_url": data.annotations.runbook_url,
            "starts_at": data.starts_at,
            "ends_at": data.ends_at,
            "source": event.source,
        }
        return context
    context.update(kind="policy", status="notice")
    context["policy"] = data.model_dump(exclude={"confidential"})
    context["policy"].update(change=data.change.value, risk=data.risk.value)
    if cleared and data.confidential is not None:
        context["confidential"] = dict(data.confidential)
    return context


def make_renderer(templates: Path = TEMPLATES, **limits: int) -> Renderer:
    """A renderer over ``templates`` and the shipped catalogs."""
    settings = TemplateSettings(directory=templates, locales_directory=LOCALES, **limits)
    return Renderer(settings, Catalogs.load(LOCALES))


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    """The shipped templates and catalogs."""
    return make_renderer()


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A private copy of the shipped templates, free to edit."""
    return Path(shutil.copytree(TEMPLATES, tmp_path / "templates"))


def render(
    renderer: Renderer, template: str, context: dict[str, Any], locale: str = "en"
) -> RenderedMessage:
    """Render the email channel for a Berlin reader of ``locale``."""
    return renderer.render(
        template, "email", locale=locale, timezone="Europe/Berlin", context=context
    )


def write_part(templates: Path, name: str, source: str) -> None:
    """Create ``templates/<name>`` (``probe/email.subject.j2``...) with ``source``."""
    path = templates / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)


@pytest.mark.parametrize("locale", ["en", "de", "es"])
@pytest.mark.parametrize(("template", "sample"), CASES)
def test_every_template_renders_in_every_shipped_language(
    renderer: Renderer, template: str, sample: str, locale: str
) -> None:
    """Each template renders subject, text and HTML in each shipped language's own words."""
    message = render(renderer, template, sample_context(sample, locale=locale), locale)
    assert message.language == locale
    assert message.html is not None
    assert f'<html lang="{locale}">' in message.html
    assert "\n" not in message.subject
    for word in WORDS[(template, locale)]:
        assert word in message.text + message.subject
        assert word in message.html + message.subject


@pytest.mark.parametrize(
    ("locale", "firing", "resolved"),
    [
        ("en", "[Critical] Alert: ", "[Resolved] "),
        ("de", "[Kritisch] Alarm: ", "[Behoben] "),
        ("es", "[Crítica] Alerta: ", "[Resuelta] "),
    ],
)
def test_alert_subject_is_translated_and_says_whether_it_fires(
    renderer: Renderer, locale: str, firing: str, resolved: str
) -> None:
    """The alert subject carries the translated severity or resolution, then the summary."""
    summary = "Finality lag above 4 epochs on mainnet"
    assert render(renderer, "alert", sample_context(FIRING), locale).subject == firing + summary
    assert render(renderer, "alert", sample_context(RESOLVED), locale).subject == (
        resolved + summary
    )


def test_times_are_shown_in_the_readers_timezone_and_language(renderer: Renderer) -> None:
    """A Berlin reader sees 08:02Z as 09:02 MEZ, and the outage's 59 minutes in German."""
    message = render(renderer, "alert", sample_context(RESOLVED), "de")
    assert "Beginn: 20. November 2026, 09:02:00 MEZ" in message.text
    assert "Behoben: 20. November 2026, 10:01:00 MEZ" in message.text
    assert "Dauer: 59 Minuten" in message.text
    assert "59 Minuten" in (message.html or "")


def test_policy_effective_time_is_localized(renderer: Renderer) -> None:
    """The effective time of a policy (06:00Z) reads 07:00 for a Berlin reader."""
    message = render(renderer, "policy-change", sample_context(UPGRADE), "de")
    assert "Gültig ab: 21. November 2026, 07:00:00 MEZ" in message.text
    assert message.subject.startswith("[Risiko: Kritisch] Notfall-Upgrade: ")
    assert "Bitte erledigen Sie die folgenden 3 Maßnahmen:" in message.text


def test_confidential_section_only_when_cleared(renderer: Renderer) -> None:
    """The confidential section appears only when ``confidential`` is not None."""
    cleared = render(renderer, "policy-change", sample_context(UPGRADE), "de")
    uncleared = render(renderer, "policy-change", sample_context(UPGRADE, cleared=False), "de")
    for part in (cleared.text, cleared.html or ""):
        assert "VERTRAULICH" in part
        assert "Fork-choice weight underflow" in part
    for part in (uncleared.text, uncleared.html or ""):
        assert "VERTRAULICH" not in part
        assert "Fork-choice weight underflow" not in part
        assert "proof of concept" not in part


def test_public_advisory_never_shows_confidential_details(renderer: Renderer) -> None:
    """The public advisory neither references nor renders ``confidential``, even if given."""
    for path in (TEMPLATES / "public-advisory").iterdir():
        assert "confidential" not in path.read_text()
    message = render(renderer, "public-advisory", sample_context(UPGRADE, cleared=True))
    assert "underflow" not in message.text + (message.html or "")
    assert "Mandatory client upgrade" in message.subject


def test_rollback_plan_and_action_items_are_listed(renderer: Renderer) -> None:
    """A policy notice lists its action items in order and the rollback plan."""
    text = render(renderer, "policy-change", sample_context(UPGRADE)).text
    assert "  1. Upgrade to lighthouse 5.3.1 before 2026-11-21 06:00 UTC" in text
    assert "  3. Do not restart more than 10% of your validators at once" in text
    assert "revert to 5.1.4 following runbook RB-17" in text
    single = sample_context(HOT_PATCH)
    single["policy"]["action_items"] = ["Report memory usage"]
    assert "Please complete the following action:" in render(renderer, "policy-change", single).text


@pytest.mark.parametrize(("locale", "language"), [("de_CH", "de"), ("es-MX", "es"), ("fr", "en")])
def test_locale_falls_back_and_reports_the_language_used(
    renderer: Renderer, locale: str, language: str
) -> None:
    """A de_CH reader gets German, a fr reader English, and the message says which."""
    message = render(renderer, "alert", sample_context(FIRING, locale=locale), locale)
    assert message.language == language
    assert f'<html lang="{language}">' in (message.html or "")
    if language == "en":
        # English text gets English dates, not French month names.
        assert "November 20, 2026" in message.text


def test_event_data_is_never_template_source(renderer: Renderer) -> None:
    """Event text with template syntax prints literally; markup is escaped in HTML."""
    context = sample_context(FIRING)
    context["alert"]["summary"] = "{{ 7*7 }} <script>alert(1)</script>"
    context["recipient"]["name"] = "{% for x in range(9) %}x{% endfor %}"
    message = render(renderer, "alert", context)
    assert "{{ 7*7 }} <script>alert(1)</script>" in message.text
    assert "{% for x in range(9) %}" in message.text
    assert "49" not in message.subject + message.text
    html = message.html or ""
    assert "<script>" not in html
    assert "{{ 7*7 }} &lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_unsafe_runbook_link_is_not_clickable(renderer: Renderer) -> None:
    """Only http(s) runbook URLs become links; others are shown as escaped text."""
    context = sample_context(FIRING)
    context["alert"]["runbook_url"] = "javascript:alert(1)"
    html = render(renderer, "alert", context).html or ""
    assert 'href="javascript' not in html
    assert "javascript:alert(1)" in html


def test_subject_is_one_line_whatever_the_event_says(renderer: Renderer) -> None:
    """Newlines in event data cannot add lines (or mail headers) to the subject."""
    context = sample_context(FIRING)
    context["alert"]["summary"] = "lag\r\nBcc: attacker@example.net"
    subject = render(renderer, "alert", context).subject
    assert subject == "[Critical] Alert: lag Bcc: attacker@example.net"


def test_undefined_variable_is_a_template_error(templates: Path) -> None:
    """Using a variable the context lacks raises TemplateError naming template, part, locale."""
    write_part(templates, "probe/email.subject.j2", "Hi")
    write_part(templates, "probe/email.text.j2", "line one\n{{ alert.nonexistent }}\n")
    renderer = make_renderer(templates)
    with pytest.raises(TemplateError) as caught:
        renderer.render(
            "probe", "email", locale="de", timezone="UTC", context=sample_context(FIRING)
        )
    message = str(caught.value)
    for fragment in ("'probe'", "'text'", "'de'", "undefined variable", "line 2", "nonexistent"):
        assert fragment in message


def test_context_of_the_wrong_kind_is_a_template_error(renderer: Renderer) -> None:
    """An alert template given a policy context fails loudly instead of rendering blanks."""
    with pytest.raises(TemplateError, match=r"undefined variable.*'alert' is undefined"):
        render(renderer, "alert", sample_context(UPGRADE))


def test_sandbox_blocks_access_to_python_internals(templates: Path) -> None:
    """A template reaching for ``''.__class__.__mro__`` raises TemplateError (sandbox)."""
    write_part(templates, "probe/email.subject.j2", "{{ ''.__class__.__mro__ }}")
    write_part(templates, "probe/email.text.j2", "body")
    with pytest.raises(TemplateError, match=r"'subject'.*sandbox violation"):
        make_renderer(templates).render(
            "probe", "email", locale="en", timezone="UTC", context=sample_context(FIRING)
        )


def test_templates_cannot_mutate_event_data(templates: Path) -> None:
    """The immutable sandbox refuses ``list.append`` on context data."""
    write_part(templates, "probe/email.subject.j2", "{{ alert.labels.update({'x': 1}) }}")
    write_part(templates, "probe/email.text.j2", "body")
    context = sample_context(FIRING)
    with pytest.raises(TemplateError, match="sandbox violation"):
        make_renderer(templates).render(
            "probe", "email", locale="en", timezone="UTC", context=context
        )
    assert "x" not in context["alert"]["labels"]


def test_syntax_error_names_file_and_line(templates: Path) -> None:
    """A template that does not compile raises TemplateError with its file and line."""
    write_part(templates, "probe/email.subject.j2", "Hi")
    write_part(templates, "probe/email.text.j2", "fine\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"syntax error in probe/email\.text\.j2 line 2"):
        make_renderer(templates).template_hash("probe", "email")


def test_computed_include_is_refused(templates: Path) -> None:
    """A template may not include a computed name: event data must never choose source."""
    write_part(templates, "probe/email.subject.j2", "{% include alert.summary %}")
    write_part(templates, "probe/email.text.j2", "body")
    with pytest.raises(TemplateError, match="must name a fixed template"):
        make_renderer(templates).template_hash("probe", "email")


def test_missing_template_is_a_template_error(renderer: Renderer) -> None:
    """Asking for a template that does not exist raises TemplateError."""
    with pytest.raises(TemplateError, match=r"nope/email\.subject\.j2 not found"):
        renderer.render("nope", "sms", locale="en", timezone="UTC", context={})
    with pytest.raises(TemplateError, match="invalid template"):
        renderer.render("../etc", "email", locale="en", timezone="UTC", context={})


def test_a_channel_without_its_own_parts_says_what_the_email_says(renderer: Renderer) -> None:
    """Slack (no parts of its own) gets the email's subject and text, but not its HTML."""
    context = sample_context(FIRING)
    email = renderer.render("alert", "email", locale="de", timezone="UTC", context=context)
    slack = renderer.render("alert", "slack", locale="de", timezone="UTC", context=context)
    assert (slack.subject, slack.text, slack.html) == (email.subject, email.text, None)
    assert email.html is not None


def test_over_long_subject_is_a_template_error(renderer: Renderer) -> None:
    """A subject longer than max_subject_chars raises TemplateError with both lengths."""
    context = sample_context(FIRING)
    context["alert"]["summary"] = "x" * 300
    with pytest.raises(TemplateError, match=r"'subject'.*is 318 characters, limit is 200"):
        render(renderer, "alert", context)


def test_over_large_body_is_a_template_error(templates: Path) -> None:
    """A body over max_body_bytes raises TemplateError (and rendering stops early)."""
    write_part(templates, "probe/email.subject.j2", "Hi")
    write_part(templates, "probe/email.text.j2", "{% for i in range(99999) %}éééé{% endfor %}")
    renderer = make_renderer(templates, max_body_bytes=4096)
    with pytest.raises(TemplateError, match=r"'text'.*more than 4096 bytes"):
        renderer.render("probe", "email", locale="en", timezone="UTC", context={})


def test_printing_none_is_a_template_error(templates: Path) -> None:
    """Printing a None (an unguarded optional field) fails instead of writing 'None'."""
    write_part(templates, "probe/email.subject.j2", "Hi")
    write_part(templates, "probe/email.text.j2", "{{ alert.description }}")
    context = sample_context(RESOLVED)
    with pytest.raises(TemplateError, match="printed None"):
        make_renderer(templates).render(
            "probe", "email", locale="en", timezone="UTC", context=context
        )


def test_shared_macros_imported_without_context_fail_loudly(templates: Path) -> None:
    """Importing labels.j2 without context would be silently English; it raises instead."""
    write_part(
        templates,
        "probe/email.subject.j2",
        '{% import "labels.j2" as labels %}{{ labels.severity("high") }}',
    )
    write_part(templates, "probe/email.text.j2", "body")
    with pytest.raises(TemplateError, match="with context"):
        make_renderer(templates).render("probe", "email", locale="de", timezone="UTC", context={})


def test_unknown_timezone_is_a_config_error(renderer: Renderer) -> None:
    """A recipient timezone that does not exist raises ConfigError, not a rendering error."""
    with pytest.raises(ConfigError, match="Europe/Atlantis"):
        renderer.render(
            "alert",
            "email",
            locale="en",
            timezone="Europe/Atlantis",
            context=sample_context(FIRING),
        )


def test_template_hash_is_stable_and_stamped_on_messages(renderer: Renderer) -> None:
    """The hash is a sha256 hex, the same on every call and on every rendered message."""
    digest = renderer.template_hash("alert", "email")
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert make_renderer().template_hash("alert", "email") == digest
    assert render(renderer, "alert", sample_context(FIRING), "de").template_hash == digest
    assert renderer.template_hash("policy-change", "email") != digest


ADVISORY = ("public-advisory", "email")


@pytest.mark.parametrize("edited", ["alert/email.text.j2", "labels.j2"])
def test_template_hash_changes_when_a_source_changes(templates: Path, edited: str) -> None:
    """Editing a part, or a shared macro file it imports, changes the hash."""
    before = make_renderer(templates)
    alert, advisory = before.template_hash("alert", "email"), before.template_hash(*ADVISORY)
    path = templates / edited
    path.write_text(path.read_text() + "\n")
    after = make_renderer(templates)
    assert after.template_hash("alert", "email") != alert
    assert (after.template_hash(*ADVISORY) != advisory) is (edited == "labels.j2")
    # A renderer keeps the snapshot it compiled and hashed.
    assert before.template_hash("alert", "email") == alert


def test_templates_and_parts_are_listed(renderer: Renderer) -> None:
    """templates() lists the template folders; parts() lists each channel's parts in order."""
    assert renderer.templates() == [
        "alert",
        "digest",
        "policy-change",
        "public-advisory",
        "receipt",
        "reminder",
        "status-update",
    ]
    for template in renderer.templates():
        assert renderer.parts(template) == {"email": ["subject", "text", "html"]}


def test_html_part_is_optional(templates: Path) -> None:
    """A channel without an HTML part renders with ``html`` None."""
    write_part(templates, "probe/chat.subject.j2", "{{ _('Severity') }}")
    write_part(templates, "probe/chat.text.j2", "{{ alert.summary }}")
    renderer = make_renderer(templates)
    message = renderer.render(
        "probe", "chat", locale="es", timezone="UTC", context=sample_context(FIRING)
    )
    assert (message.subject, message.html, message.language) == ("Gravedad", None, "es")
    assert renderer.parts("probe") == {"chat": ["subject", "text"]}


SLACK_WORDS = {
    "severity": ("slack", "severity", "Severity"),
    "severity_value": ("severity", "critical", "critical"),
    "status_value": ("status", "ack-reminder", "ack-reminder"),
    "acknowledge": ("slack", "acknowledge", "Acknowledge"),
}


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en", ["Severity", "Critical", "Awaiting acknowledgment", "Acknowledge"]),
        ("de_CH", ["Schweregrad", "Kritisch", "Wartet auf Quittierung", "Quittieren"]),
        ("es_MX", ["Gravedad", "Crítica", "Pendiente de reconocer", "Reconocer"]),
    ],
)
def test_labels_translate_fixed_words_with_the_shared_macros(
    renderer: Renderer, locale: str, expected: list[str]
) -> None:
    """labels() renders labels.j2's macros in the reader's language (Slack's framing words)."""
    assert list(renderer.labels(locale, SLACK_WORDS).values()) == expected


def test_labels_fall_back_to_the_default_when_the_macro_is_missing_or_fails(
    templates: Path,
) -> None:
    """Labels approved before a macro existed (or one that fails) give the caller's default,
    never an error: a message must not be lost over a button text."""
    source = (templates / "labels.j2").read_text()
    cut = source.index("{% macro slack")
    broken = "{% macro status(value) %}{{ value.no.such }}{% endmacro %}"
    (templates / "labels.j2").write_text(
        source[:cut].replace("{% macro status", "{% macro old_status") + broken
    )
    words = make_renderer(templates).labels("de", SLACK_WORDS)
    assert words == {
        "severity": "Severity",
        "severity_value": "Kritisch",
        "status_value": "ack-reminder",
        "acknowledge": "Acknowledge",
    }


def test_label_with_arguments_and_its_default(renderer: Renderer) -> None:
    """label() passes arguments (a name) to the macro; a combination the macro does not know
    (it renders nothing) or a missing macro gives the default."""
    said = renderer.label("es_MX", "slack_reply", "done", "acknowledged", "Ana", default="x")
    assert said == "Reconocida por Ana."
    assert renderer.label("de", "slack_reply", "done", "escalated", "Ana", default="x") == "x"
    assert renderer.label("de", "no_such_macro", "a", default="fallback") == "fallback"
