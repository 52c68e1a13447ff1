"""A Mailjet-compatible server for the demo, the tests and the benchmarks.

It implements ``POST /v3.1/send``, ``GET /v3/REST/message``, ``/v3/REST/messagehistory`` and
``/v3/REST/eventcallbackurl`` with Mailjet's validation and error shapes, keeps what it
accepted in memory, injects faults on demand, posts tracking events scripted by the
recipient address to the registered callback URLs (:mod:`mailer.simulator.events`), and
offers a control API under ``/_sim/``. It only ever listens on, and posts to, loopback.
"""

from mailer.simulator.app import SimulatorApp
from mailer.simulator.events import EventsConfig, Step, build_event, parse_script
from mailer.simulator.faults import Fault, FaultConfig, FaultInjector
from mailer.simulator.poster import EventPoster
from mailer.simulator.server import (
    DEFAULT_API_KEY,
    DEFAULT_PORT,
    DEFAULT_SECRET_KEY,
    SimulatorConfig,
    SimulatorServer,
    run_simulator,
)
from mailer.simulator.state import (
    FIRST_MESSAGE_ID,
    AcceptedMessage,
    CallbackRecord,
    DeliveryAttempt,
    EventDelivery,
    SimulatorState,
)

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_PORT",
    "DEFAULT_SECRET_KEY",
    "FIRST_MESSAGE_ID",
    "AcceptedMessage",
    "CallbackRecord",
    "DeliveryAttempt",
    "EventDelivery",
    "EventPoster",
    "EventsConfig",
    "Fault",
    "FaultConfig",
    "FaultInjector",
    "SimulatorApp",
    "SimulatorConfig",
    "SimulatorServer",
    "SimulatorState",
    "Step",
    "build_event",
    "parse_script",
    "run_simulator",
]
