"""Structured logging: JSON lines for machines, readable lines on a terminal.

Context (event id, alert id, notification id) is bound per message with ``log.bind`` or
``structlog.contextvars``; payloads, addresses and secrets are never logged.
"""

from __future__ import annotations

import logging
import sys

import structlog

from notifier.settings import LogSettings


def configure(settings: LogSettings) -> None:
    """Configure structlog and the standard library's logging once, at start."""
    console = settings.format == "console" or (settings.format == "auto" and sys.stderr.isatty())
    level = logging.getLevelName(settings.level)
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if console:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    else:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr)
    # aiokafka logs every rebalance step at INFO; keep its warnings only.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
