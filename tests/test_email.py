"""EmailChannel against a real aiosmtpd server (MailCatcher): format, connections, errors."""

from __future__ import annotations

import asyncio
import email.policy
import re
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage

import aiosmtplib
import pytest
from aiosmtplib.email import flatten_message
from pydantic import SecretStr

from notifier.channels import email as email_channel
from notifier.channels.email import EmailChannel, classify
from notifier.errors import (
    ConfigError,
    PermanentDeliveryError,
    Reason,
    TransientDeliveryError,
)
from notifier.mailcatcher import MailCatcher
from notifier.message import OutgoingMessage, RenderedMessage
from notifier.settings import SmtpSettings

SERVER = "smtp.test:25"


class FixedClock:
    """A clock stopped at one instant."""

    def now(self) -> datetime:
        return datetime(2024, 5, 17, 9, 30, tzinfo=UTC)

    async def sleep(self, seconds: float) -> None:
        return None


def outgoing(
    notification_id: str = "ntf-0001",
    *,
    address: str = "jm@example.org",
    name: str = "Jürgen Müller",
    subject: str = "Knoten ausgefallen: validator-7",
    html: str | None = "<p>Knoten <b>validator-7</b> antwortet nicht.</p>",
    language: str = "de_CH",
) -> OutgoingMessage:
    return OutgoingMessage(
        notification_id=notification_id,
        recipient_name=name,
        address=address,
        rendered=RenderedMessage(
            subject=subject,
            text="Knoten validator-7 antwortet nicht.",
            html=html,
            language=language,
            template_hash="sha256:abc123",
        ),
    )


