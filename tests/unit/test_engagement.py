"""Human and machine opens and clicks, on User-Agents as mail clients and machines send them."""

from __future__ import annotations

import pytest

from mailer.tracking.engagement import MachineReason, machine_reason
from mailer.tracking.networks import MACHINE_NETWORKS

HUMAN = [
    # Apple Mail on iOS and macOS with MPP off: a full WebKit User-Agent.
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    # Outlook for Windows, Thunderbird, a browser (webmail, or a click).
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Thunderbird/128.3.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    # Gmail's and Yahoo's image proxies fetch when the reader opens the message.
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
    # What the simulator sends.
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0",
]

MACHINE = [
    ("Mozilla/5.0", MachineReason.APPLE_MAIL_PRIVACY),
    (" Mozilla/5.0 ", MachineReason.APPLE_MAIL_PRIVACY),
    ("", MachineReason.NO_USER_AGENT),
    (None, MachineReason.NO_USER_AGENT),
    ("Mozilla/5.0 (compatible; Barracuda Sentinel (EE))", MachineReason.SECURITY_SCANNER),
    ("Mimecast-URL-Protect/1.0", MachineReason.SECURITY_SCANNER),
    ("Mozilla/5.0 (compatible; Proofpoint URL Defense)", MachineReason.SECURITY_SCANNER),
    ("Microsoft Defender for Office 365 Safe Links", MachineReason.SECURITY_SCANNER),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", MachineReason.BOT),
    ("facebookexternalhit/1.1", MachineReason.BOT),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", MachineReason.BOT),
    ("python-requests/2.32.3", MachineReason.BOT),
    ("curl/8.5.0", MachineReason.BOT),
    ("Go-http-client/1.1", MachineReason.BOT),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0", MachineReason.BOT),
]


@pytest.mark.parametrize("event_type", ["open", "click"])
@pytest.mark.parametrize("agent", HUMAN)
def test_people(event_type: str, agent: str) -> None:
    assert machine_reason(event_type, agent) is None


@pytest.mark.parametrize("event_type", ["open", "click"])
@pytest.mark.parametrize(("agent", "reason"), MACHINE)
def test_machines(event_type: str, agent: str | None, reason: str) -> None:
    assert machine_reason(event_type, agent) == reason


@pytest.mark.parametrize("event_type", ["sent", "bounce", "spam", "blocked", "unsub", None])
def test_other_events_are_not_classified(event_type: str | None) -> None:
    assert machine_reason(event_type, "Mozilla/5.0") is None
    assert machine_reason(event_type, None) is None


# By address: (event type, User-Agent, IP) as Mailjet reports them, and the reason.
IP_SAMPLES = [
    # Apple Mail Privacy Protection's relay fetching the pixel from Apple's network, even
    # with a full User-Agent.
    (
        "open",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15",
        "17.58.101.4",
        MachineReason.APPLE_MAIL_PRIVACY,
    ),
    ("open", None, "17.1.2.3", MachineReason.APPLE_MAIL_PRIVACY),
    # Microsoft Safe Links / Exchange Online Protection and Barracuda follow links with a
    # browser's User-Agent, from their published mail networks.
    (
        "click",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "40.107.22.93",
        MachineReason.SECURITY_SCANNER,
    ),
    (
        "open",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "52.101.66.7",
        MachineReason.SECURITY_SCANNER,
    ),
    (
        "click",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "104.47.1.10",
        MachineReason.SECURITY_SCANNER,
    ),
    ("click", "Mozilla/5.0 (Windows NT 10.0)", "209.222.82.251", MachineReason.SECURITY_SCANNER),
    (
        "click",
        "Mozilla/5.0 (Windows NT 10.0)",
        "::ffff:209.222.82.251",
        MachineReason.SECURITY_SCANNER,
    ),
]

IP_PEOPLE = [
    # A person on Apple's network clicking a link: the relay only fetches images.
    (
        "click",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "17.58.101.4",
    ),
    # Gmail's image proxy, from Google's network: the reader opened it.
    (
        "open",
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "66.249.84.1",
    ),
    # Outlook desktop at home, iPhone Mail on a mobile network, IPv6.
    (
        "open",
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
        "82.65.10.20",
    ),
    (
        "open",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148",
        "2a01:cb00:1:2::3",
    ),
    # Addresses next to the listed networks, and what is not an address at all.
    ("click", "Mozilla/5.0 (Windows NT 10.0)", "40.94.0.1"),
    ("click", "Mozilla/5.0 (Windows NT 10.0)", "209.222.88.1"),
    ("open", "Mozilla/5.0 (Windows NT 10.0)", "16.255.255.255"),
    ("open", "Mozilla/5.0 (Windows NT 10.0)", "not-an-ip"),
    ("open", "Mozilla/5.0 (Windows NT 10.0)", ""),
]


@pytest.mark.parametrize(("event_type", "agent", "ip", "reason"), IP_SAMPLES)
def test_machine_networks(event_type: str, agent: str | None, ip: str, reason: str) -> None:
    assert machine_reason(event_type, agent, ip) == reason


@pytest.mark.parametrize(("event_type", "agent", "ip"), IP_PEOPLE)
def test_people_by_address(event_type: str, agent: str, ip: str) -> None:
    assert machine_reason(event_type, agent, ip) is None


def test_user_agent_rules_still_apply_with_an_address() -> None:
    assert machine_reason("open", "Mozilla/5.0", "82.65.10.20") == MachineReason.APPLE_MAIL_PRIVACY
    assert machine_reason("click", "curl/8.5.0", "82.65.10.20") == MachineReason.BOT
    assert machine_reason("sent", None, "17.1.2.3") is None


def test_every_listed_network_names_a_reason_and_a_source() -> None:
    reasons = {MachineReason.APPLE_MAIL_PRIVACY, MachineReason.SECURITY_SCANNER}
    for entry in MACHINE_NETWORKS:
        assert entry.reason in reasons
        assert entry.source
        assert entry.types <= {"open", "click"}
