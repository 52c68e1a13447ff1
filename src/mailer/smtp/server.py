"""The SMTP submission server on the process's event loop, sharing its services (pool,
enqueuer, key verifier) with the API in `mailer run`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import warnings
import weakref
from collections.abc import AsyncIterator

from aiosmtpd.smtp import SMTP

from mailer.aio import Startable
from mailer.config import Settings
from mailer.services import Services
from mailer.smtp.handler import SubmissionHandler
from mailer.smtp.tls import TlsUnavailable, context_for

log = logging.getLogger(__name__)


def _not_login_data_deprecation(record: logging.LogRecord) -> bool:
    # aiosmtpd 1.4 warns about its own deprecated attribute on every successful AUTH.
    return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_not_login_data_deprecation)

IDENT = "Mailer ESMTP submission"


class SubmissionServer(Startable):
    """Listens for SMTP submissions; `start()`/`stop()` or `async with`.

    AUTH (PLAIN, LOGIN; the password is an app's API key) is required before MAIL, and only
    after STARTTLS unless `smtp_allow_insecure_auth` allows it to loopback clients.
    """

    def __init__(
        self,
        services: Services,
        settings: Settings,
        *,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
    ) -> None:
        self._settings = settings
        self._host = host
        self._port = port
        self._tls = tls
        self._handler = SubmissionHandler(
            services.keys,
            services.enqueuer,
            max_recipients=settings.smtp_max_recipients,
            allow_insecure_auth=settings.smtp_allow_insecure_auth,
            store_timeout=min(settings.smtp_timeout, 60.0),
        )
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    @property
    def port(self) -> int:
        """The port listened on (the one chosen by the system when 0 was asked for)."""
        if self._server is None or not self._server.sockets:
            return self._port
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Start listening."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, host=self._host, port=self._port)
        log.info(
            "smtp submission listening",
            extra={"action": "smtp_listening", "host": self._host, "port": self.port},
        )

    async def stop(self) -> None:
        """Stop accepting connections and close the open ones."""
        if self._server is None:
            return
        self._server.close()
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        await self._server.wait_closed()
        self._server = None

    def _protocol(self) -> SMTP:
        settings = self._settings
        with warnings.catch_warnings():
            # Allowing AUTH in the clear (to loopback clients only) is a deliberate setting.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            session = self._session(settings)
        self._sessions.add(session)
        return session

    def _session(self, settings: Settings) -> SMTP:
        return SMTP(
            self._handler,
            data_size_limit=settings.smtp_max_message_bytes,
            tls_context=self._tls,
            # Without the loopback exception, nothing but EHLO/STARTTLS is accepted in the clear.
            require_starttls=self._tls is not None and not settings.smtp_allow_insecure_auth,
            timeout=settings.smtp_timeout,
            auth_required=True,
            # The handler decides (TLS, or loopback when allowed); aiosmtpd's own check
            # would refuse the loopback exception.
            auth_require_tls=not settings.smtp_allow_insecure_auth,
            ident=IDENT,
            loop=asyncio.get_running_loop(),
        )


def tls_for(settings: Settings) -> ssl.SSLContext | None:
    """The STARTTLS context to offer (see `mailer.smtp.tls.context_for`).

    Raises:
        TlsUnavailable: no certificate and no loopback exception: AUTH could never work.
    """
    context = context_for(settings)
    if context is None and not settings.smtp_allow_insecure_auth:
        raise TlsUnavailable(
            "SMTP submission needs a certificate for STARTTLS: set MAILER_SMTP_TLS_CERT and "
            "MAILER_SMTP_TLS_KEY (or MAILER_SMTP_ALLOW_INSECURE_AUTH=true, for clients on "
            "loopback only)"
        )
    return context


@contextlib.asynccontextmanager
async def running_submission(
    services: Services, settings: Settings, *, host: str, port: int, tls: ssl.SSLContext | None
) -> AsyncIterator[SubmissionServer]:
    """A listening submission server for the duration (`tls` from `tls_for`)."""
    server = SubmissionServer(services, settings, host=host, port=port, tls=tls)
    async with server:
        yield server
