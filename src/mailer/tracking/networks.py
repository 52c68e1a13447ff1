"""Networks whose opens and clicks are machines: a small vendored list, with its sources.

Each entry names the reason an open or click from it gets and where the range comes from.
Only ranges that a vendor publishes itself (or that are registered to it) are listed, and
only where a person reading mail cannot plausibly have an address in them. Kept small on
purpose: a stale or over-broad range turns people into machines, which is worse than
missing a machine. Review the entries when the sources change (the date says when they
were last checked).

What is deliberately *not* here (docs/tracking.md says why): the egress ranges of iCloud
Private Relay (Apple publishes them, ``https://mask-api.icloud.com/egress-ip-ranges.csv``,
but they are tens of thousands of ranges of partner CDNs, change often, and are shared with
people browsing through Private Relay), and the ranges of Mimecast, Proofpoint and other
gateways, which differ per region and customer deployment and could not be checked here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

__all__ = ["MACHINE_NETWORKS", "MachineNetwork", "network_of"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class MachineNetwork:
    """A range whose requests are a machine's, the reason they get, and its source."""

    network: IPNetwork
    reason: str
    """A ``MachineReason`` value (kept as text: this module sits below ``engagement``)."""
    types: frozenset[str]
    """The event types it classifies (``open``, ``click``)."""
    source: str


_OPEN = frozenset({"open"})
_BOTH = frozenset({"open", "click"})

# Checked 2026-12-03.
MACHINE_NETWORKS: Final[tuple[MachineNetwork, ...]] = (
    # Apple's own address block (registered to Apple Inc. at ARIN, AS714). Apple Mail
    # Privacy Protection fetches remote content through Apple's relays, the iCloud Private
    # Relay infrastructure (Word to the Wise, "Apple MPP reporting and geolocation",
    # 2021-09, from Mailchimp's image-load data). Apple does not document which egress
    # addresses the prefetch uses; an open fetched from Apple's own network is a relay, not
    # a reader. Opens only: a click from 17/8 is a browser on Apple's network, a person.
    MachineNetwork(
        ipaddress.ip_network("17.0.0.0/8"),
        "apple_mail_privacy",
        _OPEN,
        "ARIN: NET-17-0-0-0-1, Apple Inc.",
    ),
    # Microsoft Exchange Online Protection, the mail-flow networks of Microsoft 365
    # (Microsoft's "Microsoft 365 URLs and IP address ranges", Exchange Online, ID 10: four
    # IPv4 blocks, about 490,000 addresses; its IPv6 blocks could not be checked here and
    # are not listed). They hold Microsoft's mail servers, which scan links and images
    # (Defender for Office 365, Safe Links); nobody reads mail from them. Safe Links'
    # detonation may also use other Azure addresses, which are not listed.
    MachineNetwork(
        ipaddress.ip_network("40.92.0.0/15"),
        "security_scanner",
        _BOTH,
        "Microsoft 365 endpoints, Exchange Online ID 10",
    ),
    MachineNetwork(
        ipaddress.ip_network("40.107.0.0/16"),
        "security_scanner",
        _BOTH,
        "Microsoft 365 endpoints, Exchange Online ID 10",
    ),
    MachineNetwork(
        ipaddress.ip_network("52.100.0.0/14"),
        "security_scanner",
        _BOTH,
        "Microsoft 365 endpoints, Exchange Online ID 10",
    ),
    MachineNetwork(
        ipaddress.ip_network("104.47.0.0/17"),
        "security_scanner",
        _BOTH,
        "Microsoft 365 endpoints, Exchange Online ID 10",
    ),
    # Barracuda Email Security Service / Email Gateway Defense, US instance (Barracuda
    # Campus, "Barracuda Email Security Service IP Ranges" and "IP Analysis - Inbound",
    # which uses 209.222.80.0/21 as its example of a correctly written range).
    MachineNetwork(
        ipaddress.ip_network("209.222.80.0/21"),
        "security_scanner",
        _BOTH,
        "Barracuda Campus: Email Security Service IP ranges (US)",
    ),
)


def network_of(event_type: str | None, ip: str | None) -> MachineNetwork | None:
    """The listed network ``ip`` (as Mailjet reports it, v4 or v6) belongs to, for that
    event type; ``None`` when it is in none, or is not an address."""
    if not ip or event_type is None:
        return None
    return _network_of(event_type, ip)


@lru_cache(maxsize=4096)  # proxies and scanners come back from a few addresses, often
def _network_of(event_type: str, ip: str) -> MachineNetwork | None:
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for entry in MACHINE_NETWORKS:
        if event_type in entry.types and address in entry.network:
            return entry
    return None
