"""``/console/translations``: untranslated messages per template and locale, and the
per-locale editor whose saves are catalog drafts, approved like templates."""

from __future__ import annotations

import asyncio
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
    live_set,
    load,
    not_found,
    template_files,
    workbench,
    write,
)
from notifier.api.deps import ApiContext
from notifier.directory import Capability
from notifier.store import library as store
from notifier.templating import content_hash
from notifier.translations import (
    TranslationError,
    apply_edits,
    entries,
    template_messages,
    untranslated,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# ---------------------------------------------------------------------------------------------
# Translations


@router.get("/translations")
async def translation_overview(request: Request, ctx: Ctx, viewer: SignedIn) -> HTMLResponse:
    """Per template and locale, how many messages are untranslated."""
    bench = workbench(request)

    def work() -> tuple[list[str], list[tuple[str, dict[str, int]]], list[store.UnitSummary]]:
        live = live_set(ctx, bench)
        locales = [code for code in sorted(live.po_texts) if code != "en"]
        matrix = []
        for name, files in sorted(template_files(live).items()):
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
    history: list[store.Version] = await load(ctx, store.versions, "catalog", locale)
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
        return not_found(request, viewer, f"catalog for {locale!r}")
    bench = workbench(request)
    live = await asyncio.to_thread(live_set, ctx, bench)
    per_template = template_files(live)
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
    history: list[store.Version] = await load(ctx, store.versions, "catalog", locale)
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
        return not_found(request, viewer, f"catalog for {locale!r}")
    bench = workbench(request)
    live = await asyncio.to_thread(live_set, ctx, bench)
    all_files = {p: s for unit in template_files(live).values() for p, s in unit.items()}
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
    draft: store.Version = await write(
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
