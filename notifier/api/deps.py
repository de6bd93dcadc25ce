"""What the HTTP handlers need, built once by the composition root and shared."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from notifier.clock import Clock
from notifier.directory import Directory
from notifier.inhibition import InhibitRule
from notifier.links import LinkSigner
from notifier.routing import RoutingConfig
from notifier.settings import Settings
from notifier.store import Database
from notifier.templating import Renderer

Publish = Callable[[Sequence[tuple[bytes, bytes]]], Awaitable[None]]
Ready = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class ApiContext:
    """The API's collaborators.

    ``publish`` produces (key, value) records to the events topic; ``signer`` checks
    acknowledgment links and ``receipts`` confirm-receipt links; ``on_change`` wakes the
    outbox and the scheduler after an action wrote notifications or timers. The console
    previews drafts with ``renderer``'s catalogs, lints them against ``routing``, and calls
    ``library_changed`` after an approval so the engine renders the new version at once.
    """

    settings: Settings
    db: Database
    directory: Directory
    clock: Clock
    signer: LinkSigner
    publish: Publish
    broker_problem: Ready
    receipts: LinkSigner | None = None
    on_change: Callable[[], None] = lambda: None
    inhibit_rules: tuple[InhibitRule, ...] = ()
    renderer: Renderer | None = None
    routing: RoutingConfig | None = None
    library_changed: Callable[[], None] = lambda: None
