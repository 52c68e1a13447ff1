"""`mailer run` and `mailer smtp` as real processes take SMTP submissions."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mailer.db.pool import connect
from tests.integration.test_smtp import (
    free_port,
    full_message,
    job_id_in,
    submit,
    wait_listening,
)

pytestmark = pytest.mark.slow


def demo_env(db_dsn: str, data_dir: Path, **ports: int) -> dict[str, str]:
    """The environment of a demo process (no Mailjet keys: the simulator) on `db_dsn`, with
    the MAILER_* ports given (e.g. MAILER_SMTP_PORT=...)."""
    env = {
        **os.environ,
        "DATABASE_URL": db_dsn,
        "MAILER_DATA_DIR": str(data_dir),
        "MAILER_LOG_LEVEL": "warning",
        **{name: str(port) for name, port in ports.items()},
    }
    for name in ("MJ_APIKEY_PUBLIC", "MJ_APIKEY_PRIVATE"):
        env.pop(name, None)
    return env


def create_app_key(env: dict[str, str]) -> str:
    """`mailer apps create shop`'s API key."""
    created = subprocess.run(
        [sys.executable, "-m", "mailer.cli", "apps", "create", "shop", "--json"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    key: str = json.loads(created.stdout)["api_key"]
    return key


def submit_over_starttls(port: int, data_dir: Path, key: str) -> tuple[int, str]:
    """Submit the full test message to ann@example.org, over STARTTLS with the demo's
    self-signed certificate, logged in with `key`."""
    cert = data_dir / "smtp-tls" / "cert.pem"
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=ssl.create_default_context(cafile=str(cert)))
        client.login("shop", key)
        return submit(client, full_message(), ["ann@example.org"])


def test_mailer_run_takes_smtp_submissions_in_the_demo(db_dsn: str, tmp_path: Path) -> None:
    api_port, smtp_port = free_port(), free_port()
    env = demo_env(db_dsn, tmp_path, MAILER_PORT=api_port, MAILER_SMTP_PORT=smtp_port)
    key = create_app_key(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer.cli", "run"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        wait_listening(proc, api_port, deadline)
        wait_listening(proc, smtp_port, deadline)
        code, reply = submit_over_starttls(smtp_port, tmp_path, key)
        assert code == 250, reply
        job_id = job_id_in(reply)
        request = urllib.request.Request(
            f"http://127.0.0.1:{api_port}/status/{job_id}",
            headers={"Authorization": f"Bearer {key}"},
        )
        while True:
            with urllib.request.urlopen(request, timeout=5) as answer:
                status = json.load(answer)
            if status["recipients"][0]["status"] in {"sent", "opened", "clicked"}:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert b"SMTP submission on" in stderr


def test_mailer_smtp_alone_queues_what_it_is_given(db_dsn: str, tmp_path: Path) -> None:
    smtp_port = free_port()
    env = demo_env(db_dsn, tmp_path, MAILER_SMTP_PORT=smtp_port)
    key = create_app_key(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer.cli", "smtp"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_listening(proc, smtp_port, time.monotonic() + 60)
        code, reply = submit_over_starttls(smtp_port, tmp_path, key)
        assert code == 250, reply
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    status = asyncio.run(job_status(db_dsn, job_id_in(reply)))
    assert status == "queued"  # no worker here: stored, waiting to be sent


async def job_status(dsn: str, job_id: str) -> str:
    conn = await connect(dsn)
    try:
        status: str = await conn.fetchval("SELECT state FROM jobs WHERE id = $1::uuid", job_id)
        return status
    finally:
        await conn.close()


def test_mailer_smtp_in_production_needs_a_certificate(db_dsn: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": db_dsn,
        "MJ_APIKEY_PUBLIC": "public",
        "MJ_APIKEY_PRIVATE": "private",
        "MAILER_EVENTS_USER": "mailjet",
        "MAILER_EVENTS_PASSWORD": "events-secret",
        "MAILER_SMTP_PORT": str(free_port()),
    }
    done = subprocess.run(
        [sys.executable, "-m", "mailer.cli", "smtp"],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "MAILER_SMTP_TLS_CERT" in done.stderr and "Traceback" not in done.stderr
