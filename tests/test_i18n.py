"""Catalog loading, locale fallback, the extract/update/compile workflow and formatting."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from babel.messages.pofile import read_po, write_po

from notifier.errors import ConfigError
from notifier.i18n import (
    Catalogs,
    compile_catalogs,
    extract,
    formatter,
    formatting_locale,
    locale_chain,
    untranslated,
    update,
)

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "locales"
POT = LOCALES / "notifier.pot"
TEMPLATES = ROOT / "templates"
SHIPPED = ["de", "en", "es"]


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    """A private copy of the shipped catalogs, without compiled .mo files."""
    target = tmp_path / "locales"
    shutil.copytree(LOCALES, target, ignore=shutil.ignore_patterns("*.mo"))
    return target


def _edit_po(po_path: Path, msgid: str, msgstr: str) -> None:
    with po_path.open("rb") as fh:
        catalog = read_po(fh)
    catalog[msgid].string = msgstr
    with po_path.open("wb") as fh:
        write_po(fh, catalog)


def _po(locales: Path, language: str) -> Path:
    return locales / language / "LC_MESSAGES" / "notifier.po"


@pytest.mark.parametrize(
    ("locale", "chain"),
    [
        ("de_CH", ["de_CH", "de", "en"]),
        ("es-MX", ["es_MX", "es", "en"]),
        ("en", ["en"]),
        ("en_GB", ["en_GB", "en"]),
        ("zh_Hant_TW", ["zh_Hant_TW", "zh_Hant", "zh", "en"]),
    ],
)
def test_locale_chain_goes_from_specific_to_default(locale: str, chain: list[str]) -> None:
    """A locale's chain lists it, its shorter forms, then the default language."""
    assert locale_chain(locale) == chain


def test_locale_chain_rejects_an_unknown_locale() -> None:
    """An unparseable locale raises ConfigError naming the value."""
    with pytest.raises(ConfigError, match="unknown locale 'xx_YY'"):
        locale_chain("xx_YY")


def test_shipped_catalogs_have_no_untranslated_messages() -> None:
    """Every shipped language translates every message of the POT (a gap fails the build)."""
    assert untranslated(LOCALES, POT) == {}


def test_shipped_pot_matches_the_templates(tmp_path: Path) -> None:
    """The committed POT holds exactly the messages the templates use (re-run extract if not)."""
    fresh = tmp_path / "notifier.pot"
    count = extract(TEMPLATES, fresh)
    with fresh.open("rb") as a, POT.open("rb") as b:
        extracted, shipped = read_po(a), read_po(b)
    assert count == len(extracted) > 40
    assert {(m.context, m.id) for m in extracted} == {(m.context, m.id) for m in shipped}


def test_load_compiles_po_in_memory_when_mo_is_missing(locales: Path) -> None:
    """Without .mo files (a fresh checkout) catalogs load straight from the .po files."""
    catalogs = Catalogs.load(locales)
    translations, language = catalogs.resolve("de")
    assert language == "de"
    assert translations.gettext("Severity") == "Schweregrad"
    assert not list(locales.glob("*/LC_MESSAGES/*.mo"))


def test_load_prefers_a_fresh_mo_and_recompiles_a_stale_one(locales: Path) -> None:
    """A .mo newer than its .po is used as is; an older one is ignored for the .po."""
    compile_catalogs(locales)
    po = _po(locales, "de")
    mo = po.with_suffix(".mo")
    _edit_po(po, "Severity", "Schwere")  # the .po now says something the .mo does not
    past = po.stat().st_mtime - 100
    os.utime(po, (past, past))
    assert Catalogs.load(locales).resolve("de")[0].gettext("Severity") == "Schweregrad"
    os.utime(mo, (past - 100, past - 100))
    assert Catalogs.load(locales).resolve("de")[0].gettext("Severity") == "Schwere"


@pytest.mark.parametrize(
    ("locale", "language"),
    [("de_CH", "de"), ("de-AT", "de"), ("es_MX", "es"), ("fr", "en"), ("en_US", "en")],
)
def test_resolve_reports_the_language_actually_used(locale: str, language: str) -> None:
    """resolve() picks the first catalog of the chain and says which language it is."""
    assert Catalogs.load(LOCALES).resolve(locale)[1] == language


def test_resolve_rejects_an_invalid_locale() -> None:
    """Resolving a string that is not a locale raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="'not a locale'"):
        Catalogs.load(LOCALES).resolve("not a locale")


def test_default_language_without_catalog_is_untranslated_source(tmp_path: Path) -> None:
    """With no catalog at all, the default language's NullTranslations returns the msgid."""
    (tmp_path / "locales").mkdir()
    translations, language = Catalogs.load(tmp_path / "locales").resolve("de")
    assert (translations.gettext("Severity"), language) == ("Severity", "en")


def test_regional_catalog_falls_back_to_its_language_per_message(locales: Path) -> None:
    """A de_CH catalog that lacks a message falls back to the de translation of it."""
    swiss = _po(locales, "de_CH")
    swiss.parent.mkdir(parents=True)
    with _po(locales, "de").open("rb") as fh:
        catalog = read_po(fh, locale="de_CH")
    catalog["Severity"].string = "Schweregrad (CH)"
    catalog.delete("Risk")
    with swiss.open("wb") as fh:
        write_po(fh, catalog)
    catalogs = Catalogs.load(locales)
    translations, language = catalogs.resolve("de_CH")
    assert language == "de_CH"
    assert translations.gettext("Severity") == "Schweregrad (CH)"
    assert translations.gettext("Risk") == "Risiko"
    assert catalogs.languages() == ["de", "de_CH", "en", "es"]