@pytest.fixture
async def channel(smtp_settings: SmtpSettings) -> AsyncIterator[EmailChannel]:
    ch = EmailChannel(smtp_settings, clock=FixedClock())
    yield ch
    await ch.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_message_arrives_as_multipart_text_and_html(
    channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """A message with HTML arrives as multipart/alternative with the text and HTML parts."""
    await channel.send(outgoing())
    [mail] = await mailcatcher.wait_for(1)
    msg = mail.message
    assert msg.get_content_type() == "multipart/alternative"
    text, html = (part.get_content() for part in msg.iter_parts() if isinstance(part, EmailMessage))
    assert text.strip() == "Knoten validator-7 antwortet nicht."
    assert "<b>validator-7</b>" in html
    assert mail.rcpt_tos == ("jm@example.org",)
    assert mail.mail_from == "notifier@example.org"
    assert mail.path is not None
    assert mail.path.suffix == ".eml"
    assert mail.path.stat().st_size > 0


async def test_text_only_message_is_not_multipart(
    channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """Without HTML the message is a single text/plain part."""
    await channel.send(outgoing(html=None))
    [mail] = await mailcatcher.wait_for(1)
    assert mail.message.get_content_type() == "text/plain"


async def test_headers_carry_ids_language_and_encoded_name(
    channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """Headers: stable Message-ID, Content-Language as BCP 47, non-ASCII To name, markers."""
    returned = await channel.send(outgoing())
    [mail] = await mailcatcher.wait_for(1)
    msg = mail.message
    assert returned == "<ntf-0001@notifier.test>" == msg["Message-ID"]
    assert msg["Content-Language"] == "de-CH"
    assert msg["To"].addresses[0].display_name == "Jürgen Müller"
    assert msg["To"].addresses[0].addr_spec == "jm@example.org"
    assert msg["From"] == "Notifier <notifier@example.org>"
    assert msg["Subject"] == "Knoten ausgefallen: validator-7"
    assert msg["Date"].datetime == FixedClock().now()
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Notifier-Notification-Id"] == "ntf-0001"
    assert msg["X-Notifier-Template-Hash"] == "sha256:abc123"
    assert mail.path is not None
    to_line = next(h for h in mail.path.read_bytes().split(b"\r\n") if h.startswith(b"To:"))
    assert to_line.isascii()
    assert b"=?utf-8?" in to_line


def test_header_classes_made_once_change_no_byte_of_the_message(
    smtp_settings: SmtpSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The channel's policy makes each header class once (the stdlib makes one per header),
    and the bytes sent are those the standard policy gives, non-ASCII name and subject too."""
    registry = email_channel.POLICY.header_factory
    assert isinstance(registry, HeaderRegistry)
    assert registry["Subject"] is registry["subject"] is registry["SUBJECT"]
    assert registry["X-Anything"] is registry["x-anything"]
    assert HeaderRegistry()["Subject"] is not HeaderRegistry()["Subject"]  # why it exists

    channel = EmailChannel(smtp_settings, clock=FixedClock())
    message = outgoing(subject="Knoten ausgefallen: validator-7, Prüfung nötig " * 3)

    def sent_bytes() -> bytes:
        mail = channel._compose(message, "<ntf-0001@notifier.test>")
        return re.sub(rb"={15}\d+==", b"BOUNDARY", flatten_message(mail))  # random

    ours = sent_bytes()
    monkeypatch.setattr(email_channel, "POLICY", email.policy.default)
    assert ours == sent_bytes()
    assert b"=?utf-8?" in ours.split(b"\r\n\r\n")[0]  # the headers were encoded


async def test_resend_of_same_notification_keeps_message_id(
    channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """Sending the same notification twice yields the same Message-ID, so receivers dedupe."""
    first = await channel.send(outgoing("ntf-42"))
    second = await channel.send(outgoing("ntf-42"))
    mails = await mailcatcher.wait_for(2)
    assert first == second == mails[0].message["Message-ID"] == mails[1].message["Message-ID"]


async def test_newlines_in_subject_and_name_cannot_inject_headers(
    channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """CR/LF in the subject or name are collapsed: no extra header, no extra recipient."""
    await channel.send(outgoing(subject="Down\r\nBcc: evil@example.net", name="Eve\nCc: x@y.z"))
    [mail] = await mailcatcher.wait_for(1)
    assert mail.message["Subject"] == "Down Bcc: evil@example.net"
    assert mail.message["Bcc"] is None
    assert mail.message["Cc"] is None
    assert mail.rcpt_tos == ("jm@example.org",)


async def test_connection_is_reused_across_sends(
    channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """Five sends on one channel open a single SMTP connection."""
    for i in range(5):
        await channel.send(outgoing(f"ntf-{i}"))
    await mailcatcher.wait_for(5)
    assert mailcatcher.connections == 1


async def test_pool_opens_at_most_concurrency_connections(
    smtp_settings: SmtpSettings, mailcatcher: MailCatcher
) -> None:
    """Concurrent sends share a pool of at most `concurrency` connections."""
    channel = EmailChannel(smtp_settings, concurrency=3)
    try:
        await asyncio.gather(*(channel.send(outgoing(f"ntf-{i}")) for i in range(12)))
    finally:
        await channel.close()
    assert len(await mailcatcher.wait_for(12)) == 12
    assert 1 <= mailcatcher.connections <= 3


async def test_reconnects_after_server_dropped_idle_connection(
    channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """A connection the server closed while idle is replaced transparently on the next send."""
    await channel.send(outgoing("ntf-1"))
    mailcatcher.drop_connections()
    await channel.send(outgoing("ntf-2"))
    assert len(await mailcatcher.wait_for(2)) == 2
    assert mailcatcher.connections == 2


async def test_reconnects_after_server_restart(
    channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """After the SMTP server restarts on the same port, the channel reconnects and delivers."""
    await channel.send(outgoing("ntf-1"))
    await mailcatcher.stop()
    await mailcatcher.start()
    await channel.send(outgoing("ntf-2"))
    assert [m.message["Message-ID"] for m in await mailcatcher.wait_for(2)] == [
        "<ntf-1@notifier.test>",
        "<ntf-2@notifier.test>",
    ]


async def test_refused_recipient_is_permanent_client_error_and_session_survives(
    channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """A 550 on RCPT is PermanentDeliveryError(CLIENT); the same connection then carries mail."""
    mailcatcher.reject_recipient("gone@example.org")
    with pytest.raises(PermanentDeliveryError) as info:
        await channel.send(outgoing(address="gone@example.org"))
    assert info.value.reason is Reason.CLIENT
    assert "gone@example.org" not in str(info.value)
    await channel.send(outgoing())
    await mailcatcher.wait_for(1)
    assert mailcatcher.connections == 1


async def test_data_451_is_transient_server_error(
    channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """A 451 after DATA is TransientDeliveryError(SERVER)."""
    mailcatcher.fail_next(1, 451, "try later")
    with pytest.raises(TransientDeliveryError) as info:
        await channel.send(outgoing())
    assert info.value.reason is Reason.SERVER
    assert "451" in str(info.value)


async def test_closed_port_is_transient_and_names_the_setting() -> None:
    """Connection refused is TransientDeliveryError(SERVER) naming NOTIFIER_SMTP__HOST/PORT."""
    port = closed_port()
    channel = EmailChannel(SmtpSettings(host="127.0.0.1", port=port, timeout_seconds=2))
    with pytest.raises(TransientDeliveryError) as info:
        await channel.send(outgoing())
    await channel.close()
    assert info.value.reason is Reason.SERVER
    assert f"127.0.0.1:{port} refused the connection" in str(info.value)
    assert "NOTIFIER_SMTP__HOST/PORT" in str(info.value)


async def test_silent_server_is_transient_timeout() -> None:
    """A server that accepts TCP but never greets gives TransientDeliveryError(TIMEOUT)."""
    release = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    channel = EmailChannel(SmtpSettings(host="127.0.0.1", port=port, timeout_seconds=0.2))
    try:
        with pytest.raises(TransientDeliveryError) as info:
            await channel.send(outgoing())
        assert info.value.reason is Reason.TIMEOUT
    finally:
        release.set()
        await channel.close()
        server.close()
        await server.wait_closed()


async def test_wrong_password_is_permanent_auth_error_without_the_secret() -> None:
    """A 535 to AUTH is PermanentDeliveryError(AUTH) and the message never holds the password."""
    async with MailCatcher(credentials=("notifier", "right")) as catcher:
        settings = SmtpSettings(
            host=catcher.host,
            port=catcher.port,
            starttls=False,
            username="notifier",
            password=SecretStr("hunter2-wrong"),
        )
        channel = EmailChannel(settings)
        with pytest.raises(PermanentDeliveryError) as info:
            await channel.send(outgoing())
        await channel.close()
        good = EmailChannel(settings.model_copy(update={"password": SecretStr("right")}))
        await good.send(outgoing())
        await good.close()
        await catcher.wait_for(1)
    assert info.value.reason is Reason.AUTH
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(info.value.__cause__)


async def test_invalid_recipient_address_is_permanent_client_error(
    channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """An address that is not an addr-spec fails as PermanentDeliveryError(CLIENT), unsent."""
    with pytest.raises(PermanentDeliveryError) as info:
        await channel.send(outgoing(address="not an address"))
    assert info.value.reason is Reason.CLIENT
    assert mailcatcher.connections == 0


async def test_send_after_close_is_refused(channel: EmailChannel) -> None:
    """close() is idempotent and later sends fail as transient (the intent stays pending)."""
    await channel.close()
    await channel.close()
    with pytest.raises(TransientDeliveryError):
        await channel.send(outgoing())


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"sender": "not an address"}, "NOTIFIER_SMTP__SENDER"),
        ({"message_id_domain": "bad domain>"}, "NOTIFIER_SMTP__MESSAGE_ID_DOMAIN"),
    ],
)
def test_bad_settings_are_config_errors(settings: dict[str, str], field: str) -> None:
    """An unusable sender or Message-ID domain is a ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=field):
        EmailChannel(SmtpSettings.model_validate(settings))


@pytest.mark.parametrize(
    ("code", "expected_type", "reason"),
    [
        (421, TransientDeliveryError, Reason.SERVER),
        (450, TransientDeliveryError, Reason.SERVER),
        (451, TransientDeliveryError, Reason.SERVER),
        (452, TransientDeliveryError, Reason.SERVER),
        (530, PermanentDeliveryError, Reason.AUTH),
        (535, PermanentDeliveryError, Reason.AUTH),
        (550, PermanentDeliveryError, Reason.CLIENT),
        (551, PermanentDeliveryError, Reason.CLIENT),
        (553, PermanentDeliveryError, Reason.CLIENT),
        (554, PermanentDeliveryError, Reason.CLIENT),
        (552, PermanentDeliveryError, Reason.SERVER),
        (500, PermanentDeliveryError, Reason.SERVER),
    ],
)
def test_reply_codes_map_to_retriability_and_reason(
    code: int, expected_type: type[Exception], reason: Reason
) -> None:
    """Each SMTP reply code maps to the documented error class and reason."""
    err = classify(aiosmtplib.SMTPDataError(code, "nope"), server=SERVER)
    assert type(err) is expected_type
    assert err.reason is reason


def test_refused_recipients_use_the_reply_code() -> None:
    """SMTPRecipientsRefused is permanent CLIENT for 5xx and transient for 4xx (greylisting)."""
    hard = aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@example.org")
    soft = aiosmtplib.SMTPRecipientRefused(450, "greylisted", "a@example.org")
    assert isinstance(
        classify(aiosmtplib.SMTPRecipientsRefused([hard]), server=SERVER), PermanentDeliveryError
    )
    assert classify(aiosmtplib.SMTPRecipientsRefused([hard]), server=SERVER).reason is Reason.CLIENT
    assert classify(aiosmtplib.SMTPRecipientsRefused([soft]), server=SERVER).retriable


def test_greeting_5xx_is_server_not_client() -> None:
    """A 554 greeting refuses service to us, so it is reason SERVER, not CLIENT."""
    err = classify(aiosmtplib.SMTPConnectResponseError(554, "no service"), server=SERVER)
    assert isinstance(err, PermanentDeliveryError)
    assert err.reason is Reason.SERVER


def test_transport_failures_are_transient() -> None:
    """Timeouts are TIMEOUT; DNS failures and disconnects are SERVER; all retriable."""
    dns = aiosmtplib.SMTPConnectError("lookup failed")
    dns.__cause__ = socket.gaierror(-2, "Name or service not known")
    cases = {
        aiosmtplib.SMTPConnectTimeoutError("slow"): Reason.TIMEOUT,
        aiosmtplib.SMTPReadTimeoutError("slow"): Reason.TIMEOUT,
        aiosmtplib.SMTPServerDisconnected("gone"): Reason.SERVER,
        dns: Reason.SERVER,
        ConnectionResetError(): Reason.SERVER,
    }
    for exc, reason in cases.items():
        err = classify(exc, server=SERVER)
        assert isinstance(err, TransientDeliveryError), exc
        assert err.reason is reason, exc
    assert "could not be resolved" in str(classify(dns, server=SERVER))


def test_addresses_in_server_replies_are_redacted() -> None:
    """Error messages never repeat an email address the server echoed."""
    err = classify(aiosmtplib.SMTPDataError(550, "5.1.1 <bob@example.org>: unknown"), server=SERVER)
    assert "bob@example.org" not in str(err)
    assert "550 5.1.1 <address>" in str(err)


async def test_greylisting_451_on_rcpt_is_transient(
    channel: EmailChannel, mailcatcher: MailCatcher
) -> None:
    """A 451 to RCPT (greylisting) is TransientDeliveryError, so it will be retried."""
    mailcatcher.fail_next(1, 451, "greylisted, come back later", command="RCPT")
    with pytest.raises(TransientDeliveryError):
        await channel.send(outgoing())
    await channel.send(outgoing())
    assert len(await mailcatcher.wait_for(1)) == 1


async def test_mailcatcher_wait_for_times_out_with_a_count(mailcatcher: MailCatcher) -> None:
    """MailCatcher.wait_for raises TimeoutError saying how many of the expected arrived."""
    with pytest.raises(TimeoutError, match="0 of 1 messages"):
        await mailcatcher.wait_for(1, timeout=0.05)
