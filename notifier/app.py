"""The composition root: builds every component from the settings and runs their lifecycle.

This is the only module that imports everything. Start is idempotent; stop is graceful and
bounded: the batch in progress commits, sends in flight finish, connections close.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from notifier.api.app import create_app
from notifier.api.console.web import PREFIX as CONSOLE_PREFIX
from notifier.api.deps import ApiContext
from notifier.api.server import HttpServer
from notifier.broker import Publisher, broker_problem, ensure_topics
from notifier.channels.base import Channel
from notifier.channels.email import EmailChannel
from notifier.channels.slack import SlackChannel
from notifier.channels.webhook import WebhookChannel
from notifier.clock import Clock, SystemClock
from notifier.directory import Capability, ChannelKind, Directory
from notifier.errors import ConfigError
from notifier.holdkeeper import HoldKeeper
from notifier.i18n import Catalogs
from notifier.ingest import Ingestor
from notifier.intents import split_kind
from notifier.library import LibraryFollower
from notifier.library import seed as seed_library
from notifier.lifecycle import Verb
from notifier.links import LinkSigner
from notifier.outbox import Dispatcher
from notifier.pipeline import BatchOutcome, BatchProcessor
from notifier.routing import Router, RoutingConfig
from notifier.scheduler import Scheduler
from notifier.settings import DEV_LINK_SECRET, Settings
from notifier.store import Database
from notifier.store.outbox import PendingNotification
from notifier.templating import Renderer

log = structlog.get_logger(__name__)

_M_ARENA_MAX = -8  # glibc <malloc.h>


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Let glibc's malloc use at most ``arenas`` arenas, as ``MALLOC_ARENA_MAX`` would.

    The store runs in the event loop's default executor (up to CPU count + 4 threads), and
    glibc gives every thread its own arena. Each arena keeps the memory its thread's batches
    freed (claimed rows, decoded payloads; about 2.5 MB apiece) and never returns it, which
    reads as a slow leak: +10 MB of RssAnon in the dead-endpoint bench. With two arenas that
    slack is shared. Must run before those threads first allocate; an explicit
    ``MALLOC_ARENA_MAX`` wins; a no-op off glibc.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return
    if libc.startswith("glibc"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).mallopt(_M_ARENA_MAX, arenas)


def tune_collector() -> None:
    """Tune the cyclic garbage collector for a long-running engine, once everything is built.

    Everything built so far lives as long as the process: keep it out of the collector's
    scans, and collect young objects less often (a batch, or a page of 10,000 incidents,
    allocates tens of thousands of short-lived ones).
    """
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


@dataclass(frozen=True)
class Configuration:
    """Settings plus the files they name, all validated and cross-checked."""

    settings: Settings
    directory: Directory
    router: Router
    catalogs: Catalogs
    renderer: Renderer


def load_configuration(settings: Settings) -> Configuration:
    """Load the directory, routing and templates, and check they fit together."""
    directory = Directory.load(
        settings.resolve(settings.directory_file), enabled_channels(settings)
    )
    _check_webhook_contacts(settings, directory)
    routing = RoutingConfig.load(settings.resolve(settings.routing_file))
    router = Router(routing, directory)
    catalogs = Catalogs.load(
        settings.templates.locales_directory, settings.templates.default_locale
    )
    renderer = Renderer(settings.templates, catalogs)
    available = set(renderer.templates())
    for rule in routing.rules:
        if rule.template not in available:
            raise ConfigError(
                f"{settings.resolve(settings.routing_file)}: "
                f"routing rule {rule.name!r} names template {rule.template!r}, which is not in "
                f"{settings.templates.directory}/ (available: {', '.join(sorted(available))})"
            )
    missing = router.templates() - available
    if missing:
        raise ConfigError(
            f"{settings.resolve(settings.routing_file)}: the escalation policies, receipt "
            f"tiers and digests (fatigue) need the templates {', '.join(sorted(missing))}, "
            f"which are not in {settings.templates.directory}/"
        )
    return Configuration(settings, directory, router, catalogs, renderer)


def enabled_channels(settings: Settings) -> list[ChannelKind]:
    """The channels this configuration can deliver to: email always; Slack when enabled;
    webhooks when endpoints are configured."""
    channels = [ChannelKind.EMAIL]
    if settings.slack.enabled:
        channels.append(ChannelKind.SLACK)
    if settings.webhooks.endpoints:
        channels.append(ChannelKind.WEBHOOK)
    return channels


def _check_webhook_contacts(settings: Settings, directory: Directory) -> None:
    endpoints = settings.webhooks.endpoints
    for person in directory:
        for contact in person.contacts:
            if contact.channel is ChannelKind.WEBHOOK and contact.address not in endpoints:
                raise ConfigError(
                    f"{settings.resolve(settings.directory_file)}: {person.id} has a webhook "
                    f"contact {contact.address!r}, which is not under webhooks.endpoints "
                    f"(configured: {', '.join(sorted(endpoints)) or 'none'})"
                )


def build_channels(settings: Settings, clock: Clock) -> dict[str, Channel]:
    """One channel object per enabled channel."""
    channels: dict[str, Channel] = {
        "email": EmailChannel(settings.smtp, concurrency=settings.delivery.concurrency, clock=clock)
    }
    if settings.slack.enabled:
        channels["slack"] = SlackChannel(settings.slack, clock=clock)
    if settings.webhooks.endpoints:
        channels["webhook"] = WebhookChannel(settings.webhooks, clock=clock)
    return channels


class Engine:
    """Ingest and delivery, wired together, in one process."""

    def __init__(
        self,
        config: Configuration,
        *,
        clock: Clock | None = None,
        channels: Mapping[str, Channel] | None = None,
    ) -> None:
        s = config.settings
        self.config = config
        self.clock = clock or SystemClock()
        self.db = Database(s.store.url)
        self.channels: Mapping[str, Channel] = channels or build_channels(s, self.clock)
        self.signer = LinkSigner(s.links.secrets, s.links.ttl_seconds, self.clock)
        self.receipt_signer = LinkSigner(
            s.links.secrets,
            s.links.receipt_ttl_seconds,
            self.clock,
            salt="notifier.receipt",
            path="receipt",
            what="confirm-receipt link",
        )
        self.dispatcher = Dispatcher(
            self.db,
            config.renderer,
            self.channels,
            s.delivery,
            self.clock,
            links=self.links_for,
            directory=config.directory,
            limits={
                "email": s.delivery.concurrency,
                "slack": s.slack.concurrency,
                "webhook": s.webhooks.concurrency,
            },
        )
        processor = BatchProcessor(
            self.db,
            config.router,
            self.clock,
            group=s.kafka.group_id,
            topic=s.kafka.topic,
            max_event_bytes=s.kafka.max_event_bytes,
        )
        self.scheduler = Scheduler(
            self.db, config.directory, s.delivery, self.clock, self.dispatcher.wake
        )
        self.holdkeeper = HoldKeeper(
            self.db,
            config.router.config.inhibit_rules,
            self.clock,
            flapping=config.router.config.flapping,
            fatigue=config.router.config.fatigue,
            directory=config.directory,
            on_change=lambda _: self._wake_workers(),
            max_sleep=s.delivery.poll_interval_seconds * 30,
        )
        self.library = LibraryFollower(
            self.db,
            config.renderer,
            default_locale=s.templates.default_locale,
            interval=s.console.library_poll_seconds,
        )
        self.ingestor = Ingestor(s.kafka, processor, self.db, self.clock, self._after_batch)
        self.publisher = Publisher(s.kafka.bootstrap_servers, s.kafka.topic)
        self.http: HttpServer | None = None
        self._started = False

    def api_context(self) -> ApiContext:
        """What the HTTP handlers share."""
        s = self.config.settings
        return ApiContext(
            settings=s,
            db=self.db,
            directory=self.config.directory,
            clock=self.clock,
            signer=self.signer,
            publish=self.publisher.publish,
            broker_problem=lambda: broker_problem(s.kafka.bootstrap_servers),
            receipts=self.receipt_signer,
            on_change=self._wake,
            inhibit_rules=self.config.router.config.inhibit_rules,
            renderer=self.config.renderer,
            routing=self.config.router.config,
            library_changed=self.library.changed,
        )

    def _wake(self) -> None:
        self._wake_workers()
        self.holdkeeper.wake()

    def _wake_workers(self) -> None:
        self.dispatcher.wake()
        self.scheduler.wake()

    def links_for(self, n: PendingNotification) -> dict[str, str]:
        """The signed links a notification offers its reader.

        Pages (``firing``, ``escalated-N``) to people allowed to acknowledge get an
        acknowledgment link; policy notices to tiers that must confirm receipt, and the
        reminders about them, get a confirm-receipt link; people who may use the console get
        the alert's page there (``incident``: a plain address, the console asks them to sign
        in; not for digests, which list several alerts), so nobody outside the team learns
        where the console is.
        """
        s = self.config.settings
        base = s.http.public_url
        status, _ = split_kind(n.kind)
        links = {}
        # A digest is about several alerts: the first one's page would mislead.
        console = s.console.enabled and status != "digest"
        if console and self.config.directory.may(n.person_id, Capability.VIEW):
            links["incident"] = f"{base.rstrip('/')}{CONSOLE_PREFIX}/incidents/{n.alert_id}"
        if status in ("firing", "escalated") and self.config.directory.may(
            n.person_id, Verb.ACKNOWLEDGE
        ):
            token = self.signer.sign(n.alert_id, n.occurrence, n.person_id)
            links["acknowledge"] = self.signer.url(base, token)
        tier = self.config.router.config.tiers.get(n.tier)
        asks_receipt = status == "notice" and tier is not None and tier.confirm_receipt
        if asks_receipt or status == "receipt-reminder":
            token = self.receipt_signer.sign(n.alert_id, n.occurrence, n.person_id)
            links["confirm"] = self.receipt_signer.url(base, token)
        return links

    def _after_batch(self, outcome: BatchOutcome) -> None:
        if outcome.notifications:
            self.dispatcher.wake()
        if outcome.timers:
            self.scheduler.wake()

    async def start(self, *, ingest: bool = True, api: bool = False) -> None:
        """Migrate the store, create missing topics, join the consumer group, serve HTTP.

        Idempotent.
        """
        if self._started:
            return
        limit_malloc_arenas()
        await asyncio.to_thread(self.db.migrate)
        s = self.config.settings
        await self._load_library()
        if any(secret.get_secret_value() == DEV_LINK_SECRET for secret in s.links.secrets):
            log.warning(
                "links.development_secret",
                advice="set NOTIFIER_LINKS__SECRETS before sending real pages",
            )
        if api:
            h = self.config.settings.http
            self.http = HttpServer(create_app(self.api_context()), h.host, h.port)
            await self.http.start()
            log.info("http.started", host=h.host, port=self.http.port)
        if ingest:
            k = self.config.settings.kafka
            await ensure_topics(k.bootstrap_servers, [k.topic, k.dlq_topic], k.partitions)
            await self.ingestor.start()
        self._started = True
        tune_collector()
        log.info("engine.started", store=self.db.dialect, ingest=ingest)

    async def _load_library(self) -> None:
        """Seed the template library from the files, then render only its approved set."""
        t = self.config.settings.templates
        for line in await asyncio.to_thread(
            seed_library, self.db, t.directory, t.locales_directory, self.clock
        ):
            log.info("library.seeded", change=line)
        await self.library.refresh()

    async def run(
        self, stop: asyncio.Event, *, ingest: bool = True, deliver: bool = True, api: bool = False
    ) -> None:
        """Run until ``stop`` is set, then shut down gracefully."""
        await self.start(ingest=ingest, api=api)
        # The stop task keeps the wait below meaningful when only the API runs.
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait(), name="stop")]
        if ingest:
            tasks.append(asyncio.create_task(self.ingestor.run(stop), name="ingest"))
        if deliver:
            tasks.append(asyncio.create_task(self.dispatcher.run(stop), name="deliver"))
            tasks.append(asyncio.create_task(self.scheduler.run(stop), name="timers"))
            tasks.append(asyncio.create_task(self.holdkeeper.run(stop), name="holds"))
            tasks.append(asyncio.create_task(self.library.run(stop), name="library"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    stop.set()
                    raise task.exception()  # type: ignore[misc]
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.close()

    async def close(self) -> None:
        """Close connections to the broker, the channels and the store."""
        if self.http is not None:
            await self.http.stop()
            self.http = None
        await self.publisher.stop()
        await self.ingestor.stop()
        for channel in self.channels.values():
            await channel.close()
        self.db.dispose()
        self._started = False
        log.info("engine.stopped")
