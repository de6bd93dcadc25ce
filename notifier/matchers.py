"""Alertmanager-style label matchers, for silences and inhibition rules.

A matcher is a label name, an operator and a value::

    alertname="ConsensusFinalityLag"   equal
    severity!=warning                  not equal (unquoted: no spaces, commas, quotes or braces)
    network=~"main.*"                  matches the regex
    instance!~"node-(1|2)"             does not match the regex

Label names match ``[a-zA-Z_][a-zA-Z0-9_]*``; whitespace around the operator is allowed. In a
quoted value ``\\"``, ``\\\\`` and ``\\n`` stand for a double quote, a backslash and a newline;
any other backslash is literal, so a regex's ``\\.`` keeps its meaning. Regexes use Python's
``re`` syntax and must match the whole label value (``=~"main"`` does not match ``mainnet``).

The labels matched are a flat mapping that includes ``alertname`` and ``severity``. A label the
alert does not carry reads as the empty string: ``foo=""`` matches alerts without ``foo`` and
``foo!=""`` requires it. A list of matchers, ``{alertname="X", network=~"main.*"}`` (braces
optional), matches when every matcher does. Because absent labels read as empty, a list whose
matchers all accept the empty string matches far too much; see :func:`matches_everything`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = [
    "MAX_REGEX_LENGTH",
    "MAX_VALUE_LENGTH",
    "Matcher",
    "MatcherField",
    "Op",
    "matches_all",
    "matches_everything",
    "parse",
    "parse_all",
]

# The caps keep compiling and comparing cheap. They do not stop backtracking: Python's re, unlike
# Alertmanager's RE2, can still take long on a short pattern such as (a+)+b.
MAX_REGEX_LENGTH = 1_000
MAX_VALUE_LENGTH = 4_096

_FORMS = 'write name="value", name!="value", name=~"regex" or name!~"regex"'
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_NAME_CANDIDATE = re.compile(r'\s*([^\s=!~"]*)\s*')
_OPERATOR = re.compile(r"(=~|!~|!=|=)\s*")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_UNESCAPE = re.compile(r'\\(["\\n])')
_NOT_BARE = frozenset(' \t\r\n,"{}')


class Op(StrEnum):
    """A matcher's operator, written as in Alertmanager."""

    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:80] + "…")


def _error(text: str, problem: str) -> ValueError:
    return ValueError(f"matcher {_shown(text)}: {problem}; {_FORMS}")


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label condition; validated (and its regex compiled) when constructed."""

    name: str
    op: Op
    value: str
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        shown = f"{self.name}{self.op}{_quote(self.value)}"
        if not _NAME.fullmatch(self.name):
            raise _error(shown, f"label name {self.name!r} must match [a-zA-Z_][a-zA-Z0-9_]*")
        try:
            op = Op(self.op)
        except ValueError:
            raise _error(shown, f"unknown operator {self.op!r}") from None
        object.__setattr__(self, "op", op)
        if len(self.value) > MAX_VALUE_LENGTH:
            raise _error(shown, f"value longer than {MAX_VALUE_LENGTH} characters")
        if op in (Op.RE, Op.NRE):
            if len(self.value) > MAX_REGEX_LENGTH:
                raise _error(shown, f"regex longer than {MAX_REGEX_LENGTH} characters")
            try:
                pattern = re.compile(self.value)
            # re reports a huge repeat count and deep nesting as these, not as re.error.
            except (re.error, OverflowError, RecursionError) as exc:
                raise _error(shown, f"invalid regex {_shown(self.value)}: {exc}") from None
            object.__setattr__(self, "_pattern", pattern)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Tell whether ``labels`` satisfy this matcher; a missing label reads as ``""``."""
        actual = labels.get(self.name, "")
        if self._pattern is not None:
            found = self._pattern.fullmatch(actual) is not None
            return found if self.op is Op.RE else not found
        return (actual == self.value) if self.op is Op.EQ else (actual != self.value)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"


