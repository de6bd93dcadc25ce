"""Catalog editing for the translation console: pure functions over ``.po`` text.

The console keeps each language's catalog as the full text of its ``notifier.po`` (a draft is
a new text awaiting approval). This module lists the templates' messages, reads a catalog's
entries, finds the gaps, and applies a translator's edits, refusing any that would break
rendering. Nothing here touches the database, the web or the disk; the engine compiles
approved texts with :meth:`notifier.i18n.Catalogs.from_po_texts`.

Parsing and writing go through Babel (``read_po``/``write_po``) and message extraction through
Jinja's Babel extractor with the project's options, so the console sees exactly the messages
and catalog text that ``notifier templates extract|update`` produce.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO, StringIO
from typing import TypeAlias

from babel import Locale, UnknownLocaleError
from babel.messages.catalog import PYTHON_FORMAT, Catalog, Message
from babel.messages.extract import extract
from babel.messages.pofile import PoFileError, read_po, write_po
from jinja2 import TemplateSyntaxError

from notifier.i18n import _COMMENT_TAGS, JINJA_EXTRACT_OPTIONS

MessageKey: TypeAlias = tuple[str, str | None]
"""A message's identity in a catalog: ``(msgid, context)`` (the singular for plurals)."""

# The width `notifier templates extract|update` write with, so an edit changes only its lines.
_PO_WIDTH = 100
# The header line naming the Babel that wrote a catalog (write_po always writes its own version).
_GENERATED_BY = re.compile(r'^"Generated-By: [^"\n]*"$', re.MULTILINE)
# Jinja's Babel extractor, named as `notifier templates extract` names it (Babel's types for a
# method given as a function do not match Jinja's, though the calls do).
_EXTRACT_METHOD = "jinja2.ext:babel_extract"
# Babel's extractor skips a template with a syntax error unless told not to be silent.
_EXTRACT_OPTIONS = {**JINJA_EXTRACT_OPTIONS, "silent": "false"}


class TranslationError(ValueError):
    """A catalog, template or edit the console must refuse; the message says what and why.

    ``problems`` maps each refused message of :func:`apply_edits` to its reasons, so a form
    can show them next to the fields (empty for errors about a whole catalog or template).
    """

    def __init__(self, message: str, problems: Mapping[MessageKey, Sequence[str]] | None = None):
        super().__init__(message)
        self.problems: dict[MessageKey, tuple[str, ...]] = {
            key: tuple(reasons) for key, reasons in (problems or {}).items()
        }


@dataclass(frozen=True)
class MessageRef:
    """A translatable message used by the templates, and where.

    ``locations`` are ``(template path, line)`` pairs; ``comments`` the notes left for
    translators (``{#- Translators: ... -#}``), as the POT carries them.
    """

    msgid: str
    plural: str | None
    context: str | None
    locations: tuple[tuple[str, int], ...]
    comments: tuple[str, ...] = ()

    @property
    def key(self) -> MessageKey:
        """The message's identity in a catalog: ``(msgid, context)``."""
        return (self.msgid, self.context)


