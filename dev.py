#!/usr/bin/env python3
"""Set-up and everyday commands, needing nothing but Python 3.11+.

    python3 dev.py run     # start Mailer (API + worker; embedded PostgreSQL and Mailjet
                           # simulator unless DATABASE_URL / Mailjet keys are set)
    python3 dev.py test    # run the test suite (extra arguments go to pytest)
    python3 dev.py lint    # ruff and mypy
    python3 dev.py bench   # the benchmarks (see docs/benchmarks.md)

The first call makes `.venv/` and installs the project into it; later calls reuse it and
reinstall only when pyproject.toml changes.
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
BIN = VENV / "bin"
STAMP = VENV / ".mailer-installed"
CLIENT = ROOT / "clients" / "python"


def ensure_venv(extras: str) -> None:
    """Create the virtual environment and install the project if needed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file may be run by any python3
        sys.exit("Mailer needs Python 3.11 or newer")
    manifests = (ROOT / "pyproject.toml").read_bytes() + (CLIENT / "pyproject.toml").read_bytes()
    wanted = hashlib.sha256(manifests + extras.encode()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print(f"installing mailer[{extras}] into .venv ...", file=sys.stderr)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    # The Python client (and its Django backend) is tested and linted with the service.
    subprocess.run(
        [*pip, "-e", f".[{extras}]", "-e", "./clients/python[django]"], check=True, cwd=ROOT
    )
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    """Dispatch a dev command."""
    command, args = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "run":
        ensure_venv("dev")
        os.execv(str(BIN / "mailer"), [str(BIN / "mailer"), "run", *args])
    if command == "test":
        ensure_venv("dev")
        code = subprocess.run([str(BIN / "pytest"), *args], cwd=ROOT).returncode
        if code == 5:
            print("pytest collected no tests: that is a failure here", file=sys.stderr)
            return 1
        return code
    if command == "lint":
        ensure_venv("dev")
        checks = [
            [str(BIN / "ruff"), "check", "."],
            [str(BIN / "ruff"), "format", "--check", "."],
            [str(BIN / "mypy")],
        ]
        return max(subprocess.run(c, cwd=ROOT).returncode for c in checks)
    if command == "bench":
        ensure_venv("dev,bench")
        return subprocess.run([str(BIN / "python"), "-m", "bench", *args], cwd=ROOT).returncode
    print(__doc__)
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
