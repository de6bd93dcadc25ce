"""``/console/templates``, ``/console/translations``, ``/console/versions``: the template
library for comms staff.

Edit a draft with a live preview (every shipped locale side by side, for a chosen sample
event, channel and status) and lint results; four-eyes approval of the exact content hash
that was reviewed; diffs between any two versions; rollback by approving an older version.
Catalog drafts (translations) are versioned and approved the same way.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from notifier.api.console.web import (
    PREFIX,
    Ctx,
    Form,
    SignedIn,
    fragment,
    message_page,
    render,
    require,
    secure_headers,
)
from notifier.api.deps import ApiContext
from notifier.directory import Capability
from notifier.i18n import Catalogs
from notifier.lint import Finding, lint
from notifier.preview import (
    Sample,
    library_renderer,
    load_samples,
    preview_all,
    samples_for,
    statuses_of,
)
from notifier.store import library as store
from notifier.templating import PARTS, SHARED, content_hash, unit_of
from notifier.translations import (
    TranslationError,
    apply_edits,
    entries,
    template_messages,
    untranslated,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)

CHANNELS = ("email", "slack", "webhook")
_MAX_FILE_CHARS = 65_536


# ---------------------------------------------------------------------------------------------
# What the pages share: the live set, renderers for drafts, samples


@dataclass(frozen=True, slots=True)
class _Live:
    sources: dict[str, str]
    po_texts: dict[str, str]
    catalogs: Catalogs
    signature: tuple[tuple[str, str, int], ...]


class _Workbench:
    """Caches what previews need: the live set (by signature) and the samples (renderers of
    drafts are cached by content hash in :func:`notifier.preview.library_renderer`)."""

    def __init__(self) -> None:
        self.live: _Live | None = None
        self.samples: list[Sample] | None = None


def _bench(request: Request) -> _Workbench:
    bench: _Workbench | None = getattr(request.app.state, "console_bench", None)
    if bench is None:
        bench = request.app.state.console_bench = _Workbench()
    return bench


def _live(ctx: ApiContext, bench: _Workbench) -> _Live:
    with ctx.db.reading() as conn:
        signature = store.live_signature(conn)
        if bench.live is not None and bench.live.signature == signature:
            return bench.live
        live = store.live_set(conn)
    catalogs = Catalogs.from_po_texts(live.po_texts, ctx.settings.templates.default_locale)
    bench.live = _Live(live.sources, live.po_texts, catalogs, live.signature)
    return bench.live


def _samples(ctx: ApiContext, bench: _Workbench) -> list[Sample]:
    if bench.samples is None:
        directory = ctx.settings.resolve(ctx.settings.console.samples_directory)
        bench.samples = load_samples(directory) if directory.is_dir() else []
    return bench.samples


def _channels(files: dict[str, str], name: str) -> list[str]:
    own = sorted({path.split("/", 1)[1].split(".", 1)[0] for path in files if "/" in path})
    # Channels without parts of their own say what the email says (see templating.py).
    return own + [c for c in CHANNELS if c not in own] if name != SHARED else []


def _locales(live: _Live) -> list[str]:
    return live.catalogs.languages()


async def _load(ctx: ApiContext, fn: Any, *args: Any) -> Any:
    def run() -> Any:
        with ctx.db.reading() as conn:
            return fn(conn, *args)

    return await asyncio.to_thread(run)


async def _write(ctx: ApiContext, fn: Any, *args: Any, **kwargs: Any) -> Any:
    def run() -> Any:
        with ctx.db.transaction() as conn:
            return fn(conn, *args, **kwargs)

    return await asyncio.to_thread(run)


def _not_found(request: Request, viewer: SignedIn, what: str) -> HTMLResponse:
    return message_page(
        request, viewer, 404, "Not found", f"There is no {what}.", f"{PREFIX}/templates"
    )


# ---------------------------------------------------------------------------------------------
# Templates


@router.get("/templates")
async def template_list(request: Request, ctx: Ctx, viewer: SignedIn) -> HTMLResponse:
    """Every template with its channels, locales, live version and waiting drafts."""
    bench = _bench(request)
    live = await asyncio.to_thread(_live, ctx, bench)
    units = await _load(ctx, store.units, "template")
    rows = [
        {
            "unit": unit,
            "channels": _channels(unit.live.files, unit.name) if unit.live else [],
        }
        for unit in units
    ]
    return render(request, "templates.html", viewer=viewer, rows=rows, locales=_locales(live))


@router.get("/templates/{name}")
async def template_unit(request: Request, name: str, ctx: Ctx, viewer: SignedIn) -> HTMLResponse:
    """A template's versions, newest first."""
    history = await _load(ctx, store.versions, "template", name)
    if not history:
        return _not_found(request, viewer, f"template {name!r}")
    return render(request, "unit.html", viewer=viewer, kind="template", name=name, versions=history)