@dataclass(frozen=True)
class Entry:
    """One message of a catalog and its translation.

    ``translation`` is a string, or one string per plural form for plural messages; an empty
    string (or all-empty forms) means untranslated. ``comments`` are the translator notes and
    ``locations`` the template lines, as the catalog records them.
    """

    msgid: str
    plural: str | None
    context: str | None
    translation: str | tuple[str, ...]
    fuzzy: bool
    comments: tuple[str, ...] = ()
    locations: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> MessageKey:
        """The message's identity in a catalog: ``(msgid, context)``."""
        return (self.msgid, self.context)

    @property
    def translated(self) -> bool:
        """Whether the engine uses this translation: every form filled in, and not fuzzy."""
        return not self.fuzzy and _complete(self.translation)

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The ``%(name)s`` names the English text uses (singular, then plural), once each."""
        return tuple(dict.fromkeys(_names(self.msgid) + _names(self.plural or "")))


def template_messages(files: Mapping[str, str]) -> list[MessageRef]:
    """List every translatable message of the given Jinja sources, ``{path: source text}``.

    Messages are keyed by ``(msgid, context)``: one used in several places is listed once,
    where first seen, with all its locations (and the first-seen plural). Raises
    TranslationError naming the file and line of a template that does not parse.
    """
    found: dict[MessageKey, MessageRef] = {}
    for path, source in files.items():
        try:
            extracted = list(
                extract(
                    _EXTRACT_METHOD,
                    BytesIO(source.encode("utf-8")),
                    comment_tags=_COMMENT_TAGS,
                    options=_EXTRACT_OPTIONS,
                    strip_comment_tags=True,
                )
            )
        except TemplateSyntaxError as exc:
            raise TranslationError(
                f"{path}:{exc.lineno}: template syntax error: {exc.message}"
            ) from None
        for lineno, message, comments, context in extracted:
            msgid, plural = (message, None) if isinstance(message, str) else message[:2]
            key = (msgid, context)
            seen = found.get(key)
            if seen is None:
                found[key] = MessageRef(
                    msgid, plural, context, ((path, lineno),), tuple(dict.fromkeys(comments))
                )
            else:
                # Merged as Babel merges a message into the POT: locations and notes added.
                found[key] = MessageRef(
                    seen.msgid,
                    seen.plural,
                    seen.context,
                    tuple(dict.fromkeys((*seen.locations, (path, lineno)))),
                    tuple(dict.fromkeys((*seen.comments, *comments))),
                )
    return list(found.values())


def entries(po_text: str, locale: str) -> list[Entry]:
    """List the messages of a catalog (not its header or obsolete ones), in catalog order.

    Raises TranslationError when the text is not a readable ``.po`` catalog for ``locale``.
    """
    return [_entry(message) for message in _parse(po_text, locale) if message.id]


def untranslated(
    po_text: str, locale: str, messages: Sequence[MessageRef], source_language: str = "en"
) -> list[MessageRef]:
    """Return the ``messages`` the catalog does not translate, in their order.

    A message is untranslated when the catalog lacks it, marks it fuzzy, leaves a form
    empty, or has it as a singular message where the templates use a plural. The source
    language needs no translation (the msgids are its text): nothing is untranslated there.
    """
    if _tag(locale) == _tag(source_language):
        return []
    catalog = _parse(po_text, locale)
    missing = []
    for ref in messages:
        found = catalog.get(ref.msgid, ref.context)
        if (
            found is None
            or found.fuzzy
            or not _complete(_string(found))
            # gettext looks plurals up as plurals: a singular entry never serves ngettext.
            or (ref.plural is not None and not found.pluralizable)
        ):
            missing.append(ref)
    return missing


def apply_edits(
    po_text: str,
    locale: str,
    edits: Mapping[MessageKey, str | Sequence[str]],
    known: Collection[MessageKey | MessageRef] | None = None,
) -> str:
    """Return the catalog text with ``edits`` applied: ``{(msgid, context): translation}``.

    A translation is a string, or one string per plural form for a plural message; an empty
    string clears it. Edited messages lose their fuzzy flag; everything else (header,
    comments, order) is kept as Babel writes it. An edit may only name a message of the
    catalog or, when given, of ``known`` (a message of ``known`` missing from the catalog is
    added; give it as a :class:`MessageRef` to add a plural one). Each translation must keep
    the msgid's ``%(name)s`` placeholders, invent none and pass Babel's catalog checks.

    Raises TranslationError listing every refused edit and why (nothing is applied then), or
    when the text is not a readable catalog for ``locale``.
    """
    catalog = _parse(po_text, locale)
    refs: dict[MessageKey, MessageRef | None] = {}
    for item in known or ():
        if isinstance(item, MessageRef):
            refs[item.key] = item
        else:
            refs.setdefault(item, None)
    problems: dict[MessageKey, list[str]] = {}
    for key, value in edits.items():
        msgid, context = key
        message = catalog.get(msgid, context) if msgid else None
        if message is None:
            if known is None or not msgid or key not in refs:
                where = "this catalog" if known is None else "this catalog or the templates"
                problems[key] = [f"not a message of {where}"]
                continue
            message = _new_message(key, refs[key])
            added = True
        else:
            added = False
        string, reasons = _edited_string(message, value, catalog)
        if not reasons:
            message.string = string
            message.flags.discard("fuzzy")
            # Babel reads a fuzzy match's "#| msgid" lines as translator comments "| msgid";
            # like gettext's tools, drop them with the flag they explain.
            message.user_comments = [c for c in message.user_comments if not c.startswith("|")]
            # Babel's own checks (plural count, placeholder kinds), as compiling runs them.
            reasons = [str(error) for error in message.check(catalog)]
        if reasons:
            problems[key] = reasons
        elif added:
            catalog[message.id] = message
    if problems:
        lines = [f"- {_label(key)}: {'; '.join(reasons)}" for key, reasons in problems.items()]
        raise TranslationError(
            f"refused {len(problems)} edit(s) to the {_tag(locale)} catalog:\n" + "\n".join(lines),
            problems,
        )
    buffer = BytesIO()
    write_po(buffer, catalog, width=_PO_WIDTH)
    return _keep_generated_by(buffer.getvalue().decode(catalog.charset), po_text)


def _keep_generated_by(written: str, original: str) -> str:
    """``written`` with the original catalog's ``Generated-By`` header line.

    Babel writes its own version there; an edit in the console must not turn into a header
    change whenever the installed Babel differs from the one that last wrote the file.
    """
    kept = _GENERATED_BY.search(original)
    if kept is None:
        return written
    return _GENERATED_BY.sub(lambda _: kept.group(0), written, count=1)


# ---------------------------------------------------------------------------------------------
# Helpers


def _tag(locale: str) -> str:
    """Normalize ``de-CH`` to ``de_CH``; raise TranslationError when it is not a locale."""
    try:
        return str(Locale.parse(locale.strip().replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError) as exc:
        raise TranslationError(f"unknown locale {locale!r} ({exc})") from None


def _parse(po_text: str, locale: str) -> Catalog:
    """Read a catalog's text; raise TranslationError when it is not one for ``locale``."""
    tag = _tag(locale)
    if not po_text.strip():
        # Babel reads "" as a catalog with a made-up header: a lost text, not a catalog.
        raise TranslationError(f"the {tag} catalog is empty: expected the text of a .po file")
    try:
        # Lines of str are parsed as they are: the header's charset only decodes bytes.
        catalog = read_po(StringIO(po_text), locale=tag, abort_invalid=True)
    except PoFileError as exc:
        reason = str(exc).removesuffix(f" on {exc.lineno}")
        raise TranslationError(
            f"broken {tag} catalog, line {exc.lineno + 1}: {reason}"
            + (f": {exc.line!r}" if exc.line else "")
        ) from None
    except ValueError as exc:  # e.g. an unreadable Plural-Forms header
        raise TranslationError(f"broken {tag} catalog: {exc}") from None
    # The header's Language wins over `locale` in Babel; a mismatch means a mixed-up text.
    declared = catalog.locale_identifier
    if declared and _same_locale(declared, tag) is False:
        raise TranslationError(
            f"the catalog text is for {declared!r}, not {tag!r} (its Language header)"
        )
    return catalog


