"""Routing and the directory: matchers, rule order, clearances, validation, shipped config."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from notifier.decoding import decode_record
from notifier.directory import ChannelKind, Contact, Directory, Person
from notifier.errors import ConfigError
from notifier.events import ALERT_TYPE, POLICY_TYPE, Event
from notifier.matchers import parse
from notifier.routing import Clearance, Match, Router, RoutingConfig

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
SAMPLES = CONFIG / "samples"


def person(person_id: str, *roles: str, **extra: Any) -> Person:
    """A valid person with an email contact."""
    return Person.model_validate(
        {
            "id": person_id,
            "name": person_id.title(),
            "roles": list(roles),
            "contacts": [{"channel": "email", "address": f"{person_id}@example.org"}],
            **extra,
        }
    )


PEOPLE = [
    person("alice", "oncall"),
    person("bob", "commander"),
    person("carol", "partner"),
    person("dave", "oncall", "commander"),
    person("list", "public"),
]


def alert_event(
    severity: str = "critical", labels: dict[str, str] | None = None, risk: str | None = None
) -> Event:
    """An alert event with the given severity, labels and risk."""
    data: dict[str, Any] = {
        "status": "firing",
        "alertname": "NodeDown",
        "severity": severity,
        "labels": labels if labels is not None else {"network": "mainnet"},
        "annotations": {"summary": "node down"},
    }
    if risk is not None:
        data["risk"] = risk
    body = {"specversion": "1.0", "id": "e1", "source": "test", "type": ALERT_TYPE, "data": data}
    [event] = decode_record(orjson.dumps(body))
    return event


def sample_event(name: str) -> Event:
    """The first event decoded from a shipped sample."""
    return decode_record((SAMPLES / name).read_bytes())[0]


def policy_event(change: str = "emergency_upgrade", risk: str = "critical") -> Event:
    """The emergency-upgrade sample with another change and risk."""
    body = orjson.loads((SAMPLES / "policy-emergency-upgrade.json").read_bytes())
    body["data"].update(change=change, risk=risk)
    [event] = decode_record(orjson.dumps(body))
    return event


def router(config: dict[str, Any], people: list[Person] | None = None) -> Router:
    """A router over a routing config given as a dict and the test directory."""
    return Router(RoutingConfig.model_validate(config), Directory(people or PEOPLE))


def rule(name: str, tiers: list[str], **extra: Any) -> dict[str, Any]:
    """A routing rule as it appears in YAML."""
    return {"name": name, "tiers": tiers, "template": "alert", **extra}


TIERS: dict[str, Any] = {
    "oncall": {"roles": ["oncall"], "clearance": "confidential"},
    "commanders": {"roles": ["commander"], "clearance": "confidential"},
    "partners": {"roles": ["partner"], "clearance": "restricted"},
    "public": {"roles": ["public"], "clearance": "public"},
}


def reached(recipients: list[Any]) -> dict[str, Clearance]:
    """Map each recipient's person id to their clearance."""
    return {r.person.id: r.clearance for r in recipients}


# --- label matchers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('network="mainnet"', {"network": "mainnet"}, True),
        ('network="mainnet"', {"network": "testnet"}, False),
        ('network!="testnet"', {"network": "mainnet"}, True),
        ('network!="testnet"', {"network": "testnet"}, False),
        ('network=~"main.*"', {"network": "mainnet"}, True),
        ('network=~"main"', {"network": "mainnet"}, False),
        ('network=~"net"', {"network": "mainnet"}, False),
        ('network=~"main|test"', {"network": "test"}, True),
        ('network!~"main"', {"network": "mainnet"}, True),
        ('network!~"main.*"', {"network": "mainnet"}, False),
        ("network=mainnet", {"network": "mainnet"}, True),
        (' network = "mainnet" ', {"network": "mainnet"}, True),
    ],
)
def test_matcher_operators(text: str, labels: dict[str, str], expected: bool) -> None:
    """=, !=, =~ and !~ compare the label as Alertmanager does, regexes anchored at both ends."""
    assert parse(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('team=""', True),
        ('team!=""', False),
        ('team=~".*"', True),
        ('team=~".+"', False),
        ('team!="ops"', True),
        ('team="ops"', False),
    ],
)
def test_missing_label_reads_as_empty(text: str, expected: bool) -> None:
    """A label the event lacks compares as the empty string."""
    assert parse(text).matches({"network": "mainnet"}) is expected


