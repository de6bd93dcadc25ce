"""The template library: seeding from files, drafts, four-eyes approval, rollback, export, and
the engine following the approved set (on SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, text

from notifier import library
from notifier.i18n import Catalogs
from notifier.settings import TemplateSettings
from notifier.store import Database, audit
from notifier.store import library as store
from notifier.store.schema import library_versions
from notifier.store.sessions import is_revoked, revoke, revoke_everywhere
from notifier.templating import Renderer
from notifier.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
LOCALES = ROOT / "locales"
T0 = datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
TEMPLATE_UNITS = {p.name for p in TEMPLATES.iterdir() if p.is_dir()} | {"shared"}
LANGUAGES = {p.name for p in LOCALES.iterdir() if (p / library.CATALOG_FILE).is_file()}
TEXT = "alert/email.text.j2"
SUBJECT = "alert/email.subject.j2"

EDITOR = "erika.editor"
APPROVER = "anna.approver"
SECOND_APPROVER = "bruno.approver"


@pytest.fixture
def clock() -> FakeClock:
    """The library's clock."""
    return FakeClock(T0)


@pytest.fixture
def seeded(db: Database, clock: FakeClock) -> Database:
    """A store holding the shipped templates and catalogs as version 1."""
    library.seed(db, TEMPLATES, LOCALES, clock)
    return db


def _live(db: Database, name: str, kind: store.Kind = "template") -> store.Version:
    with db.engine.connect() as conn:
        return next(v for v in store.versions(conn, kind, name) if v.live)


def _history(db: Database, name: str, kind: store.Kind = "template") -> list[store.Version]:
    with db.engine.connect() as conn:
        return store.versions(conn, kind, name)


def _edit(
    db: Database,
    clock: FakeClock,
    base: store.Version,
    *,
    author: str = EDITOR,
    marker: str = "Edited",
) -> store.Version:
    """Save ``base`` with a line added to the alert's text part, as ``author``."""
    files = dict(base.files)
    files[TEXT] = files[TEXT] + f"\n{marker}\n"
    clock.advance(60)
    with db.transaction() as conn:
        return store.save_draft(
            conn, "template", base.name, files, author=author, now=clock.now(), draft_id=base.id
        )


def _approve(
    db: Database,
    clock: FakeClock,
    target: store.Version,
    *,
    approver: str = APPROVER,
    reviewed_hash: str | None = None,
) -> store.Version:
    clock.advance(60)
    with db.transaction() as conn:
        return store.approve(
            conn,
            target.id,
            approver=approver,
            reviewed_hash=reviewed_hash or target.content_hash,
            now=clock.now(),
        )


def _audit(db: Database, action: str) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        return audit.entries(conn, action=action, limit=None)


def _version_count(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(library_versions)) or 0)


# ---------------------------------------------------------------------------------------------
# Seeding


def test_seed_makes_version_1_live_for_every_unit(db: Database, clock: FakeClock) -> None:
    """Every template folder, the shared macros and each locale's catalog become v1, approved
    and live; seeding again changes nothing."""
    done = library.seed(db, TEMPLATES, LOCALES, clock)
    assert len(done) == len(TEMPLATE_UNITS) + len(LANGUAGES)
    with db.engine.connect() as conn:
        templates = store.units(conn, "template")
        catalogs = store.units(conn, "catalog")
        live = store.live_set(conn)
    assert {u.name for u in templates} == TEMPLATE_UNITS
    assert {u.name for u in catalogs} == LANGUAGES
    for unit in templates + catalogs:
        assert unit.live is not None, unit.name
        assert (unit.live.number, unit.live.state, unit.live.author) == (1, "approved", "files")
        assert unit.drafts == 0
    shared = next(u for u in templates if u.name == "shared")
    assert shared.live is not None
    assert shared.live.files == {"labels.j2": (TEMPLATES / "labels.j2").read_text()}
    de = next(u for u in catalogs if u.name == "de")
    assert de.live is not None
    assert de.live.files == {
        f"de/{library.CATALOG_FILE}": (LOCALES / "de" / library.CATALOG_FILE).read_text()
    }
    assert live.versions == dict.fromkeys(TEMPLATE_UNITS, 1)
    assert live.sources[TEXT] == (TEMPLATES / TEXT).read_text()
    assert set(live.po_texts) == LANGUAGES
    assert len(_audit(db, "template.seed")) == len(TEMPLATE_UNITS)
    assert len(_audit(db, "catalog.seed")) == len(LANGUAGES)

    count, signature = _version_count(db), live.signature
    clock.advance(3600)
    assert library.seed(db, TEMPLATES, LOCALES, clock) == []
    assert _version_count(db) == count
    with db.engine.connect() as conn:
        assert store.live_signature(conn) == signature


