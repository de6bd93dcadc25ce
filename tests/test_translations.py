"""The translation console's catalog logic: extraction, gaps, edits, and compiling texts."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from notifier.errors import ConfigError
from notifier.i18n import Catalogs, read_po_texts
from notifier.translations import (
    Entry,
    MessageRef,
    TranslationError,
    apply_edits,
    entries,
    template_messages,
    untranslated,
)

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "locales"
TEMPLATES = ROOT / "templates"
SHIPPED = ["de", "en", "es"]

RESOLVED = "[Resolved] %(summary)s"

SMALL_PO = """\
msgid ""
msgstr ""
"Language: de\\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\\n"
"Content-Type: text/plain; charset=utf-8\\n"

#. a label.
#: alert/email.text.j2:57
msgid "Severity"
msgstr "Schweregrad"

#: alert/email.text.j2:59
#, fuzzy
#| msgid "Risk level"
msgid "Risk"
msgstr "Risiko?"

#: alert/email.text.j2:62
msgid "Started"
msgstr ""

#: labels.j2:8
msgctxt "severity"
msgid "Critical"
msgstr "Kritisch"

#: digest/email.html.j2:32
#, python-format
msgid "%(count)s alert"
msgid_plural "%(count)s alerts"
msgstr[0] "%(count)s Alarm"
msgstr[1] ""

#: alert/email.subject.j2:5
#, python-format
msgid "[Resolved] %(summary)s"
msgstr "[Behoben] %(summary)s"
"""


def _shipped(language: str) -> str:
    return (LOCALES / language / "LC_MESSAGES" / "notifier.po").read_text(encoding="utf-8")


def _templates() -> dict[str, str]:
    return {
        path.relative_to(TEMPLATES).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(TEMPLATES.rglob("*.j2"))
    }


def _by_key(po_text: str) -> dict[tuple[str, str | None], Entry]:
    return {entry.key: entry for entry in entries(po_text, "de")}


def _ref(msgid: str, context: str | None = None, plural: str | None = None) -> MessageRef:
    return MessageRef(msgid, plural, context, (("alert/email.text.j2", 1),))


# ---------------------------------------------------------------------------------------------
# Extraction


def test_extraction_finds_the_alert_subjects_with_locations_and_notes() -> None:
    """The alert subject template's five messages come out with their line and translator note."""
    source = (TEMPLATES / "alert" / "email.subject.j2").read_text(encoding="utf-8")
    found = template_messages({"alert/email.subject.j2": source})
    assert [ref.msgid for ref in found] == [
        RESOLVED,
        "[Acknowledged] %(summary)s",
        "[%(severity)s] Escalation step %(step)s: %(summary)s",
        "[%(severity)s] Escalated alert: %(summary)s",
        "[%(severity)s] Alert: %(summary)s",
    ]
    assert found[0] == MessageRef(
        RESOLVED,
        None,
        None,
        (("alert/email.subject.j2", 5),),
        ("email subject of a resolved alert; the summary is the monitoring system's text.",),
    )


def test_extraction_of_every_template_matches_the_shipped_pot() -> None:
    """Same messages, plurals, contexts and locations as `notifier templates extract` wrote."""
    with (LOCALES / "notifier.pot").open("rb") as fh:
        pot = [message for message in read_po(fh) if message.id]
    found = {ref.key: ref for ref in template_messages(_templates())}
    expected = {}
    for message in pot:
        msgid, plural = (message.id, None) if isinstance(message.id, str) else message.id
        # The POT wraps long notes over several comment lines.
        note = " ".join(message.auto_comments)
        expected[(msgid, message.context)] = (plural, tuple(message.locations), note)
    actual = {key: (r.plural, r.locations, " ".join(r.comments)) for key, r in found.items()}
    assert actual == expected
    assert len(found) > 100


def test_extraction_merges_repeats_and_keeps_contexts_apart() -> None:
    """One msgid used twice is listed once with both places; a pgettext context is its own."""
    found = template_messages(
        {
            "a.j2": '{{ _("Hi") }}\n{{ pgettext("greeting", "Hi") }}\n',
            "b.j2": '\n\n{{ ngettext("%(num)s alert", "%(num)s alerts", 2) }} {{ _("Hi") }}\n',
        }
    )
    assert found == [
        MessageRef("Hi", None, None, (("a.j2", 1), ("b.j2", 3))),
        MessageRef("Hi", None, "greeting", (("a.j2", 2),)),
        MessageRef("%(num)s alert", "%(num)s alerts", None, (("b.j2", 3),)),
    ]


