"""The simulator's event script convention, event bodies, callback URL parsing and options."""

from __future__ import annotations

import base64
import gc
import weakref
from typing import Any

import orjson
import pytest

from mailer.simulator import EventsConfig, Step, build_event, parse_script
from mailer.simulator.events import history_row
from mailer.simulator.poster import EventPoster, is_loopback_host, parse_target
from mailer.simulator.state import AcceptedMessage, SimulatorState

S = Step


@pytest.mark.parametrize(
    ("email", "steps"),
    [
        ("ann@example.org", (S.SENT,)),
        ("ann+open@example.org", (S.SENT, S.OPEN)),
        ("ann+click@example.org", (S.SENT, S.OPEN, S.CLICK)),
        ("ann+unsub@example.org", (S.SENT, S.OPEN, S.UNSUB)),
        ("ann+spam@example.org", (S.SENT, S.SPAM)),
        ("ann+soft@example.org", (S.SOFT_BOUNCE, S.SENT)),
        ("ann+bounce@example.org", (S.HARD_BOUNCE,)),
        ("bounce+hard@example.org", (S.HARD_BOUNCE,)),
        ("x+blocked@example.org", (S.BLOCKED,)),
        # the base is never interpreted; unknown tags are ignored; case does not matter
        ("bounce@example.org", (S.SENT,)),
        ("click@example.org", (S.SENT,)),
        ("ann+newsletter@example.org", (S.SENT,)),
        ("Ann+CLICK@Example.org", (S.SENT, S.OPEN, S.CLICK)),
        # tags combine in a fixed order; blocked > hard bounce > soft bounce
        ("a+spam+click@x.org", (S.SENT, S.OPEN, S.CLICK, S.SPAM)),
        ("a+open+click+open@x.org", (S.SENT, S.OPEN, S.CLICK)),
        ("a+soft+click+unsub@x.org", (S.SOFT_BOUNCE, S.SENT, S.OPEN, S.CLICK, S.UNSUB)),
        ("a+click+bounce@x.org", (S.HARD_BOUNCE,)),
        ("a+soft+hard@x.org", (S.HARD_BOUNCE,)),
        ("a+bounce+blocked+open@x.org", (S.BLOCKED,)),
        ("a+@x.org", (S.SENT,)),
        ('"a+b@c"+open@x.org', (S.SENT, S.OPEN)),  # only the last @ splits off the domain
        ("no-at-sign+open", (S.SENT, S.OPEN)),
    ],
)
def test_parse_script(email: str, steps: tuple[Step, ...]) -> None:
    assert parse_script(email) == steps


def test_step_properties() -> None:
    assert [s.event_type for s in Step] == [
        "sent",
        "open",
        "click",
        "bounce",
        "bounce",
        "blocked",
        "spam",
        "unsub",
    ]
    assert S.HARD_BOUNCE.message_status == "hardbounced"
    assert S.SOFT_BOUNCE.message_status == "softbounced"
    assert S.CLICK.message_status == "clicked" and S.SENT.delivers and not S.OPEN.delivers


def _message(**overrides: Any) -> AcceptedMessage:
    state = SimulatorState()
    (record,) = state.accept(
        [("ann+click@example.org", "to")],
        custom_id=overrides.get("custom_id", "job-1"),
        payload=overrides.get("payload", ""),
        subject="Hi",
        from_email="shop@example.org",
        campaign=overrides.get("campaign", ""),
    )
    return record


def _event(step: Step, message: AcceptedMessage | None = None) -> dict[str, Any]:
    return build_event(
        message or _message(),
        step,
        when=1_700_000_000,
        campaign_id=7653742672,
        contact_id=3000000001,
        click_url="http://localhost/x",
    )


def test_common_fields_and_exact_message_id() -> None:
    message = _message(payload="p", campaign="c")
    event = _event(S.SENT, message)
    assert {k: event[k] for k in list(event)[:10]} == {
        "event": "sent",
        "time": 1_700_000_000,
        "MessageID": message.message_id,
        "Message_GUID": message.uuid,
        "email": "ann+click@example.org",
        "mj_campaign_id": 7653742672,
        "mj_contact_id": 3000000001,
        "customcampaign": "c",
        "CustomID": "job-1",
        "Payload": "p",
    }
    assert event["mj_message_id"] == str(message.message_id)
    assert f'"MessageID":{message.message_id},'.encode() in orjson.dumps(event)
    assert _event(S.OPEN, _message(custom_id=""))["CustomID"] == ""


