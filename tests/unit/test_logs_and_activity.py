"""Log lines: key=value or JSON, one line per error (the traceback only at debug), and the
per-process activity summary."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from pydantic import SecretStr

from mailer import logs
from mailer.config import Settings
from mailer.ops.activity import Activity, Summary


def _record(
    level: int = logging.ERROR, exc: BaseException | None = None, **extra: object
) -> logging.LogRecord:
    record = logging.LogRecord("mailer.x", level, __file__, 1, "it broke", None, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    record.__dict__.update(extra)
    return record


def _raised() -> BaseException:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as exc:
        return exc


@pytest.fixture
def root_level() -> object:
    root = logging.getLogger()
    before = root.level
    yield root
    root.setLevel(before)


def test_an_error_is_one_line_with_its_cause_unless_at_debug(root_level: logging.Logger) -> None:
    root_level.setLevel(logging.INFO)
    line = logs.KeyValueFormatter().format(_record(exc=_raised(), action="x_failed"))
    assert "\n" not in line
    assert "action=x_failed" in line
    assert 'error="ConnectionRefusedError: [Errno 111] Connection refused"' in line
    root_level.setLevel(logging.DEBUG)
    line = logs.KeyValueFormatter().format(_record(exc=_raised(), action="x_failed"))
    assert "Traceback (most recent call last)" in line


def test_json_lines_carry_the_fields(root_level: logging.Logger) -> None:
    root_level.setLevel(logging.INFO)
    line = logs.JsonFormatter().format(_record(exc=_raised(), action="x_failed", count=3))
    parsed = orjson.loads(line)
    assert parsed["level"] == "error" and parsed["logger"] == "mailer.x"
    assert parsed["message"] == "it broke"
    assert (parsed["action"], parsed["count"]) == ("x_failed", 3)
    assert parsed["error"].startswith("ConnectionRefusedError")
    assert "traceback" not in parsed


def test_values_with_spaces_are_quoted() -> None:
    line = logs.KeyValueFormatter().format(_record(logging.INFO, error='a "b" c', n=1))
    assert line.endswith('error="a \\"b\\" c" n=1')


def test_log_format_setting() -> None:
    assert Settings().log_format == "text"
    assert Settings(log_format="json").log_format == "json"
    with pytest.raises(ValueError):
        Settings(log_format="xml")


def test_settings_describe_names_no_secret() -> None:
    settings = Settings(
        database_url="postgresql://mailer:hunter2@db.example:6432/mail",
        mj_apikey_public="pub",
        mj_apikey_private=SecretStr("very-secret"),
        events_user="u",
        events_password=SecretStr("also-secret"),
        listen_database_url="postgresql://mailer:listen-secret@db.example:5432/mail",
    )
    described = str(settings.describe())
    assert "db.example:6432/mail" in described and "db.example:5432/mail" in described
    for secret in ("hunter2", "very-secret", "also-secret", "listen-secret", "mailer:"):
        assert secret not in described


def test_pgbouncer_settings_are_checked() -> None:
    assert Settings().statement_cache_size == 100 and Settings().listen_database_url is None
    assert Settings(statement_cache_size=0).statement_cache_size == 0
    with pytest.raises(ValueError, match="MAILER_LISTEN_DATABASE_URL"):
        Settings(listen_database_url="mysql://db/mail")
    with pytest.raises(ValueError):
        Settings(statement_cache_size=-1)


def test_activity_counts_are_taken_and_reset() -> None:
    activity = Activity()
    activity.declare(["emails_accepted", "events_stored"])
    activity.add("emails_accepted", 3)
    activity.add("webhooks_delivered")
    assert activity.take() == {"emails_accepted": 3, "events_stored": 0, "webhooks_delivered": 1}
    assert activity.take() == {"emails_accepted": 0, "events_stored": 0, "webhooks_delivered": 0}
    assert activity.totals()["emails_accepted"] == 3


async def test_the_summary_is_one_info_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mailer.ops.activity")
    activity = Activity()
    activity.declare(["emails_accepted"])
    summary = Summary("api", interval=0.05, activity=activity)
    await summary.start()
    activity.add("emails_accepted", 2)
    await asyncio.sleep(0.08)
    await summary.stop()
    lines = [r for r in caplog.records if getattr(r, "action", None) == "summary"]
    assert len(lines) >= 2  # one per interval, and a last one at stop
    assert lines[0].levelno == logging.INFO
    assert lines[0].__dict__["emails_accepted"] == 2
    assert all(r.__dict__["emails_accepted"] == 0 for r in lines[1:])
