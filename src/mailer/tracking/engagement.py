"""Who opened or clicked: a person, or a machine acting on the mailbox's behalf.

Open and click counts have been inflated for years by software that fetches every image
or follows every link before anyone reads the email (listmonk #1025). Each ``open`` and
``click`` is classified at intake from what Mailjet reports: ``agent`` (the User-Agent of
the request that fetched the pixel or followed the link), ``ip`` (its address) and
``time`` (relative to the message's delivery); the classification and its reason are
stored on the event, and counts show both raw and human figures.

The rules, in order, with the signal each one relies on:

``apple_mail_privacy``
    Apple Mail Privacy Protection (iOS 15, macOS 12 and later) downloads remote content
    through Apple's relays when the message is delivered, whether or not it is read. Those
    fetches carry the bare User-Agent ``Mozilla/5.0`` and nothing else; Mail itself and
    every browser send a full one (Apple's MPP documentation; Litmus' and Validity's
    analyses of MPP traffic; uap-core #509). An open from Apple's own network (17.0.0.0/8,
    :mod:`mailer.tracking.networks`) is one too.
``security_scanner`` (by address)
    A request from a mail-security network that its vendor publishes (Microsoft Exchange
    Online Protection, Barracuda; :mod:`mailer.tracking.networks` lists them with their
    sources).
``no_user_agent``
    A request without a User-Agent is a program, not a mail client.
``security_scanner``
    Mail security gateways follow links and fetch images to check them, within seconds of
    delivery (Barracuda, Mimecast, Proofpoint, Symantec/MessageLabs, Trend Micro, Sophos,
    Fortinet, Cisco IronPort, Forcepoint, Zscaler, Palo Alto Networks, Microsoft Defender
    for Office 365's Safe Links); their User-Agents name them.
``bot``
    Crawlers, link previewers (chat apps unfurling a pasted link) and HTTP libraries:
    ``bot``, ``crawler``, ``spider``, ``preview``, ``facebookexternalhit``,
    ``python-requests``, ``curl/``, ``wget``, ``Go-http-client``, ``Java/``, ``okhttp``,
    ``HeadlessChrome`` …

``scanner_timing`` (:func:`timing_reason`, which needs the message's other events)
    A scanner that follows every link does so within seconds of delivery, all at once. An
    open or click is a machine's when it came within ``MAILER_SCANNER_CLICK_SECONDS`` of
    the message's delivery **and** at least two distinct links of that message were
    clicked in the same second as it. Timing alone never suffices: a person who clicks the
    one link of a password reset as soon as it lands stays a person; nobody clicks two
    different links within the same second.

Everything else is a person. In particular the image proxies of Gmail
(``GoogleImageProxy``) and Yahoo (``YahooMailProxy``) fetch images when the reader opens
the message: the open is real, only the reader's IP and device are hidden, so it counts as
human.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from mailer.tracking.networks import network_of

__all__ = [
    "BURST_LINKS",
    "BURST_SECONDS",
    "DEFAULT_SCANNER_SECONDS",
    "ENGAGEMENT_TYPES",
    "MachineReason",
    "engagement_of",
    "in_burst",
    "machine_fields",
    "machine_reason",
    "timing_reason",
]

ENGAGEMENT_TYPES: Final = frozenset({"open", "click"})
"""The Mailjet event types that are classified."""


class MachineReason:
    """Why an open or click was made by a machine (the stored ``machine_reason``)."""

    APPLE_MAIL_PRIVACY = "apple_mail_privacy"
    NO_USER_AGENT = "no_user_agent"
    SECURITY_SCANNER = "security_scanner"
    BOT = "bot"
    SCANNER_TIMING = "scanner_timing"


DEFAULT_SCANNER_SECONDS: Final = 10.0
"""``MAILER_SCANNER_CLICK_SECONDS``: how soon after delivery a click burst is a scanner's."""

BURST_SECONDS: Final = 1.0
"""Clicks less than this apart are one burst. Mailjet's ``time`` has whole seconds, so this
is the same second: a burst that straddles a second boundary does not count (a person who
clicks a second link a second later must not)."""

