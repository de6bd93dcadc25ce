"""Live preview of template drafts: sample events rendered for a channel and every locale.

The renderer is built the way the console builds it: from the library set (the shipped
template files as ``{path: source}``) and the catalogs as ``.po`` texts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from catalogs import PO_TEXTS, SOURCES, TEMPLATES

from notifier.compose import template_context
from notifier.errors import ConfigError
from notifier.events import ALERT_TYPE, POLICY_TYPE
from notifier.i18n import Catalogs
from notifier.preview import (
    ALERT_STATUSES,
    STATUS_KINDS,
    STATUSES,
    VARIANTS,
    Sample,
    library_renderer,
    load_samples,
    preview,
    preview_all,
    sample_context,
    samples_for,
    statuses_of,
)
from notifier.settings import TemplateSettings
from notifier.store.outbox import PendingNotification
from notifier.templating import SHARED, Renderer, unit_of

ROOT = Path(__file__).resolve().parents[1]
LOCALES = sorted(PO_TEXTS)
SHIPPED = sorted({unit_of(path) for path in SOURCES} - {SHARED})
SAMPLES = load_samples(ROOT / "config" / "samples")
SETTINGS = TemplateSettings(directory=TEMPLATES)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(SETTINGS, Catalogs.from_po_texts(PO_TEXTS), sources=SOURCES)


def sample(name: str) -> Sample:
    return next(s for s in SAMPLES if s.name == name)


def with_source(path: str, source: str) -> dict[str, str]:
    return {**SOURCES, path: source}


def test_the_shipped_set_is_what_these_tests_expect() -> None:
    assert {"alert", "digest", "policy-change", "public-advisory", "receipt"} <= set(SHIPPED)
    assert {"en", "de", "es"} <= set(LOCALES)
    assert {s.kind for s in SAMPLES} == {"alert", "policy"}


def test_every_shipped_template_has_its_statuses_listed() -> None:
    assert set(STATUSES) == set(SHIPPED)
    for statuses in STATUSES.values():
        assert set(statuses) <= set(STATUS_KINDS)


def test_an_unknown_template_renders_the_alert_statuses() -> None:
    assert statuses_of("brand-new") == ALERT_STATUSES
    assert statuses_of("receipt") == ("receipt-reminder", "receipt-overdue")


@pytest.mark.parametrize("template", SHIPPED)
def test_every_template_renders_in_every_locale_for_its_statuses(
    renderer: Renderer, template: str
) -> None:
    problems = []
    rendered = 0
    for status in statuses_of(template):
        fitting = samples_for(SAMPLES, status)
        assert fitting, f"no sample fits {status}"
        for event in fitting:
            for variant in VARIANTS.get(status, (None,)):
                for channel in ("email", "slack"):
                    for shown in preview_all(
                        renderer,
                        template=template,
                        channel=channel,
                        locales=LOCALES,
                        sample=event,
                        status=status,
                        variant=variant,
                    ):
                        rendered += 1
                        where = f"{status}/{variant}/{event.name}/{channel}/{shown.locale}"
                        if shown.error is not None:
                            problems.append(f"{where}: {shown.error}")
                        elif not (shown.subject and shown.text.strip()):
                            problems.append(f"{where}: empty subject or text")
                        elif (shown.html is None) != (channel != "email"):
                            problems.append(f"{where}: html is {shown.html!r:.40}")
    assert not problems, "\n".join(problems)
    assert rendered >= len(statuses_of(template)) * len(LOCALES) * 2


def test_german_preview_of_the_alert_is_german(renderer: Renderer) -> None:
    german = preview(
        renderer, template="alert", channel="email", locale="de", sample=sample("alert-firing")
    )
    english = preview(
        renderer, template="alert", channel="email", locale="en", sample=sample("alert-firing")
    )
    assert german.error is None and english.error is None
    assert german.status == "firing"
    assert (german.language, english.language) == ("de", "en")
    assert german.subject.startswith("[Kritisch] Alarm:")
    assert "Guten Tag Ada Lovelace," in german.text
    assert "Schweregrad: Kritisch" in german.text
    assert german.html is not None and 'lang="de"' in german.html
    assert "Hello Ada Lovelace," in english.text and "Hello" not in german.text


def test_preview_all_gives_one_preview_per_locale_in_order(renderer: Renderer) -> None:
    previews = preview_all(
        renderer,
        template="policy-change",
        channel="email",
        locales=["es", "de_CH", "en", "fr"],
        sample=sample("policy-emergency-upgrade"),
    )
    assert [p.locale for p in previews] == ["es", "de_CH", "en", "fr"]
    # de_CH reads the German catalog; fr has none and falls back to English.
    assert [p.language for p in previews] == ["es", "de", "en", "en"]
    assert all(p.error is None for p in previews)
    assert len({p.subject for p in previews}) == 3
    assert all(p.elapsed_ms > 0 for p in previews)


def test_a_syntax_error_in_a_draft_is_shown_with_its_file_and_line() -> None:
    path = "alert/email.text.j2"
    lines = SOURCES[path].splitlines()
    lines[9] = "{% if status == %}"  # line 10
    draft = library_renderer(SETTINGS, with_source(path, "\n".join(lines)), PO_TEXTS)
    shown = preview(
        draft, template="alert", channel="email", locale="de", sample=sample("alert-firing")
    )
    assert shown.error is not None
    assert "syntax error in alert/email.text.j2 line 10" in shown.error
    assert (shown.subject, shown.text, shown.html) == ("", "", None)
    assert shown.language == "de"


def test_a_runtime_error_in_a_draft_names_its_file_and_line() -> None:
    path = "alert/email.subject.j2"
    draft = library_renderer(SETTINGS, with_source(path, "\n\n{{ alert.nothing }}\n"), PO_TEXTS)
    shown = preview(
        draft, template="alert", channel="slack", locale="en", sample=sample("alert-firing")
    )
    assert shown.error is not None
    assert "undefined variable in alert/email.subject.j2 line 3" in shown.error


def test_a_slack_preview_carries_the_block_kit_layout_in_the_readers_language() -> None:
    """Comms staff see a Slack message as its reader will: the header, the context line and
    the buttons in that reader's language; an email preview has no blocks."""
    draft = library_renderer(SETTINGS, dict(SOURCES), PO_TEXTS)
    shown = preview(
        draft, template="alert", channel="slack", locale="de_CH", sample=sample("alert-firing")
    )
    assert shown.error is None and shown.blocks is not None
    assert shown.blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": shown.subject, "emoji": True},
    }
    context = [e["text"] for b in shown.blocks if b["type"] == "context" for e in b["elements"]]
    assert context[:2] == ["*Schweregrad:* Kritisch", "*Status:* Aktiv"]
    buttons = [
        e["text"]["text"] for b in shown.blocks if b["type"] == "actions" for e in b["elements"]
    ]
    assert buttons == ["Quittieren", "Beheben", "Runbook"]
    email = preview(
        draft, template="alert", channel="email", locale="de_CH", sample=sample("alert-firing")
    )
    assert email.blocks is None


