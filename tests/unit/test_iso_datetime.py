"""The API's date-time parameters: ISO 8601 only, and UTC when no offset is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

from mailer.api.models import IsoDateTime

ADAPTER: TypeAdapter[datetime] = TypeAdapter(IsoDateTime)


def test_a_time_without_an_offset_is_utc() -> None:
    assert ADAPTER.validate_python("2030-01-01T09:00:00") == datetime(2030, 1, 1, 9, tzinfo=UTC)


def test_a_given_offset_is_kept() -> None:
    parsed = ADAPTER.validate_python("2030-01-01T09:00:00+02:00")
    assert parsed.utcoffset() == timedelta(hours=2)
    assert parsed == datetime(2030, 1, 1, 9, tzinfo=timezone(timedelta(hours=2)))


@pytest.mark.parametrize("value", ["1700000000", 1700000000, 1.5e9])
def test_a_unix_time_is_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="ISO 8601"):
        ADAPTER.validate_python(value)
