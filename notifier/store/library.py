"""The template library in the store: versions, drafts, four-eyes approval, the live set.

A *unit* is what is versioned and approved as one: a template (its folder's files), the
shared macro files (unit ``shared``), or one locale's catalog (kind ``catalog``, its ``.po``
file). Drafts change until approved; approval is refused to the draft's author and binds the
exact content hash the approver reviewed, so a draft edited after someone opened it needs a
new review. An approved version never changes; making an older approved version live again is
a rollback, approved the same way. Every change is written to the audit log in its
transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, RowMapping, func, insert, select, update

from notifier.store import audit
from notifier.store.schema import library_live, library_versions
from notifier.templating import content_hash

Kind = Literal["template", "catalog"]
SEED_AUTHOR = "files"  # author of versions read from templates/ and locales/

__all__ = [
    "SEED_AUTHOR",
    "ApprovalRefused",
    "DraftRefused",
    "Kind",
    "LiveSet",
    "UnitSummary",
    "Version",
    "approve",
    "discard",
    "live_set",
    "live_signature",
    "save_draft",
    "seed",
    "units",
    "version",
    "versions",
]


class ApprovalRefused(Exception):
    """The approval is not allowed; the message says why and what to do."""


class DraftRefused(Exception):
    """The draft cannot be saved as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a unit."""

    id: int
    kind: str
    name: str
    number: int
    state: str  # draft | approved | discarded
    files: dict[str, str]
    content_hash: str
    based_on: int | None
    author: str
    note: str | None
    created_at: datetime
    updated_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    live: bool = False


@dataclass(frozen=True, slots=True)
class UnitSummary:
    """A unit with its live version and how many drafts wait for approval."""

    kind: str
    name: str
    live: Version | None
    drafts: int


@dataclass(frozen=True, slots=True)
class LiveSet:
    """What the engine renders: every live template file and catalog, and their versions."""

    sources: dict[str, str]
    po_texts: dict[str, str]
    versions: dict[str, int]
    signature: tuple[tuple[str, str, int], ...]


def _version(row: RowMapping, live_ids: frozenset[int] = frozenset()) -> Version:
    return Version(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        number=row["number"],
        state=row["state"],
        files=dict(row["files"]),
        content_hash=row["content_hash"],
        based_on=row["based_on"],
        author=row["author"],
        note=row["note"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        approved_by=row["approved_by"],
        approved_at=row["approved_at"],
        live=row["id"] in live_ids,
    )


def _live_ids(conn: Connection) -> frozenset[int]:
    return frozenset(conn.execute(select(library_live.c.version_id)).scalars())


def live_signature(conn: Connection) -> tuple[tuple[str, str, int], ...]:
    """Which version of each unit is live: cheap to read, changes with every approval."""
    rows = conn.execute(
        select(library_live.c.kind, library_live.c.name, library_live.c.version_id).order_by(
            library_live.c.kind, library_live.c.name
        )
    )
    return tuple((kind, name, vid) for kind, name, vid in rows)


def live_set(conn: Connection) -> LiveSet:
    """Every live unit's files: template sources by path, catalogs by language."""
    rows = conn.execute(
        select(library_versions, library_live.c.kind.label("live_kind"))
        .join(library_live, library_live.c.version_id == library_versions.c.id)
        .order_by(library_versions.c.kind, library_versions.c.name)
    ).mappings()
    sources: dict[str, str] = {}
    po_texts: dict[str, str] = {}
    versions: dict[str, int] = {}
    signature = []
    for row in rows:
        signature.append((row["kind"], row["name"], row["id"]))
        if row["kind"] == "template":
            sources.update(row["files"])
            versions[row["name"]] = row["number"]
        else:
            po_texts[row["name"]] = next(iter(row["files"].values()))
    return LiveSet(sources, po_texts, versions, tuple(sorted(signature)))


def units(conn: Connection, kind: Kind) -> list[UnitSummary]:
    """Every unit of ``kind``, by name, with its live version and open drafts."""
    live_ids = _live_ids(conn)
    live = {
        row["name"]: _version(row, live_ids)
        for row in conn.execute(
            select(library_versions)
            .join(library_live, library_live.c.version_id == library_versions.c.id)
            .where(library_versions.c.kind == kind)
        ).mappings()
    }
    drafts: dict[str, int] = dict(
        conn.execute(
            select(library_versions.c.name, func.count())
            .where(library_versions.c.kind == kind, library_versions.c.state == "draft")
            .group_by(library_versions.c.name)
        ).all()
    )
    names = sorted(set(live) | set(drafts))
    return [UnitSummary(kind, name, live.get(name), drafts.get(name, 0)) for name in names]


