"""Retention periods: the settings' and an app's overrides (mailer.lifecycle.retention)."""

from __future__ import annotations

import pytest

from mailer.config import ConfigError, Settings, load_settings
from mailer.lifecycle.retention import Periods, Removed, checked_overrides


def test_the_defaults_are_the_issue_s() -> None:
    assert Periods.from_settings(Settings()) == Periods(30, 400, 30, 30)


def test_an_app_overrides_bodies_and_jobs_only() -> None:
    own = Periods().for_app({"bodies_days": 7, "jobs_days": 90, "callbacks_days": 1})
    assert own == Periods(bodies_days=7, jobs_days=90, callbacks_days=30)
    assert Periods().for_app(None) == Periods()


def test_overrides_are_checked() -> None:
    assert checked_overrides(7, None) == {"bodies_days": 7}
    with pytest.raises(ValueError, match="bodies: give 1 to 36500 days"):
        checked_overrides(0, None)
    with pytest.raises(ValueError, match="jobs"):
        checked_overrides(None, 40_000)


def test_a_bad_period_is_named_at_start() -> None:
    with pytest.raises(ConfigError, match="MAILER_RETENTION_JOBS_DAYS"):
        load_settings(retention_jobs_days=0)


def test_a_run_that_removed_nothing_says_so() -> None:
    assert not Removed().anything
    assert Removed(callback_days=1).anything