@router.get("/templates/{name}/edit")
async def edit_template(
    request: Request,
    name: str,
    ctx: Ctx,
    viewer: SignedIn,
    from_: Annotated[int | None, Query(alias="from")] = None,
) -> HTMLResponse:
    """The editor: the files of a version (the live one by default), with a live preview."""
    require(viewer, Capability.EDIT_TEMPLATES, "edit templates")
    history: list[store.Version] = await _load(ctx, store.versions, "template", name)
    if not history:
        return _not_found(request, viewer, f"template {name!r}")
    base = next((v for v in history if v.id == from_), None) if from_ is not None else None
    if base is None:
        # Your own open draft first, so that work in progress is never hidden.
        base = next(
            (v for v in history if v.state == "draft" and v.author == viewer.person.id), None
        ) or next((v for v in history if v.live), history[0])
    bench = _bench(request)
    live = await asyncio.to_thread(_live, ctx, bench)
    samples = _samples(ctx, bench)
    return render(
        request,
        "edit.html",
        viewer=viewer,
        name=name,
        base=base,
        files=sorted(base.files.items(), key=lambda kv: _file_order(kv[0])),
        channels=_channels(base.files, name),
        samples=samples_for(samples, statuses_of(name)[0]) or samples,
        statuses=statuses_of(name) if name != SHARED else (),
        locales=_locales(live),
        own_draft=base.state == "draft" and base.author == viewer.person.id,
    )


def _file_order(path: str) -> tuple[str, int]:
    channel, _, part = path.rsplit("/", 1)[-1].partition(".")
    part = part.removesuffix(".j2")
    return channel, PARTS.index(part) if part in PARTS else len(PARTS)


def _edited_files(form: Form, base: store.Version) -> dict[str, str]:
    """The files the editor sent, limited to the base version's paths (a form cannot add
    files elsewhere in the library)."""
    files = {}
    for path in base.files:
        value = form.get(f"file:{path}")
        text = value if isinstance(value, str) else base.files[path]
        files[path] = text.replace("\r\n", "\n")[:_MAX_FILE_CHARS]
    return files


async def _base(ctx: ApiContext, name: str, form: Form) -> store.Version | None:
    try:
        base_id = int(str(form.get("base") or ""))
    except ValueError:
        return None
    base: store.Version | None = await _load(ctx, store.version, base_id)
    if base is None or base.kind != "template" or base.name != name:
        return None
    return base


def _draft_sources(live: _Live, name: str, files: dict[str, str]) -> dict[str, str]:
    """The live library with this unit's files replaced by the draft's."""
    return {p: s for p, s in live.sources.items() if unit_of(p) != name} | files