def test_a_webhook_preview_carries_the_body_the_receiver_gets() -> None:
    """The webhook preview shows the JSON document the channel would POST: the reader's
    rendered subject and text, the alert's fields and the links; other channels have none."""
    draft = library_renderer(SETTINGS, dict(SOURCES), PO_TEXTS)
    shown = preview(
        draft, template="alert", channel="webhook", locale="de_CH", sample=sample("alert-firing")
    )
    assert shown.error is None and shown.body is not None and shown.blocks is None
    assert shown.body.startswith("{\n  ")  # indented for reading
    body = orjson.loads(shown.body)
    assert (body["type"], body["language"]) == ("notifier.notification", "de")
    assert (body["subject"], body["text"]) == (shown.subject, shown.text)
    assert body["alert"]["severity"] == "critical" and body["alert"]["status"] == "firing"
    assert body["links"]["acknowledge"].startswith("https://")
    assert body["sent_at"] == "2026-11-20T08:02:00.000Z"  # when the sample started
    assert body["digest"] is None
    for channel in ("email", "slack"):
        other = preview(
            draft, template="alert", channel=channel, locale="de_CH", sample=sample("alert-firing")
        )
        assert other.error is None and other.body is None


def test_a_digest_webhook_lists_its_alerts_as_data() -> None:
    """A digest's webhook body carries what it lists as structure (machine receivers need
    not parse the text): why, the group, how many, when due, and each alert listed."""
    draft = library_renderer(SETTINGS, dict(SOURCES), PO_TEXTS)
    shown = preview(
        draft,
        template="digest",
        channel="webhook",
        locale="es",
        sample=sample("alert-firing"),
        variant="grouped",
    )
    assert shown.error is None and shown.body is not None
    body = orjson.loads(shown.body)
    digest = body["digest"]
    assert body["alert"]["status"] == "digest"
    assert (digest["reason"], digest["count"]) == ("grouped", 5)
    assert digest["group"] == {"network": "mainnet", "alertname": "ConsensusFinalityLag"}
    assert digest["due_at"] == "2026-11-20T08:07:00.000Z"
    assert [item["status"] for item in digest["items"]] == ["firing", "resolved", "firing"]
    first = digest["items"][0]
    assert first["alert_id"] == body["alert"]["id"]
    assert set(first) == {"alert_id", "name", "severity", "status", "summary", "labels"}
    assert first["summary"] in body["text"]


