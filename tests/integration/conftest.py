"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mailer.runtime import SIMULATOR_KEY, SIMULATOR_SECRET
from mailer.simulator.server import SimulatorServer


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorServer]:
    """A Mailjet simulator on a free loopback port, with the credentials workers use."""
    async with SimulatorServer(api_key=SIMULATOR_KEY, secret_key=SIMULATOR_SECRET) as sim:
        yield sim
