"""What apps send that Mailer must refuse or fold, over real HTTP against PostgreSQL: NULs,
non-finite numbers, header injection, addresses given more than once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mailer.simulator.server import SimulatorServer
from tests.integration.harness import Service
from tests.integration.test_events_demo import demo


def email(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": {"email": "noreply@shop.example", "name": "Shop"},
        "to": [{"email": "ann@example.org"}],
        "subject": "Your order",
        "text": "Thanks!",
        "metadata": {"order": "42"},
    }
    body.update(extra)
    return body


async def post_raw(service: Service, key: str, path: str, raw: bytes) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    return await service.request("POST", path, key, data=raw, headers=headers)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"subject": "Your\x00order"}, "subject"),
        ({"metadata": {"note": "a\x00b"}}, "metadata.note"),
        ({"to": [{"email": "ann@example.org", "name": "A\x00"}]}, "to[0].name"),
        ({"headers": {"X-Ref": "\x00"}}, "headers.X-Ref"),
    ],
)
async def test_a_nul_answers_422_naming_the_field_and_stores_nothing(
    service: Service, extra: dict[str, Any], field: str
) -> None:
    key = await service.create_app()
    status, body = await service.request("POST", "/queue", key, json=email(**extra))
    assert status == 422, body
    assert body["details"] == [
        {"field": field, "message": "must not contain the NUL character (\\u0000)"}
    ]
    batch = {"emails": [email(), email(), email(**extra)]}
    status, body = await service.request("POST", "/queue/batch", key, json=batch)
    assert status == 422, body
    assert [d["field"] for d in body["details"]] == [f"emails[2].{field}"]
    # A clean email still goes through the same coalesced writer afterwards.
    await service.queue(key, email())


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
async def test_non_finite_numbers_answer_422(service: Service, literal: bytes) -> None:
    key = await service.create_app()
    raw = b'{"from":{"email":"a@shop.example"},"to":[{"email":"b@example.org"}],'
    raw += b'"subject":"s","text":"t","metadata":{"total":' + literal + b"}}"
    status, body = await post_raw(service, key, "/queue", raw)
    assert status == 422, body
    assert body["details"][0]["field"] == "metadata"
    assert "metadata.total" in body["details"][0]["message"]
    raw_batch = b'{"emails":[' + raw.replace(b'"metadata"', b'"variables"') + b"]}"
    status, body = await post_raw(service, key, "/queue/batch", raw_batch)
    assert (status, body["details"][0]["field"]) == (422, "emails[0].variables"), body


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"subject": "Hi\r\nBcc: eve@example.org"}, "subject"),
        ({"from": {"email": "a@shop.example", "name": "Shop\nBcc: eve@example.org"}}, "from.name"),
        ({"cc": [{"email": "cat@example.org", "name": "C\rD"}]}, "cc[0].name"),
        ({"to": [{"email": "ann@example.org\nBcc: eve@example.org"}]}, "to[0].email"),
    ],
)
async def test_a_line_break_in_a_header_field_answers_422(
    service: Service, extra: dict[str, Any], field: str
) -> None:
    key = await service.create_app()
    status, body = await service.request("POST", "/queue", key, json=email(**extra))
    assert status == 422, body
    assert [d["field"] for d in body["details"]] == [field]
    status, body = await service.request(
        "POST", "/queue/batch", key, json={"emails": [email(**extra)]}
    )
    assert [d["field"] for d in body["details"]] == [f"emails[0].{field}"]


async def test_an_address_in_to_and_cc_is_sent_once_and_shown_merged(db_dsn: str) -> None:
    async with demo(db_dsn) as (service, simulator):
        await _merged_and_counted(service, simulator)


async def _merged_and_counted(service: Service, simulator: SimulatorServer) -> None:
    key = await service.create_app()
    job_id = await service.queue(
        key,
        email(
            to=[{"email": "ann@example.org"}, {"email": "bob+bounce@example.org"}],
            cc=[{"email": "Ann@Example.org"}],
            bcc=[{"email": "ann@example.org"}, {"email": "BOB+bounce@example.org"}],
        ),
    )
    deadline = asyncio.get_running_loop().time() + 20
    done = await service.status(key, job_id)
    while done["recipient_statuses"] != {"sent": 1, "bounced": 1}:
        assert asyncio.get_running_loop().time() < deadline, done
        await asyncio.sleep(0.05)
        done = await service.status(key, job_id)
    ann, bob = done["recipients"]
    assert (ann["email"], ann["kind"], ann["status"]) == ("ann@example.org", "to", "sent")
    assert ann["merged"] == [
        {"kind": "cc", "email": "Ann@example.org"},
        {"kind": "bcc", "email": "ann@example.org"},
    ]
    assert bob["merged"] == [{"kind": "bcc", "email": "BOB+bounce@example.org"}]
    assert simulator.state.count_for(job_id) == 1
    sent = sorted((m.kind, m.email) for m in simulator.state.messages_for(job_id))
    assert sent == [("to", "ann@example.org"), ("to", "bob+bounce@example.org")]


async def test_the_same_batch_body_merges_alike(service: Service) -> None:
    key = await service.create_app()
    twice = email(cc=[{"email": "ann@example.org"}])
    status, body = await service.request(
        "POST", "/queue/batch", key, json={"emails": [twice, email()]}
    )
    assert status == 202, body
    first = await service.status(key, body["jobs"][0]["job_id"])
    [ann] = first["recipients"]
    assert ann["merged"] == [{"kind": "cc", "email": "ann@example.org"}]
    second = await service.status(key, body["jobs"][1]["job_id"])
    assert second["recipients"][0]["merged"] == []
    assert second["recipient_statuses"] in ({"queued": 1}, {"accepted": 1}, {"sent": 1})