def test_matcher_unescapes_quotes() -> None:
    """An escaped double quote inside a quoted value is a literal quote."""
    matcher = parse(r'msg="say \"hi\""')
    assert matcher.value == 'say "hi"'
    assert matcher.matches({"msg": 'say "hi"'})


def test_matcher_unescapes_backslashes() -> None:
    r"""A doubled backslash in a quoted value is one literal backslash, as in Alertmanager."""
    assert parse(r'path="C:\\temp"').value == "C:\\temp"
    assert parse(r'q="a\\\"b"').value == 'a\\"b'


def test_regex_with_escaped_dot() -> None:
    r"""A regex written with \\. matches a literal dot only."""
    matcher = parse(r'ip=~"10\\.0\\..*"')
    assert matcher.matches({"ip": "10.0.3.4"})
    assert not matcher.matches({"ip": "10x0y3.4"})


def test_matcher_keeps_spurious_backslash() -> None:
    r"""A backslash before an ordinary character stays, so \. in a regex still means a dot."""
    matcher = parse(r'ip=~"10\.0\..*"')
    assert matcher.value == r"10\.0\..*"
    assert matcher.matches({"ip": "10.0.3.4"})
    assert not matcher.matches({"ip": "10x0y3.4"})


def test_matcher_str_round_trips() -> None:
    """str() of a matcher writes it back in the parsed syntax."""
    text = 'network=~"main.*"'
    assert str(parse(text)) == text
    assert str(parse("network=mainnet")) == 'network="mainnet"'


@pytest.mark.parametrize(
    "text",
    [
        "network",
        'network~="x"',
        '"network"="x"',
        '1net="x"',
        "net work=x",
        'network="mainnet',
        'network=main"net',
        'network="a" extra',
    ],
)
def test_bad_matcher_text_is_named(text: str) -> None:
    """Text that is not a matcher raises ValueError quoting the text."""
    with pytest.raises(ValueError, match=r'write name="value"') as info:
        parse(text)
    assert repr(text) in str(info.value)


def test_bad_regex_is_named() -> None:
    """A matcher whose regex does not compile raises ValueError quoting the matcher."""
    with pytest.raises(ValueError, match="invalid regex") as info:
        parse('network=~"(main"')
    assert repr('network=~"(main"') in str(info.value)


def test_match_labels_must_be_a_list() -> None:
    """A match whose labels is a single string is rejected, not split into characters."""
    with pytest.raises(ValidationError, match="labels must be a list"):
        Match.model_validate({"labels": 'network="mainnet"'})


# --- rules -----------------------------------------------------------------------------------


def test_empty_match_matches_everything() -> None:
    """A rule with no conditions matches any event."""
    assert Match().mismatch(alert_event("info", labels={})) is None
    assert Match().mismatch(sample_event("policy-hot-patch.json")) is None


def test_first_match_stops_the_walk() -> None:
    """Without continue, the first matching rule is the only one applied."""
    r = router({"tiers": TIERS, "rules": [rule("first", ["oncall"]), rule("second", ["partners"])]})
    recipients = r.route(alert_event())
    assert set(reached(recipients)) == {"alice", "dave"}
    assert {x.rule for x in recipients} == {"first"}


def test_continue_applies_later_rules_too() -> None:
    """A matching rule with continue: true lets the next matching rule apply as well."""
    r = router(
        {
            "tiers": TIERS,
            "rules": [
                rule("first", ["oncall"], **{"continue": True}),
                rule("second", ["partners"]),
                rule("third", ["public"]),
            ],
        }
    )
    assert set(reached(r.route(alert_event()))) == {"alice", "dave", "carol"}


def test_non_matching_rule_does_not_stop_the_walk() -> None:
    """A rule that does not match is skipped and later rules are still tried."""
    r = router(
        {
            "tiers": TIERS,
            "rules": [
                rule("policies", ["public"], match={"types": [POLICY_TYPE]}),
                rule("alerts", ["partners"], match={"types": [ALERT_TYPE]}),
            ],
        }
    )
    assert set(reached(r.route(alert_event()))) == {"carol"}


