"""`mailer operators add|list|disable|remove` as an operator types them."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from mailer.dashboard.passwords import verify_password
from mailer.db.pool import connect


def _mailer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailer.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


async def test_operators_are_added_with_a_one_time_password_listed_and_removed(
    db_dsn: str,
) -> None:
    env = {**os.environ, "DATABASE_URL": db_dsn}
    added = _mailer(env, "operators", "add", "ann", "--role", "admin", "--json")
    assert added.returncode == 0, added.stderr
    shown = orjson.loads(added.stdout)
    assert shown["role"] == "admin" and len(shown["password"]) >= 20
    conn = await connect(db_dsn)
    try:
        stored = await conn.fetchval("SELECT password_hash FROM operators WHERE name = 'ann'")
    finally:
        await conn.close()
    assert shown["password"] not in stored and verify_password(shown["password"], stored)
    assert _mailer(env, "operators", "add", "ann", "--role", "viewer").returncode != 0
    bad = _mailer(env, "operators", "add", "two words", "--role", "viewer")
    assert bad.returncode != 0 and "an operator's name is" in bad.stderr
    assert _mailer(env, "operators", "add", "vic", "--role", "viewer").returncode == 0
    listing = _mailer(env, "operators", "list").stdout
    assert "ann  admin  last seen never" in listing and "vic  viewer" in listing
    assert shown["password"] not in listing
    assert "disabled operator vic" in _mailer(env, "operators", "disable", "vic").stdout
    assert "vic  viewer  last seen never  disabled" in _mailer(env, "operators", "list").stdout
    assert "removed operator ann" in _mailer(env, "operators", "remove", "ann").stdout
    gone = _mailer(env, "operators", "remove", "ann")
    assert gone.returncode != 0 and "no operator named 'ann'" in gone.stderr
