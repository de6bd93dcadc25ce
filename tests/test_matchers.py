"""Label matchers: operators, anchoring, absent labels, parsing, escaping, lists, pydantic."""

from __future__ import annotations

import inspect
import re
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from notifier.matchers import (
    MAX_REGEX_LENGTH,
    MAX_VALUE_LENGTH,
    Matcher,
    MatcherField,
    Op,
    matches_all,
    matches_everything,
    parse,
    parse_all,
)

ALERT = {
    "alertname": "ConsensusFinalityLag",
    "severity": "critical",
    "network": "mainnet",
    "client": "lighthouse",
    "instance": "node-1",
}
FORMS = 'write name="value", name!="value", name=~"regex" or name!~"regex"'

names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]*", fullmatch=True)
values = st.text(max_size=40)
label_sets = st.dictionaries(names, values, max_size=5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('alertname="ConsensusFinalityLag"', True),
        ('alertname="NodeDown"', False),
        ('severity!="warning"', True),
        ('severity!="critical"', False),
        ('network=~"main.*"', True),
        ('network=~"test.*"', False),
        ('instance!~"node-(2|3)"', True),
        ('instance!~"node-(1|2)"', False),
    ],
)
def test_each_operator(text: str, expected: bool) -> None:
    """Each operator compares the label's value as its name says."""
    assert parse(text).matches(ALERT) is expected


def test_regexes_are_anchored_at_both_ends() -> None:
    """A regex must match the whole value, not a part of it."""
    assert not parse('network=~"main"').matches(ALERT)
    assert not parse('network=~"net"').matches(ALERT)
    assert parse('network!~"main"').matches(ALERT)
    assert not parse('network=~"mainnet"').matches({"network": "mainnet\n"})


def test_alternation_is_anchored_as_a_whole() -> None:
    """Every alternative must match the whole value."""
    matcher = parse('network=~"main|test"')
    assert matcher.matches({"network": "test"})
    assert not matcher.matches({"network": "mainnet"})
    assert not matcher.matches({"network": "testnet"})


def test_regex_may_start_with_inline_flags() -> None:
    """(?i) at the start of a regex makes it case-insensitive, as in Alertmanager."""
    assert parse('network=~"(?i)MAIN.*"').matches(ALERT)


def test_missing_label_reads_as_empty() -> None:
    """foo="" matches alerts without foo; foo!="" needs foo to be present."""
    assert parse('team=""').matches(ALERT)
    assert not parse('team!=""').matches(ALERT)
    assert parse('team!=""').matches({**ALERT, "team": "validators"})
    assert not parse('team="validators"').matches(ALERT)
    assert parse('team!="validators"').matches(ALERT)
    assert parse('team=~"v.*|"').matches(ALERT)
    assert not parse('team=~".+"').matches(ALERT)


def test_construction_validates_and_compiles_once() -> None:
    """Building a Matcher checks it; the compiled regex is cached, not part of equality."""
    matcher = Matcher("network", Op.RE, "main.*")
    assert matcher == parse('network=~"main.*"')
    assert hash(matcher) == hash(parse('network =~ "main.*"'))
    assert repr(matcher) == "Matcher(name='network', op=<Op.RE: '=~'>, value='main.*')"
    with pytest.raises(ValueError, match="label name 'bad-name' must match"):
        Matcher("bad-name", Op.EQ, "x")
    with pytest.raises(ValueError, match="invalid regex"):
        Matcher("network", Op.NRE, "(")


def test_str_quotes_and_escapes_the_value() -> None:
    """The canonical form quotes the value, escaping backslash, double quote and newline."""
    assert str(parse("severity!=warning")) == 'severity!="warning"'
    assert str(Matcher("a", Op.EQ, 'say "hi"\\\n')) == 'a="say \\"hi\\"\\\\\\n"'


@pytest.mark.parametrize(
    "value",
    ['say "hi"', "back\\slash", "trailing\\", "a,b", "{x}", "two\nlines", "тест ✓ 日本", "", " "],
)
def test_escaping_round_trips(value: str) -> None:
    """Parsing the canonical form gives back the same matcher, whatever the value holds."""
    for op in (Op.EQ, Op.NE):
        matcher = Matcher("label", op, value)
        assert parse(str(matcher)) == matcher


def test_regex_backslashes_keep_their_meaning() -> None:
    """Only \\", \\\\ and \\n are escapes in a quoted value; \\. stays a regex escape."""
    matcher = parse(r'version=~"v5\.3\..*"')
    assert matcher.value == r"v5\.3\..*"
    assert matcher.matches({"version": "v5.3.0"})
    assert not matcher.matches({"version": "v5x3.0"})
    assert parse(str(matcher)) == matcher