async def _draft_pane(
    request: Request,
    ctx: ApiContext,
    name: str,
    form: Form,
    make: Callable[[_Workbench, _Live, dict[str, str]], str],
) -> HTMLResponse:
    """Answer one of the editor's live panes: ``make`` renders it from the unsaved files."""
    base = await _base(ctx, name, form)
    if base is None:
        return HTMLResponse("<p class=error>Unknown version.</p>", status_code=404)
    files = _edited_files(form, base)
    bench = _bench(request)

    def work() -> str:
        return make(bench, _live(ctx, bench), files)

    return HTMLResponse(await asyncio.to_thread(work), headers={"Cache-Control": "no-store"})


def _findings(
    ctx: ApiContext, bench: _Workbench, live: _Live, sources: dict[str, str], name: str
) -> list[Finding]:
    """Lint template ``name`` as ``sources`` (a library set with a draft in it) renders it."""
    return lint(
        sources,
        name,
        settings=ctx.settings.templates,
        po_texts=live.po_texts,
        routing=ctx.routing,
        samples=_samples(ctx, bench),
        default_locale=ctx.settings.templates.default_locale,
    )


@router.post("/templates/{name}/preview")
async def preview_template(
    request: Request, name: str, ctx: Ctx, viewer: SignedIn, form: Form
) -> HTMLResponse:
    """The editor's preview: the unsaved files rendered in every locale side by side."""

    def make(bench: _Workbench, live: _Live, files: dict[str, str]) -> str:
        samples = _samples(ctx, bench)
        status = str(form.get("status") or "") or statuses_of(name)[0]
        # Only samples this status can be about (a policy notice needs a policy event).
        fitting = samples_for(samples, status) or samples
        sample = next((s for s in fitting if s.name == form.get("sample")), None) or (
            fitting[0] if fitting else None
        )
        channel = str(form.get("channel") or "email")
        channel = channel if channel in CHANNELS else "email"
        previews = []
        if sample is not None and name != SHARED:
            renderer = library_renderer(
                ctx.settings.templates,
                _draft_sources(live, name, files),
                live.po_texts,
                ctx.settings.templates.default_locale,
            )
            previews = preview_all(
                renderer,
                template=name,
                channel=channel,
                locales=_locales(live),
                sample=sample,
                status=status,
            )
        return fragment("preview.html", previews=previews, hash=content_hash(files))

    return await _draft_pane(request, ctx, name, form, make)


@router.post("/templates/{name}/lint")
async def lint_template(
    request: Request, name: str, ctx: Ctx, viewer: SignedIn, form: Form
) -> HTMLResponse:
    """The editor's lint results for the unsaved files (every status, channel and locale is
    rendered, so this follows the preview rather than holding it up)."""

    def make(bench: _Workbench, live: _Live, files: dict[str, str]) -> str:
        findings = _findings(ctx, bench, live, _draft_sources(live, name, files), name)
        return fragment("lint.html", findings=findings, hash=content_hash(files))

    return await _draft_pane(request, ctx, name, form, make)


@router.post("/templates/{name}/drafts")
async def save_template(
    request: Request, name: str, ctx: Ctx, viewer: SignedIn, form: Form
) -> Response:
    """Save the editor's files as a draft (yours; a new one when editing anything else)."""
    require(viewer, Capability.EDIT_TEMPLATES, "edit templates")
    base = await _base(ctx, name, form)
    if base is None:
        return _not_found(request, viewer, "such version to edit")
    files = _edited_files(form, base)
    note = str(form.get("note") or "").strip()[:500] or None
    try:
        draft: store.Version = await _write(
            ctx,
            store.save_draft,
            "template",
            name,
            files,
            author=viewer.person.id,
            now=ctx.clock.now(),
            draft_id=base.id,
            note=note,
        )
    except store.DraftRefused as exc:
        return message_page(
            request, viewer, 409, "Not saved", str(exc), f"{PREFIX}/templates/{name}"
        )
    return secure_headers(RedirectResponse(f"{PREFIX}/versions/{draft.id}", status_code=303))


# ---------------------------------------------------------------------------------------------
# Versions: view, approve, discard, diff (templates and catalogs alike)


