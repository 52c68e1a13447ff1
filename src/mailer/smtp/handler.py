"""The SMTP session's decisions: who is sending (AUTH with an app's API key as password),
what is accepted (recipient limit), and what becomes of the message: validated as
`POST /queue` validates and enqueued the same way; `250` only once the job is committed."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import logging
import uuid
from typing import Any

import asyncpg
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from pydantic import ValidationError

from mailer.apps.store import KeyVerifier
from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import Enqueuer, IdempotencyConflict, new_job, request_hash
from mailer.delivery.limits import QuotaExceeded
from mailer.smtp.parse import UnsupportedMessage, parse_message, queue_body

log = logging.getLogger(__name__)

NEED_TLS = "538 5.7.11 Encryption required for requested authentication mechanism"
BAD_CREDENTIALS = "535 5.7.8 Authentication credentials invalid"
AUTH_UNAVAILABLE = "454 4.7.0 Temporary authentication failure, try again later"
STORE_UNAVAILABLE = "451 4.3.0 Mailer cannot store the message now, try again later"

# What a database that is down or overloaded raises; the client is told to try again.
_UNAVAILABLE = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class SubmissionHandler:
    """aiosmtpd handler: its `auth_PLAIN`/`auth_LOGIN` replace aiosmtpd's, so the key is
    checked asynchronously against the database."""

    def __init__(
        self,
        keys: KeyVerifier,
        enqueuer: Enqueuer,
        *,
        max_recipients: int,
        allow_insecure_auth: bool = False,
        store_timeout: float = 30.0,
    ) -> None:
        self._keys = keys
        self._enqueuer = enqueuer
        self._max_recipients = max_recipients
        self._allow_insecure_auth = allow_insecure_auth
        self._store_timeout = store_timeout

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        """AUTH PLAIN: `\\0user\\0api-key`, the user name is free."""
        if not await self._may_authenticate(server):
            return AuthResult(success=False, handled=True)
        blob = await _initial_or_challenge(server, args, "")
        if blob is None:
            return AuthResult(success=False, handled=True)
        fields = blob.split(b"\x00")
        if len(fields) != 3:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._verify(server, fields[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        """AUTH LOGIN: a user name (free), then the API key as password."""
        if not await self._may_authenticate(server):
            return AuthResult(success=False, handled=True)
        if await _initial_or_challenge(server, args, "User Name") is None:
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth("Password")
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._verify(server, password)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Accept recipients up to the limit."""
        if len(envelope.rcpt_tos) >= self._max_recipients:
            return f"452 4.5.3 Too many recipients (at most {self._max_recipients})"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Validate and enqueue the message; the reply names the job once it is stored."""
        app_id = session.auth_data
        assert isinstance(app_id, uuid.UUID)  # aiosmtpd requires AUTH before DATA here
        raw = envelope.original_content or b""
        assert isinstance(raw, bytes)
        try:
            message = parse_message(raw)
            body = queue_body(message, envelope.mail_from or "", envelope.rcpt_tos)
            email = EmailRequest.model_validate(body)
        except UnsupportedMessage as exc:
            return f"550 5.6.0 {exc}"
        except ValidationError as exc:
            return f"550 5.6.0 Invalid message: {_problems(exc)}"
        key, body_hash = _idempotency(message.get("Message-ID"), body)
        job = new_job(app_id, email, idempotency_key=key, body_hash=body_hash)
        try:
            accepted = await asyncio.wait_for(self._enqueuer.enqueue(job), self._store_timeout)
        except IdempotencyConflict:
            return "550 5.7.0 This Message-ID was submitted before with other content"
        except QuotaExceeded as exc:
            # 4xx: the sending server keeps the message and tries again later (RFC 5321).
            return f"451 4.7.0 This app's daily quota is used up; try again in {exc.retry_after} s"
        except _UNAVAILABLE as exc:
            log.warning(
                "smtp message not stored", extra={"action": "smtp_store_failed", "error": repr(exc)}
            )
            return STORE_UNAVAILABLE
        log.info(
            "smtp message queued",
            extra={"action": "smtp_queued", "job_id": str(accepted.job_id), "app_id": str(app_id)},
        )
        return f"250 2.0.0 Queued as {accepted.job_id}"

    async def _may_authenticate(self, server: SMTP) -> bool:
        """AUTH only over TLS, or in the clear from loopback when explicitly allowed."""
        transport = server.transport
        if transport is not None and transport.get_extra_info("ssl_object") is not None:
            return True
        if self._allow_insecure_auth and _is_loopback(
            server.session.peer if server.session else None
        ):
            return True
        await server.push(NEED_TLS)
        return False

    async def _verify(self, server: SMTP, presented: bytes) -> AuthResult:
        try:
            key = presented.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False, message=BAD_CREDENTIALS)
        try:
            app_id = await asyncio.wait_for(self._keys.app_for(key), self._store_timeout)
        except _UNAVAILABLE:
            return AuthResult(success=False, handled=False, message=AUTH_UNAVAILABLE)
        if app_id is None:
            return AuthResult(success=False, handled=False, message=BAD_CREDENTIALS)
        return AuthResult(success=True, auth_data=app_id)


async def _initial_or_challenge(server: SMTP, args: list[str], challenge: str) -> bytes | None:
    """The mechanism's first value: given with AUTH, or asked for; None when the client
    sent garbage (already answered)."""
    if len(args) == 1:
        blob = await server.challenge_auth(challenge)
        return blob if isinstance(blob, bytes) else None
    try:
        return base64.b64decode(args[1], validate=True)
    except (binascii.Error, ValueError):
        await server.push("501 5.5.2 Can't decode base64")
        return None


def _is_loopback(peer: Any) -> bool:
    try:
        return ipaddress.ip_address(peer[0]).is_loopback
    except (TypeError, ValueError, IndexError):
        return False


def _problems(exc: ValidationError) -> str:
    """Pydantic's errors in one line: `to[0].email: not a valid ...; subject: ...`."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        path = ""
        for part in error.get("loc", ()):
            path += f"[{part}]" if isinstance(part, int) else ("." if path else "") + str(part)
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append(f"{path}: {message}" if path else message)
    return " ".join("; ".join(problems).split())[:400]


def _idempotency(message_id: Any, body: dict[str, Any]) -> tuple[str | None, bytes | None]:
    """A resubmission of the same message (same Message-ID and content, e.g. after a lost
    reply) is stored once, as a retried `POST /queue` with its Idempotency-Key is."""
    if not message_id:
        return None, None
    digest = hashlib.sha256(str(message_id).strip().encode()).hexdigest()[:48]
    return f"smtp:{digest}", request_hash(body)
