"""The template data contract: what a template sees for one notification.

Templates never see raw events; they see this stable context, built from the stored event and
the recipient. Fields under the event's ``confidential`` section are present only when the
recipient's clearance is ``confidential``; otherwise ``confidential`` is None. ``links`` holds
the addresses made for this recipient (``acknowledge``: a signed acknowledgment page;
``confirm``: a signed confirm-receipt page), or is empty. ``status`` and ``step`` come from
the notification's kind (``escalated-2``: status ``escalated``, step 2), ``details`` from
what the follow-up recorded (who acknowledged, the latest status update, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from notifier.details import decode
from notifier.directory import ChannelKind
from notifier.events import ALERT_TYPE, AlertData, CloudEvent, PolicyData
from notifier.intents import split_kind
from notifier.message import OutgoingMessage, RenderedMessage
from notifier.routing import Clearance
from notifier.store.outbox import PendingNotification
from notifier.templating import Renderer


def template_context(
    n: PendingNotification, links: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Build the render context of a claimed notification (the contract in templating.py).

    ``links`` maps link names (``acknowledge``) to addresses made for this recipient.
    """
    status, step = split_kind(n.kind)
    return event_context(
        n.payload,
        status=status,
        step=step,
        details=n.details,
        tier=n.tier,
        clearance=n.clearance,
        recipient={"name": n.recipient_name, "locale": n.locale, "timezone": n.timezone},
        alert_id=n.alert_id,
        fingerprint=n.fingerprint,
        links=links,
    )


