"""Scoped API keys, sender domains, last use and idempotent replays, over real HTTP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import orjson

from mailer.apps import store
from mailer.db.pool import connect
from tests.integration.harness import FINAL, Service

EMAIL: dict[str, Any] = {
    "from": {"email": "noreply@shop.example"},
    "to": [{"email": "ann@example.org"}],
    "subject": "Hi",
    "text": "Hello",
}


async def key_with(service: Service, app: str, *scopes: str) -> str:
    conn = await connect(service.dsn)
    try:
        found = await store.find_app(conn, app)
        assert found is not None
        return (await store.create_key(conn, found.id, scopes)).plaintext
    finally:
        await conn.close()


async def test_every_route_checks_its_scope(service: Service) -> None:
    everything = await service.create_app("shop")
    send = await key_with(service, "shop", "send")
    read = await key_with(service, "shop", "read")
    hooks = await key_with(service, "shop", "webhooks")
    job_id = await service.queue(send, EMAIL)
    routes = [
        ("POST", "/queue", "send", {"json": EMAIL}),
        ("POST", "/queue/batch", "send", {"json": {"emails": [EMAIL]}}),
        ("GET", f"/status/{job_id}", "read", {}),
        ("GET", "/feed", "read", {}),
        ("GET", "/jobs", "read", {}),
        ("GET", "/suppressions", "read", {}),
        ("GET", "/audit", "read", {}),
        ("POST", "/suppressions", "send", {"json": {"email": "x@example.org"}}),
        ("GET", "/suppressions/x@example.org/history", "read", {}),
        ("DELETE", "/suppressions/x@example.org?reason=asked", "send", {}),
        ("GET", "/webhooks", "webhooks", {}),
        ("POST", "/webhooks", "webhooks", {"json": {"url": "https://shop.example/h"}}),
    ]
    for method, path, needed, kwargs in routes:
        for key, scope in ((send, "send"), (read, "read"), (hooks, "webhooks")):
            status, body = await service.request(method, path, key, **kwargs)
            if scope == needed:
                assert status < 400, (method, path, body)
            else:
                assert status == 403, (method, path, scope, body)
                assert body["error"] == "missing_scope" and body["scope"] == needed
                assert f"`{needed}`" in body["message"]
        status, _ = await service.request(method, path, everything, **kwargs)
        assert status < 500


async def test_an_app_limited_to_sender_domains(service: Service) -> None:
    key = await service.create_app("shop")
    conn = await connect(service.dsn)
    try:
        app = await store.find_app(conn, "shop")
        assert app is not None
        await store.set_sender_domains(conn, app.id, ["Shop.Example", "mail.shop.example"])
    finally:
        await conn.close()
    await service.queue(key, EMAIL)
    await service.queue(key, {**EMAIL, "from": {"email": "news@MAIL.shop.example"}})
    other = {**EMAIL, "from": {"email": "ceo@evil.example"}}
    status, body = await service.request("POST", "/queue", key, json=other)
    assert (status, body["error"], body["domain"]) == (403, "sender_not_allowed", "evil.example")
    assert "evil.example" in body["message"]
    batch = {"emails": [EMAIL, EMAIL, other]}
    status, body = await service.request("POST", "/queue/batch", key, json=batch)
    assert (status, body["field"]) == (403, "emails[2].from.email")


async def test_an_idempotent_replay_answers_the_job_s_current_status(service: Service) -> None:
    key = await service.create_app()
    headers = {"Idempotency-Key": "order-42"}
    job_id = await service.queue(key, EMAIL, headers=headers)
    done = await service.wait_for(key, job_id, FINAL)
    status, body = await service.request("POST", "/queue", key, json=EMAIL, headers=headers)
    assert (status, body) == (202, {"job_id": job_id, "status": done["status"]})
    assert done["status"] != "queued"
    status, body = await service.request(
        "POST", "/queue/batch", key, json={"emails": [EMAIL]}, headers=headers
    )
    [first] = body["jobs"]
    assert (status, first["status"]) == (202, "queued")
    status, again = await service.request(
        "POST", "/queue/batch", key, json={"emails": [EMAIL]}, headers=headers
    )
    assert again["jobs"][0]["job_id"] == first["job_id"]


async def test_a_key_s_last_use_is_noted(service: Service) -> None:
    key = await service.create_app()
    conn = await connect(service.dsn)
    try:
        assert await conn.fetchval("SELECT last_used_at FROM api_keys") is None
        await service.request("GET", "/feed", key)
        for _ in range(100):
            used = await conn.fetchval("SELECT last_used_at FROM api_keys")
            if used is not None:
                break
            await asyncio.sleep(0.02)
        assert used is not None
        await service.request("GET", "/feed", key)
        await asyncio.sleep(0.1)
        assert await conn.fetchval("SELECT last_used_at FROM api_keys") == used  # once a minute
    finally:
        await conn.close()


def test_cli_keys_with_scopes_senders_and_revoke_as_listed(db_dsn: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_dsn}

    def mailer(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "mailer.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert (done.returncode == 0) == ok, done.stderr
        return done

    mailer("apps", "create", "shop")
    again = mailer("apps", "create", "shop", ok=False)
    assert "mailer apps keys create shop" in again.stderr
    # The README's tour starts with this: it works the second time too.
    tour = orjson.loads(mailer("apps", "create", "shop", "--json", "--exist-ok").stdout)
    assert tour["api_key"].startswith("mk_")
    made = orjson.loads(
        mailer(
            "apps", "keys", "create", "shop", "--scope", "send", "--scope", "read", "--json"
        ).stdout
    )
    assert made["scopes"] == ["send", "read"] and len(made["key_id"]) == 36
    listing = mailer("apps", "keys", "list", "shop").stdout
    [line] = [x for x in listing.splitlines() if x.startswith(made["key_id"])]
    assert "scopes=send,read" in line and "last used never" in line
    shown = line.split()[1]
    assert shown.startswith("mk_") and shown.endswith("_…")
    assert "revoked" in mailer("apps", "keys", "revoke", shown).stdout
    assert "revoked" in mailer("apps", "keys", "list", "shop").stdout
    mailer("apps", "keys", "create", "shop", "--scope", "admin", ok=False)
    mailer("apps", "senders", "set", "shop", "Shop.Example", "mail.shop.example")
    assert mailer("apps", "senders", "show", "shop").stdout.strip() == (
        "mail.shop.example, shop.example"
    )
    assert "not a domain" in mailer("apps", "senders", "set", "shop", "a b", ok=False).stderr
    mailer("apps", "senders", "clear", "shop")
    assert "any domain" in mailer("apps", "senders", "show", "shop").stdout


async def test_an_expired_key_is_refused_and_a_live_one_accepted(service: Service) -> None:
    from datetime import UTC, datetime, timedelta

    await service.create_app()
    conn = await connect(service.dsn)
    try:
        found = await store.find_app(conn, "shop")
        assert found is not None
        now = datetime.now(UTC)
        expired = await store.create_key(conn, found.id, expires_at=now - timedelta(seconds=1))
        live = await store.create_key(conn, found.id, expires_at=now + timedelta(days=1))
    finally:
        await conn.close()
    assert (await service.request("GET", "/feed", expired.plaintext))[0] == 401
    assert (await service.request("GET", "/feed", live.plaintext))[0] == 200


def test_cli_keys_with_an_expiry(db_dsn: str) -> None:
    from datetime import UTC, datetime, timedelta

    env = {**os.environ, "DATABASE_URL": db_dsn}

    def mailer(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mailer.cli", *args]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert (done.returncode == 0) == ok, done.stderr
        return done

    mailer("apps", "create", "shop")
    made = orjson.loads(
        mailer("apps", "keys", "create", "shop", "--expires", "90d", "--json").stdout
    )
    expires = datetime.fromisoformat(made["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=5)
    assert "active until" in mailer("apps", "keys", "list", "shop").stdout
    assert (
        "--expires" in mailer("apps", "keys", "create", "shop", "--expires", "5x", ok=False).stderr
    )