def test_no_matching_rule_reaches_nobody() -> None:
    """An event no rule matches has no recipients."""
    r = router(
        {"tiers": TIERS, "rules": [rule("crit", ["oncall"], match={"severity": ["critical"]})]}
    )
    assert r.route(alert_event("info")) == []


def test_explain_gives_a_reason_per_rule() -> None:
    """explain() says for each rule whether it matched, why not, or that it was not evaluated."""
    r = router(
        {
            "tiers": TIERS,
            "rules": [
                rule("by-type", ["public"], match={"types": [POLICY_TYPE]}),
                rule("by-severity", ["public"], match={"severity": ["critical"]}),
                rule("by-risk", ["public"], match={"risk": ["high"]}),
                rule("by-label", ["public"], match={"labels": ['network="testnet"']}),
                rule("catch-all", ["oncall"]),
                rule("after", ["partners"]),
            ],
        }
    )
    verdicts = r.explain(alert_event("warning", risk="low"))
    by_name = {v.rule.name: v for v in verdicts}
    assert [v.rule.name for v in verdicts] == [
        "by-type",
        "by-severity",
        "by-risk",
        "by-label",
        "catch-all",
        "after",
    ]
    assert by_name["by-type"].reason == f"type {ALERT_TYPE} not in ['{POLICY_TYPE}']"
    assert by_name["by-severity"].reason == "severity warning not in ['critical']"
    assert by_name["by-risk"].reason == "risk low not in ['high']"
    assert by_name["by-label"].reason == (
        "label matcher network=\"testnet\" failed (value 'mainnet')"
    )
    assert by_name["catch-all"].matched
    assert by_name["catch-all"].reason == "matched"
    assert by_name["after"].evaluated is False
    assert by_name["after"].matched is False
    assert "not evaluated" in by_name["after"].reason
    assert all(v.evaluated for v in verdicts[:5])


def test_rule_on_risk_skips_events_without_risk() -> None:
    """A risk condition does not match an alert that states no risk."""
    match = Match.model_validate({"risk": ["high"]})
    assert match.mismatch(alert_event(risk=None)) == "risk None not in ['high']"
    assert match.mismatch(alert_event(risk="high")) is None


def test_policy_rule_matches_change_label() -> None:
    """Label matchers see a policy event's change."""
    match = Match.model_validate({"labels": ['change=~"emergency_upgrade|rollback"']})
    assert match.mismatch(policy_event("rollback")) is None
    assert match.mismatch(policy_event("amended")) is not None


# --- clearances and recipients ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidentiality", "tier", "expected"),
    [
        ("confidential", "oncall", Clearance.CONFIDENTIAL),
        ("confidential", "partners", Clearance.RESTRICTED),
        ("confidential", "public", Clearance.PUBLIC),
        ("restricted", "oncall", Clearance.RESTRICTED),
        ("public", "oncall", Clearance.PUBLIC),
    ],
)
def test_clearance_is_the_lower_of_rule_and_tier(
    confidentiality: str, tier: str, expected: Clearance
) -> None:
    """A recipient's clearance is min(rule.confidentiality, tier.clearance)."""
    r = router({"tiers": TIERS, "rules": [rule("r", [tier], confidentiality=confidentiality)]})
    levels = set(reached(r.route(alert_event())).values())
    assert levels == {expected}


def test_rule_confidentiality_defaults_to_public() -> None:
    """A rule that states no confidentiality reveals only public content."""
    r = router({"tiers": TIERS, "rules": [rule("r", ["oncall"])]})
    assert set(reached(r.route(alert_event())).values()) == {Clearance.PUBLIC}


@pytest.mark.parametrize("order", [["low", "high"], ["high", "low"]])
def test_one_entry_per_person_with_highest_clearance(order: list[str]) -> None:
    """Someone reached by several rules gets one entry, at the highest clearance, in any order."""
    rules = {
        "low": rule("low", ["commanders"], confidentiality="public", **{"continue": True}),
        "high": rule("high", ["oncall"], confidentiality="confidential", **{"continue": True}),
    }
    r = router({"tiers": TIERS, "rules": [rules[name] for name in order]})
    recipients = r.route(alert_event())
    ids = [x.person.id for x in recipients]
    assert sorted(ids) == ["alice", "bob", "dave"]
    dave = next(x for x in recipients if x.person.id == "dave")
    assert dave.clearance is Clearance.CONFIDENTIAL
    assert dave.rule == "high"
    assert dave.tier == "oncall"
    assert reached(recipients)["bob"] is Clearance.PUBLIC


