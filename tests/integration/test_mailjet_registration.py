"""Registering Mailer's /events with the simulator: the functions over real HTTP, and the
`mailer mailjet` commands through click's CliRunner against a simulator in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from click.testing import CliRunner

from mailer.cli import main
from mailer.mailjet import MailjetClient
from mailer.mailjet.registration import ALL_EVENT_TYPES, apply, plan, register
from mailer.simulator import SimulatorServer

URL = "http://hook:s3cret@127.0.0.1:8000/events"


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer() as server:
        yield server


@pytest.fixture
async def client(sim: SimulatorServer) -> AsyncIterator[MailjetClient]:
    async with MailjetClient(sim.url, sim.config.api_key, sim.config.secret_key) as c:
        yield c


def snapshot(sim: SimulatorServer) -> list[tuple[int, str, str, str, bool, int]]:
    return sorted(
        (r.id, r.event_type, r.url, r.status, r.is_backup, r.version)
        for r in sim.state.callbacks.values()
    )


async def test_register_twice_changes_nothing_the_second_time(
    sim: SimulatorServer, client: MailjetClient
) -> None:
    dry = await register(client, URL, dry_run=True)
    assert [a.kind for a in dry] == ["create"] * 7 and sim.state.callbacks == {}

    first = await register(client, URL)
    assert [a.kind for a in first] == ["create"] * 7
    after_first = snapshot(sim)
    assert {(t, u, s, b, v) for _, t, u, s, b, v in after_first} == {
        (t, URL, "alive", False, 2) for t in ALL_EVENT_TYPES
    }
    second = await register(client, URL)
    assert [a.kind for a in second] == ["keep"] * 7
    assert snapshot(sim) == after_first


async def test_register_fixes_wrong_records_beyond_the_default_page(
    sim: SimulatorServer, client: MailjetClient
) -> None:
    for event_type in ALL_EVENT_TYPES:
        await client.create_event_callback(event_type, URL, version=2)
    for event_type in ALL_EVENT_TYPES[:5]:
        await client.create_event_callback(event_type, URL + "-backup", is_backup=True)
    unsub = sim.state.find_callback("unsub", False)
    blocked = sim.state.find_callback("blocked", False)
    assert unsub is not None and blocked is not None
    unsub.version, blocked.url, blocked.status = 1, "http://127.0.0.1:1/old", "dead"
    assert len(sim.state.callbacks) == 12  # more than Mailjet's default Limit of 10

    actions = plan(await client.list_event_callbacks(), URL)
    assert [(a.event_type, a.changes) for a in actions if a.kind == "update"] == [
        ("blocked", ("Url", "Status")),
        ("unsub", ("Version",)),
    ]
    dry_before = snapshot(sim)
    assert len(await register(client, URL, dry_run=True)) == 7
    assert snapshot(sim) == dry_before
    results = await apply(client, actions)
    assert {(r.event_type, r.url, r.version, r.status) for r in results} == {
        ("blocked", URL, 2, "alive"),
        ("unsub", URL, 2, "alive"),
    }
    assert [a.kind for a in await register(client, URL)] == ["keep"] * 7
    backups = [r for r in sim.state.callbacks.values() if r.is_backup]
    assert len(backups) == 5 and all(r.url == URL + "-backup" for r in backups)


# -- the CLI -------------------------------------------------------------------------------


@contextlib.contextmanager
def simulator_in_thread() -> Iterator[SimulatorServer]:
    """A simulator serving from its own thread and loop (the CLI runs its own loop)."""
    loop = asyncio.new_event_loop()
    sim = SimulatorServer()
    ready = threading.Event()

    def serve() -> None:
        loop.run_until_complete(sim.start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(sim.stop())
        loop.close()

    thread = threading.Thread(target=serve, name="simulator", daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield sim
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
def threaded_sim() -> Iterator[SimulatorServer]:
    with simulator_in_thread() as sim:
        yield sim


def cli_env(sim: SimulatorServer, **extra: str | None) -> dict[str, str | None]:
    """The environment of a `mailer` run against ``sim`` (None unsets a variable)."""
    return {
        "MJ_APIKEY_PUBLIC": sim.config.api_key,
        "MJ_APIKEY_PRIVATE": sim.config.secret_key,
        "MAILJET_API_URL": sim.url,
        "MAILER_EVENTS_USER": "hook",
        "MAILER_EVENTS_PASSWORD": "pa ss@word",
        **extra,
    }


def test_cli_register_webhook_is_idempotent_and_dry_run_changes_nothing(
    threaded_sim: SimulatorServer,
) -> None:
    runner = CliRunner()
    env = cli_env(threaded_sim)
    public = "https://mailer.example.org/events"
    args = ["mailjet", "register-webhook", public]

    dry = runner.invoke(main, [*args, "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert dry.output.count("(dry run) create") == 7 and "pa ss" not in dry.output
    assert "dry run, nothing changed: 7 to create" in dry.output
    assert threaded_sim.state.callbacks == {}

    first = runner.invoke(main, args, env=env)
    assert first.exit_code == 0, first.output
    assert "7 created, 0 updated, 0 already right" in first.output
    expected = "https://hook:pa%20ss%40word@mailer.example.org/events"
    assert {(r.url, r.version) for r in threaded_sim.state.callbacks.values()} == {(expected, 2)}
    before = snapshot(threaded_sim)

    second = runner.invoke(main, args, env=env)
    assert second.exit_code == 0, second.output
    assert "0 created, 0 updated, 7 already right" in second.output
    assert snapshot(threaded_sim) == before

    listed = runner.invoke(main, ["mailjet", "webhooks"], env=env)
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("https://hook:***@mailer.example.org/events") == 7
    assert "word" not in listed.output
    as_json = runner.invoke(main, ["mailjet", "webhooks", "--json"], env=env)
    assert as_json.exit_code == 0 and as_json.output.count('"version": 2') == 7

    moved = runner.invoke(main, ["mailjet", "register-webhook", public + "/v2"], env=env)
    assert "0 created, 7 updated, 0 already right" in moved.output


def test_cli_register_webhook_refuses_without_credentials_or_with_a_bad_url(
    threaded_sim: SimulatorServer,
) -> None:
    runner = CliRunner()
    env = cli_env(threaded_sim, MAILER_EVENTS_USER=None, MAILER_EVENTS_PASSWORD=None)
    no_creds = runner.invoke(
        main, ["mailjet", "register-webhook", "https://m.example.org/events"], env=env
    )
    assert no_creds.exit_code != 0 and "MAILER_EVENTS_USER" in no_creds.output
    bad = runner.invoke(
        main,
        ["mailjet", "register-webhook", "mailer.example.org/events"],
        env=cli_env(threaded_sim),
    )
    assert bad.exit_code != 0 and "PUBLIC_URL" in bad.output
    assert threaded_sim.state.callbacks == {}
