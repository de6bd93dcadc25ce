"""``POST /slack/actions`` on a real uvicorn server: signatures, stale and replayed requests,
who may press which button, and the action applied to the alert."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from sqlalchemy import select

from notifier.api.app import create_app
from notifier.api.deps import ApiContext
from notifier.api.server import HttpServer
from notifier.directory import Directory
from notifier.i18n import Catalogs
from notifier.links import LinkSigner
from notifier.pipeline import BatchProcessor, RawRecord
from notifier.routing import Router, RoutingConfig
from notifier.settings import Settings, TemplateSettings
from notifier.store import Database
from notifier.store.schema import alert_timeline, alerts
from notifier.templating import Renderer
from notifier.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
T0 = datetime(2026, 11, 20, 8, 20, tzinfo=UTC)


@dataclass
class Slack:
    """The app, its store and clock, and a way to sign requests like Slack does."""

    client: httpx.AsyncClient
    db: Database
    clock: FakeClock
    alert_id: str

    def sign(self, body: bytes, at: float | None = None) -> dict[str, str]:
        ts = str(int(self.clock.now().timestamp() if at is None else at))
        digest = hmac.new(SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256)
        return {
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": "v0=" + digest.hexdigest(),
            "Content-Type": "application/x-www-form-urlencoded",
        }

    async def press(self, user: str, action: str, value: str) -> str:
        """A fresh signed press (replays are refused) by ``user``; the reply's text."""
        self.clock.advance(1)
        data = body(user, action, value)
        reply = await self.client.post("/slack/actions", content=data, headers=self.sign(data))
        assert reply.status_code == 200
        return str(reply.json()["text"])

    def status(self) -> tuple[str, str | None]:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(alerts.c.status, alerts.c.acknowledged_by)).one()
        return row[0], row[1]


