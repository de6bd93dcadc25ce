"""Starting a real `notifier run --deliver-only` process for the tests that kill one."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def start_delivering(config: Path) -> asyncio.subprocess.Process:
    """`python -m notifier --config CONFIG run --deliver-only` from the repository root."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifier",
        "--config",
        str(config),
        "run",
        "--deliver-only",
        cwd=ROOT,
        env={**os.environ},
    )
