"""In the demo, `mailer mailjet …` in a second terminal reaches `mailer run`'s built-in
simulator with no settings: through the state file beside the embedded database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailer.runtime import DEMO_STATE_FILE
from tests.integration.test_smtp import free_port

pytestmark = pytest.mark.slow


def _mailer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailer.cli", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_mailjet_commands_reach_the_demo_simulator(db_dsn: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": db_dsn,
        "MAILER_DATA_DIR": str(tmp_path),
        "MAILER_PORT": str(free_port()),
        "MAILER_SMTP_PORT": "off",
        "MAILER_LOG_LEVEL": "warning",
    }
    for name in ("MJ_APIKEY_PUBLIC", "MJ_APIKEY_PRIVATE", "MAILJET_API_URL", "MAILER_EVENTS_USER"):
        env.pop(name, None)
    state = tmp_path / DEMO_STATE_FILE
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer.cli", "run"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not state.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no demo state file"
            time.sleep(0.1)
        assert state.stat().st_mode & 0o077 == 0  # it holds the run's event credentials

        listed = _mailer(env, "mailjet", "webhooks")
        assert listed.returncode == 0, listed.stderr
        assert len(listed.stdout.splitlines()) == 7 and "***@127.0.0.1" in listed.stdout

        doctor = _mailer(env, "mailjet", "doctor")
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert "no problems found" in doctor.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert not state.exists()
    gone = _mailer(env, "mailjet", "webhooks")
    assert gone.returncode != 0 and "mailer run" in gone.stderr