def _unit_url(version: store.Version) -> str:
    section = "templates" if version.kind == "template" else "translations"
    return f"{PREFIX}/{section}/{version.name}"


@router.get("/versions/{version_id}")
async def show_version(
    request: Request, version_id: int, ctx: Ctx, viewer: SignedIn
) -> HTMLResponse:
    """One version: its files, its state, the diff against the live version, and the
    Approve button for approvers who did not write it."""
    target: store.Version | None = await _load(ctx, store.version, version_id)
    if target is None:
        return _not_found(request, viewer, f"version {version_id}")
    history: list[store.Version] = await _load(ctx, store.versions, target.kind, target.name)
    live = next((v for v in history if v.live), None)
    diff = _diff(live, target) if live is not None and live.id != target.id else []
    may_approve = viewer.can(Capability.APPROVE_TEMPLATES)
    return render(
        request,
        "version.html",
        viewer=viewer,
        version=target,
        live=live,
        diff=diff,
        unit_url=_unit_url(target),
        may_approve=may_approve and target.author != viewer.person.id and not target.live,
        own=target.author == viewer.person.id,
        history=history,
    )


def _diff(a: store.Version, b: store.Version) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per file, the unified diff lines from ``a`` to ``b`` with a class for each line."""
    out = []
    for path in sorted(set(a.files) | set(b.files)):
        before = a.files.get(path, "").splitlines()
        after = b.files.get(path, "").splitlines()
        lines = []
        for line in difflib.unified_diff(
            before, after, f"v{a.number}/{path}", f"v{b.number}/{path}", lineterm="", n=2
        ):
            if line.startswith(("---", "+++")):
                continue
            kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
            lines.append((kind, line))
        if lines:
            out.append((path, lines))
    return out


@router.get("/diff")
async def diff_versions(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    a: Annotated[int, Query()],
    b: Annotated[int, Query()],
) -> HTMLResponse:
    """The differences between any two versions of one unit."""
    first: store.Version | None = await _load(ctx, store.version, a)
    second: store.Version | None = await _load(ctx, store.version, b)
    if first is None or second is None or (first.kind, first.name) != (second.kind, second.name):
        return _not_found(request, viewer, "such pair of versions of one unit")
    return render(
        request,
        "diff.html",
        viewer=viewer,
        a=first,
        b=second,
        diff=_diff(first, second),
        unit_url=_unit_url(first),
    )


@router.post("/versions/{version_id}/approve")
async def approve_version(
    request: Request, version_id: int, ctx: Ctx, viewer: SignedIn, form: Form
) -> Response:
    """Approve the reviewed content (or roll back to it); the engine renders it at once."""
    require(viewer, Capability.APPROVE_TEMPLATES, "approve templates")
    target: store.Version | None = await _load(ctx, store.version, version_id)
    if target is None:
        return _not_found(request, viewer, f"version {version_id}")
    problems = await asyncio.to_thread(_blocking_problems, request, ctx, target)
    if problems:
        return message_page(
            request,
            viewer,
            409,
            "Not approved",
            "This version has errors and cannot go live: " + "; ".join(problems),
            f"{PREFIX}/versions/{version_id}",
        )
    try:
        await _write(
            ctx,
            store.approve,
            version_id,
            approver=viewer.person.id,
            reviewed_hash=str(form.get("reviewed_hash") or ""),
            now=ctx.clock.now(),
        )
    except store.ApprovalRefused as exc:
        return message_page(
            request, viewer, 409, "Not approved", str(exc), f"{PREFIX}/versions/{version_id}"
        )
    ctx.library_changed()
    return secure_headers(RedirectResponse(f"{PREFIX}/versions/{version_id}", status_code=303))


def _blocking_problems(request: Request, ctx: ApiContext, target: store.Version) -> list[str]:
    """Errors that must keep a version from going live (a broken template would fail every
    message that uses it; a broken catalog every message in its language)."""
    bench = _bench(request)
    live = _live(ctx, bench)
    if target.kind == "catalog":
        texts = dict(live.po_texts) | {target.name: next(iter(target.files.values()))}
        try:
            Catalogs.from_po_texts(texts, ctx.settings.templates.default_locale)
        except Exception as exc:  # ConfigError with every broken message
            return [str(exc)]
        return []
    sources = _draft_sources(live, target.name, target.files)
    units = {unit_of(p) for p in sources if unit_of(p) != SHARED}
    # A shared macro file is used by every template: lint them all against it.
    names = sorted(units) if target.name == SHARED else [target.name]
    problems = []
    for name in names:
        for finding in _findings(ctx, bench, live, sources, name):
            if finding.level == "error":
                where = f" ({finding.path} line {finding.line})" if finding.path else ""
                problems.append(f"{name}: {finding.message}{where}")
    return problems[:10]


@router.post("/versions/{version_id}/discard")
async def discard_version(
    request: Request, version_id: int, ctx: Ctx, viewer: SignedIn, form: Form
) -> Response:
    """Withdraw a draft (its author or an approver)."""
    target: store.Version | None = await _load(ctx, store.version, version_id)
    if target is None:
        return _not_found(request, viewer, f"version {version_id}")
    if target.author != viewer.person.id:
        require(viewer, Capability.APPROVE_TEMPLATES, "discard someone else's draft")
    try:
        await _write(ctx, store.discard, version_id, by=viewer.person.id, now=ctx.clock.now())
    except store.DraftRefused as exc:
        return message_page(
            request, viewer, 409, "Not discarded", str(exc), f"{PREFIX}/versions/{version_id}"
        )
    return secure_headers(RedirectResponse(_unit_url(target), status_code=303))


# ---------------------------------------------------------------------------------------------
# Translations


def _template_files(live: _Live) -> dict[str, dict[str, str]]:
    """Each template's files plus the shared files it can import."""
    shared = {p: s for p, s in live.sources.items() if unit_of(p) == SHARED}
    by_unit: dict[str, dict[str, str]] = {}
    for path, source in live.sources.items():
        unit = unit_of(path)
        if unit != SHARED:
            by_unit.setdefault(unit, dict(shared))[path] = source
    return by_unit