def _same_locale(a: str, b: str) -> bool:
    try:
        return _tag(a) == _tag(b)
    except TranslationError:
        return False


def _string(message: Message) -> str | tuple[str, ...]:
    string = message.string
    return tuple(string) if isinstance(string, (list, tuple)) else string or ""


def _entry(message: Message) -> Entry:
    msgid, plural = (message.id, None) if isinstance(message.id, str) else message.id[:2]
    return Entry(
        msgid=msgid,
        plural=plural,
        context=message.context,
        translation=_string(message),
        fuzzy=message.fuzzy,
        comments=tuple(message.auto_comments),
        locations=tuple((path, line or 0) for path, line in message.locations),
    )


def _new_message(key: MessageKey, ref: MessageRef | None) -> Message:
    """The catalog message for a known message the catalog lacks, as ``update`` adds it."""
    msgid, context = key
    if ref is None:
        return Message(msgid, "", context=context)
    return Message(
        (msgid, ref.plural) if ref.plural is not None else msgid,
        "",
        locations=list(ref.locations),
        auto_comments=list(ref.comments),
        context=context,
    )


def _edited_string(
    message: Message, value: str | Sequence[str], catalog: Catalog
) -> tuple[str | tuple[str, ...], list[str]]:
    """Return the message's new string for ``value`` and the reasons to refuse it, if any."""
    forms = catalog.num_plurals
    if message.pluralizable:
        if isinstance(value, str):
            if value:
                return "", [f"a plural message: give {forms} forms, one per plural form"]
            return ("",) * forms, []
        string: str | tuple[str, ...] = tuple(value)
        if len(string) != forms:
            return "", [f"{len(string)} plural form(s) given, the catalog has {forms}"]
        if any(string) and not all(string):
            # A gap would render as an empty text for the counts that use that form.
            return "", ["fill in every plural form, or none to clear the translation"]
    else:
        if not isinstance(value, str):
            return "", ["not a plural message: give a single translation"]
        string = value
    texts = [string] if isinstance(string, str) else list(string)
    reasons = [
        reason
        for text in texts
        if text
        for reason in _format_problems(message, text, catalog.charset)
    ]
    return string, list(dict.fromkeys(reasons))


