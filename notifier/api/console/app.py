"""Adds the console to the HTTP application."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from notifier.api.console import (
    audit,
    incidents,
    signin,
    silences,
    templates,
    translations,
    versions,
)
from notifier.api.console.auth import Sessions
from notifier.api.console.web import PREFIX, install
from notifier.api.deps import ApiContext
from notifier.store.sessions import is_revoked


def add_console(app: FastAPI, ctx: ApiContext) -> None:
    """Serve the console under ``/console``."""

    def revoked(key: str, person_id: str, issued_at: datetime) -> bool:
        with ctx.db.reading() as conn:
            return is_revoked(conn, key, person_id, issued_at)

    install(
        app,
        Sessions(
            ctx.settings.links.secrets,
            ctx.settings.console.session_ttl_seconds,
            ctx.clock,
            ctx.directory,
            revoked,
        ),
    )
    for module in (signin, incidents, templates, versions, translations, silences, audit):
        app.include_router(module.router)
    app.mount(
        f"{PREFIX}/static",
        StaticFiles(directory=Path(__file__).parent / "static"),
        name="console-static",
    )

    @app.get(PREFIX, include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/incidents", status_code=303)
