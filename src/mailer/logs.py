"""Structured logs: one line per event, `key=value` pairs (or JSON), a stable `action` name
to count by.

A traceback is printed only at `debug`: at other levels a logged exception adds one
`error="Type: message"` field to its line, so one error stays one line.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured duplicate of the message
    "taskName",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def describe(exc: BaseException) -> str:
    """An exception as `Type: message` on one line, short enough for a log line."""
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _error_field(record: logging.LogRecord) -> str | None:
    if not record.exc_info or record.exc_info[1] is None:
        return None
    return describe(record.exc_info[1])


def _tracebacks() -> bool:
    return logging.getLogger().isEnabledFor(logging.DEBUG)


class KeyValueFormatter(logging.Formatter):
    """`2026-01-01T00:00:00 INFO mailer.delivery.worker worker started action=... k=v`."""

    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname} {record.name} "
        base += record.getMessage()
        extras = _extras(record)
        error = _error_field(record)
        if error is not None and "error" not in extras:
            extras["error"] = error
        if extras:
            base += " " + " ".join(f"{k}={_value(v)}" for k, v in extras.items())
        if record.exc_info and _tracebacks():
            base += "\n" + self.formatException(record.exc_info)
        return base


def _value(value: Any) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (`MAILER_LOG_FORMAT=json`)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            line.setdefault(key, value)
        error = _error_field(record)
        if error is not None:
            line.setdefault("error", error)
        if record.exc_info and _tracebacks():
            line["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(level: str = "info", fmt: str = "text") -> None:
    """Send our logs to stderr, as `key=value` text or as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
