"""``mailer mailjet doctor``: is the Mailjet account set up so that tracking works?

Checks, against Mailjet (or the simulator), each giving one :class:`Finding` per line:

- **key**: the API key and secret are accepted;
- **callbacks**: each of the seven event types has an alive primary callback to our
  ``/events`` with our credentials and ``Version 2`` (grouped). Mailjet keeps one primary
  and one backup per type and refuses a second with ``MJ18 … already exists``, so a record
  pointing elsewhere is reported as another system's (or a stale one of ours) rather than
  overwritten; a backup that is not ours is a warning (Mailjet falls back to it);
- **senders**: every domain the apps send from (their configured sender domains and the
  From of recent jobs) has an Active sender at Mailjet (``*@domain``, else each From
  address used), and Mailjet's SPF and DKIM checks of it say ``OK`` (``/v3/REST/dns``);
- **events**: `sent` events arrive while Mailer sends (the event clock, ops/event_clock.py).

The checks on data are pure functions (:func:`callback_findings`, :func:`sender_findings`,
:func:`event_findings`), unit-tested without Mailjet; :func:`diagnose` gathers the data, and
:func:`callback_check` its first part (the key and the callbacks), which the dashboard's
Mailjet page shows too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from mailer.db.pool import Conn
from mailer.db.queries import Queries
from mailer.mailjet import DomainDns, EventCallback, MailjetClient, MailjetSender
from mailer.mailjet.errors import MailjetError, MailjetNotFound, MailjetRequestRejected
from mailer.mailjet.registration import ALL_EVENT_TYPES, GROUPED_VERSION, mask_url
from mailer.ops.event_clock import Silence, event_silence
from mailer.tracking.rows import SenderAddress

__all__ = [
    "Finding",
    "Ours",
    "callback_check",
    "callback_findings",
    "diagnose",
    "event_findings",
    "sender_findings",
]

Q = Queries("mailer.tracking")
RECENT_JOBS = 10_000
"""How many of the latest jobs are read for the From addresses in use."""

Level = Literal["ok", "warning", "problem"]
_REGISTER = "mailer mailjet register-webhook <Mailer's public URL of /events>"


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the doctor's answer; ``fix`` says what to do about a warning or problem."""

    level: Level
    check: str
    text: str
    fix: str | None = None

    def line(self) -> str:
        """``ok       callbacks sent: …`` / ``PROBLEM  … (fix: …)``."""
        label = {"ok": "ok", "warning": "warning", "problem": "PROBLEM"}[self.level]
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{label:<8} {self.check}: {self.text}{fix}"


@dataclass(frozen=True, slots=True)
class Ours:
    """What our callback looks like: the full URL when known (with credentials), and the
    credentials ``/events`` accepts."""

    url: str | None
    user: str | None
    password: str | None


