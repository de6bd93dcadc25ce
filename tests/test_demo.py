"""`notifier demo` (the README's first command) end to end: broker, SMTP capture, Slack
stand-in, every notification delivered, the report readable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_delivers_everything_and_reports_it() -> None:
    """Exit code 0; every line of the report is a delivered message (✓); both channels used;
    the resolve of the paged alert is threaded under its Slack page."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    done = subprocess.run(
        [sys.executable, "-m", "notifier", "demo"],
        cwd=ROOT,
        env={**env, "NOTIFIER_LOG__LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = done.stdout
    assert "✗" not in report
    assert "5 events accepted, 1 duplicate ignored, 2 rejected" in report
    assert " slack " in report and " email " in report
    lines = [line for line in report.strip().splitlines() if line]
    assert lines[-1].startswith("`notifier demo --keep` keeps it running, with the web console")
    [totals] = [line for line in lines if "emails saved in var/mail/" in line]
    assert "replies in an alert's thread" in totals and "(0 of them" not in totals
    # A Slack page to a German or Spanish reader, shown as Slack lays it out: translated
    # headings and buttons.
    page = lines[lines.index(totals) + 1 : -1]
    assert page[0].startswith("A Slack page to "), page
    assert any(("Schweregrad: Kritisch" in line or "Gravedad: Crítica" in line) for line in page), (
        page
    )
    assert any(
        line.strip()
        in (
            "┃ [ Quittieren ]  [ Beheben ]  [ Runbook ]",
            "┃ [ Reconocer ]  [ Resolver ]  [ Manual de actuación ]",
        )
        for line in page
    ), page
