#!/usr/bin/env python3
"""Set-up and everyday commands, needing nothing but Python 3.11+.

    python3 dev.py run     # start Mailer (API + worker; embedded PostgreSQL and Mailjet
                           # simulator unless DATABASE_URL / Mailjet keys are set)
    python3 dev.py test    # run the test suite (extra arguments go to pytest);
                           # --fast: unit and integration only, not the real processes
    python3 dev.py lint    # ruff, mypy and the import contracts (import-linter)
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


def ensure_venv(extras: str) -> None:
    """Create the virtual environment and install the project if needed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file may be run by any python3
        sys.exit("Mailer needs Python 3.11 or newer")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print(f"installing mailer[{extras}] into .venv ...", file=sys.stderr)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f".[{extras}]"], check=True, cwd=ROOT)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    """Dispatch a dev command."""
    command, args = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "run":
        ensure_venv("dev")
        os.execv(str(BIN / "mailer"), [str(BIN / "mailer"), "run", *args])
    if command == "test":
        ensure_venv("dev")
        if "--fast" in args:
            args = [a for a in args if a != "--fast"] + ["-m", "not acceptance"]
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
            # Dependencies point one way: the contracts in pyproject.toml.
            [str(BIN / "lint-imports"), "--no-cache"],
        ]
        return max(subprocess.run(c, cwd=ROOT).returncode for c in checks)
    if command == "bench":
        ensure_venv("dev,bench")
        return subprocess.run([str(BIN / "python"), "-m", "bench", *args], cwd=ROOT).returncode
    print(__doc__)
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
