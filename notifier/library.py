"""The template library on disk and in the engine: seeding, exporting, following approvals.

``templates/`` and ``locales/`` hold the seed versions (reviewed in git); the store holds
every version since, and which one is live. The engine renders only the live, approved set:
:class:`LibraryFollower` loads it at start and again whenever an approval changes it (at once
in the process that approved, within ``interval`` seconds in every other engine).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from sqlalchemy import text as sql

from notifier.clock import Clock
from notifier.i18n import DOMAIN, Catalogs
from notifier.store import Database
from notifier.store import library as store
from notifier.templating import SHARED, Renderer, unit_of

log = structlog.get_logger(__name__)

CATALOG_FILE = f"LC_MESSAGES/{DOMAIN}.po"
_SEED_LOCK = 0x6E6F746966696572  # "notifier": the advisory lock seeding holds


def template_units(directory: Path) -> dict[str, dict[str, str]]:
    """The template files under ``directory`` by unit: each folder, and ``shared`` for the
    top-level macro files; paths are relative (``alert/email.subject.j2``)."""
    found: dict[str, dict[str, str]] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.rglob("*.j2")):
        relative = path.relative_to(directory).as_posix()
        if relative.count("/") > 1:
            continue  # the renderer only reads one level of folders
        found.setdefault(unit_of(relative), {})[relative] = path.read_text(encoding="utf-8")
    return found


def catalog_units(locales_dir: Path) -> dict[str, dict[str, str]]:
    """Each locale's ``.po`` file under ``locales_dir``, by locale folder name."""
    found: dict[str, dict[str, str]] = {}
    if not locales_dir.is_dir():
        return found
    for folder in sorted(locales_dir.iterdir()):
        po = folder / CATALOG_FILE
        if po.is_file():
            found[folder.name] = {f"{folder.name}/{CATALOG_FILE}": po.read_text(encoding="utf-8")}
    return found


def seed(db: Database, templates_dir: Path, locales_dir: Path, clock: Clock) -> list[str]:
    """Bring the files on disk into the library (see :func:`notifier.store.library.seed`)."""
    now = clock.now()
    with db.transaction() as conn:
        if not db.is_sqlite:  # engines starting together seed in turn (SQLite serializes)
            conn.execute(sql("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEED_LOCK})
        done = store.seed(conn, "template", template_units(templates_dir), now)
        done += store.seed(conn, "catalog", catalog_units(locales_dir), now)
    return done


def export(db: Database, templates_dir: Path, locales_dir: Path) -> list[Path]:
    """Write the live (approved) set back to files, for review in git; return what changed.

    A template file of a live unit that its live version no longer has (a channel's own
    parts removed in the console) is deleted, so the folder holds exactly what is approved
    and seeds back as it (git shows the deletion for review). Files of units the library
    does not hold are left alone.
    """
    with db.engine.connect() as conn:
        live = store.live_set(conn)
    changed = []
    targets = [(templates_dir, path, text) for path, text in live.sources.items()]
    targets += [
        (locales_dir, f"{language}/{CATALOG_FILE}", text)
        for language, text in live.po_texts.items()
    ]
    for root, relative, text in sorted(targets):
        path = root / relative
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        changed.append(path)
    live_units = {unit_of(path) for path in live.sources}
    for unit, files in sorted(template_units(templates_dir).items()):
        if unit in live_units:
            for relative in sorted(set(files) - set(live.sources)):
                (templates_dir / relative).unlink()
                changed.append(templates_dir / relative)
    return changed


class LibraryFollower:
    """Keeps a renderer on the library's live set."""

    def __init__(
        self,
        db: Database,
        renderer: Renderer,
        *,
        default_locale: str,
        interval: float = 5.0,
    ) -> None:
        self._db = db
        self._renderer = renderer
        self._default_locale = default_locale
        self._interval = interval
        self._signature: tuple[tuple[str, str, int], ...] | None = None
        self._wake = asyncio.Event()

    def fetch(self) -> tuple[store.LiveSet, Catalogs] | None:
        """Read the live set and compile its catalogs if it changed since the last apply
        (blocking: run it in a thread); None when nothing changed or the library is empty."""
        with self._db.reading() as conn:
            if store.live_signature(conn) == self._signature:
                return None
            live = store.live_set(conn)
        if not any(unit_of(path) != SHARED for path in live.sources):
            return None  # an empty library (not seeded): keep rendering the files
        return live, Catalogs.from_po_texts(live.po_texts, self._default_locale)

    def apply(self, fetched: tuple[store.LiveSet, Catalogs]) -> None:
        """Make the renderer render what :meth:`fetch` read.

        Call it in the thread that renders (the event loop): a render never awaits, so none
        can see half of an old set and half of the new one, nor cache an old template in the
        new set.
        """
        live, catalogs = fetched
        self._renderer.replace(live.sources, catalogs, live.versions)
        self._signature = live.signature
        log.info("library.loaded", versions=live.versions)

    async def refresh(self) -> bool:
        """Fetch in a thread, apply here; True if the live set changed."""
        fetched = await asyncio.to_thread(self.fetch)
        if fetched is None:
            return False
        self.apply(fetched)
        return True

    def load(self) -> bool:
        """:meth:`fetch` and :meth:`apply` in one blocking call, for callers with no renders
        running (tests, tools); True if the live set changed."""
        fetched = self.fetch()
        if fetched is None:
            return False
        self.apply(fetched)
        return True

    def changed(self) -> None:
        """An approval happened in this process: reload now."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Reload when told, and check the store every ``interval`` seconds."""
        while not stop.is_set():
            stopping = asyncio.ensure_future(stop.wait())
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait(
                    [stopping, woken], timeout=self._interval, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stopping.cancel()
                woken.cancel()
            self._wake.clear()
            if stop.is_set():
                return
            try:
                await self.refresh()
            except Exception:
                # A broken catalog or a store hiccup must not stop delivery: the renderer
                # keeps the set it has, and the next check tries again.
                log.exception("library.reload_failed")
