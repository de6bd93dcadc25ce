"""Sandboxed, localized rendering of the pre-approved message templates.

Templates live at ``<templates>/<template>/<channel>.<part>.j2`` with parts ``subject`` and
``text`` (required) and ``html`` (optional); shared macros (``labels.j2``) sit at the top level.
A channel with no parts of its own in a template (Slack, webhooks) renders the ``email``
subject and text (not the HTML, which is the email's own layout).
Event data is only ever template *context*, never template source: a summary containing
``{{ 7*7 }}`` is printed as written, and HTML parts escape it.

Render context contract (built by the engine; templates may rely on exactly this)::

    kind:          "alert" | "policy"   (for every status: reminders and updates are about an
                   alert, receipt-reminder/receipt-overdue about a policy notice, unreachable
                   about either)
    status:        "firing" | "escalated" | "resolved" | "notice" | "acknowledged"
                   | "ack-reminder" | "ack-escalated" | "update-due" | "status-update"
                   | "receipt-reminder" | "receipt-overdue" | "unreachable" | "digest"
    step:          int | None   (1-based number of the escalation step, reminder or scheduled
                   update; None otherwise)
    details:       dict, always present, may be empty; per status (times are aware datetimes,
                   durations datetime.timedelta):
                     acknowledged      {by: str (display name), at, note: str | None}
                     resolved          {by, at, note} when a person resolved it by hand;
                                       {} when the monitoring system did
                     ack-reminder      {acknowledged_at, open_for, reminders_left: int}
                     ack-escalated     {by: str (who acknowledged), acknowledged_at, open_for}
                     update-due        {state: "firing" | "acknowledged", by: str | None,
                                       open_for, every, last_update_at (datetime | None)}
                     status-update     {state: "firing" | "acknowledged", by: str | None,
                                       open_for, update: str | None (latest status text
                                       posted by the commander), update_by: str | None,
                                       update_at (datetime | None)}
                     receipt-reminder  {deadline}
                     receipt-overdue   {deadline, pending: list of {name: str,
                                       organization: str | None, tier: str}}
                     unreachable       {person: str (display name of the person whose
                                       every contact failed), channel: "email" | "slack"
                                       | "webhook" (the last channel tried), reason:
                                       "client" | "server" | "auth" | "rate_limited"
                                       | "timeout" | "template" | "other"}   (to the incident
                                       commander; step None; an unknown channel or reason
                                       is shown as it arrived)
                     digest            {reason: "grouped" | "throttled" | "quiet", group:
                                       dict[str, str] | None (the grouping labels), due_at,
                                       count: int (alerts in the digest), items: list of
                                       {alert_id, name, severity, status, summary, labels}
                                       (the first ones; count may be larger)}
                   Read ``details["update"]``: ``details.update`` is the dict method, which
                   the sandbox refuses.
    alert:         (kind == "alert" only) {id, fingerprint, alertname, severity,
                   risk (str | None), labels: dict[str, str], summary,
                   description (str | None), runbook_url (str | None),
                   starts_at (aware datetime | None), ends_at (aware datetime | None), source}
    policy:        (kind == "policy" only) {policy_id, version, change, risk, title, summary,
                   effective_at (aware datetime), authorized_by, affected: list[str],
                   action_items: list[str], rollback_plan (str | None)}
    confidential:  dict[str, Any] | None   (None unless the recipient's tier is cleared)
    recipient:     {name, locale, timezone}
    tier:          str
    event:         {id, source, time (aware datetime | None)}
    links:         {acknowledge?: str, confirm?: str, incident?: str}   (addresses made for
                   this recipient: ``confirm`` opens a "confirm receipt" page, ``incident``
                   the alert's page in the web console; may be empty: test with
                   ``links.get("confirm")`` and ``is weburl``, never assume a key)

    (Shipped templates by status: "alert" firing, escalated, acknowledged, resolved;
    "reminder" ack-reminder, ack-escalated, update-due, unreachable; "status-update"
    status-update; "receipt" receipt-reminder, receipt-overdue; "policy-change",
    "public-advisory" notice; "digest" digest.)

Enum values (severity, risk, change) arrive as plain strings such as ``"critical"`` or
``"emergency_upgrade"``; ``labels.j2`` turns them into translated labels. The renderer adds
``gettext``, ``ngettext``, ``pgettext`` and ``_`` bound to the reader's catalog, ``language``
(the catalog used), the filters ``datetime``, ``date``, ``number`` and ``timedelta`` (reader's
locale and timezone), and the test ``weburl`` (an http(s) link, safe for ``href``).

The engine also calls macros of ``labels.j2`` itself, outside any template (see
:meth:`Renderer.labels`): ``status(value)``, ``slack(word)`` and ``slack_reply(reply, outcome,
name)`` give Slack's headings, buttons and replies in the reader's language (the calls are
:data:`notifier.compose.SLACK_WORDS` and ``SLACK_REPLIES``; the linter renders each).
"""