@router.get("/translations")
async def translation_overview(request: Request, ctx: Ctx, viewer: SignedIn) -> HTMLResponse:
    """Per template and locale, how many messages are untranslated."""
    bench = _bench(request)

    def work() -> tuple[list[str], list[tuple[str, dict[str, int]]], list[store.UnitSummary]]:
        live = _live(ctx, bench)
        locales = [code for code in sorted(live.po_texts) if code != "en"]
        matrix = []
        for name, files in sorted(_template_files(live).items()):
            messages = template_messages(files)
            counts = {
                code: len(untranslated(live.po_texts[code], code, messages)) for code in locales
            }
            matrix.append((name, counts))
        with ctx.db.reading() as conn:
            units = store.units(conn, "catalog")
        return locales, matrix, units

    locales, matrix, units = await asyncio.to_thread(work)
    return render(
        request, "translations.html", viewer=viewer, locales=locales, matrix=matrix, units=units
    )


async def _catalog_base(ctx: ApiContext, locale: str, viewer: SignedIn) -> store.Version | None:
    history: list[store.Version] = await _load(ctx, store.versions, "catalog", locale)
    own = next((v for v in history if v.state == "draft" and v.author == viewer.person.id), None)
    return own or next((v for v in history if v.live), None)


@router.get("/translations/{locale}")
async def edit_translations(
    request: Request,
    locale: str,
    ctx: Ctx,
    viewer: SignedIn,
    template: str | None = None,
    only: Annotated[str | None, Query(pattern="^(untranslated)?$")] = None,
) -> HTMLResponse:
    """The messages of one template (or all) in one locale, with their translations."""
    base = await _catalog_base(ctx, locale, viewer)
    if base is None:
        return _not_found(request, viewer, f"catalog for {locale!r}")
    bench = _bench(request)
    live = await asyncio.to_thread(_live, ctx, bench)
    per_template = _template_files(live)
    files = per_template.get(template or "", {}) or {
        p: s for unit in per_template.values() for p, s in unit.items()
    }
    po_text = next(iter(base.files.values()))
    messages = template_messages(files)
    missing = {m.key for m in untranslated(po_text, locale, messages)}
    current = _translations_of(po_text, locale)
    rows = [
        {
            "ref": m,
            "field": _field_name(m.msgid, m.context),
            "values": _forms(current.get(m.key, ""), m.plural is not None),
            "missing": m.key in missing,
        }
        for m in messages
        if not only or m.key in missing
    ]
    history: list[store.Version] = await _load(ctx, store.versions, "catalog", locale)
    return render(
        request,
        "catalog.html",
        viewer=viewer,
        locale=locale,
        template=template or "",
        templates=sorted(per_template),
        rows=rows,
        base=base,
        only=only or "",
        history=history,
    )


