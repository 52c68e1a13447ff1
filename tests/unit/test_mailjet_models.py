"""Parsing Mailjet's JSON answers into the client's values."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer.mailjet import (
    AcceptedRecipient,
    ClientTimeouts,
    MailjetClient,
    MessageAccepted,
    MessageError,
    MessageRejected,
)
from mailer.mailjet.models import (
    ResponseShapeError,
    parse_event_callback,
    parse_looked_up_message,
    parse_send_results,
)

# A real-world sized MessageID, as raw JSON text: a float would turn it into ...480.
MIXED = b"""{"Messages":[
  {"Status":"error","Errors":[{"ErrorIdentifier":"e1","ErrorCode":"mj-0013","StatusCode":400,
     "ErrorMessage":"\\"bad@@x\\" is an invalid email address.","ErrorRelatedTo":["To[0].Email"]}]},
  {"Status":"success","CustomID":"job-124",
   "To":[{"Email":"a@x.org","MessageUUID":"u-1","MessageID":576460765503091475,
          "MessageHref":"https://example.invalid/v3/REST/message/576460765503091475"}],
   "Bcc":[{"Email":"b@x.org","MessageUUID":"u-2","MessageID":94012642276192743,
           "MessageHref":"https://example.invalid/v3/REST/message/94012642276192743"}]}]}"""


def test_mixed_answer_keeps_order_and_exact_ids() -> None:
    rejected, accepted = parse_send_results(orjson.loads(MIXED)["Messages"])
    assert rejected == MessageRejected(
        [
            MessageError(
                code="mj-0013",
                message='"bad@@x" is an invalid email address.',
                related_to=["To[0].Email"],
                status_code=400,
                identifier="e1",
            )
        ]
    )
    assert accepted == MessageAccepted(
        custom_id="job-124",
        recipients=[
            AcceptedRecipient("a@x.org", "to", 576460765503091475, "u-1"),
            AcceptedRecipient("b@x.org", "bcc", 94012642276192743, "u-2"),
        ],
    )


@given(st.integers(min_value=2**53, max_value=2**63 - 1))
def test_any_int64_message_id_survives(message_id: int) -> None:
    raw = b'[{"Status":"success","To":[{"Email":"a@x.org","MessageUUID":"","MessageID":%d}]}]' % (
        message_id
    )
    [result] = parse_send_results(orjson.loads(raw))
    assert isinstance(result, MessageAccepted)
    assert result.recipients[0].message_id == message_id
    assert result.custom_id == ""  # older answers omit CustomID


@pytest.mark.parametrize(
    "entries",
    [
        {"Messages": []},
        [{"Status": "queued"}],
        [{"Status": "error"}],
        [{"Status": "success", "To": [{"Email": "a@x.org", "MessageID": 1.5e18}]}],
        [{"Status": "success", "To": [{"Email": "a@x.org", "MessageID": True}]}],
        [{"Status": "success", "To": "a@x.org"}],
        ["success"],
    ],
)
def test_shapes_mailjet_never_sends_are_refused(entries: Any) -> None:
    with pytest.raises(ResponseShapeError):
        parse_send_results(entries)


def test_error_entry_defaults() -> None:
    [result] = parse_send_results([{"Status": "error", "Errors": [{"ErrorMessage": "x"}]}])
    assert result == MessageRejected([MessageError("", "x", [], 400, "")])


def test_lookup_row() -> None:
    row = orjson.loads(
        b'{"ID":576460765503091475,"CustomID":"job-1","ContactAlt":"a@x.org","Status":"sent",'
        b'"ArrivedAt":"2025-01-01T00:00:00Z"}'
    )
    found = parse_looked_up_message(row)
    assert (found.message_id, found.email, found.custom_id, found.status) == (
        576460765503091475,
        "a@x.org",
        "job-1",
        "sent",
    )
    bare = parse_looked_up_message({"ID": 5, "CustomID": "", "ContactAlt": ""})
    assert (bare.email, bare.custom_id, bare.status) == (None, None, None)


def test_event_callback_row() -> None:
    row = {
        "APIKeyID": 1,
        "EventType": "click",
        "ID": 42,
        "IsBackup": False,
        "Status": "alive",
        "Url": "https://u:p@127.0.0.1:8443/events",
        "Version": 2,
    }
    callback = parse_event_callback(row)
    assert (callback.id, callback.event_type, callback.version, callback.is_backup) == (
        42,
        "click",
        2,
        False,
    )
    with pytest.raises(ResponseShapeError):
        parse_event_callback({"ID": "x", "EventType": "open", "Url": ""})


def test_client_settings_are_validated() -> None:
    assert ClientTimeouts() == ClientTimeouts(connect=5.0, total=30.0, keepalive=10.0)
    with pytest.raises(ValueError):
        ClientTimeouts(total=0)
    with pytest.raises(ValueError):
        MailjetClient("127.0.0.1:1", "k", "s")
    with pytest.raises(ValueError):
        MailjetClient("http://127.0.0.1:1", "k", "s", max_connections=0)
