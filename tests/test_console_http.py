"""The web console over HTTP (in process): sign-in, sessions and CSRF, roles, the template
editor's preview, four-eyes approval, diffs, translations, the audit log and incidents."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import func, select

from notifier import library
from notifier.api.app import create_app
from notifier.api.console.auth import LOGIN_COOKIE, SESSION_COOKIE, hash_password
from notifier.api.console.web import mrkdwn
from notifier.directory import Directory, Person
from notifier.pipeline import BatchProcessor, RawRecord
from notifier.routing import Router, RoutingConfig
from notifier.settings import Settings, TemplateSettings
from notifier.store import Database, audit
from notifier.store import library as store
from notifier.store.schema import alerts, library_versions
from notifier.testing import FakeClock, offline_api_context

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
TEMPLATES = ROOT / "templates"
LOCALES = ROOT / "locales"
T0 = datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
TEXT = "alert/email.text.j2"
SUBJECT = "alert/email.subject.j2"

EDITOR = "erika.editor"
APPROVER = "anna.approver"
COMMANDER = "mei.lin"  # in the shipped directory: incident-commander
VIEWER = "otto.observer"
PASSWORDS = {
    EDITOR: "editor-password-1",
    APPROVER: "approver-password-2",
    COMMANDER: "commander-password-3",
    VIEWER: "viewer-password-4",
}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@cache
def _hash(password: str) -> str:
    return hash_password(password)


def _directory() -> Directory:
    """The shipped directory (routing needs its roles) with console passwords, plus an editor,
    an approver and someone who may only look."""
    shipped = Directory.load(CONFIG / "directory.yaml")
    people = [
        p.model_copy(update={"password_hash": _hash(PASSWORDS[p.id])}) if p.id in PASSWORDS else p
        for p in shipped
    ]
    for person_id, role in (
        (EDITOR, "comms-editor"),
        (APPROVER, "comms-approver"),
        (VIEWER, "observer"),
    ):
        people.append(
            Person.model_validate(
                {
                    "id": person_id,
                    "name": person_id.replace(".", " ").title(),
                    "roles": [role],
                    "contacts": [{"channel": "email", "address": f"{person_id}@example.org"}],
                    "password_hash": _hash(PASSWORDS[person_id]),
                }
            )
        )
    permissions = shipped.permissions.model_copy(
        update={"view": (*shipped.permissions.view, "observer")}
    )
    return Directory(people, permissions)


@dataclass
class Console:
    """The app in process, what it was built with, and a browser per person."""

    app: Any
    db: Database
    clock: FakeClock
    settings: Settings
    library_changes: list[None] = field(default_factory=list)
    browsers: list[httpx.AsyncClient] = field(default_factory=list)

    def browser(self, address: str = "127.0.0.1") -> httpx.AsyncClient:
        """A fresh client with its own cookie jar, calling from ``address``."""
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=(address, 50_000)),
            base_url="http://testserver",
        )
        self.browsers.append(client)
        return client

    async def signed_in(self, person: str) -> Browser:
        """A browser that signed in as ``person``."""
        client = self.browser()
        response = await sign_in(client, person, PASSWORDS[person])
        assert response.status_code == 303, response.text
        return Browser(client, await csrf_of(client))

    def alert_id(self) -> str:
        with self.db.engine.connect() as conn:
            return str(conn.scalar(select(alerts.c.id).where(alerts.c.kind == "alert")))

    def audit(self, action: str) -> list[dict[str, Any]]:
        with self.db.engine.connect() as conn:
            return audit.entries(conn, action=action, limit=None)

    def live(self, name: str, kind: store.Kind = "template") -> store.Version:
        with self.db.engine.connect() as conn:
            return next(v for v in store.versions(conn, kind, name) if v.live)

    def version(self, version_id: int) -> store.Version:
        with self.db.engine.connect() as conn:
            found = store.version(conn, version_id)
        assert found is not None
        return found

    def version_count(self) -> int:
        with self.db.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(library_versions)) or 0)


@dataclass
class Browser:
    """A signed-in client and its session's CSRF token."""

    client: httpx.AsyncClient
    csrf: str

    async def get(self, url: str, **params: Any) -> httpx.Response:
        return await self.client.get(url, params=params or None)

    async def post(self, url: str, data: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.post(url, data={"csrf": self.csrf, **(data or {})})


async def sign_in(client: httpx.AsyncClient, person: str, password: str) -> httpx.Response:
    """Fill in the sign-in form as a browser would."""
    page = await client.get("/console/login")
    assert page.status_code == 200
    token = _CSRF.search(page.text)
    assert token is not None
    return await client.post(
        "/console/login",
        data={"csrf": token.group(1), "person": person, "password": password, "next": ""},
    )


async def csrf_of(client: httpx.AsyncClient) -> str:
    """The session's CSRF token, as every page's forms carry it."""
    page = await client.get("/console/incidents")
    assert page.status_code == 200, page.text
    token = _CSRF.search(page.text)
    assert token is not None
    return token.group(1)


def _insert_alert(db: Database, directory: Directory, clock: FakeClock) -> None:
    """The firing sample alert, through the engine's own batch processing."""
    router = Router(RoutingConfig.load(CONFIG / "routing.yaml"), directory)
    proc = BatchProcessor(db, router, clock, group="g", topic="t", max_event_bytes=1 << 20)
    raw = (CONFIG / "samples" / "alert-firing.json").read_bytes()
    records = [RawRecord("t", 0, 0, None, raw, ())]
    proc.apply(records, proc.decode(records))


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    """The console over a SQLite store seeded with the shipped templates and catalogs."""
    db = Database(f"sqlite:///{tmp_path / 'console.db'}")
    db.migrate()
    clock = FakeClock(T0)
    library.seed(db, TEMPLATES, LOCALES, clock)
    directory = _directory()
    _insert_alert(db, directory, clock)
    settings = Settings(
        config_dir=CONFIG,
        templates=TemplateSettings(directory=TEMPLATES, locales_directory=LOCALES),
    )
    changes: list[None] = []
    ctx = offline_api_context(
        settings,
        db,
        directory,
        clock,
        routing=RoutingConfig.load(CONFIG / "routing.yaml"),
        library_changed=lambda: changes.append(None),
    )
    running = Console(create_app(ctx), db, clock, settings, changes)
    yield running
    for client in running.browsers:
        await client.aclose()
    db.dispose()


def _location(response: httpx.Response) -> str:
    assert response.status_code == 303, (response.status_code, response.text)
    return response.headers["location"]


def _version_id(response: httpx.Response) -> int:
    match = re.fullmatch(r"/console/versions/(\d+)", _location(response))
    assert match is not None, response.headers["location"]
    return int(match.group(1))


def _reviewed_hash(page: httpx.Response) -> str:
    match = re.search(r'name="reviewed_hash" value="([0-9a-f]{64})"', page.text)
    assert match is not None, "no Approve button"
    return match.group(1)


async def _save_alert_draft(browser: Browser, console: Console, text: str) -> int:
    """Save ``text`` as the alert's email text part through the editor; the version id."""
    editor = await browser.get("/console/templates/alert/edit")
    assert editor.status_code == 200
    base = re.search(r'name="base" value="(\d+)"', editor.text)
    assert base is not None
    response = await browser.post(
        "/console/templates/alert/drafts",
        {"base": base.group(1), f"file:{TEXT}": text, "note": "console test"},
    )
    return _version_id(response)


# ---------------------------------------------------------------------------------------------
# Signing in, sessions, CSRF


async def test_sign_in_page_sets_its_cookie(console: Console) -> None:
    """The sign-in form comes with the signed cookie its token is checked against."""
    client = console.browser()
    page = await client.get("/console/login")
    assert page.status_code == 200
    assert LOGIN_COOKIE in page.cookies
    assert _CSRF.search(page.text) is not None
    assert page.headers["x-frame-options"] == "DENY"
    # Without the cookie the form's token is refused.
    token = _CSRF.search(page.text)
    assert token is not None
    client.cookies.clear()
    refused = await client.post(
        "/console/login",
        data={"csrf": token.group(1), "person": EDITOR, "password": PASSWORDS[EDITOR]},
    )
    assert refused.status_code == 403
    assert SESSION_COOKIE not in refused.cookies


async def test_a_wrong_password_is_refused_and_audited(console: Console) -> None:
    """A wrong password: 401, no session, and the failure in the audit log."""
    client = console.browser()
    response = await sign_in(client, EDITOR, "not-the-password")
    assert response.status_code == 401
    assert SESSION_COOKIE not in response.cookies
    assert "do not match" in response.text
    [failed] = console.audit("console.sign-in-failed")
    assert (failed["actor"], failed["details"]) == (
        EDITOR,
        {"person": EDITOR, "address": "127.0.0.1"},
    )
    assert [e["action"] for e in console.audit("console.")] == ["console.sign-in-failed"]
    assert (await client.get("/console/incidents")).status_code == 303


async def test_password_guessing_locks_the_id_for_a_while(console: Console) -> None:
    """Five failures for one id within 15 minutes: even the right password is refused (429,
    audited) until the window has passed; other ids are not affected."""
    client = console.browser()
    for _ in range(5):
        assert (await sign_in(client, EDITOR, "guess")).status_code == 401
    refused = await sign_in(client, EDITOR, PASSWORDS[EDITOR])
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.text
    assert SESSION_COOKIE not in refused.cookies
    assert [e["actor"] for e in console.audit("console.sign-in-refused")] == [EDITOR]
    assert _location(await sign_in(console.browser(), APPROVER, PASSWORDS[APPROVER]))
    console.clock.advance(15 * 60 + 1)
    assert _location(await sign_in(client, EDITOR, PASSWORDS[EDITOR])) == "/console/incidents"


async def test_guessing_from_one_address_across_many_ids_is_refused(console: Console) -> None:
    """Failed sign-ins from one client address count whatever the ids (one password tried on
    many people): at the limit that address is refused, even with a right password, while
    another address signs in; the window ends; each attempt's address is audited."""
    console.settings.console.max_failed_sign_ins_per_address = 6
    guesser = console.browser("198.51.100.7")
    for n in range(6):  # six different ids: no id reaches its own limit of five
        assert (await sign_in(guesser, f"someone-{n}", "Winter2026!")).status_code == 401
    refused = await sign_in(guesser, EDITOR, PASSWORDS[EDITOR])
    assert refused.status_code == 429
    assert "Too many failed sign-ins from your address" in refused.text
    assert SESSION_COOKIE not in refused.cookies
    elsewhere = console.browser("203.0.113.9")
    assert _location(await sign_in(elsewhere, EDITOR, PASSWORDS[EDITOR])) == "/console/incidents"
    failed = console.audit("console.sign-in-failed")
    assert {e["details"]["address"] for e in failed} == {"198.51.100.7"}
    [blocked] = console.audit("console.sign-in-refused")
    assert blocked["details"] == {"person": EDITOR, "address": "198.51.100.7"}
    console.clock.advance(15 * 60 + 1)
    assert _location(await sign_in(guesser, EDITOR, PASSWORDS[EDITOR])) == "/console/incidents"


async def test_after_signing_out_a_copy_of_the_cookie_signs_nobody_in(console: Console) -> None:
    """Signing out ends the session in the store: the same cookie, replayed by another
    client, is sent to the sign-in page; signing out twice is harmless; audited."""
    nora = await console.signed_in(EDITOR)
    cookie = nora.client.cookies[SESSION_COOKIE]
    replay = console.browser()
    replay.cookies.set(SESSION_COOKIE, cookie)
    assert (await replay.get("/console/incidents")).status_code == 200
    assert _location(await nora.post("/console/logout")) == "/console/login"
    assert _location(await replay.get("/console/incidents")).startswith("/console/login")
    assert (await replay.post("/console/logout", data={"csrf": nora.csrf})).status_code == 401
    assert [e["actor"] for e in console.audit("console.sign-out")] == [EDITOR]
    # A new sign-in is a new session.
    assert (await (await console.signed_in(EDITOR)).get("/console/incidents")).status_code == 200


async def test_signing_out_everywhere_ends_every_earlier_session(console: Console) -> None:
    """Two devices signed in; "everywhere" from one ends both (a copy of either cookie too),
    not another person's session; signing in afterwards works; both sign-outs everywhere
    are audited (a second one moves the line forward)."""
    laptop = await console.signed_in(EDITOR)
    console.clock.advance(60)
    phone = await console.signed_in(EDITOR)
    other = await console.signed_in(APPROVER)
    console.clock.advance(60)
    assert _location(await phone.post("/console/logout/everywhere")) == "/console/login"
    for device in (laptop, phone):
        reply = await device.get("/console/incidents")
        assert _location(reply).startswith("/console/login")
    assert (await other.get("/console/incidents")).status_code == 200
    console.clock.advance(1)
    again = await console.signed_in(EDITOR)
    assert (await again.get("/console/incidents")).status_code == 200
    console.clock.advance(60)
    assert _location(await again.post("/console/logout/everywhere")) == "/console/login"
    assert _location(await again.get("/console/incidents")).startswith("/console/login")
    assert [e["actor"] for e in console.audit("console.sign-out-everywhere")] == [EDITOR] * 2
    console.clock.advance(1)
    assert (await (await console.signed_in(EDITOR)).get("/console/incidents")).status_code == 200


async def test_the_right_password_signs_in(console: Console) -> None:
    """The right password: a redirect into the console, the session cookie, an audit entry."""
    client = console.browser()
    response = await sign_in(client, EDITOR, PASSWORDS[EDITOR])
    assert _location(response) == "/console/incidents"
    assert SESSION_COOKIE in response.cookies
    [entry] = console.audit("console.")
    assert (entry["action"], entry["actor"]) == ("console.sign-in", EDITOR)
    page = await client.get("/console/incidents")
    assert page.status_code == 200
    assert "Erika Editor" in page.text


async def test_a_post_without_the_csrf_token_is_refused(console: Console) -> None:
    """A signed-in person's POST without the session's token changes nothing."""
    editor = await console.signed_in(EDITOR)
    base = console.live("alert")
    count = console.version_count()
    for token in (None, "forged"):
        data = {"base": str(base.id), f"file:{TEXT}": "forged\n"}
        if token is not None:
            data["csrf"] = token
        response = await editor.client.post("/console/templates/alert/drafts", data=data)
        assert response.status_code == 403
        assert "security token" in response.text
    assert console.version_count() == count
    assert console.audit("template.edit") == []
    # The same request with the token is accepted.
    accepted = await editor.post(
        "/console/templates/alert/drafts", {"base": str(base.id), f"file:{TEXT}": "mine\n"}
    )
    assert accepted.status_code == 303
    assert console.version_count() == count + 1


async def test_an_expired_session_is_sent_to_sign_in(console: Console) -> None:
    """Once the session is older than its TTL, pages redirect to the sign-in page."""
    viewer = await console.signed_in(VIEWER)
    assert (await viewer.get("/console/templates")).status_code == 200
    console.clock.advance(console.settings.console.session_ttl_seconds - 5)
    assert (await viewer.get("/console/templates")).status_code == 200
    console.clock.advance(10)
    response = await viewer.get("/console/templates")
    assert response.status_code == 303
    assert unquote(response.headers["location"]) == "/console/login?next=/console/templates"
    # POSTs are refused too.
    posted = await viewer.post("/console/logout")
    assert posted.status_code == 401


async def test_a_viewer_cannot_edit_or_approve(console: Console) -> None:
    """Someone who may only look gets 403 from the editor, from saving and from approving."""
    viewer = await console.signed_in(VIEWER)
    editor = await console.signed_in(EDITOR)
    draft = await _save_alert_draft(editor, console, "Editor's text\n")
    assert (await viewer.get("/console/templates/alert")).status_code == 200
    assert (await viewer.get("/console/templates/alert/edit")).status_code == 403
    saved = await viewer.post(
        "/console/templates/alert/drafts",
        {"base": str(console.live("alert").id), f"file:{TEXT}": "viewer\n"},
    )
    assert saved.status_code == 403
    page = await viewer.get(f"/console/versions/{draft}")
    assert page.status_code == 200
    assert 'name="reviewed_hash"' not in page.text
    approved = await viewer.post(
        f"/console/versions/{draft}/approve",
        {"reviewed_hash": console.version(draft).content_hash},
    )
    assert approved.status_code == 403
    assert "approve templates" in approved.text
    assert console.version(draft).state == "draft"
    assert console.live("alert").number == 1
    assert console.library_changes == []


# ---------------------------------------------------------------------------------------------
# The template editor


def test_mrkdwn_is_shown_bold_and_never_as_markup() -> None:
    """Slack's escaped text is read back and escaped again for the page: an event's
    <script> shows as text; *bold* (written by the layout) is bold."""
    shown = mrkdwn("*Status:* &lt;script&gt;alert(1)&lt;/script&gt; &amp; *<b>x</b>*")
    assert shown == (
        "<strong>Status:</strong> &lt;script&gt;alert(1)&lt;/script&gt; &amp; "
        "<strong>&lt;b&gt;x&lt;/b&gt;</strong>"
    )


async def test_slack_preview_shows_the_message_as_slack_lays_it_out(console: Console) -> None:
    """The Slack preview shows the header, the context line and the buttons, in each
    locale's words; event text stays escaped on the page."""
    editor = await console.signed_in(EDITOR)
    base = console.live("alert")
    response = await editor.post(
        "/console/templates/alert/preview",
        {"base": str(base.id), "sample": "alert-firing", "channel": "slack", "status": "firing"},
    )
    assert response.status_code == 200
    sections = _previews(response.text)
    assert '<span class="slack-button primary">Quittieren</span>' in sections["de"]
    assert "<strong>Schweregrad:</strong> Kritisch" in sections["de"]
    assert '<span class="slack-button primary">Reconocer</span>' in sections["es"]
    assert '<span class="slack-button primary">Acknowledge</span>' in sections["en"]
    assert "<iframe" not in sections["en"]


async def test_preview_renders_german_and_lints(console: Console) -> None:
    """The preview renders the alert in every locale (German with the catalog); for a syntax
    error the preview and the lint results name the file and line."""
    editor = await console.signed_in(EDITOR)
    base = console.live("alert")
    response = await editor.post(
        "/console/templates/alert/preview",
        {"base": str(base.id), "sample": "alert-firing", "channel": "email", "status": "firing"},
    )
    assert response.status_code == 200
    sections = _previews(response.text)
    assert {"de", "en", "es"} <= set(sections)
    assert "Schweregrad" in sections["de"] and "Quelle" in sections["de"]
    assert 'class="error"' not in sections["de"]
    assert "Severity" in sections["en"] and "Schweregrad" not in sections["en"]
    clean = await editor.post("/console/templates/alert/lint", {"base": str(base.id)})
    assert clean.status_code == 200
    assert _errors(clean.text) == []

    broken = {"base": str(base.id), f"file:{TEXT}": "First line\nSecond line\n{% if %}\n"}
    failed = _previews((await editor.post("/console/templates/alert/preview", broken)).text)
    assert "syntax error" in failed["de"] and f"{TEXT} line 3" in failed["de"]
    linted = await editor.post("/console/templates/alert/lint", broken)
    assert linted.status_code == 200
    findings = _errors(linted.text)
    assert any(f"{TEXT} line 3" in finding for finding in findings), findings
    # Neither is saved.
    assert console.live("alert").id == base.id
    assert len(console.audit("template.")) == len(console.audit("template.seed"))


async def test_slack_can_be_given_its_own_words(console: Console) -> None:
    """Slack says what the email says until the editor gives it parts of its own (a draft
    starting from the email's as edited, unsaved edits kept); then the Slack preview renders
    those, the email's unchanged; "say what the email says" removes them again."""
    editor = await console.signed_in(EDITOR)
    base = console.live("alert")
    page = await editor.get("/console/templates/alert/edit")
    assert "Give slack its own subject and text" in page.text
    assert "Let slack say what the email says" not in page.text
    unsaved = "[Edited] {{ alert.summary }}\n"
    added = await editor.post(
        "/console/templates/alert/parts",
        {"base": str(base.id), "add": "slack", f"file:{SUBJECT}": unsaved, "note": "why"},
    )
    location = _location(added)
    draft_id = int(location.rsplit("from=", 1)[1])
    draft = console.version(draft_id)
    assert draft.state == "draft" and draft.author == EDITOR and draft.note == "why"
    slack_subject = "alert/slack.subject.j2"
    assert draft.files[SUBJECT] == draft.files[slack_subject] == unsaved
    assert "alert/slack.html.j2" not in draft.files
    assert console.live("alert").id == base.id  # nothing live changed
    opened = await editor.get(location)
    assert f'name="file:{slack_subject}"' in opened.text
    assert "Give slack its own" not in opened.text and "Give webhook its own" in opened.text
    form = {
        "base": str(draft_id),
        "status": "firing",
        f"file:{slack_subject}": "Slack: {{ alert.summary }}\n",
    }
    slack = _previews(
        (await editor.post("/console/templates/alert/preview", form | {"channel": "slack"})).text
    )
    email = _previews(
        (await editor.post("/console/templates/alert/preview", form | {"channel": "email"})).text
    )
    assert "Slack: Finality lag above 4 epochs on mainnet" in slack["de"]
    assert "Slack:" not in email["de"] and "[Edited]" in email["de"]
    webhook = _previews(
        (await editor.post("/console/templates/alert/preview", form | {"channel": "webhook"})).text
    )
    body = re.search(r"<pre aria-label=\"Webhook body \(de\)\">(.*?)</pre>", webhook["de"], re.S)
    assert body is not None, webhook["de"]
    sent = json.loads(body.group(1))  # unescaped by _previews: what the receiver parses
    assert sent["language"] == "de" and "[Edited]" in sent["subject"]
    assert "JSON body" not in email["de"] and "JSON body" not in slack["de"]
    again = await editor.post(
        "/console/templates/alert/parts", {"base": str(draft_id), "add": "slack"}
    )
    assert again.status_code == 409
    assert "Let slack say what the email says" in opened.text
    removed = await editor.post(
        "/console/templates/alert/parts", {"base": str(draft_id), "remove": "slack"}
    )
    assert _location(removed).endswith(f"from={draft_id}")  # the same draft, updated
    assert set(console.version(draft_id).files) == set(base.files)
    assert console.version(draft_id).files[SUBJECT] == unsaved
    for refused in ({"remove": "email"}, {"add": "slack", "remove": "webhook"}):
        reply = await editor.post(
            "/console/templates/alert/parts", {"base": str(draft_id)} | refused
        )
        assert reply.status_code == 404


def _previews(fragment: str) -> dict[str, str]:
    """Each locale's preview card in a preview fragment."""
    pattern = r'<section class="card preview" data-locale="([^"]+)">(.*?)</section>'
    return {locale: html.unescape(card) for locale, card in re.findall(pattern, fragment, re.S)}


def _errors(fragment: str) -> list[str]:
    """The error findings in a lint fragment, as text."""
    items = re.findall(r'<li class="level-error"[^>]*>(.*?)</li>', fragment, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", item)) for item in items]


async def test_save_approve_and_the_engine_follows(console: Console) -> None:
    """A saved draft goes live only on another approver's approval of the reviewed content;
    the approval tells the engine."""
    editor = await console.signed_in(EDITOR)
    approver = await console.signed_in(APPROVER)
    v1 = console.live("alert")
    draft = await _save_alert_draft(editor, console, v1.files[TEXT] + "\nConsole edit line\n")
    saved = console.version(draft)
    assert (saved.state, saved.author, saved.number) == ("draft", EDITOR, 2)
    page = await editor.get(f"/console/versions/{draft}")
    assert page.status_code == 200
    assert "another approver must approve it" in page.text
    assert 'name="reviewed_hash"' not in page.text
    # The editor may not approve at all.
    refused = await editor.post(
        f"/console/versions/{draft}/approve", {"reviewed_hash": saved.content_hash}
    )
    assert refused.status_code == 403

    review = await approver.get(f"/console/versions/{draft}")
    reviewed = _reviewed_hash(review)
    assert reviewed == saved.content_hash
    wrong = await approver.post(f"/console/versions/{draft}/approve", {"reviewed_hash": "0" * 64})
    assert wrong.status_code == 409
    assert "changed since you reviewed" in wrong.text
    assert console.live("alert").id == v1.id
    assert console.library_changes == []

    approved = await approver.post(
        f"/console/versions/{draft}/approve", {"reviewed_hash": reviewed}
    )
    assert _location(approved) == f"/console/versions/{draft}"
    assert console.live("alert").id == draft
    assert console.version(draft).approved_by == APPROVER
    assert console.library_changes == [None]
    [entry] = console.audit("template.approve")
    assert (entry["actor"], entry["subject"]) == (APPROVER, "alert")
    # Approving it again is refused: it is live already.
    again = await approver.post(f"/console/versions/{draft}/approve", {"reviewed_hash": reviewed})
    assert again.status_code == 409
    assert console.library_changes == [None]


async def test_the_author_cannot_approve_their_own_draft(console: Console) -> None:
    """An approver who wrote the draft is refused by the four-eyes rule."""
    approver = await console.signed_in(APPROVER)
    draft = await _save_alert_draft(approver, console, "Approver's own text\n")
    page = await approver.get(f"/console/versions/{draft}")
    assert 'name="reviewed_hash"' not in page.text
    response = await approver.post(
        f"/console/versions/{draft}/approve",
        {"reviewed_hash": console.version(draft).content_hash},
    )
    assert response.status_code == 409
    assert "four-eyes" in response.text
    assert console.version(draft).state == "draft"
    assert console.library_changes == []


async def test_a_version_with_a_syntax_error_cannot_be_approved(console: Console) -> None:
    """A draft that does not compile is saved, but approval names the problem and refuses."""
    editor = await console.signed_in(EDITOR)
    approver = await console.signed_in(APPROVER)
    draft = await _save_alert_draft(editor, console, "First line\nSecond line\n{% if %}\n")
    reviewed = _reviewed_hash(await approver.get(f"/console/versions/{draft}"))
    response = await approver.post(
        f"/console/versions/{draft}/approve", {"reviewed_hash": reviewed}
    )
    assert response.status_code == 409
    assert "errors and cannot go live" in response.text
    assert f"{TEXT} line 3" in response.text
    assert console.version(draft).state == "draft"
    assert console.live("alert").number == 1
    assert console.library_changes == []
    assert console.audit("template.approve") == []


async def test_the_diff_shows_the_changed_line(console: Console) -> None:
    """The diff between two versions shows the added and the removed line."""
    editor = await console.signed_in(EDITOR)
    v1 = console.live("alert")
    original = v1.files[TEXT]
    first_line = original.splitlines()[0]
    changed = original.replace(first_line, "{# replaced by the console test #}", 1)
    draft = await _save_alert_draft(editor, console, changed + "Added by the console test\n")
    response = await editor.get("/console/diff", a=v1.id, b=draft)
    assert response.status_code == 200
    assert '<span class="add">+Added by the console test</span>' in response.text
    assert '<span class="add">+{# replaced by the console test #}</span>' in response.text
    removed = re.findall(r'<span class="del">-(.*?)</span>', response.text)
    assert removed, response.text
    assert [html.unescape(line) for line in removed] == [first_line]
    # Only the changed file is shown.
    assert re.findall(r"<h3><code>([^<]+)</code></h3>", response.text) == [TEXT]
    # The unit's page offers any two of its versions to compare (newest two preselected).
    unit = await editor.get("/console/templates/alert")
    compare = re.search(r'<form class="filters compare".*?</form>', unit.text, re.S)
    assert compare is not None, unit.text
    assert re.findall(r'<option value="(\d+)" selected>', compare.group(0)) == [
        str(v1.id),
        str(draft),
    ]
    # Versions of different units are not compared.
    other = console.live("reminder")
    assert (await editor.get("/console/diff", a=v1.id, b=other.id)).status_code == 404


# ---------------------------------------------------------------------------------------------
# Translations


def _untranslated_counts(html: str, template: str) -> list[str]:
    row = re.search(rf"<tr><td>{re.escape(template)}</td>(.*?)</tr>", html, re.S)
    assert row is not None, html
    return [re.sub(r"\s+", " ", cell).strip() for cell in re.findall(r'">([^<]*)</a>', row[1])]


async def test_translations_from_overview_to_the_live_catalog(console: Console) -> None:
    """A new message shows as untranslated; a German translation saved in the console is a
    catalog draft until another person approves it; then the live catalog has it."""
    sentence = "The console test sentence"
    german = "Der Satz des Konsolentests"
    v1 = console.live("alert")
    files = dict(v1.files)
    files[TEXT] = files[TEXT] + f"{{% trans %}}{sentence}{{% endtrans %}}\n"
    with console.db.transaction() as conn:
        draft = store.save_draft(
            conn,
            "template",
            "alert",
            files,
            author="someone",
            now=console.clock.now(),
            draft_id=v1.id,
        )
        store.approve(
            conn,
            draft.id,
            approver="another",
            reviewed_hash=draft.content_hash,
            now=console.clock.now(),
        )

    editor = await console.signed_in(EDITOR)
    approver = await console.signed_in(APPROVER)
    overview = await editor.get("/console/translations")
    assert overview.status_code == 200
    header = re.findall(r"<th>([a-z_]+)</th>", overview.text)
    assert header == ["de", "es"]
    assert _untranslated_counts(overview.text, "alert") == ["1 untranslated", "1 untranslated"]
    assert _untranslated_counts(overview.text, "reminder") == ["complete", "complete"]

    page = await editor.get("/console/translations/de", template="alert", only="untranslated")
    assert page.status_code == 200
    fields = re.findall(r'<textarea rows="2" name="(t:[0-9a-f]{16}:0)"', page.text)
    assert len(fields) == 1, page.text
    assert sentence in page.text
    saved = await editor.post("/console/translations/de", {fields[0]: german})
    version_id = _version_id(saved)
    catalog = console.version(version_id)
    assert (catalog.kind, catalog.name, catalog.state, catalog.author) == (
        "catalog",
        "de",
        "draft",
        EDITOR,
    )
    assert german in next(iter(catalog.files.values()))
    assert german not in next(iter(console.live("de", "catalog").files.values()))
    [edit] = console.audit("catalog.edit")
    assert (edit["actor"], edit["subject"]) == (EDITOR, "de")

    reviewed = _reviewed_hash(await approver.get(f"/console/versions/{version_id}"))
    approved = await approver.post(
        f"/console/versions/{version_id}/approve", {"reviewed_hash": reviewed}
    )
    assert _location(approved) == f"/console/versions/{version_id}"
    live = console.live("de", "catalog")
    assert live.id == version_id
    po_text = next(iter(live.files.values()))
    assert f'msgid "{sentence}"' in po_text and f'msgstr "{german}"' in po_text
    assert console.library_changes == [None]
    after = await editor.get("/console/translations")
    assert _untranslated_counts(after.text, "alert") == ["complete", "1 untranslated"]


# ---------------------------------------------------------------------------------------------
# The audit log


def _audit_rows(html: str) -> list[tuple[str, str, str]]:
    return re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>", html)


async def test_audit_page_filters_and_csv_export(console: Console) -> None:
    """The audit page filters by actor and action; the CSV has a header, the same rows, and
    neutralises cells a spreadsheet would run as formulas."""
    viewer = await console.signed_in(VIEWER)
    await console.signed_in(EDITOR)
    with console.db.transaction() as conn:
        audit.record(
            conn,
            console.clock.now(),
            '=HYPERLINK("http://evil")',
            "test.formula",
            "+SUM(A1:A2)",
            {"note": "=1+1"},
        )

    page = await viewer.get("/console/audit", actor=EDITOR)
    assert page.status_code == 200
    rows = _audit_rows(page.text)
    assert rows == [(EDITOR, "console.sign-in", "console")]
    by_action = _audit_rows((await viewer.get("/console/audit", action="console.")).text)
    assert {(actor, action) for actor, action, _ in by_action} == {
        (VIEWER, "console.sign-in"),
        (EDITOR, "console.sign-in"),
    }
    seeds = _audit_rows((await viewer.get("/console/audit", action="catalog.seed")).text)
    assert sorted(subject for _, _, subject in seeds) == ["de", "en", "es"]
    assert (
        'id="csv" href="/console/audit.csv?action=catalog.seed"'
        in (await viewer.get("/console/audit", action="catalog.seed")).text
    )

    export = await viewer.get("/console/audit.csv", action="console.", actor=EDITOR)
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(export.text)))
    assert table[0] == ["id", "at", "actor", "action", "subject", "details"]
    assert [row[2:5] for row in table[1:]] == [[EDITOR, "console.sign-in", "console"]]

    formula = list(
        csv.reader(
            io.StringIO((await viewer.get("/console/audit.csv", action="test.formula")).text)
        )
    )
    assert len(formula) == 2
    _, _, actor, action, subject, details = formula[1]
    assert actor == '\'=HYPERLINK("http://evil")'
    assert subject == "'+SUM(A1:A2)"
    assert action == "test.formula"
    assert details == '{"note":"=1+1"}'
    for cell in formula[1]:
        assert cell[:1] not in ("=", "+", "-", "@")