def test_person_in_two_tiers_of_one_rule_is_listed_once() -> None:
    """A person holding roles of two tiers of one rule is one recipient."""
    r = router({"tiers": TIERS, "rules": [rule("r", ["oncall", "commanders"])]})
    ids = [x.person.id for x in r.route(alert_event())]
    assert sorted(ids) == ["alice", "bob", "dave"]


def test_tier_can_name_people() -> None:
    """A tier listing people by id reaches them, even without a matching role."""
    tiers = {"duty": {"people": ["carol"], "roles": ["oncall"], "clearance": "restricted"}}
    r = router({"tiers": tiers, "rules": [rule("r", ["duty"], confidentiality="restricted")]})
    assert reached(r.route(alert_event())) == {
        "alice": Clearance.RESTRICTED,
        "dave": Clearance.RESTRICTED,
        "carol": Clearance.RESTRICTED,
    }


def test_recipient_carries_contact_template_and_confidential_flag() -> None:
    """A recipient names the email contact, tier, rule and template that reached them."""
    r = router(
        {
            "tiers": TIERS,
            "rules": [
                rule("ops", ["oncall"], confidentiality="confidential", **{"continue": True}),
                {**rule("out", ["partners"]), "template": "partner-notice"},
            ],
        }
    )
    recipients = {x.person.id: x for x in r.route(alert_event())}
    assert recipients["alice"].contact.address == "alice@example.org"
    assert recipients["alice"].sees_confidential is True
    assert recipients["carol"].template == "partner-notice"
    assert recipients["carol"].rule == "out"
    assert recipients["carol"].tier == "partners"
    assert recipients["carol"].sees_confidential is False
    assert r.templates() == {"alert", "partner-notice"}


def test_people_without_email_contact_are_skipped() -> None:
    """Someone with no email contact is not a recipient (nothing could reach them)."""
    unreachable = Person.model_construct(
        id="eve", name="Eve", roles=("oncall",), contacts=(), locale="en", timezone="UTC"
    )
    r = router({"tiers": TIERS, "rules": [rule("r", ["oncall"])]}, [*PEOPLE, unreachable])
    assert set(reached(r.route(alert_event()))) == {"alice", "dave"}


# --- configuration validation ----------------------------------------------------------------

VALID_DIRECTORY = """
people:
  - id: alice
    name: Alice
    roles: [oncall]
    locale: en
    timezone: Europe/Berlin
    contacts:
      - {channel: email, address: alice@example.org}
"""

VALID_ROUTING = """
tiers:
  oncall: {roles: [oncall], clearance: confidential}
rules:
  - name: all
    tiers: [oncall]
    template: alert
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    """Write a YAML file under tmp_path and return its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_router(tmp_path: Path, routing: str, directory: str = VALID_DIRECTORY) -> Router:
    """Load a routing file and a directory file written to tmp_path, as the app does."""
    config = RoutingConfig.load(write(tmp_path, "routing.yaml", routing))
    return Router(config, Directory.load(write(tmp_path, "directory.yaml", directory)))


def routing_error(tmp_path: Path, routing: str, directory: str = VALID_DIRECTORY) -> str:
    """Load configuration that must fail and return the ConfigError message."""
    with pytest.raises(ConfigError) as info:
        load_router(tmp_path, routing, directory)
    return str(info.value)


def test_valid_yaml_config_loads(tmp_path: Path) -> None:
    """A well-formed routing and directory pair loads and routes."""
    r = load_router(tmp_path, VALID_ROUTING)
    assert [x.person.id for x in r.route(alert_event())] == ["alice"]


def test_unknown_tier_in_rule(tmp_path: Path) -> None:
    """A rule naming a tier that is not defined is a ConfigError naming rule, tier and file."""
    message = routing_error(tmp_path, VALID_ROUTING.replace("tiers: [oncall]", "tiers: [oncal]"))
    assert "rule 'all' names unknown tier 'oncal'" in message
    assert "routing.yaml" in message


