"""A real engine and a real browser for the console tests (``test_console_browser.py``).

What runs: the session's embedded broker (the ``broker`` fixture), a SQLite file, an aiosmtpd
inbox (:class:`~notifier.mailcatcher.MailCatcher`), and an :class:`~notifier.app.Engine` with
ingest, delivery and the HTTP API (so the console) on 127.0.0.1, port 0; ``public_url`` is set
to the bound address once the server listens. It uses the shipped templates, locales, routing
and samples, and a copy of ``config/directory.yaml`` in which nora.kaplan, tomas.lindqvist and
mei.lin have console passwords (:data:`PASSWORDS`) and one more person, :data:`VIEWER`, holds a
role that may only view the console. The system clock is used: nothing here waits for a timer.

One event loop for everything. The engine, the inbox and Playwright's async API share the
module's event loop (pytest-asyncio ``loop_scope="module"``): while a test awaits a click, the
loop serves the request the click sends, so no threads, no locks and no cross-loop hand-offs
are needed, and a test can read ``engine.db`` between browser steps. The price is that test
code must not block the loop while the browser waits for the server: store reads go through
``asyncio.to_thread``.

Scope. Starting an engine (migrations, seeding the library, joining the consumer group) and
Chromium costs seconds, so one engine and one browser serve a whole test module
(:func:`console`, :func:`browser`); every test gets fresh browser contexts, closed after it
(:func:`signed_in`). Tests that share the engine publish alerts with unique ids, fingerprints,
names and summaries (:meth:`Console.publish_alert`) and pick their mail out by that tag. The
inbox is the module's own MailCatcher, not the function-scoped ``mailcatcher`` fixture, which
would end after the first test. Everything started is stopped in ``finally`` blocks, in reverse
order.

Chromium is Debian's (``/usr/bin/chromium``); Playwright's own browser download is never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
import yaml
from engines import make_settings
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    ViewportSize,
    async_playwright,
)
from pydantic import SecretStr
from sqlalchemy import select

from notifier.api.console.auth import hash_password
from notifier.app import Engine, load_configuration
from notifier.broker import EmbeddedBroker, Publisher, records_for
from notifier.mailcatcher import MailCatcher
from notifier.settings import (
    ConsoleSettings,
    HttpSettings,
    LinkSettings,
    Settings,
    SmtpSettings,
)
from notifier.store.schema import alerts, notifications

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
SAMPLES = CONFIG / "samples"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}

EDITOR = "nora.kaplan"  # comms-editor, translator
APPROVER = "tomas.lindqvist"  # comms-approver
COMMANDER = "mei.lin"  # incident-commander
VIEWER = "olivia.okafor"  # observer: may view the console, nothing else
VIEW_ONLY_ROLE = "observer"
PASSWORDS = {
    EDITOR: "nora-correct-horse-1",
    APPROVER: "tomas-battery-staple-2",
    COMMANDER: "mei-incident-staple-3",
    VIEWER: "olivia-read-only-4",
}

__all__ = [
    "APPROVER",
    "COMMANDER",
    "DESKTOP",
    "EDITOR",
    "PASSWORDS",
    "PHONE",
    "VIEWER",
    "Console",
    "PublishedAlert",
    "SignedIn",
    "browser",
    "console",
    "launch_browser",
    "mail_text",
    "running_console",
    "sign_in",
    "signed_in",
    "wait_until",
    "write_directory",
]


# ---------------------------------------------------------------------------------------------
# The engine


def write_directory(folder: Path) -> Path:
    """``config/directory.yaml`` with console passwords and a view-only person, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = yaml.safe_load((CONFIG / "directory.yaml").read_text("utf-8"))
    people: list[dict[str, Any]] = document["people"]
    people.append(
        {
            "id": VIEWER,
            "name": "Olivia Okafor",
            "roles": [VIEW_ONLY_ROLE],
            "locale": "en",
            "timezone": "UTC",
            "contacts": [{"channel": "email", "address": "olivia.okafor@ops.example.net"}],
        }
    )
    for person in people:
        if person["id"] in PASSWORDS:
            person["password_hash"] = hash_password(PASSWORDS[person["id"]])
    missing = set(PASSWORDS) - {p["id"] for p in people}
    assert not missing, f"config/directory.yaml no longer has {missing}"
    document["permissions"]["view"].append(VIEW_ONLY_ROLE)
    path = folder / "directory.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), "utf-8")
    return path


def _settings(
    broker: EmbeddedBroker, smtp: SmtpSettings, folder: Path, directory: Path
) -> Settings:
    base = make_settings(broker, smtp, folder, partitions=1)
    return base.model_copy(
        update={
            # Port 0: the real port is known once the server listens (see running_console).
            "http": HttpSettings(host="127.0.0.1", port=0, public_url="http://127.0.0.1:0"),
            "links": LinkSettings(
                secrets=[SecretStr("console-browser-tests-" + uuid.uuid4().hex[:8])]
            ),
            "console": ConsoleSettings(samples_directory=SAMPLES),
            "routing_file": CONFIG / "routing.yaml",
            "directory_file": directory,
            "config_dir": CONFIG,
        }
    )


