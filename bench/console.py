"""Console speed: the template preview and the incident list, measured on the server.

Usage: python bench/console.py [--alerts 10000] [--runs 15] [--postgres ADMIN_DSN]

In one process (the app called in-process over ASGI, so the figures are server time without
a network; the garbage collector tuned as the engine tunes it): a SQLite store (or a fresh
PostgreSQL database with ``--postgres``) seeded with the shipped template library and
``--alerts`` open alerts, a signed-in session, then

* **preview** and **lint**: ``POST /console/templates/<name>/preview`` (every shipped locale
  side by side) and ``POST /console/templates/<name>/lint`` (every status x channel x locale
  rendered and checked), for every shipped template, each request with a freshly edited text
  part, as while typing (nothing cached by content hash); medians over ``--runs`` requests.
  Baseline in the same run: the engine rendering the same template once in one locale
  (``Renderer.render``), so the ratio says what a live preview costs over a plain render.
* **incident list**: ``GET /console/incidents`` with every open alert (the page's own
  ``Server-Timing`` header: query plus HTML; and the whole in-process request). Baseline:
  the query alone (``open_alerts``).

Targets (issue 6): preview < 100 ms for any template and locale; the incident list for 10,000
open alerts < 300 ms server time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx
import psycopg
from seed import seed_open_alerts

from notifier.api.app import create_app
from notifier.api.console.auth import SESSION_COOKIE, Sessions
from notifier.app import load_configuration, tune_collector
from notifier.library import seed
from notifier.preview import load_samples, sample_context
from notifier.settings import Settings, StoreSettings, TemplateSettings
from notifier.store import Database
from notifier.store import library as store
from notifier.store.incidents import open_alerts
from notifier.testing import FakeClock, offline_api_context

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def _median_ms(runs: int, call: Callable[[], Awaitable[float | None]]) -> float:
    """Median of ``runs`` calls; a call returns its own figure (ms) or None to be timed."""
    figures = []
    for _ in range(runs):
        started = time.perf_counter()
        own = await call()
        figures.append(own if own is not None else (time.perf_counter() - started) * 1000)
    return statistics.median(figures)


@contextlib.contextmanager
def _store(postgres: str | None) -> Iterator[str]:
    """A fresh store URL: a SQLite file, or a database created on the PostgreSQL server
    ``postgres`` (an admin DSN) and dropped afterwards."""
    if postgres is None:
        workdir = Path(tempfile.mkdtemp(prefix="console-bench-"))
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    name = f"notifier_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(postgres)
    try:
        yield (
            f"postgresql+psycopg://{info.get('user', 'postgres')}@"
            f"{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{name}"
        )
    finally:
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main(alerts: int, runs: int, postgres: str | None) -> None:
    """Seed, sign in, measure, print."""
    with _store(postgres) as url:
        await _measure(url, alerts, runs)


async def _measure(url: str, alerts: int, runs: int) -> None:
    settings = Settings(
        store=StoreSettings(url=url),
        templates=TemplateSettings(
            directory=ROOT / "templates", locales_directory=ROOT / "locales"
        ),
        config_dir=ROOT / "config",
    )
    config = load_configuration(settings)
    db = Database(settings.store.url)
    db.migrate()
    clock = FakeClock(NOW)
    seed(db, settings.templates.directory, settings.templates.locales_directory, clock)
    print(f"seeding {alerts:,} open alerts ...", flush=True)
    seed_open_alerts(db, alerts, NOW)

    ctx = offline_api_context(
        settings,
        db,
        config.directory,
        clock,
        renderer=config.renderer,
        routing=config.router.config,
    )
    app = create_app(ctx)
    tune_collector()  # as the engine does once it has started
    editor = next(p for p in config.directory if "comms-editor" in p.roles)
    cookie = Sessions(settings.links.secrets, 3600, clock, config.directory).issue(editor)
    viewer = Sessions(settings.links.secrets, 3600, clock, config.directory).viewer(cookie)
    assert viewer is not None
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", cookies={SESSION_COOKIE: cookie}
    ) as client:
        with db.engine.connect() as conn:
            live = store.live_set(conn)
            units = store.units(conn, "template")
        samples = load_samples(ROOT / "config" / "samples")
        print("\ntemplate editor after an edit, ms, median of", runs)
        print("  preview: every locale side by side (email; Slack with its Block Kit layout);")
        print("  lint: every status x channel x locale; one render: email, one locale")
        print(
            f"  {'template':16} {'preview':>9} {'slack':>7} {'lint':>7} {'one render':>11} "
            f"{'ratio':>7}"
        )
        worst = 0.0
        for unit in units:
            if unit.name == "shared" or unit.live is None:
                continue
            form = {"csrf": viewer.csrf, "base": str(unit.live.id), "channel": "email"}
            form |= {f"file:{path}": text for path, text in unit.live.files.items()}

            edits = iter(range(1_000_000))
            text_file = next(p for p in unit.live.files if p.endswith(".text.j2"))

            async def request(
                what: str,
                form: dict[str, str] = form,
                name: str = unit.name,
                text_file: str = text_file,
                edits: Iterator[int] = edits,
            ) -> None:
                # A new comment each time, as while typing: nothing cached by content hash.
                edited = form | {
                    f"file:{text_file}": form[f"file:{text_file}"] + f"{{# {next(edits)} #}}"
                }
                reply = await client.post(f"/console/templates/{name}/{what}", data=edited)
                assert reply.status_code == 200, reply.text[:300]
                errors = re.findall(r'<p class="error">(.*?)</p>', reply.text, re.S)
                assert not errors, f"{name}: {errors[:2]}"

            await request("preview")  # the editor's first preview compiles the rest once
            took = await _median_ms(runs, lambda: request("preview"))
            slack = form | {"channel": "slack"}
            await request("preview", slack)
            took_slack = await _median_ms(runs, partial(request, "preview", slack))
            linted = await _median_ms(runs, lambda: request("lint"))
            context = sample_context(
                next(
                    s
                    for s in samples
                    if (s.kind == "policy") == (unit.name in ("policy-change", "public-advisory"))
                ),
                template=unit.name,
                status=_first_status(unit.name),
                locale="de",
                timezone="Europe/Berlin",
                tier="responders",
                confidential=False,
            )

            async def render_once(name: str = unit.name, context: dict = context) -> None:  # type: ignore[type-arg]
                config.renderer.render(
                    name, "email", locale="de", timezone="Europe/Berlin", context=context
                )

            await render_once()
            baseline = await _median_ms(runs, render_once)
            worst = max(worst, took, took_slack)
            print(
                f"  {unit.name:16} {took:9.1f} {took_slack:7.1f} {linted:7.1f} {baseline:11.2f} "
                f"{took / baseline:6.0f}x"
            )
        print(f"  slowest preview: {worst:.1f} ms (target < 100 ms)")
        del live

        async def page_server_time() -> float:
            reply = await client.get("/console/incidents")
            assert reply.status_code == 200
            return float(reply.headers["server-timing"].split("dur=")[1])

        async def page_request() -> None:
            reply = await client.get("/console/incidents")
            assert reply.status_code == 200

        async def query_only() -> None:
            def run() -> int:
                with db.engine.connect() as conn:
                    return len(open_alerts(conn))

            count = await asyncio.to_thread(run)
            assert count == alerts, count

        await page_request()
        server = await _median_ms(runs, page_server_time)
        whole = await _median_ms(runs, page_request)
        query = await _median_ms(runs, query_only)
        size = len((await client.get("/console/incidents")).content)
        print(f"\nincident list, {alerts:,} open alerts ({db.dialect}), ms, median of {runs}")
        print(f"  server time (query + HTML) {server:8.1f}   (target < 300 ms)")
        print(f"  whole in-process request   {whole:8.1f}   page {size / 1e6:.1f} MB")
        print(f"  query alone (baseline)     {query:8.1f}   page/query {server / query:.1f}x")
    db.dispose()


def _first_status(template: str) -> str:
    from notifier.preview import statuses_of

    return statuses_of(template)[0]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--postgres",
        metavar="DSN",
        help="measure on PostgreSQL instead of SQLite: an admin DSN that may create a "
        "database (e.g. postgresql://postgres@127.0.0.1:5432/postgres)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.alerts, args.runs, args.postgres))
