"""The suppression lifecycle over real HTTP: each entry keeps its reason, causing event and
optional expiry; reactivating needs a reason; the address's history stays readable (API and
CLI), across reactivation, expiry and suppressing again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner

from mailer.cli import main
from mailer.simulator.server import SimulatorServer
from tests.integration.harness import Service
from tests.integration.tracking_helpers import email, mj_event, post_events, sent_messages


async def _history(service: Service, key: str, address: str) -> dict[str, Any]:
    status, body = await service.request("GET", f"/suppressions/{address}/history", key)
    assert status == 200, body
    result: dict[str, Any] = body
    return result


async def test_a_bounce_suppresses_and_a_reasoned_reactivation_is_kept(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    job = await service.queue(key, email("gone@example.org"))
    [m] = await sent_messages(service, simulator, key, job)
    assert (await post_events(service, mj_event("bounce", m)))[0] == 200

    found = await _history(service, key, "Gone@Example.org")
    assert found["suppressed"] and found["suppression"]["reason"] == "hard_bounce"
    [caused] = found["history"]
    assert (caused["action"], caused["actor"], caused["reason"]) == (
        "suppressed",
        "event",
        "hard_bounce",
    )
    assert caused["event_id"] == found["suppression"]["event_id"] is not None

    status, body = await service.request("DELETE", "/suppressions/gone@example.org", key)
    assert status == 422 and body["details"][0]["field"] == "reason"
    status, _ = await service.request(
        "DELETE", "/suppressions/gone@example.org?reason=the user fixed the mailbox", key
    )
    assert status == 204
    found = await _history(service, key, "gone@example.org")
    assert not found["suppressed"] and found["suppression"] is None
    assert [(c["action"], c["actor"].split(":")[0], c["reason"]) for c in found["history"]] == [
        ("suppressed", "event", "hard_bounce"),
        ("reactivated", "key", "the user fixed the mailbox"),  # the API key that did it
    ]
    other = await service.create_app("blog")
    assert (await _history(service, other, "gone@example.org"))["history"] == []  # per app


async def test_an_entry_that_expires_stops_blocking_and_can_be_renewed(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    status, body = await service.request(
        "POST", "/suppressions", key, json={"email": "a@example.org", "expires_at": past}
    )
    assert status == 201  # recorded, and already expired: it blocks nothing
    assert (await service.request("GET", "/suppressions", key))[1]["suppressions"] == []

    soon = datetime.now(UTC) + timedelta(seconds=1)
    status, body = await service.request(
        "POST",
        "/suppressions",
        key,
        json={"email": "a@example.org", "reason": "paused", "expires_at": soon.isoformat()},
    )
    assert status == 201 and body["expires_at"] is not None
    held = await service.wait_for(key, await service.queue(key, email("a@example.org")))
    assert held["recipients"][0]["status"] == "suppressed"

    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    _, listed = await service.request("GET", "/suppressions", key)
    assert listed["suppressions"] == []
    sent = await service.wait_for(key, await service.queue(key, email("a@example.org")))
    assert sent["recipients"][0]["status"] == "accepted"
    status, _ = await service.request("DELETE", "/suppressions/a@example.org?reason=x", key)
    assert status == 404  # nothing in force to reactivate

    status, body = await service.request(
        "POST", "/suppressions", key, json={"email": "a@example.org", "reason": "again"}
    )
    assert status == 201 and body["reason"] == "again" and body["expires_at"] is None
    found = await _history(service, key, "a@example.org")
    assert [(c["action"], c["reason"], c["expires_at"] is None) for c in found["history"]] == [
        ("suppressed", "manual", False),
        ("suppressed", "paused", False),
        ("suppressed", "again", True),
    ]


def test_the_cli_adds_reactivates_and_shows_the_history(db_dsn: str) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": db_dsn}
    assert runner.invoke(main, ["apps", "create", "shop"], env=env).exit_code == 0
    added = runner.invoke(
        main, ["suppressions", "add", "shop", "Ann@Example.org", "--reason", "asked"], env=env
    )
    assert added.exit_code == 0 and "ann@example.org suppressed" in added.output
    blank = runner.invoke(main, ["suppressions", "reactivate", "shop", "ann@example.org"], env=env)
    assert blank.exit_code != 0 and "--reason" in blank.output
    done = runner.invoke(
        main,
        ["suppressions", "reactivate", "shop", "ann@example.org", "--reason", "consent again"],
        env=env,
    )
    assert done.exit_code == 0, done.output
    shown = runner.invoke(main, ["suppressions", "history", "shop", "ann@example.org"], env=env)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == "ann@example.org: not suppressed for shop"
    assert "suppressed  by cli" in lines[1] and lines[1].endswith("asked")
    assert "reactivated by cli" in lines[2] and lines[2].endswith("consent again")
    missing = runner.invoke(main, ["suppressions", "history", "nope", "a@b.org"], env=env)
    assert missing.exit_code != 0 and "no app named" in missing.output
