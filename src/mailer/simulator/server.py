"""Run the simulator on a real loopback socket: in-process (tests, demo) or blocking (CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _BaseProtocol
except ImportError:  # httptools is optional; h11 always ships with uvicorn
    from uvicorn.protocols.http.h11_impl import (  # type: ignore[assignment]
        H11Protocol as _BaseProtocol,
    )

from mailer.aio import Startable
from mailer.heap import freeze_startup_heap
from mailer.serving import GracefulServer
from mailer.simulator.app import SimulatorApp
from mailer.simulator.events import EventsConfig
from mailer.simulator.faults import FaultConfig, FaultInjector
from mailer.simulator.state import SimulatorState, fresh_first_message_id

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_PORT",
    "DEFAULT_SECRET_KEY",
    "SimulatorConfig",
    "SimulatorServer",
    "run_simulator",
]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8025
DEFAULT_API_KEY = "simulator-api-key"
DEFAULT_SECRET_KEY = "simulator-secret-key"
_KEEP_ALIVE_SECONDS = 75  # longer than clients keep idle connections: no stale-socket races
_GRACEFUL_SHUTDOWN_SECONDS = 2


def _require_loopback(host: str, *, private_network: bool = False) -> None:
    """Refuse an address others could reach: the control surface (``/_sim``) has no auth.

    ``private_network`` also allows one private address (RFC 1918, IPv6 ULA), for a test
    network of the machine's own such as network namespaces; never a wildcard."""
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and address.is_loopback:
        return
    if private_network and address is not None and address.is_private:
        if not address.is_unspecified:
            return
    where = "loopback or private addresses" if private_network else "loopback addresses"
    raise ValueError(f"the simulator only listens on {where}, not {host!r}")


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Where the simulator listens, which credentials it accepts, its initial faults and
    event-side options.

    ``port`` 0 picks a free port (read it back from :attr:`SimulatorServer.url`).
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = DEFAULT_API_KEY
    secret_key: str = DEFAULT_SECRET_KEY
    faults: FaultConfig = field(default_factory=FaultConfig)
    first_message_id: int = field(default_factory=fresh_first_message_id)
    events: EventsConfig = field(default_factory=EventsConfig)
    private_network: bool = False

    def __post_init__(self) -> None:
        _require_loopback(self.host, private_network=self.private_network)
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535")


class _QuietProtocol(_BaseProtocol):
    """uvicorn's HTTP protocol with the access log off, whatever the process's log setup."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False


class _InProcessConfig(uvicorn.Config):
    """Leaves the host process's logging configuration alone."""

    def configure_logging(self) -> None:
        pass


class _InProcessServer(uvicorn.Server):
    """Leaves signal handling to the host process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _uvicorn_config(
    app: SimulatorApp, *, in_process: bool, host: str = "127.0.0.1", port: int = 0
) -> uvicorn.Config:
    config_class = _InProcessConfig if in_process else uvicorn.Config
    return config_class(
        app.build(),
        host=host,
        port=port,
        http=_QuietProtocol,  # httptools when installed
        # Standalone, the app's lifespan runs the event poster; in-process, SimulatorServer
        # does (and the host's log stays free of a second "application startup").
        lifespan="off" if in_process else "on",
        ws="none",
        access_log=False,
        server_header=False,
        timeout_keep_alive=_KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
    )


class SimulatorServer(Startable):
    """The simulator served by uvicorn on the current event loop.

    ``async with SimulatorServer() as sim:`` then point a client at ``sim.url`` with
    ``sim.config.api_key`` / ``sim.config.secret_key``; inspect ``sim.state``; change faults
    with :meth:`set_faults` and event-side options with :meth:`set_events`; wait for the
    events to be posted with ``await sim.events.wait_idle()``.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        api_key: str | None = None,
        secret_key: str | None = None,
        faults: FaultConfig | None = None,
        events: EventsConfig | None = None,
    ) -> None:
        """Use ``config``, or the defaults, with any keyword given taking precedence."""
        overrides: dict[str, Any] = {
            k: v
            for k, v in (
                ("host", host),
                ("port", port),
                ("api_key", api_key),
                ("secret_key", secret_key),
                ("faults", faults),
                ("events", events),
            )
            if v is not None
        }
        self.config = dataclasses.replace(config or SimulatorConfig(), **overrides)
        self.state = SimulatorState(first_message_id=self.config.first_message_id)
        self.faults = FaultInjector(self.config.faults)
        self.app = SimulatorApp(
            self.state,
            self.faults,
            api_key=self.config.api_key,
            secret_key=self.config.secret_key,
            events=self.config.events,
        )
        self.events = self.app.events
        self._server: _InProcessServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (only once started)."""
        if self._url is None:
            raise RuntimeError("the simulator is not started")
        return self._url

    def set_faults(self, faults: FaultConfig) -> None:
        """Replace the fault settings (same as ``PUT /_sim/faults``)."""
        self.faults.configure(faults)

    def set_events(self, events: EventsConfig) -> None:
        """Replace the event-side options (same as ``PUT /_sim/events``)."""
        self.events.configure(events)

    async def start(self) -> None:
        """Bind the socket and serve in a background task; returns once accepting."""
        if self._task is not None:
            raise RuntimeError("the simulator is already started")
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then,
        # and without it every keep-alive request waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError:
            sock.close()
            raise
        host, port = sock.getsockname()[:2]
        self._url = (
            f"http://[{host}]:{port}" if family == socket.AF_INET6 else f"http://{host}:{port}"
        )
        self.app.closing.clear()
        await self.events.start()
        server = _InProcessServer(_uvicorn_config(self.app, in_process=True))
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="mailjet-simulator")
        while not server.started:
            if self._task.done():
                await self.events.stop()
                self._task.result()  # re-raise the startup failure
                raise RuntimeError("the simulator stopped during start-up")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop serving; requests hung by the timeout fault are released at once."""
        if self._server is None or self._task is None:
            return
        self.app.closing.set()
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._server = None
            self._task = None
            await self.events.stop()


def run_simulator(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    api_key: str = DEFAULT_API_KEY,
    secret_key: str = DEFAULT_SECRET_KEY,
    faults: FaultConfig | None = None,
    events: EventsConfig | None = None,
    *,
    private_network: bool = False,
) -> None:
    """Serve the simulator until SIGINT/SIGTERM (the ``mailer simulator`` command).

    Uses uvloop and httptools when installed. Blocks; returns after a graceful shutdown.
    """
    config = SimulatorConfig(
        host=host,
        port=port,
        api_key=api_key,
        secret_key=secret_key,
        faults=faults or FaultConfig(),
        events=events or EventsConfig(),
        private_network=private_network,
    )
    state = SimulatorState(first_message_id=config.first_message_id)
    app = SimulatorApp(
        state,
        FaultInjector(config.faults),
        api_key=api_key,
        secret_key=secret_key,
        events=config.events,
    )
    logger.info(
        "Mailjet simulator on http://%s:%d (faults: %s; events: %s)",
        host,
        port,
        config.faults,
        config.events,
    )
    # Like Mailer's own processes: without this, full collections over the growing record
    # of accepted messages paused the simulator for 90-135 ms at ~60,000 messages, and
    # the calls arriving meanwhile were stamped late (the latency benchmark counted it).
    freeze_startup_heap()
    # loop="auto" (the default) picks uvloop when installed.
    GracefulServer(_uvicorn_config(app, in_process=False, host=host, port=port)).run()
