"""What the benchmarks read about the processes they measure."""

from __future__ import annotations

import os
from pathlib import Path


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident memory of ``pid`` in MB: all of it, and the process's own (anonymous) part,
    i.e. without pages of the memory-mapped SQLite file, which the kernel can drop."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon"):
            fields[name] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("RssAnon", 0.0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()  # fields from 3 (state) on; comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