def test_missing_locales_directory_is_a_config_error(tmp_path: Path) -> None:
    """Loading from a folder that does not exist raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="does not exist"):
        Catalogs.load(tmp_path / "nowhere")


def test_untranslated_reports_empty_and_fuzzy_messages(locales: Path) -> None:
    """untranslated() lists, per language, messages with an empty or fuzzy translation."""
    _edit_po(_po(locales, "es"), "Severity", "")
    po = _po(locales, "de")
    with po.open("rb") as fh:
        catalog = read_po(fh)
    catalog["Risk"].flags.add("fuzzy")
    with po.open("wb") as fh:
        write_po(fh, catalog)
    assert untranslated(locales, POT) == {"de": ["Risk"], "es": ["Severity"]}


def test_compile_rejects_a_translation_with_wrong_placeholders(locales: Path) -> None:
    """A msgstr that drops or renames a %(name)s placeholder fails compilation, naming it."""
    _edit_po(_po(locales, "de"), "Hello %(name)s,", "Guten Tag %(nom)s,")
    with pytest.raises(ConfigError, match="Hello %\\(name\\)s"):
        compile_catalogs(locales)
    assert not list(locales.glob("*/LC_MESSAGES/*.mo"))
    with pytest.raises(ConfigError, match="broken translations"):
        Catalogs.load(locales)


def test_a_translation_that_drops_a_placeholder_is_refused(locales: Path) -> None:
    """Babel only refuses invented placeholders; a msgstr that leaves one out would silently
    drop the alert's facts, so it is refused too, naming the message and the placeholder."""
    _edit_po(_po(locales, "de"), "Hello %(name)s,", "Guten Tag,")
    with pytest.raises(ConfigError, match=r"'Hello %\(name\)s,': translation drops %\(name\)s"):
        Catalogs.load(locales)


def test_compile_writes_a_mo_per_language(locales: Path) -> None:
    """compile_catalogs() writes notifier.mo next to each notifier.po."""
    written = compile_catalogs(locales)
    assert sorted(p.parent.parent.name for p in written) == SHIPPED
    assert all(p.name == "notifier.mo" and p.stat().st_size > 0 for p in written)


def test_update_creates_new_catalogs_and_fills_the_source_language(locales: Path) -> None:
    """update() merges into every catalog, creates requested ones, and keeps English complete."""
    shutil.rmtree(locales / "en")
    written = update(POT, locales, ["en", "fr", "de"])
    assert written == [_po(locales, lang) for lang in ("de", "es", "en", "fr")]
    gaps = untranslated(locales, POT)
    assert set(gaps) == {"fr"}
    assert "Severity" in gaps["fr"]


def test_datetimes_are_shown_in_the_readers_timezone() -> None:
    """08:14Z reads 09:14 in Berlin (German format) and 3:14 AM in New York."""
    moment = datetime(2026, 11, 20, 8, 14, 3, tzinfo=UTC)
    assert "09:14" in formatter("de", "Europe/Berlin").datetime(moment, "short")
    # CLDR puts a narrow no-break space before AM/PM.
    assert formatter("en", "America/New_York").datetime(moment) == (
        "November 20, 2026, 3:14:03\u202fAM EST"
    )
    assert formatter("de", "Asia/Tokyo").date(moment) == "20. November 2026"


def test_naive_datetimes_are_refused() -> None:
    """A datetime without a timezone cannot be shown in the reader's zone and is refused."""
    with pytest.raises(ValueError, match="naive"):
        formatter("en", "UTC").datetime(datetime(2026, 1, 1))


def test_unknown_timezone_is_a_config_error() -> None:
    """An unknown IANA timezone raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        formatter("en", "Mars/Olympus")


@pytest.mark.parametrize(
    ("locale", "minutes", "expected"),
    [
        ("en", 59, "59 minutes"),
        ("de", 59, "59 Minuten"),
        ("es", 72, "1 hora y 12 minutos"),
        ("en", 60 * 26 + 5, "1 day and 2 hours"),
        ("de", 0, "0 Sekunden"),
    ],
)
def test_timedeltas_are_exact_and_localized(locale: str, minutes: int, expected: str) -> None:
    """Durations keep their two largest units instead of rounding 59 minutes to an hour."""
    assert formatter(locale, "UTC").timedelta(timedelta(minutes=minutes)) == expected


def test_numbers_use_the_locales_separators() -> None:
    """Numbers are grouped and punctuated the reader's way."""
    assert formatter("en", "UTC").number(291200.5) == "291,200.5"
    assert formatter("de", "UTC").number(291200.5) == "291.200,5"


def test_formatting_follows_the_reader_unless_the_text_fell_back() -> None:
    """Regional formats apply to text in the reader's language, not to a fallback language."""
    assert formatting_locale("de_CH", "de") == "de_CH"
    assert formatting_locale("es-MX", "es") == "es_MX"
    assert formatting_locale("fr", "en") == "en"