async def test_audit_filters_by_day(console: Console) -> None:
    """The day range filter includes its days; a date that does not exist is refused (422),
    not a server error."""
    viewer = await console.signed_in(VIEWER)
    day = T0.date()
    same_day = await viewer.get("/console/audit", actor=VIEWER, since=str(day), until=str(day))
    assert _audit_rows(same_day.text) == [(VIEWER, "console.sign-in", "console")]
    before = await viewer.get("/console/audit", actor=VIEWER, until=str(day - timedelta(days=1)))
    assert _audit_rows(before.text) == []
    for url in ("/console/audit", "/console/audit.csv"):
        assert (await viewer.get(url, since="2026-13-45")).status_code == 422
        assert (await viewer.get(url, until="2026-02-31")).status_code == 422


# ---------------------------------------------------------------------------------------------
# Incidents


async def test_incidents_list_detail_and_acknowledge(console: Console) -> None:
    """The open alert is listed; its page offers Acknowledge to a commander, not to a viewer;
    acknowledging in the console is audited."""
    commander = await console.signed_in(COMMANDER)
    viewer = await console.signed_in(VIEWER)
    alert_id = console.alert_id()
    listing = await viewer.get("/console/incidents")
    assert listing.status_code == 200
    assert f'href="/console/incidents/{alert_id}"' in listing.text
    assert "Nothing is open" not in listing.text
    rows = await viewer.get("/console/incidents/rows")
    assert f"/console/incidents/{alert_id}" in rows.text

    action = f'action="/console/incidents/{alert_id}/acknowledge"'
    as_viewer = await viewer.get(f"/console/incidents/{alert_id}")
    assert as_viewer.status_code == 200
    assert action not in as_viewer.text
    as_commander = await commander.get(f"/console/incidents/{alert_id}")
    assert action in as_commander.text and ">Acknowledge</button>" in as_commander.text

    refused = await viewer.post(f"/console/incidents/{alert_id}/acknowledge")
    assert refused.status_code == 403
    assert console.audit("alert.") == []

    done = await commander.post(f"/console/incidents/{alert_id}/acknowledge", {"note": "on it"})
    assert _location(done) == f"/console/incidents/{alert_id}"
    [entry] = console.audit("alert.acknowledge")
    assert (entry["actor"], entry["subject"]) == (COMMANDER, alert_id)
    assert entry["details"]["channel"] == "console"
    after = await commander.get(f"/console/incidents/{alert_id}")
    assert '<strong id="alert-state">acknowledged</strong>' in after.text
    assert action not in after.text


