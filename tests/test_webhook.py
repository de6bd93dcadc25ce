"""WebhookChannel against a real local HTTP server (uvicorn), and the netguard address checks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import orjson
import pytest
from fastapi import FastAPI, Request, Response
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from notifier import __version__
from notifier.api.server import HttpServer
from notifier.channels.webhook import (
    MAX_RETRY_AFTER_SECONDS,
    WebhookChannel,
    classify_exception,
    classify_response,
    parse_retry_after,
    sign,
    verify,
)
from notifier.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    Reason,
    TransientDeliveryError,
)
from notifier.message import OutgoingMessage, RenderedMessage
from notifier.netguard import (
    AddressRefused,
    Category,
    Resolver,
    categorize,
    check_address,
    check_host,
    resolve,
)
from notifier.settings import WebhookEndpoint, WebhookSettings
from notifier.testing import FakeClock

SECRET = "whsec-test-7f3a9c"
NOW = datetime(2024, 5, 17, 9, 30, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
RESPONSE_BODY = b"receiver-says-do-not-echo"


# --- a real receiver ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int | None


@dataclass
class Receiver:
    """The running receiver: its base URL, what it got, and the latch /hang waits on."""

    base: str
    requests: list[Received]
    release: asyncio.Event


def receiver_app(requests: list[Received], release: asyncio.Event) -> FastAPI:
    """/hook answers 204; /status/{code} answers code (?retry_after=...); /hang waits."""
    app = FastAPI()

    async def record(request: Request) -> None:
        client = request.client.port if request.client is not None else None
        body = await request.body()
        requests.append(Received(request.url.path, dict(request.headers), body, client))

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        await record(request)
        return Response(status_code=204)

    @app.post("/status/{code}")
    async def status(code: int, request: Request) -> Response:
        await record(request)
        headers = {}
        retry_after = request.query_params.get("retry_after")
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        if 300 <= code < 400:
            headers["Location"] = "/hook"
        return Response(content=RESPONSE_BODY, status_code=code, headers=headers)

    @app.post("/hang")
    async def hang(request: Request) -> Response:
        await record(request)
        await release.wait()
        return Response(status_code=204)

    return app


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real uvicorn server on a free loopback port; /hang is released before it stops."""
    requests: list[Received] = []
    release = asyncio.Event()
    server = HttpServer(receiver_app(requests, release), "127.0.0.1", 0)
    await server.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.port}", requests, release)
    finally:
        release.set()
        await server.stop()


@dataclass
class Listener:
    """A bare TCP listener that counts connections and closes them at once."""

    port: int
    connections: int = 0


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    """A TCP listener on 127.0.0.1: proves whether the channel connected at all."""
    state = Listener(port=0)

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    state.port = int(server.sockets[0].getsockname()[1])
    async with server:
        yield state


# --- channel construction -----------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    """A clock stopped at NOW until a test moves it."""
    return FakeClock(NOW)


class MakeChannel(Protocol):
    """Builds a WebhookChannel that the fixture closes after the test."""

    def __call__(
        self,
        endpoints: Mapping[str, str],
        *,
        allow_private: bool = True,
        timeout: float = 2.0,
        resolver: Resolver | None = None,
    ) -> WebhookChannel: ...


@pytest.fixture
async def make_channel(clock: FakeClock) -> AsyncIterator[MakeChannel]:
    """Channels on the fake clock, closed at teardown."""
    made: list[WebhookChannel] = []

    def make(
        endpoints: Mapping[str, str],
        *,
        allow_private: bool = True,
        timeout: float = 2.0,
        resolver: Resolver | None = None,
    ) -> WebhookChannel:
        settings = WebhookSettings(
            endpoints={
                name: WebhookEndpoint(url=url, secret=SecretStr(SECRET), timeout_seconds=timeout)
                for name, url in endpoints.items()
            },
            allow_private_networks=allow_private,
        )
        channel = WebhookChannel(settings, clock=clock, resolver=resolver)
        made.append(channel)
        return channel

    yield make
    for channel in made:
        await channel.close()


@dataclass
class RecordingResolver:
    """A resolver with fixed answers that records every lookup."""

    answers: list[str]
    calls: list[tuple[str, int]] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return list(self.answers)