def _target(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path or "/"


def _credentials(url: str) -> tuple[str | None, str | None]:
    parts = urlsplit(url)
    user, password = parts.username, parts.password
    return (
        unquote(user) if user is not None else None,
        unquote(password) if password is not None else None,
    )


def _whose(url: str, ours: Ours) -> Literal["ours", "wrong_credentials", "stale", "other"]:
    """Whether a registered URL is our ``/events`` (and if not, how it differs)."""
    has_our_credentials = ours.user is not None and _credentials(url) == (ours.user, ours.password)
    if ours.url is None:
        return "ours" if has_our_credentials else "other"
    same_place = _target(url) == _target(ours.url)
    if same_place:
        return "ours" if has_our_credentials else "wrong_credentials"
    return "stale" if has_our_credentials else "other"


def _primary_finding(event_type: str, record: EventCallback | None, ours: Ours) -> Finding:
    check = f"callback {event_type}"
    if record is None:
        consequence = (
            "nothing is ever marked delivered"
            if event_type == "sent"
            else f"Mailer never hears of {event_type} events"
        )
        return Finding("problem", check, f"none registered: {consequence}", _REGISTER)
    shown = mask_url(record.url)
    whose = _whose(record.url, ours)
    if whose == "other":
        return Finding(
            "problem",
            check,
            f"#{record.id} posts to {shown}, not to Mailer: another system holds this slot "
            "(Mailjet keeps one per event type and refuses a second with MJ18)",
            "give that system its own Mailjet API key (a sub-account), or take the slot "
            f"over with {_REGISTER}",
        )
    if whose == "stale":
        return Finding(
            "problem",
            check,
            f"#{record.id} posts to {shown}: Mailer's credentials, another address",
            _REGISTER,
        )
    if whose == "wrong_credentials":
        return Finding(
            "problem",
            check,
            f"#{record.id} posts to {shown} with other credentials: /events answers 401",
            f"{_REGISTER} (with MAILER_EVENTS_USER/MAILER_EVENTS_PASSWORD as the API has them)",
        )
    if record.status != "alive":
        return Finding(
            "problem",
            check,
            f"#{record.id} is {record.status or 'not alive'}: Mailjet stopped posting to it",
            f"{_REGISTER} (an update revives it)",
        )
    if record.version != GROUPED_VERSION:
        return Finding(
            "problem",
            check,
            f"#{record.id} is Version {record.version}: one POST per event, too slow for `sent`",
            f"{_REGISTER} (sets Version 2)",
        )
    return Finding("ok", check, f"#{record.id} posts to Mailer ({shown}), Version 2, alive")


def callback_findings(records: Iterable[EventCallback], ours: Ours) -> list[Finding]:
    """One finding per event type's primary record, plus one per backup that is not ours."""
    primaries: dict[str, EventCallback] = {}
    findings: list[Finding] = []
    for record in sorted(records, key=lambda r: r.id):
        if not record.is_backup:
            primaries.setdefault(record.event_type, record)
        elif _whose(record.url, ours) != "ours":
            findings.append(
                Finding(
                    "warning",
                    f"callback {record.event_type}",
                    f"backup #{record.id} posts to {mask_url(record.url)}: while our URL is "
                    "suspended, Mailjet posts these events there",
                    f"delete it if it is not yours (DELETE /v3/REST/eventcallbackurl/{record.id})",
                )
            )
    primary = [_primary_finding(t, primaries.get(t), ours) for t in ALL_EVENT_TYPES]
    return primary + findings


@dataclass(frozen=True, slots=True)
class DomainState:
    """What Mailjet says about one sending domain: its senders, and its DNS check (None
    when the account does not hold the domain)."""

    domain: str
    senders: Sequence[MailjetSender]
    dns: DomainDns | None
    addresses_used: Sequence[str]


def _sender_finding(state: DomainState) -> Finding:
    check = f"sender {state.domain}"
    active = {s.email.lower() for s in state.senders if s.status == "Active"}
    if f"*@{state.domain}" in active:
        return Finding("ok", check, f"the domain is an Active sender (*@{state.domain})")
    missing = [a for a in state.addresses_used if a not in active]
    if state.addresses_used and not missing:
        return Finding("ok", check, f"every From address used is Active ({len(active)})")
    unvalidated = ", ".join(missing) if missing else f"*@{state.domain}"
    return Finding(
        "problem",
        check,
        f"not a validated sender at Mailjet ({unvalidated}): sends from it fail (send-0008)",
        f"add and validate {state.domain} in Mailjet (Account, Senders & Domains)",
    )


def _dns_findings(state: DomainState) -> list[Finding]:
    check = f"dns {state.domain}"
    if state.dns is None:
        return [
            Finding(
                "problem",
                check,
                "Mailjet holds no such sending domain, so it checks no SPF or DKIM for it",
                f"add {state.domain} in Mailjet (Account, Senders & Domains)",
            )
        ]
    findings = []
    for name, status, fix in (
        (
            "SPF",
            state.dns.spf_status,
            "publish the SPF record Mailjet shows (include:spf.mailjet.com)",
        ),
        ("DKIM", state.dns.dkim_status, "publish the DKIM TXT record Mailjet shows"),
    ):
        if status == "OK":
            findings.append(Finding("ok", check, f"{name} OK"))
        else:
            findings.append(
                Finding(
                    "problem",
                    check,
                    f"{name} {status or 'unknown'}: mail from it is likelier to be refused or "
                    "filed as spam",
                    f"{fix}, then re-check it (POST /v3/REST/dns/{state.dns.id}/check)",
                )
            )
    return findings


def sender_findings(states: Iterable[DomainState]) -> list[Finding]:
    """For each domain in use: its sender, then its SPF and DKIM."""
    findings: list[Finding] = []
    for state in states:
        findings.append(_sender_finding(state))
        findings.extend(_dns_findings(state))
    return findings or [Finding("ok", "senders", "no sender domain in use yet")]


def event_findings(silence: Silence, after: float) -> list[Finding]:
    """Whether `sent` events arrive while Mailer sends."""
    if silence.silent:
        waiting = round(silence.waiting_seconds or 0)
        return [
            Finding(
                "problem",
                "events",
                f"Mailjet accepted sends {waiting} s ago and no `sent` event came since "
                f"(silence after {after:g} s)",
                "fix the callbacks above, then mailer mailjet backfill --since <when it stopped>",
            )
        ]
    if silence.last_sent_seconds_ago is None:
        return [Finding("ok", "events", "no `sent` event yet (none expected: nothing waits)")]
    return [
        Finding("ok", "events", f"last `sent` event {round(silence.last_sent_seconds_ago)} s ago")
    ]


async def _domain_states(client: MailjetClient, conn: Conn) -> list[DomainState]:
    rows = await conn.fetch(Q.sender_addresses_in_use, RECENT_JOBS, record_class=SenderAddress)
    addresses: dict[str, list[str]] = {}
    for row in rows:
        used = addresses.setdefault(row.domain, [])
        if row.address is not None:
            used.append(row.address)
    states = []
    for domain, used in sorted(addresses.items()):
        senders = await client.list_senders(domain=domain)
        try:
            dns: DomainDns | None = await client.domain_dns(domain)
        except MailjetNotFound:
            dns = None
        states.append(DomainState(domain, senders, dns, sorted(used)))
    return states


async def callback_check(client: MailjetClient, ours: Ours) -> list[Finding]:
    """The key, the credentials and the seven callbacks (the first checks of
    :func:`diagnose`, and what the dashboard's Mailjet page shows); a rejected key is the
    only finding then (nothing else can be asked)."""
    try:
        records = await client.list_event_callbacks()
    except MailjetRequestRejected as exc:
        if exc.status in (401, 403):
            return [
                Finding(
                    "problem",
                    "key",
                    f"{client.base_url} refuses the API key (HTTP {exc.status})",
                    "set MJ_APIKEY_PUBLIC and MJ_APIKEY_PRIVATE to a live key pair",
                )
            ]
        raise
    findings = [Finding("ok", "key", f"{client.base_url} accepts the API key")]
    if ours.user is None:
        findings.append(
            Finding(
                "problem",
                "credentials",
                "MAILER_EVENTS_USER/MAILER_EVENTS_PASSWORD are not set: no callback can be ours",
                "set both, as the API has them",
            )
        )
    return findings + callback_findings(records, ours)


async def diagnose(
    client: MailjetClient, conn: Conn, ours: Ours, *, silence_after: float
) -> list[Finding]:
    """Every check, in order; a rejected key ends it early (nothing else can be asked)."""
    findings = await callback_check(client, ours)
    if findings[0].check == "key" and findings[0].level == "problem":
        return findings
    try:
        findings += sender_findings(await _domain_states(client, conn))
    except MailjetError as exc:
        findings.append(Finding("problem", "senders", f"could not be read: {exc}", None))
    findings += event_findings(await event_silence(conn, silence_after), silence_after)
    return findings
