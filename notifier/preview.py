"""Live preview of a template draft: a sample event, rendered for one channel and locale.

Pure logic for the template console (no web, no database). A :class:`Sample` is an event from
``config/samples``; :func:`sample_context` turns it into the render context a real recipient
would get (built by :func:`notifier.compose.event_context`, the engine's own code), with
plausible ``details`` and ``links`` for each status; :func:`preview` renders it and never
raises for a template problem: the :class:`Preview` carries the error instead, which names the
file and line.

Which statuses a template renders (:data:`STATUSES`) and which kind of event each status is
about (:data:`STATUS_KINDS`) follow the render context contract in :mod:`notifier.templating`.
Some statuses have *variants* (:data:`VARIANTS`): the branches a template has for them (an
acknowledgment with or without a note, a digest grouped, throttled or sent after quiet hours),
so the linter can render every branch.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

from notifier import slack_blocks
from notifier.alertmanager import alertmanager_events
from notifier.channels.webhook import encode_body
from notifier.compose import event_context, outgoing
from notifier.decoding import decode_record
from notifier.directory import ChannelKind
from notifier.errors import ConfigError, RejectedInput, TemplateError
from notifier.events import ALERT_TYPE, AlertData, PolicyData
from notifier.i18n import Catalogs
from notifier.routing import Clearance
from notifier.settings import TemplateSettings
from notifier.templating import Renderer, content_hash

__all__ = [
    "ALERT_STATUSES",
    "STATUSES",
    "STATUS_KINDS",
    "VARIANTS",
    "Preview",
    "Sample",
    "default_audience",
    "library_renderer",
    "load_samples",
    "preview",
    "preview_all",
    "sample_context",
    "samples_for",
    "statuses_of",
]

K = TypeVar("K")
V = TypeVar("V")

ALERT_STATUSES: tuple[str, ...] = ("firing", "escalated", "acknowledged", "resolved")

STATUSES: dict[str, tuple[str, ...]] = {
    "alert": ALERT_STATUSES,
    "reminder": ("ack-reminder", "ack-escalated", "update-due", "unreachable"),
    "status-update": ("status-update",),
    "receipt": ("receipt-reminder", "receipt-overdue"),
    "policy-change": ("notice",),
    "public-advisory": ("notice",),
    # A digest notification's kind is "digest:<id>": its status is "digest" (see
    # notifier.store.fatigue); details say why (reason) and list the held-back alerts.
    "digest": ("digest",),
}
"""The statuses each shipped template renders; a template not listed renders the alert ones
(see :func:`statuses_of`)."""

STATUS_KINDS: dict[str, tuple[str, ...]] = {
    "firing": ("alert",),
    "escalated": ("alert",),
    "acknowledged": ("alert",),
    "resolved": ("alert",),
    "ack-reminder": ("alert",),
    "ack-escalated": ("alert",),
    "update-due": ("alert",),
    "status-update": ("alert",),
    "digest": ("alert",),
    "unreachable": ("alert", "policy"),
    "notice": ("policy",),
    "receipt-reminder": ("policy",),
    "receipt-overdue": ("policy",),
}
"""The kinds of event (``alert``, ``policy``) a message of each status can be about."""

VARIANTS: dict[str, tuple[str, ...]] = {
    "escalated": ("step", "no-step"),
    "acknowledged": ("note", "no-note"),
    "resolved": ("by-hand", "by-monitoring"),
    "ack-reminder": ("reminders-left", "last-reminder"),
    "update-due": ("posted-before", "nothing-posted"),
    "status-update": ("update", "no-update", "unacknowledged"),
    "receipt-overdue": ("pending", "all-confirmed"),
    "unreachable": ("timeout", "unknown-reason"),
    "digest": ("grouped", "throttled", "quiet", "other"),
}
"""The variants of ``details`` each status has (the first is the default); a status not
listed has one."""

EXAMPLE_BASE_URL = "https://notifier.example"
RECIPIENT = "Ada Lovelace"
ACKNOWLEDGER = "Grace Hopper"
UNREACHABLE = "Alan Turing"
_FALLBACK_TIME = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)

# Where the engine sends each status (the pseudo-tiers of follow-ups are what it records), and
# whether that reader is cleared for confidential details (see notifier.store.timers, outbox).
_AUDIENCE: dict[str, tuple[str, bool]] = {
    "firing": ("responders", True),
    "escalated": ("escalation", True),
    "acknowledged": ("responders", True),
    "resolved": ("responders", True),
    "ack-reminder": ("commander", True),
    "ack-escalated": ("escalation", True),
    "update-due": ("commander", True),
    "status-update": ("stakeholders", False),
    "unreachable": ("commander", False),
    "notice": ("partners", True),
    "receipt-reminder": ("partners", False),
    "receipt-overdue": ("liaison", False),
    "digest": ("responders", False),
}


@dataclass(frozen=True, slots=True)
class Sample:
    """A named sample event: ``event`` is a CloudEvent JSON object (``notifier.alert.v1`` or
    ``notifier.policy.changed.v1``)."""

    name: str
    event: Mapping[str, Any]

    @property
    def kind(self) -> str:
        """``alert`` or ``policy``."""
        return "alert" if self.event.get("type") == ALERT_TYPE else "policy"


@dataclass(frozen=True, slots=True)
class Preview:
    """One rendering of a draft: the text a reader of ``locale`` would get, or the error.

    ``language`` is the catalog used (``de`` for ``de_CH``; the default language when the
    locale has none). ``error`` is the TemplateError's message (template, part, locale, file
    and line), with ``subject`` and ``text`` empty and ``html`` None. ``blocks`` is the Slack
    Block Kit layout the reader would get (Slack previews only; its words in their language);
    ``body`` the JSON document a webhook receiver would get, indented (webhook previews only).
    """

    locale: str
    language: str
    status: str
    subject: str
    text: str
    html: str | None
    error: str | None
    elapsed_ms: float
    blocks: list[dict[str, Any]] | None = None
    body: str | None = None


def load_samples(directory: Path) -> list[Sample]:
    """Read the sample events (``*.json``, by file name) in ``directory``.

    CloudEvents are kept as written (after validation). An Alertmanager webhook payload is
    converted by the engine's own converter (:func:`notifier.alertmanager.alertmanager_events`)
    and its *first* alert's CloudEvent becomes the sample; the other alerts are not used.
    Raises ConfigError naming a file that is not a valid event.
    """
    samples = []
    for path in sorted(directory.glob("*.json")):
        raw = path.read_bytes()
        try:
            body = orjson.loads(raw)
            if isinstance(body, dict) and "alerts" in body and "specversion" not in body:
                events = alertmanager_events(body)
                if not events:
                    raise ConfigError(f"{path}: the Alertmanager payload has no alerts")
                event = events[0].to_cloudevent()
            else:
                decode_record(raw)  # validates; the sample keeps the event as written
                event = body
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not JSON: {exc}") from None
        except RejectedInput as exc:
            raise ConfigError(f"{path}: not a valid sample event: {exc}") from None
        samples.append(Sample(path.stem, event))
    return samples


def statuses_of(template: str) -> tuple[str, ...]:
    """The statuses ``template`` renders: :data:`STATUSES`, else the alert statuses."""
    return STATUSES.get(template, ALERT_STATUSES)


def samples_for(samples: Sequence[Sample], status: str) -> list[Sample]:
    """The samples a message of ``status`` can be about (by kind)."""
    kinds = STATUS_KINDS.get(status, ("alert", "policy"))
    return [s for s in samples if s.kind in kinds]


def default_audience(template: str, status: str) -> tuple[str, bool]:
    """The tier a message of ``status`` goes to and whether its reader is cleared for
    confidential details, as the engine sends it (a public advisory: the public tier)."""
    if template == "public-advisory":
        return "public", False
    return _AUDIENCE.get(status, ("responders", True))


def sample_context(
    sample: Sample,
    *,
    template: str,
    status: str,
    locale: str,
    timezone: str,
    tier: str,
    confidential: bool,
    variant: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The render context a recipient would get about ``sample`` (the templating contract).

    Built by :func:`notifier.compose.event_context`, the code the engine uses, with plausible
    ``details`` for ``status`` (``variant``: one of :data:`VARIANTS`; ``details`` replaces them
    entirely), the step (2 for ``escalated``, 1 for updates), and example links
    (``https://notifier.example/...``) where the engine offers them. ``confidential``: the
    reader is cleared (their ``confidential`` is the event's section, if it has one).
    Raises ValueError for a status outside the contract or an unknown variant.
    """
    if status not in STATUS_KINDS:
        raise ValueError(f"unknown status {status!r}: expected one of {', '.join(STATUS_KINDS)}")
    if variant is not None and variant not in VARIANTS.get(status, ()):
        known = ", ".join(VARIANTS.get(status, ())) or "none"
        raise ValueError(f"unknown variant {variant!r} of status {status!r} (known: {known})")
    chosen = variant if variant is not None else _default_variant(sample, status)
    found = _example_details(sample, status, chosen) if details is None else dict(details)
    step = None
    if status == "escalated" and chosen != "no-step":
        step = 2
    elif status in ("update-due", "status-update"):
        step = 1
    return event_context(
        sample.event,
        status=status,
        step=step,
        details=found,
        tier=tier,
        clearance=(Clearance.CONFIDENTIAL if confidential else Clearance.RESTRICTED).value,
        recipient={"name": RECIPIENT, "locale": locale, "timezone": timezone},
        alert_id=_alert_id(sample),
        fingerprint=_fingerprint(sample),
        links=_links(template, status),
    )


