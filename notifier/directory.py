"""The directory of people: who they are, their roles, how to reach them, their language and zone.

Loaded from a YAML file (``config/directory.yaml``) and validated once; lookups by role are
precomputed so routing a batch never scans the whole directory.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from notifier.errors import ConfigError
from notifier.fatigue import QuietHours
from notifier.lifecycle import Verb
from notifier.settings import format_validation_error, read_yaml

Identifier = str


class ChannelKind(StrEnum):
    """The kinds of contact the engine can deliver to."""

    EMAIL = "email"
    SLACK = "slack"
    WEBHOOK = "webhook"


_EMAIL = TypeAdapter(EmailStr)
_SLACK_ID = re.compile(r"^[CGDUW][A-Z0-9]{2,}$")
_ENDPOINT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class Contact(BaseModel):
    """One way to reach a person, in their order of preference.

    ``address`` depends on the channel: an email address; a Slack channel (C…, G…) or user
    id (U…, W…: a direct message); the name of a webhook endpoint under
    ``webhooks.endpoints`` in the settings.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: ChannelKind
    address: str = Field(min_length=1, max_length=320)

    @field_validator("address")
    @classmethod
    def _address_fits_channel(cls, value: str, info: ValidationInfo) -> str:
        channel = info.data.get("channel")
        if channel is ChannelKind.EMAIL:
            try:
                _EMAIL.validate_python(value)
            except ValidationError:
                raise ValueError(f"{value!r} is not a valid email address") from None
        elif channel is ChannelKind.SLACK and not _SLACK_ID.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a Slack channel or user id (like C024BE91L, U024BE7LH)"
            )
        elif channel is ChannelKind.WEBHOOK and not _ENDPOINT.fullmatch(value):
            raise ValueError(f"{value!r} is not a webhook endpoint name (like ops-noc)")
        return value


class Person(BaseModel):
    """Someone (or a mailing list) who can receive notifications."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)
    name: str = Field(min_length=1, max_length=200)
    roles: tuple[str, ...] = Field(min_length=1)
    contacts: tuple[Contact, ...] = Field(min_length=1)
    locale: str = "en"
    timezone: str = "UTC"
    organization: str | None = None
    quiet_hours: QuietHours | None = Field(
        default=None,
        description="daily window in the person's timezone without non-critical messages",
    )
    api_token_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the person's API token (`notifier tokens new` makes one)",
    )
    password_hash: str | None = Field(
        default=None,
        pattern=r"^\$argon2id\$",
        description="Argon2id hash of the console password (`notifier console password`)",
    )

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        try:
            Locale.parse(value.replace("-", "_"))
        except (UnknownLocaleError, ValueError):
            raise ValueError(
                f"unknown locale {value!r}; use a CLDR locale such as 'en', 'de_CH' or 'es'"
            ) from None
        return value.replace("-", "_")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as 'Europe/Berlin'"
            ) from None
        return value

    def contact(self, channel: ChannelKind) -> Contact | None:
        """Return the person's preferred contact on ``channel``, if any."""
        return self._preferred.get(channel)

    @property
    def slack_id(self) -> str | None:
        """The person's Slack user id, if a contact gives one (for mentions and actions)."""
        for c in self.contacts:
            if c.channel is ChannelKind.SLACK and c.address[0] in "UW":
                return c.address
        return None

    @cached_property
    def _preferred(self) -> dict[ChannelKind, Contact]:
        preferred: dict[ChannelKind, Contact] = {}
        for c in self.contacts:
            preferred.setdefault(c.channel, c)
        return preferred


class Capability(StrEnum):
    """What a role can allow: the alert verbs, and the console's own."""

    VIEW = "view"  # sign in to the console, see incidents, templates and the audit log
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    SILENCE = "silence"
    EDIT_TEMPLATES = "edit_templates"  # write template drafts
    APPROVE_TEMPLATES = "approve_templates"  # approve others' drafts, roll back
    TRANSLATE = "translate"  # write catalog drafts (approved by approve_templates)


