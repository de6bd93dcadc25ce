"""Inhibition: while one alert fires, hold the alerts it makes redundant.

Rules read like Alertmanager's (``inhibit_rules`` in the routing file)::

    inhibit_rules:
      - name: partition-explains-lag
        source_matchers: ['alertname="NetworkPartition"']
        target_matchers: ['alertname="ConsensusLag"', 'severity="warning"']
        equal: [network]

A firing alert matching ``target_matchers`` is held while another alert matching
``source_matchers`` fires with the same values of the ``equal`` labels (a label missing on
both sides counts as equal). An alert never inhibits itself, and of two alerts that each
match both sides, neither inhibits the other (they would hold each other for ever). When the
last inhibiting alert resolves, the held alert, if still firing, is notified then.

Labels are what :func:`notifier.silences.alert_labels` gives (``alertname`` and
``severity`` included). Like silences, inhibition applies to alerts, not to policy notices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from notifier.matchers import MatcherField, matches_all

__all__ = ["FiringAlert", "InhibitRule", "inhibitor"]


class InhibitRule(BaseModel):
    """One inhibition rule (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    source_matchers: tuple[MatcherField, ...] = Field(min_length=1)
    target_matchers: tuple[MatcherField, ...] = Field(min_length=1)
    equal: tuple[str, ...] = ()

    def is_source(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with ``labels`` can inhibit others under this rule."""
        return matches_all(self.source_matchers, labels)

    def is_target(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with ``labels`` can be inhibited under this rule."""
        return matches_all(self.target_matchers, labels)

    def same_scope(self, source: Mapping[str, str], target: Mapping[str, str]) -> bool:
        """Whether the ``equal`` labels agree between the two alerts."""
        return all(source.get(name, "") == target.get(name, "") for name in self.equal)


@dataclass(frozen=True, slots=True)
class FiringAlert:
    """An alert that is firing now, as inhibition sees it."""

    id: str
    labels: Mapping[str, str]


def inhibitor(
    rules: Iterable[InhibitRule],
    target_id: str,
    target: Mapping[str, str],
    firing: Sequence[FiringAlert],
) -> tuple[InhibitRule, FiringAlert] | None:
    """The first rule and firing alert that inhibit the alert ``target_id`` with labels
    ``target``, or None if nothing does."""
    for rule in rules:
        if not rule.is_target(target):
            continue
        target_is_source = rule.is_source(target)
        for source in firing:
            if source.id == target_id or not rule.is_source(source.labels):
                continue
            if target_is_source and rule.is_target(source.labels):
                continue  # both match both sides: neither holds the other
            if rule.same_scope(source.labels, target):
                return rule, source
    return None