def test_a_file_changed_on_disk_becomes_a_draft_by_files(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    """Seeding a changed file makes a draft that waits for approval; the live version stays."""
    templates, locales = tmp_path / "templates", tmp_path / "locales"
    shutil.copytree(TEMPLATES, templates)
    shutil.copytree(LOCALES, locales)
    library.seed(db, templates, locales, clock)
    (templates / TEXT).write_text((TEMPLATES / TEXT).read_text() + "\nChanged on disk\n")
    clock.advance(60)

    done = library.seed(db, templates, locales, clock)

    assert len(done) == 1 and "alert" in done[0] and "draft v2" in done[0]
    draft, first = _history(db, "alert")
    assert (draft.number, draft.state, draft.author, draft.live) == (2, "draft", "files", False)
    assert draft.files[TEXT].endswith("Changed on disk\n")
    assert first.live and first.number == 1
    with db.engine.connect() as conn:
        assert store.live_set(conn).sources[TEXT] == (TEMPLATES / TEXT).read_text()
    [edit] = _audit(db, "template.edit")
    assert (edit["actor"], edit["subject"]) == ("files", "alert")
    # The same change seeded again is known already.
    assert library.seed(db, templates, locales, clock) == []
    assert len(_history(db, "alert")) == 2


def test_engines_starting_together_seed_once(db: Database, clock: FakeClock) -> None:
    """Two engines seeding an empty library at the same moment: one seeds, the other finds
    the library seeded (on PostgreSQL the second used to fail on a duplicate version)."""
    start = threading.Barrier(2)
    outcome: dict[int, object] = {}

    def engine(i: int) -> None:
        start.wait(timeout=10)
        try:
            outcome[i] = library.seed(db, TEMPLATES, LOCALES, clock)
        except Exception as exc:  # the failure is the test's finding
            outcome[i] = exc

    engines = [threading.Thread(target=engine, args=(i,)) for i in range(2)]
    for thread in engines:
        thread.start()
    for thread in engines:
        thread.join(timeout=60)
    failures = [o for o in outcome.values() if isinstance(o, Exception)]
    assert failures == []
    assert sorted(len(o) for o in outcome.values() if isinstance(o, list)) == [
        0,
        len(TEMPLATE_UNITS) + len(LANGUAGES),
    ]
    assert _version_count(db) == len(TEMPLATE_UNITS) + len(LANGUAGES)


# ---------------------------------------------------------------------------------------------
# Drafts and four-eyes approval


def test_four_eyes_and_the_reviewed_hash(seeded: Database, clock: FakeClock) -> None:
    """The author cannot approve; an approval of content edited since it was reviewed is
    refused; another approver's approval of the reviewed content makes it live."""
    db = seeded
    v1 = _live(db, "alert")
    draft = _edit(db, clock, v1)
    assert (draft.number, draft.state, draft.based_on, draft.author) == (2, "draft", 1, EDITOR)

    with pytest.raises(store.ApprovalRefused, match="four-eyes"):
        _approve(db, clock, draft, approver=EDITOR)

    reviewed = draft.content_hash  # what the approver saw
    edited = _edit(db, clock, draft, marker="Edited again")  # the author's own draft: in place
    assert (edited.id, edited.number) == (draft.id, 2)
    assert edited.content_hash != reviewed
    with pytest.raises(store.ApprovalRefused, match="changed since you reviewed"):
        _approve(db, clock, edited, reviewed_hash=reviewed)
    assert _live(db, "alert").id == v1.id

    approved = _approve(db, clock, edited)
    assert (approved.state, approved.live, approved.approved_by) == ("approved", True, APPROVER)
    assert _live(db, "alert").id == draft.id
    with db.engine.connect() as conn:
        assert store.live_set(conn).versions["alert"] == 2
        assert store.live_set(conn).sources[TEXT].endswith("Edited again\n")
    edits = [e for e in _audit(db, "template.edit") if e["actor"] == EDITOR]
    assert [e["details"]["version"] for e in edits] == [2, 2]
    [approval] = _audit(db, "template.approve")
    assert (approval["actor"], approval["subject"]) == (APPROVER, "alert")
    assert approval["details"]["version"] == 2
    assert approval["details"]["author"] == EDITOR
    assert approval["details"]["hash"] == edited.content_hash


def test_saving_identical_content_is_a_no_op(seeded: Database, clock: FakeClock) -> None:
    """Saving a draft unchanged neither changes it nor writes the audit log."""
    db = seeded
    draft = _edit(db, clock, _live(db, "alert"))
    before = len(_audit(db, "template.edit"))
    with db.transaction() as conn:
        again = store.save_draft(
            conn,
            "template",
            "alert",
            draft.files,
            author=EDITOR,
            now=clock.now(),
            draft_id=draft.id,
        )
    assert again == draft
    assert len(_audit(db, "template.edit")) == before


def test_editing_an_approved_version_or_anothers_draft_starts_a_new_draft(
    seeded: Database, clock: FakeClock
) -> None:
    """Approved versions never change: editing one makes a new draft based on it; so does
    editing someone else's draft."""
    db = seeded
    v2 = _approve(db, clock, _edit(db, clock, _live(db, "alert")))
    v3 = _edit(db, clock, v2, marker="Third")
    assert (v3.number, v3.state, v3.based_on, v3.id != v2.id) == (3, "draft", 2, True)
    with db.engine.connect() as conn:
        unchanged = store.version(conn, v2.id)
    assert unchanged is not None
    assert unchanged.files == v2.files and unchanged.content_hash == v2.content_hash
    assert (unchanged.state, unchanged.live) == ("approved", True)

    v4 = _edit(db, clock, v3, author=APPROVER, marker="Fourth")
    assert (v4.number, v4.based_on, v4.author) == (4, 3, APPROVER)
    with db.engine.connect() as conn:
        still = store.version(conn, v3.id)
    assert still is not None and still.files == v3.files and still.author == EDITOR

    with pytest.raises(store.DraftRefused), db.transaction() as conn:
        store.save_draft(
            conn, "template", "reminder", v3.files, author=EDITOR, now=clock.now(), draft_id=v3.id
        )


def test_rollback_approves_an_older_version_again(seeded: Database, clock: FakeClock) -> None:
    """Approving an older approved version makes it live again, recorded as a rollback."""
    db = seeded
    v1 = _live(db, "alert")
    v2 = _approve(db, clock, _edit(db, clock, v1))
    assert _live(db, "alert").id == v2.id

    back = _approve(db, clock, v1, approver=SECOND_APPROVER)

    assert back.id == v1.id and back.live
    assert _live(db, "alert").id == v1.id
    with db.engine.connect() as conn:
        live = store.live_set(conn)
        former = store.version(conn, v2.id)
    assert live.versions["alert"] == 1
    assert live.sources[TEXT] == (TEMPLATES / TEXT).read_text()
    assert former is not None and (former.state, former.live) == ("approved", False)
    [rollback] = _audit(db, "template.rollback")
    assert (rollback["actor"], rollback["subject"]) == (SECOND_APPROVER, "alert")
    assert rollback["details"]["version"] == 1
    assert len(_audit(db, "template.approve")) == 1  # only v2's
    # ... and forward again to v2, the same way.
    _approve(db, clock, v2, approver=SECOND_APPROVER)
    assert _live(db, "alert").id == v2.id


def test_a_discarded_draft_cannot_be_approved(seeded: Database, clock: FakeClock) -> None:
    """A discarded draft stays in the history but can neither go live nor be discarded again."""
    db = seeded
    draft = _edit(db, clock, _live(db, "alert"))
    with db.transaction() as conn:
        discarded = store.discard(conn, draft.id, by=EDITOR, now=clock.now())
    assert discarded.state == "discarded"
    with pytest.raises(store.ApprovalRefused, match="discarded"):
        _approve(db, clock, draft)
    with pytest.raises(store.DraftRefused), db.transaction() as conn:
        store.discard(conn, draft.id, by=EDITOR, now=clock.now())
    assert _live(db, "alert").number == 1
    [entry] = _audit(db, "template.discard")
    assert (entry["actor"], entry["details"]) == (EDITOR, {"version": 2})
    assert _audit(db, "template.approve") == []
    # Approved versions are never discarded.
    live_id = _live(db, "alert").id
    with pytest.raises(store.DraftRefused), db.transaction() as conn:
        store.discard(conn, live_id, by=APPROVER, now=clock.now())


def test_approving_one_draft_twice(seeded: Database, clock: FakeClock) -> None:
    """The second approval of a draft already live is refused and records nothing."""
    db = seeded
    draft = _edit(db, clock, _live(db, "alert"))
    _approve(db, clock, draft)
    with pytest.raises(store.ApprovalRefused, match="already live"):
        _approve(db, clock, draft, approver=SECOND_APPROVER)
    assert len(_audit(db, "template.approve")) == 1
    assert _audit(db, "template.rollback") == []


def _wait_until_blocked(db: Database, deadline: float) -> None:
    """Until a PostgreSQL session waits for a lock (SQLite: a moment for BEGIN IMMEDIATE)."""
    if db.is_sqlite:
        time.sleep(0.3)
        return
    while time.monotonic() < deadline:
        with db.engine.connect() as conn:
            if conn.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")):
                return
        time.sleep(0.02)
    raise AssertionError("the second approval never waited for the first")


def test_racing_approvals_of_one_draft_exactly_one_wins(seeded: Database, clock: FakeClock) -> None:
    """Two approvers approve the same draft at the same time: one wins, the other is refused
    (it waits for the first transaction, then finds the draft approved)."""
    db = seeded
    draft = _edit(db, clock, _live(db, "alert"))
    outcome: dict[str, object] = {}

    def second() -> None:
        try:
            with db.transaction() as conn:
                outcome["won"] = store.approve(
                    conn,
                    draft.id,
                    approver=SECOND_APPROVER,
                    reviewed_hash=draft.content_hash,
                    now=clock.now(),
                )
        except store.ApprovalRefused as exc:
            outcome["refused"] = exc

    with db.engine.connect() as conn:
        with conn.begin():
            first = store.approve(
                conn,
                draft.id,
                approver=APPROVER,
                reviewed_hash=draft.content_hash,
                now=clock.now(),
            )
            racer = threading.Thread(target=second)
            racer.start()
            _wait_until_blocked(db, time.monotonic() + 10)
        racer.join(timeout=30)
    assert not racer.is_alive()

    assert first.live
    assert "won" not in outcome, "both approvals won"
    assert isinstance(outcome.get("refused"), store.ApprovalRefused)
    # SQLite queues the second transaction behind the first; PostgreSQL lets it read the
    # draft and then finds it approved by the conditional update.
    expected = "already live" if db.is_sqlite else "changed while you approved it"
    assert expected in str(outcome["refused"])
    [approval] = _audit(db, "template.approve")
    assert approval["actor"] == APPROVER
    assert _live(db, "alert").approved_by == APPROVER


def test_drafts_saved_at_the_same_time_get_their_own_numbers(
    seeded: Database, clock: FakeClock
) -> None:
    """Two people starting a draft of one unit at once both get one, numbered in turn (on
    PostgreSQL the second used to take the same number and fail)."""
    db = seeded
    v1 = _live(db, "alert")
    outcome: dict[str, object] = {}

    def save(conn: Any, author: str) -> store.Version:
        files = dict(v1.files)
        files[TEXT] += f"\nBy {author}\n"
        return store.save_draft(
            conn, "template", "alert", files, author=author, now=clock.now(), draft_id=v1.id
        )

    def second() -> None:
        try:
            with db.transaction() as conn:
                outcome["saved"] = save(conn, APPROVER)
        except Exception as exc:  # the failure is the test's finding
            outcome["failed"] = exc

    with db.engine.connect() as conn:
        with conn.begin():
            first = save(conn, EDITOR)
            racer = threading.Thread(target=second)
            racer.start()
            _wait_until_blocked(db, time.monotonic() + 10)
        racer.join(timeout=30)
    assert not racer.is_alive()

    assert "failed" not in outcome, outcome.get("failed")
    other = outcome["saved"]
    assert isinstance(other, store.Version)
    assert sorted([first.number, other.number]) == [2, 3]
    assert {v.author for v in _history(db, "alert") if v.state == "draft"} == {EDITOR, APPROVER}


# ---------------------------------------------------------------------------------------------
# Export and the engine


def test_export_writes_the_live_set_and_is_idempotent(
    seeded: Database, clock: FakeClock, tmp_path: Path
) -> None:
    """Export writes every live file (approved edits, never drafts); a second export writes
    nothing."""
    db = seeded
    v2 = _approve(db, clock, _edit(db, clock, _live(db, "alert"), marker="Approved line"))
    _edit(db, clock, v2, marker="Draft line")
    templates, locales = tmp_path / "templates", tmp_path / "locales"

    written = library.export(db, templates, locales)

    with db.engine.connect() as conn:
        live = store.live_set(conn)
    expected = {templates / p for p in live.sources} | {
        locales / code / library.CATALOG_FILE for code in live.po_texts
    }
    assert set(written) == expected
    for path, source in live.sources.items():
        assert (templates / path).read_text() == source
    assert (templates / TEXT).read_text().endswith("Approved line\n")
    assert "Draft line" not in (templates / TEXT).read_text()
    assert (templates / "labels.j2").read_text() == (TEMPLATES / "labels.j2").read_text()
    po = (locales / "de" / library.CATALOG_FILE).read_text()
    assert po == (LOCALES / "de" / library.CATALOG_FILE).read_text()
    assert library.export(db, templates, locales) == []
    # Exported files seed back as what the library holds: nothing new.
    assert library.seed(db, templates, locales, clock) == []


def test_export_removes_the_parts_the_live_version_no_longer_has(
    seeded: Database, clock: FakeClock, tmp_path: Path
) -> None:
    """Slack got its own subject (approved, exported), then said what the email says again
    (approved): export deletes the Slack file, so the folder seeds back as the live version
    and no draft appears; files of a unit the library does not hold stay."""
    db = seeded
    slack = "alert/slack.subject.j2"
    live = _live(db, "alert")
    clock.advance(60)
    with db.transaction() as conn:
        own = store.save_draft(
            conn,
            "template",
            "alert",
            {**live.files, slack: "Slack: {{ alert.summary }}\n"},
            author=EDITOR,
            now=clock.now(),
        )
    _approve(db, clock, own)
    templates, locales = tmp_path / "templates", tmp_path / "locales"
    assert templates / slack in library.export(db, templates, locales)
    stranger = templates / "newcomer" / "email.subject.j2"  # not in the library (yet)
    stranger.parent.mkdir()
    stranger.write_text("New\n")

    clock.advance(60)
    with db.transaction() as conn:
        again = store.save_draft(
            conn, "template", "alert", dict(live.files), author=EDITOR, now=clock.now()
        )
    _approve(db, clock, again)
    assert library.export(db, templates, locales) == [templates / slack]
    assert not (templates / slack).exists() and stranger.read_text() == "New\n"
    assert library.export(db, templates, locales) == []
    stranger.unlink()
    assert library.seed(db, templates, locales, clock) == []


def test_export_over_the_shipped_files_writes_only_what_changed(
    seeded: Database, clock: FakeClock, tmp_path: Path
) -> None:
    """Over a copy of the repository's files, export rewrites only the approved change."""
    db = seeded
    _approve(db, clock, _edit(db, clock, _live(db, "alert")))
    templates, locales = tmp_path / "templates", tmp_path / "locales"
    shutil.copytree(TEMPLATES, templates)
    shutil.copytree(LOCALES, locales)
    assert library.export(db, templates, locales) == [templates / TEXT]
    assert library.export(db, templates, locales) == []


def _context() -> dict[str, Any]:
    """A firing alert, as the render context contract describes it."""
    return {
        "kind": "alert",
        "status": "firing",
        "step": None,
        "details": {},
        "alert": {
            "id": "alert-42",
            "fingerprint": "f" * 16,
            "alertname": "ConsensusFinalityLag",
            "severity": "critical",
            "risk": None,
            "labels": {"network": "mainnet"},
            "summary": "Finality lags by 12 epochs",
            "description": None,
            "runbook_url": None,
            "starts_at": T0,
            "ends_at": None,
            "source": "prometheus",
        },
        "confidential": None,
        "recipient": {"name": "Ada", "locale": "en", "timezone": "UTC"},
        "tier": "responders",
        "event": {"id": "evt-1", "source": "prometheus", "time": T0},
        "links": {},
    }


def _render(renderer: Renderer, locale: str = "en") -> Any:
    return renderer.render("alert", "email", locale=locale, timezone="UTC", context=_context())


def test_the_follower_renders_only_approved_versions(seeded: Database, clock: FakeClock) -> None:
    """The renderer follows the live set: a draft's text is never rendered; once approved it
    is, and every message names the versions it came from."""
    db = seeded
    renderer = Renderer(
        TemplateSettings(directory=TEMPLATES, locales_directory=LOCALES),
        Catalogs.load(LOCALES),
    )
    assert _render(renderer).template_version == ""  # files: no library versions
    follower = library.LibraryFollower(db, renderer, default_locale="en")
    assert follower.load()
    first = _render(renderer)
    assert first.template_version == "alert v1, shared v1"
    assert not follower.load()  # nothing changed

    v1 = _live(db, "alert")
    files = dict(v1.files)
    files[SUBJECT] = "Library subject {{ alert.summary }}\n"
    files[TEXT] = "Draft body {{ alert.alertname }}\n"
    with db.transaction() as conn:
        draft = store.save_draft(
            conn, "template", "alert", files, author=EDITOR, now=clock.now(), draft_id=v1.id
        )
    assert not follower.load()
    still = _render(renderer)
    assert "Library subject" not in still.subject and "Draft body" not in still.text
    assert still.template_version == "alert v1, shared v1"

    _approve(db, clock, draft)
    assert follower.load()
    approved = _render(renderer)
    assert approved.subject == "Library subject Finality lags by 12 epochs"
    assert approved.text == "Draft body ConsensusFinalityLag\n"
    assert approved.template_version == "alert v2, shared v1"
    assert approved.template_hash != first.template_hash

    # A new draft after the approval is not rendered either.
    _edit(db, clock, _live(db, "alert"), marker="Unapproved")
    assert not follower.load()
    assert "Unapproved" not in _render(renderer).text


def test_the_follower_loads_approved_catalogs(seeded: Database, clock: FakeClock) -> None:
    """An approved catalog change is what German readers get after the next load."""
    db = seeded
    renderer = Renderer(
        TemplateSettings(directory=TEMPLATES, locales_directory=LOCALES),
        Catalogs.load(LOCALES),
    )
    follower = library.LibraryFollower(db, renderer, default_locale="en")
    follower.load()
    before = _render(renderer, "de")
    assert "Schweregrad" in before.text
    catalog = _live(db, "de", "catalog")
    [(path, po)] = catalog.files.items()
    assert 'msgstr "Schweregrad"' in po
    changed = {path: po.replace('msgstr "Schweregrad"', 'msgstr "Dringlichkeit"')}
    with db.transaction() as conn:
        draft = store.save_draft(
            conn, "catalog", "de", changed, author=EDITOR, now=clock.now(), draft_id=catalog.id
        )
    assert not follower.load()
    assert "Dringlichkeit" not in _render(renderer, "de").text

    _approve(db, clock, draft)
    [approval] = _audit(db, "catalog.approve")
    assert approval["subject"] == "de"
    assert follower.load()
    after = _render(renderer, "de")
    assert "Dringlichkeit" in after.text and "Schweregrad" not in after.text
    assert after.template_version == "alert v1, shared v1"


def test_the_follower_keeps_the_files_for_an_empty_library(db: Database) -> None:
    """Before the library is seeded the engine keeps rendering the files."""
    renderer = Renderer(
        TemplateSettings(directory=TEMPLATES, locales_directory=LOCALES),
        Catalogs.load(LOCALES),
    )
    follower = library.LibraryFollower(db, renderer, default_locale="en")
    assert not follower.load()
    assert _render(renderer).template_version == ""
    assert "Alert" in _render(renderer).subject


def test_revoked_sessions_are_remembered_until_they_would_have_expired(db: Database) -> None:
    """Revoking is idempotent (two tabs signing out) and forgets sessions expired anyway."""
    t0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    with db.transaction() as conn:
        revoke(conn, "a" * 64, "nora.kaplan", t0, t0 + timedelta(hours=8))
        revoke(conn, "a" * 64, "nora.kaplan", t0, t0 + timedelta(hours=8))
        revoke(conn, "b" * 64, "mei.lin", t0, t0 + timedelta(hours=1))
    with db.transaction() as conn:
        assert revoked(conn, "a" * 64, "nora.kaplan") and revoked(conn, "b" * 64, "mei.lin")
        assert not revoked(conn, "c" * 64, "mei.lin")
        revoke(conn, "c" * 64, "mei.lin", t0 + timedelta(hours=2), t0 + timedelta(hours=10))
    with db.transaction() as conn:
        assert not revoked(conn, "b" * 64, "mei.lin")  # it expired at 09:00: no longer kept
        assert revoked(conn, "a" * 64, "nora.kaplan") and revoked(conn, "c" * 64, "mei.lin")


def revoked(conn: Connection, session: str, person: str, issued: datetime | None = None) -> bool:
    return is_revoked(conn, session, person, issued or datetime(2026, 11, 22, 7, tzinfo=UTC))


def test_signing_out_everywhere_ends_the_sessions_issued_until_then(db: Database) -> None:
    """Every session of the person issued at or before the moment, none issued later, no
    one else's; a second time moves the moment; the row goes once all would have expired."""
    t0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    with db.transaction() as conn:
        revoke_everywhere(conn, "nora.kaplan", t0, t0 + 8 * hour)
    with db.transaction() as conn:
        assert revoked(conn, "a" * 64, "nora.kaplan", t0 - hour)
        assert revoked(conn, "b" * 64, "nora.kaplan", t0)
        assert not revoked(conn, "c" * 64, "nora.kaplan", t0 + timedelta(seconds=1))
        assert not revoked(conn, "a" * 64, "mei.lin", t0 - hour)
        revoke_everywhere(conn, "nora.kaplan", t0 + 2 * hour, t0 + 10 * hour)
    with db.transaction() as conn:
        assert revoked(conn, "c" * 64, "nora.kaplan", t0 + timedelta(seconds=1))
        assert not revoked(conn, "d" * 64, "nora.kaplan", t0 + 3 * hour)
        revoke(conn, "e" * 64, "mei.lin", t0 + 11 * hour, t0 + 12 * hour)  # forgets expired rows
    with db.transaction() as conn:
        assert not revoked(conn, "c" * 64, "nora.kaplan", t0 + timedelta(seconds=1))


def test_audit_entries_filter_by_the_client_address_in_their_details(db: Database) -> None:
    """The sign-in throttle's query (details["address"]) on SQLite and PostgreSQL: only that
    address, entries without one never match."""
    t0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    failed = "console.sign-in-failed"
    with db.transaction() as conn:
        audit.record(conn, t0, "a", failed, "console", {"person": "a", "address": "198.51.100.7"})
        audit.record(conn, t0, "b", failed, "console", {"person": "b", "address": "203.0.113.9"})
        audit.record(conn, t0, "c", failed, "console", {"person": "c"})
        audit.record(conn, t0, "d", "console.sign-in", "console", {"address": "198.51.100.7"})
    with db.reading() as conn:
        found = audit.entries(conn, action=failed, address="198.51.100.7")
        assert [e["actor"] for e in found] == ["a"]
        assert audit.entries(conn, action=failed, address="192.0.2.1") == []
