"""Which addresses webhooks may go to (mailer.webhooks.targets), as pure logic."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer.config import ConfigError, load_settings
from mailer.webhooks.targets import TargetPolicy

PUBLIC_ONLY = TargetPolicy()

REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "fc00::1": "private",
    "169.254.1.1": "link-local",
    "fe80::1": "link-local",
    "169.254.169.254": "metadata",
    "fd00:ec2::254": "metadata",
    "100.64.0.1": "CGNAT",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "ff02::1": "multicast",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "240.0.0.1": "reserved",
    "255.255.255.255": "",
    "192.0.2.1": "",  # documentation (TEST-NET-1)
    "2001:db8::1": "",
    "::ffff:127.0.0.1": "loopback",  # IPv4-mapped
    "::ffff:169.254.169.254": "metadata",
    "::ffff:10.0.0.1": "private",
    "2002:7f00:1::": "loopback",  # 6to4 of 127.0.0.1
    "64:ff9b::a00:1": "private",  # NAT64 of 10.0.0.1
    "::127.0.0.1": "loopback",  # IPv4-compatible
}


@pytest.mark.parametrize(("address", "named"), sorted(REFUSED.items()))
def test_non_public_addresses_are_refused_naming_why(address: str, named: str) -> None:
    reason = PUBLIC_ONLY.refusal(address)
    assert reason is not None and named in reason, reason


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "1.1.1.1"])
def test_public_addresses_pass(address: str) -> None:
    assert PUBLIC_ONLY.refusal(address) is None


def test_an_allowed_network_opens_its_addresses_only() -> None:
    policy = TargetPolicy.allowing("127.0.0.0/8, 10.0.0.0/24")
    assert policy.refusal("127.0.0.1") is None
    assert policy.refusal("::ffff:127.0.0.1") is None
    assert policy.refusal("10.0.0.9") is None
    assert policy.refusal("10.0.1.9") is not None
    assert policy.refusal("::1") is not None
    assert policy.refusal("169.254.169.254") is not None


def test_the_metadata_address_needs_an_allowance_that_names_it() -> None:
    assert TargetPolicy.allowing("0.0.0.0/0").refusal("169.254.169.254") is not None
    assert TargetPolicy.allowing("0.0.0.0/0").refusal("169.254.1.1") is None
    assert TargetPolicy.allowing("169.254.169.254/32").refusal("169.254.169.254") is None
    assert TargetPolicy.allowing("169.254.0.0/16").refusal("169.254.169.254") is None


def test_literal_refusal_judges_ip_literals_and_leaves_names_to_the_resolver() -> None:
    assert PUBLIC_ONLY.literal_refusal("[::1]") is not None
    assert PUBLIC_ONLY.literal_refusal("127.0.0.1") is not None
    assert PUBLIC_ONLY.literal_refusal("hooks.example") is None


_NON_PUBLIC_V4 = st.sampled_from(
    [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "0.0.0.0/8",
    ]
).map(ipaddress.IPv4Network)


@given(network=_NON_PUBLIC_V4, offset=st.integers(min_value=0, max_value=2**32))
def test_every_ipv6_form_of_a_refused_ipv4_address_is_refused(
    network: ipaddress.IPv4Network, offset: int
) -> None:
    address = network[offset % network.num_addresses]
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80))
    nat64 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(address))
    assert PUBLIC_ONLY.refusal(address) is not None
    for form in (mapped, sixtofour, nat64):
        assert PUBLIC_ONLY.refusal(form) is not None, form


def test_a_bad_allowed_network_is_named_at_start() -> None:
    with pytest.raises(ConfigError, match=r"MAILER_WEBHOOK_ALLOWED_NETWORKS.*'10\.0\.0\.0/33'"):
        load_settings(webhook_allowed_networks="127.0.0.0/8, 10.0.0.0/33")