class Permissions(BaseModel):
    """Which roles may act on alerts (acknowledge, resolve) from any channel, manage
    silences (create and expire them), and use the console (view; edit, approve and
    translate templates)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    acknowledge: tuple[str, ...] = ()
    resolve: tuple[str, ...] = ()
    silence: tuple[str, ...] = ()
    view: tuple[str, ...] = ()
    edit_templates: tuple[str, ...] = ()
    approve_templates: tuple[str, ...] = ()
    translate: tuple[str, ...] = ()


class DirectoryFile(BaseModel):
    """The shape of the directory YAML file."""

    model_config = ConfigDict(extra="forbid")

    people: list[Person] = Field(min_length=1)
    permissions: Permissions = Permissions()


class Directory:
    """People indexed by id and by role, reached on the channels the engine has enabled."""

    def __init__(
        self,
        people: Iterable[Person],
        permissions: Permissions | None = None,
        channels: Iterable[ChannelKind] = (ChannelKind.EMAIL,),
    ) -> None:
        self.permissions = permissions or Permissions()
        self.channels = frozenset(channels)
        self._people: dict[str, Person] = {}
        self._by_role: dict[str, list[Person]] = {}
        for person in people:
            if person.id in self._people:
                raise ConfigError(f"directory: person id {person.id!r} appears twice")
            self._people[person.id] = person
            for role in person.roles:
                self._by_role.setdefault(role, []).append(person)

    @classmethod
    def load(cls, path: Path, channels: Iterable[ChannelKind] = (ChannelKind.EMAIL,)) -> Directory:
        """Read and validate a directory file; ConfigError names the file and the bad field."""
        raw = read_yaml(path)
        try:
            parsed = DirectoryFile.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"{path}: {format_validation_error(exc)}") from exc
        return cls(parsed.people, parsed.permissions, channels)

    def reach(self, person: Person) -> Contact | None:
        """The person's most preferred contact on an enabled channel."""
        return next((c for c in person.contacts if c.channel in self.channels), None)

    def fallbacks(self, person: Person, after: str) -> list[Contact]:
        """The person's enabled contacts after the first one on channel ``after``, in order
        of preference (where a notification goes when that channel fails for good)."""
        enabled = [c for c in person.contacts if c.channel in self.channels]
        for i, c in enumerate(enabled):
            if c.channel.value == after:
                return [later for later in enabled[i + 1 :] if later.channel.value != after]
        return []

    def by_slack_id(self, slack_id: str) -> Person | None:
        """The person whose contacts include this Slack user id."""
        return next((p for p in self._people.values() if p.slack_id == slack_id), None)

    def __len__(self) -> int:
        return len(self._people)

    def __iter__(self) -> Iterator[Person]:
        return iter(self._people.values())

    def get(self, person_id: str) -> Person | None:
        """Return the person with this id, if any."""
        return self._people.get(person_id)

    def with_role(self, role: str) -> list[Person]:
        """Return everyone holding ``role``, in directory order."""
        return self._by_role.get(role, [])

    def by_token(self, token: str) -> Person | None:
        """The person whose API token this is (compared by hash, in constant time)."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        for person in self._people.values():
            if person.api_token_sha256 and hmac.compare_digest(person.api_token_sha256, digest):
                return person
        return None

    def may(self, person_id: str, verb: Verb | Capability) -> bool:
        """Whether the person holds a role the permissions allow to ``verb`` alerts (or to
        use a console capability)."""
        person = self._people.get(person_id)
        allowed: tuple[str, ...] = getattr(self.permissions, Capability(verb.value).value)
        return person is not None and any(role in allowed for role in person.roles)

    def capabilities(self, person_id: str) -> frozenset[Capability]:
        """Everything the person's roles allow."""
        return frozenset(c for c in Capability if self.may(person_id, c))

    def roles(self) -> set[str]:
        """Return every role someone in the directory holds."""
        return set(self._by_role)