def parse(text: str) -> Matcher:
    """Parse one matcher such as ``network=~"main.*"``; ValueError says what is wrong."""
    if not text.strip():
        raise _error(text, "empty")
    name_match = _NAME_CANDIDATE.match(text)
    assert name_match is not None  # the pattern accepts the empty string
    name = name_match[1]
    if not name:
        raise _error(text, "missing label name")
    if not _NAME.fullmatch(name):
        raise _error(text, f"label name {name!r} must match [a-zA-Z_][a-zA-Z0-9_]*")
    op_match = _OPERATOR.match(text, name_match.end())
    if op_match is None:
        found = text[name_match.end() :][:2]
        problem = f"found {found!r}" if found else "nothing follows"
        raise _error(text, f"expected an operator after {name!r}, {problem}")
    op = Op(op_match[1])
    rest = text[op_match.end() :]
    if rest.startswith('"'):
        quoted = _QUOTED.match(rest)
        if quoted is None:
            raise _error(text, "the quoted value has no closing double quote")
        if tail := rest[quoted.end() :].strip():
            raise _error(text, f"unexpected {_shown(tail)} after the quoted value")
        value = _UNESCAPE.sub(lambda m: "\n" if m[1] == "n" else m[1], quoted[1])
        return Matcher(name, op, value)
    value = rest.rstrip()
    if not value:
        raise _error(text, f'missing value (to match an absent label, write {name}{op}"")')
    # A bare value starting with an operator character is a mistyped operator ("==", "=!"),
    # not a value; to mean it, quote it.
    if value[0] in "=!~":
        raise _error(text, f"unexpected {value[0]!r} after the operator {str(op)!r}")
    if _NOT_BARE.intersection(value):
        raise _error(text, "an unquoted value cannot contain spaces, commas, quotes or braces")
    return Matcher(name, op, value)


def _split_on_commas(text: str) -> list[str]:
    pieces: list[str] = []
    start, in_quotes, escaped = 0, False, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and in_quotes:
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
        elif char == "," and not in_quotes:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    return pieces


def parse_all(text: str) -> tuple[Matcher, ...]:
    """Parse ``{alertname="X", network=~"main.*"}``, braces optional; ValueError if empty."""
    body = text.strip()
    example = 'write a list as {alertname="X", network=~"main.*"}'
    if body.startswith("{") != body.endswith("}"):
        raise ValueError(f"matcher list {_shown(text)}: unbalanced braces; {example}")
    if body.startswith("{"):
        body = body[1:-1]
    pieces = [piece.strip() for piece in _split_on_commas(body)]
    if len(pieces) > 1 and not pieces[-1]:
        pieces.pop()  # a trailing comma, as Alertmanager allows
    if pieces == [""]:
        raise ValueError(f"matcher list {_shown(text)}: needs at least one matcher; {example}")
    if "" in pieces:
        raise ValueError(f"matcher list {_shown(text)}: empty matcher between commas")
    return tuple(parse(piece) for piece in pieces)


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    """Tell whether every matcher matches ``labels`` (true for an empty sequence)."""
    return all(matcher.matches(labels) for matcher in matchers)


def matches_everything(matchers: Sequence[Matcher]) -> bool:
    """Tell whether these matchers all match an alert that has no labels at all.

    Such a set also matches every alert lacking the labels it names (``foo=""``), or every
    alert outright (``foo=~".*"``), because absent labels read as empty. Alertmanager refuses
    silences like that: at least one matcher must require a non-empty value. Callers creating
    silences or inhibition rules should refuse a set for which this returns true.
    """
    return matches_all(matchers, {})


def _mapping_text(raw: Mapping[object, object], key: str, default: str | None = None) -> str:
    item = raw.get(key, default)
    if item is None:
        raise ValueError(
            f"a matcher mapping needs {key!r}, as in {{name: network, value: mainnet}}"
        )
    # YAML turns an unquoted 1.10 into the float 1.1; refuse non-strings rather than guess.
    if not isinstance(item, str):
        raise ValueError(f"matcher {key} must be a string, got {type(item).__name__}")
    return item


def _from_mapping(raw: Mapping[object, object]) -> Matcher:
    if unknown := set(raw) - {"name", "op", "value"}:
        names = ", ".join(sorted(map(repr, unknown)))
        raise ValueError(f"unknown keys {names}; a matcher mapping has name, op and value")
    name, op, value = (
        _mapping_text(raw, "name"),
        _mapping_text(raw, "op", "="),
        _mapping_text(raw, "value"),
    )
    if op not in tuple(Op):
        raise ValueError(f"unknown operator {op!r}; {_FORMS}")
    return Matcher(name, Op(op), value)


def _coerce(raw: object) -> Matcher:
    if isinstance(raw, Matcher):
        return raw
    if isinstance(raw, str):
        return parse(raw)
    if isinstance(raw, Mapping):
        return _from_mapping(raw)
    raise ValueError(
        f"expected a matcher such as 'alertname=\"X\"' or a mapping with name, op and value, "
        f"got {type(raw).__name__}"
    )


MatcherField = Annotated[
    Matcher,
    BeforeValidator(_coerce),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "examples": ['alertname="NetworkPartition"']},
                {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "op": {"enum": [op.value for op in Op], "default": "="},
                        "value": {"type": "string"},
                    },
                    "required": ["name", "value"],
                    "additionalProperties": False,
                },
            ]
        }
    ),
]
"""A pydantic field type: accepts ``'name="value"'`` or ``{name, op, value}``, dumps the string."""
