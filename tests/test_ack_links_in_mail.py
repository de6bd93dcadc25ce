"""The acknowledgment link in alert emails: shown to firing alerts only, localized, escaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notifier.compose import compose, template_context
from notifier.i18n import Catalogs
from notifier.message import RenderedMessage
from notifier.settings import TemplateSettings
from notifier.store.outbox import PendingNotification
from notifier.templating import Renderer

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "config" / "samples"
TEMPLATES = ROOT / "templates"
LOCALES = ROOT / "locales"

ACK = "https://n.example/ack/TOKEN"
LANGUAGES = ["en", "de", "es"]
# What each language says: the text call to action, the HTML button, the confirmation hint.
WORDING = {
    "en": ("Take charge of this alert:", "Acknowledge", "opens a confirmation page"),
    "de": ("Übernehmen Sie diesen Alarm:", "Alarm quittieren", "öffnet eine Bestätigungsseite"),
    "es": (
        "Hágase cargo de esta alerta:",
        "Reconocer la alerta",
        "abre una página de confirmación",
    ),
}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    """The shipped templates and catalogs."""
    settings = TemplateSettings(directory=TEMPLATES, locales_directory=LOCALES)
    return Renderer(settings, Catalogs.load(LOCALES))


def notification(sample: str = "alert-firing.json", locale: str = "en") -> PendingNotification:
    """A claimed email notification of a sample alert event, for a Berlin reader."""
    payload = json.loads((SAMPLES / sample).read_text())
    return PendingNotification(
        id="n-1",
        alert_id="alert-42",
        fingerprint="fp-1",
        occurrence=1,
        kind=payload["data"]["status"],
        person_id="ada",
        channel="email",
        address="ada@example.org",
        recipient_name="Ada Lovelace",
        tier="responders",
        template="alert",
        clearance="internal",
        locale=locale,
        timezone="Europe/Berlin",
        dispatches=0,
        payload=payload,
    )


def render(
    renderer: Renderer,
    links: dict[str, str] | None,
    *,
    locale: str = "en",
    sample: str = "alert-firing.json",
) -> RenderedMessage:
    """Compose the sample alert for a reader of ``locale`` with ``links``."""
    return compose(renderer, notification(sample, locale), links).rendered


@pytest.mark.parametrize("locale", LANGUAGES)
def test_firing_alert_text_offers_the_link_in_the_readers_language(
    renderer: Renderer, locale: str
) -> None:
    """The text part says, in the reader's language, where to take charge, then the URL."""
    call, _button, hint = WORDING[locale]
    message = render(renderer, {"acknowledge": ACK}, locale=locale)
    assert f"{call} {ACK}\n" in message.text
    assert hint in message.text
    assert message.language == locale


@pytest.mark.parametrize("locale", LANGUAGES)
def test_firing_alert_html_has_an_acknowledge_button(renderer: Renderer, locale: str) -> None:
    """The HTML part links the button, labelled in the reader's language, to the URL."""
    _call, button, hint = WORDING[locale]
    html = render(renderer, {"acknowledge": ACK}, locale=locale).html or ""
    assert f'href="{ACK}"' in html
    assert f">{button}</a>" in html
    assert hint in html


@pytest.mark.parametrize("locale", LANGUAGES)
def test_other_languages_words_do_not_leak(renderer: Renderer, locale: str) -> None:
    """A reader sees the call to action of their language only."""
    message = render(renderer, {"acknowledge": ACK}, locale=locale)
    for other, (call, _button, _hint) in WORDING.items():
        if other != locale:
            assert call not in message.text


def test_link_is_escaped_in_html(renderer: Renderer) -> None:
    """Characters special to HTML in the address are escaped inside href, not interpreted."""
    link = 'https://n.example/ack/a&b"><script>x</script>'
    message = render(renderer, {"acknowledge": link})
    html = message.html or ""
    assert 'href="https://n.example/ack/a&amp;b&#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in html
    assert "<script>" not in html
    assert link in message.text  # plain text is not HTML: shown as given


@pytest.mark.parametrize("links", [None, {}], ids=["none", "empty"])
@pytest.mark.parametrize("locale", LANGUAGES)
def test_without_a_link_there_is_no_call_to_action(
    renderer: Renderer, locale: str, links: dict[str, str] | None
) -> None:
    """No acknowledge link, no call to action, no confirmation hint, in text or HTML."""
    call, button, hint = WORDING[locale]
    message = render(renderer, links, locale=locale)
    html = message.html or ""
    assert call not in message.text
    assert hint not in message.text
    assert hint not in html
    assert f">{button}</a>" not in html
    assert "/ack/" not in message.text + html


@pytest.mark.parametrize("locale", LANGUAGES)
def test_resolved_alert_never_offers_the_link(renderer: Renderer, locale: str) -> None:
    """A resolved alert has nothing to take charge of: the link is not shown even if given."""
    call, button, hint = WORDING[locale]
    message = render(renderer, {"acknowledge": ACK}, locale=locale, sample="alert-resolved.json")
    html = message.html or ""
    assert ACK not in message.text
    assert ACK not in html
    assert call not in message.text
    assert hint not in html
    assert f">{button}</a>" not in html


def test_a_non_web_link_is_never_offered(renderer: Renderer) -> None:
    """Only an http(s) address becomes a call to action; a ``javascript:`` one is dropped."""
    message = render(renderer, {"acknowledge": "javascript:alert(1)"})
    assert "javascript:" not in message.text
    assert "javascript:" not in (message.html or "")


def test_the_link_does_not_change_the_subject(renderer: Renderer) -> None:
    """The subject line is the same with and without an acknowledge link."""
    assert render(renderer, {"acknowledge": ACK}).subject == render(renderer, None).subject


def test_other_links_are_ignored_by_the_alert_template(renderer: Renderer) -> None:
    """Links the template does not know are passed but not shown (and do not break it)."""
    with_other = render(renderer, {"unsubscribe": "https://n.example/u/x"})
    assert with_other == render(renderer, None)


def test_context_always_has_a_links_mapping() -> None:
    """``links`` is an empty dict when none are given, and a copy of the mapping otherwise."""
    given = {"acknowledge": ACK}
    assert template_context(notification())["links"] == {}
    context = template_context(notification(), given)
    assert context["links"] == given
    assert context["links"] is not given
