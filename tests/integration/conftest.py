"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mailer.runtime import SIMULATOR_KEY, SIMULATOR_SECRET
from mailer.simulator.server import SimulatorServer
from tests.integration.harness import Service
from tests.integration.tracking_helpers import tracking_service


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorServer]:
    """A Mailjet simulator on a free loopback port, with the credentials workers use."""
    async with SimulatorServer(api_key=SIMULATOR_KEY, secret_key=SIMULATOR_SECRET) as sim:
        yield sim


@pytest.fixture
async def service(db_dsn: str, simulator: SimulatorServer) -> AsyncIterator[Service]:
    """API and worker against the simulator, with known event-callback credentials and
    quick retries (the tracking tests' service; a module may define its own)."""
    async with tracking_service(db_dsn, simulator) as svc:
        yield svc
