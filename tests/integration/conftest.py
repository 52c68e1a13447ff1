"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mailer.simulator.server import SimulatorServer
from tests.integration.harness import Service
from tests.integration.tracking_helpers import tracking_service


@pytest.fixture
async def service(db_dsn: str, simulator: SimulatorServer) -> AsyncIterator[Service]:
    """API and worker against the simulator, with known event-callback credentials and
    quick retries (the tracking tests' service; a module may define its own)."""
    async with tracking_service(db_dsn, simulator) as svc:
        yield svc
