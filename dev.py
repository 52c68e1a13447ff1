#!/usr/bin/env python3
"""Set-up and everyday commands, needing nothing but Python 3.11+.

    python3 dev.py run     # start Mailer (API + worker; embedded PostgreSQL and Mailjet
                           # simulator unless DATABASE_URL / Mailjet keys are set)
    python3 dev.py test    # run the test suite (extra arguments go to pytest);
                           # --fast: unit and integration only, not the real processes
    python3 dev.py lint    # ruff, mypy and the import contracts (import-linter)
    python3 dev.py bench   # the benchmarks (see docs/benchmarks.md)

The first call makes `.venv/` and installs the project into it, saying what it installs:
`run` only what Mailer needs to run, `test`, `lint` and `bench` the development tools too.
Later calls reuse it and reinstall only when pyproject.toml changes or a command needs more.
"""

from __future__ import annotations

import hashlib
import json
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

# What each command needs besides the runtime dependencies (pyproject's optional groups).
RUN: tuple[str, ...] = ()
DEV = ("dev",)
BENCH = ("dev", "bench")


def installed_extras(stamp: str | None, project_hash: str) -> set[str] | None:
    """The extras installed for this pyproject.toml, per the stamp (None: install again)."""
    try:
        recorded = json.loads(stamp or "")
    except ValueError:
        return None
    if not isinstance(recorded, dict) or recorded.get("pyproject") != project_hash:
        return None
    return set(recorded.get("extras", []))


def install_summary(pyproject: bytes, extras: list[str]) -> str:
    """What an install brings in, for the line shown before it starts."""
    import tomllib  # here: this file must run on older Pythons far enough to say so

    project = tomllib.loads(pyproject.decode())["project"]
    names = [_name(d) for d in project["dependencies"]]
    for extra in extras:
        names += [_name(d) for d in project["optional-dependencies"][extra]]
    what = "mailer" + (f"[{','.join(extras)}]" if extras else "")
    return f"installing {what} into .venv (once; about 30 s): {', '.join(names)}"


def _name(requirement: str) -> str:
    for stop in "<>=!~; ":
        requirement = requirement.split(stop)[0]
    return requirement


def ensure_venv(extras: tuple[str, ...]) -> None:
    """Create the virtual environment and install the project (with `extras`) if needed.

    `run` needs only the runtime dependencies; an environment made for the tests, which has
    more, serves it as it is.
    """
    if sys.version_info < (3, 11):  # noqa: UP036 - this file may be run by any python3
        sys.exit("Mailer needs Python 3.11 or newer")
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    project_hash = hashlib.sha256(pyproject + (CLIENT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = STAMP.read_text() if STAMP.exists() else None
    installed = installed_extras(stamp, project_hash)
    if installed is not None and set(extras) <= installed:
        return
    wanted = sorted(set(extras) | (installed or set()))
    if not (BIN / "python").exists():
        print("creating .venv ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print(install_summary(pyproject, wanted), file=sys.stderr)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    subprocess.run([*pip, "--quiet", "--upgrade", "pip"], check=True)
    target = f".[{','.join(wanted)}]" if wanted else "."
    # The Python client (and its Django backend) is tested and linted with the service.
    client = ["-e", "./clients/python[django]"] if "dev" in wanted else []
    # Not --quiet: pip's "Collecting ..." lines show the progress of a first install.
    subprocess.run([*pip, "--progress-bar", "off", "-e", target, *client], check=True, cwd=ROOT)
    STAMP.write_text(json.dumps({"pyproject": project_hash, "extras": wanted}))


def main(argv: list[str]) -> int:
    """Dispatch a dev command."""
    command, args = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "run":
        ensure_venv(RUN)
        os.execv(str(BIN / "mailer"), [str(BIN / "mailer"), "run", *args])
    if command == "test":
        ensure_venv(DEV)
        if "--fast" in args:
            args = [a for a in args if a != "--fast"] + ["-m", "not acceptance"]
        code = subprocess.run([str(BIN / "pytest"), *args], cwd=ROOT).returncode
        if code == 5:
            print("pytest collected no tests: that is a failure here", file=sys.stderr)
            return 1
        return code
    if command == "lint":
        ensure_venv(DEV)
        checks = [
            [str(BIN / "ruff"), "check", "."],
            [str(BIN / "ruff"), "format", "--check", "."],
            [str(BIN / "mypy")],
            # Dependencies point one way: the contracts in pyproject.toml.
            [str(BIN / "lint-imports"), "--no-cache"],
        ]
        return max(subprocess.run(c, cwd=ROOT).returncode for c in checks)
    if command == "bench":
        ensure_venv(BENCH)
        return subprocess.run([str(BIN / "python"), "-m", "bench", *args], cwd=ROOT).returncode
    print(__doc__)
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
