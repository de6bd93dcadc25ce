"""Translation catalogs, locale fallback and locale-aware formatting (Babel + gettext).

Catalogs live at ``<locales>/<lang>/LC_MESSAGES/notifier.po`` (domain ``notifier``); the
compiled ``.mo`` beside each is optional: a missing or stale one is compiled in memory, so a
fresh checkout runs without a build step. The ``extract``/``update``/``compile_catalogs``/
``untranslated`` functions implement ``notifier templates extract|update|compile``.
"""

from __future__ import annotations

import datetime as dt
import gettext
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from io import BytesIO, StringIO
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.lists import format_list
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po, write_po
from babel.numbers import format_decimal
from babel.support import Translations
from babel.units import format_unit

from notifier.errors import ConfigError

DOMAIN = "notifier"
# Same settings as babel.cfg: trimmed trans blocks and newstyle gettext, as the renderer uses.
JINJA_EXTRACT_OPTIONS = {
    "extensions": "jinja2.ext.i18n",
    "trimmed": "true",
    "newstyle_gettext": "true",
    "trim_blocks": "true",
    "lstrip_blocks": "true",
}
_COMMENT_TAGS = ("Translators:",)
_HEADER = """\
# Translations template for PROJECT.
# Copyright (C) YEAR ORGANIZATION
# Messages are extracted from templates/ by `notifier templates extract` and merged
# into each language's catalog by `notifier templates update`.
#"""


def parse_locale(locale: str) -> Locale:
    """Parse ``de_CH`` or ``de-CH`` into a babel Locale; raise ConfigError when it is not one."""
    try:
        return Locale.parse(locale.strip().replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"unknown locale {locale!r}: expected a language tag such as 'de' or 'de_CH' ({exc})"
        ) from None


def locale_chain(locale: str, default: str = "en") -> list[str]:
    """Return the catalogs to try for ``locale``, most specific first, ending with ``default``.

    ``de_CH`` gives ``["de_CH", "de", "en"]``; ``es-MX`` gives ``["es_MX", "es", "en"]``.
    """
    chain: list[str] = []
    for tag in (str(parse_locale(locale)), str(parse_locale(default))):
        parts = tag.split("_")
        for end in range(len(parts), 0, -1):
            candidate = "_".join(parts[:end])
            if candidate not in chain:
                chain.append(candidate)
    return chain


@lru_cache(maxsize=1024)  # parsing costs ~13 µs, and this runs once per render
def formatting_locale(locale: str, language: str) -> str:
    """Pick the locale that formats dates and numbers for a reader of ``locale``.

    The reader's own locale when its language is the one the text is in (a ``de_CH`` reader of
    German text gets Swiss number formats); otherwise the text's language, so a ``fr`` reader
    who gets the English fallback does not see French month names inside English sentences.
    """
    if parse_locale(locale).language == parse_locale(language).language:
        return locale.replace("-", "_")
    return language


def _languages_on_disk(locales_dir: Path) -> Iterator[tuple[str, Path]]:
    """Yield ``(language, LC_MESSAGES folder)`` for every folder holding a catalog."""
    if not locales_dir.is_dir():
        raise ConfigError(f"locales directory {locales_dir} does not exist")
    for folder in sorted(locales_dir.iterdir()):
        messages = folder / "LC_MESSAGES"
        if (messages / f"{DOMAIN}.po").is_file() or (messages / f"{DOMAIN}.mo").is_file():
            yield str(parse_locale(folder.name)), messages