def test_unknown_event_type_in_rule(tmp_path: Path) -> None:
    """A rule matching an unknown event type is a ConfigError naming the field and the type."""
    text = VALID_ROUTING + "    match: {types: [notifier.alert.v2]}\n"
    message = routing_error(tmp_path, text)
    assert "rules.0.match.types" in message
    assert "unknown event type 'notifier.alert.v2'" in message


def test_unknown_severity_in_rule(tmp_path: Path) -> None:
    """A rule matching a severity outside the four is a ConfigError naming the field."""
    message = routing_error(tmp_path, VALID_ROUTING + "    match: {severity: [urgent]}\n")
    assert "rules.0.match.severity.0" in message


def test_bad_matcher_in_config(tmp_path: Path) -> None:
    """A malformed label matcher in the routing file is a ConfigError quoting it."""
    text = VALID_ROUTING + "    match: {labels: ['network==mainnet\"']}\n"
    message = routing_error(tmp_path, text)
    assert "rules.0.match.labels" in message
    assert 'network==mainnet"' in message


def test_bad_regex_in_config(tmp_path: Path) -> None:
    """A label regex that does not compile is a ConfigError quoting the matcher."""
    text = VALID_ROUTING + "    match: {labels: ['network=~\"[main\"']}\n"
    message = routing_error(tmp_path, text)
    assert "invalid regex" in message
    assert "network=~" in message


def test_tier_without_roles_or_people(tmp_path: Path) -> None:
    """A tier with neither roles nor people is a ConfigError naming the tier."""
    text = VALID_ROUTING.replace(
        "  oncall: {roles: [oncall], clearance: confidential}",
        "  oncall: {roles: [oncall], clearance: confidential}\n  empty: {clearance: public}",
    )
    message = routing_error(tmp_path, text)
    assert "tiers.empty" in message
    assert "at least one role or person" in message


def test_role_nobody_holds(tmp_path: Path) -> None:
    """A tier whose role nobody in the directory holds is a ConfigError naming tier and role."""
    message = routing_error(tmp_path, VALID_ROUTING.replace("roles: [oncall]", "roles: [ghosts]"))
    assert message == "tier 'oncall': nobody in the directory has role 'ghosts'"


def test_unknown_person_in_tier(tmp_path: Path) -> None:
    """A tier naming a person missing from the directory is a ConfigError naming both."""
    text = VALID_ROUTING.replace("roles: [oncall]", "roles: [oncall], people: [zed]")
    assert routing_error(tmp_path, text) == "tier 'oncall' names unknown person 'zed'"


def test_misspelled_rule_key(tmp_path: Path) -> None:
    """An unknown key in a rule is a ConfigError naming it, not silently ignored."""
    message = routing_error(tmp_path, VALID_ROUTING + "    confidentialty: confidential\n")
    assert "rules.0.confidentialty" in message


def test_bad_template_name(tmp_path: Path) -> None:
    """A template name that is not a slug is a ConfigError naming rules.<i>.template."""
    message = routing_error(tmp_path, VALID_ROUTING.replace("template: alert", "template: ../x"))
    assert "rules.0.template" in message


def test_routing_without_rules(tmp_path: Path) -> None:
    """A routing file without rules is a ConfigError naming 'rules'."""
    assert "rules" in routing_error(tmp_path, VALID_ROUTING.split("rules:")[0])


def directory_error(tmp_path: Path, text: str) -> str:
    """Load a directory file that must fail and return the ConfigError message."""
    with pytest.raises(ConfigError) as info:
        Directory.load(write(tmp_path, "directory.yaml", text))
    return str(info.value)


def test_duplicate_person_id(tmp_path: Path) -> None:
    """Two people with one id are a ConfigError naming the id."""
    text = VALID_DIRECTORY + VALID_DIRECTORY.split("people:")[1]
    assert "person id 'alice' appears twice" in directory_error(tmp_path, text)


@pytest.mark.parametrize("locale", ["xx_QQ", "en_QQ", "klingon"])
def test_unknown_locale(tmp_path: Path, locale: str) -> None:
    """An unknown locale is a ConfigError naming the field and the value."""
    message = directory_error(tmp_path, VALID_DIRECTORY.replace("locale: en", f"locale: {locale}"))
    assert "people.0.locale" in message
    assert f"unknown locale {locale!r}" in message
    assert "directory.yaml" in message


