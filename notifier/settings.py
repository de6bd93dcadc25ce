"""Engine settings: one YAML file, every value overridable by ``NOTIFIER_`` environment variables.

Precedence, highest first: environment (``NOTIFIER_SMTP__HOST``...), the YAML file
(``--config``, ``NOTIFIER_CONFIG`` or ``config/notifier.yaml``), built-in defaults.
Files named by the settings (routing, directory) resolve against the YAML file's folder; runtime
folders (templates, locales, the SQLite file) resolve against the working directory.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from notifier.errors import ConfigError

DEFAULT_CONFIG = Path("config/notifier.yaml")

# Lets the demo and tests run without setup; the engine warns while it is in use.
DEV_LINK_SECRET = "dev-only-change-me"  # noqa: S105 - a documented placeholder, warned about

_yaml_path: ContextVar[Path | None] = ContextVar("notifier_yaml_path", default=None)


class KafkaSettings(BaseModel):
    """Where events come from and where rejected input goes."""

    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "notifier.events"
    dlq_topic: str = "notifier.dlq"
    group_id: str = "notifier"
    client_id: str = "notifier"
    partitions: int = Field(default=3, ge=1, description="partitions when notifier creates topics")
    max_batch: int = Field(default=4000, ge=1, le=100_000)
    poll_timeout_ms: int = Field(default=500, ge=1)
    max_event_bytes: int = Field(default=1_048_576, ge=256)
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    rebalance_timeout_ms: int = 10_000


class StoreSettings(BaseModel):
    """The database: SQLite by default; PostgreSQL (``postgresql+psycopg://...``) to scale."""

    model_config = ConfigDict(extra="forbid")

    url: str = "sqlite:///var/notifier.db"


class SmtpSettings(BaseModel):
    """The SMTP relay email is handed to."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8025
    username: str | None = None
    password: SecretStr | None = None
    use_tls: bool = Field(default=False, description="implicit TLS (SMTPS, usually port 465)")
    starttls: bool | None = Field(
        default=None, description="True: require STARTTLS; False: never; None: when offered"
    )
    validate_certs: bool = True
    timeout_seconds: float = Field(default=10.0, gt=0)
    sender: str = "Notifier <notifier@localhost>"
    message_id_domain: str = "notifier.local"


class SlackSettings(BaseModel):
    """Slack's Web API (or a local stand-in at ``base_url``) and the app's signing secret."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    base_url: str = Field(
        default="https://slack.com/api/", description="must end with '/' (slack-sdk drops /api)"
    )
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = Field(
        default=None, description="verifies POST /slack/actions (interactivity)"
    )
    timeout_seconds: float = Field(default=10.0, gt=0)
    pace_seconds: float = Field(
        default=1.0, ge=0, description="at least this long between messages to one channel"
    )
    concurrency: int = Field(default=4, ge=1, le=64)

    @field_validator("base_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"


class WebhookEndpoint(BaseModel):
    """One receiver of outgoing webhooks; contacts name it (``{channel: webhook, address:
    <name>}``), so event data never chooses where requests go."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https?://", description="http(s) URL of the receiver")
    secret: SecretStr = Field(description="HMAC-SHA256 key for the signature header")
    timeout_seconds: float = Field(default=10.0, gt=0)


class WebhookSettings(BaseModel):
    """Outgoing webhooks."""

    model_config = ConfigDict(extra="forbid")

    endpoints: dict[str, WebhookEndpoint] = Field(default_factory=dict)
    allow_private_networks: bool = Field(
        default=False,
        description="allow loopback and private (RFC 1918/4193) receivers; link-local and "
        "cloud metadata addresses are always refused",
    )
    concurrency: int = Field(default=16, ge=1, le=256)


class DeliverySettings(BaseModel):
    """How the outbox is drained and due timers are fired."""

    model_config = ConfigDict(extra="forbid")

    concurrency: int = Field(default=8, ge=1, le=256)
    batch_size: int = Field(default=100, ge=1, description="notifications claimed per pass")
    timer_batch_size: int = Field(
        default=500, ge=1, le=5000, description="due timers fired per transaction"
    )
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0, description="a claimed send is retried after")
    send_attempts: int = Field(default=3, ge=1, description="in-process tries per dispatch")
    send_deadline_seconds: float = Field(default=30.0, gt=0)
    max_dispatches: int = Field(default=30, ge=1, description="dispatches before giving up")
    retry_for_seconds: float = Field(
        default=3600.0, gt=0, description="a notification failing this long is given up"
    )
    fallback_after_seconds: float = Field(
        default=60.0,
        gt=0,
        description="a notification failing this long goes to the person's next contact",
    )
    unreachable_roles: list[str] = Field(
        default_factory=lambda: ["incident-commander"],
        description="who is told when a page reaches nobody (every contact failed)",
    )
    backoff_initial_seconds: float = Field(default=0.5, gt=0)
    backoff_max_seconds: float = Field(default=300.0, gt=0)


class TemplateSettings(BaseModel):
    """Where templates and translation catalogs live and how much they may render."""

    model_config = ConfigDict(extra="forbid")

    directory: Path = Path("templates")
    locales_directory: Path = Path("locales")
    default_locale: str = "en"
    max_subject_chars: int = Field(default=200, ge=20)
    max_body_bytes: int = Field(default=262_144, ge=1024)


class LogSettings(BaseModel):
    """Logging: JSON lines, or readable console output on a terminal."""

    model_config = ConfigDict(extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"


class HttpSettings(BaseModel):
    """The HTTP API and acknowledgment pages (served by ``notifier run`` or ``--api-only``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str = Field(
        default="http://127.0.0.1:8080", description="base of links put in messages"
    )


class LinkSettings(BaseModel):
    """Signed acknowledgment and confirm-receipt links: the first secret signs, all of them
    verify (rotation)."""

    model_config = ConfigDict(extra="forbid")

    secrets: list[SecretStr] = Field(
        default_factory=lambda: [SecretStr(DEV_LINK_SECRET)],
        min_length=1,
        description='set NOTIFIER_LINKS__SECRETS=\'["new", "old"]\' in production',
    )
    ttl_seconds: int = Field(default=86_400, ge=60, description="acknowledgment links")
    receipt_ttl_seconds: int = Field(
        default=14 * 86_400, ge=60, description="confirm-receipt links (outlive deadlines)"
    )


class ConsoleSettings(BaseModel):
    """The web console at ``/console`` (served with the HTTP API)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    session_ttl_seconds: int = Field(
        default=8 * 3600, ge=300, description="a sign-in lasts this long (signed cookie)"
    )
    samples_directory: Path = Field(
        default=Path("samples"), description="sample events the template preview offers"
    )
    library_poll_seconds: float = Field(
        default=5.0, gt=0, description="how often an engine checks for newly approved templates"
    )
    max_failed_sign_ins_per_address: int = Field(
        default=30,
        ge=0,
        description=(
            "failed sign-ins from one client address within 15 minutes, whatever the ids, "
            "before that address is refused for the rest of the window (0: no limit). Behind "
            "a reverse proxy the address is the X-Forwarded-For one when the proxy is in "
            "uvicorn's FORWARDED_ALLOW_IPS (default 127.0.0.1)"
        ),
    )


class Settings(BaseSettings):
    """Everything the engine needs to start, validated once at load."""

    model_config = SettingsConfigDict(
        env_prefix="NOTIFIER_", env_nested_delimiter="__", extra="forbid"
    )

    kafka: KafkaSettings = KafkaSettings()
    store: StoreSettings = StoreSettings()
    smtp: SmtpSettings = SmtpSettings()
    slack: SlackSettings = SlackSettings()
    webhooks: WebhookSettings = WebhookSettings()
    delivery: DeliverySettings = DeliverySettings()
    templates: TemplateSettings = TemplateSettings()
    log: LogSettings = LogSettings()
    http: HttpSettings = HttpSettings()
    links: LinkSettings = LinkSettings()
    console: ConsoleSettings = ConsoleSettings()
    routing_file: Path = Path("routing.yaml")
    directory_file: Path = Path("directory.yaml")
    config_dir: Path = Field(default=Path("config"), exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment over YAML over defaults; init kwargs (tests) over everything."""
        path = _yaml_path.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    def resolve(self, path: Path) -> Path:
        """Resolve a file named by the configuration against the configuration's folder."""
        return path if path.is_absolute() else self.config_dir / path


def config_path(explicit: Path | None) -> Path | None:
    """Return the YAML file to read: ``--config``, else ``NOTIFIER_CONFIG``, else the default."""
    if explicit is not None:
        return explicit
    env = os.environ.get("NOTIFIER_CONFIG")
    if env:
        return Path(env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def load_settings(explicit: Path | None = None, **overrides: object) -> Settings:
    """Load and validate settings; raise ConfigError naming the file and the bad field."""
    path = config_path(explicit)
    if path is not None and not path.is_file():
        raise ConfigError(
            f"configuration file {path} does not exist (set --config or NOTIFIER_CONFIG)"
        )
    token = _yaml_path.set(path)
    try:
        config_dir = path.parent if path is not None else Path.cwd()
        return Settings(config_dir=config_dir, **overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(f"{path or 'settings'}: {format_validation_error(exc)}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error(path or Path("settings"), exc)) from None
    finally:
        _yaml_path.reset(token)


def yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    """One line saying where a YAML file is malformed and how."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{path}: not valid YAML{where}: {problem}"


def read_yaml(path: Path) -> object:
    """Parse a YAML file; ConfigError says which file is missing or malformed."""
    try:
        with path.open("rb") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error(path, exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    """Render a pydantic error as 'field.path: message' lines that say what to fix."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"]) or "(root)"
        lines.append(f"{loc}: {err['msg']}")
    return "; ".join(lines)
