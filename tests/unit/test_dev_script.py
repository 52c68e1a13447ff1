"""dev.py: `run` installs only the runtime dependencies, and says what it installs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_needs_no_extras_and_an_environment_made_for_tests_serves_it() -> None:
    dev = _dev()
    assert dev.RUN == ()
    assert "dev" in dev.DEV and "dev" in dev.BENCH
    stamp = json.dumps({"pyproject": "abc", "extras": ["dev"]})
    assert dev.installed_extras(stamp, "abc") == {"dev"}
    assert set(dev.RUN) <= dev.installed_extras(stamp, "abc")
    # A changed pyproject.toml, an old-style or missing stamp: install again.
    assert dev.installed_extras(stamp, "changed") is None
    assert dev.installed_extras("0123abcd", "abc") is None
    assert dev.installed_extras(None, "abc") is None


def test_the_install_line_names_the_packages_and_leaves_the_dev_tools_out_of_run() -> None:
    dev = _dev()
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    for_run = dev.install_summary(pyproject, [])
    assert for_run.startswith("installing mailer into .venv")
    assert "fastapi" in for_run and "asyncpg" in for_run
    assert "pytest" not in for_run and "mypy" not in for_run and "ruff" not in for_run
    for_tests = dev.install_summary(pyproject, ["dev"])
    assert "mailer[dev]" in for_tests and "pytest" in for_tests
