"""Settings: YAML file, NOTIFIER_ environment overrides, validation errors, secrets, paths."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from notifier.errors import ConfigError
from notifier.settings import Settings, config_path, load_settings

ROOT = Path(__file__).resolve().parent.parent

YAML = """
kafka:
  bootstrap_servers: "kafka-1:9092,kafka-2:9092"
  topic: ops.events
  max_batch: 250
store:
  url: "sqlite:///srv/notifier.db"
smtp:
  host: relay.example.org
  port: 2525
  username: notifier
  sender: "Ops <ops@example.org>"
delivery:
  concurrency: 4
log:
  level: DEBUG
routing_file: routes/routing.yaml
"""

PASSWORD = "hunter2-very-secret"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove NOTIFIER_* variables of the surrounding shell so each test sets its own."""
    for name in list(os.environ):
        if name.upper().startswith("NOTIFIER_"):
            monkeypatch.delenv(name)


def write_config(tmp_path: Path, text: str = YAML, name: str = "notifier.yaml") -> Path:
    """Write a settings file into tmp_path/conf and return its path."""
    folder = tmp_path / "conf"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(path: Path | None = None) -> str:
    """Load settings that must fail and return the ConfigError message."""
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


def test_yaml_values_load(tmp_path: Path) -> None:
    """Values in the YAML file reach the settings, nested and top level."""
    settings = load_settings(write_config(tmp_path))
    assert settings.kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert settings.kafka.topic == "ops.events"
    assert settings.kafka.max_batch == 250
    assert settings.store.url == "sqlite:///srv/notifier.db"
    assert settings.smtp.host == "relay.example.org"
    assert settings.smtp.port == 2525
    assert settings.smtp.username == "notifier"
    assert settings.delivery.concurrency == 4
    assert settings.log.level == "DEBUG"


def test_unset_values_keep_defaults(tmp_path: Path) -> None:
    """Settings the YAML file does not mention keep their defaults, even inside a section."""
    settings = load_settings(write_config(tmp_path))
    assert settings.kafka.dlq_topic == "notifier.dlq"
    assert settings.smtp.use_tls is False
    assert settings.smtp.password is None
    assert settings.delivery.send_attempts == 3


@pytest.mark.parametrize(
    ("variable", "value", "read"),
    [
        ("NOTIFIER_SMTP__HOST", "mail.internal", lambda s: s.smtp.host),
        ("NOTIFIER_SMTP__PORT", "465", lambda s: s.smtp.port),
        ("NOTIFIER_KAFKA__BOOTSTRAP_SERVERS", "broker:29092", lambda s: s.kafka.bootstrap_servers),
        ("NOTIFIER_STORE__URL", "postgresql+psycopg://db/notifier", lambda s: s.store.url),
    ],
)
def test_environment_overrides_yaml(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    read: Callable[[Settings], object],
) -> None:
    """A NOTIFIER_ variable wins over the value in the YAML file."""
    path = write_config(tmp_path)
    before = read(load_settings(path))
    monkeypatch.setenv(variable, value)
    after = read(load_settings(path))
    assert str(after) == value
    assert before != after


def test_environment_port_is_an_integer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NOTIFIER_SMTP__PORT is converted to an int."""
    monkeypatch.setenv("NOTIFIER_SMTP__PORT", "587")
    assert load_settings(write_config(tmp_path)).smtp.port == 587


def test_environment_override_keeps_sibling_yaml_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overriding one nested value leaves the section's other YAML values in place."""
    monkeypatch.setenv("NOTIFIER_SMTP__HOST", "mail.internal")
    smtp = load_settings(write_config(tmp_path)).smtp
    assert smtp.host == "mail.internal"
    assert smtp.port == 2525
    assert smtp.sender == "Ops <ops@example.org>"


def test_environment_works_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Environment variables apply when no configuration file exists at all."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOTIFIER_KAFKA__BOOTSTRAP_SERVERS", "broker:29092")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "broker:29092"
    assert settings.config_dir == tmp_path


def test_bad_yaml_value_names_the_field(tmp_path: Path) -> None:
    """An out-of-range YAML value is a ConfigError naming the file and kafka.max_batch."""
    path = write_config(tmp_path, YAML.replace("max_batch: 250", "max_batch: 0"))
    message = config_error(path)
    assert "kafka.max_batch" in message
    assert "greater than or equal to 1" in message
    assert str(path) in message


