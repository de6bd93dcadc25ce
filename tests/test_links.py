"""Signed links: round trip, tampering, key rotation, expiry, malformed input, and which
links the engine offers each reader."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from itsdangerous import URLSafeSerializer
from pydantic import SecretStr

from notifier.app import Engine, load_configuration
from notifier.errors import ConfigError, Reason
from notifier.links import LinkClaim, LinkExpired, LinkInvalid, LinkSigner
from notifier.settings import Settings
from notifier.store.outbox import PendingNotification
from notifier.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent

START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
TTL = 3_600


def signer(
    clock: FakeClock, *secrets: str, ttl: int = TTL, salt: str = "notifier.ack"
) -> LinkSigner:
    """A signer over ``secrets`` (first signs), default one secret named "new"."""
    keys = [SecretStr(s) for s in secrets or ("new",)]
    return LinkSigner(keys, ttl_seconds=ttl, clock=clock, salt=salt)


@pytest.fixture
def clock() -> FakeClock:
    """A clock standing still at START until a test advances it."""
    return FakeClock(START)


def test_round_trip_returns_the_claim(clock: FakeClock) -> None:
    """A token verifies to the alert, occurrence and person it was signed for, and its time."""
    links = signer(clock)
    claim = links.verify(links.sign("alert-42", 3, "ada"))
    assert isinstance(claim, LinkClaim)
    assert (claim.alert_id, claim.occurrence, claim.person_id) == ("alert-42", 3, "ada")
    assert claim.issued_at == START
    assert claim.nonce


def test_token_is_url_safe(clock: FakeClock) -> None:
    """A token needs no escaping in a URL path."""
    token = signer(clock).sign("alert/42 ü", 1, "ada@example.org")
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    assert set(token) <= allowed


def test_two_signs_of_the_same_claim_differ(clock: FakeClock) -> None:
    """The random nonce makes every token unique, even for the same claim at the same time."""
    links = signer(clock)
    first, second = links.sign("alert-42", 1, "ada"), links.sign("alert-42", 1, "ada")
    assert first != second
    assert links.verify(first).nonce != links.verify(second).nonce


@pytest.mark.parametrize("part", ["payload start", "payload middle", "signature start"])
def test_tampered_token_is_refused(clock: FakeClock, part: str) -> None:
    """Changing a character of the payload or of the signature makes the token invalid.

    (Not the last character: base64's spare low bits there may decode to the same bytes.)
    """
    links = signer(clock)
    token = links.sign("alert-42", 1, "ada")
    dot = token.rindex(".")
    index = {"payload start": 0, "payload middle": dot // 2, "signature start": dot + 1}[part]
    swapped = "A" if token[index] != "A" else "B"
    with pytest.raises(LinkInvalid) as raised:
        links.verify(token[:index] + swapped + token[index + 1 :])
    assert not isinstance(raised.value, LinkExpired)
    assert raised.value.reason is Reason.CLIENT


def test_token_for_another_person_cannot_be_forged(clock: FakeClock) -> None:
    """A payload re-signed without the secret does not verify."""
    forged = URLSafeSerializer("guess", salt="notifier.ack").dumps(
        [1, "alert-42", 1, "mallory", "nonce", int(START.timestamp())]
    )
    with pytest.raises(LinkInvalid):
        signer(clock).verify(forged)


def test_token_from_another_salt_is_refused(clock: FakeClock) -> None:
    """The same secrets under another salt (another purpose) do not make valid ack links."""
    other = signer(clock, salt="notifier.unsubscribe").sign("alert-42", 1, "ada")
    with pytest.raises(LinkInvalid):
        signer(clock).verify(other)


def test_old_key_still_verifies_after_rotation(clock: FakeClock) -> None:
    """A token signed before rotation verifies when the new key is put first."""
    token = signer(clock, "old").sign("alert-42", 1, "ada")
    rotated = signer(clock, "new", "old")
    assert rotated.verify(token).person_id == "ada"


def test_after_rotation_the_new_key_signs(clock: FakeClock) -> None:
    """Tokens signed after rotation verify with the new key alone, not with the old one."""
    token = signer(clock, "new", "old").sign("alert-42", 1, "ada")
    assert signer(clock, "new").verify(token).alert_id == "alert-42"
    with pytest.raises(LinkInvalid):
        signer(clock, "old").verify(token)


def test_token_signed_with_a_removed_key_is_refused(clock: FakeClock) -> None:
    """Once the old key is removed from the list, its tokens stop verifying."""
    token = signer(clock, "old").sign("alert-42", 1, "ada")
    with pytest.raises(LinkInvalid) as raised:
        signer(clock, "newer", "new").verify(token)
    assert not isinstance(raised.value, LinkExpired)


def test_token_is_valid_until_the_ttl(clock: FakeClock) -> None:
    """A token is accepted up to and including ``ttl_seconds`` after it was issued."""
    links = signer(clock)
    token = links.sign("alert-42", 1, "ada")
    clock.advance(TTL - 1)
    assert links.verify(token).alert_id == "alert-42"
    clock.advance(1)
    assert links.verify(token).alert_id == "alert-42"


def test_token_expires_after_the_ttl(clock: FakeClock) -> None:
    """One second past ``ttl_seconds`` the token raises LinkExpired, a LinkInvalid."""
    links = signer(clock)
    token = links.sign("alert-42", 1, "ada")
    clock.advance(TTL + 1)
    with pytest.raises(LinkExpired) as raised:
        links.verify(token)
    assert isinstance(raised.value, LinkInvalid)
    assert raised.value.reason is Reason.CLIENT


def test_expiry_follows_the_injected_clock_not_wall_time() -> None:
    """A token issued by a clock years in the past is expired by that clock's present only."""
    past = FakeClock(datetime(2001, 1, 1, tzinfo=UTC))
    links = signer(past)
    token = links.sign("alert-42", 1, "ada")
    assert links.verify(token).issued_at == datetime(2001, 1, 1, tzinfo=UTC)


def test_token_from_a_clock_slightly_ahead_is_accepted(clock: FakeClock) -> None:
    """Another instance whose clock runs ahead issues tokens this one still accepts."""
    ahead = FakeClock(START)
    ahead.advance(30)
    token = signer(ahead).sign("alert-42", 1, "ada")
    assert signer(clock).verify(token).issued_at > START


@pytest.mark.parametrize(
    "token",
    [
        "",
        "x",
        ".",
        "....",
        "not a token",
        "eyJ9.abc",
        "%%%.%%%",
        "\x00\x01",
        "\ud800",  # a lone surrogate: not even encodable
        "ü" * 40,
        "a" * 10_000,
        ".eJwLycxLBQAH4AKl.abc",  # looks compressed, unsigned
    ],
)
def test_malformed_strings_raise_link_invalid(clock: FakeClock, token: str) -> None:
    """Garbage is refused with LinkInvalid, never another exception."""
    with pytest.raises(LinkInvalid):
        signer(clock).verify(token)


@pytest.mark.parametrize(
    "payload",
    [
        {"alert": "alert-42"},
        [1, "alert-42", 1, "ada", "nonce"],
        [2, "alert-42", 1, "ada", "nonce", 0],
        [1, "alert-42", "1", "ada", "nonce", 0],
        [1, "alert-42", True, "ada", "nonce", 0],
        [1, "", 1, "ada", "nonce", 0],
        [1, "alert-42", 1, "ada", "nonce", 10**20],
        [1, "alert-42", 1, None, "nonce", 0],
    ],
)
def test_signed_payload_of_the_wrong_shape_is_invalid(clock: FakeClock, payload: object) -> None:
    """A genuinely signed but foreign payload is refused as LinkInvalid, not a crash."""
    token = URLSafeSerializer("new", salt="notifier.ack").dumps(payload)
    with pytest.raises(LinkInvalid):
        signer(clock).verify(token)


def test_errors_never_contain_the_token_or_secret(clock: FakeClock) -> None:
    """Error messages are safe to log: neither the token nor a secret appears in them."""
    links = signer(clock, "s3cr3t-key")
    token = links.sign("alert-42", 1, "ada")
    for bad in (token[:-2] + "xx", token):
        clock.advance(TTL + 1)
        with pytest.raises(LinkInvalid) as raised:
            links.verify(bad)
        assert token[:20] not in str(raised.value)
        assert "s3cr3t" not in str(raised.value)
        assert "s3cr3t" not in repr(links)


def test_url_joins_base_and_token(clock: FakeClock) -> None:
    """The link is ``<base>/ack/<token>`` whether or not the base ends with a slash."""
    links = signer(clock)
    assert links.url("https://n.example/", "TOKEN") == "https://n.example/ack/TOKEN"
    assert links.url("https://n.example/app", "TOKEN") == "https://n.example/app/ack/TOKEN"


@pytest.mark.parametrize(
    ("secrets", "ttl"), [((), TTL), (("",), TTL), (("new",), 0)], ids=["none", "empty", "ttl"]
)
def test_unusable_configuration_is_a_config_error(
    clock: FakeClock, secrets: tuple[str, ...], ttl: int
) -> None:
    """No secret, an empty secret or a non-positive ttl raise ConfigError at construction."""
    with pytest.raises(ConfigError):
        LinkSigner([SecretStr(s) for s in secrets], ttl_seconds=ttl, clock=clock)


@pytest.mark.parametrize(
    ("kind", "person", "tier", "expected"),
    [
        ("firing", "mei.lin", "commanders", {"acknowledge", "incident"}),
        ("escalated-2", "priya.raman", "escalation", {"acknowledge", "incident"}),
        ("firing", "carlos.ruiz", "partners", set()),  # partners may not acknowledge
        ("resolved", "mei.lin", "commanders", {"incident"}),
        ("notice", "carlos.ruiz", "partners", {"confirm"}),  # partners confirm receipt
        ("notice", "mei.lin", "commanders", {"incident"}),
        ("receipt-reminder", "sofia.navarro", "regulators", {"confirm"}),  # no console
        ("acknowledged", "ana.costa", "responders", {"incident"}),
        ("digest:0f0f", "ana.costa", "responders", set()),  # several alerts: no one page
    ],
)
def test_the_engine_offers_each_reader_the_links_meant_for_them(
    tmp_path: Path, kind: str, person: str, tier: str, expected: set[str]
) -> None:
    """Pages carry an acknowledgment link for those allowed to acknowledge; notices to tiers
    that must confirm receipt, and reminders about them, a confirm-receipt link; each link
    verifies only with its own signer, for the reader it was made for. Whoever may use the
    console gets the alert's page there (a plain address: the console asks for a sign-in)."""
    settings = Settings(config_dir=ROOT / "config", store={"url": f"sqlite:///{tmp_path / 'e.db'}"})
    engine = Engine(load_configuration(settings), clock=FakeClock(START))
    n = _pending(kind, person, tier)
    links = engine.links_for(n)
    assert set(links) == expected
    page = links.pop("incident", None)
    assert page in (None, f"{settings.http.public_url}/console/incidents/a1")
    for name, url in links.items():
        path, token = url.rsplit("/", 2)[-2:]
        own, other = (
            (engine.signer, engine.receipt_signer)
            if name == "acknowledge"
            else (engine.receipt_signer, engine.signer)
        )
        assert url.startswith(settings.http.public_url)
        assert path == ("ack" if name == "acknowledge" else "receipt")
        claim = own.verify(token)
        assert (claim.alert_id, claim.occurrence, claim.person_id) == ("a1", 2, person)
        with pytest.raises(LinkInvalid):
            other.verify(token)


def test_no_console_no_incident_page(tmp_path: Path) -> None:
    """With the console off, messages do not point at it."""
    settings = Settings(
        config_dir=ROOT / "config",
        store={"url": f"sqlite:///{tmp_path / 'e.db'}"},
        console={"enabled": False},
    )
    engine = Engine(load_configuration(settings), clock=FakeClock(START))
    assert set(engine.links_for(_pending("firing", "mei.lin", "commanders"))) == {"acknowledge"}


def _pending(kind: str, person: str, tier: str) -> PendingNotification:
    """An email notification of ``kind`` about alert ``a1`` (occurrence 2) to ``person``."""
    return PendingNotification(
        id="n",
        alert_id="a1",
        fingerprint="f",
        occurrence=2,
        kind=kind,
        person_id=person,
        channel="email",
        address="x@example.org",
        recipient_name="X",
        tier=tier,
        template="alert",
        clearance="restricted",
        locale="en",
        timezone="UTC",
        dispatches=0,
        payload={},
    )
