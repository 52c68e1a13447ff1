"""The audit log: the operator's CLI changes and the apps' API changes are recorded in the
same transaction, listed by `mailer audit`, and each app reads its own by `GET /audit`."""

from __future__ import annotations

import asyncio
import getpass
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.integration.harness import Service, running_service


def mailer(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": dsn}
    command = [sys.executable, "-m", "mailer.cli", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done


def test_mailer_audit_lists_the_operator_s_changes(db_dsn: str) -> None:
    mailer(db_dsn, "apps", "create", "shop")
    made = orjson.loads(
        mailer(db_dsn, "apps", "keys", "create", "shop", "--scope", "send", "--json").stdout
    )
    mailer(db_dsn, "apps", "keys", "revoke", made["key_id"])
    mailer(db_dsn, "apps", "senders", "set", "shop", "shop.example")
    mailer(db_dsn, "apps", "create", "blog")
    entries = orjson.loads(mailer(db_dsn, "audit", "--app", "shop", "--json").stdout)
    actions = [e["action"] for e in reversed(entries)]
    assert actions == [
        "app.created",
        "key.created",
        "key.created",
        "key.revoked",
        "app.senders_changed",
    ]
    assert {e["actor"] for e in entries} == {f"cli:{getpass.getuser()}"}
    scoped = [e for e in entries if e["target"] == made["key_id"]]
    assert [e["action"] for e in scoped] == ["key.revoked", "key.created"]
    assert scoped[1]["details"]["scopes"] == ["send"]
    assert made["api_key"] not in orjson.dumps(entries).decode()
    listing = mailer(db_dsn, "audit").stdout
    assert "app.created blog" in listing and "key.created" in listing
    assert mailer(db_dsn, "audit", "--since", "1h", "--limit", "1").stdout.count("\n") == 1
    assert "app.created" not in mailer(db_dsn, "audit", "--since", "2099-01-01").stdout


@pytest.fixture
async def service(db_dsn: str) -> AsyncIterator[Service]:
    async with running_service(db_dsn, None, worker=False) as svc:
        yield svc


async def audit_of(service: Service, key: str, **params: Any) -> list[dict[str, Any]]:
    status, body = await service.request("GET", "/audit", key, params=params)
    assert status == 200, body
    entries: list[dict[str, Any]] = body["entries"]
    return entries


async def test_an_app_reads_its_own_api_changes_with_key_and_address(service: Service) -> None:
    key = await service.create_app("shop")
    other = await service.create_app("blog")
    status, endpoint = await service.request(
        "POST", "/webhooks", key, json={"url": "http://127.0.0.1:9/h"}
    )
    assert status == 201
    path = f"/webhooks/{endpoint['id']}"
    assert (await service.request("PATCH", path, key, json={"enabled": False}))[0] == 200
    assert (await service.request("POST", path + "/rotate-secret", key))[0] == 200
    assert (await service.request("DELETE", path, key))[0] == 204
    assert (await service.request("POST", "/suppressions", key, json={"email": "Ann@Example.org"}))[
        0
    ] == 201
    assert (await service.request("DELETE", "/suppressions/ann@example.org?reason=asked", key))[
        0
    ] == 204
    await asyncio.sleep(0)
    entries = await audit_of(service, key)
    assert [e["action"] for e in reversed(entries)] == [
        "app.created",
        "key.created",
        "endpoint.created",
        "endpoint.changed",
        "endpoint.secret_rotated",
        "endpoint.deleted",
        "suppression.added",
        "suppression.removed",
    ]
    by_api = [e for e in entries if e["actor"].startswith("key:")]
    assert len(by_api) == 6 and {e["source"] for e in by_api} == {"127.0.0.1"}
    assert by_api[-1]["details"] == {"url": "http://127.0.0.1:9/h", "event_types": None}
    assert endpoint["secret"] not in orjson.dumps(entries).decode()
    theirs = await audit_of(service, other)
    assert [e["action"] for e in theirs] == ["key.created", "app.created"]
    page = await audit_of(service, key, limit=3)
    assert len(page) == 3
    status, body = await service.request("GET", "/audit", key, params={"limit": 3})
    rest = await audit_of(service, key, before=body["next_before"])
    assert [e["id"] for e in page + rest] == [e["id"] for e in entries]
    assert await audit_of(service, key, since="2099-01-01T00:00:00Z") == []
    status, _ = await service.request("GET", "/audit", key, params={"since": "12345"})
    assert status == 422
