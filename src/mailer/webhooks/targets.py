"""Where webhooks may be delivered: public addresses only, unless the operator allows more.

A tenant chooses its endpoint's URL, so without a check the dispatcher would POST wherever
that URL points: to the loopback, the private network, or the cloud metadata address (SSRF).
An address is refused unless it is globally routable or inside one of
``MAILER_WEBHOOK_ALLOWED_NETWORKS``. The check runs twice: when an endpoint is created or
changed (on every address the name resolves to then), and at every delivery on the
addresses the connection will actually use (:class:`CheckedResolver`), because DNS may
change between the two.

IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible,
6to4, Teredo, NAT64) are judged by the IPv4 address they carry, the one they reach. The metadata
addresses are refused even inside an allowed network, unless that network is itself
link-local (or the address itself): allowing ``0.0.0.0/0`` does not open them by accident.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from mailer.config import Network, parse_networks

__all__ = [
    "CheckedResolver",
    "RefusedTarget",
    "TargetPolicy",
]

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT_S = 3.0
"""How long the check at creation waits for DNS."""

_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_LINK_LOCAL_V4 = ipaddress.IPv4Network("169.254.0.0/16")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedTarget(OSError):
    """A webhook URL points (or resolves) to an address deliveries may not go to."""

    def __init__(self, reason: str) -> None:
        # errno and strerror, so that aiohttp's connection error shows the reason.
        super().__init__(errno.EACCES, reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries, if it is one of those that do."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(address))
    return None


def _why_not_public(address: Address) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is."""
    checks: tuple[tuple[bool, str], ...] = (
        (address in _METADATA, "the cloud metadata address"),
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT, "shared (CGNAT)"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "not globally routable"),
    )
    for refused, why in checks:
        if refused:
            return why
    return None


@dataclass(frozen=True)
class TargetPolicy:
    """Which addresses webhooks may go to: public ones, and those in ``allowed``."""

    allowed: tuple[Network, ...] = ()

    @classmethod
    def allowing(cls, networks: str) -> TargetPolicy:
        """A policy that also allows ``networks`` (see :func:`parse_networks`)."""
        return cls(parse_networks(networks))

    def refusal(self, address: Address | str) -> str | None:
        """Why webhooks may not go to ``address`` (a reason naming it), or None if they may."""
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
            ip = ipaddress.IPv6Address(str(ip).split("%")[0])
        # An IPv6 form that carries an IPv4 address reaches that address: judge that one.
        judged: Address = ip
        if isinstance(ip, ipaddress.IPv6Address):
            judged = _embedded_ipv4(ip) or ip
        why = self._refusal_of(judged)
        if why is None:
            return None
        shown = f"{ip} ({judged})" if judged != ip else str(ip)
        return f"{shown} is {why}: webhooks go to public addresses only"

    def _refusal_of(self, address: Address) -> str | None:
        why = _why_not_public(address)
        if why is None:
            return None
        for network in self.allowed:
            if address.version != network.version or address not in network:
                continue
            if address not in _METADATA or _names_metadata(network):
                return None
        if address in _METADATA and why == "the cloud metadata address":
            return why + " (allow it explicitly, e.g. 169.254.169.254/32)"
        return why + " (see MAILER_WEBHOOK_ALLOWED_NETWORKS)"

    def check_addresses(self, addresses: Iterable[str]) -> None:
        """Raise :class:`RefusedTarget` if any of ``addresses`` is refused."""
        for address in addresses:
            why = self.refusal(address)
            if why is not None:
                raise RefusedTarget(why)

    def literal_refusal(self, host: str) -> str | None:
        """Why ``host``, when it is an IP literal, is refused; None for an allowed literal or
        a name (names are checked by :class:`CheckedResolver` as they resolve)."""
        literal = _literal(host)
        return None if literal is None else self.refusal(literal)

    async def check_host(self, host: str) -> None:
        """Check an endpoint's host: an IP literal as it is, a name on every address it
        resolves to now. A name that does not resolve now passes (DNS may be away, and every
        delivery checks again); raise :class:`RefusedTarget` for a refused address."""
        literal = _literal(host)
        if literal is not None:
            self.check_addresses([literal])
            return
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
            )
        except (OSError, TimeoutError, UnicodeError):
            return
        self.check_addresses(str(info[4][0]) for info in infos)


def _names_metadata(network: Network) -> bool:
    """Whether an allowance names the metadata range itself, not a wide range around it."""
    if isinstance(network, ipaddress.IPv4Network):
        return network.subnet_of(_LINK_LOCAL_V4)
    return network.prefixlen >= 64


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


class CheckedResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses the policy allows.

    aiohttp connects only to what its resolver returns, so the address checked is the address
    connected to. A name with no allowed address fails to connect, naming the reason. (An IP
    literal never reaches a resolver: the dispatcher checks those itself.)
    """

    def __init__(self, policy: TargetPolicy) -> None:
        self._policy = policy
        self._resolver = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host`` and drop refused addresses; raise if none is left."""
        results = await self._resolver.resolve(host, port, family)
        allowed = [r for r in results if self._policy.refusal(r["host"]) is None]
        if not allowed:
            reason = self._policy.refusal(results[0]["host"]) if results else "no address"
            raise RefusedTarget(f"{host} resolves to {reason}")
        return allowed

    async def close(self) -> None:
        """Release the wrapped resolver."""
        await self._resolver.close()
