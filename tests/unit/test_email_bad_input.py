"""Input that parses as JSON but cannot be stored or sent safely: NULs, non-finite numbers,
line breaks in header fields; and addresses given more than once, merged as Mailjet does."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from mailer.api.deps import json_body
from mailer.api.errors import ApiError
from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import new_job
from mailer.delivery.textcheck import NUL_ESCAPE, nul_paths


def email(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": {"email": "shop@example.org", "name": "Shop"},
        "to": [{"email": "ann@example.org"}],
        "subject": "Hi",
        "text": "Hello\nthere",
    }
    body.update(fields)
    return body


def problems(raw: bytes) -> list[dict[str, str]]:
    with pytest.raises(ApiError) as caught:
        json_body(EmailRequest, "application/json", raw)
    assert caught.value.status == 422
    details: list[dict[str, str]] = caught.value.extra["details"]
    return details


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"subject": "Hi\r\nBcc: eve@example.org"}, "subject"),
        ({"subject": "Hi\nthere"}, "subject"),
        ({"from": {"email": "shop@example.org", "name": "Shop\rX"}}, "from.name"),
        ({"to": [{"email": "ann@example.org", "name": "Ann\nBcc: x"}]}, "to[0].name"),
        ({"cc": [{"email": "cat@example.org", "name": "a\nb"}]}, "cc[0].name"),
        ({"bcc": [{"email": "dan@example.org", "name": "a\rb"}]}, "bcc[0].name"),
        ({"reply_to": {"email": "help@example.org", "name": "a\nb"}}, "reply_to.name"),
        ({"to": [{"email": "ann@example.org\r\nBcc: eve@example.org"}]}, "to[0].email"),
    ],
)
def test_a_line_break_in_a_header_field_is_refused_at_its_field(
    fields: dict[str, Any], path: str
) -> None:
    found = problems(orjson.dumps(email(**fields)))
    assert [d["field"] for d in found] == [path]


def test_line_breaks_at_the_ends_are_trimmed_and_bodies_may_hold_them() -> None:
    body = email(subject="Hi\r\n", text="a\r\nb", html="<p>\n</p>")
    parsed = json_body(EmailRequest, "application/json", orjson.dumps(body))
    assert parsed.subject == "Hi"


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"subject": "a\x00b"}, "subject"),
        ({"text": "a\x00"}, "text"),
        ({"html": "\x00"}, "html"),
        ({"from": {"email": "shop@example.org", "name": "S\x00"}}, "from.name"),
        ({"headers": {"X-Order": "7\x00"}}, "headers.X-Order"),
        ({"headers": {"X-\x00": "7"}}, "headers"),
        ({"metadata": {"order": {"id": ["a", "b\x00"]}}}, "metadata.order.id[1]"),
        ({"variables": {"name": "\x00"}}, "variables.name"),
        (
            {
                "attachments": [
                    {"filename": "a\x00.pdf", "content_type": "application/pdf", "content": "YQ=="}
                ]
            },
            "attachments[0].filename",
        ),
    ],
)
def test_a_nul_anywhere_is_refused_at_its_field(fields: dict[str, Any], path: str) -> None:
    raw = orjson.dumps(email(**fields))
    assert NUL_ESCAPE in raw
    parsed = EmailRequest.model_validate_json(raw)
    assert nul_paths(parsed) == [path]


def test_an_escaped_backslash_before_u0000_is_no_nul() -> None:
    raw = orjson.dumps(email(text="C:\\u0000"))
    assert NUL_ESCAPE in raw
    assert nul_paths(EmailRequest.model_validate_json(raw)) == []


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999"])
@pytest.mark.parametrize("where", ["metadata", "variables"])
def test_non_finite_numbers_are_refused(literal: bytes, where: str) -> None:
    raw = orjson.dumps(email()).replace(
        b'"Hi"', b'"Hi","' + where.encode() + b'":{"a":[1,' + literal + b"]}"
    )
    found = problems(raw)
    assert [d["field"] for d in found] == [where]
    assert f"{where}.a[1]" in found[0]["message"]
    assert "finite" in found[0]["message"]


def test_null_is_still_fine_in_metadata_and_finite_floats_everywhere() -> None:
    raw = orjson.dumps(email(metadata={"a": None, "b": 1.5e300}, variables={"x": -2.5}))
    parsed = json_body(EmailRequest, "application/json", raw)
    assert parsed.metadata == {"a": None, "b": 1.5e300}


def test_an_address_given_again_is_merged_into_its_first_mention() -> None:
    parsed = EmailRequest.model_validate(
        email(
            to=[{"email": "ann@example.org"}, {"email": "bob@example.org"}],
            cc=[{"email": "Ann@Example.org", "name": "Ann"}, {"email": "cat@example.org"}],
            bcc=[{"email": "BOB@example.org"}, {"email": "cat@example.org"}],
        )
    )
    assert parsed.recipients() == [
        ("to", "ann@example.org"),
        ("to", "bob@example.org"),
        ("cc", "cat@example.org"),
    ]
    assert parsed.merged() == {
        "0": [{"kind": "cc", "email": "Ann@example.org"}],
        "1": [{"kind": "bcc", "email": "BOB@example.org"}],
        "2": [{"kind": "bcc", "email": "cat@example.org"}],
    }
    message = parsed.to_mailjet()
    assert message["To"] == [{"Email": "ann@example.org"}, {"Email": "bob@example.org"}]
    assert message["Cc"] == [{"Email": "cat@example.org"}]
    assert "Bcc" not in message
    job = new_job(uuid.uuid4(), parsed)
    assert job.merged == parsed.merged()


def test_distinct_addresses_merge_nothing() -> None:
    parsed = EmailRequest.model_validate(email(cc=[{"email": "cat@example.org"}]))
    assert parsed.merged() is None
    assert new_job(uuid.uuid4(), parsed).merged is None


def test_the_recipient_limit_counts_distinct_addresses() -> None:
    to = [{"email": f"u{i}@example.org"} for i in range(50)]
    ok = EmailRequest.model_validate(email(to=to, cc=to, bcc=to))
    assert len(ok.recipients()) == 50
    more = [*to[:49], {"email": "x@example.org"}]
    with pytest.raises(ValueError, match="at most 50 recipients"):
        EmailRequest.model_validate(email(to=to, cc=more, bcc=[{"email": "y@example.org"}]))


@pytest.mark.parametrize("value", [0, 1.5, "1700000000"])
def test_send_at_is_an_iso_string_not_a_unix_time(value: Any) -> None:
    assert [d["field"] for d in problems(orjson.dumps(email(send_at=value)))] == ["send_at"]


def test_template_id_is_a_json_integer() -> None:
    assert [d["field"] for d in problems(orjson.dumps(email(template_id="42")))] == ["template_id"]
    parsed = json_body(EmailRequest, "application/json", orjson.dumps(email(template_id=42.0)))
    assert parsed.template_id == 42