def test_readers_who_may_use_the_console_see_the_incident_page() -> None:
    """The alert's email, and reminders to commanders, name its page in the console in the
    reader's words (a plain link in the text, a real one in the HTML); a reader without the
    link sees no such line."""
    draft = library_renderer(SETTINGS, dict(SOURCES), PO_TEXTS)
    shown = preview(
        draft, template="alert", channel="email", locale="de", sample=sample("alert-firing")
    )
    page = "https://notifier.example/console/incidents/EXAMPLE"
    assert f"Vorfallseite: {page}" in shown.text
    assert shown.html is not None and f'<a href="{page}">{page}</a>' in shown.html
    context = {**contextual("firing", "alert-firing"), "links": {}}
    rendered = draft.render("alert", "email", locale="de", timezone="UTC", context=context)
    assert "Vorfallseite" not in rendered.text
    for status in ("ack-escalated", "unreachable"):  # to commanders, about an alert
        reminder = preview(
            draft,
            template="reminder",
            channel="email",
            locale="es",
            sample=sample("alert-firing"),
            status=status,
        )
        assert reminder.error is None, reminder.error
        assert f"Página del incidente: {page}" in reminder.text


def test_the_draft_renderer_is_compiled_once_per_content() -> None:
    first = library_renderer(SETTINGS, dict(SOURCES), PO_TEXTS)
    assert library_renderer(SETTINGS, dict(SOURCES), PO_TEXTS) is first
    edited = with_source("alert/email.text.j2", SOURCES["alert/email.text.j2"] + "\n")
    assert library_renderer(SETTINGS, edited, PO_TEXTS) is not first


def test_problems_of_the_request_are_errors_not_exceptions(renderer: Renderer) -> None:
    policy = sample("policy-hot-patch")
    wrong_kind = preview(renderer, template="alert", channel="email", locale="en", sample=policy)
    assert wrong_kind.error is not None and "policy" in wrong_kind.error
    bad_zone = preview(
        renderer,
        template="policy-change",
        channel="email",
        locale="en",
        sample=policy,
        timezone="Mars/Olympus_Mons",
    )
    assert bad_zone.error is not None and "Mars/Olympus_Mons" in bad_zone.error
    unknown = preview(
        renderer,
        template="policy-change",
        channel="email",
        locale="en",
        sample=policy,
        status="exploded",
    )
    assert unknown.error is not None and "exploded" in unknown.error


def test_samples_are_read_and_alertmanager_payloads_converted() -> None:
    names = [s.name for s in SAMPLES]
    assert names == sorted(names)
    assert "alertmanager-webhook" in names
    converted = sample("alertmanager-webhook")
    assert converted.kind == "alert"
    assert converted.event["type"] == ALERT_TYPE
    assert converted.event["data"]["alertname"] == "ValidatorMissedAttestations"
    assert converted.event["data"]["severity"] == "warning"
    assert sample("policy-hot-patch").event["type"] == POLICY_TYPE
    assert [s.name for s in samples_for(SAMPLES, "notice")] == [
        "policy-emergency-upgrade",
        "policy-hot-patch",
    ]


