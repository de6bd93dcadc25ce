"""send_with_retry and next_dispatch_delay, with a real SMTP server and recorded sleeps."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from notifier.channels.base import Channel
from notifier.channels.email import EmailChannel
from notifier.delivery import next_dispatch_delay, send_with_retry
from notifier.errors import PermanentDeliveryError, Reason, TransientDeliveryError
from notifier.mailcatcher import MailCatcher
from notifier.message import OutgoingMessage, RenderedMessage
from notifier.settings import SmtpSettings

MESSAGE = OutgoingMessage(
    notification_id="ntf-7",
    recipient_name="Ana García",
    address="ana@example.org",
    rendered=RenderedMessage(
        subject="Nodo caído",
        text="El nodo no responde.",
        html=None,
        language="es",
        template_hash="h1",
    ),
)


class SleepRecorder:
    """An injected sleep that returns at once and remembers the requested delays."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class CountingChannel:
    """Wraps a real channel and counts send attempts."""

    def __init__(self, inner: Channel) -> None:
        self.inner = inner
        self.name = inner.name
        self.attempts = 0

    async def send(self, message: OutgoingMessage) -> str:
        self.attempts += 1
        return await self.inner.send(message)

    async def close(self) -> None:
        await self.inner.close()


class AlwaysDeferred:
    """A channel whose every send fails transiently, to exercise the retry policy alone."""

    name = "deferred"

    def __init__(self) -> None:
        self.attempts = 0

    async def send(self, message: OutgoingMessage) -> str:
        self.attempts += 1
        raise TransientDeliveryError("deferred", reason=Reason.SERVER)

    async def close(self) -> None:
        return None


@pytest.fixture
async def email(smtp_settings: SmtpSettings) -> AsyncIterator[CountingChannel]:
    channel = CountingChannel(EmailChannel(smtp_settings))
    yield channel
    await channel.close()


async def retry(channel: Channel, sleep: SleepRecorder, *, attempts: int = 3) -> str:
    return await send_with_retry(
        channel,
        MESSAGE,
        attempts=attempts,
        deadline_seconds=30,
        initial_backoff=0.5,
        max_backoff=5,
        sleep=sleep,
    )


async def test_451_once_then_success(email: CountingChannel, mailcatcher: MailCatcher) -> None:
    """A 451 on the first DATA is retried once after one backoff, then the mail arrives."""
    mailcatcher.fail_next(1, 451, "try later")
    sleep = SleepRecorder()
    message_id = await retry(email, sleep)
    [mail] = await mailcatcher.wait_for(1)
    assert message_id == mail.message["Message-ID"]
    assert email.attempts == 2
    assert len(sleep.delays) == 1
    assert 0.5 <= sleep.delays[0] <= 1.0


async def test_550_is_permanent_and_not_retried(
    email: CountingChannel, mailcatcher: MailCatcher
) -> None:
    """A 550 recipient refusal raises PermanentDeliveryError(CLIENT) after a single attempt."""
    mailcatcher.reject_recipient(MESSAGE.address)
    sleep = SleepRecorder()
    with pytest.raises(PermanentDeliveryError) as info:
        await retry(email, sleep, attempts=5)
    assert info.value.reason is Reason.CLIENT
    assert email.attempts == 1
    assert sleep.delays == []


