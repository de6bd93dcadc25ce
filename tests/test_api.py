"""The HTTP API on a real uvicorn server: health, metrics, alerts, acks, ingest, ack links."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import select
from stories import directory_with_tokens

from notifier.api.app import create_app
from notifier.api.deps import ApiContext
from notifier.api.server import HttpServer
from notifier.broker import EmbeddedBroker, broker_problem
from notifier.directory import Directory
from notifier.links import LinkSigner
from notifier.pipeline import BatchProcessor, RawRecord
from notifier.routing import Router, RoutingConfig
from notifier.settings import Settings
from notifier.store import Database
from notifier.store.schema import alerts
from notifier.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "config" / "samples"
T0 = datetime(2026, 11, 20, 8, 20, tzinfo=UTC)
TOKENS = {"mei.lin": "mei-secret-token", "carlos.ruiz": "carlos-secret-token"}


def _directory(tmp_path: Path) -> Directory:
    """The shipped directory, with personal API tokens for the people in TOKENS."""
    return directory_with_tokens(tmp_path, TOKENS)


@dataclass
class Api:
    """A running API and what it was built with."""

    client: httpx.AsyncClient
    db: Database
    clock: FakeClock
    signer: LinkSigner
    receipts: LinkSigner
    published: list[tuple[bytes, bytes]] = field(default_factory=list)
    changes: list[None] = field(default_factory=list)

    def alert_id(self, kind: str = "alert") -> str:
        with self.db.engine.connect() as conn:
            return str(conn.scalar(select(alerts.c.id).where(alerts.c.kind == kind)))

    def status(self) -> str:
        with self.db.engine.connect() as conn:
            return str(conn.scalar(select(alerts.c.status).where(alerts.c.kind == "alert")))


@pytest.fixture
async def api(tmp_path: Path, broker: EmbeddedBroker) -> AsyncIterator[Api]:
    """The app on a free port over a SQLite store holding the firing sample alert and the
    emergency-upgrade policy notice."""
    db = Database(f"sqlite:///{tmp_path / 'api.db'}")
    db.migrate()
    directory = _directory(tmp_path)
    clock = FakeClock(T0)
    router = Router(RoutingConfig.load(ROOT / "config" / "routing.yaml"), directory)
    proc = BatchProcessor(db, router, clock, group="g", topic="t", max_event_bytes=1 << 20)
    records = [
        RawRecord("t", 0, offset, None, (SAMPLES / name).read_bytes(), ())
        for offset, name in enumerate(("alert-firing.json", "policy-emergency-upgrade.json"))
    ]
    proc.apply(records, proc.decode(records))
    settings = Settings(config_dir=ROOT / "config")
    signer = LinkSigner(settings.links.secrets, 3600, clock)
    receipts = LinkSigner(
        settings.links.secrets, 7200, clock, salt="notifier.receipt", path="receipt"
    )
    published: list[tuple[bytes, bytes]] = []
    changes: list[None] = []

    async def publish(batch: Sequence[tuple[bytes, bytes]]) -> None:
        published.extend(batch)

    ctx = ApiContext(
        settings,
        db,
        directory,
        clock,
        signer,
        publish,
        lambda: broker_problem(broker.bootstrap_servers),
        receipts,
        lambda: changes.append(None),
    )
    server = HttpServer(create_app(ctx), "127.0.0.1", 0)
    await server.start()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        yield Api(client, db, clock, signer, receipts, published, changes)
    await server.stop()
    db.dispose()


def _auth(person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[person]}"}


async def test_health_and_readiness(api: Api) -> None:
    """/healthz answers; /readyz checks the store and the broker; /docs serves OpenAPI."""
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    assert (await api.client.get("/readyz")).json() == {"status": "ready"}
    assert (await api.client.get("/openapi.json")).json()["info"]["title"] == "notifier"


async def test_metrics_expose_store_figures(api: Api) -> None:
    """/metrics reports events, notifications by outcome and open alerts."""
    body = (await api.client.get("/metrics")).text
    assert 'notifier_events_total{outcome="accepted"} 2.0' in body
    assert 'notifier_notifications_total{channel="email",outcome="pending"} 16.0' in body
    assert 'notifier_open_alerts{severity="critical",status="firing"} 1.0' in body
    assert "notifier_time_to_acknowledge_seconds_count 0.0" in body


async def test_time_to_acknowledge_is_a_histogram(api: Api) -> None:
    """An acknowledgment 10 minutes after the alert started lands in the 600 s bucket."""
    with api.db.engine.connect() as conn:
        started = conn.scalar(select(alerts.c.starts_at).where(alerts.c.kind == "alert"))
    assert started is not None
    api.clock.advance((started + timedelta(minutes=10) - api.clock.now()).total_seconds())
    url = f"/api/v1/alerts/{api.alert_id()}/ack"
    assert (await api.client.post(url, headers=_auth("mei.lin"))).status_code == 200
    body = (await api.client.get("/metrics")).text
    assert 'notifier_time_to_acknowledge_seconds_bucket{le="300"} 0.0' in body
    assert 'notifier_time_to_acknowledge_seconds_bucket{le="600"} 1.0' in body
    assert "notifier_time_to_acknowledge_seconds_count 1.0" in body
    assert "notifier_time_to_acknowledge_seconds_sum 600.0" in body


async def test_alerts_are_listed_filtered_and_shown(api: Api) -> None:
    """List with filters; one alert with its timeline and notifications; 404 otherwise."""
    listed = (await api.client.get("/api/v1/alerts", params={"state": "firing"})).json()
    assert [a["name"] for a in listed] == ["ConsensusFinalityLag"]
    assert (await api.client.get("/api/v1/alerts", params={"severity": "info"})).json() == []
    assert (await api.client.get("/api/v1/alerts", params={"state": "bogus"})).status_code == 422
    one = (await api.client.get(f"/api/v1/alerts/{api.alert_id()[:8]}")).json()
    assert [s["kind"] for s in one["timeline"]] == ["triggered"]
    assert len(one["notifications"]) == 7
    assert one["receipts"] is None
    assert (await api.client.get("/api/v1/alerts/ffffffffffff")).status_code == 404


async def test_acknowledging_through_the_api_checks_token_and_role(api: Api) -> None:
    """No token 401, a partner 403, a commander 200; twice is harmless; resolve works."""
    url = f"/api/v1/alerts/{api.alert_id()}"
    assert (await api.client.post(url + "/ack")).status_code == 401
    assert (
        await api.client.post(url + "/ack", headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    assert (await api.client.post(url + "/ack", headers=_auth("carlos.ruiz"))).status_code == 403
    first = await api.client.post(url + "/ack", headers=_auth("mei.lin"), json={"note": "mine"})
    assert first.status_code == 200
    assert first.json()["message"] == "acknowledged by mei.lin"
    again = await api.client.post(url + "/ack", headers=_auth("mei.lin"))
    assert (again.json()["changed"], again.json()["message"]) == (False, "already acknowledged")
    done = await api.client.post(url + "/resolve", headers=_auth("mei.lin"))
    assert done.json()["status"] == "resolved"
    assert api.status() == "resolved"
    # The acknowledgment was announced and reminders set, the resolve followed up: the
    # outbox and scheduler were woken each time the action wrote something.
    assert len(api.changes) == 2
    kinds = [n["kind"] for n in (await api.client.get(url)).json()["notifications"]]
    assert kinds.count("acknowledged") == 6  # everyone paged but mei.lin
    assert kinds.count("resolved") == 6


async def test_status_updates_are_posted_by_those_who_may_acknowledge(api: Api) -> None:
    """A partner gets 403; a commander's update is recorded (201) in the timeline; an empty
    one is refused (422); a resolved alert takes no updates (409)."""
    url = f"/api/v1/alerts/{api.alert_id()}"
    body = {"note": "Rollback to 5.1.4 in progress"}
    denied = await api.client.post(url + "/updates", headers=_auth("carlos.ruiz"), json=body)
    assert denied.status_code == 403
    empty = await api.client.post(url + "/updates", headers=_auth("mei.lin"), json={"note": ""})
    assert empty.status_code == 422
    posted = await api.client.post(url + "/updates", headers=_auth("mei.lin"), json=body)
    assert posted.status_code == 201
    timeline = (await api.client.get(url)).json()["timeline"]
    assert (timeline[-1]["kind"], timeline[-1]["note"]) == ("update", body["note"])
    await api.client.post(url + "/resolve", headers=_auth("mei.lin"))
    late = await api.client.post(url + "/updates", headers=_auth("mei.lin"), json=body)
    assert late.status_code == 409


async def test_receipt_link_get_shows_post_confirms(api: Api) -> None:
    """GET shows the notice and confirms nothing; POST confirms; again says so; the alert
    shows who has and has not confirmed."""
    notice = api.alert_id("policy")
    token = api.receipts.sign(notice, 1, "helga.berg")
    shown = await api.client.get(f"/receipt/{token}")
    assert shown.status_code == 200
    assert "Mandatory client upgrade" in shown.text and "Helga Berg" in shown.text
    before = (await api.client.get(f"/api/v1/alerts/{notice}")).json()["receipts"]
    assert before["confirmed"] == []
    assert {p["person"] for p in before["pending"]} == {
        "carlos.ruiz",
        "helga.berg",
        "sofia.navarro",
    }
    done = await api.client.post(f"/receipt/{token}")
    assert (done.status_code, "Receipt confirmed" in done.text) == (200, True)
    again = await api.client.post(f"/receipt/{token}")
    assert (again.status_code, "Already confirmed" in again.text) == (200, True)
    after = (await api.client.get(f"/api/v1/alerts/{notice}")).json()["receipts"]
    assert [c["person"] for c in after["confirmed"]] == ["helga.berg"]
    assert after["confirmed"][0]["via"] == "email-link"
    assert {p["person"] for p in after["pending"]} == {"carlos.ruiz", "sofia.navarro"}


async def test_receipt_links_refuse_what_is_not_theirs(api: Api) -> None:
    """An acknowledgment token is no receipt token (nor the reverse); a receipt nobody asked
    for is 404; expired 410; tampered 400."""
    notice = api.alert_id("policy")
    ack_token = api.signer.sign(notice, 1, "carlos.ruiz")
    assert (await api.client.post(f"/receipt/{ack_token}")).status_code == 400
    receipt_token = api.receipts.sign(api.alert_id(), 1, "mei.lin")
    assert (await api.client.post(f"/ack/{receipt_token}")).status_code == 400
    stranger = api.receipts.sign(notice, 1, "mei.lin")
    assert (await api.client.post(f"/receipt/{stranger}")).status_code == 404
    old = api.receipts.sign(notice, 1, "carlos.ruiz")
    api.clock.advance(timedelta(hours=3).total_seconds())
    assert (await api.client.post(f"/receipt/{old}")).status_code == 410
    tampered = old[:-3] + ("AAA" if not old.endswith("AAA") else "BBB")
    assert (await api.client.get(f"/receipt/{tampered}")).status_code == 400
    pending = (await api.client.get(f"/api/v1/alerts/{notice}")).json()["receipts"]["pending"]
    assert len(pending) == 3


async def test_events_are_validated_then_published(api: Api) -> None:
    """Valid CloudEvents and Alertmanager payloads are published; bad ones get a 4xx reason."""
    ok = await api.client.post(
        "/api/v1/events", content=(SAMPLES / "policy-hot-patch.json").read_bytes()
    )
    assert (ok.status_code, ok.json()["accepted"]) == (202, 1)
    am = await api.client.post(
        "/api/v1/alertmanager", content=(SAMPLES / "alertmanager-webhook.json").read_bytes()
    )
    assert (am.status_code, am.json()["accepted"]) == (202, 1)
    assert len(api.published) == 2
    bad = orjson.loads((SAMPLES / "alert-firing.json").read_bytes())
    del bad["data"]["severity"]
    refused = await api.client.post("/api/v1/events", content=orjson.dumps(bad))
    assert refused.status_code == 400
    assert refused.json()["detail"]["reason"] == "schema"
    assert "data.severity" in refused.json()["detail"]["detail"]
    assert (await api.client.post("/api/v1/events", content=b"{nope")).json()["detail"][
        "reason"
    ] == "not_json"
    assert (
        await api.client.post(
            "/api/v1/alertmanager", content=(SAMPLES / "alert-firing.json").read_bytes()
        )
    ).status_code == 400
    assert len(api.published) == 2


async def test_ack_link_get_confirms_post_acknowledges_once(api: Api) -> None:
    """GET never acknowledges; POST does; the same link again is refused."""
    token = api.signer.sign(api.alert_id(), 1, "mei.lin")
    page = await api.client.get(f"/ack/{token}")
    assert page.status_code == 200
    assert '<form method="post">' in page.text and "Mei Lin" in page.text
    assert api.status() == "firing"
    done = await api.client.post(f"/ack/{token}")
    assert (done.status_code, api.status()) == (200, "acknowledged")
    reused = await api.client.post(f"/ack/{token}")
    assert reused.status_code == 409
    assert "already used" in reused.text


async def test_expired_tampered_and_unauthorised_links_are_refused(api: Api) -> None:
    """An expired link 410, a tampered one 400, a partner's link 403; nothing acknowledged."""
    alert_id = api.alert_id()
    old = api.signer.sign(alert_id, 1, "mei.lin")
    api.clock.advance(timedelta(hours=2).total_seconds())
    assert (await api.client.post(f"/ack/{old}")).status_code == 410
    fresh = api.signer.sign(alert_id, 1, "mei.lin")
    tampered = fresh[:-3] + ("AAA" if not fresh.endswith("AAA") else "BBB")
    assert (await api.client.get(f"/ack/{tampered}")).status_code == 400
    assert (await api.client.post(f"/ack/{tampered}")).status_code == 400
    partner = api.signer.sign(alert_id, 1, "carlos.ruiz")
    assert (await api.client.post(f"/ack/{partner}")).status_code == 403
    assert api.status() == "firing"


async def test_readiness_reports_what_is_unavailable(tmp_path: Path) -> None:
    """/readyz answers 503 and names the broker problem while /healthz stays up."""
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    db.migrate()
    settings = Settings(config_dir=ROOT / "config")
    clock = FakeClock(T0)

    async def publish(batch: Sequence[tuple[bytes, bytes]]) -> None:
        raise AssertionError("nothing is published here")

    ctx = ApiContext(
        settings,
        db,
        _directory(tmp_path),
        clock,
        LinkSigner(settings.links.secrets, 60, clock),
        publish,
        lambda: broker_problem("127.0.0.1:1"),
    )
    server = HttpServer(create_app(ctx), "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["problems"]["broker"].startswith("127.0.0.1:1")
            assert (await client.get("/healthz")).status_code == 200
    finally:
        await server.stop()
        db.dispose()
