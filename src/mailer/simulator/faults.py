"""Fault injection for the simulator's ``POST /v3.1/send``.

Each send call draws at most one fault, with the configured probabilities, from a random
generator seeded by ``FaultConfig.seed``: the same seed and call order give the same faults.
``latency_ms`` applies to every send call, faulted or not.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = [
    "ERROR_500_BODY",
    "HTML_429_BODY",
    "DroppedResponse",
    "Fault",
    "FaultConfig",
    "FaultInjector",
    "LostAnswerMode",
    "hang",
    "hide_dropped_connections",
]

LostAnswerMode = Literal["500", "drop"]


class Fault(enum.Enum):
    """What a faulted send call does instead of answering normally."""

    ERROR_500 = "error_500"  # answer 500 without processing
    HTML_429 = "html_429"  # answer 429 with an HTML body, without processing
    TIMEOUT = "timeout"  # hang without processing until the client gives up
    LOST_ANSWER = "lost_answer"  # process and record, then answer 500 or drop the connection


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Fault settings. All off by default; rates are probabilities per send call (sum <= 1).

    - ``latency_ms``: delay added to every send call.
    - ``error_500_rate``: answer 500 (JSON error body) without processing.
    - ``html_429_rate``: answer 429 with Mailjet's HTML body; ``retry_after`` (seconds) adds a
      ``Retry-After`` header when set.
    - ``timeout_rate``: hang for ``hang_seconds`` (or until the client leaves or the server stops)
      without processing.
    - ``lost_answer_rate``: process and record the send, then lose the answer: a 500 when
      ``lost_answer_mode`` is ``"500"``, a connection closed mid-answer when it is ``"drop"``.
    - ``lookup_lag_ms``: an accepted message stays out of ``GET /v3/REST/message`` (the list
      and ``/{id}``) for that long, as Mailjet's index lags behind a fresh send (reference
      §5: a lookup right after a success answered 404).
    - ``seed``: seeds the fault draws (``None``: unpredictable).
    """

    latency_ms: float = 0.0
    error_500_rate: float = 0.0
    html_429_rate: float = 0.0
    retry_after: float | None = None
    timeout_rate: float = 0.0
    hang_seconds: float = 60.0
    lost_answer_rate: float = 0.0
    lost_answer_mode: LostAnswerMode = "500"
    lookup_lag_ms: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        rates = (self.error_500_rate, self.html_429_rate, self.timeout_rate, self.lost_answer_rate)
        if any(not 0.0 <= r <= 1.0 for r in rates):
            raise ValueError("fault rates must be between 0 and 1")
        if sum(rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must not add up to more than 1")
        if self.latency_ms < 0 or self.lookup_lag_ms < 0:
            raise ValueError("latency_ms and lookup_lag_ms must be >= 0")
        if self.hang_seconds <= 0:
            raise ValueError("hang_seconds must be > 0")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        if self.lost_answer_mode not in ("500", "drop"):
            raise ValueError('lost_answer_mode must be "500" or "drop"')

    @property
    def any_fault(self) -> bool:
        """True when at least one fault rate is non-zero."""
        return (
            self.error_500_rate + self.html_429_rate + self.timeout_rate + self.lost_answer_rate
        ) > 0

    @classmethod
    def from_json(cls, data: Any) -> FaultConfig:
        """Build from a JSON object; unknown keys and wrong types raise ``ValueError``."""
        if not isinstance(data, Mapping):
            raise ValueError("faults must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key == "lost_answer_mode":
                values[key] = str(value)
            elif key in ("seed", "retry_after") and value is None:
                values[key] = None
            elif key == "seed":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError("seed must be an integer or null")
                values[key] = value
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number")
            else:
                values[key] = float(value)
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return asdict(self)


class FaultInjector:
    """Holds the current :class:`FaultConfig` and draws a fault per send call."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.config = config or FaultConfig()
        self._rng = random.Random(self.config.seed)

    def configure(self, config: FaultConfig) -> None:
        """Replace the settings and restart the random sequence from the new seed."""
        self.config = config
        self._rng = random.Random(config.seed)

    def draw(self) -> Fault | None:
        """The fault for the next send call, or ``None`` for a normal answer."""
        cfg = self.config
        if not cfg.any_fault:
            return None
        roll = self._rng.random()
        for fault, rate in (
            (Fault.ERROR_500, cfg.error_500_rate),
            (Fault.HTML_429, cfg.html_429_rate),
            (Fault.TIMEOUT, cfg.timeout_rate),
            (Fault.LOST_ANSWER, cfg.lost_answer_rate),
        ):
            if roll < rate:
                return fault
            roll -= rate
        return None


# -- how faults answer ---------------------------------------------------------------------

HTML_429_BODY = (
    b"<html><body><h1>429 Too Many Requests</h1>\n"
    b"You have sent too many requests in a given amount of time.\n</body></html>\n"
)
ERROR_500_BODY = {"ErrorIdentifier": "", "StatusCode": 500, "ErrorMessage": "Internal Server Error"}


class _ConnectionDropped(Exception):
    """Raised after the status line went out, so uvicorn closes the connection mid-answer."""


class DroppedResponse(Response):
    """Sends a status line and headers promising a body, then drops the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise _ConnectionDropped


class _HideDroppedConnections(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _ConnectionDropped))


_DROP_FILTER = _HideDroppedConnections()


def hide_dropped_connections() -> None:
    """Keep uvicorn from logging a traceback for each deliberately dropped connection."""
    logging.getLogger("uvicorn.error").addFilter(_DROP_FILTER)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def hang(receive: Receive, seconds: float, closing: asyncio.Event) -> None:
    """Wait until the client leaves, ``closing`` is set, or ``seconds`` pass."""
    waits = [
        asyncio.ensure_future(_wait_disconnect(receive)),
        asyncio.ensure_future(closing.wait()),
    ]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