def test_locale_with_hyphen_is_normalized() -> None:
    """A BCP 47 style locale such as en-US is accepted and stored as en_US."""
    assert person("x", "r", locale="en-US").locale == "en_US"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe", "../etc/passwd", ""])
def test_unknown_timezone(tmp_path: Path, zone: str) -> None:
    """An unknown or malformed timezone is a ConfigError naming the field."""
    text = VALID_DIRECTORY.replace("timezone: Europe/Berlin", f"timezone: '{zone}'")
    message = directory_error(tmp_path, text)
    assert "people.0.timezone" in message
    assert "unknown timezone" in message


@pytest.mark.parametrize("address", ["alice", "alice@", "alice at example.org"])
def test_invalid_email(tmp_path: Path, address: str) -> None:
    """An address that is not an email is a ConfigError naming the contact field."""
    text = VALID_DIRECTORY.replace("alice@example.org", address)
    message = directory_error(tmp_path, text)
    assert "people.0.contacts.0.address" in message
    assert "not a valid email address" in message


def test_unknown_channel(tmp_path: Path) -> None:
    """A contact on a channel the engine does not know is a ConfigError naming the field."""
    text = VALID_DIRECTORY.replace("channel: email", "channel: pager")
    assert "people.0.contacts.0.channel" in directory_error(tmp_path, text)


def test_person_without_roles(tmp_path: Path) -> None:
    """A person with no roles is a ConfigError naming the field."""
    text = VALID_DIRECTORY.replace("roles: [oncall]", "roles: []")
    assert "people.0.roles" in directory_error(tmp_path, text)


def test_missing_file(tmp_path: Path) -> None:
    """A missing directory file is a ConfigError naming the path."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="file not found") as info:
        Directory.load(path)
    assert str(path) in str(info.value)


def test_malformed_yaml(tmp_path: Path) -> None:
    """A file that is not YAML is a ConfigError saying so."""
    path = write(tmp_path, "routing.yaml", "tiers: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        RoutingConfig.load(path)


def test_directory_lookups() -> None:
    """The directory finds people by id and by role, in directory order."""
    directory = Directory(PEOPLE)
    assert len(directory) == 5
    assert [p.id for p in directory.with_role("oncall")] == ["alice", "dave"]
    assert directory.with_role("nobody") == []
    assert directory.get("carol") == PEOPLE[2]
    assert directory.get("zed") is None
    assert directory.roles() == {"oncall", "commander", "partner", "public"}


def test_person_contact_prefers_first() -> None:
    """A person's contact on a channel is the first one listed."""
    p = person("x", "r")
    second = Contact.model_validate({"channel": "email", "address": "second@example.org"})
    both = p.model_copy(update={"contacts": (*p.contacts, second)})
    contact = both.contact(p.contacts[0].channel)
    assert contact is not None
    assert contact.address == "x@example.org"


# --- the shipped example configuration -------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Router:
    """The router built from config/routing.yaml and config/directory.yaml."""
    return Router(
        RoutingConfig.load(CONFIG / "routing.yaml"), Directory.load(CONFIG / "directory.yaml")
    )


INSIDERS_CONFIDENTIAL = {"ana.costa", "jonas.weber", "priya.raman", "mei.lin", "lukas.meier"}
PARTNERS = {"carlos.ruiz", "helga.berg"}


def test_shipped_emergency_upgrade_routing(shipped: Router) -> None:
    """The emergency upgrade reaches insiders confidential, partners/regulator restricted."""
    recipients = shipped.route(sample_event("policy-emergency-upgrade.json"))
    by_id = {r.person.id: r for r in recipients}
    assert set(by_id) == INSIDERS_CONFIDENTIAL | PARTNERS | {"sofia.navarro", "public-advisories"}
    for pid in INSIDERS_CONFIDENTIAL:
        assert by_id[pid].clearance is Clearance.CONFIDENTIAL
        assert by_id[pid].template == "policy-change"
    for pid in [*PARTNERS, "sofia.navarro"]:
        assert by_id[pid].clearance is Clearance.RESTRICTED
        assert by_id[pid].template == "policy-change"
    public = by_id["public-advisories"]
    assert public.template == "public-advisory"
    assert public.clearance is Clearance.PUBLIC
    assert public.contact.address == "advisories@lists.example.net"


