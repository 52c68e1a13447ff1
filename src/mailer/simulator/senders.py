"""The simulator's sender addresses and domains (``/v3/REST/sender``, ``/v3/REST/dns``).

A real account has the senders and domains its owner validated. The simulator plays an
account where **every domain is validated** (an Active domain sender ``*@domain``, SPF and
DKIM ``OK``) unless the domain's first label scripts otherwise, as recipient addresses
script their events:

==========================  ============================================================
domain                      what Mailjet reports
==========================  ============================================================
``unverified.<anything>``   sender ``Inactive`` (validation pending), SPF/DKIM ``Not checked``
``nospf.<anything>``        sender Active, ``SPFStatus: Error``
``nodkim.<anything>``       sender Active, ``DKIMStatus: Error``
``unknown.<anything>``      no sender, and ``/v3/REST/dns/{domain}`` answers 404
==========================  ============================================================

A domain appears in the unfiltered list once it was used in a send's ``From`` or named in a
filter (``Domain=`` or ``Email=``), the way a real account lists what it holds; the record
shapes and statuses follow Mailjet's (``Sender.Status``: ``Inactive | Active | Deleted``;
``SPFStatus``/``DKIMStatus``: ``Not checked | OK | Error``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["DomainRecord", "SenderBook"]

_FIRST_SENDER_ID = 410001
_FIRST_DNS_ID = 820001


@dataclass(slots=True)
class DomainRecord:
    """One domain of the simulated account: its DNS check and its domain sender."""

    dns_id: int
    sender_id: int
    domain: str
    sender_status: str
    spf_status: str
    dkim_status: str
    created_at: str

    def sender_row(self) -> dict[str, Any]:
        """The ``/v3/REST/sender`` row of the domain sender ``*@domain``."""
        return {
            "CreatedAt": self.created_at,
            "DNSID": self.dns_id,
            "Email": f"*@{self.domain}",
            "EmailType": "transactional",
            "Filename": "",
            "ID": self.sender_id,
            "IsDefaultSender": False,
            "Name": "",
            "Status": self.sender_status,
        }

    def dns_row(self) -> dict[str, Any]:
        """The ``/v3/REST/dns`` row of the domain."""
        checked = self.spf_status != "Not checked"
        return {
            "DKIMRecordName": f"mailjet._domainkey.{self.domain}.",
            "DKIMRecordValue": "k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC",
            "DKIMStatus": self.dkim_status,
            "Domain": self.domain,
            "ID": self.dns_id,
            "IsCheckEnabled": checked,
            "LastCheckAt": self.created_at if checked else "",
            "OwnerShipToken": f"{self.dns_id:x}",
            "OwnerShipTokenRecordName": f"mailjet._{self.dns_id:x}.{self.domain}.",
            "SPFRecordValue": "v=spf1 include:spf.mailjet.com ~all",
            "SPFStatus": self.spf_status,
        }


class SenderBook:
    """The domains the simulated account holds, materialised as they are mentioned."""

    def __init__(self) -> None:
        self._domains: dict[str, DomainRecord] = {}

    def reset(self) -> None:
        """Forget every domain."""
        self._domains.clear()

    def lookup(self, domain: str) -> DomainRecord | None:
        """The record of ``domain`` (created on first mention), None for an ``unknown.``
        domain, which the account does not hold."""
        name = domain.strip().lower().rstrip(".")
        if not name or name.partition(".")[0] == "unknown":
            return None
        record = self._domains.get(name)
        if record is None:
            record = self._domains[name] = _scripted(name, len(self._domains))
        return record

    def note_sender(self, email: str) -> None:
        """A send used ``email`` as its From: its domain now shows in the lists."""
        if "@" in email:
            self.lookup(email.rpartition("@")[2])

    def all(self) -> list[DomainRecord]:
        """Every domain held, oldest first."""
        return list(self._domains.values())

    def by_id(self, dns_id: int) -> DomainRecord | None:
        """The domain with this DNS id."""
        return next((r for r in self._domains.values() if r.dns_id == dns_id), None)


def _scripted(domain: str, index: int) -> DomainRecord:
    label = domain.partition(".")[0]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return DomainRecord(
        dns_id=_FIRST_DNS_ID + index,
        sender_id=_FIRST_SENDER_ID + index,
        domain=domain,
        sender_status="Inactive" if label == "unverified" else "Active",
        spf_status={"unverified": "Not checked", "nospf": "Error"}.get(label, "OK"),
        dkim_status={"unverified": "Not checked", "nodkim": "Error"}.get(label, "OK"),
        created_at=now,
    )
