"""What the template library's pages share: the live set and its catalogs, samples, drafts
merged into the library, store access off the event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from notifier.api.console.web import (
    PREFIX,
    SignedIn,
    message_page,
)
from notifier.api.deps import ApiContext
from notifier.i18n import Catalogs
from notifier.lint import Finding, lint
from notifier.preview import Sample, load_samples
from notifier.store import library as store
from notifier.templating import SHARED, unit_of

CHANNELS = ("email", "slack", "webhook")


# ---------------------------------------------------------------------------------------------
# What the pages share: the live set, renderers for drafts, samples


@dataclass(frozen=True, slots=True)
class Live:
    sources: dict[str, str]
    po_texts: dict[str, str]
    catalogs: Catalogs
    signature: tuple[tuple[str, str, int], ...]


class Workbench:
    """Caches what previews need: the live set (by signature) and the samples (renderers of
    drafts are cached by content hash in :func:`notifier.preview.library_renderer`)."""

    def __init__(self) -> None:
        self.live: Live | None = None
        self.samples: list[Sample] | None = None


def workbench(request: Request) -> Workbench:
    bench: Workbench | None = getattr(request.app.state, "console_bench", None)
    if bench is None:
        bench = request.app.state.console_bench = Workbench()
    return bench


def live_set(ctx: ApiContext, bench: Workbench) -> Live:
    with ctx.db.reading() as conn:
        signature = store.live_signature(conn)
        if bench.live is not None and bench.live.signature == signature:
            return bench.live
        live = store.live_set(conn)
    catalogs = Catalogs.from_po_texts(live.po_texts, ctx.settings.templates.default_locale)
    bench.live = Live(live.sources, live.po_texts, catalogs, live.signature)
    return bench.live


def sample_events(ctx: ApiContext, bench: Workbench) -> list[Sample]:
    if bench.samples is None:
        directory = ctx.settings.resolve(ctx.settings.console.samples_directory)
        bench.samples = load_samples(directory) if directory.is_dir() else []
    return bench.samples


def channels(files: dict[str, str], name: str) -> list[str]:
    own = sorted({path.split("/", 1)[1].split(".", 1)[0] for path in files if "/" in path})
    # Channels without parts of their own say what the email says (see templating.py).
    return own + [c for c in CHANNELS if c not in own] if name != SHARED else []


def locales(live: Live) -> list[str]:
    return live.catalogs.languages()


async def load(ctx: ApiContext, fn: Any, *args: Any) -> Any:
    def run() -> Any:
        with ctx.db.reading() as conn:
            return fn(conn, *args)

    return await asyncio.to_thread(run)


async def write(ctx: ApiContext, fn: Any, *args: Any, **kwargs: Any) -> Any:
    def run() -> Any:
        with ctx.db.transaction() as conn:
            return fn(conn, *args, **kwargs)

    return await asyncio.to_thread(run)


def not_found(request: Request, viewer: SignedIn, what: str) -> HTMLResponse:
    return message_page(
        request, viewer, 404, "Not found", f"There is no {what}.", f"{PREFIX}/templates"
    )


def draft_sources(live: Live, name: str, files: dict[str, str]) -> dict[str, str]:
    """The live library with this unit's files replaced by the draft's."""
    return {p: s for p, s in live.sources.items() if unit_of(p) != name} | files


def lint_findings(
    ctx: ApiContext, bench: Workbench, live: Live, sources: dict[str, str], name: str
) -> list[Finding]:
    """Lint template ``name`` as ``sources`` (a library set with a draft in it) renders it."""
    return lint(
        sources,
        name,
        settings=ctx.settings.templates,
        po_texts=live.po_texts,
        routing=ctx.routing,
        samples=sample_events(ctx, bench),
        default_locale=ctx.settings.templates.default_locale,
    )


def unit_url(version: store.Version) -> str:
    section = "templates" if version.kind == "template" else "translations"
    return f"{PREFIX}/{section}/{version.name}"


def template_files(live: Live) -> dict[str, dict[str, str]]:
    """Each template's files plus the shared files it can import."""
    shared = {p: s for p, s in live.sources.items() if unit_of(p) == SHARED}
    by_unit: dict[str, dict[str, str]] = {}
    for path, source in live.sources.items():
        unit = unit_of(path)
        if unit != SHARED:
            by_unit.setdefault(unit, dict(shared))[path] = source
    return by_unit