from __future__ import annotations

import gettext
import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import (
    BaseLoader,
    BytecodeCache,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateRuntimeError,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    pass_context,
)
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.bccache import Bucket
from jinja2.environment import TemplateModule
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from notifier.errors import TemplateError
from notifier.i18n import Catalogs, Formatter, formatter, formatting_locale
from notifier.message import RenderedMessage
from notifier.settings import TemplateSettings

PARTS = ("subject", "text", "html")
_REQUIRED = frozenset({"subject", "text"})
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
# Where the render's Formatter travels in the context, for the pass_context filters.
_FORMATTER = "_formatter"
# Errors a filter or a translation can raise on bad data; reported as template errors.
_DATA_ERRORS = (TypeError, ValueError, LookupError, ArithmeticError)

Translators = dict[str, Callable[..., str]]


@dataclass(frozen=True, slots=True)
class _Bundle:
    """The compiled parts of one template for one channel, the hash of their sources and the
    library versions they came from (``alert v3, shared v1``; empty when read from files)."""

    parts: dict[str, Template]
    digest: str
    version: str = ""


FALLBACK_CHANNEL = "email"
SHARED = "shared"  # the library unit holding the top-level macro files (labels.j2)
LABELS = "labels.j2"  # the shared macros that translate fixed words (see Renderer.labels)


def unit_of(path: str) -> str:
    """The library unit a template file belongs to: its folder, or ``shared`` at the top."""
    folder, sep, _ = path.partition("/")
    return folder if sep else SHARED


def content_hash(sources: Mapping[str, str]) -> str:
    """The sha256 (hex) of a set of template files: each path, its length and its source."""
    digest = hashlib.sha256()
    for name in sorted(sources):
        data = sources[name].encode()
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


