#!/usr/bin/env python3
"""The two commands a newcomer needs, each doing its own set-up.

    python3 dev.py serve    # the example app on http://127.0.0.1:8000 (hypercorn, trio worker)
    python3 dev.py test     # the whole test suite

Both create (or refresh) a virtualenv in ``.venv`` with toolkit and its
development extras installed, using only the standard library and pip.
Extra arguments are passed to hypercorn or pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".toolkit-installed"


def ensure_venv() -> None:
    """Create .venv and install toolkit[dev] into it, again whenever pyproject.toml changes."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print("dev.py: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    print("dev.py: installing toolkit[dev] into .venv", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"serve", "test"}:
        print(__doc__.strip())
        return 2
    ensure_venv()
    command, rest = argv[0], argv[1:]
    if command == "serve":
        args = ["-m", "hypercorn", "--worker-class", "trio", "--bind", "127.0.0.1:8000"]
        args += [*rest, "examples.hello:app"]
    else:
        args = ["-m", "pytest", *rest]
    return subprocess.run([str(PYTHON), *args], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
