"""The address check's shortcut gives email-validator's verdict, only faster."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

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