def preview(
    renderer: Renderer,
    *,
    template: str,
    channel: str,
    locale: str,
    sample: Sample,
    status: str | None = None,
    timezone: str = "UTC",
    variant: str | None = None,
    tier: str | None = None,
    confidential: bool | None = None,
) -> Preview:
    """Render ``template`` for ``channel`` in ``locale`` about ``sample``.

    ``status`` defaults to the template's first (:func:`statuses_of`); ``tier`` and
    ``confidential`` to where the engine sends that status (:func:`default_audience`).
    Never raises for a template problem (nor for a sample of the wrong kind, an unknown status,
    locale or timezone): the Preview's ``error`` says what is wrong.
    """
    start = time.perf_counter()
    chosen = status or statuses_of(template)[0]
    default_tier, default_cleared = default_audience(template, chosen)
    language = _language(renderer.catalogs, locale)
    try:
        if chosen in STATUS_KINDS and sample.kind not in STATUS_KINDS[chosen]:
            raise TemplateError(
                f"sample {sample.name!r} is about a {sample.kind}; a {chosen!r} message is "
                f"about {' or '.join('a ' + k for k in STATUS_KINDS[chosen])}"
            )
        context = sample_context(
            sample,
            template=template,
            status=chosen,
            locale=locale,
            timezone=timezone,
            tier=tier if tier is not None else default_tier,
            confidential=confidential if confidential is not None else default_cleared,
            variant=variant,
        )
        rendered = renderer.render(
            template, channel, locale=locale, timezone=timezone, context=context
        )
        layout = body = None
        if channel in (ChannelKind.SLACK, ChannelKind.WEBHOOK):
            message = outgoing(
                renderer,
                rendered,
                context,
                channel=channel,
                locale=locale,
                notification_id="preview",
                recipient_name=RECIPIENT,
                address="",
                alert_id=_alert_id(sample),
                occurrence=1,
            )
            if channel == ChannelKind.SLACK:
                layout = slack_blocks.blocks(message)
            else:
                document = orjson.loads(encode_body(message, _times(sample)))
                body = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
    except (TemplateError, ConfigError, ValueError) as exc:
        elapsed = (time.perf_counter() - start) * 1000
        return Preview(locale, language, chosen, "", "", None, str(exc), elapsed)
    elapsed = (time.perf_counter() - start) * 1000
    return Preview(
        locale,
        rendered.language,
        chosen,
        rendered.subject,
        rendered.text,
        rendered.html,
        None,
        elapsed,
        layout,
        body,
    )


