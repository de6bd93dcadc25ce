"""The command line: help, config check, routes test, publish --dry-run, templates, alerts.

In-process tests drive ``notifier.cli.cli`` with click's ``CliRunner``; the error paths that
depend on ``notifier.cli.main`` (one ``error: ...`` line, exit code 2) run
``python -m notifier`` in a subprocess. Everything runs from the repository root, since the
templates, locales and SQLite paths resolve against the working directory.
"""

from __future__ import annotations

import gettext
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from argon2 import PasswordHasher
from babel.messages.pofile import read_po
from click.testing import CliRunner, Result

import notifier.cli
import notifier.cli_state
from notifier import library
from notifier.cli import cli
from notifier.store import Database
from notifier.store import library as library_store
from notifier.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "config" / "samples"
EMERGENCY = SAMPLES / "policy-emergency-upgrade.json"

PEOPLE = [
    "Ana Costa",
    "Jonas Weber",
    "Priya Raman",
    "Lukas Meier",
    "Mei Lin",
    "Carlos Ruiz",
    "Helga Berg",
    "Sofía Navarro",
    "Network advisory list",
]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repo root, without the caller's NOTIFIER_* variables or logging setup.

    ``cli`` configures structlog globally, writing to the ``sys.stderr`` of the moment, which
    inside ``CliRunner`` is a stream closed after the call; other tests in the session would
    then log into it. The subprocess tests exercise the real logging setup.
    """
    monkeypatch.chdir(ROOT)
    for name in list(os.environ):
        if name.startswith("NOTIFIER_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(notifier.cli, "configure", lambda settings: None)
    monkeypatch.setattr(notifier.cli_state, "configure", lambda settings: None)


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Make any attempt to produce fail loudly, and point the broker at a closed port."""
    calls: list[object] = []

    async def refuse(*args: object) -> int:
        calls.append(args)
        raise AssertionError("publish() must not be called")

    monkeypatch.setattr(notifier.cli, "publish", refuse)
    monkeypatch.setenv("NOTIFIER_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    return calls


def invoke(*args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, prog_name="notifier")


def run_main(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m notifier ARGS`` (that is, ``notifier.cli.main``) from the repo root."""
    return subprocess.run(
        [sys.executable, "-m", "notifier", *map(str, args)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def flat(text: str) -> str:
    """Collapse whitespace, so help text wrapped at any width compares as one line."""
    return " ".join(text.split())


def copy_config(tmp_path: Path, **settings: Any) -> Path:
    """Copy config/*.yaml into tmp_path/config, merge ``settings`` into notifier.yaml."""
    folder = tmp_path / "config"
    folder.mkdir()
    for source in (ROOT / "config").glob("*.yaml"):
        shutil.copy(source, folder / source.name)
    main = folder / "notifier.yaml"
    if settings:
        data = yaml.safe_load(main.read_text())
        for section, values in settings.items():
            data.setdefault(section, {}).update(values)
        main.write_text(yaml.safe_dump(data))
    return main


def edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def copy_translations(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Copy templates/ and locales/ to tmp_path; return (config, templates, locales)."""
    templates = tmp_path / "templates"
    locales = tmp_path / "locales"
    shutil.copytree(ROOT / "templates", templates)
    shutil.copytree(ROOT / "locales", locales)
    config = copy_config(
        tmp_path, templates={"directory": str(templates), "locales_directory": str(locales)}
    )
    return config, templates, locales


def recipient_lines(output: str) -> dict[str, str]:
    lines = [line for line in output.splitlines() if line.strip().startswith("→")]
    return {line.split("→", 1)[1].split("<", 1)[0].strip(): line for line in lines}


# --- help --------------------------------------------------------------------------------------

HELP = [
    ([], "Kafka events in, localized pre-approved notifications out"),
    (["run"], "Consume events, route them, deliver notifications and serve the HTTP API"),
    (["demo"], "Run everything locally: embedded broker, SQLite, SMTP capture"),
    (["publish"], "Validate events from SOURCE (a file or - for stdin) and produce them"),
    (["alerts"], "List alerts from the store, newest first"),
    (["routes"], "Inspect routing"),
    (["routes", "test"], "Print who would be notified about an event"),
    (["templates"], "Templates and their translations"),
    (["templates", "export"], "Write the approved (live) templates and catalogs back to files"),
    (["console"], "The web console"),
    (["console", "password"], "Set a console password for PERSON"),
    (["templates", "extract"], "Extract translatable messages from templates/"),
    (["templates", "update"], "Merge locales/notifier.pot into every catalog"),
    (["templates", "compile"], "Compile every catalog (.po) into the binary form"),
    (["templates", "list"], "List templates with their channels, parts and content hashes"),
    (["config"], "Check the configuration"),
    (["config", "check"], "Validate settings, directory, routing and templates"),
]


@pytest.mark.parametrize(
    ("command", "purpose"), HELP, ids=[" ".join(c) or "notifier" for c, _ in HELP]
)
def test_help_names_the_commands_purpose(command: list[str], purpose: str) -> None:
    """`--help` on the group and on every command exits 0 and states what the command does."""
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: notifier {' '.join(command)}".rstrip())
    assert purpose in flat(result.output)


def test_group_help_lists_every_command() -> None:
    """The top-level help lists every command and the --config option."""
    result = invoke("--help")
    assert result.exit_code == 0
    commands = result.output.split("Commands:", 1)[1].split()
    for name in ("alerts", "config", "demo", "publish", "routes", "run", "templates"):
        assert name in commands
    assert "--config" in result.output
    assert "NOTIFIER_CONFIG" in flat(result.output)


def test_short_help_option_works_on_nested_commands() -> None:
    """`-h` is accepted as --help on a nested command too."""
    result = invoke("routes", "test", "-h")
    assert result.exit_code == 0, result.output
    assert "--event" in result.output
    assert "Also show rules that did not match" in flat(result.output)


def test_run_refuses_contradictory_flags_before_starting() -> None:
    """`run --no-deliver --deliver-only` is a usage error (exit 2), nothing is started."""
    result = invoke("run", "--no-deliver", "--deliver-only")
    assert result.exit_code == 2
    assert "--no-deliver, --deliver-only and --api-only exclude each other" in result.stderr


# --- config check ------------------------------------------------------------------------------


def test_config_check_reports_what_the_shipped_config_loads() -> None:
    """`config check` on config/notifier.yaml reports people, tiers, rules, templates, languages."""
    result = invoke("config", "check")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("settings ok: broker 127.0.0.1:9092, topic notifier.events, store")
    assert lines[1].startswith("directory ok: 11 people, roles: comms-approver, comms-editor, ")
    assert lines[2] == "routing ok: 5 tiers, 6 rules"
    assert lines[3] == (
        "templates ok: alert, digest, policy-change, public-advisory, receipt, reminder, "
        "status-update; "
        "languages: de, en, es"
    )
    assert lines[4] == "channels ok: email via 127.0.0.1:8025"


def test_config_check_reports_slack_and_webhooks_and_a_missing_token() -> None:
    """Slack enabled without a bot token is reported with the variable to set; webhook
    endpoints are listed by name."""
    endpoints = '{"ops-bridge": {"url": "https://bridge.example/hook", "secret": "s"}}'
    result = CliRunner().invoke(
        cli,
        ["config", "check"],
        env={
            "NOTIFIER_SLACK__ENABLED": "true",
            "NOTIFIER_SLACK__SIGNING_SECRET": "x",
            "NOTIFIER_WEBHOOKS__ENDPOINTS": endpoints,
        },
    )
    assert result.exit_code == 0, result.output
    channels = result.stdout.splitlines()[-1]
    assert "slack at https://slack.com/api/ (NO TOKEN (NOTIFIER_SLACK__BOT_TOKEN)" in channels
    assert channels.endswith("webhooks: ops-bridge")
    assert "secret" not in result.stdout.replace("signing secret", "")


def test_config_check_honours_environment_overrides() -> None:
    """NOTIFIER_KAFKA__* and NOTIFIER_STORE__URL override the YAML in what `config check` shows."""
    result = CliRunner().invoke(
        cli,
        ["config", "check"],
        env={
            "NOTIFIER_KAFKA__BOOTSTRAP_SERVERS": "kafka.example:9093",
            "NOTIFIER_KAFKA__TOPIC": "other.events",
            "NOTIFIER_STORE__URL": "postgresql+psycopg://u@db/n",
        },
    )
    assert result.exit_code == 0, result.output
    assert "broker kafka.example:9093, topic other.events, store postgresql+psycopg" in (
        result.stdout
    )


def test_config_check_accepts_a_copied_config(tmp_path: Path) -> None:
    """A copy of config/*.yaml elsewhere, named by --config, checks fine (baseline for the rest)."""
    result = run_main("--config", copy_config(tmp_path), "config", "check")
    assert result.returncode == 0, result.stderr
    assert "routing ok: 5 tiers, 6 rules" in result.stdout


def _unknown_tier(folder: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        rule = next(r for r in data["rules"] if r["name"] == "warnings-to-oncall")
        rule["tiers"] = ["responders", "night-shift"]

    edit_yaml(folder / "routing.yaml", change)


def _unknown_locale(folder: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        person = next(p for p in data["people"] if p["id"] == "helga.berg")
        person["locale"] = "xx_QQ"

    edit_yaml(folder / "directory.yaml", change)


def _missing_template(folder: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        rule = next(r for r in data["rules"] if r["name"] == "policy-emergency-public")
        rule["template"] = "press-release"

    edit_yaml(folder / "routing.yaml", change)


def _unknown_setting(folder: Path) -> None:
    edit_yaml(folder / "notifier.yaml", lambda data: data["smtp"].update(hots="mail.example"))


def _yaml_syntax(name: str) -> Callable[[Path], None]:
    def breaks(folder: Path) -> None:
        with (folder / name).open("a", encoding="utf-8") as fh:
            fh.write("\nextra: [unclosed, list\n")

    return breaks


BROKEN = [
    pytest.param(
        _unknown_tier, "routing.yaml", ["warnings-to-oncall", "night-shift", "tier"], id="tier"
    ),
    pytest.param(_unknown_locale, "directory.yaml", ["xx_QQ", "locale"], id="locale"),
    pytest.param(
        _missing_template,
        "routing.yaml",
        ["policy-emergency-public", "press-release"],
        id="template",
    ),
    pytest.param(_unknown_setting, "notifier.yaml", ["smtp.hots"], id="setting"),
    pytest.param(
        _yaml_syntax("routing.yaml"), "routing.yaml", ["YAML", "line "], id="yaml-routing"
    ),
    pytest.param(
        _yaml_syntax("directory.yaml"), "directory.yaml", ["YAML", "line "], id="yaml-directory"
    ),
    pytest.param(
        _yaml_syntax("notifier.yaml"), "notifier.yaml", ["YAML", "line "], id="yaml-settings"
    ),
]


@pytest.mark.parametrize(("breaks", "culprit", "words"), BROKEN)
def test_config_check_names_file_and_problem_in_one_line(
    tmp_path: Path, breaks: Callable[[Path], None], culprit: str, words: list[str]
) -> None:
    """A broken config makes `config check` exit 2 with one `error:` line naming file and fault."""
    config = copy_config(tmp_path)
    breaks(config.parent)
    result = run_main("--config", config, "config", "check")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{result.stderr}"
    assert lines[0].startswith("error: ")
    assert str(config.parent / culprit) in lines[0]
    for word in words:
        assert word in lines[0]


def test_config_check_names_the_person_with_a_bad_locale(tmp_path: Path) -> None:
    """An unknown locale error identifies which person's entry is wrong."""
    config = copy_config(tmp_path)
    _unknown_locale(config.parent)
    result = run_main("--config", config, "config", "check")
    assert result.returncode == 2
    position = [
        p["id"] for p in yaml.safe_load((config.parent / "directory.yaml").read_text())["people"]
    ].index("helga.berg")
    assert "helga.berg" in result.stderr or f"people.{position}." in result.stderr


def test_config_check_with_missing_config_file(tmp_path: Path) -> None:
    """A --config file that does not exist: exit 2, one line naming the path."""
    missing = tmp_path / "nowhere" / "notifier.yaml"
    result = run_main("--config", missing, "config", "check")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: configuration file {missing} does not exist (set --config or NOTIFIER_CONFIG)"
    ]


def test_config_check_with_missing_file_from_environment(tmp_path: Path) -> None:
    """NOTIFIER_CONFIG naming a missing file fails the same way as --config."""
    missing = tmp_path / "absent.yaml"
    result = run_main("config", "check", env={"NOTIFIER_CONFIG": str(missing)})
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: configuration file {missing} does not exist")


# --- routes test -------------------------------------------------------------------------------


def test_routes_test_lists_the_nine_recipients() -> None:
    """`routes test` on the emergency upgrade names all nine recipients, once each."""
    result = invoke("routes", "test", "--event", str(EMERGENCY))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "event c41e6a77-13d2-4a8b-8f4b-5e2b9d0c7711 (notifier.policy.changed.v1) "
        "severity=critical risk=critical"
    )
    recipients = recipient_lines(result.stdout)
    assert sorted(recipients) == sorted(PEOPLE)
    assert len([line for line in result.stdout.splitlines() if "→" in line]) == 9


def test_routes_test_shows_who_sees_confidential_details() -> None:
    """Responders and commanders see confidential details; partners, regulator, public do not."""
    result = invoke("routes", "test", "--event", str(EMERGENCY))
    recipients = recipient_lines(result.stdout)
    cleared = {"Ana Costa", "Jonas Weber", "Priya Raman", "Lukas Meier", "Mei Lin"}
    for name, line in recipients.items():
        if name in cleared:
            assert line.endswith("(with confidential details)"), line
        else:
            assert line.endswith("(without confidential details)"), line
    sofia = recipients["Sofía Navarro"]
    assert "tier=regulators" in sofia
    assert "template=policy-change" in sofia
    assert "locale=es" in sofia
    public = recipients["Network advisory list"]
    assert "tier=public template=public-advisory" in public


def test_routes_test_verbose_shows_rules_that_did_not_match() -> None:
    """Only `-v` lists the rules that did not decide (marked ·), with the reason."""
    quiet = invoke("routes", "test", "--event", str(EMERGENCY))
    verbose = invoke("routes", "test", "--event", str(EMERGENCY), "-v")
    assert verbose.exit_code == 0, verbose.output
    for out in (quiet.stdout, verbose.stdout):
        assert "✓ rule policy-emergency-insiders: matched" in out
        assert "✓ rule policy-emergency-public: matched" in out
    assert "policy-routine" not in quiet.stdout
    assert "· rule policy-routine: not evaluated (an earlier rule matched)" in verbose.stdout
    assert "· rule warnings-to-oncall:" in verbose.stdout
    assert recipient_lines(quiet.stdout) == recipient_lines(verbose.stdout)


def test_routes_test_reads_stdin_and_says_when_nobody_is_notified() -> None:
    """An event no rule matches (warning on testnet), read from stdin, reports nobody."""
    event = json.loads((SAMPLES / "alert-firing.json").read_text())
    event["id"] = "testnet-warning-1"
    event["data"].update(severity="warning", labels={"network": "testnet"})
    result = invoke("routes", "test", "--event", "-", input=json.dumps(event))
    assert result.exit_code == 0, result.output
    assert "severity=warning" in result.stdout
    assert "  nobody would be notified" in result.stdout.splitlines()
    assert "→" not in result.stdout


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"specversion": "1.0", "id": ', "event is invalid (not_json)"),
        ('{"specversion": "1.0", "id": "x"}', "event is invalid (schema)"),
    ],
    ids=["not-json", "schema"],
)
def test_routes_test_rejects_a_malformed_event(tmp_path: Path, content: str, problem: str) -> None:
    """A malformed event file: non-zero exit and a clear `Error:` line, no traceback."""
    event = tmp_path / "event.json"
    event.write_text(content)
    result = run_main("routes", "test", "--event", event)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[0].startswith(f"Error: {problem}")
    if "schema" in problem:
        assert "source" in result.stderr and "type" in result.stderr


def test_routes_test_with_a_missing_event_file(tmp_path: Path) -> None:
    """A --event path that does not exist is a usage error (exit 2) naming the path."""
    result = invoke("routes", "test", "--event", str(tmp_path / "none.json"))
    assert result.exit_code == 2
    assert "none.json" in result.stderr


# --- publish --dry-run -------------------------------------------------------------------------


def _samples() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(SAMPLES.glob("*.json"))]


def test_publish_dry_run_validates_one_file(no_broker: list[object]) -> None:
    """`publish --dry-run FILE` with one CloudEvent reports 1 valid event and produces nothing."""
    result = invoke("publish", "--dry-run", str(SAMPLES / "alert-firing.json"))
    assert result.exit_code == 0, result.output
    assert result.stdout == "1 event(s) valid; nothing produced (--dry-run)\n"
    assert no_broker == []


@pytest.mark.parametrize("layout", ["array", "lines", "stdin-lines"])
def test_publish_dry_run_counts_several_documents(
    tmp_path: Path, no_broker: list[object], layout: str
) -> None:
    """A JSON array, JSON lines, or JSON lines on stdin: every document is counted."""
    events = _samples()
    if layout == "array":
        text = json.dumps(events, indent=2)
    else:
        text = "\n".join(json.dumps(e) for e in events) + "\n"
    if layout == "stdin-lines":
        result = invoke("publish", "--dry-run", "-", input=text)
    else:
        source = tmp_path / "events.json"
        source.write_text(text)
        result = invoke("publish", "--dry-run", str(source))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{len(events)} event(s) valid; nothing produced (--dry-run)\n"
    assert len(events) == 5
    assert no_broker == []


def test_publish_dry_run_splits_alertmanager_payloads(
    tmp_path: Path, no_broker: list[object]
) -> None:
    """An Alertmanager webhook with three alerts counts as three events."""
    payload = json.loads((SAMPLES / "alertmanager-webhook.json").read_text())
    first = payload["alerts"][0]
    payload["alerts"] = [
        {
            **first,
            "labels": {**first["labels"], "instance": f"validator-0{n}:5054"},
            "fingerprint": f"{n:016x}",
        }
        for n in range(1, 4)
    ]
    source = tmp_path / "webhook.json"
    source.write_text(json.dumps(payload))
    result = invoke("publish", "--dry-run", str(source))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("3 event(s) valid")


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "for-real"])
def test_publish_refuses_an_invalid_document(
    tmp_path: Path, no_broker: list[object], dry_run: bool
) -> None:
    """One invalid document (the 4th, no source) fails naming its number and reason; none sent."""
    events = _samples()
    assert events[3]["type"] == "notifier.policy.changed.v1"
    del events[3]["source"]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(json.dumps(e) for e in events))
    args = ["publish", str(source)] + (["--dry-run"] if dry_run else [])
    result = invoke(*args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Error: document 4 is invalid (schema): source: Field required" in result.stderr
    assert no_broker == []


def test_publish_error_exit_through_main(tmp_path: Path) -> None:
    """Through main(): a document that is not JSON exits 1 with one clear line, no traceback."""
    source = tmp_path / "broken.json"
    source.write_text('{"specversion": "1.0",')
    result = run_main(
        "publish", "--dry-run", source, env={"NOTIFIER_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: document 1 is invalid (not_json)")
    assert "Traceback" not in result.stderr


# --- templates ---------------------------------------------------------------------------------

LIST_LINE = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+([0-9a-f]{12})$")


def _listing(output: str) -> dict[str, tuple[str, str, str]]:
    rows = {}
    for line in output.splitlines():
        match = LIST_LINE.match(line)
        assert match, f"unexpected line: {line!r}"
        name, channel, parts, digest = match.groups()
        rows[name] = (channel, parts, digest)
    return rows


def test_templates_list_shows_each_template_with_a_short_hash() -> None:
    """`templates list` prints every template, its channel and parts, and a 12-hex-char hash."""
    result = invoke("templates", "list")
    assert result.exit_code == 0, result.output
    rows = _listing(result.stdout)
    assert sorted(rows) == [
        "alert",
        "digest",
        "policy-change",
        "public-advisory",
        "receipt",
        "reminder",
        "status-update",
    ]
    for channel, parts, _digest in rows.values():
        assert channel == "email"
        assert parts == "subject,text,html"
    assert len({digest for _c, _p, digest in rows.values()}) == len(rows)


def test_templates_list_hash_follows_the_template_content(tmp_path: Path) -> None:
    """Editing one template's part changes that template's hash and no other."""
    config, templates, _locales = copy_translations(tmp_path)
    before = _listing(invoke("--config", str(config), "templates", "list").stdout)
    assert before == _listing(invoke("templates", "list").stdout)
    with (templates / "alert" / "email.text.j2").open("a") as fh:
        fh.write("\n")
    after = _listing(invoke("--config", str(config), "templates", "list").stdout)
    assert after["alert"][2] != before["alert"][2]
    assert after["policy-change"] == before["policy-change"]
    assert after["public-advisory"] == before["public-advisory"]


def _msgids(pot: Path) -> set[tuple[str | None, str]]:
    with pot.open("rb") as fh:
        catalog = read_po(fh)
    return {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in catalog if m.id}


def test_templates_extract_writes_the_pot(tmp_path: Path) -> None:
    """`templates extract` writes locales/notifier.pot in the configured copy with every msgid."""
    config, _templates, locales = copy_translations(tmp_path)
    (locales / "notifier.pot").unlink()
    result = invoke("--config", str(config), "templates", "extract")
    assert result.exit_code == 0, result.output
    pot = locales / "notifier.pot"
    messages = _msgids(pot)
    assert result.stdout == f"extracted {len(messages)} message(s) into {pot}\n"
    assert ("severity", "Critical") in messages
    assert (None, "[%(severity)s] Alert: %(summary)s") in messages
    assert messages == _msgids(ROOT / "locales" / "notifier.pot")


def test_templates_extract_and_update_pick_up_a_new_message(tmp_path: Path) -> None:
    """A new {% trans %} string reaches the POT, and `update` says de and es must translate it."""
    config, templates, locales = copy_translations(tmp_path)
    with (templates / "alert" / "email.text.j2").open("a") as fh:
        fh.write("{% trans %}Reply STOP to pause these notices{% endtrans %}\n")
    extracted = invoke("--config", str(config), "templates", "extract")
    assert extracted.exit_code == 0, extracted.output
    assert (None, "Reply STOP to pause these notices") in _msgids(locales / "notifier.pot")

    updated = invoke("--config", str(config), "templates", "update")
    assert updated.exit_code == 0, updated.output
    lines = updated.stdout.splitlines()
    for lang in ("de", "en", "es"):
        assert f"updated {locales / lang / 'LC_MESSAGES' / 'notifier.po'}" in lines
    assert "de: 1 message(s) need translating" in lines
    assert "es: 1 message(s) need translating" in lines
    assert not any(line.startswith("en:") for line in lines)


def test_templates_update_on_the_shipped_catalogs_reports_nothing_missing(tmp_path: Path) -> None:
    """On copies of the shipped catalogs, `update` rewrites them and reports no gaps."""
    config, _templates, _locales = copy_translations(tmp_path)
    result = invoke("--config", str(config), "templates", "update")
    assert result.exit_code == 0, result.output
    assert "need translating" not in result.stdout
    assert result.stdout.count("updated ") == 3


def test_templates_compile_writes_mo_files_in_the_copy(tmp_path: Path) -> None:
    """`templates compile` writes a loadable notifier.mo per language, only in the copy."""
    shipped_mo = sorted((ROOT / "locales").rglob("*.mo"))
    config, _templates, locales = copy_translations(tmp_path)
    result = invoke("--config", str(config), "templates", "compile")
    assert result.exit_code == 0, result.output
    expected = [locales / lang / "LC_MESSAGES" / "notifier.mo" for lang in ("de", "en", "es")]
    assert result.stdout.splitlines() == [f"compiled {path}" for path in expected]
    for path in expected:
        assert path.is_file()
    with expected[0].open("rb") as fh:
        german = gettext.GNUTranslations(fh)
    assert german.pgettext("severity", "Critical") == "Kritisch"
    assert sorted((ROOT / "locales").rglob("*.mo")) == shipped_mo


# --- alerts ------------------------------------------------------------------------------------


def test_alerts_on_a_migrated_empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`alerts` on a migrated store with no alerts prints 'no alerts' and exits 0."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    db = Database(url)
    try:
        db.migrate()
    finally:
        db.dispose()
    monkeypatch.setenv("NOTIFIER_STORE__URL", url)
    result = invoke("alerts")
    assert result.exit_code == 0, result.output
    assert result.stdout == "no alerts\n"


def test_alerts_on_a_store_never_migrated(tmp_path: Path) -> None:
    """`alerts` on a brand-new SQLite file says 'no alerts' instead of crashing."""
    result = run_main("alerts", env={"NOTIFIER_STORE__URL": f"sqlite:///{tmp_path / 'fresh.db'}"})
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 0
    assert result.stdout.startswith("no alerts")


def test_alerts_rejects_an_unknown_status() -> None:
    """`alerts --status` accepts only firing, resolved and notice."""
    result = invoke("alerts", "--status", "open")
    assert result.exit_code == 2
    assert "'open' is not one of 'firing', 'acknowledged', 'resolved', 'notice'" in result.stderr


# --- templates export, console password --------------------------------------------------------


def test_templates_export_writes_the_approved_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`templates export` writes the live versions (an approved edit, not a pending draft) to
    the folders given; run again, it finds nothing to change. On a store without a library
    it says how to create one."""
    url = f"sqlite:///{tmp_path / 'library.db'}"
    monkeypatch.setenv("NOTIFIER_STORE__URL", url)
    unseeded = invoke("templates", "export", "--templates", str(tmp_path / "t"))
    assert unseeded.exit_code == 1
    assert "start the engine once (`notifier run`)" in unseeded.stderr
    db = Database(url)
    try:
        db.migrate()
        clock = FakeClock(datetime(2026, 11, 22, tzinfo=UTC))
        library.seed(db, ROOT / "templates", ROOT / "locales", clock)
        subject = "alert/email.subject.j2"
        with db.transaction() as conn:
            live = next(v for v in library_store.versions(conn, "template", "alert") if v.live)
            approved = library_store.save_draft(
                conn,
                "template",
                "alert",
                {**live.files, subject: "APPROVED\n"},
                author="nora.kaplan",
                now=clock.now(),
            )
            library_store.approve(
                conn,
                approved.id,
                approver="tomas.lindqvist",
                reviewed_hash=approved.content_hash,
                now=clock.now(),
            )
            library_store.save_draft(
                conn,
                "template",
                "alert",
                {**live.files, subject: "DRAFT\n"},
                author="nora.kaplan",
                now=clock.now(),
            )
    finally:
        db.dispose()
    out_t, out_l = tmp_path / "t", tmp_path / "l"
    first = invoke("templates", "export", "--templates", str(out_t), "--locales", str(out_l))
    assert first.exit_code == 0, first.output
    assert (out_t / subject).read_text() == "APPROVED\n"
    assert (out_l / "de" / "LC_MESSAGES" / "notifier.po").is_file()
    assert (out_t / "labels.j2").read_text() == (ROOT / "templates" / "labels.j2").read_text()
    again = invoke("templates", "export", "--templates", str(out_t), "--locales", str(out_l))
    assert again.stdout.strip() == "files already match the library"


def test_console_password_prints_a_hash_that_verifies() -> None:
    """`console password` asks twice and prints an Argon2id hash of what was typed; a short
    password or an unknown person is refused."""
    result = invoke("console", "password", "mei.lin", input="correct horse battery\n" * 2)
    assert result.exit_code == 0, result.output
    line = result.stdout.strip().splitlines()[-1].strip()
    assert line.startswith("password_hash: '$argon2id$")
    digest = line.split("'")[1]
    assert PasswordHasher().verify(digest, "correct horse battery")
    assert invoke("console", "password", "mei.lin", input="short\nshort\n").exit_code == 1
    assert invoke("console", "password", "nobody", input="x\n").exit_code == 1
