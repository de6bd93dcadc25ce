"""Lint a template draft: what would break, leak or read badly, found before approval.

Pure logic for the template console (no web, no database). :func:`lint` takes the whole
library set with the draft applied and checks one unit (a template folder, or ``shared`` for
the top-level macro files), returning :class:`Finding` objects with a stable ``code``:

``syntax``          a file does not parse or compile (Jinja's line), or uses an unknown filter
                    or test, or imports a computed name; the file's other checks are skipped
``undefined``       a name that is neither in the render context contract
                    (:mod:`notifier.templating`) nor set, imported, looped or a macro argument
                    in the file (static, with the line of its first use); and every
                    StrictUndefined error of the dynamic check, which renders every status x
                    channel x locale: with every fitting sample for the status's default
                    details, and with the first sample for each other variant of them
                    (:data:`notifier.preview.VARIANTS`) and a policy notice's other reader
``render``          any other error of those renders (sandbox, bad data for a filter, printed
                    None, empty subject, missing part, a catalog that does not compile)
``untranslated``    (warning) per shipped locale, the messages of the template's files (and
                    of the files they import) its catalog does not translate
``subject-length``  a rendered subject longer than ``max_subject_chars`` (error: the engine
                    refuses it) or than 78 characters (warning: mail clients cut it)
``slack-length``    a rendered text longer than Slack's 3,000 characters of a section block
                    (after the escaping :mod:`notifier.slack_blocks` applies; it would be split
                    over several sections, and cut beyond the block limit)
``confidential``    the template reads ``confidential`` without checking it is set (``{% if
                    confidential is not none %}``) while routing sends it to a tier, rule or
                    follow-up whose clearance is not ``confidential``: those readers get None
``no-sample``       (warning) no sample event fits a status, so it was not rendered
``labels``          (``shared`` only) a macro of ``labels.j2`` the engine calls itself (Slack's
                    headings, statuses, buttons and replies: :data:`notifier.compose.SLACK_WORDS`)
                    fails in a locale (error), or is missing or renders nothing (warning: the
                    English word is used)

Errors of one kind at one place are reported once, naming the first (or, for lengths, the
worst) combination and how many more there were.

Speed: parsing and static analysis are cached per file content, extracted messages per file,
catalog gaps per catalog text and message set, and compiled renderers per library content
(small LRU caches, shared with :func:`notifier.preview.library_renderer`, so the preview of
the same draft costs nothing more); only the edited file is parsed again. After an edit, most
of the time goes to compiling the draft's parts; each render takes about a millisecond.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from jinja2 import BaseLoader, TemplateSyntaxError, meta, nodes

from notifier.compose import SLACK_REPLIES, SLACK_WORDS
from notifier.errors import ConfigError, TemplateError
from notifier.escalation import RECEIPT_TEMPLATE, REMINDER_TEMPLATE, UPDATE_TEMPLATE, Targets
from notifier.fatigue import DIGEST_TEMPLATE
from notifier.preview import (
    STATUS_KINDS,
    VARIANTS,
    Sample,
    default_audience,
    library_renderer,
    sample_context,
    samples_for,
    statuses_of,
)
from notifier.routing import Clearance, RoutingConfig
from notifier.settings import TemplateSettings
from notifier.slack_blocks import MAX_SECTION_CHARS, escape
from notifier.templating import FALLBACK_CHANNEL, LABELS, SHARED, environment, unit_of
from notifier.translations import MessageRef, TranslationError, template_messages, untranslated

__all__ = [
    "CONTEXT_NAMES",
    "MAIL_SUBJECT_CHARS",
    "SLACK_SECTION_CHARS",
    "Finding",
    "lint",
    "template_audiences",
]

Level = Literal["error", "warning"]

MAIL_SUBJECT_CHARS = 78
"""RFC 5322's recommended line length: longer subjects are cut in many mail clients' lists."""
SLACK_SECTION_CHARS = MAX_SECTION_CHARS
"""Slack's documented limit for a section block's text (3,000 characters)."""

CONTEXT_NAMES = frozenset(
    {
        # the render context contract (notifier.templating)
        "kind",
        "status",
        "step",
        "details",
        "alert",
        "policy",
        "confidential",
        "recipient",
        "tier",
        "event",
        "links",
        # what the renderer adds
        "language",
        "gettext",
        "ngettext",
        "pgettext",
        "_",
    }
)
"""Names a template may use without defining them (Jinja's globals too: range, namespace...)."""

_SHOWN_MSGIDS = 3
# The renderer refuses an over-long subject with this message (notifier.templating).
_SUBJECT_REFUSED = re.compile(r"the subject is (?P<size>\d+) characters, limit is (?P<limit>\d+)")
# " in alert/email.text.j2 line 12" as notifier.templating describes a template problem.
_WHERE = re.compile(r" in (?P<path>[^\s:]+\.j2) line (?P<line>\d+)")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: ``code`` is stable (see the module docstring), ``path`` and ``line`` say
    where when known (``line`` is 1-based)."""

    level: Level
    code: str
    message: str
    path: str | None
    line: int | None


def lint(
    sources: Mapping[str, str],
    template: str,
    *,
    settings: TemplateSettings,
    po_texts: Mapping[str, str],
    routing: RoutingConfig | None,
    samples: Sequence[Sample],
    default_locale: str = "en",
) -> list[Finding]:
    """Check unit ``template`` (a folder, or ``shared``) of ``sources``, the full library set
    with the draft applied (``{"alert/email.subject.j2": source, ...}``).

    ``po_texts`` are the shipped catalogs (``{"de": text of notifier.po}``), ``routing`` the
    configuration that decides who gets which template (None: the ``confidential`` check is
    skipped), ``samples`` the events to render. Errors first, then warnings, each group in
    the order of the checks.
    """
    findings: list[Finding] = []
    unit_files = {path: src for path, src in sorted(sources.items()) if unit_of(path) == template}
    if not unit_files:
        findings.append(Finding("error", "render", f"no files of {template!r}", None, None))
        return findings
    infos = {path: _analyse(path, src) for path, src in unit_files.items()}
    for info in infos.values():
        findings += info.findings
    broken = any(info.broken for info in infos.values())

    # Templates to render: the unit's own, or for shared macros every template using them.
    if template == SHARED:
        rendered = sorted({unit_of(p) for p in _users(sources, set(unit_files))} - {SHARED})
    else:
        rendered = [template]

    if routing is not None:
        findings += _confidential_findings(infos, routing, rendered)
    findings += _untranslated_findings(sources, unit_files, po_texts, default_locale)
    if not broken and template == SHARED and LABELS in unit_files:
        findings += _label_findings(sources, settings, po_texts, default_locale)
    if not broken:
        findings += _dynamic_findings(
            sources,
            rendered,
            settings=settings,
            po_texts=po_texts,
            samples=samples,
            default_locale=default_locale,
            static=findings,
        )
    return [f for f in findings if f.level == "error"] + [
        f for f in findings if f.level == "warning"
    ]


# ---------------------------------------------------------------------------------------------
# Static analysis of one file (cached per content)


@dataclass(frozen=True, slots=True)
class _FileInfo:
    findings: tuple[Finding, ...]
    broken: bool
    references: tuple[str, ...] = ()
    # (line, guarded) of every read of ``confidential``
    confidential_reads: tuple[tuple[int, bool], ...] = ()


# The renderer's own Jinja environment (syntax, filters, tests, globals), so a file parses here
# exactly as it renders (notifier.templating has no public accessor for it).
_ENV = environment(BaseLoader())
_ALLOWED = CONTEXT_NAMES | frozenset(_ENV.globals)


@lru_cache(maxsize=256)
def _analyse(path: str, source: str) -> _FileInfo:
    """Parse and check one file (cached per content: only an edited file is parsed again)."""
    try:
        ast = _ENV.parse(source, path, path)
        # Compiles as the renderer would: unknown filters and tests outside {% if %} fail here.
        undeclared = meta.find_undeclared_variables(ast)
    except TemplateSyntaxError as exc:
        return _FileInfo((_syntax(path, exc.lineno, exc.message or str(exc)),), broken=True)
    findings: list[Finding] = []
    broken = False
    # Unknown filters and tests inside {% if %} only fail when that branch renders.
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        known = _ENV.filters if isinstance(node, nodes.Filter) else _ENV.tests
        if node.name not in known:
            what = "filter" if isinstance(node, nodes.Filter) else "test"
            findings.append(_syntax(path, node.lineno, f"no {what} named {node.name!r}"))
            broken = True
    references = []
    for imp in ast.find_all((nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)):
        assert isinstance(imp, nodes.Import | nodes.FromImport | nodes.Include | nodes.Extends)
        if isinstance(imp.template, nodes.Const) and isinstance(imp.template.value, str):
            references.append(imp.template.value)
        else:
            findings.append(
                _syntax(path, imp.lineno, "imports and includes must name a fixed template")
            )
            broken = True
    # A name set in one {% if %} branch is "undeclared" to Jinja's analysis (it falls back to
    # the context in the other branches); a name stored anywhere in the file is its own.
    stored = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    first_use: dict[str, int] = {}
    for name_node in ast.find_all(nodes.Name):
        if name_node.ctx == "load" and name_node.name in undeclared:
            line = name_node.lineno
            first_use[name_node.name] = min(first_use.get(name_node.name, line), line)
    for name in sorted(undeclared - stored - _ALLOWED, key=lambda n: first_use.get(n, 0)):
        findings.append(
            Finding(
                "error",
                "undefined",
                f"{path} line {first_use.get(name)}: {name!r} is not in the render context "
                "and is not set, imported or looped over in this file",
                path,
                first_use.get(name),
            )
        )
    return _FileInfo(tuple(findings), broken, tuple(references), tuple(_confidential_reads(ast)))


def _syntax(path: str, line: int | None, problem: str) -> Finding:
    return Finding("error", "syntax", f"{path} line {line}: {problem}", path, line)


def _users(sources: Mapping[str, str], targets: set[str]) -> set[str]:
    """The files that import or include any of ``targets``, directly or through others."""
    users: set[str] = set()
    changed = True
    while changed:
        changed = False
        for path, src in sources.items():
            if path in users or path in targets:
                continue
            if (targets | users) & set(_analyse(path, src).references):
                users.add(path)
                changed = True
    return users


def _closure(sources: Mapping[str, str], roots: Mapping[str, str]) -> dict[str, str]:
    """``roots`` and every file of ``sources`` they import or include, transitively."""
    found = dict(roots)
    todo = list(roots)
    while todo:
        path = todo.pop()
        for ref in _analyse(path, found[path]).references:
            if ref not in found and ref in sources:
                found[ref] = sources[ref]
                todo.append(ref)
    return found


# ---------------------------------------------------------------------------------------------
# confidential


def _confidential_reads(ast: nodes.Template) -> Iterator[tuple[int, bool]]:
    """(line, guarded) of each read of ``confidential``: guarded when it sits under a test
    that holds only if ``confidential`` is set (``{% if confidential is not none %}``,
    ``{% if confidential %}``, ``confidential and ...``) or is such a test itself."""

    def visit(node: nodes.Node, guarded: bool, as_test: bool) -> Iterator[tuple[int, bool]]:
        if isinstance(node, nodes.Name):
            if node.name == "confidential" and node.ctx == "load":
                yield node.lineno, guarded or as_test
            return
        if isinstance(node, nodes.If | nodes.CondExpr):
            polarity = _polarity(node.test)
            yield from visit(node.test, guarded, True)
            then = node.body if isinstance(node, nodes.If) else [node.expr1]
            if isinstance(node, nodes.If):
                otherwise: list[nodes.Node] = [*node.elif_, *node.else_]
            else:
                otherwise = [node.expr2] if node.expr2 is not None else []
            for child in then:
                yield from visit(child, guarded or polarity is True, False)
            for child in otherwise:
                yield from visit(child, guarded or polarity is False, False)
            return
        if isinstance(node, nodes.And):
            yield from visit(node.left, guarded, as_test)
            yield from visit(node.right, guarded or _polarity(node.left) is True, as_test)
            return
        if isinstance(node, nodes.Or):
            yield from visit(node.left, guarded, as_test)
            yield from visit(node.right, guarded or _polarity(node.left) is False, as_test)
            return
        if isinstance(node, nodes.Not):
            yield from visit(node.node, guarded, as_test)
            return
        if isinstance(node, nodes.Test):  # no test fails on None: `confidential is mapping`
            yield from visit(node.node, guarded, True)
            for arg in node.args:
                yield from visit(arg, guarded, False)
            return
        if isinstance(node, nodes.Compare):  # nor does a comparison: `confidential == none`
            yield from visit(node.expr, guarded, True)
            for operand in node.ops:
                yield from visit(operand.expr, guarded, True)
            return
        for child in node.iter_child_nodes():
            yield from visit(child, guarded, False)

    return visit(ast, False, False)


def _is_confidential(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "confidential"


def _compares_with_none(node: nodes.Compare) -> bool:
    return (
        len(node.ops) == 1
        and node.ops[0].op in ("eq", "ne")
        and isinstance(node.ops[0].expr, nodes.Const)
        and node.ops[0].expr.value is None
    )


def _polarity(test: nodes.Node) -> bool | None:
    """True when ``test`` holds only if ``confidential`` is set, False when it holds only if
    it is not, None when it says neither."""
    if _is_confidential(test):
        return True
    if isinstance(test, nodes.Not):
        inner = _polarity(test.node)
        return None if inner is None else not inner
    if isinstance(test, nodes.Test) and _is_confidential(test.node) and test.name == "none":
        return False
    if isinstance(test, nodes.Compare) and _is_confidential(test.expr):
        return test.ops[0].op == "ne" if _compares_with_none(test) else None
    if isinstance(test, nodes.And | nodes.Or):
        sides = (_polarity(test.left), _polarity(test.right))
        if isinstance(test, nodes.And):
            return True if True in sides else (False if sides == (False, False) else None)
        return False if False in sides else (True if sides == (True, True) else None)
    return None


def _confidential_findings(
    infos: Mapping[str, _FileInfo],
    routing: RoutingConfig,
    templates: Sequence[str],
) -> list[Finding]:
    findings = []
    for path, info in infos.items():
        unguarded = sorted(line for line, guarded in info.confidential_reads if not guarded)
        if not unguarded:
            continue
        exposed: dict[str, Clearance] = {}
        for name in templates:
            for who, level in template_audiences(routing, name):
                if level is not Clearance.CONFIDENTIAL:
                    exposed.setdefault(who, level)
        if not exposed:
            continue
        audience = "; ".join(f"{who} (clearance {level.value})" for who, level in exposed.items())
        lines = ", ".join(str(n) for n in unguarded)
        findings.append(
            Finding(
                "error",
                "confidential",
                f"{path} line {unguarded[0]}: reads `confidential` (line {lines}) without "
                "checking `confidential is not none`, but routing sends "
                f"{' / '.join(templates)} to {audience}: their `confidential` is None",
                path,
                unguarded[0],
            )
        )
    return findings


def template_audiences(routing: RoutingConfig, template: str) -> list[tuple[str, Clearance]]:
    """Who gets ``template`` and at which clearance, as far as routing alone says: rule tiers
    (``min(rule.confidentiality, tier.clearance)``), escalation steps, reminders, status
    updates, receipt reminders, digests and unreachable notices. People named by id count as
    public unless a tier lists them (the directory is not consulted)."""
    found: list[tuple[str, Clearance]] = []
    for rule in routing.rules:
        cap = rule.confidentiality
        if rule.template == template:
            for tier in rule.tiers:
                level = _lower(cap, routing.tiers[tier].clearance)
                found.append((f"tier {tier!r} (rule {rule.name!r})", level))
        policy = routing.escalation_policies.get(rule.escalation or "")
        if policy is None:
            continue
        via = f"escalation policy {rule.escalation!r} of rule {rule.name!r}"
        if rule.template == template:
            for number, step in enumerate(policy.steps, 1):
                found += _targets(routing, step.notify, cap, f"{via}, step {number}")
        if template == REMINDER_TEMPLATE and policy.acknowledged is not None:
            found += _targets(routing, policy.acknowledged.then_notify, cap, f"{via}, reminders")
        if template == REMINDER_TEMPLATE and policy.status_updates is not None:
            commander = policy.status_updates.commander
            found += _targets(routing, commander, cap, f"{via}, update reminders")
        if template == UPDATE_TEMPLATE and policy.status_updates is not None:
            stakeholders = policy.status_updates.stakeholders
            if stakeholders is not None:
                found += _targets(routing, stakeholders, cap, f"{via}, status updates")
    if template == RECEIPT_TEMPLATE:
        for name, asking in routing.tiers.items():
            if asking.confirm_receipt is None:
                continue
            found.append((f"receipt reminders to tier {name!r}", Clearance.PUBLIC))
            liaison = asking.confirm_receipt.liaison
            found += _targets(routing, liaison, asking.clearance, f"tier {name!r} liaison")
    if template == REMINDER_TEMPLATE:
        found.append(("unreachable notices to the incident commanders", Clearance.PUBLIC))
    if template == DIGEST_TEMPLATE:
        found.append(("digests (fatigue control)", Clearance.PUBLIC))
    return found


def _targets(
    routing: RoutingConfig, targets: Targets, cap: Clearance, via: str
) -> list[tuple[str, Clearance]]:
    found = []
    for tier in targets.tiers:
        found.append((f"tier {tier!r} ({via})", _lower(cap, routing.tiers[tier].clearance)))
    for role in targets.roles:
        levels = [t.clearance for t in routing.tiers.values() if role in t.roles]
        found.append((f"role {role!r} ({via})", _lower(cap, _highest(levels))))
    for person in targets.people:
        levels = [t.clearance for t in routing.tiers.values() if person in t.people]
        found.append((f"person {person!r} ({via})", _lower(cap, _highest(levels))))
    return found


def _lower(a: Clearance, b: Clearance) -> Clearance:
    return a if a.rank <= b.rank else b


def _highest(levels: Sequence[Clearance]) -> Clearance:
    return max(levels, key=lambda c: c.rank, default=Clearance.PUBLIC)


# ---------------------------------------------------------------------------------------------
# untranslated


@lru_cache(maxsize=256)
def _file_messages(path: str, source: str) -> tuple[MessageRef, ...] | None:
    """The messages of one file (None when it does not parse: ``syntax`` reports that)."""
    try:
        return tuple(template_messages({path: source}))
    except TranslationError:
        return None


def _merged_messages(files: Mapping[str, str]) -> list[MessageRef]:
    """The messages of ``files``, merged by (msgid, context) as template_messages merges."""
    merged: dict[tuple[str, str | None], MessageRef] = {}
    for path, source in sorted(files.items()):
        for ref in _file_messages(path, source) or ():
            seen = merged.get(ref.key)
            if seen is None:
                merged[ref.key] = ref
            else:
                locations = tuple(dict.fromkeys((*seen.locations, *ref.locations)))
                merged[ref.key] = MessageRef(
                    seen.msgid, seen.plural, seen.context, locations, seen.comments
                )
    return list(merged.values())


@lru_cache(maxsize=64)
def _gaps(
    po_text: str, locale: str, messages: tuple[MessageRef, ...], source_language: str
) -> tuple[MessageRef, ...] | str:
    """The untranslated messages, or the TranslationError's message for a broken catalog
    (cached per catalog text and message set)."""
    try:
        return tuple(untranslated(po_text, locale, messages, source_language))
    except TranslationError as exc:
        return str(exc)


def _untranslated_findings(
    sources: Mapping[str, str],
    unit_files: Mapping[str, str],
    po_texts: Mapping[str, str],
    default_locale: str,
) -> list[Finding]:
    messages = _merged_messages(_closure(sources, unit_files))
    # Locations in the unit's own files first: that is where the author can fix it.
    own = [m for m in messages if any(p in unit_files for p, _ in m.locations)]
    others = [m for m in messages if m not in own]
    messages = own + others
    findings = []
    for locale in sorted(po_texts):
        gaps = _gaps(po_texts[locale], locale, tuple(messages), default_locale)
        if isinstance(gaps, str):
            findings.append(Finding("error", "untranslated", gaps, None, None))
            continue
        if not gaps:
            continue
        shown = ", ".join(repr(_brief(m.msgid)) for m in gaps[:_SHOWN_MSGIDS])
        more = f" and {len(gaps) - _SHOWN_MSGIDS} more" if len(gaps) > _SHOWN_MSGIDS else ""
        path, line = next(
            ((p, n) for p, n in gaps[0].locations if p in unit_files), gaps[0].locations[0]
        )
        count = len(gaps)
        findings.append(
            Finding(
                "warning",
                "untranslated",
                f"{locale}: {count} message{'s' if count != 1 else ''} not translated "
                f"(its readers get the source text): {shown}{more}",
                path,
                line,
            )
        )
    return findings


# ---------------------------------------------------------------------------------------------
# Rendering every combination


@dataclass
class _Tally:
    """One problem seen in several renders: the worst (else the first) case and how many."""

    finding: Finding
    worst: int
    count: int = 1


def _dynamic_findings(
    sources: Mapping[str, str],
    templates: Sequence[str],
    *,
    settings: TemplateSettings,
    po_texts: Mapping[str, str],
    samples: Sequence[Sample],
    default_locale: str,
    static: Sequence[Finding],
) -> list[Finding]:
    try:
        # The very renderer the preview of this draft uses (compiled once for both).
        renderer = library_renderer(settings, sources, po_texts, default_locale)
    except ConfigError as exc:
        return [Finding("error", "render", f"the catalogs do not compile: {exc}", None, None)]
    locales = sorted(po_texts) or [default_locale]
    seen_static = {(f.path, f.line) for f in static if f.code in ("undefined", "syntax")}
    tallies: dict[tuple[Any, ...], _Tally] = {}

    def note(key: tuple[Any, ...], make: Callable[[], Finding], size: int) -> None:
        tally = tallies.get(key)
        if tally is None:
            tallies[key] = _Tally(make(), size)
            return
        tally.count += 1
        if size > tally.worst:  # the message names the worst case
            tally.finding, tally.worst = make(), size

    findings: list[Finding] = []
    for name in templates:
        channels = list(renderer.parts(name)) if name in renderer.templates() else []
        if not channels:
            findings.append(
                Finding("error", "render", f"template {name!r} has no parts", None, None)
            )
            continue
        slack = "slack" if "slack" in channels else FALLBACK_CHANNEL
        for status in statuses_of(name):
            fitting = samples_for(samples, status)
            if not fitting:
                findings.append(
                    Finding(
                        "warning",
                        "no-sample",
                        f"{name}: no sample event fits status {status!r}: it was not rendered",
                        None,
                        None,
                    )
                )
                continue
            tier, _ = default_audience(name, status)
            parts = renderer.parts(name)
            for sample, variant, cleared in _cases(name, status, fitting):
                for locale in locales:
                    for channel in channels:
                        combo = (
                            f"{name} {status}"
                            + (f" ({variant})" if variant else "")
                            + f", {channel}, {locale}, sample {sample.name}"
                            + ("" if cleared else ", not cleared")
                        )
                        context = sample_context(
                            sample,
                            template=name,
                            status=status,
                            locale=locale,
                            timezone="UTC",
                            tier=tier,
                            confidential=cleared,
                            variant=variant,
                        )
                        try:
                            out = renderer.render(
                                name, channel, locale=locale, timezone="UTC", context=context
                            )
                        except TemplateError as exc:
                            _note_error(note, name, str(exc), combo, seen_static)
                            continue
                        slack_text = out.text if channel == slack else None
                        _note_sizes(
                            note,
                            name,
                            channel,
                            out.subject,
                            slack_text,
                            combo,
                            parts,
                            settings.max_subject_chars,
                        )
    for tally in tallies.values():
        f = tally.finding
        more = f" (and {tally.count - 1} more combinations)" if tally.count > 1 else ""
        findings.append(Finding(f.level, f.code, f.message + more, f.path, f.line))
    return findings


def _label_findings(
    sources: Mapping[str, str],
    settings: TemplateSettings,
    po_texts: Mapping[str, str],
    default_locale: str,
) -> list[Finding]:
    """Render every labels.j2 macro call the engine makes itself, in every locale."""
    try:
        renderer = library_renderer(settings, sources, po_texts, default_locale)
    except ConfigError:
        return []  # the dynamic check reports catalogs that do not compile
    calls: list[tuple[str, tuple[str, ...]]] = [("slack", (word,)) for word in SLACK_WORDS]
    calls += [("status", (status,)) for status in STATUS_KINDS]
    calls += [("slack_reply", (*reply, "Ada Lovelace")) for reply in SLACK_REPLIES]
    findings: list[Finding] = []
    missing: dict[str, list[str]] = {}
    for locale in sorted(po_texts) or [default_locale]:
        for macro, args in calls:
            shown = f"{macro}({', '.join(map(repr, args))})"
            try:
                word = renderer.word(locale, macro, *args)
            except TemplateError as exc:
                findings.append(Finding("error", "labels", str(exc), LABELS, _line_of(str(exc))))
                continue
            if not word:
                missing.setdefault(shown, []).append(locale)
    for shown, locales in missing.items():
        message = (
            f"{LABELS}: {shown} is missing or renders nothing in {', '.join(locales)}: "
            "Slack shows the English words instead"
        )
        findings.append(Finding("warning", "labels", message, LABELS, None))
    return findings


def _line_of(problem: str) -> int | None:
    found = _WHERE.search(problem)
    return int(found["line"]) if found else None


def _cases(
    template: str, status: str, samples: Sequence[Sample]
) -> Iterator[tuple[Sample, str | None, bool]]:
    """(sample, variant, cleared) to render in every locale and channel: the default variant
    for the default reader with every sample, and each other variant, and a policy notice for
    the reader of the other clearance, with the first sample (their branches are what they
    add; how long a text gets depends on the sample and the language, covered by the first)."""
    variants = VARIANTS.get(status, (None,))
    _, cleared = default_audience(template, status)
    for sample in samples:
        yield sample, variants[0], cleared
    first = samples[0]
    for variant in variants[1:]:
        yield first, variant, cleared
    if first.kind == "policy":
        # Policy notices go to cleared and uncleared readers alike.
        yield first, variants[0], not cleared


def _note_error(
    note: Callable[[tuple[Any, ...], Callable[[], Finding], int], None],
    template: str,
    message: str,
    combo: str,
    seen_static: set[tuple[str | None, int | None]],
) -> None:
    refused = _SUBJECT_REFUSED.search(message)
    if refused is not None:
        size, limit = int(refused["size"]), int(refused["limit"])
        channel = re.search(r"channel '([^']+)'", message)
        subject_path = f"{template}/{channel[1] if channel else FALLBACK_CHANNEL}.subject.j2"
        note(
            ("subject-length", "error", subject_path),
            lambda: Finding(
                "error",
                "subject-length",
                f"the subject is {size} characters, the limit is {limit}: the engine refuses "
                f"to send it [{combo}]",
                subject_path,
                None,
            ),
            size,
        )
        return
    where = _WHERE.search(message)
    path = where["path"] if where else None
    line = int(where["line"]) if where else None
    code = "undefined" if "undefined variable" in message else "render"
    if code == "undefined" and (path, line) in seen_static:
        return  # the static check already named it
    # The problem without the template/part/locale prefix: the same in every combination.
    problem = message.split(": ", 1)[1] if ": " in message else message
    note(
        (code, path, line, problem),
        lambda: Finding("error", code, f"{message} [{combo}]", path, line),
        0,
    )


def _note_sizes(
    note: Callable[[tuple[Any, ...], Callable[[], Finding], int], None],
    template: str,
    channel: str,
    subject: str,
    slack_text: str | None,
    combo: str,
    parts: Mapping[str, Sequence[str]],
    max_subject: int,
) -> None:
    own = channel if channel in parts else FALLBACK_CHANNEL
    subject_path = f"{template}/{own}.subject.j2"
    size = len(subject)
    if size > max_subject:
        note(
            ("subject-length", "error", subject_path),
            lambda: Finding(
                "error",
                "subject-length",
                f"the subject is {size} characters, the limit is {max_subject}: the engine "
                f"refuses to send it [{combo}]: {subject!r}",
                subject_path,
                None,
            ),
            size,
        )
    elif size > MAIL_SUBJECT_CHARS:
        note(
            ("subject-length", "warning", subject_path),
            lambda: Finding(
                "warning",
                "subject-length",
                f"the subject is {size} characters: mail clients cut it after about "
                f"{MAIL_SUBJECT_CHARS} [{combo}]: {subject!r}",
                subject_path,
                None,
            ),
            size,
        )
    if slack_text is None:
        return
    escaped = len(escape(slack_text.strip()))
    if escaped > SLACK_SECTION_CHARS:
        text_path = f"{template}/{own}.text.j2"
        sections = -(-escaped // SLACK_SECTION_CHARS)
        note(
            ("slack-length", text_path),
            lambda: Finding(
                "error",
                "slack-length",
                f"the text is {escaped} characters in Slack (escaped), more than a section "
                f"block holds ({SLACK_SECTION_CHARS}): it is split over {sections} or more "
                f"sections [{combo}]",
                text_path,
                None,
            ),
            escaped,
        )


def _brief(text: str, limit: int = 60) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