def preview_all(
    renderer: Renderer,
    *,
    template: str,
    channel: str,
    locales: Sequence[str],
    sample: Sample,
    status: str | None = None,
    timezone: str = "UTC",
    variant: str | None = None,
    tier: str | None = None,
    confidential: bool | None = None,
) -> list[Preview]:
    """One :func:`preview` per locale, in the order given (to show them side by side)."""
    return [
        preview(
            renderer,
            template=template,
            channel=channel,
            locale=locale,
            sample=sample,
            status=status,
            timezone=timezone,
            variant=variant,
            tier=tier,
            confidential=confidential,
        )
        for locale in locales
    ]


# ---------------------------------------------------------------------------------------------
# A renderer per draft library set, compiled once


class _Lru(Generic[K, V]):
    """A small least-recently-used cache, safe to share between threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value for ``key``, made (outside the lock) and kept when missing."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


_RENDERERS: _Lru[tuple[str, str, str, str], Renderer] = _Lru(8)
_CATALOGS: _Lru[tuple[str, str], Catalogs] = _Lru(4)


def library_renderer(
    settings: TemplateSettings,
    sources: Mapping[str, str],
    po_texts: Mapping[str, str],
    default_locale: str = "en",
) -> Renderer:
    """A Renderer of exactly ``sources`` with catalogs compiled from ``po_texts``.

    Kept in a small LRU cache keyed by the content hashes, so the previews and the lint of
    one draft (every locale, every status) compile its templates and catalogs once. Raises
    ConfigError for a catalog that does not compile.
    """
    catalogs_key = (_texts_hash(po_texts), default_locale)

    def make() -> Renderer:
        catalogs = _CATALOGS.get(
            catalogs_key, lambda: Catalogs.from_po_texts(po_texts, default_locale)
        )
        return Renderer(settings, catalogs, sources=sources)

    key = (settings.model_dump_json(), content_hash(sources), *catalogs_key)
    return _RENDERERS.get(key, make)


def _texts_hash(texts: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(texts):
        data = texts[name].encode()
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Example details and links


def _language(catalogs: Catalogs, locale: str) -> str:
    try:
        return catalogs.resolve(locale)[1]
    except ConfigError:
        return ""


def _default_variant(sample: Sample, status: str) -> str | None:
    if status == "resolved":
        # An event that says when it ended was resolved by the monitoring system.
        ended = (sample.event.get("data") or {}).get("ends_at")
        return "by-monitoring" if ended else "by-hand"
    options = VARIANTS.get(status)
    return options[0] if options else None


def _times(sample: Sample) -> datetime:
    """When the sample's incident started (or its notice was sent)."""
    data = sample.event.get("data") or {}
    for raw in (data.get("starts_at"), sample.event.get("time")):
        if isinstance(raw, str) and raw:
            try:
                parsed = datetime.fromisoformat(raw)
            except ValueError:
                continue
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return _FALLBACK_TIME


