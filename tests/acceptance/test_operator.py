"""Mailer as an operator runs it: separate `mailer` processes, started from the command line
against a new database and a `mailer simulator`, in the order docs/architecture.md gives.

migrate, create an app, register the events callback, start `mailer api` and `mailer
worker`; an email queued over HTTP goes out through the simulator, whose scripted tracking
events come back to `/events` and move the recipient to `clicked`; SIGTERM stops both.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            assert proc.poll() is None, f"{proc.args!r} exited with {proc.returncode}"
            assert time.monotonic() < deadline, f"{proc.args!r} did not listen on {port}"
            time.sleep(0.1)


def _http(method: str, url: str, key: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, json.loads(answer.read())


class Operator:
    """Runs `mailer` commands with one environment, and keeps the servers it starts."""

    def __init__(self, env: dict[str, str], *, simulator_port: int, api_port: int) -> None:
        self.env = env
        self.simulator_port = simulator_port
        self.api_port = api_port
        self.servers: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "mailer.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailer.cli", *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        self.servers.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.servers:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def operator_on(database: str) -> Operator:
    """An operator of a new service on `database`: a simulator and an API port of its own,
    settings only from the environment (no Mailjet keys, no metrics directory inherited)."""
    simulator_port, api_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "MAILJET_API_URL": f"http://127.0.0.1:{simulator_port}",
        "MAILER_PORT": str(api_port),
        "MAILER_EVENTS_USER": "mailjet",
        "MAILER_EVENTS_PASSWORD": "operator-test-secret",
        "MAILER_POLL_INTERVAL": "0.2",
        "MAILER_LOG_LEVEL": "warning",
    }
    for name in ("MJ_APIKEY_PUBLIC", "MJ_APIKEY_PRIVATE", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    return Operator(env, simulator_port=simulator_port, api_port=api_port)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _the_dashboard_lets_an_operator_in(operator: Operator, base: str) -> None:
    """`mailer api` serves /dashboard: a login page for strangers, the pages after login."""
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        opener.open(f"{base}/dashboard", timeout=10)
        raise AssertionError("/dashboard answered without a session")
    except urllib.error.HTTPError as answer:
        assert answer.code == 303 and answer.headers["Location"].startswith("/dashboard/login")
    added = json.loads(operator.run("operators", "add", "ann", "--role", "viewer", "--json"))
    with urllib.request.urlopen(f"{base}/dashboard/login", timeout=10) as page:
        cookie = page.headers["Set-Cookie"].split(";")[0]
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.read().decode())
    assert csrf is not None
    form = {"csrf": csrf.group(1), "name": "ann", "password": added["password"]}
    login = urllib.request.Request(
        f"{base}/dashboard/login",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Cookie": cookie},
        method="POST",
    )
    try:
        opener.open(login, timeout=10)
        raise AssertionError("the login did not redirect")
    except urllib.error.HTTPError as answer:
        assert answer.code == 303
        session = answer.headers["Set-Cookie"].split(";")[0]
    overview = urllib.request.Request(f"{base}/dashboard", headers={"Cookie": session})
    with urllib.request.urlopen(overview, timeout=10) as page:
        assert "<svg" in page.read().decode()


def test_an_operator_starts_mailer_and_an_email_goes_out_and_is_tracked(
    operator: Operator,
) -> None:
    simulator_port, api_port = operator.simulator_port, operator.api_port
    simulator = operator.start("simulator", "--port", str(simulator_port))
    _wait_listening(simulator_port, simulator)

    operator.run("migrate")
    key = json.loads(operator.run("apps", "create", "shop", "--json"))["api_key"]
    operator.run("mailjet", "register-webhook", f"http://127.0.0.1:{api_port}/events")

    api = operator.start("api")
    worker = operator.start("worker")
    _wait_listening(api_port, api)
    base = f"http://127.0.0.1:{api_port}"
    email = {
        "from": {"email": "noreply@shop.example"},
        "to": [{"email": "ann+click@example.org"}],
        "subject": "Your order",
        "text": "Thanks!",
    }
    status, queued = _http("POST", f"{base}/queue", key, email)
    assert status == 202 and queued["status"] == "queued"

    deadline = time.monotonic() + 30
    while True:
        _, doc = _http("GET", f"{base}/status/{queued['job_id']}", key)
        if doc["status"] == "clicked" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert doc["status"] == "clicked", doc
    assert [e["mailjet_event"] for e in doc["recipients"][0]["events"]] == [
        "sent", "open", "click"
    ]  # fmt: skip
    _the_dashboard_lets_an_operator_in(operator, base)

    assert operator.stop(worker) == 0
    assert operator.stop(api) == 0
    assert operator.stop(simulator) == 0
