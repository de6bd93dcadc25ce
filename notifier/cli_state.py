"""What every command shares: the settings file, loaded once, and logging configured from it."""

from __future__ import annotations

from pathlib import Path

import click

from notifier.app import Configuration, load_configuration
from notifier.log import configure
from notifier.settings import Settings, load_settings


class CliState:
    """The --config choice, and the settings and configuration loaded from it."""

    def __init__(self, config_file: Path | None) -> None:
        self.config_file = config_file
        self._settings: Settings | None = None

    def settings(self) -> Settings:
        """The validated settings (logging is configured on first use)."""
        if self._settings is None:
            self._settings = load_settings(self.config_file)
            configure(self._settings.log)
        return self._settings

    def configuration(self) -> Configuration:
        """Settings plus directory, routing and templates, cross-checked."""
        return load_configuration(self.settings())


pass_state = click.make_pass_decorator(CliState)
