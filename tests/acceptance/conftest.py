"""Fixtures of the acceptance tests that start Mailer's real processes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.acceptance.test_operator import Operator, operator_on
from tests.conftest import admin_execute, with_database


@pytest.fixture
async def new_database(server_dsn: str) -> AsyncIterator[str]:
    """An empty database of its own (not migrated: the test runs `mailer migrate`)."""
    name = f"mailer_operator_{os.getpid()}"
    await admin_execute(
        server_dsn, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'
    )
    yield with_database(server_dsn, name)
    await admin_execute(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def operator(new_database: str) -> Iterator[Operator]:
    """An operator of a new service on `new_database`; its processes stopped after."""
    started = operator_on(new_database)
    yield started
    started.stop_all()