def test_bad_environment_value_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NOTIFIER_ variable that does not parse is a ConfigError naming the field."""
    monkeypatch.setenv("NOTIFIER_SMTP__PORT", "smtp")
    assert "smtp.port" in config_error(write_config(tmp_path))


def test_bad_log_level_names_the_field(tmp_path: Path) -> None:
    """A log level outside the allowed set is a ConfigError naming log.level."""
    path = write_config(tmp_path, YAML.replace("level: DEBUG", "level: LOUD"))
    assert "log.level" in config_error(path)


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    """A misspelled top-level key is a ConfigError naming it, not silently ignored."""
    path = write_config(tmp_path, YAML + "routing_fille: other.yaml\n")
    message = config_error(path)
    assert "routing_fille" in message


def test_missing_explicit_file(tmp_path: Path) -> None:
    """An explicit configuration file that does not exist is a ConfigError naming it."""
    path = tmp_path / "absent.yaml"
    message = config_error(path)
    assert str(path) in message
    assert "does not exist" in message


def test_missing_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NOTIFIER_CONFIG naming a missing file is a ConfigError, not a silent fallback."""
    monkeypatch.setenv("NOTIFIER_CONFIG", str(tmp_path / "absent.yaml"))
    assert "absent.yaml" in config_error()


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --config, NOTIFIER_CONFIG names the file to read."""
    path = write_config(tmp_path)
    monkeypatch.setenv("NOTIFIER_CONFIG", str(path))
    assert config_path(None) == path
    assert load_settings().kafka.topic == "ops.events"


def test_explicit_file_beats_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit path is read even when NOTIFIER_CONFIG names another file."""
    other = write_config(tmp_path, "kafka: {topic: other.events}\n", name="other.yaml")
    monkeypatch.setenv("NOTIFIER_CONFIG", str(other))
    assert load_settings(write_config(tmp_path)).kafka.topic == "ops.events"


def test_password_is_secret_and_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SMTP password is a SecretStr that never shows in repr, str or JSON of the settings."""
    monkeypatch.setenv("NOTIFIER_SMTP__PASSWORD", PASSWORD)
    settings = load_settings(write_config(tmp_path))
    assert isinstance(settings.smtp.password, SecretStr)
    assert settings.smtp.password.get_secret_value() == PASSWORD
    for text in (repr(settings), str(settings), repr(settings.smtp), settings.model_dump_json()):
        assert PASSWORD not in text


def test_password_from_yaml_is_secret_too(tmp_path: Path) -> None:
    """A password written in the YAML file is a SecretStr as well."""
    path = write_config(tmp_path, YAML.replace("username: notifier", f"password: {PASSWORD}"))
    settings = load_settings(path)
    assert isinstance(settings.smtp.password, SecretStr)
    assert PASSWORD not in repr(settings)


def test_routing_file_resolves_against_config_folder(tmp_path: Path) -> None:
    """Relative routing/directory files resolve against the YAML file's folder, not the cwd."""
    settings = load_settings(write_config(tmp_path))
    folder = tmp_path / "conf"
    assert settings.config_dir == folder
    assert settings.resolve(settings.routing_file) == folder / "routes" / "routing.yaml"
    assert settings.resolve(settings.directory_file) == folder / "directory.yaml"


def test_absolute_routing_file_is_kept(tmp_path: Path) -> None:
    """An absolute routing_file is used as it is."""
    target = tmp_path / "elsewhere" / "routing.yaml"
    settings = load_settings(write_config(tmp_path, f"routing_file: {target}\n"))
    assert settings.resolve(settings.routing_file) == target


def test_config_dir_is_not_serialized(tmp_path: Path) -> None:
    """config_dir is derived from the file's location and left out of dumps."""
    settings = load_settings(write_config(tmp_path))
    assert "config_dir" not in settings.model_dump()


def test_shipped_configuration_loads() -> None:
    """config/notifier.yaml loads, and its routing and directory files exist next to it."""
    settings = load_settings(ROOT / "config" / "notifier.yaml")
    assert isinstance(settings, Settings)
    assert settings.config_dir == ROOT / "config"
    assert settings.resolve(settings.routing_file).is_file()
    assert settings.resolve(settings.directory_file).is_file()
