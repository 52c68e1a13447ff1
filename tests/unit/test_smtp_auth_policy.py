"""AUTH in the clear is refused unless allowed, and then only to loopback clients; the
decision is the handler's (aiosmtpd's own check is off when the exception is allowed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from mailer.smtp.handler import NEED_TLS, SubmissionHandler


@dataclass
class Transport:
    tls: bool

    def get_extra_info(self, name: str) -> Any:
        return object() if name == "ssl_object" and self.tls else None


@dataclass
class Session:
    peer: tuple[str, int]


@dataclass
class Server:
    """The part of aiosmtpd's SMTP the handler touches before checking a key."""

    peer: str
    tls: bool
    pushed: list[str] = field(default_factory=list)

    @property
    def transport(self) -> Transport:
        return Transport(self.tls)

    @property
    def session(self) -> Session:
        return Session((self.peer, 40000))

    async def push(self, line: str) -> None:
        self.pushed.append(line)


def handler(allow: bool) -> SubmissionHandler:
    return SubmissionHandler(None, None, max_recipients=50, allow_insecure_auth=allow)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("allow", "peer", "tls", "may"),
    [
        (False, "127.0.0.1", False, False),
        (True, "127.0.0.1", False, True),
        (True, "::1", False, True),
        (True, "192.0.2.7", False, False),
        (False, "192.0.2.7", True, True),
    ],
)
async def test_who_may_authenticate(allow: bool, peer: str, tls: bool, may: bool) -> None:
    server = Server(peer, tls)
    assert await handler(allow)._may_authenticate(server) is may  # type: ignore[arg-type]
    assert server.pushed == ([] if may else [NEED_TLS])