def test_load_samples_refuses_a_file_that_is_no_event(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"specversion": "1.0", "id": "x"}')
    with pytest.raises(ConfigError, match=r"broken\.json"):
        load_samples(tmp_path)


def contextual(
    status: str,
    name: str,
    *,
    template: str = "alert",
    confidential: bool = True,
    variant: str | None = None,
) -> dict[str, Any]:
    return sample_context(
        sample(name),
        template=template,
        status=status,
        locale="de",
        timezone="Europe/Berlin",
        tier="responders",
        confidential=confidential,
        variant=variant,
    )


def test_sample_context_follows_the_contract() -> None:
    escalated = contextual("escalated", "alert-firing")
    assert escalated["kind"] == "alert" and escalated["status"] == "escalated"
    assert escalated["step"] == 2
    assert escalated["links"] == {
        "acknowledge": "https://notifier.example/ack/EXAMPLE-TOKEN",
        "incident": "https://notifier.example/console/incidents/EXAMPLE",
    }
    assert escalated["recipient"] == {
        "name": "Ada Lovelace",
        "locale": "de",
        "timezone": "Europe/Berlin",
    }
    assert escalated["confidential"] is None  # alerts have no confidential section
    assert set(escalated) == {
        *("kind", "status", "step", "details", "alert", "confidential"),
        *("recipient", "tier", "event", "links"),
    }
    acknowledged = contextual("acknowledged", "alert-firing")
    assert acknowledged["details"]["by"] == "Grace Hopper"
    assert set(acknowledged["links"]) == {"incident"}  # nothing left to acknowledge
    resolved_by_monitoring = contextual("resolved", "alert-resolved")
    assert resolved_by_monitoring["details"] == {}
    overdue = contextual("receipt-overdue", "policy-hot-patch", template="receipt")
    pending = overdue["details"]["pending"]
    assert pending and {"name", "organization", "tier"} <= set(pending[0])
    notice = contextual("notice", "policy-emergency-upgrade", template="policy-change")
    assert notice["links"] == {"confirm": "https://notifier.example/receipt/EXAMPLE-TOKEN"}
    secrets = sample("policy-emergency-upgrade").event["data"]["confidential"]
    assert notice["confidential"] == secrets and secrets
    uncleared = contextual(
        "notice", "policy-emergency-upgrade", template="policy-change", confidential=False
    )
    assert uncleared["confidential"] is None
    digest = contextual("digest", "alert-firing", template="digest", variant="throttled")
    assert digest["details"]["reason"] == "throttled"
    assert len(digest["details"]["items"]) == 3


def test_sample_context_is_the_engines_context_for_the_same_notification() -> None:
    event = sample("policy-emergency-upgrade")
    built = sample_context(
        event,
        template="policy-change",
        status="escalated",
        locale="es",
        timezone="UTC",
        tier="partners",
        confidential=True,
    )
    stored = PendingNotification(
        id="n1",
        alert_id="a1",
        fingerprint="f",
        occurrence=1,
        kind="escalated-2",
        person_id="ada",
        channel="email",
        address="ada@example.org",
        recipient_name="Ada Lovelace",
        tier="partners",
        template="policy-change",
        clearance="confidential",
        locale="es",
        timezone="UTC",
        dispatches=0,
        payload=dict(event.event),
        details=None,
    )
    engine = template_context(stored, built["links"])
    assert {k: v for k, v in engine.items() if k != "details"} == {
        k: v for k, v in built.items() if k != "details"
    }


def test_an_unknown_status_or_variant_is_refused_by_sample_context() -> None:
    with pytest.raises(ValueError, match="exploded"):
        contextual("exploded", "alert-firing")
    with pytest.raises(ValueError, match="sideways"):
        contextual("escalated", "alert-firing", variant="sideways")
    assert contextual("escalated", "alert-firing", variant="no-step")["step"] is None