def versions(conn: Connection, kind: Kind, name: str) -> list[Version]:
    """Every version of one unit, newest first."""
    live_ids = _live_ids(conn)
    rows = conn.execute(
        select(library_versions)
        .where(library_versions.c.kind == kind, library_versions.c.name == name)
        .order_by(library_versions.c.number.desc())
    ).mappings()
    return [_version(row, live_ids) for row in rows]


def version(conn: Connection, version_id: int) -> Version | None:
    """One version by id."""
    row = (
        conn.execute(select(library_versions).where(library_versions.c.id == version_id))
        .mappings()
        .one_or_none()
    )
    return None if row is None else _version(row, _live_ids(conn))


def _next_number(conn: Connection, kind: str, name: str) -> int:
    unit = (library_versions.c.kind == kind, library_versions.c.name == name)
    # PostgreSQL: lock the unit's versions first, so two drafts saved at once do not both
    # take the same number (the second waits, then sees the first's). SQLite serializes.
    conn.execute(select(library_versions.c.id).where(*unit).with_for_update())
    current = conn.execute(select(func.max(library_versions.c.number)).where(*unit)).scalar()
    return int(current or 0) + 1


def _insert(
    conn: Connection,
    kind: str,
    name: str,
    files: Mapping[str, str],
    *,
    author: str,
    now: datetime,
    state: str,
    based_on: int | None,
    note: str | None,
) -> int:
    result = conn.execute(
        insert(library_versions).values(
            kind=kind,
            name=name,
            number=_next_number(conn, kind, name),
            state=state,
            files=dict(files),
            content_hash=content_hash(files),
            based_on=based_on,
            author=author,
            note=note,
            created_at=now,
            updated_at=now,
            approved_by=SEED_AUTHOR if state == "approved" else None,
            approved_at=now if state == "approved" else None,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _make_live(
    conn: Connection, kind: str, name: str, version_id: int, now: datetime, by: str
) -> None:
    changed = conn.execute(
        update(library_live)
        .where(library_live.c.kind == kind, library_live.c.name == name)
        .values(version_id=version_id, since=now, by=by)
    ).rowcount
    if not changed:
        conn.execute(
            insert(library_live).values(
                kind=kind, name=name, version_id=version_id, since=now, by=by
            )
        )


def seed(
    conn: Connection, kind: Kind, units_on_disk: Mapping[str, Mapping[str, str]], now: datetime
) -> list[str]:
    """Bring the files on disk into the library; return what was done, one line each.

    A unit the library does not know yet becomes version 1, approved and live: the files in
    the repository were reviewed there. A known unit whose files differ from every version the
    library holds becomes a *draft* by ``files``: edited on disk, it still needs an approval
    in the console before it goes out.
    """
    done = []
    for name, files in sorted(units_on_disk.items()):
        known = conn.execute(
            select(library_versions.c.content_hash).where(
                library_versions.c.kind == kind, library_versions.c.name == name
            )
        ).scalars()
        hashes = set(known)
        if not hashes:
            vid = _insert(
                conn,
                kind,
                name,
                files,
                author=SEED_AUTHOR,
                now=now,
                state="approved",
                based_on=None,
                note="seeded from the files",
            )
            _make_live(conn, kind, name, vid, now, SEED_AUTHOR)
            audit.record(conn, now, SEED_AUTHOR, f"{kind}.seed", name, {"version": 1})
            done.append(f"{kind} {name}: seeded version 1 from the files")
        elif content_hash(files) not in hashes:
            number = _next_number(conn, kind, name)
            _insert(
                conn,
                kind,
                name,
                files,
                author=SEED_AUTHOR,
                now=now,
                state="draft",
                based_on=None,
                note="changed on disk; needs approval in the console",
            )
            audit.record(conn, now, SEED_AUTHOR, f"{kind}.edit", name, {"version": number})
            done.append(
                f"{kind} {name}: the files differ from the library; draft v{number} waits "
                "for approval"
            )
    return done


def save_draft(
    conn: Connection,
    kind: Kind,
    name: str,
    files: Mapping[str, str],
    *,
    author: str,
    now: datetime,
    draft_id: int | None = None,
    based_on: int | None = None,
    note: str | None = None,
) -> Version:
    """Save an edit: update the author's own draft ``draft_id``, or start a new draft.

    Editing someone else's draft, or an approved version, starts a new draft based on it: a
    draft belongs to one author, so the four-eyes rule knows whose words they are. Saving
    identical content is a no-op that returns the draft.
    """
    if draft_id is not None:
        current = version(conn, draft_id)
        if current is None or current.kind != kind or current.name != name:
            raise DraftRefused(f"there is no version {draft_id} of {kind} {name!r}")
        if current.state == "draft" and current.author == author:
            if current.content_hash == content_hash(files):
                return current
            conn.execute(
                update(library_versions)
                .where(library_versions.c.id == draft_id, library_versions.c.state == "draft")
                .values(
                    files=dict(files),
                    content_hash=content_hash(files),
                    updated_at=now,
                    note=note if note is not None else current.note,
                )
            )
            audit.record(
                conn,
                now,
                author,
                f"{kind}.edit",
                name,
                {"version": current.number, "hash": content_hash(files)},
            )
            updated = version(conn, draft_id)
            assert updated is not None
            return updated
        based_on = current.number
    vid = _insert(
        conn,
        kind,
        name,
        files,
        author=author,
        now=now,
        state="draft",
        based_on=based_on,
        note=note,
    )
    created = version(conn, vid)
    assert created is not None
    audit.record(
        conn,
        now,
        author,
        f"{kind}.edit",
        name,
        {"version": created.number, "hash": created.content_hash, "based_on": based_on},
    )
    return created


def approve(
    conn: Connection, version_id: int, *, approver: str, reviewed_hash: str, now: datetime
) -> Version:
    """Approve a draft (or an older approved version: a rollback) and make it live.

    Refused when the approver wrote the version, when its content is not what the approver
    reviewed (``reviewed_hash``), or when it was discarded. The draft's state changes by a
    conditional update, so of two approvals racing one edit only a matching one wins.
    """
    target = version(conn, version_id)
    if target is None:
        raise ApprovalRefused(f"there is no version {version_id}")
    if target.author == approver:
        raise ApprovalRefused(
            f"you wrote {target.kind} {target.name!r} v{target.number}: "
            "another approver must approve it (four-eyes rule)"
        )
    if target.content_hash != reviewed_hash:
        raise ApprovalRefused(
            f"{target.kind} {target.name!r} v{target.number} changed since you reviewed it: "
            "review the current content and approve again"
        )
    if target.state == "discarded":
        raise ApprovalRefused(f"{target.kind} {target.name!r} v{target.number} was discarded")
    if target.live:
        raise ApprovalRefused(f"{target.kind} {target.name!r} v{target.number} is already live")
    action = f"{target.kind}.approve"
    if target.state == "draft":
        won = conn.execute(
            update(library_versions)
            .where(
                library_versions.c.id == version_id,
                library_versions.c.state == "draft",
                library_versions.c.content_hash == reviewed_hash,
            )
            .values(state="approved", approved_by=approver, approved_at=now)
        ).rowcount
        if not won:
            raise ApprovalRefused(
                f"{target.kind} {target.name!r} v{target.number} changed while you approved "
                "it: review it again"
            )
    else:
        action = f"{target.kind}.rollback"
    _make_live(conn, target.kind, target.name, version_id, now, approver)
    audit.record(
        conn,
        now,
        approver,
        action,
        target.name,
        {"version": target.number, "hash": target.content_hash, "author": target.author},
    )
    approved = version(conn, version_id)
    assert approved is not None
    return approved


def discard(conn: Connection, version_id: int, *, by: str, now: datetime) -> Version:
    """Withdraw a draft (its author, or an approver); approved versions are never removed."""
    target = version(conn, version_id)
    if target is None or target.state != "draft":
        raise DraftRefused("only a draft can be discarded")
    conn.execute(
        update(library_versions)
        .where(library_versions.c.id == version_id, library_versions.c.state == "draft")
        .values(state="discarded", updated_at=now)
    )
    audit.record(conn, now, by, f"{target.kind}.discard", target.name, {"version": target.number})
    discarded = version(conn, version_id)
    assert discarded is not None
    return discarded