def test_type_specific_fields() -> None:
    assert set(_event(S.OPEN)) - set(_event(S.SENT)) == {"ip", "geo", "agent"}
    assert _event(S.CLICK)["url"] == "http://localhost/x"
    unsub = _event(S.UNSUB)
    assert unsub["mj_list_id"] == 0 and unsub["agent"]
    hard, soft = _event(S.HARD_BOUNCE), _event(S.SOFT_BOUNCE)
    assert hard["event"] == soft["event"] == "bounce"
    assert (hard["hard_bounce"], hard["blocked"], hard["error"]) == (True, False, "user unknown")
    assert (soft["hard_bounce"], soft["error"], soft["error_related_to"]) == (
        False,
        "greylisted",
        "domain",
    )
    blocked = _event(S.BLOCKED)
    assert (blocked["error_related_to"], blocked["error"]) == ("mailjet", "preblocked")
    assert "hard_bounce" not in blocked
    assert _event(S.SPAM)["source"] == "JMRPP"


def test_history_rows() -> None:
    assert history_row(S.CLICK, 5)["EventType"] == "clicked"
    assert history_row(S.HARD_BOUNCE, 5)["State"] == "user unknown"
    assert history_row(S.SENT, 5) == {
        "EventAt": 5,
        "EventType": "sent",
        "State": "",
        "Useragent": "",
        "UseragentID": 0,
        "Comment": "",
    }


def test_parse_target_strips_credentials_into_basic_auth() -> None:
    target = parse_target("http://us%3Aer:p%40ss@127.0.0.1:8000/events?x=1")
    assert target.url == "http://127.0.0.1:8000/events?x=1" and target.loopback
    assert target.authorization == "Basic " + base64.b64encode(b"us:er:p@ss").decode()
    bare = parse_target("http://localhost/events")
    assert bare.authorization is None and bare.loopback
    assert parse_target("http://[::1]:9/e").url == "http://[::1]:9/e"
    assert parse_target("http://[::1]:9/e").loopback
    assert not parse_target("https://u:p@example.org/events").loopback
    assert not parse_target("http://127.0.0.1:99999/").loopback  # invalid port
    assert not parse_target("ftp://127.0.0.1/").loopback


def test_is_loopback_host() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("127.8.9.1")
    assert is_loopback_host("::1") and is_loopback_host("LOCALHOST")
    assert not is_loopback_host("10.0.0.1") and not is_loopback_host("localhost.example.org")


def test_events_config_from_json() -> None:
    config = EventsConfig.from_json(
        {"enabled": False, "delay_ms": 5, "max_batch": 3, "seed": None, "reorder": True}
    )
    assert config == EventsConfig(enabled=False, delay_ms=5.0, max_batch=3, reorder=True)
    assert EventsConfig.from_json(config.to_json()) == config
    bad: object
    for bad in (
        {"delay_ms": -1},
        {"duplicate_rate": 1.5},
        {"retry_interval": 0},
        {"max_batch": 0},
        {"max_batch": 1.5},
        {"enabled": 1},
        {"delay_ms": True},
        {"click_url": 3},
        {"unknown": 1},
        [],
    ):
        with pytest.raises(ValueError):
            EventsConfig.from_json(bad)


def test_state_ids_are_stable_and_large() -> None:
    state = SimulatorState()
    assert state.contact_id("A@x.org") == state.contact_id("a@x.org") > 2**31
    assert state.contact_id("b@x.org") == state.contact_id("a@x.org") + 1
    assert state.campaign_id("") == state.campaign_id("") > 2**31
    assert state.campaign_id("spring") != state.campaign_id("")


async def test_a_fired_timer_leaves_no_cycle_for_the_garbage_collector() -> None:
    # A timer's handle holds its callback; a callback that kept holding the handle made a
    # cycle per message, which only the collector could free (long pauses at volume).
    poster = EventPoster(SimulatorState())
    fired: list[int] = []
    async with poster.running():
        gc.disable()
        try:
            poster._later(0, fired.append, 1)
            [handle] = poster._timers
            freed = weakref.ref(handle)
            del handle
            await poster.wait_idle()
            assert fired == [1]
            assert freed() is None
        finally:
            gc.enable()
