"""Routing: rules map an event to tiers, tiers map to people, each with a clearance.

A rule matches on event type, severity, risk and Alertmanager-style label matchers
(``name="value"``, ``!=``, ``=~`` and ``!~``, regexes anchored at both ends). Rules are tried
in order; the first match ends the walk unless it says ``continue: true``. A person reached
through several rules or tiers gets one message: the one with the highest clearance.

What a recipient may read is ``min(rule.confidentiality, tier.clearance)``: fields under the
event's ``confidential`` section reach only recipients whose level is ``confidential``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from notifier.directory import Contact, Directory, Person
from notifier.errors import ConfigError
from notifier.escalation import (
    RECEIPT_TEMPLATE,
    EscalationPolicy,
    FrozenPlan,
    ReceiptPolicy,
    Targets,
    freeze,
)
from notifier.events import EVENT_TYPES, Event, Risk, Severity
from notifier.fatigue import DIGEST_TEMPLATE, FatigueConfig
from notifier.flapping import FlapPolicy
from notifier.inhibition import InhibitRule
from notifier.matchers import MatcherField
from notifier.settings import format_validation_error, read_yaml


class Clearance(StrEnum):
    """How much a tier may know, from least to most."""

    PUBLIC = "public"
    RESTRICTED = "restricted"
    CONFIDENTIAL = "confidential"

    @property
    def rank(self) -> int:
        """Order of the levels: public < restricted < confidential."""
        return _CLEARANCE_ORDER.index(self)


_CLEARANCE_ORDER = (Clearance.PUBLIC, Clearance.RESTRICTED, Clearance.CONFIDENTIAL)


class Match(BaseModel):
    """What a rule matches; an empty list matches anything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    types: tuple[str, ...] = ()
    severity: tuple[Severity, ...] = ()
    risk: tuple[Risk, ...] = ()
    labels: tuple[MatcherField, ...] = ()

    @field_validator("types")
    @classmethod
    def _known_types(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        for t in types:
            if t not in EVENT_TYPES:
                raise ValueError(f"unknown event type {t!r}; known: {', '.join(EVENT_TYPES)}")
        return types

    @field_validator("labels", mode="before")
    @classmethod
    def _listed(cls, raw: object) -> object:
        if not isinstance(raw, list | tuple):
            raise ValueError("labels must be a list of matchers such as 'network=\"mainnet\"'")
        return raw

    def mismatch(self, event: Event) -> str | None:
        """Return why the event does not match, or None when it does."""
        if self.types and event.type not in self.types:
            return f"type {event.type} not in {list(self.types)}"
        if self.severity and event.severity not in self.severity:
            return f"severity {event.severity} not in {[s.value for s in self.severity]}"
        if self.risk and event.risk not in self.risk:
            return f"risk {event.risk} not in {[r.value for r in self.risk]}"
        labels = event.labels
        for matcher in self.labels:
            if not matcher.matches(labels):
                return f"label matcher {matcher} failed (value {labels.get(matcher.name)!r})"
        return None


class Tier(BaseModel):
    """An audience: the roles (and named people) in it, and what it is cleared to read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    roles: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    clearance: Clearance = Clearance.PUBLIC
    confirm_receipt: ReceiptPolicy | None = Field(
        default=None, description="members must confirm they received policy notices"
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Tier:
        if not self.roles and not self.people:
            raise ValueError("a tier needs at least one role or person")
        return self


TemplateName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]


class Rule(BaseModel):
    """Events that match go to these tiers, rendered with this template."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    match: Match = Match()
    tiers: tuple[str, ...] = Field(min_length=1)
    template: TemplateName
    confidentiality: Clearance = Clearance.PUBLIC
    escalation: str | None = Field(
        default=None, description="escalation policy run while nobody acknowledges"
    )
    fan_out: bool = Field(
        default=False,
        description="page on every one of each person's contacts at once, not only the first",
    )
    continue_: bool = Field(default=False, alias="continue")


class RoutingConfig(BaseModel):
    """The shape of the routing YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: dict[str, Tier] = Field(min_length=1)
    rules: tuple[Rule, ...] = Field(min_length=1)
    escalation_policies: dict[str, EscalationPolicy] = Field(default_factory=dict)
    inhibit_rules: tuple[InhibitRule, ...] = ()
    flapping: FlapPolicy | None = None
    fatigue: FatigueConfig = FatigueConfig()

    @model_validator(mode="after")
    def _names_exist(self) -> RoutingConfig:
        names = [r.name for r in self.inhibit_rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"inhibit rule names must be unique; repeated: {', '.join(twice)}")
        for rule in self.rules:
            for tier in rule.tiers:
                if tier not in self.tiers:
                    raise ValueError(f"rule {rule.name!r} names unknown tier {tier!r}")
            if rule.escalation is not None and rule.escalation not in self.escalation_policies:
                raise ValueError(
                    f"rule {rule.name!r} names unknown escalation policy {rule.escalation!r}"
                )
        for name, targets in self.audiences():
            for tier in targets.tiers:
                if tier not in self.tiers:
                    raise ValueError(f"{name} names unknown tier {tier!r}")
        return self

    def audiences(self) -> list[tuple[str, Targets]]:
        """Every audience that escalation policies and receipt liaisons name, with its owner."""
        found = [
            (f"escalation policy {name!r}", targets)
            for name, policy in self.escalation_policies.items()
            for targets in policy.targets()
        ]
        found += [
            (f"tier {name!r} confirm_receipt", tier.confirm_receipt.liaison)
            for name, tier in self.tiers.items()
            if tier.confirm_receipt is not None
        ]
        return found

    @classmethod
    def load(cls, path: Path) -> RoutingConfig:
        """Read and validate a routing file; ConfigError names the file and the bad field."""
        try:
            return cls.model_validate(read_yaml(path))
        except ValidationError as exc:
            raise ConfigError(f"{path}: {format_validation_error(exc)}") from exc


_CACHE_SIZE = 4096


def _rank(level: Clearance) -> int:
    return level.rank


@dataclass(frozen=True, slots=True)
class Recipient:
    """One person to notify about an event, and why."""

    person: Person
    contact: Contact
    tier: str
    rule: str
    template: str
    clearance: Clearance

    @property
    def sees_confidential(self) -> bool:
        """Whether the confidential section may be rendered for this recipient."""
        return self.clearance is Clearance.CONFIDENTIAL


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """Whether a rule matched an event and, if not, why not (for ``routes test``)."""

    rule: Rule
    matched: bool
    reason: str
    evaluated: bool


_RouteKey = tuple[str, Severity, Risk | None, frozenset[tuple[str, str]]]


class Router:
    """Applies routing rules to events against a directory of people."""

    def __init__(self, config: RoutingConfig, directory: Directory) -> None:
        self._config = config
        self._directory = directory
        self._cache: dict[_RouteKey, tuple[tuple[Recipient, ...], FrozenPlan | None]] = {}
        self._plans: dict[tuple[str, str], FrozenPlan] = {}
        for name, tier in config.tiers.items():
            for person_id in tier.people:
                if directory.get(person_id) is None:
                    raise ConfigError(f"tier {name!r} names unknown person {person_id!r}")
            for role in tier.roles:
                if not directory.with_role(role):
                    raise ConfigError(f"tier {name!r}: nobody in the directory has role {role!r}")
        for name, targets in config.audiences():
            for person_id in targets.people:
                if directory.get(person_id) is None:
                    raise ConfigError(f"{name} names unknown person {person_id!r}")
            for role in targets.roles:
                if not directory.with_role(role):
                    raise ConfigError(f"{name}: nobody in the directory has role {role!r}")

    @property
    def directory(self) -> Directory:
        """The directory of people the router resolves against."""
        return self._directory

    @property
    def config(self) -> RoutingConfig:
        """The routing configuration in force."""
        return self._config

    def templates(self) -> set[str]:
        """Every template some rule names, and the engine's own ones the policies use."""
        used = {rule.template for rule in self._config.rules}
        for policy in self._config.escalation_policies.values():
            used |= policy.templates()
        if any(tier.confirm_receipt for tier in self._config.tiers.values()):
            used.add(RECEIPT_TEMPLATE)
        quiet = any(p.quiet_hours for p in self._directory)
        if self._config.fatigue.may_bundle(quiet):
            used.add(DIGEST_TEMPLATE)
        return used

    def explain(self, event: Event) -> list[RuleVerdict]:
        """Evaluate the rules in order as routing does, saying why each matched or not."""
        verdicts = []
        stopped = False
        for rule in self._config.rules:
            if stopped:
                verdicts.append(
                    RuleVerdict(rule, False, "not evaluated (an earlier rule matched)", False)
                )
                continue
            why = rule.match.mismatch(event)
            verdicts.append(RuleVerdict(rule, why is None, why or "matched", True))
            if why is None and not rule.continue_:
                stopped = True
        return verdicts

    def route(self, event: Event) -> list[Recipient]:
        """Return who to notify about ``event``: one entry per person, highest clearance wins."""
        # Routing depends only on these attributes; alerts re-fire and resolve with the same
        # ones, so a bounded cache saves re-walking the rules on the hot path.
        return list(self._decide(event)[0])

    def _decide(self, event: Event) -> tuple[tuple[Recipient, ...], FrozenPlan | None]:
        key = (event.type, event.severity, event.risk, frozenset(event.labels.items()))
        cached = self._cache.get(key)
        if cached is None:
            cached = (self._route(event), self._plan_for(event))
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = cached
        return cached

    def _route(self, event: Event) -> tuple[Recipient, ...]:
        chosen: dict[str, Recipient] = {}
        for verdict in self.explain(event):
            if not verdict.matched:
                continue
            rule = verdict.rule
            for tier_name in rule.tiers:
                tier = self._config.tiers[tier_name]
                level = min(rule.confidentiality, tier.clearance, key=lambda c: c.rank)
                for person in self._members(tier):
                    contact = self._directory.reach(person)
                    if contact is None:
                        continue
                    current = chosen.get(person.id)
                    if current is None or level.rank > current.clearance.rank:
                        chosen[person.id] = Recipient(
                            person, contact, tier_name, rule.name, rule.template, level
                        )
        if not any(r.fan_out for r in self._matching(event)):
            return tuple(chosen.values())
        # Fan out: every enabled contact of each person at once, same clearance and template.
        everywhere = []
        for first in chosen.values():
            everywhere.append(first)
            seen = {first.contact.channel}
            for c in first.person.contacts:
                if c.channel in self._directory.channels and c.channel not in seen:
                    seen.add(c.channel)
                    everywhere.append(replace(first, contact=c))
        return tuple(everywhere)

    def _matching(self, event: Event) -> list[Rule]:
        return [v.rule for v in self.explain(event) if v.matched]

    def escalation_for(self, event: Event) -> tuple[str, Rule] | None:
        """The escalation policy (by name) of the first matching rule that has one."""
        for verdict in self.explain(event):
            if verdict.matched and verdict.rule.escalation is not None:
                return verdict.rule.escalation, verdict.rule
        return None

    def plan_for(self, event: Event) -> FrozenPlan | None:
        """The escalation plan an alert starting with ``event`` follows, frozen now.

        Router and directory never change once built (a reload builds a new router), so the
        frozen plan of a rule is computed once and shared (and found through the same cache
        as the event's recipients).
        """
        return self._decide(event)[1]

    def _plan_for(self, event: Event) -> FrozenPlan | None:
        found = self.escalation_for(event)
        if found is None:
            return None
        name, rule = found
        frozen = self._plans.get((name, rule.name))
        if frozen is None:
            frozen = FrozenPlan.of(
                freeze(
                    name,
                    self.policy(name),
                    partial(self.audience, cap=rule.confidentiality),
                    template=rule.template,
                    clearance=rule.confidentiality.value,
                )
            )
            self._plans[(name, rule.name)] = frozen
        return frozen

    def policy(self, name: str) -> EscalationPolicy:
        """An escalation policy by name."""
        return self._config.escalation_policies[name]

    def resolve_targets(self, targets: Targets) -> list[str]:
        """Person ids a step reaches (with an email contact), in a stable order."""
        people: dict[str, Person] = {}
        for tier in targets.tiers:
            for person in self._members(self._config.tiers[tier]):
                people.setdefault(person.id, person)
        for role in targets.roles:
            for person in self._directory.with_role(role):
                people.setdefault(person.id, person)
        for person_id in targets.people:
            named = self._directory.get(person_id)
            if named is not None:
                people.setdefault(named.id, named)
        return [pid for pid, p in people.items() if self._directory.reach(p) is not None]

    def audience(self, targets: Targets, cap: Clearance) -> list[tuple[str, str]]:
        """Person ids ``targets`` reach, each with what they may read, never above ``cap``.

        Reached through a tier, a person reads what that tier is cleared for; named or
        reached by role, what the most cleared tier they belong to allows, and only public
        details if they belong to no tier: naming someone in a policy grants no clearance.
        """
        levels: dict[str, Clearance] = {}
        for name in targets.tiers:
            tier = self._config.tiers[name]
            for person in self._members(tier):
                levels[person.id] = max(
                    levels.get(person.id, Clearance.PUBLIC), tier.clearance, key=_rank
                )
        ids = self.resolve_targets(targets)
        for person_id in ids:
            if person_id not in levels:
                levels[person_id] = self._clearance_of(person_id)
        return [(pid, min(levels[pid], cap, key=_rank).value) for pid in ids]

    def _clearance_of(self, person_id: str) -> Clearance:
        best = Clearance.PUBLIC
        for tier in self._config.tiers.values():
            if any(p.id == person_id for p in self._members(tier)):
                best = max(best, tier.clearance, key=_rank)
        return best

    def _members(self, tier: Tier) -> list[Person]:
        seen: dict[str, Person] = {}
        for role in tier.roles:
            for person in self._directory.with_role(role):
                seen.setdefault(person.id, person)
        for person_id in tier.people:
            named = self._directory.get(person_id)
            if named is not None:
                seen.setdefault(named.id, named)
        return list(seen.values())
