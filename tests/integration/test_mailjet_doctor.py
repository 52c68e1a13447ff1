"""`mailer mailjet doctor` against a simulator over real HTTP, on a real database: exit 0
after `register-webhook`, 1 with one line per problem when a callback is missing, points
elsewhere, or a sender domain fails its SPF check."""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner

from mailer.cli import main
from mailer.db.pool import connect
from mailer.simulator import SimulatorServer
from tests.integration.test_mailjet_registration import cli_env, threaded_sim

__all__ = ["threaded_sim"]  # the fixture, imported

PUBLIC = "https://mailer.example/events"


def _add_app_sending_from(dsn: str, domain: str) -> None:
    async def go() -> None:
        conn = await connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO apps (id, name, sender_domains)"
                " VALUES (gen_random_uuid(), 'shop', $1)",
                [domain],
            )
        finally:
            await conn.close()

    asyncio.run(go())


def test_doctor_passes_after_register_webhook_and_names_each_problem(
    threaded_sim: SimulatorServer, db_dsn: str
) -> None:
    runner = CliRunner()
    env = cli_env(threaded_sim, DATABASE_URL=db_dsn)
    registered = runner.invoke(main, ["mailjet", "register-webhook", PUBLIC], env=env)
    assert registered.exit_code == 0, registered.output

    healthy = runner.invoke(main, ["mailjet", "doctor", PUBLIC], env=env)
    assert healthy.exit_code == 0, healthy.output
    lines = healthy.output.splitlines()
    assert sum(line.startswith("ok ") for line in lines) == 10, healthy.output  # key, 7, ...
    assert "pa ss@word" not in healthy.output and "no problems found" in healthy.output

    callbacks = threaded_sim.state.callbacks
    sent = next(r for r in callbacks.values() if r.event_type == "sent")
    del callbacks[sent.id]
    opened = next(r for r in callbacks.values() if r.event_type == "open")
    opened.url = "https://crm.example/mailjet-hook"
    _add_app_sending_from(db_dsn, "nospf.example")

    sick = runner.invoke(main, ["mailjet", "doctor", PUBLIC], env=env)
    assert sick.exit_code == 1, sick.output
    problems = [line for line in sick.output.splitlines() if line.startswith("PROBLEM")]
    assert len(problems) == 3, sick.output
    assert "callback sent: none registered" in problems[0]
    assert "callback open" in problems[1] and "another system" in problems[1]
    assert "dns nospf.example: SPF Error" in problems[2]
    assert sick.output.rstrip().endswith("3 problem(s)")


def test_doctor_reports_a_refused_key(threaded_sim: SimulatorServer, db_dsn: str) -> None:
    env = cli_env(threaded_sim, DATABASE_URL=db_dsn, MJ_APIKEY_PRIVATE="wrong")
    result = CliRunner().invoke(main, ["mailjet", "doctor", PUBLIC], env=env)
    assert result.exit_code == 1
    assert "PROBLEM  key:" in result.output and "HTTP 401" in result.output


def test_the_backfill_command_starts_resumes_and_says_what_it_did(
    threaded_sim: SimulatorServer, db_dsn: str
) -> None:
    runner = CliRunner()
    env = cli_env(threaded_sim, DATABASE_URL=db_dsn)
    neither = runner.invoke(main, ["mailjet", "backfill"], env=env)
    assert neither.exit_code == 2 and "--resume" in neither.output
    nothing = runner.invoke(main, ["mailjet", "backfill", "--resume"], env=env)
    assert nothing.exit_code == 1 and "no unfinished backfill" in nothing.output
    bad = runner.invoke(main, ["mailjet", "backfill", "--since", "yesterday"], env=env)
    assert bad.exit_code == 2 and "ISO 8601" in bad.output
    done = runner.invoke(main, ["mailjet", "backfill", "--since", "6h", "--json"], env=env)
    assert done.exit_code == 0, done.output
    report = json.loads(done.output[done.output.index("{") :])
    assert report["finished"] and report["calls"] == 1 and report["total"] == 0