def _example_details(sample: Sample, status: str, variant: str | None) -> dict[str, Any]:
    """Plausible ``details`` for ``status`` (the contract in notifier.templating)."""
    start = _times(sample)
    acknowledged_at = start + timedelta(minutes=7)
    note = "Restarting the affected validators one by one; finality is recovering."
    if status == "acknowledged":
        return {
            "by": ACKNOWLEDGER,
            "at": acknowledged_at,
            "note": note if variant == "note" else None,
        }
    if status == "resolved":
        if variant == "by-monitoring":
            return {}
        return {"by": ACKNOWLEDGER, "at": start + timedelta(minutes=52), "note": note}
    if status == "ack-reminder":
        return {
            "acknowledged_at": acknowledged_at,
            "open_for": timedelta(hours=1, minutes=12),
            "reminders_left": 0 if variant == "last-reminder" else 1,
        }
    if status == "ack-escalated":
        return {
            "by": ACKNOWLEDGER,
            "acknowledged_at": acknowledged_at,
            "open_for": timedelta(hours=1, minutes=42),
        }
    if status == "update-due":
        return {
            "state": "acknowledged",
            "by": ACKNOWLEDGER,
            "open_for": timedelta(hours=1, minutes=5),
            "every": timedelta(hours=1),
            "last_update_at": start + timedelta(minutes=20) if variant == "posted-before" else None,
        }
    if status == "status-update":
        acknowledged = variant != "unacknowledged"
        posted = variant == "update"
        return {
            "state": "acknowledged" if acknowledged else "firing",
            "by": ACKNOWLEDGER if acknowledged else None,
            "open_for": timedelta(hours=1, minutes=5),
            "update": (
                "The faulty client release is rolled back on 80% of our validators; "
                "finality is expected to recover within 30 minutes."
                if posted
                else None
            ),
            "update_by": ACKNOWLEDGER if posted else None,
            "update_at": start + timedelta(minutes=58) if posted else None,
        }
    if status == "receipt-reminder":
        return {"deadline": start + timedelta(hours=24)}
    if status == "receipt-overdue":
        pending = [
            {"name": "Katherine Johnson", "organization": "Northwind Staking", "tier": "partners"},
            {"name": "Dorothy Vaughan", "organization": None, "tier": "regulators"},
        ]
        return {
            "deadline": start + timedelta(hours=24),
            "pending": pending if variant != "all-confirmed" else [],
        }
    if status == "unreachable":
        if variant == "unknown-reason":
            return {"person": UNREACHABLE, "channel": "pager", "reason": "mailbox-full"}
        return {"person": UNREACHABLE, "channel": "email", "reason": "timeout"}
    if status == "digest":
        return _digest_details(sample, variant or "grouped", start)
    return {}


