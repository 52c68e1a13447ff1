"""The Mailjet client against the simulator, over real HTTP on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from mailer.mailjet import (
    ClientTimeouts,
    MailjetClient,
    MailjetConnectionError,
    MailjetNotFound,
    MailjetRateLimited,
    MailjetRequestRejected,
    MailjetServerError,
    MailjetTimeout,
    MessageAccepted,
    MessageRejected,
)
from mailer.simulator import FaultConfig, SimulatorServer

TWO_53 = 2**53


def message(to: list[str], custom_id: str = "", **extra: Any) -> dict[str, Any]:
    """A minimal valid Send API v3.1 message."""
    msg: dict[str, Any] = {
        "From": {"Email": "sender@example.org", "Name": "Sender"},
        "To": [{"Email": email} for email in to],
        "Subject": "Hello",
        "TextPart": "Hello there",
        **extra,
    }
    if custom_id:
        msg["CustomID"] = custom_id
    return msg


def auth_header(sim: SimulatorServer) -> dict[str, str]:
    """HTTP Basic credentials the simulator accepts."""
    token = base64.b64encode(f"{sim.config.api_key}:{sim.config.secret_key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer() as server:
        yield server


@pytest.fixture(autouse=True)
def clean(sim: SimulatorServer) -> None:
    sim.set_faults(FaultConfig())
    sim.state.reset()


@pytest.fixture
async def client(sim: SimulatorServer) -> AsyncIterator[MailjetClient]:
    async with MailjetClient(sim.url, sim.config.api_key, sim.config.secret_key) as c:
        yield c


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# -- sending -------------------------------------------------------------------------------


async def test_single_recipient_ids_are_exact_big_ints(
    sim: SimulatorServer, client: MailjetClient
) -> None:
    response = await client.send([message(["a@example.org"], "job-1")])
    assert response.http_status == 200
    [result] = response.results
    assert isinstance(result, MessageAccepted)
    assert result.custom_id == "job-1"
    [recipient] = result.recipients
    [record] = sim.state.accepted
    assert recipient.message_id == record.message_id > TWO_53
    assert recipient.message_uuid == record.uuid and len(recipient.message_uuid) == 36
    assert (recipient.email, recipient.kind) == ("a@example.org", "to")
    assert sim.state.count_for("job-1") == 1


async def test_multi_recipient_each_gets_its_own_id(
    sim: SimulatorServer, client: MailjetClient
) -> None:
    msg = message(
        ["a@example.org", "b@example.org"],
        "job-2",
        Cc=[{"Email": "c@example.org"}, {"Email": "A@example.org"}],  # repeat counts once
        Bcc=[{"Email": "d@example.org"}],
    )
    response = await client.send([msg])
    [result] = response.results
    assert isinstance(result, MessageAccepted)
    kinds = [(r.email, r.kind) for r in result.recipients]
    assert kinds == [
        ("a@example.org", "to"),
        ("b@example.org", "to"),
        ("c@example.org", "cc"),
        ("d@example.org", "bcc"),
    ]
    ids = [r.message_id for r in result.recipients]
    assert len(set(ids)) == 4 and all(i > TWO_53 for i in ids)
    assert sorted(ids) == sorted(r.message_id for r in sim.state.accepted)


async def test_mixed_batch_gives_per_message_results(
    sim: SimulatorServer, client: MailjetClient
) -> None:
    batch = [
        message(["ok1@example.org"], "good-1"),
        message(["bad@@x"], "bad-1"),
        message(["ok2@example.org"], "good-2"),
        {"From": {"Email": "sender@example.org"}, "To": [{"Email": "x@example.org"}]},
    ]
    response = await client.send(batch)
    assert response.http_status == 400
    good1, bad, good2, no_body = response.results
    assert isinstance(good1, MessageAccepted) and good1.custom_id == "good-1"
    assert isinstance(good2, MessageAccepted) and good2.custom_id == "good-2"
    assert isinstance(bad, MessageRejected)
    [error] = bad.errors
    assert error.code == "mj-0013"
    assert error.message == '"bad@@x" is an invalid email address.'
    assert error.related_to == ["To[0].Email"]
    assert error.status_code == 400
    assert isinstance(no_body, MessageRejected)
    assert [e.code for e in no_body.errors] == ["send-0003"]
    assert sim.state.count_for("good-1") == sim.state.count_for("good-2") == 1
    assert sim.state.count_for("bad-1") == 0
    assert len(sim.state.accepted) == 2


async def test_all_failed_batch_is_400_with_messages(client: MailjetClient) -> None:
    response = await client.send([message(["bad@@x"]), message([], "x")])
    assert response.http_status == 400
    assert all(isinstance(r, MessageRejected) for r in response.results)


async def test_fifty_recipients_pass_fifty_one_fail_whole_call(
    sim: SimulatorServer, client: MailjetClient
) -> None:
    fifty = [message([f"u{i}@example.org"], f"c{i}") for i in range(50)]
    response = await client.send(fifty)
    assert response.http_status == 200 and response.all_accepted

    with pytest.raises(MailjetRequestRejected) as info:
        await client.send([*fifty, message(["u50@example.org"], "c50")])
    exc = info.value
    assert (exc.status, exc.code) == (400, "send-0015")
    assert exc.message == "Total number of recipients exceeded. Max allowed - 50."
    assert exc.related_to == ["To", "Bcc", "Cc"]
    assert not exc.retryable and not exc.outcome_unknown
    assert sim.state.calls == [50, 51]
    assert len(sim.state.accepted) == 50


async def test_sandbox_validates_but_records_nothing(
    sim: SimulatorServer, client: MailjetClient
) -> None:
    response = await client.send(
        [message(["a@example.org"], "sb"), message(["x@@y"])], sandbox=True
    )
    ok, bad = response.results
    assert isinstance(ok, MessageAccepted) and isinstance(bad, MessageRejected)
    assert [(r.message_id, r.message_uuid) for r in ok.recipients] == [(0, "")]
    assert sim.state.accepted == [] and sim.state.count_for("sb") == 0


async def test_null_in_variables_fails_whole_call_with_500(
    sim: SimulatorServer, client: MailjetClient
) -> None:
    msg = message(["a@example.org"], "nulls", Variables={"name": None})
    with pytest.raises(MailjetServerError) as info:
        await client.send([msg])
    assert info.value.status == 500
    assert "Cannot convert data from Null value" in info.value.detail
    assert sim.state.accepted == []


async def test_bad_credentials_are_rejected_not_retryable(sim: SimulatorServer) -> None:
    async with MailjetClient(sim.url, "wrong", "keys") as bad:
        with pytest.raises(MailjetRequestRejected) as info:
            await bad.send([message(["a@example.org"])])
        assert info.value.status == 401 and info.value.code is None
        assert "API key authentication/authorization failure" in info.value.message
        assert not info.value.retryable
        with pytest.raises(MailjetRequestRejected):
            await bad.find_messages_by_custom_id("x")
    assert sim.state.calls == []


async def test_malformed_json_is_mj_0002(sim: SimulatorServer, http: aiohttp.ClientSession) -> None:
    auth = auth_header(sim)
    async with http.post(sim.url + "/v3.1/send", data=b"{nope", headers=auth) as r:
        body = await r.json()
    assert r.status == 400 and body["ErrorCode"] == "mj-0002" and "Messages" not in body


async def test_many_parallel_calls(sim: SimulatorServer, client: MailjetClient) -> None:
    async def call(n: int) -> None:
        batch = [message([f"p{n}-{i}@example.org"], f"p{n}-{i}") for i in range(50)]
        response = await client.send(batch)
        assert response.all_accepted

    await asyncio.gather(*(call(n) for n in range(40)))
    assert len(sim.state.accepted) == 2000
    assert max(sim.state.calls) == 50 and len(sim.state.calls) == 40
    ids = [r.message_id for r in sim.state.accepted]
    assert len(set(ids)) == len(ids)


# -- faults --------------------------------------------------------------------------------


async def test_fault_500_is_retryable_server_error(
    sim: SimulatorServer, client: MailjetClient
) -> None:
    sim.set_faults(FaultConfig(error_500_rate=1.0))
    with pytest.raises(MailjetServerError) as info:
        await client.send([message(["a@example.org"], "f500")])
    assert info.value.retryable and info.value.outcome_unknown
    assert sim.state.count_for("f500") == 0
    assert sim.state.faults["error_500"] == 1


@pytest.mark.parametrize(("retry_after", "expected"), [(7.0, 7.0), (None, None)])
async def test_fault_html_429_is_rate_limited(
    sim: SimulatorServer, client: MailjetClient, retry_after: float | None, expected: float | None
) -> None:
    sim.set_faults(FaultConfig(html_429_rate=1.0, retry_after=retry_after))
    with pytest.raises(MailjetRateLimited) as info:
        await client.send([message(["a@example.org"], "f429")])
    exc = info.value
    assert exc.status == 429 and exc.retry_after == expected
    assert exc.retryable and not exc.outcome_unknown
    assert sim.state.count_for("f429") == 0


async def test_fault_timeout_raises_timeout(sim: SimulatorServer) -> None:
    sim.set_faults(FaultConfig(timeout_rate=1.0))
    fast = MailjetClient(
        sim.url, sim.config.api_key, sim.config.secret_key, timeout=ClientTimeouts(total=0.3)
    )
    async with fast:
        started = time.monotonic()
        with pytest.raises(MailjetTimeout) as info:
            await fast.send([message(["a@example.org"], "hang")])
        assert time.monotonic() - started < 2
    assert info.value.retryable and info.value.outcome_unknown
    assert sim.state.count_for("hang") == 0


async def test_latency_is_added(sim: SimulatorServer, client: MailjetClient) -> None:
    sim.set_faults(FaultConfig(latency_ms=60))
    started = time.monotonic()
    await client.send([message(["a@example.org"])])
    assert time.monotonic() - started >= 0.06


@pytest.mark.parametrize(
    ("mode", "error"), [("500", MailjetServerError), ("drop", MailjetConnectionError)]
)
async def test_lost_answer_is_found_by_custom_id(
    sim: SimulatorServer, client: MailjetClient, mode: str, error: type[Exception]
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    sim.set_faults(FaultConfig(lost_answer_rate=1.0, lost_answer_mode=mode))  # type: ignore[arg-type]
    with pytest.raises(error) as info:
        await client.send([message(["lost@example.org", "also@example.org"], "job-lost")])
    assert getattr(info.value, "outcome_unknown", False) is True
    assert getattr(info.value, "retryable", False) is True
    sim.set_faults(FaultConfig())

    found = await client.find_messages_by_custom_id("job-lost", since=before)
    assert sorted((m.email, m.custom_id, m.status) for m in found) == [
        ("also@example.org", "job-lost", "sent"),
        ("lost@example.org", "job-lost", "sent"),
    ]
    assert {m.message_id for m in found} == {r.message_id for r in sim.state.accepted}
    assert sim.state.count_for("job-lost") == 1
    assert (
        await client.find_messages_by_custom_id(
            "job-lost", since=datetime.now(UTC) + timedelta(hours=1)
        )
        == []
    )
    assert await client.find_messages_by_custom_id("never-sent") == []


async def test_connection_refused_is_known_not_sent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with MailjetClient(f"http://127.0.0.1:{port}", "k", "s") as nowhere:
        with pytest.raises(MailjetConnectionError) as info:
            await nowhere.send([message(["a@example.org"])])
    assert info.value.retryable and not info.value.outcome_unknown


async def test_seeded_faults_repeat(sim: SimulatorServer, http: aiohttp.ClientSession) -> None:
    async def run() -> list[int]:
        async with http.put(
            sim.url + "/_sim/faults", json={"error_500_rate": 0.5, "seed": 42}
        ) as r:
            assert r.status == 200
        statuses = []
        auth = auth_header(sim)
        for _ in range(12):
            body = {"Messages": [message(["a@example.org"])]}
            async with http.post(sim.url + "/v3.1/send", json=body, headers=auth) as r:
                statuses.append(r.status)
        return statuses

    first = await run()
    assert await run() == first and {200, 500} == set(first)


# -- lookups and the control API -----------------------------------------------------------


async def test_message_by_id_and_404(
    sim: SimulatorServer, client: MailjetClient, http: aiohttp.ClientSession
) -> None:
    await client.send([message(["a@example.org"], "byid")])
    record = sim.state.accepted[0]
    auth = auth_header(sim)
    async with http.get(f"{sim.url}/v3/REST/message/{record.message_id}", headers=auth) as r:
        body = await r.read()
    assert r.status == 200 and str(record.message_id).encode() in body
    async with http.get(f"{sim.url}/v3/REST/message/1", headers=auth) as r:
        assert r.status == 404
        assert await r.json() == {
            "ErrorInfo": "",
            "ErrorMessage": "Object not found",
            "StatusCode": 404,
        }


async def test_control_api(
    sim: SimulatorServer, client: MailjetClient, http: aiohttp.ClientSession
) -> None:
    await client.send([message(["a@example.org", "b@example.org"], "ctl")])
    async with http.get(sim.url + "/_sim/stats") as r:
        stats = await r.json()
    assert stats["accepted"] == 2 and stats["calls"] == 1 and stats["by_custom_id"] == {"ctl": 1}
    async with http.get(sim.url + "/_sim/messages", params={"custom_id": "ctl"}) as r:
        rows = (await r.json())["Data"]
    assert {row["email"] for row in rows} == {"a@example.org", "b@example.org"}
    assert all(row["message_id"] > TWO_53 for row in rows)
    async with http.put(sim.url + "/_sim/faults", json={"error_500_rate": 2}) as r:
        assert r.status == 400
    async with http.put(sim.url + "/_sim/faults", json={"latency_ms": 5}) as r:
        assert r.status == 200
    assert sim.faults.config.latency_ms == 5
    async with http.post(sim.url + "/_sim/reset") as r:
        assert r.status == 200
    assert sim.state.accepted == [] and sim.state.calls == []


# -- event callback URLs -------------------------------------------------------------------

EVENTS = ["sent", "open", "click", "bounce", "spam", "blocked", "unsub"]


async def test_event_callback_crud(
    sim: SimulatorServer, client: MailjetClient, http: aiohttp.ClientSession
) -> None:
    url = "http://user:pass@127.0.0.1:9/events"
    for event in EVENTS:
        created = await client.create_event_callback(event, url)
        assert (created.event_type, created.url, created.version) == (event, url, 2)
        assert created.status == "alive" and not created.is_backup
        await client.create_event_callback(event, url + "-backup", is_backup=True)

    # Mailjet's default page is 10 rows: the client must still see all 14.
    auth = auth_header(sim)
    async with http.get(sim.url + "/v3/REST/eventcallbackurl", headers=auth) as r:
        page = await r.json()
    assert (page["Count"], page["Total"], len(page["Data"])) == (10, 14, 10)
    callbacks = await client.list_event_callbacks()
    assert len(callbacks) == 14

    with pytest.raises(MailjetRequestRejected) as info:
        await client.create_event_callback("open", url)
    assert info.value.status == 400 and info.value.code == "MJ18"
    assert "already exists" in info.value.message

    opened = next(c for c in callbacks if c.event_type == "open" and not c.is_backup)
    updated = await client.update_event_callback(opened.id, url=url + "?v=2")
    assert updated.url == url + "?v=2" and updated.event_type == "open"
    unchanged = await client.update_event_callback(opened.id, url=url + "?v=2")  # 304
    assert unchanged == updated
    assert (await client.get_event_callback(opened.id)).url == url + "?v=2"

    await client.delete_event_callback(opened.id)
    with pytest.raises(MailjetNotFound):
        await client.get_event_callback(opened.id)
    with pytest.raises(MailjetNotFound):
        await client.delete_event_callback(opened.id)
    assert len(await client.list_event_callbacks()) == 13


async def test_event_callback_validation(sim: SimulatorServer, http: aiohttp.ClientSession) -> None:
    auth = auth_header(sim)
    endpoint = sim.url + "/v3/REST/eventcallbackurl"
    async with http.post(
        endpoint, json={"EventType": "typofix", "Url": "http://127.0.0.1/"}, headers=auth
    ) as r:
        assert r.status == 400 and "EventType" in (await r.json())["ErrorMessage"]
    async with http.post(
        endpoint, json={"EventType": "open", "Url": "http://127.0.0.1/"}, headers=auth
    ) as r:
        assert r.status == 201
        assert (await r.json())["Data"][0]["Version"] == 1  # Mailjet's default when omitted
    async with http.get(endpoint, params={"EventType": "open"}, headers=auth) as r:
        assert (await r.json())["Total"] == 1
    async with http.get(endpoint) as r:
        assert r.status == 401
