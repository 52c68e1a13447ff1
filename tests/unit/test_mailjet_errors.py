"""Classification of Mailjet's failed answers into the client's error hierarchy."""

from __future__ import annotations

import orjson
import pytest

from mailer.mailjet import (
    MailjetError,
    MailjetNotFound,
    MailjetRateLimited,
    MailjetRequestRejected,
    MailjetServerError,
    MailjetUnexpectedResponse,
    error_from_response,
)

HTML_429 = (
    b"<html><body><h1>429 Too Many Requests</h1>You have sent too many requests.</body></html>"
)
UNAUTHORIZED = {
    "ErrorIdentifier": "0a1b",
    "StatusCode": 401,
    "ErrorMessage": "API key authentication/authorization failure. You may be unauthorized to "
    "access the API or your API key may be expired. Visit API keys management section to check "
    "your keys.",
}


def flags(exc: MailjetError) -> tuple[bool, bool]:
    return exc.retryable, exc.outcome_unknown


def test_html_429_is_rate_limited_without_retry_after() -> None:
    exc = error_from_response(429, HTML_429, {})
    assert isinstance(exc, MailjetRateLimited)
    assert exc.retry_after is None and exc.status == 429
    assert flags(exc) == (True, False)
    assert "429 Too Many Requests" in exc.detail


def test_json_429_with_retry_after_seconds() -> None:
    body = orjson.dumps({"ErrorIdentifier": "x", "StatusCode": 429, "ErrorMessage": "Slow down"})
    exc = error_from_response(429, body, {"Retry-After": "12"})
    assert isinstance(exc, MailjetRateLimited)
    assert exc.retry_after == 12.0 and "Slow down" in exc.detail


@pytest.mark.parametrize(
    "body",
    [b"", b"<html><body>502 Bad Gateway</body></html>", b'{"ErrorMessage": "Internal"}'],
)
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_server_error_with_unknown_outcome(status: int, body: bytes) -> None:
    exc = error_from_response(status, body)
    assert isinstance(exc, MailjetServerError)
    assert exc.status == status
    assert flags(exc) == (True, True)


def test_send_0015_keeps_code_message_and_related() -> None:
    body = {
        "ErrorIdentifier": "u",
        "ErrorCode": "send-0015",
        "StatusCode": 400,
        "ErrorMessage": "Total number of recipients exceeded. Max allowed - 50.",
        "ErrorRelatedTo": ["To", "Bcc", "Cc"],
    }
    exc = error_from_response(400, orjson.dumps(body))
    assert isinstance(exc, MailjetRequestRejected)
    assert (exc.code, exc.related_to, exc.body) == ("send-0015", ["To", "Bcc", "Cc"], body)
    assert exc.message == "Total number of recipients exceeded. Max allowed - 50."
    assert flags(exc) == (False, False)


def test_401_without_error_code() -> None:
    exc = error_from_response(401, orjson.dumps(UNAUTHORIZED))
    assert isinstance(exc, MailjetRequestRejected) and not isinstance(exc, MailjetNotFound)
    assert exc.status == 401 and exc.code is None
    assert exc.message.startswith("API key authentication")
    assert not exc.retryable


def test_403_with_non_json_body() -> None:
    exc = error_from_response(403, b"Forbidden")
    assert isinstance(exc, MailjetRequestRejected)
    assert exc.body == "Forbidden" and exc.code is None


def test_rest_v3_errors_get_their_mj_code() -> None:
    body = {
        "ErrorInfo": "",
        "ErrorMessage": 'MJ18 A Eventcallbackurl resource with value "open" for EventType '
        "already exists.",
        "StatusCode": 400,
    }
    exc = error_from_response(400, orjson.dumps(body))
    assert isinstance(exc, MailjetRequestRejected) and exc.code == "MJ18"

    missing = {"ErrorInfo": "", "ErrorMessage": "Object not found", "StatusCode": 404}
    not_found = error_from_response(404, orjson.dumps(missing))
    assert isinstance(not_found, MailjetNotFound)
    assert not_found.code is None and not_found.message == "Object not found"


@pytest.mark.parametrize("status", [200, 201, 302])
def test_success_status_without_messages_is_unexpected(status: int) -> None:
    exc = error_from_response(status, b"<html>maintenance</html>")
    assert isinstance(exc, MailjetUnexpectedResponse)
    assert flags(exc) == (True, True)


def test_the_error_identifier_is_kept_for_mailjet_support() -> None:
    from mailer.mailjet.errors import error_from_response

    body = b'{"ErrorIdentifier":"4f5c6d7e-0000-4000-8000-000000000001","StatusCode":401}'
    assert error_from_response(401, body).identifier == "4f5c6d7e-0000-4000-8000-000000000001"
    assert error_from_response(500, body).identifier == "4f5c6d7e-0000-4000-8000-000000000001"
    assert error_from_response(500, b"<html>oops</html>").identifier is None