def _field_name(msgid: str, context: str | None) -> str:
    return "t:" + content_hash({context or "": msgid})[:16]


def _forms(value: str | tuple[str, ...], plural: bool) -> list[str]:
    """The translation's forms as the editor shows them: one, or two for a plural."""
    forms = [value] if isinstance(value, str) else list(value)
    if plural:
        forms += [""] * (2 - len(forms))
    return forms[:2] if plural else forms[:1]


def _translations_of(
    po_text: str, locale: str
) -> dict[tuple[str, str | None], str | tuple[str, ...]]:
    return {(e.msgid, e.context): e.translation for e in entries(po_text, locale)}


@router.post("/translations/{locale}")
async def save_translations(
    request: Request, locale: str, ctx: Ctx, viewer: SignedIn, form: Form
) -> Response:
    """Save the edited translations as a catalog draft (approved like a template)."""
    require(viewer, Capability.TRANSLATE, "edit translations")
    base = await _catalog_base(ctx, locale, viewer)
    if base is None:
        return _not_found(request, viewer, f"catalog for {locale!r}")
    bench = _bench(request)
    live = await asyncio.to_thread(_live, ctx, bench)
    all_files = {p: s for unit in _template_files(live).values() for p, s in unit.items()}
    messages = template_messages(all_files)
    po_text = next(iter(base.files.values()))
    current = _translations_of(po_text, locale)
    edits: dict[tuple[str, str | None], str | list[str]] = {}
    for m in messages:
        field = _field_name(m.msgid, m.context)
        forms = [
            str(form.get(f"{field}:{i}") or "").strip()
            for i in range(2 if m.plural is not None else 1)
        ]
        if f"{field}:0" not in form:
            continue  # not on the page that was submitted
        if forms != _forms(current.get(m.key, ""), m.plural is not None):
            # Plural forms beyond the second (e.g. Polish) are kept as the catalog has them.
            edits[m.key] = forms if m.plural is not None and any(forms) else forms[0]
    if not edits:
        return secure_headers(RedirectResponse(f"{PREFIX}/translations/{locale}", status_code=303))
    try:
        new_text = apply_edits(po_text, locale, edits, known=messages)
    except TranslationError as exc:
        return message_page(
            request, viewer, 422, "Not saved", str(exc), f"{PREFIX}/translations/{locale}"
        )
    path = next(iter(base.files))
    draft: store.Version = await _write(
        ctx,
        store.save_draft,
        "catalog",
        locale,
        {path: new_text},
        author=viewer.person.id,
        now=ctx.clock.now(),
        draft_id=base.id,
    )
    return secure_headers(RedirectResponse(f"{PREFIX}/versions/{draft.id}", status_code=303))