def test_unquoted_values_and_whitespace() -> None:
    """Values without spaces, commas or quotes may go unquoted; spaces around the op are fine."""
    assert parse("severity!=warning") == Matcher("severity", Op.NE, "warning")
    assert parse("  network =~ main.* ") == Matcher("network", Op.RE, "main.*")
    assert parse('instance !~ "node-(1|2)"') == Matcher("instance", Op.NRE, "node-(1|2)")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('network=="x"', "unexpected '=' after the operator '='"),
        ("severity=!warning", "unexpected '!' after the operator '='"),
        ('network~="x"', "expected an operator after 'network', found '~='"),
        ("network", "expected an operator after 'network', nothing follows"),
        ("", "empty"),
        ('="x"', "missing label name"),
        ('1network="x"', "label name '1network' must match [a-zA-Z_][a-zA-Z0-9_]*"),
        ('net-work="x"', "label name 'net-work' must match"),
        ('network="main', "the quoted value has no closing double quote"),
        ('network="main\\"', "the quoted value has no closing double quote"),
        ('network="main" net', "unexpected 'net' after the quoted value"),
        ("network=", 'missing value (to match an absent label, write network="")'),
        ("network=main net", "an unquoted value cannot contain spaces, commas, quotes or braces"),
        ("network=a,b", "an unquoted value cannot contain"),
        ('network=~"main(.*"', "invalid regex 'main(.*': missing ), unterminated subpattern"),
        ('network=~"a{99999999999}"', "invalid regex 'a{99999999999}': the repetition number"),
    ],
)
def test_parse_errors_say_what_is_wrong_and_show_the_forms(text: str, problem: str) -> None:
    """A bad matcher raises ValueError naming the text, the problem and the right forms."""
    with pytest.raises(ValueError) as caught:
        parse(text)
    message = str(caught.value)
    assert message.startswith(f"matcher {text!r}: ")
    assert problem in message
    assert message.endswith(FORMS)


def test_lengths_are_limited() -> None:
    """Over-long regexes and values are refused, and the message shows a shortened text."""
    with pytest.raises(ValueError, match=f"regex longer than {MAX_REGEX_LENGTH}") as caught:
        parse(f'network=~"{"a" * (MAX_REGEX_LENGTH + 1)}"')
    assert len(str(caught.value)) < 300
    with pytest.raises(ValueError, match=f"value longer than {MAX_VALUE_LENGTH}"):
        Matcher("network", Op.EQ, "a" * (MAX_VALUE_LENGTH + 1))
    assert Matcher("network", Op.EQ, "a" * MAX_VALUE_LENGTH).matches({"network": "a" * 4096})


def test_too_deep_regex_is_refused_not_crashing() -> None:
    """A regex too deeply nested for the stack raises ValueError, not RecursionError."""
    depth = MAX_REGEX_LENGTH // 2
    limit = sys.getrecursionlimit()
    # Recursion depth left over varies with the runner; pin it so the compile surely overflows.
    sys.setrecursionlimit(len(inspect.stack()) + 100)
    try:
        with pytest.raises(ValueError, match="invalid regex '\\(\\(\\(") as caught:
            Matcher("network", Op.RE, "(" * depth + ")" * depth)
    finally:
        sys.setrecursionlimit(limit)
    assert "recursion" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        '{alertname="X", network=~"main.*"}',
        'alertname="X", network=~"main.*"',
        '  { alertname = X ,network=~"main.*" , }  ',
        'alertname="X",network=~"main.*",',
    ],
)
def test_parse_all_with_and_without_braces(text: str) -> None:
    """A list may be braced or not, spaced or not, with a trailing comma."""
    assert parse_all(text) == (
        Matcher("alertname", Op.EQ, "X"),
        Matcher("network", Op.RE, "main.*"),
    )


def test_parse_all_keeps_commas_and_braces_inside_quotes() -> None:
    """Commas, braces and escaped quotes inside a quoted value do not split the list."""
    assert parse_all('{summary="a, b}", quote="x\\",y", zone=~"eu-(1|2),?"}') == (
        Matcher("summary", Op.EQ, "a, b}"),
        Matcher("quote", Op.EQ, 'x",y'),
        Matcher("zone", Op.RE, "eu-(1|2),?"),
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "needs at least one matcher"),
        ("{}", "needs at least one matcher"),
        (" { , } ", "needs at least one matcher"),
        ('{a="x"', "unbalanced braces"),
        ('a="x"}', "unbalanced braces"),
        ('a="x",,b="y"', "empty matcher between commas"),
        ('a="x", b=="y"', "matcher 'b==\"y\"': unexpected '='"),
        ('a="x, b="y"', 'matcher \'a="x, b="y"\''),
    ],
)
def test_parse_all_errors(text: str, problem: str) -> None:
    """A bad list says what is wrong; a bad item is named on its own."""
    with pytest.raises(ValueError) as caught:
        parse_all(text)
    assert problem in str(caught.value)


