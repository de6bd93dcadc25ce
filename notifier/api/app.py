"""The FastAPI application: every router, with the context handlers share."""

from __future__ import annotations

from fastapi import FastAPI

from notifier import __version__
from notifier.api import alerts, events, health, pages, receipts, silences, slack
from notifier.api.console.app import add_console
from notifier.api.deps import ApiContext


def create_app(ctx: ApiContext) -> FastAPI:
    """Build the HTTP application (OpenAPI at ``/docs``)."""
    app = FastAPI(
        title="notifier",
        version=__version__,
        description="Incident notification engine: alerts, acknowledgments, event ingest.",
    )
    app.state.ctx = ctx
    for module in (health, alerts, silences, events, pages, receipts, slack):
        app.include_router(module.router)
    if ctx.settings.console.enabled:
        add_console(app, ctx)
    return app