def test_a_template_syntax_error_names_the_file_and_line() -> None:
    """A broken template is refused with its path and line, not skipped as Babel would."""
    with pytest.raises(TranslationError, match=r"^broken\.j2:3: template syntax error"):
        template_messages({"ok.j2": "{{ _('Hi') }}", "broken.j2": "a\n{% if x %}\n{% endfor %}\n"})


# ---------------------------------------------------------------------------------------------
# Reading catalogs


def test_entries_read_translations_plurals_contexts_and_fuzzy_flags() -> None:
    """entries() gives each message's translation and state, the header left out."""
    found = _by_key(SMALL_PO)
    assert list(found) == [
        ("Severity", None),
        ("Risk", None),
        ("Started", None),
        ("Critical", "severity"),
        ("%(count)s alert", None),
        (RESOLVED, None),
    ]
    severity = found["Severity", None]
    assert (severity.translation, severity.translated, severity.comments) == (
        "Schweregrad",
        True,
        ("a label.",),
    )
    assert (found["Risk", None].fuzzy, found["Risk", None].translated) == (True, False)
    assert found["Started", None].translated is False
    count = found["%(count)s alert", None]
    assert (count.plural, count.translation) == ("%(count)s alerts", ("%(count)s Alarm", ""))
    assert count.translated is False  # one plural form is empty
    assert count.placeholders == ("count",)
    assert found[RESOLVED, None].placeholders == ("summary",)


def test_untranslated_lists_missing_fuzzy_and_empty_messages_in_order() -> None:
    """A message absent from the catalog, a fuzzy one and empty ones are gaps; others are not."""
    wanted = [
        _ref("Severity"),
        _ref("Risk"),
        _ref("Duration"),
        _ref("Critical", "severity"),
        _ref("Critical", "risk"),
        _ref("%(count)s alert", plural="%(count)s alerts"),
        _ref("Started"),
        _ref(RESOLVED),
    ]
    gaps = untranslated(SMALL_PO, "de", wanted)
    assert [ref.key for ref in gaps] == [
        ("Risk", None),
        ("Duration", None),
        ("Critical", "risk"),
        ("%(count)s alert", None),
        ("Started", None),
    ]
    # Only a plural entry serves ngettext: a singular one is a gap for a plural message.
    assert untranslated(SMALL_PO, "de", [_ref("Critical", "severity", plural="Criticals")]) != []


def test_untranslated_is_empty_for_the_source_language_and_the_shipped_catalogs() -> None:
    """English needs no translation; the shipped de and es translate every template message."""
    messages = template_messages(_templates())
    assert untranslated(SMALL_PO, "en", messages) == []
    assert untranslated(SMALL_PO, "de", messages) != []
    assert untranslated(_shipped("de"), "de", messages) == []
    assert untranslated(_shipped("es"), "es", messages) == []


@pytest.mark.parametrize(
    ("po_text", "match"),
    [
        ('msgid "Severity"\nmsgstr "Schweregrad"\nthis is not po\n', "line 3: Unknown or misf"),
        ('msgid "Severity"\n', "missing msgstr for msgid 'Severity'"),
        ("  \n", "catalog is empty"),
        (SMALL_PO.replace("Language: de", "Language: es"), "for 'es', not 'de'"),
        (SMALL_PO.replace("nplurals=2", "nplurals=two"), "broken de catalog"),
    ],
)
def test_a_broken_catalog_is_a_translation_error(po_text: str, match: str) -> None:
    """Unparseable text, an empty text or another language's catalog is refused clearly."""
    with pytest.raises(TranslationError, match=match):
        entries(po_text, "de")
    with pytest.raises(TranslationError, match=match):
        apply_edits(po_text, "de", {})


# ---------------------------------------------------------------------------------------------
# Editing


