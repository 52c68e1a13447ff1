"""SMTP submission against a running Mailer: smtplib and swaks submit over STARTTLS with an
app's API key, the job is stored as `POST /queue` stores it and sent through the
simulator; invalid messages, bad keys, AUTH in the clear, too many recipients, oversized
messages, idle clients and an unavailable database are each refused as SMTP says."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mailer.db.pool import connect
from mailer.delivery import limits
from mailer.services import Services
from mailer.simulator import SimulatorServer
from mailer.smtp.server import SubmissionServer
from mailer.smtp.tls import demo_certificate, server_context
from tests.conftest import admin_execute
from tests.integration.harness import Service
from tests.integration.live import SETTINGS, live_mailer, wait_recipients

PNG = b"\x89PNG\r\n\x1a\n-not-really-a-png"


@dataclass
class Smtp:
    """A submission server beside a running Mailer."""

    service: Service
    simulator: SimulatorServer
    services: Services
    port: int
    cert: Path
    key: str  # an app's API key

    def connect(self, *, tls: bool = True, timeout: float = 10.0) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.port, timeout=timeout)
        client.ehlo("app.example")
        if tls:
            client.starttls(context=ssl.create_default_context(cafile=str(self.cert)))
            client.ehlo("app.example")
        return client


@contextlib.asynccontextmanager
async def submission(db_dsn: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[Smtp]:
    settings = SETTINGS.model_copy(update=overrides)
    cert, key_file = demo_certificate(tmp_path / "tls")
    async with live_mailer(db_dsn, settings) as (service, simulator):
        api_key = await service.create_app("smtp-app")
        services = await Services.open(settings, db_dsn, pool_size=4)
        try:
            server = SubmissionServer(
                services, settings, host="127.0.0.1", port=0, tls=server_context(cert, key_file)
            )
            async with server:
                yield Smtp(service, simulator, services, server.port, cert, api_key)
        finally:
            await services.close()


@pytest.fixture
async def smtp(db_dsn: str, tmp_path: Path) -> AsyncIterator[Smtp]:
    async with submission(db_dsn, tmp_path) as s:
        yield s


def full_message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Shop <shop@example.org>"
    msg["To"] = "Ann <ann@example.org>"
    msg["Reply-To"] = "help@shop.example"
    msg["Subject"] = "Your invoice"
    msg["X-Order"] = "42"
    msg.set_content("Thanks! Your invoice is attached.")
    msg.add_alternative('<p>Thanks! <img src="cid:logo"></p>', subtype="html")
    html = msg.get_body(("html",))
    assert isinstance(html, EmailMessage)
    html.add_related(PNG, maintype="image", subtype="png", cid="<logo>")
    msg.add_attachment(
        b"%PDF-1.4 invoice", maintype="application", subtype="pdf", filename="invoice.pdf"
    )
    return msg


def submit(client: smtplib.SMTP, msg: EmailMessage, rcpts: list[str]) -> tuple[int, str]:
    """MAIL, RCPT, DATA; the DATA reply (smtplib's sendmail hides it)."""
    code, reply = client.mail("bounces@shop.example")
    assert code == 250, reply
    for rcpt in rcpts:
        code, reply = client.rcpt(rcpt)
        assert code == 250, reply
    code, reply = client.data(
        msg.as_bytes(policy=policy.SMTP)
    )  # CRLF: smtplib sends bytes as given
    return code, reply.decode()


def job_id_in(reply: str) -> str:
    found = re.search(r"Queued as ([0-9a-f-]{36})", reply)
    assert found, reply
    return found.group(1)


async def stored_message(service: Service, job_id: str) -> dict[str, Any]:
    conn = await connect(service.dsn)
    try:
        raw = await conn.fetchval("SELECT message FROM jobs WHERE id = $1::uuid", job_id)
    finally:
        await conn.close()
    message: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else raw
    return message


async def test_smtplib_submits_text_html_and_attachment_and_it_is_sent(smtp: Smtp) -> None:
    def send() -> tuple[int, str]:
        with smtp.connect() as client:
            client.login("any-user", smtp.key)  # AUTH PLAIN
            return submit(client, full_message(), ["ann@example.org", "audit@shop.example"])

    code, reply = await asyncio.to_thread(send)
    assert code == 250, reply
    job_id = job_id_in(reply)
    done = await wait_recipients(smtp.service, smtp.key, job_id)
    assert [(r["email"], r["kind"]) for r in done["recipients"]] == [
        ("ann@example.org", "to"),
        ("audit@shop.example", "bcc"),
    ] or {r["email"] for r in done["recipients"]} == {"ann@example.org", "audit@shop.example"}
    assert smtp.simulator.state.messages_for(job_id)
    stored = await stored_message(smtp.service, job_id)
    assert stored["From"] == {"Email": "shop@example.org", "Name": "Shop"}
    assert stored["Bcc"] == [{"Email": "audit@shop.example"}]
    assert stored["ReplyTo"] == {"Email": "help@shop.example"}
    assert stored["Headers"] == {"X-Order": "42"}
    assert stored["TextPart"].startswith("Thanks!") and "cid:logo" in stored["HTMLPart"]
    assert stored["Attachments"] == [
        {
            "ContentType": "application/pdf",
            "Filename": "invoice.pdf",
            "Base64Content": base64.b64encode(b"%PDF-1.4 invoice").decode(),
        }
    ]
    assert stored["InlinedAttachments"] == [
        {
            "ContentType": "image/png",
            "Filename": "logo",
            "Base64Content": base64.b64encode(PNG).decode(),
            "ContentID": "logo",
        }
    ]


async def test_auth_login_and_a_resubmitted_message_id_is_stored_once(smtp: Smtp) -> None:
    msg = full_message()
    msg["Message-ID"] = "<order-42@shop.example>"

    def send_twice() -> list[tuple[int, str]]:
        with smtp.connect() as client:
            client.user, client.password = "whoever", smtp.key
            code, reply = client.auth("LOGIN", client.auth_login)
            assert code == 235, reply
            return [submit(client, msg, ["ann@example.org"]) for _ in range(2)]

    (code1, first), (code2, second) = await asyncio.to_thread(send_twice)
    assert code1 == code2 == 250
    assert job_id_in(first) == job_id_in(second)


async def test_invalid_messages_are_refused_permanently_with_the_reason(smtp: Smtp) -> None:
    no_subject = EmailMessage()
    no_subject["From"] = "shop@example.org"
    no_subject["To"] = "ann@example.org"
    no_subject.set_content("no subject")
    bad_to = full_message()
    del bad_to["To"]
    bad_to["To"] = "ann@@example"

    def send() -> list[tuple[int, str]]:
        with smtp.connect() as client:
            client.login("u", smtp.key)
            return [submit(client, m, ["ann@example.org"]) for m in (no_subject, bad_to)]

    (code1, reply1), (code2, reply2) = await asyncio.to_thread(send)
    assert code1 == 550 and "subject is required" in reply1
    assert code2 == 550 and "to[0].email" in reply2
    conn = await connect(smtp.service.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 0
    finally:
        await conn.close()


async def test_past_the_daily_quota_a_message_is_deferred_and_not_stored(smtp: Smtp) -> None:
    conn = await connect(smtp.service.dsn)
    try:
        app_id = await conn.fetchval("SELECT id FROM apps WHERE name = 'smtp-app'")
        await limits.set_limits(conn, app_id, daily=1)
    finally:
        await conn.close()

    def send() -> list[tuple[int, str]]:
        with smtp.connect() as client:
            client.login("u", smtp.key)
            return [submit(client, full_message(), ["ann@example.org"]) for _ in range(2)]

    (code1, reply1), (code2, reply2) = await asyncio.to_thread(send)
    assert code1 == 250, reply1
    # 4xx: the sending server keeps the message and tries again after the UTC day rolls over.
    assert code2 == 451 and "daily quota" in reply2
    conn = await connect(smtp.service.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 1
    finally:
        await conn.close()


async def test_auth_is_refused_before_tls_and_with_a_wrong_key(smtp: Smtp) -> None:
    plain = base64.b64encode(f"\0u\0{smtp.key}".encode()).decode()

    def attempts() -> tuple[tuple[int, bytes], tuple[int, bytes], type[Exception]]:
        with smtp.connect(tls=False) as client:
            before_tls = client.docmd("AUTH", f"PLAIN {plain}")
            mail_before = client.docmd("MAIL", "FROM:<a@shop.example>")
        with smtp.connect() as client:
            try:
                client.login("u", smtp.key + "x")
            except smtplib.SMTPAuthenticationError as exc:
                refused: type[Exception] = type(exc)
            else:
                raise AssertionError("a wrong key was accepted")
            return before_tls, mail_before, refused

    before_tls, mail_before, refused = await asyncio.to_thread(attempts)
    assert before_tls[0] == 530 and b"STARTTLS" in before_tls[1]
    assert mail_before[0] == 530
    assert refused is smtplib.SMTPAuthenticationError


async def test_mail_needs_auth_even_over_tls(smtp: Smtp) -> None:
    def attempt() -> tuple[int, bytes]:
        with smtp.connect() as client:
            return client.docmd("MAIL", "FROM:<a@shop.example>")

    code, reply = await asyncio.to_thread(attempt)
    assert code == 530 and b"Authentication required" in reply


async def test_insecure_auth_is_allowed_on_loopback_only_when_configured(
    db_dsn: str, tmp_path: Path
) -> None:
    async with submission(db_dsn, tmp_path, smtp_allow_insecure_auth=True) as smtp:

        def send() -> tuple[int, str]:
            with smtp.connect(tls=False) as client:
                client.login("u", smtp.key)
                return submit(client, full_message(), ["ann@example.org"])

        code, reply = await asyncio.to_thread(send)
        assert code == 250
        await wait_recipients(smtp.service, smtp.key, job_id_in(reply))


async def test_recipient_size_and_idle_limits_are_enforced(db_dsn: str, tmp_path: Path) -> None:
    limits = {"smtp_max_recipients": 2, "smtp_max_message_bytes": 4096, "smtp_timeout": 1.0}
    async with submission(db_dsn, tmp_path, **limits) as smtp:

        def attempts() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
            with smtp.connect() as client:
                client.login("u", smtp.key)
                client.mail("a@shop.example")
                client.rcpt("one@example.org")
                client.rcpt("two@example.org")
                third = client.rcpt("three@example.org")
                client.rset()
                big = full_message()
                big.add_attachment(
                    b"x" * 8192, maintype="application", subtype="octet-stream", filename="big.bin"
                )
                client.mail("a@shop.example")
                client.rcpt("one@example.org")
                too_big = client.data(big.as_bytes(policy=policy.SMTP))
                return third, too_big

        third, too_big = await asyncio.to_thread(attempts)
        assert third[0] == 452
        assert too_big[0] == 552

        def idle() -> None:
            client = smtp.connect()
            try:
                time.sleep(1.6)
                client.noop()
            finally:
                client.close()

        with pytest.raises(smtplib.SMTPServerDisconnected):
            await asyncio.to_thread(idle)


async def test_an_unavailable_database_is_a_temporary_failure(smtp: Smtp, server_dsn: str) -> None:
    name = urlsplit(smtp.service.dsn).path.lstrip("/")
    ready = asyncio.Event()
    resume = asyncio.Event()
    loop = asyncio.get_running_loop()

    def send() -> tuple[int, str]:
        with smtp.connect() as client:
            client.login("u", smtp.key)
            loop.call_soon_threadsafe(ready.set)
            asyncio.run_coroutine_threadsafe(resume.wait(), loop).result(30)
            return submit(client, full_message(), ["ann@example.org"])

    sending = asyncio.create_task(asyncio.to_thread(send))
    await ready.wait()
    await admin_execute(
        server_dsn,
        f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false',
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
    )
    try:
        await no_sessions_left(server_dsn, name)  # pg_terminate_backend only signals them
        resume.set()
        code, reply = await sending
    finally:
        await admin_execute(server_dsn, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    assert 400 <= code < 500 and "try again later" in reply, (code, reply)


async def no_sessions_left(server_dsn: str, name: str) -> None:
    conn = await connect(server_dsn)
    try:
        for _ in range(200):
            count = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name
            )
            if count == 0:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"sessions on {name} did not end")
    finally:
        await conn.close()


@contextlib.contextmanager
def attachment_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "report.csv"
    path.write_text("order,total\n42,10.00\n")
    yield path


async def test_swaks_submits_with_an_attachment_and_gets_refused_when_invalid(
    smtp: Smtp, tmp_path: Path
) -> None:
    swaks = shutil.which("swaks")
    if swaks is None:
        pytest.skip("swaks is not installed (apt-get install swaks)")

    def run_swaks(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [
            swaks, "--server", f"127.0.0.1:{smtp.port}", "--tls", "--tls-verify",
            "--tls-ca-path", str(smtp.cert), "--auth", "PLAIN", "--auth-user", "app",
            "--auth-password", smtp.key, "--from", "shop@example.org",
            "--header", "Subject: Report", "--body", "The report is attached.", *extra,
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    with attachment_file(tmp_path) as path:
        done = await asyncio.to_thread(
            run_swaks, "--to", "ann@example.org", "--attach-type", "text/csv",
            "--attach-name", "report.csv", "--attach", f"@{path}",
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = job_id_in(done.stdout)
    await wait_recipients(smtp.service, smtp.key, job_id)
    stored = await stored_message(smtp.service, job_id)
    assert stored["Attachments"][0]["Filename"] == "report.csv"
    assert base64.b64decode(stored["Attachments"][0]["Base64Content"]) == path.read_bytes()

    refused = await asyncio.to_thread(run_swaks, "--to", "ann@example")  # no such domain
    assert refused.returncode != 0
    assert re.search(r"\* +550 5\.6\.0 Invalid message: to\[0\]\.email", refused.stdout), (
        refused.stdout
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_listening(proc: subprocess.Popen[bytes], port: int, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.1)
