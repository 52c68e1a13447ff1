"""The address check's shortcut gives email-validator's verdict, only faster."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailer.delivery import email as email_module
from mailer.delivery.email import _normalized_address


def library(value: str) -> str | None:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def ours(value: str) -> str | None:
    result = _normalized_address(value)
    return None if isinstance(result, EmailNotValidError) else result


local_chars = st.sampled_from(list("abcXYZ019.!#$%&'*+/=?^_`{|}~-\\\" @é"))
domain_chars = st.sampled_from(list("abcXYZ019.-_ é@"))


@settings(max_examples=600)
@given(
    st.text(local_chars, min_size=0, max_size=70),
    st.text(domain_chars, min_size=0, max_size=30),
)
@example("ann@example.org", "")
@example("Ann.Lee+tag@EXAMPLE.org", "")
@example("a..b@example.org", "")
@example(".a@example.org", "")
@example("a@localhost", "")
@example("a@example", "")
@example("a@-example.org", "")
@example("a@exa_mple.org", "")
@example("a@123.org", "")
@example("x" * 65 + "@example.org", "")
@example("a@" + "b" * 250 + ".org", "")
def test_same_verdict_as_email_validator(local: str, domain: str) -> None:
    value = f"{local}@{domain}" if domain else local
    assert ours(value) == library(value)


def test_a_valid_address_seen_lately_is_not_checked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked: list[str] = []

    def counting(value: str) -> str | EmailNotValidError:
        checked.append(value)
        return _normalized_address(value)

    monkeypatch.setattr(email_module, "_normalized_address", counting)
    monkeypatch.setattr(email_module, "_recent_addresses", {})
    for _ in range(2):
        assert email_module._check_address("Ann@Example.ORG") == "Ann@example.org"
    assert checked == ["Ann@Example.ORG"]
    for _ in range(2):  # an invalid one is never remembered: refused every time
        with pytest.raises(ValueError, match="not a valid email address"):
            email_module._check_address("ann@@example.org")
    assert checked == ["Ann@Example.ORG", "ann@@example.org", "ann@@example.org"]


def test_the_recent_addresses_are_forgotten_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    recent: dict[str, str] = {}
    monkeypatch.setattr(email_module, "_recent_addresses", recent)
    monkeypatch.setattr(email_module, "_MAX_RECENT", 3)
    for i in range(4):
        email_module._check_address(f"user{i}@example.org")
    assert recent == {"user3@example.org": "user3@example.org"}