def test_apply_edits_sets_one_translation_and_keeps_everything_else() -> None:
    """The edited text parses, has the new translation, and only that entry changed."""
    before = _shipped("de")
    after = apply_edits(before, "de", {(RESOLVED, None): "[Erledigt] %(summary)s"})
    read_po(StringIO(after), abort_invalid=True)
    old, new = _by_key(before), _by_key(after)
    assert new[RESOLVED, None].translation == "[Erledigt] %(summary)s"
    assert new[RESOLVED, None].translated
    del old[RESOLVED, None], new[RESOLVED, None]
    assert new == old  # order, comments and locations included
    header = before.split("\n\n", 1)[0]
    assert after.split("\n\n", 1)[0] == header
    changed = [line for line in after.splitlines() if line not in before.splitlines()]
    assert changed == ['msgstr "[Erledigt] %(summary)s"']


@pytest.mark.parametrize("language", SHIPPED)
def test_reapplying_every_shipped_translation_changes_nothing(language: str) -> None:
    """Every shipped translation passes the checks, and Babel writes the file back as it was."""
    text = _shipped(language)
    edits = {entry.key: entry.translation for entry in entries(text, language)}
    assert len(edits) > 100
    assert apply_edits(text, language, edits) == text


def test_an_edit_clears_the_fuzzy_flag_and_an_empty_edit_clears_the_translation() -> None:
    """Editing a fuzzy message makes it count; "" (or empty forms) makes a message a gap."""
    after = apply_edits(
        SMALL_PO,
        "de",
        {
            ("Risk", None): "Risiko",
            ("Severity", None): "",
            ("%(count)s alert", None): ("%(count)s Alarm", "%(count)s Alarme"),
        },
    )
    found = _by_key(after)
    assert (found["Risk", None].fuzzy, found["Risk", None].translated) == (False, True)
    assert found["Severity", None].translation == ""
    assert found["%(count)s alert", None].translated
    assert "fuzzy" not in after
    assert "Risk level" not in after  # the fuzzy match's previous msgid went with the flag
    # Babel keeps an unedited fuzzy message's previous msgid (as a comment "# | msgid").
    assert "Risk level" in apply_edits(SMALL_PO, "de", {("Started", None): "Beginn"})
    gaps = untranslated(after, "de", [_ref("Risk"), _ref("Severity"), _ref("Critical", "severity")])
    assert [ref.key for ref in gaps] == [("Severity", None)]
    cleared = apply_edits(after, "de", {("%(count)s alert", None): ""})
    assert _by_key(cleared)["%(count)s alert", None].translation == ("", "")


@pytest.mark.parametrize(
    ("translation", "why"),
    [
        ("[Behoben]", r"keep the placeholder %\(summary\)s"),
        ("[Behoben] %(summary)s %(secret)s", r"%\(secret\)s is not a placeholder"),
        ("[Behoben] %(zusammenfassung)s", r"keep the placeholder %\(summary\)s"),
        ("100 % behoben: %(summary)s", "write a percent sign as %%"),
        ("[Behoben] %s", "write a percent sign as %%"),
        ("[Behoben] %(summary)d", "incompatible format"),  # Babel's own check
    ],
)
def test_a_placeholder_mismatch_is_refused_naming_the_message(translation: str, why: str) -> None:
    """A translation that drops, invents or breaks a placeholder is refused, with the msgid."""
    with pytest.raises(TranslationError) as caught:
        apply_edits(_shipped("de"), "de", {(RESOLVED, None): translation})
    assert "'[Resolved] %(summary)s': " in str(caught.value)
    assert list(caught.value.problems) == [(RESOLVED, None)]
    assert any(re.search(why, reason) for reason in caught.value.problems[RESOLVED, None])


def test_every_refused_edit_is_listed_and_none_is_applied() -> None:
    """All bad edits are reported at once, including wrong plural shapes; good ones wait."""
    with pytest.raises(TranslationError) as caught:
        apply_edits(
            SMALL_PO,
            "de",
            {
                ("Risk", None): "Risiko",
                ("Severity", None): ("Schweregrad", "Schweregrade"),
                ("%(count)s alert", None): "%(count)s Alarme",
                ("Critical", "severity"): "Kritisch %(x)s",
            },
        )
    assert "refused 3 edit(s) to the de catalog" in str(caught.value)
    assert set(caught.value.problems) == {
        ("Severity", None),
        ("%(count)s alert", None),
        ("Critical", "severity"),
    }
    assert "'Critical' (context 'severity')" in str(caught.value)
    with pytest.raises(TranslationError, match="1 plural form"):
        apply_edits(SMALL_PO, "de", {("%(count)s alert", None): ["%(count)s Alarme"]})
    with pytest.raises(TranslationError, match="fill in every plural form"):
        apply_edits(SMALL_PO, "de", {("%(count)s alert", None): ["%(count)s Alarm", ""]})


