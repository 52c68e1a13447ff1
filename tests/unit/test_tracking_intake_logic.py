"""Pure logic of tracking intake: stored columns, suppression rules, credentials, cursors."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from mailer.config import ConfigError, Settings
from mailer.tracking.columns import columns_of, job_id_of, may_contain_nul, stored_type
from mailer.tracking.credentials import basic_auth_matches, ensure_event_credentials
from mailer.tracking.feed import FeedCursor, InvalidCursor, event_view
from mailer.tracking.parse import dedupe_key_of, parse_event
from mailer.tracking.precedence import STATUS_CHAIN, STATUS_RANK, RecipientStatus
from mailer.tracking.suppressions import SuppressionReason, suppression_reason

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
JOB = "0190f3b8-2c4e-7d3a-9b1e-0a1b2c3d4e5f"


def ev(event: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event": event,
        "time": 1_700_000_000,
        "MessageID": 576460752303423489,
        "email": "Ann@Example.org",
        "CustomID": JOB,
    }
    base.update(fields)
    return base


# --- status chain ------------------------------------------------------------------------


def test_status_chain_is_the_rank_order() -> None:
    assert len(STATUS_CHAIN) == len(STATUS_RANK)
    for status, rank in STATUS_RANK.items():
        assert STATUS_CHAIN[rank] == str(status)


# --- suppression ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            ev("bounce", hard_bounce=True, error_related_to="recipient", error="user unknown"),
            SuppressionReason.HARD_BOUNCE,
        ),
        (
            ev("bounce", hard_bounce="true", error_related_to=" Recipient "),
            SuppressionReason.HARD_BOUNCE,
        ),
        # Hard bounces that blame the domain, the content, a filter, the system or Mailjet
        # leave the address usable (Hyvor Relay #258, useSend #337).
        (ev("bounce", hard_bounce=True, error_related_to="domain", error="no mail host"), None),
        (ev("bounce", hard_bounce=True, error_related_to="content", error="bad template"), None),
        (ev("bounce", hard_bounce=True, error_related_to="spam", error="policy issue"), None),
        (ev("bounce", hard_bounce=True, error_related_to="system", error="system issue"), None),
        (ev("bounce", hard_bounce=True, error_related_to="mailjet"), None),
        (ev("bounce", hard_bounce=True, error="user unknown"), None),  # class not given
        (ev("bounce", hard_bounce=False, error="greylisted"), None),
        (ev("bounce", hard_bounce=""), None),
        (ev("bounce"), None),
        (ev("spam", source="JMRPP"), SuppressionReason.SPAM_COMPLAINT),
        (ev("unsub", mj_list_id=0), SuppressionReason.UNSUBSCRIBED),
        (ev("blocked", error="preblocked"), SuppressionReason.PREBLOCKED),
        (ev("blocked", error=" PreBlocked "), SuppressionReason.PREBLOCKED),
        (ev("blocked", error="duplicate in campaign"), None),
        (ev("blocked", error="content blocked"), None),
        (ev("sent"), None),
        (ev("open"), None),
        (ev("click", url="https://x.test"), None),
        (ev("typofix"), None),
        (ev("spam", MessageID=0), None),  # a UI test event
        (ev("bounce", hard_bounce=True, email=""), None),
    ],
)
def test_suppression_reason(event: dict[str, Any], reason: str | None) -> None:
    assert suppression_reason(parse_event(event, now=NOW)) == reason


# --- job ids from CustomID -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("custom_id", "expected"),
    [
        (JOB, uuid.UUID(JOB)),
        (JOB.upper(), uuid.UUID(JOB)),
        ("job-42:0", None),
        ("", None),
        (None, None),
        ("{" + JOB + "}", None),
        (JOB.replace("-", ""), None),
        ("x" * 36, None),
    ],
)
def test_job_id_of(custom_id: str | None, expected: uuid.UUID | None) -> None:
    assert job_id_of(custom_id) == expected


# --- columns -------------------------------------------------------------------------------


def test_columns_keep_first_of_repeats_and_order_by_time() -> None:
    items = [
        ev("open", time=1_700_000_050, agent="late"),
        ev("sent", time=1_700_000_000),
        ev("open", time=1_700_000_050, agent="late"),  # a repeat inside the body
        ev("click", time=1_700_000_050, url="https://a.test"),
        ev("bounce", time=1_700_000_010, hard_bounce=False, error="greylisted"),
    ]
    cols = columns_of([parse_event(i, now=NOW) for i in items])
    assert len(cols) == 4
    assert cols.type == ["sent", "bounce", "open", "click"]  # by time, then body order
    assert cols.status == ["sent", "deferred", "opened", "clicked"]
    assert cols.rank == [STATUS_RANK[RecipientStatus(s)] for s in cols.status if s]
    assert cols.custom_job_id == [uuid.UUID(JOB)] * 4
    assert cols.email == ["ann@example.org"] * 4
    assert cols.details[1] == {"error": "greylisted", "hard_bounce": False}
    assert cols.details[3] == {"url": "https://a.test"}
    assert cols.suppress_reason == [None] * 4
    assert len(cols.args()) == 18 and all(len(a) == 4 for a in cols.args())


def test_columns_of_unknown_and_odd_items() -> None:
    items: list[Any] = [ev("TypoFix"), 42, {"no": "event"}, ev("open", MessageID=0)]
    cols = columns_of([parse_event(i, now=NOW) for i in items])
    by_type = dict(zip(cols.type, cols.understood, strict=True))
    assert by_type["typofix"] is False
    assert by_type["open"] is True
    assert cols.type.count(None) == 2
    assert cols.status.count(None) == 3
    assert cols.is_test == [e == 0 for e in cols.message_id]
    assert cols.raw[cols.type.index(None)] in ({"_non_object_item": 42}, {"no": "event"})


@pytest.mark.parametrize(
    "item",
    [
        ev("open"),
        ev(" Bounce ", hard_bounce=True),
        ev("TypoFix"),
        ev("ty\x00po"),
        ev("   "),
        ev("sent", MessageID=0),
        ev("click", MessageID="576460752303423489"),
        ev("spam", MessageID="oops"),
        ev("unsub", MessageID=-1),
        {"no": "event"},
        {"event": 7, "MessageID": 1},
        42,
        None,
        ["open"],
        "open",
    ],
)
def test_what_a_redelivery_is_counted_by_matches_the_full_parse(item: Any) -> None:
    # A body stored before is counted from these alone (intake's `_stored_before`).
    event = parse_event(item, now=NOW)
    cols = columns_of([event])
    assert dedupe_key_of(item) == event.dedupe_key
    assert stored_type(item) == (cols.type[0], cols.understood[0], cols.is_test[0])


def test_nul_characters_are_replaced_for_postgres_but_not_in_the_event() -> None:
    raw = ev("click", url="https://a.test/\x00", extra={"k\x00": ["v\x00", 1]})
    event = parse_event(raw, now=NOW)
    cols = columns_of([event])
    assert cols.details[0]["url"] == "https://a.test/\ufffd"
    stored = cols.raw[0]
    assert stored["extra"] == {"k\ufffd": ["v\ufffd", 1]}
    assert "\x00" not in orjson.dumps(stored).decode()
    assert raw["extra"] == {"k\x00": ["v\x00", 1]}  # the parsed event is left as it was
    clean = ev("open")
    assert columns_of([parse_event(clean, now=NOW)]).raw[0] is clean


def test_bodies_without_a_nul_escape_skip_the_cleaning() -> None:
    body = orjson.dumps([ev("click", url="https://a.test/\x00")])
    assert may_contain_nul(body)
    assert not may_contain_nul(orjson.dumps([ev("click", url="https://a.test/")]))
    assert not may_contain_nul(b'{"a": "0000"}')
    events = [parse_event(ev("open"), now=NOW)]
    assert columns_of(events, nul_free=True).raw[0] is events[0].raw


event_dicts = st.builds(
    ev,
    st.sampled_from(["sent", "open", "click", "bounce", "spam", "blocked", "unsub"]),
    time=st.integers(1_700_000_000, 1_700_000_005),
    agent=st.sampled_from(["a", "b"]),
)


@given(st.lists(event_dicts, max_size=12), st.randoms(use_true_random=False))
def test_columns_do_not_depend_on_body_order_except_for_ties(
    items: list[dict[str, Any]], rng: Any
) -> None:
    events = [parse_event(i, now=NOW) for i in items]
    shuffled = events[:]
    rng.shuffle(shuffled)
    a, b = columns_of(events), columns_of(shuffled)
    assert sorted(a.dedupe_key) == sorted(b.dedupe_key)
    assert len(set(a.dedupe_key)) == len(a)
    assert a.occurred_at == sorted(a.occurred_at)


# --- credentials ---------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (basic("mj", "pw:with:colons"), True),
        ("basic " + basic("mj", "pw:with:colons").split()[1], True),
        (basic("mj", "pw:with:colon"), False),
        (basic("MJ", "pw:with:colons"), False),
        (basic("", ""), False),
        (None, False),
        ("", False),
        ("Bearer abc", False),
        ("Basic", False),
        ("Basic %%%", False),
        ("Basic " + base64.b64encode(b"no-colon").decode(), False),
    ],
)
def test_basic_auth_matches(header: str | None, ok: bool) -> None:
    assert basic_auth_matches(header, "mj", "pw:with:colons") is ok


def _settings(**values: Any) -> Settings:
    return Settings(**values)


def test_configured_credentials_are_kept() -> None:
    s = _settings(events_user="mj", events_password="pw")
    assert ensure_event_credentials(s) is s


def test_simulator_runs_get_random_credentials() -> None:
    s = _settings()
    a, b = ensure_event_credentials(s), ensure_event_credentials(s)
    assert a.events_user and a.events_password is not None and b.events_password is not None
    assert a.events_password.get_secret_value() != b.events_password.get_secret_value()
    assert ":" not in a.events_user
    assert ensure_event_credentials(a) is a  # idempotent


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mj_apikey_public": "k", "mj_apikey_private": "s"}, "must be set when Mailjet keys"),
        ({"events_user": "mj"}, "set both"),
        ({"events_password": "pw"}, "set both"),
        ({"events_user": "m:j", "events_password": "pw"}, "must not contain ':'"),
        ({"events_user": "mj", "events_password": ""}, "must not be empty"),
    ],
)
def test_bad_or_missing_credentials_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ensure_event_credentials(_settings(**values))


def test_production_with_credentials_starts() -> None:
    s = _settings(
        mj_apikey_public="k",
        mj_apikey_private="s",
        events_user="mj",
        events_password=SecretStr("pw"),
    )
    assert ensure_event_credentials(s) is s


# --- feed cursor and event view -------------------------------------------------------------


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**63 - 1))
def test_cursor_round_trip(xid: int, event_id: int) -> None:
    cursor = FeedCursor(xid, event_id)
    text = cursor.encode()
    assert FeedCursor.decode(text) == cursor
    assert not set(text) & set("=+/")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nope",
        "%%%",
        base64.urlsafe_b64encode(b"v2.1.2").decode(),
        base64.urlsafe_b64encode(b"v1.1").decode(),
        base64.urlsafe_b64encode(b"v1.-1.2").decode(),
        base64.urlsafe_b64encode(f"v1.{2**64}.1".encode()).decode(),
        base64.urlsafe_b64encode(f"v1.1.{2**63}".encode()).decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_invalid_cursors(text: str) -> None:
    with pytest.raises(InvalidCursor):
        FeedCursor.decode(text)


def test_cursor_order_follows_the_feed_order() -> None:
    assert FeedCursor(5, 100) < FeedCursor(6, 1) < FeedCursor(6, 2)


@dataclass(frozen=True)
class StoredEvent:
    """An event row as `job_events` returns it."""

    id: int
    type: str | None
    status: str | None
    occurred_at: datetime
    job_id: uuid.UUID
    email: str
    message_id: int
    is_test: bool
    details: dict[str, Any]
    machine_reason: str | None = None


def test_event_view() -> None:
    row = StoredEvent(
        id=7,
        type="click",
        status="clicked",
        occurred_at=NOW,
        job_id=uuid.UUID(JOB),
        email="ann@example.org",
        message_id=576460752303423489,
        is_test=False,
        details={"url": "https://a.test"},
    )
    view = event_view(row, {"order": 1}, ["receipt"])
    assert view == {
        "id": "7",
        "type": "email.clicked",
        "mailjet_event": "click",
        "status": "clicked",
        "time": NOW,
        "job_id": JOB,
        "email": "ann@example.org",
        "message_id": "576460752303423489",
        "test": False,
        "url": "https://a.test",
        "machine": False,
        "machine_reason": None,
        "metadata": {"order": 1},
        "tags": ["receipt"],
    }
    assert event_view(replace(row, message_id=0), None, None)["message_id"] is None
    assert event_view(row, None, None)["tags"] == []


def test_production_start_without_event_credentials_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from mailer import cli
    from mailer.api.app import create_app

    production = {"mj_apikey_public": "k", "mj_apikey_private": "s"}
    with pytest.raises(ConfigError, match="MAILER_EVENTS_USER and MAILER_EVENTS_PASSWORD"):
        create_app(_settings(**production), "postgresql://127.0.0.1/none")
    monkeypatch.setattr("mailer.logs.configure", lambda *args, **kwargs: None)
    for name in ("MAILER_EVENTS_USER", "MAILER_EVENTS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "MJ_APIKEY_PUBLIC": "k",
        "MJ_APIKEY_PRIVATE": "s",
        "DATABASE_URL": "postgresql://127.0.0.1/none",
    }
    for command in ("run", "api"):
        result = CliRunner().invoke(cli.main, [command], env=env)
        assert result.exit_code == 1, result.output
        assert "must be set when Mailjet keys are configured" in result.output
