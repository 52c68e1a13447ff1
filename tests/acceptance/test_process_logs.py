"""A real `mailer worker` process with `MAILER_LOG_FORMAT=json`: every line is JSON, and at
`info` it logs its start (with what was configured, no secrets), a summary per interval and
its stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson


def test_a_worker_process_logs_json_start_summary_and_stop(db_dsn: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": db_dsn,
        "MAILJET_API_URL": "http://127.0.0.1:9",
        "MAILER_LOG_FORMAT": "json",
        "MAILER_LOG_SUMMARY_SECONDS": "0.5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer.cli", "worker"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines: list[dict[str, object]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(orjson.loads(line))  # every line is JSON
            if lines[-1].get("action") == "summary":
                break
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines += [orjson.loads(line) for line in rest.splitlines()]
    actions = [line.get("action") for line in lines]
    assert proc.returncode == 0
    assert "worker_process_started" in actions and "summary" in actions
    assert actions[-1] == "worker_process_stopped"
    start = next(line for line in lines if line.get("action") == "worker_process_started")
    assert start["level"] == "info" and start["worker_concurrency"] == 16
    assert "postgres@" not in str(start)  # the DSN without its user or password
