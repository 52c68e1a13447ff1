from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer.tracking.parse import (
    NON_OBJECT_KEY,
    InvalidCallbackBody,
    MailjetEvent,
    parse_callback_body,
    parse_event,
    status_of,
)
from mailer.tracking.precedence import EventType, RecipientStatus

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
T = 1433333949
BIG_ID = 576460765503091475

# Fixtures modelled on Mailjet's Event API guide and observed captures (valid JSON).
SENT = b"""{"event":"sent","time":1433333949,"MessageID":576460765503091475,
"Message_GUID":"1ab23cd4-e567-8901-2345-6789f0gh1i2j","email":"Api@Mailjet.com ",
"mj_campaign_id":7257,"mj_contact_id":4,"customcampaign":"","mj_message_id":"576460765503091475",
"smtp_reply":"sent (250 2.0.0 OK 1433333948 fa5si855896wjc.199 - gsmtp)",
"CustomID":"job-42:0","Payload":""}"""
OPEN = b"""{"event":"open","time":1433103519,"MessageID":19421777396190490,
"Message_GUID":"1ab23cd4-e567-8901-2345-6789f0gh1i2j","email":"api@mailjet.com",
"mj_campaign_id":7173,"mj_contact_id":320,"customcampaign":"","CustomID":"helloworld",
"Payload":"","ip":"127.0.0.1","geo":"US",
"agent":"Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0"}"""
CLICK = b"""{"event":"click","time":1433334653,"MessageID":1234567890987654321,
"Message_GUID":"1ab23cd4-e567-8901-2345-6789f0gh1i2j","email":"api@mailjet.com",
"mj_campaign_id":7272,"mj_contact_id":4,"customcampaign":"","CustomID":"helloworld",
"Payload":"","url":"https://mailjet.com","ip":"127.0.0.1","geo":"FR",
"agent":"Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 Chrome/43.0.2357.81"}"""
BOUNCE = b"""{"event":"bounce","time":1430812195,"MessageID":13792286917004336,
"Message_GUID":"1ab23cd4-e567-8901-2345-6789f0gh1i2j","email":"bounce@mailjet.com",
"mj_campaign_id":0,"mj_contact_id":0,"customcampaign":"","CustomID":"helloworld",
"Payload":"","blocked":false,"hard_bounce":true,"error_related_to":"recipient",
"error":"user unknown","comment":"Host or domain name not found. Name service error"}"""
SOFT_BOUNCE = b"""{"event":"bounce","time":1430812195,"MessageID":13792286917004336,
"email":"soft@example.com","blocked":false,"hard_bounce":false,
"error_related_to":"domain","error":"greylisted"}"""
BLOCKED = b"""{"event":"blocked","time":1430812195,"MessageID":13792286917004336,
"Message_GUID":"1ab23cd4-e567-8901-2345-6789f0gh1i2j","email":"bounce@mailjet.com",
"mj_campaign_id":0,"mj_contact_id":0,"customcampaign":"","CustomID":"helloworld",
"Payload":"","error_related_to":"recipient","error":"user unknown"}"""
SPAM = b"""{"event":"spam","time":1430812195,"MessageID":13792286917004336,
"Message_GUID":"1ab23cd4-e567-8901-2345-6789f0gh1i2j","email":"bounce@mailjet.com",
"mj_campaign_id":1357,"mj_contact_id":7653742672,"customcampaign":"","CustomID":"helloworld",
"Payload":"","source":"JMRPP"}"""
UNSUB = b"""{"event":"unsub","time":1433334941,"MessageID":20547674933128000,
"Message_GUID":"1ab23cd4-e567-8901-2345-6789f0gh1i2j","email":"api@mailjet.com",
"mj_campaign_id":7276,"mj_contact_id":126,"customcampaign":"","CustomID":"helloworld",
"Payload":"","mj_list_id":1,"ip":"127.0.0.1","geo":"FR","agent":"List-Unsubscribe"}"""
# Sent from Mailjet's UI "send test": MessageID 0, empty email, "" where bools/ints belong.
UI_TEST = b"""{"event":"bounce","time":1433333949,"MessageID":0,"Message_GUID":"",
"email":"","mj_campaign_id":0,"mj_contact_id":0,"customcampaign":"","CustomID":"",
"Payload":"","blocked":"","hard_bounce":"","error_related_to":"","error":"","mj_list_id":""}"""

ALL = {
    EventType.SENT: SENT,
    EventType.OPEN: OPEN,
    EventType.CLICK: CLICK,
    EventType.BOUNCE: BOUNCE,
    EventType.BLOCKED: BLOCKED,
    EventType.SPAM: SPAM,
    EventType.UNSUB: UNSUB,
}


def one(body: bytes) -> MailjetEvent:
    [event] = parse_callback_body(body, now=NOW)
    return event


