"""``/console/versions`` and ``/console/diff``: a version of a template or catalog, its
four-eyes approval (or rollback), discarding drafts, differences between versions."""

from __future__ import annotations

import asyncio
import difflib
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from notifier.api.console.web import (
    PREFIX,
    Ctx,
    Form,
    SignedIn,
    message_page,
    render,
    require,
    secure_headers,
)
from notifier.api.console.workbench import (
    draft_sources,
    lint_findings,
    live_set,
    load,
    not_found,
    unit_url,
    workbench,
    write,
)
from notifier.api.deps import ApiContext
from notifier.directory import Capability
from notifier.i18n import Catalogs
from notifier.store import library as store
from notifier.templating import SHARED, unit_of

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# ---------------------------------------------------------------------------------------------
# Versions: view, approve, discard, diff (templates and catalogs alike)


@router.get("/versions/{version_id}")
async def show_version(
    request: Request, version_id: int, ctx: Ctx, viewer: SignedIn
) -> HTMLResponse:
    """One version: its files, its state, the diff against the live version, and the
    Approve button for approvers who did not write it."""
    target: store.Version | None = await load(ctx, store.version, version_id)
    if target is None:
        return not_found(request, viewer, f"version {version_id}")
    history: list[store.Version] = await load(ctx, store.versions, target.kind, target.name)
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
        unit_url=unit_url(target),
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
    first: store.Version | None = await load(ctx, store.version, a)
    second: store.Version | None = await load(ctx, store.version, b)
    if first is None or second is None or (first.kind, first.name) != (second.kind, second.name):
        return not_found(request, viewer, "such pair of versions of one unit")
    return render(
        request,
        "diff.html",
        viewer=viewer,
        a=first,
        b=second,
        diff=_diff(first, second),
        unit_url=unit_url(first),
    )


@router.post("/versions/{version_id}/approve")
async def approve_version(
    request: Request, version_id: int, ctx: Ctx, viewer: SignedIn, form: Form
) -> Response:
    """Approve the reviewed content (or roll back to it); the engine renders it at once."""
    require(viewer, Capability.APPROVE_TEMPLATES, "approve templates")
    target: store.Version | None = await load(ctx, store.version, version_id)
    if target is None:
        return not_found(request, viewer, f"version {version_id}")
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
        await write(
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
    bench = workbench(request)
    live = live_set(ctx, bench)
    if target.kind == "catalog":
        texts = dict(live.po_texts) | {target.name: next(iter(target.files.values()))}
        try:
            Catalogs.from_po_texts(texts, ctx.settings.templates.default_locale)
        except Exception as exc:  # ConfigError with every broken message
            return [str(exc)]
        return []
    sources = draft_sources(live, target.name, target.files)
    units = {unit_of(p) for p in sources if unit_of(p) != SHARED}
    # A shared macro file is used by every template: lint them all against it.
    names = sorted(units) if target.name == SHARED else [target.name]
    problems = []
    for name in names:
        for finding in lint_findings(ctx, bench, live, sources, name):
            if finding.level == "error":
                where = f" ({finding.path} line {finding.line})" if finding.path else ""
                problems.append(f"{name}: {finding.message}{where}")
    return problems[:10]


@router.post("/versions/{version_id}/discard")
async def discard_version(
    request: Request, version_id: int, ctx: Ctx, viewer: SignedIn, form: Form
) -> Response:
    """Withdraw a draft (its author or an approver)."""
    target: store.Version | None = await load(ctx, store.version, version_id)
    if target is None:
        return not_found(request, viewer, f"version {version_id}")
    if target.author != viewer.person.id:
        require(viewer, Capability.APPROVE_TEMPLATES, "discard someone else's draft")
    try:
        await write(ctx, store.discard, version_id, by=viewer.person.id, now=ctx.clock.now())
    except store.DraftRefused as exc:
        return message_page(
            request, viewer, 409, "Not discarded", str(exc), f"{PREFIX}/versions/{version_id}"
        )
    return secure_headers(RedirectResponse(unit_url(target), status_code=303))
