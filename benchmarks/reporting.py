"""What both harnesses print beside their figures: the machine and versions, and Markdown tables."""

import os
import platform
import subprocess
import sys
import time
from importlib import metadata, util
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = ["toolkit", "starlette", "anyio", "trio", "hypercorn", "h11", "httpx"]


def describe_environment() -> dict[str, Any]:
    """Date, command, interpreter, CPUs, load average, versions, and which toolkit was measured."""
    versions = {}
    for name in DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    commit = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    toolkit = util.find_spec("toolkit")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "command": " ".join(["python", *sys.argv]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": " ".join(f"{load:.2f}" for load in os.getloadavg()),
        "versions": versions,
        "commit": commit or None,
        "toolkit_path": toolkit.origin if toolkit else None,
    }


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, first column left-aligned and the others right-aligned."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return "\n".join(lines)