async def test_unreachable_server_retries_bounded_by_attempts() -> None:
    """A closed port gives TransientDeliveryError after exactly `attempts` tries."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    channel = CountingChannel(EmailChannel(SmtpSettings(host="127.0.0.1", port=port)))
    sleep = SleepRecorder()
    with pytest.raises(TransientDeliveryError) as info:
        await retry(channel, sleep, attempts=4)
    await channel.close()
    assert info.value.reason is Reason.SERVER
    assert channel.attempts == 4
    assert len(sleep.delays) == 3


async def test_backoff_grows_exponentially_and_is_capped() -> None:
    """Waits start near initial_backoff, roughly double, and never exceed max_backoff."""
    channel, sleep = AlwaysDeferred(), SleepRecorder()
    with pytest.raises(TransientDeliveryError):
        await send_with_retry(
            channel,
            MESSAGE,
            attempts=8,
            deadline_seconds=3600,
            initial_backoff=1,
            max_backoff=10,
            sleep=sleep,
        )
    assert channel.attempts == 8
    assert len(sleep.delays) == 7
    assert 1 <= sleep.delays[0] <= 2
    assert 2 <= sleep.delays[1] <= 3
    assert all(d <= 10 for d in sleep.delays)
    assert sleep.delays[-1] == 10


async def test_deadline_stops_before_a_wait_that_would_overrun_it() -> None:
    """No backoff is started when it would end after the deadline."""
    channel, sleep = AlwaysDeferred(), SleepRecorder()
    with pytest.raises(TransientDeliveryError):
        await send_with_retry(
            channel,
            MESSAGE,
            attempts=100,
            deadline_seconds=5,
            initial_backoff=10,
            max_backoff=60,
            sleep=sleep,
        )
    assert channel.attempts == 1
    assert sleep.delays == []


async def test_retries_are_logged_with_context_but_no_address() -> None:
    """Each retry logs notification_id, channel, reason and attempt; never the address."""
    with capture_logs() as logs, pytest.raises(TransientDeliveryError):
        await send_with_retry(
            AlwaysDeferred(),
            MESSAGE,
            attempts=2,
            deadline_seconds=60,
            initial_backoff=1,
            max_backoff=2,
            sleep=SleepRecorder(),
        )
    retry_log = next(entry for entry in logs if entry["event"] == "delivery.retrying")
    assert retry_log["notification_id"] == "ntf-7"
    assert retry_log["channel"] == "deferred"
    assert retry_log["reason"] == "server"
    assert retry_log["attempt"] == 1
    assert [e["event"] for e in logs][-1] == "delivery.failed"
    assert MESSAGE.address not in repr(logs)


def test_dispatch_delay_uses_full_jitter_under_an_exponential_ceiling() -> None:
    """Delays lie in [0, min(max, initial * 2**(n-1))] and reproduce with a seeded Random."""
    for n, ceiling in [(0, 2), (1, 2), (2, 4), (3, 8), (6, 60), (10_000, 60)]:
        delays = [next_dispatch_delay(n, 2, 60, rng=random.Random(seed)) for seed in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.9  # really spread over the whole range
    assert next_dispatch_delay(3, 2, 60, rng=random.Random(7)) == next_dispatch_delay(
        3, 2, 60, rng=random.Random(7)
    )


class RateLimitedOnce:
    """Refuses the first send with a Retry-After, then accepts (a receiver's 429)."""

    name = "webhook"

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        self.attempts = 0

    async def send(self, message: OutgoingMessage) -> str:
        self.attempts += 1
        if self.attempts == 1:
            raise TransientDeliveryError(
                "429", reason=Reason.RATE_LIMITED, retry_after=self.retry_after
            )
        return "ok"

    async def close(self) -> None:
        return None


async def test_retry_after_is_a_floor_for_the_next_attempt() -> None:
    """A 429 asking for 5 s is retried no sooner than 5 s later, even though the backoff
    alone would wait a fraction of a second."""
    channel = RateLimitedOnce(5.0)
    sleep = SleepRecorder()
    result = await send_with_retry(
        channel,
        MESSAGE,
        attempts=3,
        deadline_seconds=30,
        initial_backoff=0.1,
        max_backoff=1,
        sleep=sleep,
    )
    assert (result, channel.attempts) == ("ok", 2)
    assert sleep.delays == [pytest.approx(5.0, abs=0.2)]
    assert sleep.delays[0] >= 5.0


async def test_a_retry_after_beyond_the_deadline_hands_back_to_the_outbox() -> None:
    """Asked to wait 60 s with a 10 s deadline: no in-process wait, the error (with its
    Retry-After) goes to the caller, which reschedules the notification that late."""
    channel = RateLimitedOnce(60.0)
    sleep = SleepRecorder()
    with pytest.raises(TransientDeliveryError) as failed:
        await send_with_retry(
            channel,
            MESSAGE,
            attempts=3,
            deadline_seconds=10,
            initial_backoff=0.1,
            max_backoff=1,
            sleep=sleep,
        )
    assert (channel.attempts, sleep.delays, failed.value.retry_after) == (1, [], 60.0)