def test_shipped_hot_patch_also_goes_public(shipped: Router) -> None:
    """A high-risk hot patch reaches the same insiders and the public advisory list."""
    recipients = reached(shipped.route(sample_event("policy-hot-patch.json")))
    assert recipients["public-advisories"] is Clearance.PUBLIC
    assert recipients["sofia.navarro"] is Clearance.RESTRICTED
    assert recipients["lukas.meier"] is Clearance.CONFIDENTIAL


def test_shipped_routine_policy_stays_restricted(shipped: Router) -> None:
    """A low-risk amendment reaches commanders, partners and regulator restricted, no public."""
    recipients = reached(shipped.route(policy_event("amended", "low")))
    assert recipients == dict.fromkeys(
        {"mei.lin", "lukas.meier", "carlos.ruiz", "helga.berg", "sofia.navarro"},
        Clearance.RESTRICTED,
    )


def test_shipped_critical_emergency_without_public_change(shipped: Router) -> None:
    """A critical 'revoked' change reaches the insiders but not the public list."""
    recipients = reached(shipped.route(policy_event("revoked", "critical")))
    assert "public-advisories" not in recipients
    assert recipients["ana.costa"] is Clearance.CONFIDENTIAL


def test_shipped_warning_on_testnet_reaches_nobody(shipped: Router) -> None:
    """A warning alert on testnet is routed to nobody."""
    assert shipped.route(alert_event("warning", labels={"network": "testnet"})) == []


def test_shipped_warning_on_mainnet_reaches_oncall(shipped: Router) -> None:
    """The Alertmanager warning on mainnet reaches on-call operators, restricted."""
    recipients = reached(shipped.route(sample_event("alertmanager-webhook.json")))
    assert recipients == dict.fromkeys(
        {"ana.costa", "jonas.weber", "priya.raman", "lukas.meier"}, Clearance.RESTRICTED
    )


def test_shipped_critical_mainnet_alert(shipped: Router) -> None:
    """The critical mainnet alert reaches responders and commanders, partners restricted only."""
    event = sample_event("alert-firing.json")
    recipients = reached(shipped.route(event))
    assert recipients == {
        **dict.fromkeys(INSIDERS_CONFIDENTIAL, Clearance.CONFIDENTIAL),
        **dict.fromkeys(PARTNERS, Clearance.RESTRICTED),
    }
    verdicts = {v.rule.name: v for v in shipped.explain(event)}
    assert verdicts["critical-mainnet-alerts"].matched
    assert verdicts["urgent-alerts"].evaluated is False


def test_shipped_critical_testnet_alert_stays_internal(shipped: Router) -> None:
    """A critical alert off mainnet reaches responders and commanders only."""
    recipients = reached(shipped.route(alert_event("critical", labels={"network": "testnet"})))
    assert recipients == dict.fromkeys(INSIDERS_CONFIDENTIAL, Clearance.CONFIDENTIAL)


def test_critical_rules_can_fan_out_to_every_contact() -> None:
    """With Slack enabled, a rule with fan_out pages people on Slack and email at once; an
    event under a rule without it reaches each person on their first contact only."""
    root = Path(__file__).resolve().parent.parent
    directory = Directory.load(
        root / "config" / "directory.yaml", [ChannelKind.EMAIL, ChannelKind.SLACK]
    )
    router = Router(RoutingConfig.load(root / "config" / "routing.yaml"), directory)
    firing = decode_record((root / "config" / "samples" / "alert-firing.json").read_bytes(), ())[0]
    channels: dict[str, list[str]] = {}
    for r in router.route(firing):
        channels.setdefault(r.person.id, []).append(r.contact.channel.value)
    assert channels["mei.lin"] == ["slack", "email"]
    assert channels["ana.costa"] == ["email"]  # no Slack id
    raw = orjson.loads((root / "config" / "samples" / "alert-firing.json").read_bytes())
    raw["data"]["severity"] = "warning"
    warning = decode_record(orjson.dumps(raw), ())[0]
    routed = router.route(warning)
    assert routed and len({r.person.id for r in routed}) == len(routed)  # one each
    assert {r.person.id: r.contact.channel.value for r in routed}["priya.raman"] == "slack"