def _digest_details(sample: Sample, reason: str, start: datetime) -> dict[str, Any]:
    """A digest's details as notifier.store.fatigue writes them: three alerts listed of five,
    the first being the sample."""
    data = sample.event.get("data") or {}
    labels = dict(data.get("labels") or {})
    name = str(data.get("alertname", ""))
    summary = str((data.get("annotations") or {}).get("summary", ""))
    network = labels.get("network", "mainnet")
    items = [
        {
            "alert_id": _alert_id(sample),
            "name": name,
            "severity": str(data.get("severity", "warning")),
            "status": "firing",
            "summary": summary,
            "labels": labels,
        },
        {
            "alert_id": "5c0ffee5c0ffee5c0ffee5c0ffee5c0f",
            "name": name,
            "severity": "warning",
            "status": "resolved",
            "summary": f"{name} on {network} (second instance)",
            "labels": {"network": network, "instance": "node-7"},
        },
        {
            "alert_id": "0ddba110ddba110ddba110ddba110ddb",
            "name": name,
            "severity": "info",
            "status": "firing",
            "summary": f"{name} on {network} (third instance)",
            "labels": {"network": network, "instance": "node-9"},
        },
    ]
    return {
        "reason": reason,
        "group": {"network": network, "alertname": name} if reason == "grouped" else None,
        "due_at": start + timedelta(minutes=5),
        "count": 5,
        "items": items,
    }


def _links(template: str, status: str) -> dict[str, str]:
    """The links the engine makes for such a message (see ``links_for`` in notifier.app)."""
    token = "EXAMPLE-TOKEN"  # noqa: S105 - a placeholder shown in previews, not a secret
    # Readers who may use the console (responders, commanders) also get the alert's page.
    page = {"incident": f"{EXAMPLE_BASE_URL}/console/incidents/EXAMPLE"}
    if status in ("firing", "escalated"):
        return {"acknowledge": f"{EXAMPLE_BASE_URL}/ack/{token}", **page}
    if (status == "notice" and template != "public-advisory") or status == "receipt-reminder":
        return {"confirm": f"{EXAMPLE_BASE_URL}/receipt/{token}"}
    return page if template in ("alert", "reminder") else {}


def _alert_id(sample: Sample) -> str:
    """A stable example alert id (the engine's are random uuid4 hex)."""
    return hashlib.blake2b(sample.name.encode(), digest_size=16).hexdigest()


def _fingerprint(sample: Sample) -> str:
    data = sample.event.get("data")
    try:
        model: AlertData | PolicyData = (
            AlertData.model_validate(data)
            if sample.kind == "alert"
            else PolicyData.model_validate(data)
        )
    except ValueError:
        return ""
    return model.derived_fingerprint()