def test_an_unknown_msgid_is_refused() -> None:
    """A form cannot add a message the catalog (or the given templates' list) does not have."""
    with pytest.raises(TranslationError, match="'Injected': not a message of this catalog"):
        apply_edits(SMALL_PO, "de", {("Injected", None): "Eingeschleust"})
    with pytest.raises(TranslationError, match="not a message of this catalog or the templates"):
        apply_edits(SMALL_PO, "de", {("Injected", None): "x"}, known=[("Duration", None)])
    with pytest.raises(TranslationError, match="'Severity' \\(context 'risk'\\): not a message"):
        apply_edits(SMALL_PO, "de", {("Severity", "risk"): "Schweregrad"})
    with pytest.raises(TranslationError, match="not a message"):
        apply_edits(SMALL_PO, "de", {("", None): "Language: de"})  # the header


def test_a_known_message_missing_from_the_catalog_is_added() -> None:
    """A template message the catalog lacks is added, as a plural when known as a MessageRef."""
    digest = MessageRef(
        "%(count)s grouped alert",
        "%(count)s grouped alerts",
        None,
        (("digest/email.html.j2", 27),),
        ("a note.",),
    )
    after = apply_edits(
        SMALL_PO,
        "de",
        {
            ("Duration", None): "Dauer",
            digest.key: ["%(count)s gruppierter Alarm", "%(count)s gruppierte Alarme"],
        },
        known={("Duration", None), digest},
    )
    found = _by_key(after)
    assert found["Duration", None].translation == "Dauer"
    added = found[digest.key]
    assert (added.plural, added.translated, added.locations, added.comments) == (
        "%(count)s grouped alerts",
        True,
        (("digest/email.html.j2", 27),),
        ("a note.",),
    )
    assert untranslated(after, "de", [digest, _ref("Duration")]) == []


# ---------------------------------------------------------------------------------------------
# Compiling texts for the engine


def test_catalogs_from_po_texts_render_as_catalogs_loaded_from_files() -> None:
    """The shipped texts compile to the same translations as the files on disk."""
    texts = read_po_texts(LOCALES)
    assert sorted(texts) == SHIPPED
    assert texts["de"] == _shipped("de")
    from_files, from_texts = Catalogs.load(LOCALES), Catalogs.from_po_texts(texts)
    assert from_texts.languages() == from_files.languages()
    for message in ("Severity", "Hello %(name)s,", RESOLVED):
        expected = from_files.resolve("de")[0].gettext(message)
        assert from_texts.resolve("de")[0].gettext(message) == expected != message
    assert from_texts.resolve("de_CH")[0].ngettext("%(count)s alert", "%(count)s alerts", 2) == (
        "%(count)s Alarme"
    )
    assert from_texts.resolve("es")[0].pgettext("severity", "Critical") == (
        from_files.resolve("es")[0].pgettext("severity", "Critical")
    )


def test_an_edited_text_compiles_and_renders_the_new_translation() -> None:
    """What apply_edits returns is what the engine will use."""
    edited = apply_edits(_shipped("de"), "de", {("Severity", None): "Schwere"})
    catalogs = Catalogs.from_po_texts({"de": edited, "es": _shipped("es")})
    assert catalogs.resolve("de")[0].gettext("Severity") == "Schwere"
    assert catalogs.resolve("es")[1] == "es"


def test_from_po_texts_refuses_a_broken_catalog_naming_it() -> None:
    """A text Babel's checks refuse, or cannot read, is a ConfigError naming the language."""
    bad = _shipped("de").replace('msgstr "Notiz von %(by)s:"', 'msgstr "Notiz von %(von)s:"')
    assert bad != _shipped("de")
    with pytest.raises(ConfigError, match=r"de/notifier\.po:\d+: 'Note from %\(by\)s:'"):
        Catalogs.from_po_texts({"de": bad})
    with pytest.raises(ConfigError, match=r"es/notifier\.po: cannot read catalog"):
        Catalogs.from_po_texts({"es": 'msgid "x"\n'})
    with pytest.raises(ConfigError, match="given twice"):
        Catalogs.from_po_texts({"de-CH": SMALL_PO, "de_CH": SMALL_PO})