class Renderer:
    """Renders a template for one reader: their language, their timezone, size-checked."""

    def __init__(
        self,
        settings: TemplateSettings,
        catalogs: Catalogs,
        sources: Mapping[str, str] | None = None,
        versions: Mapping[str, int] | None = None,
    ) -> None:
        """Render the files under ``settings.directory``, or exactly ``sources`` when given
        (paths like ``alert/email.subject.j2`` -> source: the approved library set), whose
        units' version numbers ``versions`` (``{"alert": 3, "shared": 1}``) each message
        records."""
        self._settings = settings
        self._catalogs = catalogs
        self._loader: BaseLoader = FileSystemLoader(settings.directory)
        self._versions: Mapping[str, int] = {}
        self._env = environment(self._loader)
        self._bundles: dict[tuple[str, str], _Bundle] = {}
        self._translators: dict[str, Translators] = {}
        self._labels: dict[tuple[str, str, str], str | None] = {}
        self._label_modules: dict[str, TemplateModule] = {}
        if sources is not None:
            self.replace(sources, catalogs, versions or {})

    def replace(
        self, sources: Mapping[str, str], catalogs: Catalogs, versions: Mapping[str, int]
    ) -> None:
        """Render ``sources`` with ``catalogs`` from now on (a newly approved library set).

        Call it from the thread that renders (the engine's event loop): a render runs to its
        end without yielding, so none sees part of the old set and part of the new one, or
        caches an old template among the new set's.
        """
        loader = _LibraryLoader(dict(sources))
        self._loader, self._env = loader, environment(loader)
        self._catalogs, self._versions = catalogs, dict(versions)
        self._bundles, self._translators = {}, {}
        self._labels, self._label_modules = {}, {}

    @property
    def catalogs(self) -> Catalogs:
        """The catalogs messages are translated with."""
        return self._catalogs

    def render(
        self,
        template: str,
        channel: str,
        *,
        locale: str,
        timezone: str,
        context: Mapping[str, Any],
    ) -> RenderedMessage:
        """Render every part of ``template`` for ``channel`` in the reader's locale and timezone.

        Raises TemplateError (naming template, part, locale and problem) for a missing or
        broken template, an undefined variable, a sandbox violation or an oversized result;
        ConfigError for an unknown locale or timezone.
        """
        bundle = self._bundle(template, channel, locale)
        translations, language = self._catalogs.resolve(locale)
        variables = {
            **context,
            **self._translators_for(language, translations),
            "language": language,
            _FORMATTER: formatter(formatting_locale(locale, language), timezone),
        }
        out = {
            part: self._render_part(compiled, variables, _where(template, channel, part, locale))
            for part, compiled in bundle.parts.items()
        }
        # One line, always: a newline in a subject would let event data forge mail headers.
        subject = " ".join(out["subject"].split())
        where = _where(template, channel, "subject", locale)
        if not subject:
            raise TemplateError(f"{where}: the subject is empty")
        if len(subject) > self._settings.max_subject_chars:
            raise TemplateError(
                f"{where}: the subject is {len(subject)} characters, "
                f"limit is {self._settings.max_subject_chars}"
            )
        html = out.get("html")
        return RenderedMessage(
            subject=subject,
            text=out["text"].strip() + "\n",
            html=None if html is None else html.strip() + "\n",
            language=language,
            template_hash=bundle.digest,
            template_version=bundle.version,
        )

    def labels(self, locale: str, wanted: Mapping[str, tuple[str, str, str]]) -> dict[str, str]:
        """Translate fixed words with the macros of the approved ``labels.j2``.

        ``wanted`` maps a key to ``(macro, value, default)``: the result holds
        ``labels.<macro>(value)`` rendered in the reader's language, or ``default`` when the
        approved labels have no such macro (a library approved before it existed) or it fails.
        Words do not depend on the event, so each is rendered once per language.
        """
        language = self._catalogs.resolve(locale)[1]
        out: dict[str, str] = {}
        for key, (macro, value, default) in wanted.items():
            cached = (language, macro, value)
            if cached not in self._labels:
                self._labels[cached] = self._label(language, macro, (value,))
            out[key] = self._labels[cached] or default
        return out

    def label(self, locale: str, macro: str, *args: str, default: str) -> str:
        """``labels.<macro>(*args)`` in the reader's language, or ``default`` (as
        :meth:`labels`, for words around a value such as a name: not cached)."""
        return self._label(locale, macro, args) or default

    def word(self, locale: str, macro: str, *args: str) -> str | None:
        """``labels.<macro>(*args)`` in the reader's language, on one line; None when
        ``labels.j2`` has no such macro. Raises TemplateError when it fails (the linter's
        view: :meth:`labels` and :meth:`label` use their default instead)."""
        translations, language = self._catalogs.resolve(locale)
        try:
            module = self._label_modules.get(language)
            if module is None:
                variables = {**self._translators_for(language, translations), "language": language}
                module = self._env.get_template(LABELS).make_module(variables)
                self._label_modules[language] = module
            call = getattr(module, macro, None)
            if not callable(call):
                return None
            try:
                said = str(call(*args))
            except Exception:
                # Called from Python, not through render(): let Jinja point the traceback
                # at labels.j2's lines, as it does for renders (it re-raises).
                self._env.handle_exception()
            return " ".join(said.split())
        except (JinjaTemplateError, *_DATA_ERRORS) as exc:
            where = f"{LABELS}, macro {macro}({', '.join(map(repr, args))}), locale {locale}"
            raise TemplateError(f"{where}: {_describe(exc, self._settings.directory)}") from None

    def _label(self, locale: str, macro: str, args: tuple[str, ...]) -> str | None:
        try:
            return self.word(locale, macro, *args) or None
        except TemplateError:
            return None

    def template_hash(self, template: str, channel: str) -> str:
        """Return the sha256 (hex) of the sources of every part of ``template`` for ``channel``.

        Shared templates the parts import or include are part of the hash, since they change
        the output too. Computed once per renderer, like the compiled templates.
        """
        return self._bundle(template, channel, None).digest

    def templates(self) -> list[str]:
        """List the templates (folders holding at least one part)."""
        return sorted({folder for folder, _, _ in self._part_files()})

    def parts(self, template: str) -> dict[str, list[str]]:
        """Map each channel of ``template`` to the parts it has, in ``PARTS`` order."""
        _check_name(template)
        found: dict[str, list[str]] = {}
        for folder, channel, part in self._part_files():
            if folder == template:
                found.setdefault(channel, []).append(part)
        return {channel: sorted(ps, key=PARTS.index) for channel, ps in sorted(found.items())}

    def _part_files(self) -> list[tuple[str, str, str]]:
        """(template, channel, part) of every part file the loader has."""
        if isinstance(self._loader, FileSystemLoader) and not self._settings.directory.is_dir():
            return []
        found = []
        for path in self._loader.list_templates():
            folder, sep, name = path.partition("/")
            channel, _, rest = name.partition(".")
            part = rest.removesuffix(".j2")
            named = _NAME.match(folder) and _NAME.match(channel)
            if sep and "/" not in name and part in PARTS and named:
                found.append((folder, channel, part))
        return found

    # -----------------------------------------------------------------------------------------

    def _bundle(self, template: str, channel: str, locale: str | None) -> _Bundle:
        bundle = self._bundles.get((template, channel))
        if bundle is None:
            # A channel without parts of its own (Slack, webhooks) says what the email says:
            # the same approved subject and text (the channel builds its layout around them).
            _check_name(template)
            _check_name(channel)
            own = (template, channel, "subject") in self._part_files()
            bundle = self._load(template, channel if own else FALLBACK_CHANNEL, locale)
            if not own:  # the HTML is the email's layout: other channels build their own
                bundle = _Bundle(
                    {p: t for p, t in bundle.parts.items() if p != "html"},
                    bundle.digest,
                    bundle.version,
                )
            self._bundles[(template, channel)] = bundle
        return bundle

    def _load(self, template: str, channel: str, locale: str | None) -> _Bundle:
        _check_name(template)
        _check_name(channel)
        compiled: dict[str, Template] = {}
        sources: dict[str, str] = {}
        for part in PARTS:
            name = f"{template}/{channel}.{part}.j2"
            try:
                compiled[part] = self._env.get_template(name)
                self._collect_sources(name, sources)
            except TemplateNotFound as exc:
                if part in _REQUIRED or exc.name != name:
                    problem = f"template {exc.name} not found in {self._where_from()}"
                    raise TemplateError(
                        f"{_where(template, channel, part, locale)}: {problem}"
                    ) from None
            except JinjaTemplateError as exc:
                problem = _describe(exc, self._settings.directory)
                raise TemplateError(
                    f"{_where(template, channel, part, locale)}: {problem}"
                ) from None
        units = sorted({unit_of(name) for name in sources})
        version = ", ".join(
            f"{unit} v{self._versions[unit]}" for unit in units if unit in self._versions
        )
        return _Bundle(compiled, content_hash(sources), version)

    def _where_from(self) -> str:
        if isinstance(self._loader, FileSystemLoader):
            return str(self._settings.directory)
        return "the approved template library"

    def _collect_sources(self, name: str, sources: dict[str, str]) -> None:
        """Record the source of ``name`` and of every template it imports or includes."""
        if name in sources:
            return
        sources[name] = source = self._loader.get_source(self._env, name)[0]
        for referenced in _references(self._env, name, source):
            if referenced is None:
                # A computed name could let event data pick template source, and the hash
                # could not cover it.
                raise TemplateSyntaxError(
                    "imports and includes must name a fixed template", 1, name=name
                )
            # Compile it now, so the code rendered is the source hashed.
            self._env.get_template(referenced)
            self._collect_sources(referenced, sources)

    def _translators_for(
        self, language: str, translations: gettext.NullTranslations
    ) -> Translators:
        translators = self._translators.get(language)
        if translators is None:
            translators = self._translators[language] = _translators(translations)
        return translators

    def _render_part(self, compiled: Template, variables: dict[str, Any], where: str) -> str:
        limit = self._settings.max_body_bytes
        chunks: list[str] = []
        size = 0
        try:
            for chunk in compiled.generate(variables):
                chunks.append(chunk)
                size += len(chunk)
                # Characters never outnumber UTF-8 bytes: stop a runaway loop early.
                if size > limit:
                    break
        except (JinjaTemplateError, *_DATA_ERRORS) as exc:
            raise TemplateError(f"{where}: {_describe(exc, self._settings.directory)}") from None
        rendered = "".join(chunks)
        if len(rendered.encode()) > limit:
            raise TemplateError(f"{where}: renders more than {limit} bytes")
        return rendered