def test_matches_all_needs_every_matcher() -> None:
    """A list matches when every matcher does; the empty list matches anything."""
    assert matches_all(parse_all('alertname="ConsensusFinalityLag", network=~"main.*"'), ALERT)
    assert not matches_all(parse_all('alertname="ConsensusFinalityLag", network="testnet"'), ALERT)
    assert matches_all([], ALERT)


@pytest.mark.parametrize(
    ("text", "everything"),
    [
        ('foo=""', True),
        ('foo=~".*"', True),
        ('foo=~".*", bar!="x"', True),
        ('foo=~"a|"', True),
        ('foo="x"', False),
        ('foo=~".+"', False),
        ('foo!=""', False),
        ('foo=~".*", alertname="NodeDown"', False),
    ],
)
def test_matches_everything(text: str, everything: bool) -> None:
    """A set is too broad when all its matchers accept an alert with no labels."""
    assert matches_everything(parse_all(text)) is everything


class Silence(BaseModel):
    """A config model using the field type."""

    matchers: list[MatcherField]


def test_pydantic_field_accepts_strings_and_mappings() -> None:
    """The field takes the string form or a mapping (op defaults to "=") and dumps strings."""
    silence = Silence.model_validate(
        {
            "matchers": [
                'alertname="NetworkPartition"',
                {"name": "network", "op": "=~", "value": "main.*"},
                {"name": "severity", "value": "critical"},
                Matcher("client", Op.NE, "prysm"),
            ]
        }
    )
    assert silence.matchers == [
        Matcher("alertname", Op.EQ, "NetworkPartition"),
        Matcher("network", Op.RE, "main.*"),
        Matcher("severity", Op.EQ, "critical"),
        Matcher("client", Op.NE, "prysm"),
    ]
    dumped = [
        'alertname="NetworkPartition"',
        'network=~"main.*"',
        'severity="critical"',
        'client!="prysm"',
    ]
    assert silence.model_dump() == {"matchers": dumped}
    assert Silence.model_validate_json(silence.model_dump_json()) == silence


def test_pydantic_field_has_a_json_schema() -> None:
    """The schema offers the string form and the mapping form."""
    schema = Silence.model_json_schema()["properties"]["matchers"]["items"]
    assert [option["type"] for option in schema["anyOf"]] == ["string", "object"]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            'network=="x"',
            f"matcher 'network==\"x\"': unexpected '=' after the operator '='; {FORMS}",
        ),
        ({"name": "network", "op": "==", "value": "x"}, "unknown operator '=='"),
        ({"name": "network"}, "a matcher mapping needs 'value'"),
        ({"name": "network", "value": 1.1}, "matcher value must be a string, got float"),
        ({"name": "network", "value": "x", "regex": True}, "unknown keys 'regex'"),
        ({"name": "network", "op": "=~", "value": "("}, "invalid regex"),
        (42, "expected a matcher such as"),
    ],
)
def test_pydantic_field_reports_the_helpful_message(raw: Any, problem: str) -> None:
    """A bad matcher becomes a ValidationError carrying the matcher's own message."""
    with pytest.raises(ValidationError) as caught:
        Silence.model_validate({"matchers": [raw]})
    [error] = caught.value.errors()
    assert error["loc"] == ("matchers", 0)
    assert problem in str(caught.value)


@given(name=names, value=values)
def test_equality_round_trips_and_matches_itself(name: str, value: str) -> None:
    """Any name and value survive str() and parse(), and name="value" matches that label."""
    matcher = Matcher(name, Op.EQ, value)
    assert parse(str(matcher)) == matcher
    assert matcher.matches({name: value})


@given(name=names, value=values, labels=label_sets)
def test_ne_is_the_negation_of_eq(name: str, value: str, labels: dict[str, str]) -> None:
    """!= matches exactly when = does not."""
    for candidate in (labels, {**labels, name: value}):
        eq = Matcher(name, Op.EQ, value).matches(candidate)
        assert Matcher(name, Op.NE, value).matches(candidate) is not eq


@given(name=names, value=values, labels=label_sets)
def test_nre_is_the_negation_of_re(name: str, value: str, labels: dict[str, str]) -> None:
    """!~ matches exactly when =~ does not; an escaped regex matches its own text."""
    regex = re.escape(value)
    assert Matcher(name, Op.RE, regex).matches({name: value})
    for candidate in (labels, {**labels, name: value}):
        found = Matcher(name, Op.RE, regex).matches(candidate)
        assert Matcher(name, Op.NRE, regex).matches(candidate) is not found
        assert parse(str(Matcher(name, Op.NRE, regex))) == Matcher(name, Op.NRE, regex)
