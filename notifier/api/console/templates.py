"""``/console/templates``: the template list, the editor with its live preview and lint,
saving drafts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

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
from notifier.api.console.workbench import (
    CHANNELS,
    Live,
    Workbench,
    channels,
    draft_sources,
    lint_findings,
    live_set,
    load,
    locales,
    not_found,
    sample_events,
    workbench,
    write,
)
from notifier.api.deps import ApiContext
from notifier.directory import Capability
from notifier.preview import (
    library_renderer,
    preview_all,
    samples_for,
    statuses_of,
)
from notifier.store import library as store
from notifier.templating import FALLBACK_CHANNEL, PARTS, SHARED, content_hash

router = APIRouter(prefix=PREFIX, include_in_schema=False)

_MAX_FILE_CHARS = 65_536

# ---------------------------------------------------------------------------------------------
# Templates


@router.get("/templates")
async def template_list(request: Request, ctx: Ctx, viewer: SignedIn) -> HTMLResponse:
    """Every template with its channels, locales, live version and waiting drafts."""
    bench = workbench(request)
    live = await asyncio.to_thread(live_set, ctx, bench)
    units = await load(ctx, store.units, "template")
    rows = [
        {
            "unit": unit,
            "channels": channels(unit.live.files, unit.name) if unit.live else [],
        }
        for unit in units
    ]
    return render(request, "templates.html", viewer=viewer, rows=rows, locales=locales(live))


@router.get("/templates/{name}")
async def template_unit(request: Request, name: str, ctx: Ctx, viewer: SignedIn) -> HTMLResponse:
    """A template's versions, newest first."""
    history = await load(ctx, store.versions, "template", name)
    if not history:
        return not_found(request, viewer, f"template {name!r}")
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
    history: list[store.Version] = await load(ctx, store.versions, "template", name)
    if not history:
        return not_found(request, viewer, f"template {name!r}")
    base = next((v for v in history if v.id == from_), None) if from_ is not None else None
    if base is None:
        # Your own open draft first, so that work in progress is never hidden.
        base = next(
            (v for v in history if v.state == "draft" and v.author == viewer.person.id), None
        ) or next((v for v in history if v.live), history[0])
    bench = workbench(request)
    live = await asyncio.to_thread(live_set, ctx, bench)
    samples = sample_events(ctx, bench)
    return render(
        request,
        "edit.html",
        viewer=viewer,
        name=name,
        base=base,
        files=sorted(base.files.items(), key=lambda kv: _file_order(kv[0])),
        channels=channels(base.files, name),
        samples=samples_for(samples, statuses_of(name)[0]) or samples,
        statuses=statuses_of(name) if name != SHARED else (),
        locales=locales(live),
        own_draft=base.state == "draft" and base.author == viewer.person.id,
        addable=[c for c in _OWN_PARTS_FOR if name != SHARED and not _has_parts(base, c)],
        removable=[c for c in _OWN_PARTS_FOR if name != SHARED and _has_parts(base, c)],
    )


# Channels that say what the email says until a template gives them parts of their own.
_OWN_PARTS_FOR = ("slack", "webhook")


def _has_parts(version: store.Version, channel: str) -> bool:
    return f"{version.name}/{channel}.subject.j2" in version.files


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
    base: store.Version | None = await load(ctx, store.version, base_id)
    if base is None or base.kind != "template" or base.name != name:
        return None
    return base


async def _draft_pane(
    request: Request,
    ctx: ApiContext,
    name: str,
    form: Form,
    make: Callable[[Workbench, Live, dict[str, str]], str],
) -> HTMLResponse:
    """Answer one of the editor's live panes: ``make`` renders it from the unsaved files."""
    base = await _base(ctx, name, form)
    if base is None:
        return HTMLResponse("<p class=error>Unknown version.</p>", status_code=404)
    files = _edited_files(form, base)
    bench = workbench(request)

    def work() -> str:
        return make(bench, live_set(ctx, bench), files)

    return HTMLResponse(await asyncio.to_thread(work), headers={"Cache-Control": "no-store"})


@router.post("/templates/{name}/preview")
async def preview_template(
    request: Request, name: str, ctx: Ctx, viewer: SignedIn, form: Form
) -> HTMLResponse:
    """The editor's preview: the unsaved files rendered in every locale side by side."""

    def make(bench: Workbench, live: Live, files: dict[str, str]) -> str:
        samples = sample_events(ctx, bench)
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
                draft_sources(live, name, files),
                live.po_texts,
                ctx.settings.templates.default_locale,
            )
            previews = preview_all(
                renderer,
                template=name,
                channel=channel,
                locales=locales(live),
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

    def make(bench: Workbench, live: Live, files: dict[str, str]) -> str:
        findings = lint_findings(ctx, bench, live, draft_sources(live, name, files), name)
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
        return not_found(request, viewer, "such version to edit")
    files = _edited_files(form, base)
    note = str(form.get("note") or "").strip()[:500] or None
    try:
        draft: store.Version = await write(
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


@router.post("/templates/{name}/parts")
async def change_channel_parts(
    request: Request, name: str, ctx: Ctx, viewer: SignedIn, form: Form
) -> Response:
    """Give a channel (Slack, webhooks) its own subject and text, starting from the email's
    (``add``), or let it say what the email says again (``remove``): the editor's unsaved
    files with that change are saved as a draft and opened in the editor."""
    require(viewer, Capability.EDIT_TEMPLATES, "edit templates")
    base = await _base(ctx, name, form)
    add, remove = str(form.get("add") or ""), str(form.get("remove") or "")
    channel = add or remove
    if base is None or name == SHARED or channel not in _OWN_PARTS_FOR or (add and remove):
        return not_found(request, viewer, "such template or channel")
    if bool(add) == _has_parts(base, channel):
        has = "already has" if add else "has no"
        return message_page(
            request,
            viewer,
            409,
            "Nothing to change",
            f"{name} {has} {channel} parts of its own.",
            f"{PREFIX}/templates/{name}/edit?from={base.id}",
        )
    files = _edited_files(form, base)
    for part in PARTS:
        own, email = f"{name}/{channel}.{part}.j2", f"{name}/{FALLBACK_CHANNEL}.{part}.j2"
        if remove:
            files.pop(own, None)
        elif part != "html" and email in files:  # Slack and webhooks lay out their own HTML
            files[own] = files[email]
    note = str(form.get("note") or "").strip()[:500] or None
    draft: store.Version = await write(
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
    return secure_headers(
        RedirectResponse(f"{PREFIX}/templates/{name}/edit?from={draft.id}", status_code=303)
    )