class _LibraryLoader(BaseLoader):
    """Templates from the approved library, each named by its path as its file name too, so
    runtime errors point at the file and line (a plain DictLoader says ``<template>``)."""

    def __init__(self, sources: dict[str, str]) -> None:
        self._sources = sources

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        """The source, with the template's path as its file name."""
        if template not in self._sources:
            raise TemplateNotFound(template)
        return self._sources[template], template, lambda: True

    def list_templates(self) -> list[str]:
        """Every path in the set."""
        return sorted(self._sources)


class _CompiledCache(BytecodeCache):
    """Compiled template code shared by every renderer in the process, by file and source.

    A new renderer (a newly approved set, a draft being previewed) then compiles only the
    files whose source changed: Jinja checks each entry against the source's checksum, and
    every environment here is configured alike (:func:`environment`). Bounded: previews of
    drafts being typed would otherwise add an entry per keystroke.
    """

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._code: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def load_bytecode(self, bucket: Bucket) -> None:
        """Fill ``bucket`` from the cache (Jinja discards it if the source changed)."""
        with self._lock:
            data = self._code.get(bucket.key)
            if data is not None:
                self._code.move_to_end(bucket.key)
        if data is not None:
            bucket.bytecode_from_string(data)

    def dump_bytecode(self, bucket: Bucket) -> None:
        """Keep what was just compiled."""
        data = bucket.bytecode_to_string()
        with self._lock:
            self._code[bucket.key] = data
            self._code.move_to_end(bucket.key)
            while len(self._code) > self._size:
                self._code.popitem(last=False)


