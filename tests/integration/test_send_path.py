"""The send path end to end: real HTTP in, real PostgreSQL, the Mailjet simulator out."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from mailer.db.pool import connect
from mailer.delivery.retry import RetryPolicy
from mailer.simulator.faults import FaultConfig
from mailer.simulator.server import SimulatorServer
from tests.integration.harness import Service, running_service, service_settings

FAST_RETRY = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2, max_attempts=10)


def email(to: str = "ann@example.org", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": {"email": "noreply@shop.example", "name": "Shop"},
        "to": [{"email": to}],
        "subject": "Your order",
        "text": "Thanks!",
        "html": "<p>Thanks!</p>",
        "metadata": {"order": "42"},
    }
    body.update(extra)
    return body


@pytest.fixture
async def service(db_dsn: str, simulator: SimulatorServer) -> AsyncIterator[Service]:
    async with running_service(db_dsn, simulator, policy=FAST_RETRY) as svc:
        yield svc


async def test_single_recipient_is_sent_once(service: Service, simulator: SimulatorServer) -> None:
    key = await service.create_app()
    job_id = await service.queue(key, email())
    done = await service.wait_for(key, job_id)
    assert done["status"] == "accepted"
    assert done["metadata"] == {"order": "42"}
    [recipient] = done["recipients"]
    assert recipient["email"] == "ann@example.org"
    assert recipient["status"] == "accepted"
    sent = simulator.state.messages_for(job_id)
    assert len(sent) == 1
    # Mailjet ids exceed 2^53: exact, and a string in our API.
    assert recipient["message_id"] == str(sent[0].message_id)
    assert int(recipient["message_id"]) > 2**53


async def test_multi_recipient_job_gets_one_message_id_each(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    job_id = await service.queue(
        key,
        email(
            to="a@example.org",
            cc=[{"email": "b@example.org"}],
            bcc=[{"email": "c@example.org", "name": "C"}],
        ),
    )
    done = await service.wait_for(key, job_id)
    kinds = [(r["kind"], r["email"], r["status"]) for r in done["recipients"]]
    assert kinds == [
        ("to", "a@example.org", "accepted"),
        ("cc", "b@example.org", "accepted"),
        ("bcc", "c@example.org", "accepted"),
    ]
    ids = {r["message_id"] for r in done["recipients"]}
    assert len(ids) == 3 and None not in ids
    assert simulator.state.count_for(job_id) == 1
    assert len(simulator.state.messages_for(job_id)) == 3
    assert simulator.state.calls == [3]


async def test_a_batch_of_120_goes_out_in_calls_of_at_most_50(
    service: Service, simulator: SimulatorServer
) -> None:
    key = await service.create_app()
    batch = {"emails": [email(to=f"user{i}@example.org") for i in range(120)]}
    status, body = await service.request("POST", "/queue/batch", key, json=batch)
    assert status == 202, body
    job_ids = [j["job_id"] for j in body["jobs"]]
    assert len(set(job_ids)) == 120
    for job_id in job_ids:
        await service.wait_for(key, job_id)
    assert sum(simulator.state.calls) == 120
    assert max(simulator.state.calls) <= 50
    assert all(simulator.state.count_for(j) == 1 for j in job_ids)


async def test_partly_failed_batch_sends_the_good_ones_once(
    service: Service, simulator: SimulatorServer
) -> None:
    from mailer.delivery.email import EmailRequest
    from mailer.delivery.enqueue import insert_jobs, new_job

    key = await service.create_app()
    status, _ = await service.request("GET", "/status/00000000-0000-0000-0000-000000000000", key)
    assert status == 404
    conn = await connect(service.dsn)
    try:
        app_id = await conn.fetchval("SELECT app_id FROM api_keys")
        jobs = [
            new_job(app_id, EmailRequest.model_validate(email(f"ok{i}@example.org")))
            for i in range(3)
        ]
        # A message Mailjet refuses on its own (mj-0013), in the same call as good ones.
        valid = new_job(app_id, EmailRequest.model_validate(email("x@example.org")))
        message = {**valid.message, "To": [{"Email": "bad@@x"}]}
        bad = dataclasses.replace(valid, message=message, recipients=[("to", "bad@@x")])
        async with conn.transaction():
            await insert_jobs(conn, [jobs[0], bad, jobs[1], jobs[2]])
    finally:
        await conn.close()
    failed = await service.wait_for(key, str(bad.id))
    assert failed["status"] == "failed"
    [error] = failed["recipients"][0]["error"]["errors"]
    assert error["code"] == "mj-0013"
    assert len(error["identifier"]) == 36  # Mailjet's ErrorIdentifier, for its support
    assert failed["last_error"]["errors"][0]["code"] == "mj-0013"
    for job in jobs:
        done = await service.wait_for(key, str(job.id))
        assert done["status"] == "accepted"
        assert simulator.state.count_for(str(job.id)) == 1


@pytest.mark.parametrize(
    "faults",
    [
        FaultConfig(error_500_rate=1.0),
        FaultConfig(html_429_rate=1.0, retry_after=0.1),
        FaultConfig(timeout_rate=1.0, hang_seconds=5.0),
        FaultConfig(lost_answer_rate=1.0),
        FaultConfig(lost_answer_rate=1.0, lost_answer_mode="drop"),
    ],
    ids=["500", "429", "timeout", "lost-answer-500", "lost-answer-drop"],
)
async def test_transient_failures_are_retried_and_sent_exactly_once(
    service: Service, simulator: SimulatorServer, faults: FaultConfig
) -> None:
    key = await service.create_app()
    simulator.set_faults(faults)
    job_id = await service.queue(key, email())
    # Wait until the first attempt has failed, then let Mailjet recover.
    for _ in range(200):
        body = await service.status(key, job_id)
        if body["last_error"] is not None or simulator.state.count_for(job_id):
            break
        await asyncio.sleep(0.05)
    simulator.set_faults(FaultConfig())
    done = await service.wait_for(key, job_id, timeout=20)
    assert done["status"] == "accepted"
    assert done["attempts"] >= 2
    assert simulator.state.count_for(job_id) == 1
    assert done["recipients"][0]["message_id"] == str(
        simulator.state.messages_for(job_id)[0].message_id
    )


async def test_send_at_in_the_future_waits(service: Service, simulator: SimulatorServer) -> None:
    from datetime import UTC, datetime, timedelta

    key = await service.create_app()
    when = datetime.now(UTC) + timedelta(seconds=1.5)
    job_id = await service.queue(key, email(send_at=when.isoformat()))
    await asyncio.sleep(0.6)
    early = await service.status(key, job_id)
    assert early["status"] == "queued"
    assert simulator.state.count_for(job_id) == 0
    done = await service.wait_for(key, job_id)
    assert done["status"] == "accepted"
    assert datetime.fromisoformat(done["sent_at"]) >= when


async def test_batch_stores_recipients_and_send_at_like_single_emails(
    service: Service, simulator: SimulatorServer
) -> None:
    # A batch without an Idempotency-Key is stored by COPY: the same rows as one by one.
    from datetime import UTC, datetime, timedelta

    key = await service.create_app()
    later = datetime.now(UTC) + timedelta(hours=1)
    batch = {
        "emails": [
            email(to="a@example.org", cc=[{"email": "b@example.org"}]),
            email(to="c@example.org", send_at=later.isoformat()),
        ]
    }
    status, body = await service.request("POST", "/queue/batch", key, json=batch)
    assert status == 202, body
    now_job, later_job = (j["job_id"] for j in body["jobs"])
    done = await service.wait_for(key, now_job)
    assert [(r["kind"], r["email"], r["status"]) for r in done["recipients"]] == [
        ("to", "a@example.org", "accepted"),
        ("cc", "b@example.org", "accepted"),
    ]
    assert done["metadata"] == {"order": "42"}
    waiting = await service.status(key, later_job)
    assert waiting["status"] == "queued"
    assert simulator.state.count_for(later_job) == 0


async def test_idempotency_key(service: Service, simulator: SimulatorServer) -> None:
    key = await service.create_app()
    headers = {"Idempotency-Key": "order-42-confirmation"}
    first = await service.request("POST", "/queue", key, json=email(), headers=headers)
    again = await service.request("POST", "/queue", key, json=email(), headers=headers)
    assert first[0] == again[0] == 202
    assert first[1]["job_id"] == again[1]["job_id"]
    other = await service.request(
        "POST", "/queue", key, json=email(subject="Other"), headers=headers
    )
    assert other[0] == 409
    assert other[1]["error"] == "idempotency_conflict"
    await service.wait_for(key, first[1]["job_id"])
    assert len(simulator.state.accepted) == 1
    bad = await service.request(
        "POST", "/queue", key, json=email(), headers={"Idempotency-Key": "no spaces"}
    )
    assert bad[0] == 400


async def test_batch_idempotency_and_atomicity(service: Service) -> None:
    key = await service.create_app()
    batch = {"emails": [email(to=f"u{i}@example.org") for i in range(3)]}
    headers = {"Idempotency-Key": "batch-1"}
    first = await service.request("POST", "/queue/batch", key, json=batch, headers=headers)
    again = await service.request("POST", "/queue/batch", key, json=batch, headers=headers)
    assert first[0] == again[0] == 202
    # The same jobs; a replay answers each job's status as it is now (it may have moved on).
    assert [j["job_id"] for j in first[1]["jobs"]] == [j["job_id"] for j in again[1]["jobs"]]
    changed = {"emails": batch["emails"][:2]}
    conflict = await service.request("POST", "/queue/batch", key, json=changed, headers=headers)
    assert conflict[0] == 409
    # One invalid email refuses the whole batch, naming it; nothing is stored.
    broken = {"emails": [email(), email(to="not-an-address")]}
    status, body = await service.request("POST", "/queue/batch", key, json=broken)
    assert status == 422
    assert body["details"][0]["field"] == "emails[1].to[0].email"


async def test_enqueue_checks_caller_before_body(service: Service) -> None:
    # The key is checked first (401), then the Idempotency-Key (400), then the body (422),
    # on both enqueue routes; nothing is stored on the way.
    key = await service.create_app("order")
    conn = await connect(service.dsn)
    before = await conn.fetchval("SELECT count(*) FROM jobs")
    bad = {"emails": "not a list"}
    for path, body in (("/queue", {"to": "nobody"}), ("/queue/batch", bad)):
        assert (await service.request("POST", path, None, json=body))[0] == 401
        assert (await service.request("POST", path, "mk_nope", json=body))[0] == 401
        status, answer = await service.request(
            "POST", path, key, json=body, headers={"Idempotency-Key": "no spaces"}
        )
        assert (status, answer["error"]) == (400, "invalid_idempotency_key")
        status, answer = await service.request("POST", path, key, json=body)
        assert (status, answer["error"]) == (422, "invalid_request")
    assert await conn.fetchval("SELECT count(*) FROM jobs") == before
    await conn.close()


async def test_enqueue_bodies_must_be_json(service: Service) -> None:
    # Both enqueue routes read their body as FastAPI reads JSON: a JSON Content-Type (with
    # parameters, or a +json subtype) and a non-empty body; anything else is a 422 that
    # says so, and nothing is stored.
    key = await service.create_app("bodies")
    conn = await connect(service.dsn)
    before = await conn.fetchval("SELECT count(*) FROM jobs")
    for path, good in (("/queue", email()), ("/queue/batch", {"emails": [email()]})):
        refused = [
            (b"", "application/json", "body", "Field required"),
            (orjson.dumps(good), "text/plain", "body", "Content-Type: application/json"),
            (orjson.dumps(good), None, "body", "Content-Type: application/json"),
            (b"{not json", "application/json", "body", "Invalid JSON"),
            (b"[1, 2]", "application/json", "body", "object"),
        ]
        for data, content_type, field, says in refused:
            # With no Content-Type given, aiohttp must not add its own.
            typed = (
                {"skip_auto_headers": ["Content-Type"]}
                if content_type is None
                else {"headers": {"Content-Type": content_type}}
            )
            status, answer = await service.request("POST", path, key, data=data, **typed)
            assert (status, answer["error"]) == (422, "invalid_request"), (path, data)
            assert answer["details"][0]["field"] == field, answer
            assert says in answer["details"][0]["message"], answer
    assert await conn.fetchval("SELECT count(*) FROM jobs") == before
    for content_type in ("application/json; charset=utf-8", "Application/Vnd.Shop+JSON"):
        headers = {"Content-Type": content_type}
        data = orjson.dumps(email())
        status, answer = await service.request("POST", "/queue", key, data=data, headers=headers)
        assert status == 202, answer
    await conn.close()


async def test_json_that_could_not_be_stored_is_refused(service: Service) -> None:
    # Stored JSON is written with orjson (integers of at most 64 bits): a larger integer is
    # refused with a 422 naming the field, not a failed write and a 500.
    key = await service.create_app("numbers")
    huge = 123456789012345678901234567890
    cases = [
        ("metadata", email(metadata={"n": huge})),
        ("variables", email(variables={"n": [huge]})),
        ("template_id", {**email(), "template_id": huge}),
    ]
    for field, body in cases:
        status, answer = await service.request("POST", "/queue", key, json=body)
        assert (status, answer["error"]) == (422, "invalid_request"), field
        assert answer["details"][0]["field"] == field
        status, answer = await service.request("POST", "/queue/batch", key, json={"emails": [body]})
        assert (status, answer["details"][0]["field"]) == (422, f"emails[0].{field}")


async def test_auth_and_app_isolation(service: Service) -> None:
    shop = await service.create_app("shop")
    blog = await service.create_app("blog")
    job_id = await service.queue(shop, email())
    assert (await service.request("POST", "/queue", None, json=email()))[0] == 401
    status, body = await service.request("POST", "/queue", "mk_nope", json=email())
    assert status == 401 and body["error"] == "unauthorized"
    wrong = shop[:-4] + "AAAA"
    assert (await service.request("GET", f"/status/{job_id}", wrong))[0] == 401
    assert (await service.request("GET", f"/status/{job_id}", blog))[0] == 404
    assert (await service.request("GET", f"/status/{job_id}", shop))[0] == 200
    assert (await service.request("GET", "/status/not-a-uuid", shop))[0] == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": [{"email": "a@example.org"}], "subject": "s", "text": "t"}, "from"),
        (email(to="nope"), "to[0].email"),
        (email(subject="x" * 256), "subject"),
        (email(headers={"X-Mailer": "me"}), "headers"),
        (email(variables={"a": None}), "variables"),
        (
            email(attachments=[{"filename": "a", "content_type": "t/p", "content": "@@"}]),
            "attachments[0].content",
        ),
        (email(unknown_field=1), "unknown_field"),
        ({**email(), "to": []}, "to"),
    ],
)
async def test_invalid_input_names_the_field(
    service: Service, body: dict[str, Any], field: str
) -> None:
    key = await service.create_app()
    status, answer = await service.request("POST", "/queue", key, json=body)
    assert status == 422, answer
    assert answer["error"] == "invalid_request"
    assert field in [d["field"] for d in answer["details"]], answer


async def test_malformed_and_oversized_bodies(db_dsn: str) -> None:
    settings = service_settings(max_body_bytes=2048)
    async with running_service(db_dsn, None, worker=False, settings=settings) as svc:
        key = await svc.create_app()
        status, body = await svc.request(
            "POST", "/queue", key, data=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert status == 422 and body["error"] == "invalid_request"
        status, body = await svc.request("POST", "/queue", key, json=email(text="x" * 5000))
        assert status == 413 and body["error"] == "body_too_large"
