"""`mailer mailjet doctor`'s judgements on what Mailjet reports, and the event-silence rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailer.mailjet import DomainDns, EventCallback, MailjetSender
from mailer.mailjet.registration import ALL_EVENT_TYPES
from mailer.ops.event_clock import Silence, silence_of
from mailer.tracking.doctor import (
    DomainState,
    Finding,
    Ours,
    callback_findings,
    event_findings,
    sender_findings,
)

OUR_URL = "https://hook:s3cret@mailer.example/events"
OURS = Ours(OUR_URL, "hook", "s3cret")


def records(url: str = OUR_URL, **overrides: object) -> list[EventCallback]:
    fields: dict[str, object] = {"status": "alive", "is_backup": False, "version": 2}
    fields.update(overrides)
    return [
        EventCallback(id=i + 1, event_type=t, url=url, **fields)  # type: ignore[arg-type]
        for i, t in enumerate(ALL_EVENT_TYPES)
    ]


def problems(findings: list[Finding]) -> dict[str, str]:
    return {f.check: f.line() for f in findings if f.level == "problem"}


def test_seven_alive_grouped_callbacks_to_us_are_fine() -> None:
    findings = callback_findings(records(), OURS)
    assert [f.level for f in findings] == ["ok"] * 7
    assert "s3cret" not in "".join(f.line() for f in findings)  # the password is masked


def test_a_missing_type_is_a_problem_that_names_the_fix() -> None:
    found = problems(callback_findings([r for r in records() if r.event_type != "sent"], OURS))
    assert list(found) == ["callback sent"]
    assert "none registered" in found["callback sent"]
    assert "register-webhook" in found["callback sent"]


def test_a_callback_of_another_system_is_reported_not_taken() -> None:
    theirs = [
        EventCallback(1, "open", "https://crm.example/mailjet", "alive", False, 2),
        *[r for r in records() if r.event_type != "open"],
    ]
    found = problems(callback_findings(theirs, OURS))
    assert list(found) == ["callback open"]
    assert "another system" in found["callback open"] and "MJ18" in found["callback open"]


def test_our_credentials_elsewhere_or_other_credentials_here_are_told_apart() -> None:
    stale = records("https://hook:s3cret@old-mailer.example/events")
    assert all(
        "another address" in line for line in problems(callback_findings(stale, OURS)).values()
    )
    wrong = records("https://hook:old@mailer.example/events")
    assert all("401" in line for line in problems(callback_findings(wrong, OURS)).values())


def test_without_a_public_url_our_credentials_decide() -> None:
    ours = Ours(None, "hook", "s3cret")
    assert problems(callback_findings(records("https://hook:s3cret@any.example/x"), ours)) == {}
    assert len(problems(callback_findings(records("https://any.example/x"), ours))) == 7


def test_version_1_and_dead_callbacks_are_problems() -> None:
    assert all(
        "Version 1" in line
        for line in problems(callback_findings(records(version=1), OURS)).values()
    )
    assert all(
        "dead" in line
        for line in problems(callback_findings(records(status="dead"), OURS)).values()
    )


def test_a_foreign_backup_is_a_warning() -> None:
    backup = EventCallback(99, "sent", "https://crm.example/x", "alive", True, 2)
    findings = callback_findings([*records(), backup], OURS)
    assert problems(findings) == {}
    warnings = [f for f in findings if f.level == "warning"]
    assert len(warnings) == 1 and "backup #99" in warnings[0].text


def test_senders_need_an_active_domain_or_every_used_address_and_spf_dkim_ok() -> None:
    ok_dns = DomainDns(1, "shop.example", "OK", "OK", "")
    fine = DomainState("shop.example", [MailjetSender(1, "*@shop.example", "Active")], ok_dns, [])
    addresses = DomainState(
        "shop.example", [MailjetSender(2, "a@shop.example", "Active")], ok_dns, ["a@shop.example"]
    )
    assert problems(sender_findings([fine, addresses])) == {}
    pending = DomainState(
        "shop.example", [MailjetSender(1, "*@shop.example", "Inactive")], ok_dns, ["b@shop.example"]
    )
    assert "send-0008" in problems(sender_findings([pending]))["sender shop.example"]
    bad_dns = DomainState(
        "shop.example",
        [MailjetSender(1, "*@shop.example", "Active")],
        DomainDns(7, "shop.example", "Error", "Not checked", ""),
        [],
    )
    lines = [f.line() for f in sender_findings([bad_dns]) if f.level == "problem"]
    assert len(lines) == 2 and "SPF Error" in lines[0] and "DKIM Not checked" in lines[1]
    unknown = DomainState("shop.example", [], None, ["a@shop.example"])
    assert set(problems(sender_findings([unknown]))) == {"sender shop.example", "dns shop.example"}


def test_events_are_a_problem_only_when_silent() -> None:
    assert event_findings(Silence(False, None, None), 900)[0].level == "ok"
    assert event_findings(Silence(False, 10.0, 5.0), 900)[0].level == "ok"
    silent = event_findings(Silence(True, 1000.0, 4000.0), 900)[0]
    assert silent.level == "problem" and "backfill" in (silent.fix or "")


class _Clock:
    """Stands in for a ClockRow (the rule reads four attributes)."""

    def __init__(self, type: str, age: float, waiting: float | None = None) -> None:
        now = datetime.now(UTC)
        self.type = type
        self.last_at = now - timedelta(seconds=age)
        self.seconds_ago = age
        self.waiting_since = None if waiting is None else now - timedelta(seconds=waiting)
        self.waiting_seconds = waiting


def test_silence_is_sends_waiting_too_long_for_a_sent_event() -> None:
    def silent(*rows: _Clock) -> bool:
        return silence_of(rows, 900).silent  # type: ignore[arg-type]

    assert not silent()  # nothing sent, nothing received
    assert not silent(_Clock("accepted", 5, waiting=100))  # waiting, not for long yet
    assert silent(_Clock("accepted", 5, waiting=1000))  # never a `sent` event
    assert silent(_Clock("accepted", 5, waiting=1000), _Clock("sent", 2000))
    # A `sent` event after the sends began: they are not waiting any more.
    assert not silent(_Clock("accepted", 5, waiting=1000), _Clock("sent", 30))
    # Opens keep coming, `sent` does not: still silent.
    assert silent(_Clock("accepted", 5, waiting=1000), _Clock("open", 1), _Clock("sent", 5000))


def test_history_rows_become_the_events_callbacks_would_have_carried() -> None:
    from mailer.mailjet import LookedUpMessage, MessageEvent
    from mailer.tracking.backfill import event_from_history
    from mailer.tracking.parse import parse_event
    from mailer.tracking.suppressions import suppression_reason

    def event(status: str, kind: str, state: str = "", agent: str = "") -> dict[str, object]:
        message = LookedUpMessage(576460752303423489, "ann@example.org", "job-1", status)
        found = event_from_history(message, MessageEvent(1700000000, kind, state, agent, ""))
        assert found is not None and found["mailer_backfill"] is True
        return found

    opened = event("opened", "opened", agent="Mozilla/5.0")
    assert opened["event"] == "open" and opened["agent"] == "Mozilla/5.0"
    assert opened["MessageID"] == 576460752303423489 and opened["time"] == 1700000000
    hard = event("hardbounced", "bounced", "user unknown")
    assert hard["hard_bounce"] is True and hard["error_related_to"] == "recipient"
    assert suppression_reason(parse_event(hard)) == "hard_bounce"
    domain = event("hardbounced", "bounced", "no mail host")
    assert (
        domain["error_related_to"] == "domain" and suppression_reason(parse_event(domain)) is None
    )
    soft = event("sent", "bounced", "greylisted")
    assert soft["hard_bounce"] is False
    assert (
        suppression_reason(parse_event(event("blocked", "blocked", "preblocked"))) == "preblocked"
    )
    message = LookedUpMessage(1, None, None, "sent")
    assert event_from_history(message, MessageEvent(1, "queued", "", "", "")) is None