_COMPILED = _CompiledCache()
_REFERENCES: OrderedDict[str, tuple[str | None, ...]] = OrderedDict()
_REFERENCES_LOCK = threading.Lock()


def _references(env: Environment, name: str, source: str) -> tuple[str | None, ...]:
    """The templates ``source`` imports or includes (None for a computed name).

    Remembered by name and source: finding them means parsing the file, which costs as much
    as compiling it, and a preview builds a renderer per edit of one file.
    """
    key = hashlib.sha256(f"{name}\0{source}".encode()).hexdigest()
    with _REFERENCES_LOCK:
        found = _REFERENCES.get(key)
    if found is None:
        found = tuple(meta.find_referenced_templates(env.parse(source, name)))
        with _REFERENCES_LOCK:
            _REFERENCES[key] = found
            while len(_REFERENCES) > 1024:
                _REFERENCES.popitem(last=False)
    return found


def environment(loader: BaseLoader) -> ImmutableSandboxedEnvironment:
    """Build the sandbox every template runs in.

    ImmutableSandboxedEnvironment: templates may not mutate event data either (one context
    may be shared by several recipients' renders). ``auto_reload=False``: templates are
    compiled once per renderer, the snapshot ``template_hash`` describes; with reloading on,
    an edited shared macro file would render under the old hash. Speed is not the reason:
    measured with the alert template, reloading's stat per import was within noise (<3%).
    A new template version means a new Renderer.
    """
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=StrictUndefined,
        autoescape=_autoescape,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        cache_size=-1,  # never evict: a reload from disk could differ from the hashed source
        finalize=_no_none,
        bytecode_cache=_COMPILED,
    )
    env.policies["ext.i18n.trimmed"] = True
    env.newstyle_gettext = True  # type: ignore[attr-defined]
    # Real translators come with each render's context; these globals only catch shared
    # macros imported without "with context", which would otherwise silently be English.
    env.globals.update(gettext=_no_catalog, ngettext=_no_catalog, pgettext=_no_catalog)
    env.globals["_"] = _no_catalog
    env.filters.update(
        datetime=_formatting_filter(Formatter.datetime),
        date=_formatting_filter(Formatter.date),
        number=_formatting_filter(Formatter.number),
        timedelta=_formatting_filter(Formatter.timedelta),
    )
    env.tests["weburl"] = _is_web_url
    return env