async def wait_until(
    predicate: Callable[[], Any], timeout: float = 20.0, what: str = "the condition"
) -> Any:
    """Poll ``predicate`` (blocking, run in a thread) until it returns something truthy."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = await asyncio.to_thread(predicate)
                if value:
                    return value
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within {timeout} s") from None


@dataclass(frozen=True, slots=True)
class PublishedAlert:
    """A firing alert event sent to the engine; ``tag`` is in its id, fingerprint, alertname
    and summary, so its alert, its incident row and its mail can be told apart."""

    tag: str
    event_id: str
    fingerprint: str
    alertname: str
    summary: str


def mail_text(mail: EmailMessage) -> str:
    """Everything a reader could see in a message: subject, and every text and HTML part."""
    parts = [str(mail["Subject"])]
    for part in mail.walk():
        if part.get_content_maintype() == "text":
            parts.append(str(part.get_content()))
    return "\n".join(parts)


@dataclass
class Console:
    """The running engine, its inbox, and helpers to drive and observe it."""

    engine: Engine
    settings: Settings
    inbox: MailCatcher
    publisher: Publisher
    base_url: str

    def url(self, path: str) -> str:
        """An absolute URL on the engine's HTTP server (``path`` starts with ``/``)."""
        return self.base_url + path

    async def publish_alert(self, **data: Any) -> PublishedAlert:
        """Publish config/samples/alert-firing.json as a new alert (``data`` overrides fields
        of its ``data``) and return what identifies it."""
        tag = uuid.uuid4().hex[:10]
        event: dict[str, Any] = orjson.loads((SAMPLES / "alert-firing.json").read_bytes())
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        body = event["data"]
        event["id"] = f"console-{tag}"
        event["time"] = now
        body["starts_at"] = now
        body["alertname"] = f"{body['alertname']}{tag.upper()}"
        body["fingerprint"] = f"console-{tag}"
        body["annotations"]["summary"] = f"{body['annotations']['summary']} [{tag}]"
        body.update(data)
        document = orjson.dumps(event)
        max_bytes = self.settings.kafka.max_event_bytes
        await self.publisher.publish(records_for(document, max_bytes=max_bytes))
        return PublishedAlert(
            tag, event["id"], body["fingerprint"], body["alertname"], body["annotations"]["summary"]
        )

    async def alert_id(self, published: PublishedAlert, timeout: float = 20.0) -> str:
        """The id of the alert the event created, once the engine stored it."""

        def find() -> str | None:
            with self.engine.db.engine.connect() as conn:
                found: str | None = conn.execute(
                    select(alerts.c.id).where(alerts.c.fingerprint == published.fingerprint)
                ).scalar()
                return found

        alert_id: str = await wait_until(find, timeout, f"alert {published.alertname} stored")
        return alert_id

    async def alert_status(self, alert_id: str) -> str:
        """The alert's status in the store."""

        def read() -> str:
            with self.engine.db.engine.connect() as conn:
                status: str = conn.execute(
                    select(alerts.c.status).where(alerts.c.id == alert_id)
                ).scalar_one()
                return status

        return await asyncio.to_thread(read)

    async def notifications(self, alert_id: str) -> list[dict[str, Any]]:
        """The alert's notification rows."""

        def read() -> list[dict[str, Any]]:
            with self.engine.db.engine.connect() as conn:
                rows = conn.execute(
                    select(notifications).where(notifications.c.alert_id == alert_id)
                ).mappings()
                return [dict(row) for row in rows]

        return await asyncio.to_thread(read)

    async def wait_for_delivery(
        self, alert_id: str, kind: str = "firing", timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """The alert's ``kind`` notifications once every one of them was sent."""

        async def sent() -> list[dict[str, Any]]:
            rows = [r for r in await self.notifications(alert_id) if r["kind"] == kind]
            return rows if rows and all(r["status"] == "sent" for r in rows) else []

        try:
            async with asyncio.timeout(timeout):
                while not (rows := await sent()):
                    await asyncio.sleep(0.05)
        except TimeoutError:
            states = [(r["kind"], r["status"]) for r in await self.notifications(alert_id)]
            raise AssertionError(
                f"the {kind} notifications of {alert_id} were not all sent within {timeout} s: "
                f"{states}"
            ) from None
        return rows

    async def wait_for_mail(
        self, predicate: Callable[[EmailMessage], bool], count: int = 1, timeout: float = 30.0
    ) -> list[EmailMessage]:
        """Every captured message ``predicate`` accepts, once there are at least ``count``."""

        def matching() -> list[EmailMessage]:
            return [c.message for c in self.inbox.messages if predicate(c.message)]

        try:
            async with asyncio.timeout(timeout):
                while len(found := matching()) < count:
                    await asyncio.sleep(0.05)
        except TimeoutError:
            subjects = [str(c.message["Subject"]) for c in self.inbox.messages]
            raise AssertionError(
                f"{len(matching())} of {count} matching messages arrived within {timeout} s; "
                f"the inbox has {subjects}"
            ) from None
        return found

    def mail(self) -> list[EmailMessage]:
        """Every message the inbox captured so far."""
        return [c.message for c in self.inbox.messages]


@contextlib.asynccontextmanager
async def running_console(broker: EmbeddedBroker, folder: Path) -> AsyncIterator[Console]:
    """Start inbox, engine (ingest, delivery, HTTP) and a publisher; stop them all after."""
    directory = await asyncio.to_thread(write_directory, folder)  # Argon2 takes a while
    async with MailCatcher(folder / "mail") as inbox:
        smtp = SmtpSettings(
            host=inbox.host,
            port=inbox.port,
            starttls=False,
            timeout_seconds=2.0,
            sender="Notifier <notifier@example.org>",
            message_id_domain="notifier.test",
        )
        settings = _settings(broker, smtp, folder, directory)
        engine = Engine(load_configuration(settings))
        publisher = Publisher(settings.kafka.bootstrap_servers, settings.kafka.topic)
        stop = asyncio.Event()
        task: asyncio.Task[None] | None = None
        try:
            await engine.start(ingest=True, api=True)
            assert engine.http is not None
            base_url = f"http://127.0.0.1:{engine.http.port}"
            # Links in messages and the cookies' Secure flag follow public_url, read per use.
            settings.http.public_url = base_url
            task = asyncio.create_task(
                engine.run(stop, ingest=True, deliver=True, api=True), name="console-engine"
            )
            yield Console(engine, settings, inbox, publisher, base_url)
        finally:
            stop.set()
            try:
                if task is not None:
                    await task
                else:
                    await engine.close()
            finally:
                await publisher.stop()


# ---------------------------------------------------------------------------------------------
# The browser


@contextlib.asynccontextmanager
async def launch_browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def sign_in(page: Page, console: Console, person: str) -> None:
    """Sign ``person`` in through the sign-in form; the page ends on the incident list."""
    await page.goto(console.url("/console/login"))
    await page.locator("input[name=person]").fill(person)
    await page.locator("input[name=password]").fill(PASSWORDS[person])
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/incidents")
    header = page.locator("header.top form.who")
    if await header.count() != 1:
        raise AssertionError(f"{person} is not signed in: {await page.content()}")


@dataclass
class SignedIn:
    """Opens browser contexts for a test, each signed in as someone (or nobody), collects what
    the page reports as broken (uncaught errors, Content-Security-Policy refusals), and closes
    every context when the test ends."""

    browser: Browser
    console: Console
    contexts: list[BrowserContext] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    async def __call__(
        self, person: str | None, *, viewport: ViewportSize = DESKTOP, mobile: bool = False
    ) -> Page:
        """A page in a new context (its own cookies), signed in as ``person`` unless None."""
        context = await self.browser.new_context(
            viewport=viewport, is_mobile=mobile, has_touch=mobile, locale="en-GB"
        )
        self.contexts.append(context)
        context.set_default_timeout(10_000)
        page = await context.new_page()
        who = person or "nobody"
        page.on("pageerror", lambda exc: self.problems.append(f"{who}: page error {exc}"))
        page.on("console", lambda message: self._console(who, message))
        if person is not None:
            await sign_in(page, self.console, person)
        return page

    def _console(self, who: str, message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.problems.append(f"{who}: {message.text}")

    async def close(self) -> None:
        """Close every context opened (each closes its pages)."""
        for context in reversed(self.contexts):
            with contextlib.suppress(Error):
                await context.close()
        self.contexts.clear()


# ---------------------------------------------------------------------------------------------
# Fixtures (a test module uses them with ``pytest_plugins = ["console_harness"]`` and runs its
# tests in the module's loop: ``pytest.mark.asyncio(loop_scope="module")``)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Console]:
    """One engine with the console for the module's tests."""
    async with running_console(broker, tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the module's tests."""
    async with launch_browser() as chromium:
        yield chromium


@pytest_asyncio.fixture(loop_scope="module")
async def signed_in(browser: Browser, console: Console) -> AsyncIterator[SignedIn]:
    """Per test: ``page = await signed_in("mei.lin")`` opens a fresh context signed in as
    mei.lin; every context is closed after the test, which fails if a page reported a script
    error or a Content-Security-Policy refusal."""
    opener = SignedIn(browser, console)
    try:
        yield opener
    finally:
        await opener.close()
    assert not opener.problems, opener.problems
