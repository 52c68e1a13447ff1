"""Posting the simulator's events to the registered callback URLs, the way Mailjet does.

:class:`EventPoster` listens to :class:`~mailer.simulator.state.SimulatorState` (each accepted
message), plays the message's script (:func:`~mailer.simulator.events.parse_script`) and
posts each event to the URL registered for its type (the alive primary, else an alive
backup; no URL: the event is only counted as ``unrouted``). Per callback ``Version``:

- 1: one bare JSON object per POST, posted at once.
- 2: a JSON array: a URL collects events for ``group_ms`` (Mailjet: one second), then posts
  them in POSTs of at most ``max_batch`` events; types mix when they share a URL.

``user:pass@`` in a registered URL becomes an ``Authorization: Basic`` header and is
stripped from the URL. Only loopback URLs are posted to; others are refused and logged.
Only ``200`` is a success; anything else (or no answer within ``timeout``) is retried every
``retry_interval`` seconds until ``retry_for`` seconds after the first attempt, while other
events keep flowing. Every POST and its attempts are logged in ``state.deliveries``.

Everything runs as timers and tasks on the server's event loop: nothing blocks the Send API
handler, and :meth:`EventPoster.stop` cancels what is pending (events not yet posted are
dropped, as the simulator's memory is). ``state.reset()`` drops pending work too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp
import orjson

from mailer.simulator.events import EventsConfig, Step, build_event, history_row, parse_script
from mailer.simulator.state import AcceptedMessage, DeliveryAttempt, EventDelivery, SimulatorState

__all__ = ["EventPoster", "Target", "is_loopback_host", "parse_target"]

log = logging.getLogger(__name__)

USER_AGENT = "mailjet-simulator"


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Target:
    """A registered callback URL, split for posting."""

    url: str  # without the credentials
    authorization: str | None  # "Basic ..." when the URL carried user:pass@
    loopback: bool  # False: refused, never posted to


def parse_target(registered: str) -> Target:
    """Split ``registered`` into a credential-free URL and a Basic ``Authorization`` value."""
    try:
        parts = urlsplit(registered)
        port = parts.port
    except ValueError:
        return Target(registered, None, loopback=False)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    loopback = parts.scheme in ("http", "https") and is_loopback_host(host)
    return Target(url, authorization, loopback)


class EventPoster:
    """The event side of one simulator; see the module docstring.

    ``start()``/``stop()`` (or ``async with poster.running():``) bind it to the running loop;
    while stopped, accepted messages get no events. Tests wait with :meth:`wait_idle`.
    """

    def __init__(
        self,
        state: SimulatorState,
        config: EventsConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.config = config or EventsConfig()
        self._clock = clock
        self._rng = random.Random(self.config.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(self.config.max_in_flight)
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._buffers: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self._warned: set[str] = set()
        state.listeners.append(self.on_accepted)
        state.reset_listeners.append(self._drop_pending)

    def configure(self, config: EventsConfig) -> None:
        """Replace the options (pending work keeps the timing it was scheduled with)."""
        self.config = config
        self._rng = random.Random(config.seed)
        self._slots = asyncio.Semaphore(config.max_in_flight)

    @property
    def busy(self) -> bool:
        """True while events are scheduled, collected, being posted or awaiting a retry."""
        return bool(self._timers or self._tasks or self._buffers)

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Return once nothing is pending; ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while self.busy:  # noqa: ASYNC110 - "busy" spans timers, tasks and buffers
                await asyncio.sleep(0.005)

    async def start(self) -> None:
        """Start posting from the running event loop."""
        if self._loop is not None:
            raise RuntimeError("the event poster is already started")
        self._loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
        )

    def _drop_pending(self) -> None:
        """Cancel every timer, buffer and POST in progress (on stop and on state reset)."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._buffers.clear()
        for task in self._tasks:
            task.cancel()

    async def stop(self) -> None:
        """Cancel everything pending and close the HTTP session."""
        tasks = list(self._tasks)
        self._drop_pending()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._loop = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """``start()`` on entry, ``stop()`` on exit (the simulator app's lifespan)."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    # -- scheduling --------------------------------------------------------------------------

    def on_accepted(self, message: AcceptedMessage) -> None:
        """State listener: schedule ``message``'s scripted events (never blocks)."""
        config = self.config
        if self._loop is None or not config.enabled:
            return
        steps = parse_script(message.email)
        if not steps[0].delivers:
            message.status = "queued"  # Mailjet has not tried it yet
        self._later(config.delay_ms / 1000, self._play, self.state.generation, message, steps)

    def _later(self, delay: float, action: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        handle: asyncio.TimerHandle

        def fire() -> None:
            nonlocal handle
            self._timers.discard(handle)
            # The handle holds this function, which holds the handle: without this the pair
            # is left for the garbage collector (about a dozen objects per message).
            del handle
            try:
                action(*args)
            except Exception:
                log.exception("simulator event side: %s failed", action.__name__)

        handle = self._loop.call_later(delay, fire)
        self._timers.add(handle)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _play(self, generation: int, message: AcceptedMessage, steps: tuple[Step, ...]) -> None:
        """Emit the steps in order, in this same tick unless ``step_ms`` spaces them out.

        (Timers due at the same instant may fire in any order, so one timer plays them.)
        """
        gap = self.config.step_ms / 1000
        for i, step in enumerate(steps):
            if i and gap:
                self._later(gap, self._play, generation, message, steps[i:])
                return
            self._emit(generation, message, step)

    def _emit(self, generation: int, message: AcceptedMessage, step: Step) -> None:
        """The event happens: the message's status moves, and it is routed to its URL."""
        state = self.state
        if generation != state.generation:
            return
        when = int(self._clock())
        message.status = step.message_status
        message.history.append(history_row(step, when))
        state.event_counts[step.event_type] += 1
        if not self.config.post:
            state.event_counts["unposted"] += 1
            return
        callback = state.callback_for(step.event_type)
        if callback is None:
            state.event_counts["unrouted"] += 1
            return
        event = build_event(
            message,
            step,
            when=when,
            campaign_id=state.campaign_id(message.campaign),
            contact_id=state.contact_id(message.email),
            click_url=self.config.click_url,
        )
        key = (callback.url, callback.version)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = []
            grouped = callback.version >= 2 or self.config.reorder
            window = self.config.group_ms / 1000 if grouped else 0.0
            self._later(window, self._flush, generation, key)
        buffer.append(event)

    def _flush(self, generation: int, key: tuple[str, int]) -> None:
        """Turn what a URL collected into POSTs and start posting them in order."""
        events = self._buffers.pop(key, [])
        if generation != self.state.generation or not events:
            return
        registered, version = key
        config = self.config
        if config.reorder:
            self._rng.shuffle(events)
        bodies: list[Any]
        if version >= 2:
            bodies = [
                events[i : i + config.max_batch] for i in range(0, len(events), config.max_batch)
            ]
        else:
            bodies = list(events)
        if config.reorder:
            self._rng.shuffle(bodies)
        target = parse_target(registered)
        deliveries = [
            self.state.new_delivery(
                url=target.url,
                version=version,
                body=body,
                authorization=target.authorization is not None,
            )
            for body in bodies
        ]
        if not target.loopback:
            for delivery in deliveries:
                delivery.refused = True
            self.state.event_counts["refused"] += len(events)
            if target.url not in self._warned:
                self._warned.add(target.url)
                log.warning("simulator: not posting events to non-loopback URL %s", target.url)
            return
        self._spawn(self._post_in_order(generation, target, deliveries))

    # -- posting -----------------------------------------------------------------------------

    async def _post_in_order(
        self, generation: int, target: Target, deliveries: list[EventDelivery]
    ) -> None:
        for delivery in deliveries:
            await self._attempt(generation, target, delivery)

    async def _attempt(self, generation: int, target: Target, delivery: EventDelivery) -> None:
        """Post once; on failure schedule the next attempt, on success maybe a duplicate."""
        async with self._slots:
            status, error = await self._post(target, delivery.body)
        delivery.attempts.append(DeliveryAttempt(self._clock(), status, error))
        state = self.state
        if generation != state.generation:
            return
        config = self.config
        if status == 200:
            delivery.delivered = True
            state.event_counts["delivered"] += len(delivery.events)
            if delivery.duplicate_of is None and self._rng.random() < config.duplicate_rate:
                copy = state.new_delivery(
                    url=delivery.url,
                    version=delivery.version,
                    body=delivery.body,
                    authorization=delivery.authorization,
                )
                copy.duplicate_of = delivery.id
                state.event_counts["duplicated"] += len(delivery.events)
                self._spawn(self._attempt(generation, target, copy))
            return
        state.event_counts["failed_attempts"] += 1
        if self._clock() - delivery.attempts[0].at >= config.retry_for:
            delivery.gave_up = True
            state.event_counts["gave_up"] += len(delivery.events)
            log.warning("simulator: gave up posting events to %s", delivery.url)
            return
        self._later(config.retry_interval, self._retry, generation, target, delivery)

    def _retry(self, generation: int, target: Target, delivery: EventDelivery) -> None:
        if generation == self.state.generation:
            self._spawn(self._attempt(generation, target, delivery))

    async def _post(self, target: Target, body: Any) -> tuple[int | None, str]:
        """One POST; (HTTP status, "") or (None, what went wrong)."""
        if self._session is None:
            return None, "the event poster is stopped"
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if target.authorization is not None:
            headers["Authorization"] = target.authorization
        try:
            async with self._session.post(
                target.url,
                data=orjson.dumps(body),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                allow_redirects=False,
            ) as response:
                await response.read()
                return response.status, ""
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