def _autoescape(name: str | None) -> bool:
    # HTML parts escape event data; subjects and plain text are not HTML and stay verbatim.
    return name is not None and name.endswith(".html.j2")


def _no_none(value: object) -> object:
    if value is None:
        raise TemplateRuntimeError("printed None: guard optional fields with {% if ... %}")
    return value


def _no_catalog(*_args: object, **_kwargs: object) -> str:
    raise TemplateRuntimeError("no translations here: import shared macros 'with context'")


def _translators(translations: gettext.NullTranslations) -> Translators:
    """Newstyle gettext callables bound to one catalog, as jinja2.ext.i18n expects them."""

    @pass_context
    def gettext_(ctx: Context, message: str, **variables: Any) -> str:
        return _interpolate(ctx, translations.gettext(message), variables)

    @pass_context
    def ngettext_(ctx: Context, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("num", num)
        return _interpolate(ctx, translations.ngettext(singular, plural, num), variables)

    @pass_context
    def pgettext_(ctx: Context, context: str, message: str, **variables: Any) -> str:
        return _interpolate(ctx, translations.pgettext(context, message), variables)

    return {"gettext": gettext_, "_": gettext_, "ngettext": ngettext_, "pgettext": pgettext_}


def _interpolate(ctx: Context, text: str, variables: dict[str, Any]) -> str:
    # Newstyle semantics: always %-format (so "%%" is always "%"); in HTML the translation is
    # trusted markup (catalogs are reviewed like templates) and the values are escaped.
    if ctx.eval_ctx.autoescape:
        return Markup(text) % variables  # noqa: S704
    return text % variables


def _formatter(ctx: Context) -> Formatter:
    value = ctx.get(_FORMATTER)
    if not isinstance(value, Formatter):
        raise TemplateRuntimeError("no reader locale here: import shared macros 'with context'")
    return value


def _formatting_filter(method: Callable[..., str]) -> Callable[..., str]:
    """Turn a Formatter method into a filter using the render's locale and timezone."""

    @pass_context
    def apply(ctx: Context, value: Any, *args: Any, **kwargs: Any) -> str:
        return method(_formatter(ctx), value, *args, **kwargs)

    return apply


def _is_web_url(value: object) -> bool:
    # Only http(s) links go into href: a "javascript:" runbook URL must not become clickable.
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise TemplateError(f"invalid template or channel name {name!r}: use [a-z0-9_-]")


def _where(template: str, channel: str, part: str, locale: str | None) -> str:
    where = f"template {template!r} channel {channel!r} part {part!r}"
    return where if locale is None else f"{where} locale {locale!r}"


def _describe(exc: BaseException, directory: os.PathLike[str] | str) -> str:
    """Say what went wrong and where: kind of problem, template file and line."""
    if isinstance(exc, TemplateSyntaxError):
        return f"syntax error in {exc.name or exc.filename} line {exc.lineno}: {exc.message}"
    kind = type(exc).__name__
    if isinstance(exc, SecurityError):
        kind = "sandbox violation"
    elif isinstance(exc, UndefinedError):
        kind = "undefined variable"
    location = ""
    tb = exc.__traceback__
    while tb is not None:  # jinja rewrites frames to point at template files and lines
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            path = os.path.relpath(filename, directory) if os.path.isabs(filename) else filename
            location = f" in {path} line {tb.tb_lineno}"
        tb = tb.tb_next
    return f"{kind}{location}: {exc}"