BURST_LINKS: Final = 2
"""Distinct links clicked within :data:`BURST_SECONDS` that make a burst."""


_SCANNERS: Final = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "symantec",
    "messagelabs",
    "trendmicro",
    "trend micro",
    "sophos",
    "fortinet",
    "fortiguard",
    "ironport",
    "forcepoint",
    "zscaler",
    "paloalto",
    "palo alto",
    "safelinks",
    "safe links",
    "defender",
)

_BOTS: Final = (
    "bot",
    "crawler",
    "spider",
    "preview",
    "facebookexternalhit",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "curl/",
    "wget",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww-perl",
    "headlesschrome",
    "phantomjs",
    "node-fetch",
    "axios/",
)


def machine_reason(event_type: str | None, agent: str | None, ip: str | None = None) -> str | None:
    """The :class:`MachineReason` of an open or click made by a machine, from what the
    event says of itself (User-Agent and IP), else ``None``.

    ``None`` also for every other event type (they are not classified). Timing needs the
    message's other events: :func:`timing_reason`.
    """
    if event_type not in ENGAGEMENT_TYPES:
        return None
    text = (agent or "").strip()
    if text == "Mozilla/5.0":
        return MachineReason.APPLE_MAIL_PRIVACY
    network = network_of(event_type, ip)
    if network is not None:
        return network.reason
    if not text:
        return MachineReason.NO_USER_AGENT
    lowered = text.lower()
    if any(name in lowered for name in _SCANNERS):
        return MachineReason.SECURITY_SCANNER
    if any(token in lowered for token in _BOTS):
        return MachineReason.BOT
    return None


def timing_reason(
    event_type: str | None,
    at: datetime,
    delivered_at: datetime | None,
    clicks: Iterable[tuple[str | None, datetime]],
    *,
    window: float = DEFAULT_SCANNER_SECONDS,
) -> str | None:
    """``scanner_timing`` when an open or click at ``at`` came within ``window`` seconds of
    the message's delivery (``delivered_at``; also when before it) and at least
    :data:`BURST_LINKS` distinct links of the message were clicked less than
    :data:`BURST_SECONDS` from it (the same second), else ``None``.

    ``clicks`` are the message's clicks as ``(url, time)``, the event itself included when
    it is one. Without a delivery time, or with ``window`` 0, nothing is classified.
    """
    if event_type not in ENGAGEMENT_TYPES or delivered_at is None or window <= 0:
        return None
    if (at - delivered_at).total_seconds() > window:
        return None
    return MachineReason.SCANNER_TIMING if in_burst(at, clicks) else None


def in_burst(at: datetime, clicks: Iterable[tuple[str | None, datetime]]) -> bool:
    """Whether at least :data:`BURST_LINKS` distinct links of ``clicks`` (``(url, time)``)
    were clicked less than :data:`BURST_SECONDS` from ``at``."""
    links = {
        url for url, time in clicks if url and abs((time - at).total_seconds()) < BURST_SECONDS
    }
    return len(links) >= BURST_LINKS


def machine_fields(event_type: str | None, reason: str | None) -> dict[str, Any]:
    """What an open or click view says of its maker: ``machine`` and ``machine_reason``
    (nothing for other event types)."""
    if event_type not in ENGAGEMENT_TYPES:
        return {}
    return {"machine": reason is not None, "machine_reason": reason}


def engagement_of(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A recipient's opens and clicks from its event views: raw and human counts, and who
    opened and who clicked (``"human"`` if a person did, else ``"machine"``, else null)."""
    counts = {"open": [0, 0], "click": [0, 0]}
    for event in events:
        seen = counts.get(event.get("mailjet_event") or "")
        if seen is not None:
            seen[0] += 1
            seen[1] += not event.get("machine")
    return {
        "opens": counts["open"][0],
        "human_opens": counts["open"][1],
        "clicks": counts["click"][0],
        "human_clicks": counts["click"][1],
        "opened_by": _by(*counts["open"]),
        "clicked_by": _by(*counts["click"]),
    }


def _by(total: int, human: int) -> str | None:
    if human:
        return "human"
    return "machine" if total else None