@pytest.mark.parametrize("event_type", list(EventType))
def test_every_event_type_parses(event_type: EventType) -> None:
    event = one(ALL[event_type])
    assert event.type is event_type
    assert event.understood and not event.time_estimated and not event.is_test
    assert event.raw == json.loads(ALL[event_type])
    assert status_of(event) is not None


def test_sent_fields() -> None:
    event = one(SENT)
    assert event.time == datetime.fromtimestamp(T, UTC)
    assert event.message_id == BIG_ID
    assert event.message_uuid == "1ab23cd4-e567-8901-2345-6789f0gh1i2j"
    assert event.email == "api@mailjet.com"
    assert event.raw["email"] == "Api@Mailjet.com "
    assert event.custom_id == "job-42:0"
    assert event.payload is None
    assert event.smtp_reply is not None and event.smtp_reply.startswith("sent (250")
    assert status_of(event) is RecipientStatus.SENT


def test_type_specific_fields() -> None:
    click = one(CLICK)
    assert (click.url, click.ip, click.geo) == ("https://mailjet.com", "127.0.0.1", "FR")
    assert click.agent is not None and "Chrome" in click.agent
    assert status_of(click) is RecipientStatus.CLICKED
    bounce = one(BOUNCE)
    assert (bounce.hard_bounce, bounce.blocked) == (True, False)
    assert (bounce.error_related_to, bounce.error) == ("recipient", "user unknown")
    assert bounce.comment is not None
    assert status_of(bounce) is RecipientStatus.BOUNCED
    assert status_of(one(SOFT_BOUNCE)) is RecipientStatus.DEFERRED
    assert one(SPAM).source == "JMRPP"
    assert one(SPAM).raw["mj_contact_id"] == 7653742672
    unsub = one(UNSUB)
    assert (unsub.mj_list_id, unsub.agent) == (1, "List-Unsubscribe")
    assert status_of(unsub) is RecipientStatus.UNSUBSCRIBED
    assert status_of(one(BLOCKED)) is RecipientStatus.BLOCKED
    assert status_of(one(OPEN)) is RecipientStatus.OPENED


def test_ui_test_event_parses_leniently() -> None:
    event = one(UI_TEST)
    assert event.is_test and event.message_id == 0
    assert event.email == ""
    assert (event.blocked, event.hard_bounce, event.mj_list_id) == (None, None, None)
    assert (event.custom_id, event.message_uuid, event.error) == (None, None, None)
    assert status_of(event) is RecipientStatus.DEFERRED


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        (b"576460765503091475", 576460765503091475),
        (b"1234567890987654321", 1234567890987654321),
        (b"9223372036854775807", 2**63 - 1),
        (b'"18014404367486704"', 18014404367486704),
        (b'" 94012642276192743 "', 94012642276192743),
        (b"0", 0),
        (b'""', 0),
        (b"-5", 0),
        (b"9223372036854775808", 0),  # beyond bigint
        (b"1.8e18", 0),  # a float has lost digits already
        (b"true", 0),
        (b"null", 0),
    ],
)
def test_message_id_exact(literal: bytes, expected: int) -> None:
    event = one(b'{"event":"sent","time":1,"MessageID":' + literal + b"}")
    assert event.message_id == expected
    assert event.is_test is (expected == 0)


def test_missing_message_id_is_zero() -> None:
    assert one(b'{"event":"open"}').message_id == 0


def test_version_1_and_2_bodies_agree() -> None:
    v1 = [one(body) for body in ALL.values()]
    v2 = parse_callback_body(b"[" + b",".join(ALL.values()) + b"]", now=NOW)
    assert v1 == v2
    assert [e.dedupe_key for e in v1] == [e.dedupe_key for e in v2]
    assert parse_callback_body(b"[]", now=NOW) == []
    assert parse_callback_body(b" [ ] \n", now=NOW) == []
    assert parse_callback_body(b"\xef\xbb\xbf" + OPEN, now=NOW) == [one(OPEN)]


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"{", b"[1,", b'"sent"', b"42", b"null", b"true", b"\xff\xfe", b"NaN"],
)
def test_garbage_body_raises(body: bytes) -> None:
    with pytest.raises(InvalidCallbackBody):
        parse_callback_body(body, now=NOW)
    assert issubclass(InvalidCallbackBody, ValueError)


def test_unknown_items_are_kept_but_flagged() -> None:
    events = parse_callback_body(
        b'[{"event":"typofix","MessageID":1},{"time":1},{"event":null},7,"x",null,[1],{}]', now=NOW
    )
    assert len(events) == 8
    assert all(not e.understood and e.type is None for e in events)
    assert all(status_of(e) is None for e in events)
    assert events[0].raw == {"event": "typofix", "MessageID": 1}
    assert events[3].raw == {NON_OBJECT_KEY: 7}
    assert events[5].raw == {NON_OBJECT_KEY: None}
    assert len({e.dedupe_key for e in events}) == 8