def outgoing(notification_id: str = "ntf-0001", *, address: str = "ops") -> OutgoingMessage:
    return OutgoingMessage(
        notification_id=notification_id,
        recipient_name="Jürgen Müller",
        address=address,
        rendered=RenderedMessage(
            subject="Knoten ausgefallen: validator-7",
            text="Knoten validator-7 antwortet nicht.",
            html="<p>Knoten <b>validator-7</b></p>",
            language="de_CH",
            template_hash="sha256:abc123",
        ),
        alert_id="alert-42",
        occurrence=3,
        status="firing",
        severity="critical",
        runbook_url="https://runbooks.example.org/validator",
        links={"acknowledge": "https://notifier.example.org/ack/t0k"},
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def send_error(channel: WebhookChannel, message: OutgoingMessage) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        await channel.send(message)
    return info.value


# --- request format ------------------------------------------------------------------------------


async def test_body_schema_and_headers(make_channel: MakeChannel, receiver: Receiver) -> None:
    """One POST with the versioned JSON body and the id, timestamp, signature and UA headers."""
    channel = make_channel({"ops": f"{receiver.base}/hook"})
    assert await channel.send(outgoing()) == "ntf-0001"
    [request] = receiver.requests
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"notifier/{__version__}"
    assert request.headers["x-notifier-id"] == "ntf-0001"
    assert request.headers["x-notifier-timestamp"] == str(NOW_TS)
    assert request.headers["x-notifier-signature"].startswith("v1=")
    assert orjson.loads(request.body) == {
        "version": 1,
        "type": "notifier.notification",
        "id": "ntf-0001",
        "sent_at": "2024-05-17T09:30:00.000Z",
        "recipient": "Jürgen Müller",
        "alert": {
            "id": "alert-42",
            "occurrence": 3,
            "status": "firing",
            "severity": "critical",
            "runbook_url": "https://runbooks.example.org/validator",
        },
        "language": "de-CH",
        "subject": "Knoten ausgefallen: validator-7",
        "text": "Knoten validator-7 antwortet nicht.",
        "html": "<p>Knoten <b>validator-7</b></p>",
        "links": {"acknowledge": "https://notifier.example.org/ack/t0k"},
        "template_hash": "sha256:abc123",
        "digest": None,
    }


async def test_signature_verifies_and_tampering_fails(
    make_channel: MakeChannel, receiver: Receiver
) -> None:
    """The received signature verifies; a changed body, timestamp, secret or stale time fails."""
    channel = make_channel({"ops": f"{receiver.base}/hook"})
    await channel.send(outgoing())
    [request] = receiver.requests
    key = SECRET.encode()
    ts = request.headers["x-notifier-timestamp"]
    sig = request.headers["x-notifier-signature"]
    body = request.body
    expected = hmac.new(key, f"{NOW_TS}.".encode() + body, hashlib.sha256).hexdigest()
    assert sig == f"v1={expected}" == sign(key, NOW_TS, body)

    assert verify(key, ts, body, sig, now=NOW)
    assert verify(key, NOW_TS, body, sig, now=NOW_TS + 300)
    assert verify(key, ts, body, f"v1={'0' * 64}, {sig}", now=NOW)  # rotation: one match is enough
    assert not verify(key, ts, body.replace(b"validator-7", b"validator-8"), sig, now=NOW)
    assert not verify(key, ts, body + b" ", sig, now=NOW)
    assert not verify(key, str(NOW_TS + 1), body, sig, now=NOW)
    assert not verify(b"other-secret", ts, body, sig, now=NOW)
    assert not verify(key, ts, body, sig, now=NOW + timedelta(seconds=301))  # stale
    assert not verify(key, ts, body, sig, now=NOW - timedelta(seconds=301))  # from the future
    assert not verify(key, ts, body, sig, now=NOW_TS + 60, tolerance=30)
    assert not verify(key, "17e8", body, sig, now=NOW)
    assert not verify(key, ts, body, sig.removeprefix("v1="), now=NOW)
    assert not verify(key, ts, body, "", now=NOW)


async def test_same_notification_twice_keeps_its_id(
    make_channel: MakeChannel, receiver: Receiver, clock: FakeClock
) -> None:
    """A resend carries the same X-Notifier-Id and body id; only the time and signature move."""
    channel = make_channel({"ops": f"{receiver.base}/hook"})
    first = await channel.send(outgoing("ntf-42"))
    clock.advance(30)
    second = await channel.send(outgoing("ntf-42"))
    a, b = receiver.requests
    assert first == second == "ntf-42"
    assert a.headers["x-notifier-id"] == b.headers["x-notifier-id"] == "ntf-42"
    assert orjson.loads(a.body)["id"] == orjson.loads(b.body)["id"] == "ntf-42"
    assert int(b.headers["x-notifier-timestamp"]) == NOW_TS + 30
    assert orjson.loads(b.body)["sent_at"] == "2024-05-17T09:30:30.000Z"
    assert a.headers["x-notifier-signature"] != b.headers["x-notifier-signature"]


async def test_connections_are_reused(make_channel: MakeChannel, receiver: Receiver) -> None:
    """Consecutive sends to one receiver go over one kept-alive connection."""
    channel = make_channel({"ops": f"{receiver.base}/hook"})
    for i in range(3):
        await channel.send(outgoing(f"ntf-{i}"))
    ports = {r.client_port for r in receiver.requests}
    assert len(receiver.requests) == 3
    assert len(ports) == 1


# --- responses -----------------------------------------------------------------------------------


async def test_429_with_retry_after_seconds_is_rate_limited(
    make_channel: MakeChannel, receiver: Receiver
) -> None:
    """429 + Retry-After: 7 is transient, reason rate_limited, retry_after 7 seconds."""
    channel = make_channel({"ops": f"{receiver.base}/status/429?retry_after=7"})
    error = await send_error(channel, outgoing())
    assert isinstance(error, TransientDeliveryError)
    assert error.reason is Reason.RATE_LIMITED
    assert error.retry_after == 7.0
    assert "'ops'" in str(error)
    assert "429" in str(error)


async def test_429_with_retry_after_http_date_counts_from_the_clock(
    make_channel: MakeChannel, receiver: Receiver
) -> None:
    """Retry-After as an HTTP date is read against the injected clock: 42 s after NOW."""
    channel = make_channel(
        {"ops": f"{receiver.base}/status/429?retry_after=Fri, 17 May 2024 09:30:42 GMT"}
    )
    error = await send_error(channel, outgoing())
    assert isinstance(error, TransientDeliveryError)
    assert error.reason is Reason.RATE_LIMITED
    assert error.retry_after == 42.0


@pytest.mark.parametrize(("query", "retry_after"), [("?retry_after=120", 120.0), ("", None)])
async def test_503_is_transient_server_with_optional_retry_after(
    make_channel: MakeChannel, receiver: Receiver, query: str, retry_after: float | None
) -> None:
    """503 is a transient server error that carries Retry-After when the receiver gives one."""
    channel = make_channel({"ops": f"{receiver.base}/status/503{query}"})
    error = await send_error(channel, outgoing())
    assert isinstance(error, TransientDeliveryError)
    assert error.reason is Reason.SERVER
    assert error.retry_after == retry_after


@pytest.mark.parametrize(
    ("code", "kind", "reason"),
    [
        (500, TransientDeliveryError, Reason.SERVER),
        (502, TransientDeliveryError, Reason.SERVER),
        (408, TransientDeliveryError, Reason.SERVER),
        (404, PermanentDeliveryError, Reason.CLIENT),
        (400, PermanentDeliveryError, Reason.CLIENT),
        (422, PermanentDeliveryError, Reason.CLIENT),
        (401, PermanentDeliveryError, Reason.AUTH),
        (403, PermanentDeliveryError, Reason.AUTH),
    ],
)
async def test_status_codes_map_to_transient_or_permanent(
    make_channel: MakeChannel,
    receiver: Receiver,
    code: int,
    kind: type[DeliveryError],
    reason: Reason,
) -> None:
    """5xx and 408 are transient (server); 401/403 permanent (auth); other 4xx permanent."""
    channel = make_channel({"ops": f"{receiver.base}/status/{code}"})
    error = await send_error(channel, outgoing())
    assert type(error) is kind
    assert error.reason is reason
    assert error.retry_after is None
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("code", [301, 302, 307, 308])
async def test_redirect_is_refused_not_followed(
    make_channel: MakeChannel, receiver: Receiver, code: int
) -> None:
    """A 3xx is a permanent client error and the Location is never requested."""
    channel = make_channel({"ops": f"{receiver.base}/status/{code}"})
    error = await send_error(channel, outgoing())
    assert isinstance(error, PermanentDeliveryError)
    assert error.reason is Reason.CLIENT
    assert "redirect" in str(error)
    assert [r.path for r in receiver.requests] == [f"/status/{code}"]


async def test_slow_receiver_times_out_as_transient(
    make_channel: MakeChannel, receiver: Receiver
) -> None:
    """A receiver that never answers within timeout_seconds gives a transient timeout."""
    channel = make_channel({"ops": f"{receiver.base}/hang"}, timeout=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    error = await send_error(channel, outgoing())
    assert isinstance(error, TransientDeliveryError)
    assert error.reason is Reason.TIMEOUT
    assert "webhooks.endpoints.ops.timeout_seconds" in str(error)
    assert loop.time() - started < 2.0
    assert len(receiver.requests) == 1


async def test_connection_refused_is_transient(make_channel: MakeChannel) -> None:
    """Nothing listening on the port: a transient server error saying the connection failed."""
    channel = make_channel({"ops": f"http://127.0.0.1:{closed_port()}/hook"})
    error = await send_error(channel, outgoing())
    assert isinstance(error, TransientDeliveryError)
    assert error.reason is Reason.SERVER
    assert "refused the connection" in str(error)


async def test_unresolvable_host_is_transient(make_channel: MakeChannel) -> None:
    """A name that does not resolve is a transient server error, checked before connecting."""

    async def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    channel = make_channel({"ops": "https://hooks.invalid/x"}, resolver=failing)
    error = await send_error(channel, outgoing())
    assert isinstance(error, TransientDeliveryError)
    assert error.reason is Reason.SERVER
    assert "does not resolve" in str(error)


async def test_unknown_endpoint_name_is_permanent(
    make_channel: MakeChannel, receiver: Receiver
) -> None:
    """An address naming no configured endpoint is permanent and says where to add it."""
    channel = make_channel({"ops": f"{receiver.base}/hook"})
    error = await send_error(channel, outgoing(address="dev-null"))
    assert isinstance(error, PermanentDeliveryError)
    assert error.reason is Reason.CLIENT
    assert "'dev-null'" in str(error)
    assert "webhooks.endpoints" in str(error)
    assert receiver.requests == []


async def test_errors_never_show_secret_url_or_bodies(
    make_channel: MakeChannel, receiver: Receiver
) -> None:
    """Error messages name the endpoint but not the secret, URL, request or response body."""
    token = "url-token-5150"
    channel = make_channel(
        {
            "a": f"{receiver.base}/status/404?token={token}",
            "b": f"{receiver.base}/status/401?token={token}",
            "c": f"{receiver.base}/status/500?token={token}",
            "d": f"{receiver.base}/status/302?token={token}",
            "e": f"http://127.0.0.1:{closed_port()}/{token}",
        }
    )
    for name in "abcde":
        text = str(await send_error(channel, outgoing(address=name)))
        assert f"'{name}'" in text
        for secret in (SECRET, token, "validator-7", RESPONSE_BODY.decode(), "127.0.0.1"):
            assert secret not in text


async def test_invalid_notification_id_is_refused_before_sending(
    make_channel: MakeChannel, receiver: Receiver
) -> None:
    """An id that cannot be a header value (CR/LF, spaces) is permanent; nothing is sent."""
    channel = make_channel({"ops": f"{receiver.base}/hook"})
    error = await send_error(channel, outgoing("ntf-1\r\nX-Evil: 1"))
    assert isinstance(error, PermanentDeliveryError)
    assert error.reason is Reason.CLIENT
    assert receiver.requests == []


async def test_endpoint_url_without_host_is_a_config_error() -> None:
    """An endpoint URL with no host is refused when the channel is built, naming the field."""
    settings = WebhookSettings(
        endpoints={"ops": WebhookEndpoint(url="http://", secret=SecretStr(SECRET))}
    )
    with pytest.raises(ConfigError, match=r"webhooks\.endpoints\.ops\.url"):
        WebhookChannel(settings)


# --- lifecycle -----------------------------------------------------------------------------------


async def test_close_waits_for_sends_in_flight_and_is_idempotent(
    make_channel: MakeChannel, receiver: Receiver
) -> None:
    """close() waits for a send in flight, can be called twice, and later sends are refused."""
    channel = make_channel({"ops": f"{receiver.base}/hang"}, timeout=5.0)
    sending = asyncio.create_task(channel.send(outgoing()))
    for _ in range(500):
        if receiver.requests:
            break
        await asyncio.sleep(0.01)
    assert len(receiver.requests) == 1
    closing = asyncio.create_task(channel.close())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not closing.done()
    receiver.release.set()
    assert await sending == "ntf-0001"
    await closing
    await channel.close()
    error = await send_error(channel, outgoing())
    assert isinstance(error, TransientDeliveryError)
    assert "closed" in str(error)


# --- SSRF ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("allow_private", [False, True])
async def test_metadata_ip_literal_is_refused_without_any_request(
    make_channel: MakeChannel, allow_private: bool
) -> None:
    """http://169.254.169.254/ is refused at once (no DNS, no connection), even if private is
    allowed: a connection attempt there would hang for the 30 s timeout or get an answer."""
    resolver = RecordingResolver(["93.184.216.34"])
    channel = make_channel(
        {"ops": "http://169.254.169.254/latest/meta-data/"},
        allow_private=allow_private,
        timeout=30.0,
        resolver=resolver,
    )
    async with asyncio.timeout(2):
        error = await send_error(channel, outgoing())
    assert isinstance(error, PermanentDeliveryError)
    assert error.reason is Reason.CLIENT
    assert "'ops'" in str(error)
    assert "cloud metadata" in str(error)
    assert resolver.calls == []


@pytest.mark.parametrize(
    "answers",
    [
        ["169.254.169.254"],
        ["::ffff:169.254.169.254"],
        ["127.0.0.1", "169.254.169.254"],
        ["169.254.10.1"],
        ["fd00:ec2::254"],
        ["100.100.100.200"],
        ["0.0.0.0"],
        ["224.0.0.1"],
    ],
)
async def test_name_resolving_to_a_refused_address_is_never_connected(
    make_channel: MakeChannel, listener: Listener, answers: list[str]
) -> None:
    """A name whose addresses include a refused one gets no connection, even with private
    networks allowed (the listener on the real 'localhost' counts connections)."""
    resolver = RecordingResolver(answers)
    channel = make_channel({"ops": f"http://localhost:{listener.port}/hook"}, resolver=resolver)
    error = await send_error(channel, outgoing())
    assert isinstance(error, PermanentDeliveryError)
    assert error.reason is Reason.CLIENT
    assert "refused address" in str(error)
    assert resolver.calls == [("localhost", listener.port)]
    assert listener.connections == 0


async def test_listener_does_see_a_connection_when_the_check_passes(
    make_channel: MakeChannel, listener: Listener
) -> None:
    """Control for the test above: with an allowed answer the channel does connect."""
    resolver = RecordingResolver(["127.0.0.1"])
    channel = make_channel({"ops": f"http://localhost:{listener.port}/hook"}, resolver=resolver)
    error = await send_error(channel, outgoing())  # the listener hangs up without answering
    assert isinstance(error, TransientDeliveryError)
    assert listener.connections >= 1


async def test_the_connection_goes_to_the_checked_address(
    make_channel: MakeChannel, receiver: Receiver
) -> None:
    """No DNS-rebinding window: the channel connects to the address its check accepted. The
    name does not exist in real DNS, so the request can only arrive through that answer."""
    port = int(receiver.base.rsplit(":", 1)[1])
    resolver = RecordingResolver(["127.0.0.1"])
    channel = make_channel({"ops": f"http://rebinding.invalid:{port}/hook"}, resolver=resolver)
    assert await channel.send(outgoing()) == "ntf-0001"
    assert await channel.send(outgoing("ntf-0002")) == "ntf-0002"
    assert [r.headers["x-notifier-id"] for r in receiver.requests] == ["ntf-0001", "ntf-0002"]
    assert resolver.calls[0] == ("rebinding.invalid", port)


async def test_loopback_is_refused_unless_private_networks_are_allowed(
    make_channel: MakeChannel, receiver: Receiver
) -> None:
    """A loopback receiver is refused by default, naming the setting; allowed when enabled."""
    refusing = make_channel({"ops": f"{receiver.base}/hook"}, allow_private=False)
    error = await send_error(refusing, outgoing())
    assert isinstance(error, PermanentDeliveryError)
    assert error.reason is Reason.CLIENT
    assert "loopback" in str(error)
    assert "webhooks.allow_private_networks" in str(error)
    assert receiver.requests == []

    allowing = make_channel({"ops": f"{receiver.base}/hook"}, allow_private=True)
    assert await allowing.send(outgoing()) == "ntf-0001"
    assert len(receiver.requests) == 1


# --- classification without a server ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("7", 7.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("3600", 3600.0),
        ("86400", MAX_RETRY_AFTER_SECONDS),
        ("9" * 5000, MAX_RETRY_AFTER_SECONDS),
        ("Fri, 17 May 2024 09:30:42 GMT", 42.0),
        ("Fri, 17 May 2024 11:30:00 GMT", MAX_RETRY_AFTER_SECONDS),
        ("Fri, 17 May 2024 09:00:00 GMT", 0.0),
        ("-5", None),
        ("1.5", None),
        ("", None),
        ("soon", None),
        ("٣", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After: delay seconds or HTTP date (against now), capped at an hour, junk ignored."""
    assert parse_retry_after(value, now=NOW) == expected


def test_classify_response_reads_retry_after_case_insensitively() -> None:
    """A plain dict of headers works whatever the case; 2xx is success (None)."""
    assert classify_response(204, {}, endpoint="ops", now=NOW) is None
    error = classify_response(429, {"RETRY-AFTER": "3"}, endpoint="ops", now=NOW)
    assert isinstance(error, TransientDeliveryError)
    assert error.retry_after == 3.0
    odd = classify_response(199, {}, endpoint="ops", now=NOW)
    assert isinstance(odd, PermanentDeliveryError)
    assert odd.reason is Reason.OTHER


def test_classify_exception_maps_guard_and_socket_errors() -> None:
    """Refused addresses are permanent client errors; bare timeouts and OSErrors transient."""
    private = classify_exception(AddressRefused("10.1.2.3", Category.PRIVATE), endpoint="ops")
    assert isinstance(private, PermanentDeliveryError)
    assert "allow_private_networks" in str(private)
    never = classify_exception(AddressRefused("169.254.1.1", Category.LINK_LOCAL), endpoint="ops")
    assert isinstance(never, PermanentDeliveryError)
    assert "never allowed" in str(never)
    timeout = classify_exception(TimeoutError(), endpoint="ops")
    assert isinstance(timeout, TransientDeliveryError)
    assert timeout.reason is Reason.TIMEOUT
    reset = classify_exception(ConnectionResetError(), endpoint="ops")
    assert isinstance(reset, TransientDeliveryError)
    assert reset.reason is Reason.SERVER


# --- netguard ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("169.254.169.254", Category.METADATA),
        ("169.254.170.2", Category.METADATA),
        ("fd00:ec2::254", Category.METADATA),
        ("100.100.100.200", Category.METADATA),
        ("168.63.129.16", Category.METADATA),
        ("::ffff:169.254.169.254", Category.METADATA),
        ("169.254.0.1", Category.LINK_LOCAL),
        ("169.254.255.255", Category.LINK_LOCAL),
        ("fe80::1", Category.LINK_LOCAL),
        ("fe80::1%eth0", Category.LINK_LOCAL),
        ("febf::1", Category.LINK_LOCAL),
        ("::ffff:169.254.1.1", Category.LINK_LOCAL),
        ("64:ff9b::169.254.1.1", Category.LINK_LOCAL),
        ("2002:a9fe:0101::1", Category.LINK_LOCAL),
        ("0.0.0.0", Category.UNSPECIFIED),
        ("0.1.2.3", Category.UNSPECIFIED),
        ("::", Category.UNSPECIFIED),
        ("::ffff:0.0.0.0", Category.UNSPECIFIED),
        ("224.0.0.1", Category.MULTICAST),
        ("239.255.255.250", Category.MULTICAST),
        ("ff02::1", Category.MULTICAST),
        ("240.0.0.1", Category.RESERVED),
        ("255.255.255.255", Category.RESERVED),
        ("192.0.2.1", Category.RESERVED),
        ("198.51.100.7", Category.RESERVED),
        ("203.0.113.9", Category.RESERVED),
        ("192.0.0.192", Category.RESERVED),
        ("2001:db8::1", Category.RESERVED),
        ("100::1", Category.RESERVED),
        ("4000::1", Category.RESERVED),
        ("::1.2.3.4", Category.RESERVED),
        ("2001:0:4136:e378::1", Category.RESERVED),
        ("127.0.0.1", Category.LOOPBACK),
        ("127.255.255.254", Category.LOOPBACK),
        ("::1", Category.LOOPBACK),
        ("[::1]", Category.LOOPBACK),
        ("::ffff:127.0.0.1", Category.LOOPBACK),
        ("10.0.0.1", Category.PRIVATE),
        ("172.16.0.1", Category.PRIVATE),
        ("172.31.255.255", Category.PRIVATE),
        ("192.168.1.1", Category.PRIVATE),
        ("198.18.0.1", Category.PRIVATE),
        ("fc00::1", Category.PRIVATE),
        ("fd12:3456::1", Category.PRIVATE),
        ("fec0::1", Category.PRIVATE),
        ("::ffff:10.0.0.1", Category.PRIVATE),
        ("100.64.0.1", Category.SHARED),
        ("100.127.255.254", Category.SHARED),
        ("localhost", Category.INVALID),
        ("", Category.INVALID),
        ("127.1", Category.INVALID),
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("172.32.0.1", None),
        ("100.128.0.1", None),
        ("169.255.0.1", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::8.8.8.8", None),
        ("2002:0808:0808::1", None),
    ],
)
def test_address_categories(address: str, category: Category | None) -> None:
    """Each address lands in its category (or none: public); check_address agrees, letting
    only loopback, private and shared through with allow_private."""
    assert categorize(address) == category
    lifted = {Category.LOOPBACK, Category.PRIVATE, Category.SHARED}
    for allow_private in (False, True):
        allowed = category is None or (allow_private and category in lifted)
        if allowed:
            check_address(address, allow_private=allow_private)
        else:
            with pytest.raises(AddressRefused) as info:
                check_address(address, allow_private=allow_private)
            assert info.value.category == category
            assert str(category) in str(info.value)


@given(st.ip_addresses(network="169.254.0.0/16"), st.booleans())
def test_every_link_local_ipv4_is_refused(address: ipaddress.IPv4Address, private: bool) -> None:
    """Any 169.254/16 address is refused, plain or IPv4-mapped, whatever allow_private says."""
    for form in (str(address), f"::ffff:{address}"):
        with pytest.raises(AddressRefused) as info:
            check_address(form, allow_private=private)
        assert info.value.category in (Category.LINK_LOCAL, Category.METADATA)


@given(st.ip_addresses(v=4))
def test_mapped_ipv4_is_judged_like_the_ipv4_itself(address: ipaddress.IPv4Address) -> None:
    """::ffff:a.b.c.d and a.b.c.d always get the same verdict."""
    assert categorize(f"::ffff:{address}") == categorize(str(address))


async def test_check_host_checks_literals_without_dns() -> None:
    """IP literals (bracketed IPv6 too) are checked directly; the resolver is not called."""
    resolver = RecordingResolver(["8.8.8.8"])
    assert await check_host("8.8.8.8", 443, allow_private=False, resolver=resolver) == ["8.8.8.8"]
    with pytest.raises(AddressRefused):
        await check_host("[::1]", 443, allow_private=False, resolver=resolver)
    assert await check_host("[::1]", 443, allow_private=True, resolver=resolver) == ["::1"]
    assert resolver.calls == []


async def test_check_host_refuses_if_any_address_is_refused() -> None:
    """One refused address among good ones refuses the host; no address is a DNS error."""
    good = RecordingResolver(["8.8.8.8", "2606:4700:4700::1111"])
    assert await check_host("hooks.example", 443, allow_private=False, resolver=good) == [
        "8.8.8.8",
        "2606:4700:4700::1111",
    ]
    assert good.calls == [("hooks.example", 443)]
    mixed = RecordingResolver(["8.8.8.8", "10.0.0.5"])
    with pytest.raises(AddressRefused) as info:
        await check_host("hooks.example", 443, allow_private=False, resolver=mixed)
    assert info.value.category is Category.PRIVATE
    assert await check_host("hooks.example", 443, allow_private=True, resolver=mixed)
    with pytest.raises(socket.gaierror):
        await check_host("hooks.example", 443, allow_private=True, resolver=RecordingResolver([]))


async def test_resolve_uses_the_system_resolver() -> None:
    """resolve() returns the addresses getaddrinfo gives, deduplicated, and refuses no name."""
    assert await resolve("127.0.0.1", 80) == ["127.0.0.1"]
    addresses = await resolve("localhost", 80)
    assert addresses
    assert len(addresses) == len(set(addresses))
    assert {categorize(a) for a in addresses} == {Category.LOOPBACK}