def _format_problems(message: Message, text: str, charset: str) -> list[str]:
    """Why ``text`` cannot stand for the message when the renderer formats it, if it cannot.

    The renderer uses Jinja's newstyle gettext, which always runs ``translation % variables``:
    every ``%`` must be a named placeholder the English text has, or ``%%``. Babel's check
    only refuses invented names; a dropped one would silently lose a fact from the message.
    """
    ids = [message.id] if isinstance(message.id, str) else list(message.id)
    names = [set(_names(msgid)) for msgid in ids]
    # A plural form may use a name only the singular or only the plural has (%(count)s).
    allowed, required = set.union(*names), set.intersection(*names)
    used = set(_names(text))
    reasons = [f"keep the placeholder %({name})s" for name in sorted(required - used)]
    reasons += [
        f"%({name})s is not a placeholder of this message"
        + (f" (it has {_listing(allowed)})" if allowed else "")
        for name in sorted(used - allowed)
    ]
    if any(name is None for name, _conversion in _specs(text)):
        reasons.append("write a percent sign as %%; other placeholders look like %(name)s")
    else:
        try:
            _ = text % defaultdict(int)  # as the renderer will, any value for any name
        except (ValueError, TypeError) as exc:
            reasons.append(f"not a valid text to format ({exc}); write a percent sign as %%")
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        reasons.append(f"has characters the catalog's charset {charset} cannot hold")
    return reasons


def _specs(text: str) -> list[tuple[str | None, str]]:
    """The ``(name, conversion)`` of each ``%`` placeholder of a text, by Babel's pattern.

    ``%%`` is left out; the name is None for a positional one (or a stray ``% s``).
    """
    specs: list[tuple[str | None, str]] = []
    for match in PYTHON_FORMAT.finditer(text):
        name, _flags, conversion = match.groups()
        if conversion != "%":
            specs.append((name, conversion))
    return specs


def _names(text: str) -> list[str]:
    return [name for name, _conversion in _specs(text) if name is not None]


def _listing(names: set[str]) -> str:
    return ", ".join(f"%({name})s" for name in sorted(names))


def _complete(translation: str | tuple[str, ...]) -> bool:
    if isinstance(translation, tuple):
        return bool(translation) and all(translation)
    return bool(translation)


def _label(key: MessageKey) -> str:
    msgid, context = key
    return repr(msgid) + (f" (context {context!r})" if context is not None else "")