def body(user: str, action: str, value: str) -> bytes:
    """A block_actions payload as Slack posts it (form-encoded JSON)."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "someone"},
        "actions": [{"action_id": action, "value": value, "type": "button"}],
    }
    return urlencode({"payload": orjson.dumps(payload).decode()}).encode()


def _context(
    settings: Settings, db: Database, directory: Directory, clock: FakeClock
) -> ApiContext:
    """What the app needs; publishing and the broker check are not used here."""

    async def publish(batch: object) -> None:
        return None

    async def ready() -> None:
        return None

    signer = LinkSigner(settings.links.secrets, 3600, clock)
    # The shipped templates and catalogs: replies speak the presser's language.
    templates = TemplateSettings(directory=ROOT / "templates", locales_directory=ROOT / "locales")
    renderer = Renderer(templates, Catalogs.load(templates.locales_directory))
    return ApiContext(settings, db, directory, clock, signer, publish, ready, renderer=renderer)


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, default_locale: str = "en") -> AsyncIterator[Slack]:
    """The API with a Slack signing secret, over a store holding the firing sample alert."""
    db = Database(f"sqlite:///{tmp_path / 's.db'}")
    db.migrate()
    directory = Directory.load(ROOT / "config" / "directory.yaml")
    clock = FakeClock(T0)
    router = Router(RoutingConfig.load(ROOT / "config" / "routing.yaml"), directory)
    proc = BatchProcessor(db, router, clock, group="g", topic="t", max_event_bytes=1 << 20)
    doc = (ROOT / "config" / "samples" / "alert-firing.json").read_bytes()
    records = [RawRecord("t", 0, 0, None, doc, ())]
    proc.apply(records, proc.decode(records))
    settings = Settings(
        config_dir=ROOT / "config",
        slack={"signing_secret": SECRET},
        templates={"default_locale": default_locale},
    )
    server = HttpServer(create_app(_context(settings, db, directory, clock)), "127.0.0.1", 0)
    await server.start()
    with db.engine.connect() as conn:
        alert_id = str(conn.scalar(select(alerts.c.id)))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            yield Slack(client, db, clock, alert_id)
    finally:
        await server.stop()
        db.dispose()


@pytest.fixture
async def slack(tmp_path: Path) -> AsyncIterator[Slack]:
    """The API with a Slack signing secret, over a store holding the firing sample alert."""
    async with serve(tmp_path) as app:
        yield app


async def test_a_signed_click_acknowledges_as_the_mapped_person(slack: Slack) -> None:
    """Mei Lin (Slack U04MEILIN) presses Acknowledge: the alert is hers, via Slack."""
    data = body("U04MEILIN", "notifier.acknowledge", f"{slack.alert_id}:1")
    reply = await slack.client.post("/slack/actions", content=data, headers=slack.sign(data))
    assert reply.status_code == 200
    assert reply.json()["text"] == "Acknowledged by Mei Lin."
    assert slack.status() == ("acknowledged", "mei.lin")
    with slack.db.engine.connect() as conn:
        channel = conn.scalar(
            select(alert_timeline.c.channel).where(alert_timeline.c.kind == "acknowledged")
        )
    assert channel == "slack"


async def test_bad_stale_and_replayed_signatures_are_refused(slack: Slack) -> None:
    """A tampered body, a wrong secret, a timestamp six minutes old and a replay of a good
    request are refused before anything changes; no signature at all too."""
    data = body("U04MEILIN", "notifier.acknowledge", f"{slack.alert_id}:1")
    headers = slack.sign(data)
    tampered = data.replace(b"acknowledge", b"resolve")
    assert (
        await slack.client.post("/slack/actions", content=tampered, headers=headers)
    ).status_code == 401
    stale = slack.sign(data, at=slack.clock.now().timestamp() - 360)
    assert (
        await slack.client.post("/slack/actions", content=data, headers=stale)
    ).status_code == 401
    unsigned = {"Content-Type": "application/x-www-form-urlencoded"}
    assert (
        await slack.client.post("/slack/actions", content=data, headers=unsigned)
    ).status_code == 401
    garbage = {**headers, "X-Slack-Request-Timestamp": "soon"}
    assert (
        await slack.client.post("/slack/actions", content=data, headers=garbage)
    ).status_code == 401
    assert slack.status() == ("firing", None)
    assert (
        await slack.client.post("/slack/actions", content=data, headers=headers)
    ).status_code == 200
    replay = await slack.client.post("/slack/actions", content=data, headers=headers)
    assert replay.status_code == 409


async def test_unknown_users_wrong_roles_and_old_buttons_change_nothing(slack: Slack) -> None:
    """A Slack user not in the directory, a role without the permission, a button from an
    earlier occurrence and a foreign button each get an explanation; the alert is unchanged."""
    cases = [
        (body("U0STRANGER", "notifier.acknowledge", f"{slack.alert_id}:1"), "not in notifier"),
        # Carlos reads Spanish: "your role does not allow you to acknowledge alerts".
        (
            body("U07CARLOS", "notifier.acknowledge", f"{slack.alert_id}:1"),
            "Su rol no le permite reconocer alertas.",
        ),
        (body("U04MEILIN", "notifier.acknowledge", f"{slack.alert_id}:7"), "fired again"),
        (body("U04MEILIN", "other.app.button", "x"), "not one of notifier"),
    ]
    for data, expected in cases:
        slack.clock.advance(1)  # a fresh request each time (replays are refused)
        reply = await slack.client.post("/slack/actions", content=data, headers=slack.sign(data))
        assert reply.status_code == 200
        assert expected in reply.json()["text"]
    assert slack.status() == ("firing", None)


async def test_replies_speak_the_pressers_language(slack: Slack) -> None:
    """Jonas reads German: his acknowledgment, and a second press after it, are answered in
    German; Mei (English) then resolves and reads English."""
    replies = []
    for user, action in [
        ("U04JONAS1", "notifier.acknowledge"),
        ("U04JONAS1", "notifier.acknowledge"),
        ("U04MEILIN", "notifier.resolve"),
    ]:
        replies.append(await slack.press(user, action, f"{slack.alert_id}:1"))
    assert replies == ["Quittiert von Jonas Weber.", "Bereits quittiert.", "Resolved by Mei Lin."]


async def test_refusals_speak_the_pressers_language(slack: Slack) -> None:
    """A button of an older message, and Acknowledge on a resolved alert: Jonas reads why in
    German; the alert is not changed by either."""
    presses = [
        ("U04JONAS1", "notifier.acknowledge", 7),
        ("U04MEILIN", "notifier.resolve", 1),
        ("U04JONAS1", "notifier.acknowledge", 1),
    ]
    said = [await slack.press(u, action, f"{slack.alert_id}:{n}") for u, action, n in presses]
    assert said == [
        "Dieser Alarm wurde seit dieser Nachricht erneut ausgelöst: Verwenden Sie die neueste "
        "Nachricht dazu.",
        "Resolved by Mei Lin.",
        "Der Alarm ist bereits behoben: Es gibt nichts zu quittieren.",
    ]
    assert slack.status() == ("resolved", None)


async def test_strangers_and_purged_alerts_hear_why_in_a_language(tmp_path: Path) -> None:
    """A Slack user in no directory entry is answered in the deployment's default language
    (Spanish here: nobody to take a language from); a button of an alert the store no longer
    holds is answered in the presser's language. Nothing changes."""
    async with serve(tmp_path, default_locale="es") as slack:
        gone = "f" * 32 + ":1"  # an alert id the store does not hold
        said = [
            await slack.press(user, "notifier.acknowledge", value)
            for user, value in [
                ("U0STRANGER", f"{slack.alert_id}:1"),
                ("U04JONAS1", gone),  # Jonas reads German
                ("U04MEILIN", gone),
            ]
        ]
        assert said == [
            "Su cuenta de Slack no figura en el directorio de notifier: pida a un administrador "
            "que añada su ID de Slack.",
            "Dieser Alarm ist nicht mehr in notifier gespeichert: Es wurde nichts geändert.",
            "This alert is no longer in notifier's store: nothing was changed.",
        ]
        assert slack.status() == ("firing", None)


async def test_resolve_button_resolves(slack: Slack) -> None:
    """Resolve works like the API's resolve (the role allows it)."""
    data = body("U04MEILIN", "notifier.resolve", f"{slack.alert_id}:1")
    reply = await slack.client.post("/slack/actions", content=data, headers=slack.sign(data))
    assert reply.json()["text"] == "Resolved by Mei Lin."
    assert slack.status()[0] == "resolved"


async def test_interactivity_is_off_without_a_signing_secret(tmp_path: Path) -> None:
    """No signing secret configured: the endpoint answers 404, it does not accept unsigned
    requests."""
    db = Database(f"sqlite:///{tmp_path / 'n.db'}")
    db.migrate()
    clock = FakeClock(T0)
    settings = Settings(config_dir=ROOT / "config")
    directory = Directory.load(ROOT / "config" / "directory.yaml")
    server = HttpServer(create_app(_context(settings, db, directory, clock)), "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            reply = await client.post("/slack/actions", content=b"payload=%7B%7D")
        assert reply.status_code == 404
    finally:
        await server.stop()
        db.dispose()