def _read_po(po_path: Path, locale: str | None = None) -> Catalog:
    try:
        with po_path.open("rb") as fh:
            return read_po(fh, locale=locale, abort_invalid=True)
    except (OSError, PoFileError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{po_path}: cannot read catalog: {exc}") from None


def _read_po_text(text: str, name: str) -> Catalog:
    """Parse a catalog held as text (``name`` labels it in errors, like a file's path)."""
    try:
        # Lines of str are parsed as they are: the header's charset only decodes bytes.
        return read_po(StringIO(text), abort_invalid=True)
    except (PoFileError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot read catalog: {exc}") from None


def _compile(po_path: Path) -> bytes:
    """Compile a ``.po`` to ``.mo`` bytes; raise ConfigError listing every broken message.

    Placeholder mismatches are errors: a translation missing ``%(summary)s`` would fail, or
    silently drop facts, at render time.
    """
    return _compile_catalog(_read_po(po_path), str(po_path))


_PLACEHOLDER = re.compile(r"%\((\w+)\)")


def _dropped_placeholders(
    source: str | tuple[str, ...] | list[str], translation: str | tuple[str, ...] | list[str] | None
) -> list[str]:
    """The ``%(name)s`` placeholders every form must keep that a translated form leaves out
    (an empty translation is untranslated, not wrong)."""
    sources = [source] if isinstance(source, str) else list(source)
    forms = [translation] if isinstance(translation, str) else list(translation or ())
    if not any(forms):
        return []
    # In plurals a form may leave out what only the singular or the plural says (the count).
    required = set.intersection(*(set(_PLACEHOLDER.findall(s)) for s in sources))
    missing = {
        name for form in forms if form for name in required - set(_PLACEHOLDER.findall(form))
    }
    return [f"%({name})s" for name in sorted(missing)]


def _compile_catalog(catalog: Catalog, name: str) -> bytes:
    """Compile a parsed catalog (read from ``name``) to ``.mo`` bytes, as :func:`_compile`."""
    problems = [
        f"{name}:{message.lineno}: {message.id!r}: {error}"
        for message, errors in catalog.check()
        for error in errors
    ]
    # Babel's checks refuse invented placeholders, not missing ones: "[Behoben]" for
    # "[Resolved] %(summary)s" would compile and silently drop the alert's summary.
    problems += [
        f"{name}:{message.lineno}: {message.id!r}: translation drops {', '.join(missing)}"
        for message in catalog
        if message.id and not message.fuzzy
        for missing in [_dropped_placeholders(message.id, message.string)]
        if missing
    ]
    if problems:
        raise ConfigError("broken translations:\n" + "\n".join(problems))
    buffer = BytesIO()
    write_mo(buffer, catalog)
    return buffer.getvalue()


def read_po_texts(locales_dir: Path) -> dict[str, str]:
    """Return ``{language: text of its notifier.po}`` for every catalog folder on disk.

    A folder with only a compiled ``.mo`` has no text and is left out. Raises ConfigError for
    a missing folder or a ``.po`` that cannot be read as UTF-8 (what ``extract`` writes).
    """
    texts: dict[str, str] = {}
    for language, messages in _languages_on_disk(locales_dir):
        po_path = messages / f"{DOMAIN}.po"
        if not po_path.is_file():
            continue
        try:
            texts[language] = po_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{po_path}: cannot read catalog: {exc}") from None
    return texts


class Catalogs:
    """Every compiled catalog, loaded once, and the fallback logic that picks one per reader."""

    def __init__(self, translations: dict[str, Translations], default_locale: str = "en") -> None:
        self._translations = translations
        self._default = str(parse_locale(default_locale))
        self._resolved: dict[str, tuple[gettext.NullTranslations, str]] = {}
        # A de_CH catalog that lacks a message falls back to de, then to the default.
        for language, catalog in translations.items():
            for other in locale_chain(language, self._default)[1:]:
                if other in translations:
                    catalog.add_fallback(translations[other])
                    break

    @classmethod
    def load(cls, locales_dir: Path, default_locale: str = "en") -> Catalogs:
        """Load ``<locales_dir>/<lang>/LC_MESSAGES/notifier.mo`` for every language present.

        A ``.mo`` that is missing or older than its ``.po`` is compiled from the ``.po`` in
        memory. Raises ConfigError for a missing folder or a broken catalog.
        """
        loaded: dict[str, Translations] = {}
        for language, messages in _languages_on_disk(locales_dir):
            po, mo = messages / f"{DOMAIN}.po", messages / f"{DOMAIN}.mo"
            stale = not mo.is_file() or (po.is_file() and po.stat().st_mtime > mo.stat().st_mtime)
            data = _compile(po) if stale else mo.read_bytes()
            loaded[language] = Translations(BytesIO(data), domain=DOMAIN)
        return cls(loaded, default_locale)

    @classmethod
    def from_po_texts(cls, texts: Mapping[str, str], default_locale: str = "en") -> Catalogs:
        """Compile catalogs held as ``.po`` text, ``{language: text}``, as :meth:`load` does.

        The texts are checked like files (Babel's placeholder and plural-form checks). Raises
        ConfigError for a key that is not a locale, a language given twice (``de-CH`` and
        ``de_CH``) or a broken catalog; errors name a catalog as ``<language>/notifier.po``.
        """
        loaded: dict[str, Translations] = {}
        for locale, text in texts.items():
            language = str(parse_locale(locale))
            if language in loaded:
                raise ConfigError(f"catalog {language!r} given twice (as {locale!r} too)")
            name = f"{language}/{DOMAIN}.po"
            data = _compile_catalog(_read_po_text(text, name), name)
            loaded[language] = Translations(BytesIO(data), domain=DOMAIN)
        return cls(loaded, default_locale)

    def languages(self) -> list[str]:
        """List the languages messages can be rendered in (the default source language too)."""
        return sorted({*self._translations, self._default})

    def resolve(self, locale: str) -> tuple[gettext.NullTranslations, str]:
        """Return the translations for ``locale`` and the language they are in.

        The first catalog of :func:`locale_chain` wins (``de`` for ``de_CH``); when none
        exists the default language is used, untranslated if it has no catalog of its own.
        Raises ConfigError for a string that is not a locale.
        """
        cached = self._resolved.get(locale)
        if cached is not None:
            return cached
        result: tuple[gettext.NullTranslations, str] = (gettext.NullTranslations(), self._default)
        for language in locale_chain(locale, self._default):
            if language in self._translations:
                result = (self._translations[language], language)
                break
        self._resolved[locale] = result
        return result


# ---------------------------------------------------------------------------------------------
# Formatting

UnitLength = Literal["short", "long", "narrow"]
_DURATION_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


@dataclass(frozen=True, slots=True)
class Formatter:
    """Babel formatting for one reader: their locale's conventions, their timezone's clock."""

    locale: Locale
    tzinfo: ZoneInfo

    def datetime(self, value: dt.datetime, format: str = "long") -> str:
        """Format an aware datetime in the reader's timezone.

        ``format`` is ``short``/``medium``/``long``/``full`` or a CLDR pattern; the default
        ``long`` names the zone, so readers in different places can compare times.
        """
        return format_datetime(_aware(value), format, tzinfo=self.tzinfo, locale=self.locale)

    def date(self, value: dt.date, format: str = "long") -> str:
        """Format a date, or the reader's calendar date of an aware datetime."""
        if isinstance(value, dt.datetime):
            value = _aware(value).astimezone(self.tzinfo).date()
        return format_date(value, format, locale=self.locale)

    def number(self, value: int | float | Decimal, format: str | None = None) -> str:
        """Format a number with the locale's separators (``1,234.5`` / ``1.234,5``)."""
        return format_decimal(value, format, locale=self.locale)

    def timedelta(self, value: dt.timedelta, parts: int = 2, length: UnitLength = "long") -> str:
        """Format a duration exactly, with up to ``parts`` units: ``1 hour and 12 minutes``.

        Unlike ``babel.dates.format_timedelta``, which rounds 59 minutes to "1 hour", an
        incident's duration is reported as measured (down to its ``parts`` largest units).
        """
        remaining = int(abs(value.total_seconds()))
        pieces: list[str] = []
        for unit, size in _DURATION_UNITS:
            count, remaining = divmod(remaining, size)
            if count and len(pieces) < parts:
                pieces.append(format_unit(count, f"duration-{unit}", length, locale=self.locale))
        if not pieces:
            return format_unit(0, "duration-second", length, locale=self.locale)
        # The "standard" list style reads naturally in a sentence; some locales' "unit" list
        # data is incomplete in Babel (KeyError for es).
        return format_list(pieces, style="standard", locale=self.locale)


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: expected a timezone-aware value")
    return value


@lru_cache(maxsize=1024)
def formatter(locale: str, timezone: str) -> Formatter:
    """Return the formatter for a locale and an IANA timezone; raise ConfigError if unknown."""
    try:
        tzinfo = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown timezone {timezone!r}: expected an IANA name ({exc})") from None
    return Formatter(parse_locale(locale), tzinfo)


# ---------------------------------------------------------------------------------------------
# Catalog workflow (extract → update → translate → compile)


def extract(templates_dir: Path, pot_path: Path) -> int:
    """Extract every translatable message from the templates into ``pot_path``.

    Keeps the previous POT's creation date, so the file only changes when messages do.
    Returns the number of messages.
    """
    created = _read_po(pot_path).creation_date if pot_path.is_file() else None
    catalog = Catalog(
        project=DOMAIN,
        copyright_holder="the notifier authors",
        msgid_bugs_address="",
        header_comment=_HEADER,
        charset="utf-8",
        fuzzy=False,
    )
    if created is not None:
        catalog.creation_date = created
    found = extract_from_dir(
        templates_dir,
        method_map=[("**.j2", "jinja2.ext:babel_extract")],
        options_map={"**.j2": JINJA_EXTRACT_OPTIONS},
        comment_tags=_COMMENT_TAGS,
        strip_comment_tags=True,
        # Babel's default also skips folders starting with "_", which templates may use.
        directory_filter=lambda path: not os.path.basename(path).startswith("."),
    )
    for filename, lineno, message, comments, context in found:
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    pot_path.parent.mkdir(parents=True, exist_ok=True)
    with pot_path.open("wb") as fh:
        write_po(fh, catalog, width=100)
    return len(catalog)


def update(
    pot_path: Path, locales_dir: Path, languages: list[str], *, source_language: str = "en"
) -> list[Path]:
    """Merge the POT into every existing ``.po`` and into ``languages``, creating missing ones.

    Returns the paths written. The source language's catalog is filled with msgstr = msgid,
    since the templates' text is already in that language.
    """
    existing = _languages_on_disk(locales_dir) if locales_dir.is_dir() else iter(())
    tags = [lang for lang, messages in existing if (messages / f"{DOMAIN}.po").is_file()]
    tags += [str(parse_locale(language)) for language in languages]
    written: list[Path] = []
    for tag in dict.fromkeys(tags):
        po_path = locales_dir / tag / "LC_MESSAGES" / f"{DOMAIN}.po"
        if po_path.is_file():
            catalog = _read_po(po_path, locale=tag)
            # A fresh POT per language: Babel adds the template's own message objects, so a
            # shared one would carry the source language's text into the next catalog.
            catalog.update(_read_po(pot_path), update_header_comment=True)
        else:
            catalog = _read_po(pot_path, locale=tag)
            catalog.revision_date = dt.datetime.now(dt.UTC)
            catalog.fuzzy = False
        if tag == str(parse_locale(source_language)):
            for message in catalog:
                if message.id and (message.fuzzy or not _complete(message.string)):
                    message.string = message.id
                    message.flags.discard("fuzzy")
        po_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("wb") as fh:
            write_po(fh, catalog, width=100)
        written.append(po_path)
    return written


def compile_catalogs(locales_dir: Path) -> list[Path]:
    """Write ``notifier.mo`` next to every ``notifier.po``; raise ConfigError if one is broken.

    Nothing is written unless every catalog compiles.
    """
    compiled = [
        (messages, _compile(messages / f"{DOMAIN}.po"))
        for _lang, messages in _languages_on_disk(locales_dir)
        if (messages / f"{DOMAIN}.po").is_file()
    ]
    written = []
    for messages, data in compiled:
        mo_path = messages / f"{DOMAIN}.mo"
        mo_path.write_bytes(data)
        written.append(mo_path)
    return written


def untranslated(locales_dir: Path, pot_path: Path) -> dict[str, list[str]]:
    """Return, per language with gaps, the msgids that are missing, fuzzy or empty.

    An empty result means every catalog translates every message of the POT.
    """
    template = _read_po(pot_path)
    gaps: dict[str, list[str]] = {}
    for language, messages in _languages_on_disk(locales_dir):
        if not (messages / f"{DOMAIN}.po").is_file():
            continue  # a compiled-only catalog cannot be checked
        catalog = _read_po(messages / f"{DOMAIN}.po")
        missing = []
        for wanted in template:
            if not wanted.id:
                continue  # the header
            found = catalog.get(wanted.id, wanted.context)
            if found is None or found.fuzzy or not _complete(found.string):
                missing.append(wanted.id if isinstance(wanted.id, str) else wanted.id[0])
        if missing:
            gaps[language] = missing
    return gaps


def _complete(string: str | tuple[str, ...] | list[str] | None) -> bool:
    if isinstance(string, (tuple, list)):
        return all(string)
    return bool(string)
