"""The simulator's Mailjet rules (validation, error shapes) and fault draws, without HTTP."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from mailer.simulator import SimulatorConfig
from mailer.simulator.faults import Fault, FaultConfig, FaultInjector
from mailer.simulator.validation import (
    RequestFailure,
    SendRequest,
    check_callback,
    check_message,
    check_request,
    parse_send,
    unique_recipients,
)


def msg(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "From": {"Email": "s@example.org"},
        "To": [{"Email": "a@example.org"}],
        "TextPart": "hi",
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def codes(message: Any) -> list[tuple[str, list[str]]]:
    return [(e["ErrorCode"], e["ErrorRelatedTo"]) for e in check_message(message)]


def parsed(body: Any) -> SendRequest:
    result = parse_send(orjson.dumps(body))
    assert isinstance(result, SendRequest)
    return result


def test_valid_message_has_no_errors() -> None:
    assert check_message(msg()) == []
    assert check_message(msg(From=None, TemplateID=123, TextPart=None)) == []


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (msg(From=None), [("mj-0003", ["From"])]),
        (msg(To=None), [("mj-0003", ["To"])]),
        (msg(To=[]), [("mj-0007", ["To"])]),
        (msg(To=[{"Email": "bad@@x"}]), [("mj-0013", ["To[0].Email"])]),
        (msg(Cc=[{"Email": ""}]), [("mj-0012", ["Cc[0].Email"])]),
        (msg(TextPart=None), [("send-0003", ["HTMLPart", "TextPart", "TemplateID"])]),
        (msg(Subject="x" * 256), [("mj-0006", ["Subject"])]),
        (msg(CustomID="c" * 65), [("mj-0006", ["CustomID"])]),
        (msg(Headers={"x-mailer": "me"}), [("send-0011", ['Headers["x-mailer"]'])]),
        (
            msg(
                Attachments=[{"Filename": "", "ContentType": "text/plain", "Base64Content": "eA=="}]
            ),
            [("mj-0012", ["Attachments[0].Filename"])],
        ),
        (msg(TemplateErrorDeliver=True), [("send-0016", ["TemplateErrorDeliver"])]),
        (msg(TrackOpens="sometimes"), [("mj-0005", ["TrackOpens"])]),
        (msg(DeduplicateCampaign=True), [("send-0012", ["DeduplicateCampaign"])]),
        ("not an object", [("mj-0004", ["Messages"])]),
    ],
)
def test_per_message_errors(message: Any, expected: list[tuple[str, list[str]]]) -> None:
    assert codes(message) == expected


def test_error_entry_shape() -> None:
    [error] = check_message(msg(To=[{"Email": "bad@@x"}]))
    assert error["ErrorMessage"] == '"bad@@x" is an invalid email address.'
    assert error["StatusCode"] == 400 and len(error["ErrorIdentifier"]) == 36


def test_allowed_things_pass() -> None:
    assert check_message(msg(Headers={"List-Unsubscribe": "<mailto:u@example.org>"})) == []
    assert check_message(msg(CustomID="c" * 64, Subject="s" * 255)) == []
    ok = msg(TemplateLanguage=True, TemplateErrorReporting={"Email": "e@example.org"})
    assert check_message(ok) == []


def test_attachments_over_15_mb() -> None:
    big = base64.b64encode(b"\0" * (15 * 1024 * 1024 + 1)).decode()
    attachment = {"Filename": "a.bin", "ContentType": "application/octet-stream"}
    assert codes(msg(Attachments=[{**attachment, "Base64Content": big}])) == [
        ("mj-0011", ["Attachments"])
    ]


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"{nope", 400, "mj-0002"),
        (b"[]", 400, "mj-0002"),
        (b"{}", 400, "mj-0003"),
        (b'{"Messages": {}}', 400, "mj-0004"),
        (b'{"Messages": []}', 400, "mj-0007"),
    ],
)
def test_whole_request_errors(raw: bytes, status: int, code: str) -> None:
    result = parse_send(raw)
    assert isinstance(result, RequestFailure)
    assert (result.status, result.body["ErrorCode"]) == (status, code)
    assert "Messages" not in result.body


def test_recipient_limit_counts_to_cc_bcc_over_all_messages() -> None:
    three = msg(Cc=[{"Email": "c@example.org"}], Bcc=[{"Email": "d@example.org"}])
    fine = parsed({"Messages": [three] * 16 + [msg(To=[{"Email": "z@example.org"}] * 2)]})
    assert fine.recipients == 50 and check_request(fine) is None
    over = parsed({"Messages": [three] * 17})
    failure = check_request(over)
    assert failure is not None and failure.status == 400
    assert failure.body["ErrorCode"] == "send-0015"
    assert failure.body["ErrorMessage"] == "Total number of recipients exceeded. Max allowed - 50."
    assert failure.body["ErrorRelatedTo"] == ["To", "Bcc", "Cc"]


def test_null_in_variables_is_a_500_also_from_globals() -> None:
    for body in (
        {"Messages": [msg(Variables={"a": {"b": None}})]},
        {"Globals": {"Variables": {"a": None}}, "Messages": [msg(Variables={"b": 1})]},
    ):
        failure = check_request(parsed(body))
        assert failure is not None and failure.status == 500
        assert failure.body["ErrorMessage"] == "Cannot convert data from Null value"


def test_globals_merge_and_sandbox_flag() -> None:
    request = parsed(
        {
            "SandboxMode": True,
            "Globals": {"From": {"Email": "g@example.org"}, "Variables": {"a": 1, "b": 1}},
            "Messages": [
                {"To": [{"Email": "a@example.org"}], "TextPart": "x", "Variables": {"b": 2}}
            ],
        }
    )
    [merged] = request.messages
    assert merged["From"] == {"Email": "g@example.org"}
    assert merged["Variables"] == {"a": 1, "b": 2}
    assert request.sandbox and check_message(merged) == []


def test_repeated_addresses_count_once() -> None:
    message = msg(
        To=[{"Email": "a@example.org"}, {"Email": "A@Example.org"}],
        Cc=[{"Email": "a@example.org"}, {"Email": "c@example.org"}],
        Bcc=[{"Email": "c@example.org"}],
    )
    assert unique_recipients(message) == [("a@example.org", "to"), ("c@example.org", "cc")]


def test_callback_fields() -> None:
    created = check_callback({"EventType": "open", "Url": "http://127.0.0.1/e"}, creating=True)
    assert created == {
        "EventType": "open",
        "Url": "http://127.0.0.1/e",
        "Status": "alive",
        "IsBackup": False,
        "Version": 1,
    }
    assert isinstance(
        check_callback({"EventType": "*", "Url": "http://127.0.0.1/"}, creating=True), str
    )
    assert isinstance(check_callback({"Url": "http://127.0.0.1/"}, creating=True), str)
    assert isinstance(check_callback({"Version": 3}, creating=False), str)
    assert isinstance(check_callback({"URL": "http://127.0.0.1/"}, creating=False), str)
    assert check_callback({"ID": 4, "Status": "dead"}, creating=False) == {"Status": "dead"}


def test_fault_draws_are_deterministic_with_a_seed() -> None:
    config = FaultConfig(error_500_rate=0.2, html_429_rate=0.2, lost_answer_rate=0.2, seed=7)
    first = FaultInjector(config)
    draws = [first.draw() for _ in range(200)]
    second = FaultInjector(config)
    assert [second.draw() for _ in range(200)] == draws
    assert {Fault.ERROR_500, Fault.HTML_429, Fault.LOST_ANSWER, None} == set(draws)
    assert Fault.TIMEOUT not in draws
    assert FaultInjector().draw() is None


def test_fault_config_validation() -> None:
    assert FaultConfig.from_json({"timeout_rate": 1, "hang_seconds": 5}).timeout_rate == 1.0
    assert FaultConfig.from_json({}) == FaultConfig()
    bad_settings: list[Any] = [
        {"error_500_rate": 1.5},
        {"error_500_rate": 0.6, "timeout_rate": 0.6},
        {"latency": 5},
        {"latency_ms": "5"},
        {"lost_answer_mode": "maybe"},
        {"seed": 1.5},
        [],
    ]
    for bad in bad_settings:
        with pytest.raises(ValueError):
            FaultConfig.from_json(bad)


def test_simulator_listens_on_loopback_only() -> None:
    assert SimulatorConfig(host="::1").host == "::1"
    for host in ("0.0.0.0", "192.0.2.1", "example.org"):
        with pytest.raises(ValueError):
            SimulatorConfig(host=host)


def test_a_private_address_only_when_asked_and_never_a_wildcard() -> None:
    for host in ("10.1.2.3", "192.168.0.5", "fd00::5"):
        with pytest.raises(ValueError):
            SimulatorConfig(host=host)
        assert SimulatorConfig(host=host, private_network=True).host == host
    for host in ("0.0.0.0", "::", "8.8.8.8", "example.org"):
        with pytest.raises(ValueError):
            SimulatorConfig(host=host, private_network=True)