@pytest.mark.parametrize(
    ("value", "estimated"),
    [
        (b"1433333949", False),
        (b'"1433333949"', False),
        (b"1433333949.0", False),
        (b"null", True),
        (b'""', True),
        (b'"soon"', True),
        (b"0", True),
        (b"-1", True),
        (b"99999999999999999", True),
        (b"true", True),
    ],
)
def test_time_fallback(value: bytes, estimated: bool) -> None:
    event = one(b'{"event":"open","MessageID":1,"time":' + value + b"}")
    assert event.time_estimated is estimated
    assert event.time == (NOW if estimated else datetime.fromtimestamp(T, UTC))
    assert event.time.tzinfo is UTC


def test_missing_time_uses_now() -> None:
    event = one(b'{"event":"open","MessageID":1}')
    assert event.time_estimated and event.time == NOW
    before = datetime.now(UTC)
    assert parse_event({"event": "open"}).time >= before


@pytest.mark.parametrize(
    ("literal", "expected"),
    [(b"true", True), (b"false", False), (b'"true"', True), (b'"False"', False), (b"1", True),
     (b"0", False), (b'""', None), (b"null", None), (b'"maybe"', None), (b"2", None)],
)  # fmt: skip
def test_lenient_booleans(literal: bytes, expected: bool | None) -> None:
    assert one(b'{"event":"bounce","hard_bounce":' + literal + b"}").hard_bounce is expected


def test_event_name_is_normalised_and_unknown_types_flagged() -> None:
    assert one(b'{"event":" Open "}').type is EventType.OPEN
    assert one(b'{"event":"opened"}').type is None


def test_events_are_hashable_and_frozen() -> None:
    event = one(OPEN)
    assert hash(event) == hash(one(OPEN))
    with pytest.raises(AttributeError):
        event.email = "x"  # type: ignore[misc]


def test_dedupe_key_of_realistic_repeats() -> None:
    assert one(OPEN).dedupe_key == one(OPEN).dedupe_key
    assert len(one(OPEN).dedupe_key) == 32
    second_open = orjson.loads(OPEN) | {"time": 1433103520}
    assert one(orjson.dumps(second_open)).dedupe_key != one(OPEN).dedupe_key
    other_device = orjson.loads(OPEN) | {"agent": "GoogleImageProxy"}
    assert one(orjson.dumps(other_device)).dedupe_key != one(OPEN).dedupe_key
    # Re-serialised with indentation and shuffled keys (e.g. read back from jsonb).
    reformatted = json.dumps(dict(reversed(list(json.loads(CLICK).items()))), indent=2)
    assert one(reformatted.encode()).dedupe_key == one(CLICK).dedupe_key


# --- property tests -----------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
events = st.fixed_dictionaries(
    {
        "event": st.sampled_from([t.value for t in EventType]),
        "time": st.integers(1, 2**31),
        "MessageID": st.integers(0, 2**63 - 1),
        "email": st.emails(),
        "url": st.text(max_size=20),
    },
    optional={"CustomID": st.text(max_size=10), "extra": json_values},
)


def _shuffled(value: Any, rnd: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: _shuffled(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rnd) for v in value]
    return value


@given(events, st.randoms(use_true_random=False), st.booleans())
def test_dedupe_key_invariant_under_reserialisation(
    raw: dict[str, Any], rnd: random.Random, indent: bool
) -> None:
    original = one(orjson.dumps(raw))
    resent = _shuffled(orjson.loads(orjson.dumps(raw)), rnd)
    option = orjson.OPT_INDENT_2 if indent else 0
    again = parse_callback_body(b"[" + orjson.dumps(resent, option=option) + b"]", now=NOW)
    assert again[0].dedupe_key == original.dedupe_key
    assert again[0] == original


@given(events, st.integers(1, 2**31), st.text(max_size=20))
def test_dedupe_key_differs_for_new_time_or_url(
    raw: dict[str, Any], new_time: int, new_url: str
) -> None:
    key = one(orjson.dumps(raw)).dedupe_key
    if new_time != raw["time"]:
        assert one(orjson.dumps(raw | {"time": new_time})).dedupe_key != key
    if new_url != raw["url"]:
        assert one(orjson.dumps(raw | {"url": new_url})).dedupe_key != key


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash(body: bytes) -> None:
    try:
        parsed = parse_callback_body(body, now=NOW)
    except InvalidCallbackBody:
        return
    assert all(isinstance(e, MailjetEvent) for e in parsed)


@given(json_values)
def test_any_json_item_parses(item: Any) -> None:
    event = parse_event(item, now=NOW)
    assert isinstance(event.dedupe_key, bytes) and event.message_id >= 0