def event_context(
    payload: Mapping[str, Any],
    *,
    status: str,
    step: int | None,
    details: Mapping[str, Any] | None,
    tier: str,
    clearance: str,
    recipient: Mapping[str, str],
    alert_id: str,
    fingerprint: str,
    links: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build the render context of an event (a CloudEvent JSON object) for one recipient.

    What :func:`template_context` does for a stored notification, from its parts: ``details``
    as stored (JSON, see :mod:`notifier.details`) or already decoded; ``clearance`` the
    recipient's level (``"confidential"`` shows the event's confidential section);
    ``recipient`` is ``{name, locale, timezone}``.
    """
    envelope = CloudEvent.model_validate(payload)
    context: dict[str, Any] = {
        "status": status,
        "step": step,
        "details": decode(details),
        "tier": tier,
        "recipient": dict(recipient),
        "event": {"id": envelope.id, "source": envelope.source, "time": envelope.time},
        "confidential": None,
        "links": dict(links) if links else {},
    }
    if envelope.type == ALERT_TYPE:
        alert = AlertData.model_validate(envelope.data)
        context["kind"] = "alert"
        context["alert"] = {
            "id": alert_id,
            "fingerprint": fingerprint,
            "alertname": alert.alertname,
            "severity": alert.severity.value,
            "risk": alert.risk.value if alert.risk else None,
            "labels": dict(alert.labels),
            "summary": alert.annotations.summary,
            "description": alert.annotations.description,
            "runbook_url": alert.annotations.runbook_url,
            "starts_at": alert.starts_at or envelope.time,
            "ends_at": alert.ends_at,
            "source": envelope.source,
        }
        return context
    policy = PolicyData.model_validate(envelope.data)
    context["kind"] = "policy"
    context["policy"] = {
        "policy_id": policy.policy_id,
        "version": policy.version,
        "change": policy.change.value,
        "risk": policy.risk.value,
        "title": policy.title,
        "summary": policy.summary,
        "effective_at": policy.effective_at,
        "authorized_by": policy.authorized_by,
        "affected": list(policy.affected),
        "action_items": list(policy.action_items),
        "rollback_plan": policy.rollback_plan,
    }
    if clearance == Clearance.CONFIDENTIAL.value and policy.confidential:
        context["confidential"] = dict(policy.confidential)
    return context


def compose(
    renderer: Renderer,
    n: PendingNotification,
    links: Mapping[str, str] | None = None,
    *,
    thread: str | None = None,
    mention: str | None = None,
) -> OutgoingMessage:
    """Render a claimed notification for its recipient; raises TemplateError.

    ``links`` (e.g. ``{"acknowledge": url}``) are shown by templates that offer them;
    ``thread`` and ``mention`` are passed on to the channel (see OutgoingMessage).
    """
    context = template_context(n, links)
    rendered = renderer.render(
        n.template, n.channel, locale=n.locale, timezone=n.timezone, context=context
    )
    return outgoing(
        renderer,
        rendered,
        context,
        channel=n.channel,
        locale=n.locale,
        notification_id=n.id,
        recipient_name=n.recipient_name,
        address=n.address,
        alert_id=n.alert_id,
        occurrence=n.occurrence,
        thread=thread,
        mention=mention,
    )


def outgoing(
    renderer: Renderer,
    rendered: RenderedMessage,
    context: Mapping[str, Any],
    *,
    channel: str,
    locale: str,
    notification_id: str,
    recipient_name: str,
    address: str,
    alert_id: str,
    occurrence: int,
    thread: str | None = None,
    mention: str | None = None,
) -> OutgoingMessage:
    """The message a channel sends: ``rendered`` from ``context`` (a render context), with
    what channels that show more than text read from it (status, severity, runbook, links,
    and for Slack its framing words in the reader's language)."""
    alert = context.get("alert") or {}
    policy = context.get("policy") or {}
    labels = (
        slack_labels(renderer, locale, status=context["status"], alert=alert, policy=policy)
        if channel == ChannelKind.SLACK
        else {}
    )
    return OutgoingMessage(
        notification_id=notification_id,
        recipient_name=recipient_name,
        address=address,
        rendered=rendered,
        alert_id=alert_id,
        occurrence=occurrence,
        status=context["status"],
        severity=alert.get("severity") or policy.get("risk"),
        runbook_url=alert.get("runbook_url"),
        links=context["links"],
        thread=thread,
        mention=mention,
        labels=labels,
        digest=digest_summary(context["details"]) if context["status"] == "digest" else None,
    )


_DIGEST_ITEM_FIELDS = ("alert_id", "name", "severity", "status", "summary", "labels")


def digest_summary(details: Mapping[str, Any]) -> dict[str, Any]:
    """What a digest lists, for channels that carry structure as well as text (webhook
    bodies): why it was bundled (``reason``: grouped, throttled, quiet), the ``group``'s
    labels (or None), how many alerts it stands for (``count``), when it was due
    (``due_at``) and the alerts listed (``items``, at most the first few of ``count``)."""
    return {
        "reason": details.get("reason"),
        "group": details.get("group"),
        "count": details.get("count"),
        "due_at": details.get("due_at"),
        "items": [
            {key: item.get(key) for key in _DIGEST_ITEM_FIELDS}
            for item in details.get("items") or []
        ],
    }


# The labels.j2 macro calls the engine makes besides templates' own (the linter renders each
# in every locale): Slack's framing words, and its replies to a button press (reply, outcome).
SLACK_WORDS = ("severity", "risk", "status", "acknowledge", "resolve", "runbook")
SLACK_REPLIES = (
    ("done", "acknowledged"),
    ("done", "resolved"),
    ("already", "acknowledged"),
    ("already", "resolved"),
    ("refused", "acknowledge"),
    ("refused", "resolve"),
    ("resolved", "acknowledge"),
    ("moved-on", "acknowledge"),
    ("moved-on", "resolve"),
    ("unknown-person", "acknowledge"),
    ("no-alert", "acknowledge"),
)


def slack_labels(
    renderer: Renderer,
    locale: str,
    *,
    status: str,
    alert: Mapping[str, Any],
    policy: Mapping[str, Any],
) -> dict[str, str]:
    """The words a Slack message is framed with, from the approved ``labels.j2``.

    Keys (what :mod:`notifier.slack_blocks` reads): ``severity`` (the heading: "Severity", or
    "Risk" for a policy change) and ``severity_value``, ``status`` and ``status_value``,
    ``acknowledge``, ``resolve``, ``runbook`` (button texts). A word the approved labels do
    not give is left out: the layout has the English one.
    """
    # A policy change has a risk where an alert has a severity (labels.j2 names both).
    scale = "severity" if alert else "risk"
    level = str(alert.get("severity") or policy.get("risk") or "")
    wanted = {
        "severity": ("slack", scale, ""),
        "severity_value": (scale, level, ""),
        "status": ("slack", "status", ""),
        "status_value": ("status", status, ""),
        **{word: ("slack", word, "") for word in ("acknowledge", "resolve", "runbook")},
    }
    return {key: word for key, word in renderer.labels(locale, wanted).items() if word}