async def test_silences_are_created_listed_and_expired_by_those_allowed(console: Console) -> None:
    """A commander silences from the console (audited, listed as active) and expires it; a
    viewer sees the list without the form and is refused a POST; bad matchers are a 422."""
    mei = await console.signed_in(COMMANDER)
    created = await mei.post(
        "/console/silences",
        {
            "matchers": 'alertname="ConsensusFinalityLag"\nnetwork="mainnet"',
            "hours": "2",
            "comment": "CHG-42 client rollout",
        },
    )
    assert _location(created) == "/console/silences"
    [entry] = console.audit("silence.create")
    assert entry["actor"] == COMMANDER
    listing = await mei.get("/console/silences")
    assert "alertname=&#34;ConsensusFinalityLag&#34;" in listing.text
    assert "CHG-42 client rollout" in listing.text and ">active<" in listing.text
    assert (
        await mei.post("/console/silences", {"matchers": "alertname", "hours": "1", "comment": "x"})
    ).status_code == 422

    viewer = await console.signed_in(VIEWER)
    seen = await viewer.get("/console/silences")
    assert "CHG-42 client rollout" in seen.text
    assert "create-silence" not in seen.text and "/expire" not in seen.text
    silence_id = entry["subject"]
    assert (await viewer.post(f"/console/silences/{silence_id}/expire")).status_code == 403
    assert console.audit("silence.expire") == []

    assert _location(await mei.post(f"/console/silences/{silence_id}/expire"))
    [expired] = console.audit("silence.expire")
    assert (expired["actor"], expired["subject"]) == (COMMANDER, silence_id)
    assert ">expired<" in (await mei.get("/console/silences")).text
