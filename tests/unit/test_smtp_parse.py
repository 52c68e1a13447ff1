"""A submitted MIME message as a `POST /queue` body."""

from __future__ import annotations

import base64
from email.message import EmailMessage

import pytest

from mailer.delivery.email import EmailRequest
from mailer.smtp.parse import UnsupportedMessage, parse_message, queue_body


def message(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Shop <shop@example.org>"
    msg["To"] = "Ann <ann@example.org>, b@example.org"
    msg["Subject"] = "Héllo"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    return msg


def parsed(msg: EmailMessage, rcpts: list[str], mail_from: str = "env@shop.example") -> dict:  # type: ignore[type-arg]
    return queue_body(parse_message(msg.as_bytes()), mail_from, rcpts)


def test_text_html_inline_and_attachment_with_headers_and_envelope_bcc() -> None:
    msg = message(
        Cc="c@example.org",
        Reply_To="help@shop.example",
        X_Order="42",
        Message_ID="<1@shop.example>",
        User_Agent="smtplib",
        List_Unsubscribe="<mailto:u@x>",
    )
    msg.set_content("Thanks!")
    msg.add_alternative('<p>Thanks <img src="cid:logo@shop"></p>', subtype="html")
    html = msg.get_body(("html",))
    assert isinstance(html, EmailMessage)
    html.add_related(b"\x89PNG-bytes", maintype="image", subtype="png", cid="<logo@shop>")
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="invoice.pdf")
    body = parsed(msg, ["ann@example.org", "B@example.org", "c@example.org", "audit@shop.example"])
    assert body == {
        "from": {"email": "shop@example.org", "name": "Shop"},
        "to": [{"email": "ann@example.org", "name": "Ann"}, {"email": "b@example.org"}],
        "cc": [{"email": "c@example.org"}],
        "bcc": [{"email": "audit@shop.example"}],
        "reply_to": {"email": "help@shop.example"},
        "subject": "Héllo",
        "text": "Thanks!\n",
        "html": '<p>Thanks <img src="cid:logo@shop"></p>\n',
        "attachments": [
            {
                "filename": "logo@shop",
                "content_type": "image/png",
                "content": base64.b64encode(b"\x89PNG-bytes").decode(),
                "content_id": "logo@shop",
            },
            {
                "filename": "invoice.pdf",
                "content_type": "application/pdf",
                "content": base64.b64encode(b"%PDF-1.4").decode(),
            },
        ],
        "headers": {"X-Order": "42", "List-Unsubscribe": "<mailto:u@x>"},
    }
    EmailRequest.model_validate(body)  # and it is a valid email


def test_a_plain_message_without_from_uses_the_envelope_sender() -> None:
    msg = EmailMessage()
    msg["To"] = "ann@example.org"
    msg["Subject"] = "Hi"
    msg.set_content("Hello")
    body = parsed(msg, ["ann@example.org"], mail_from="app@shop.example")
    assert body["from"] == {"email": "app@shop.example"}
    assert body["text"] == "Hello\n" and "bcc" not in body and "headers" not in body


def test_a_text_attachment_is_not_taken_for_the_body() -> None:
    msg = message()
    msg.set_content("Body")
    msg.add_attachment("a,b\n1,2\n", subtype="csv", filename="data.csv")
    msg.add_attachment("notes", filename="notes.txt")
    body = parsed(msg, ["ann@example.org"])
    assert body["text"] == "Body\n"
    assert [a["filename"] for a in body["attachments"]] == ["data.csv", "notes.txt"]


def test_two_reply_to_addresses_are_refused() -> None:
    msg = message(Reply_To="a@x.org, b@x.org")
    msg.set_content("x")
    with pytest.raises(UnsupportedMessage, match="one Reply-To"):
        parsed(msg, ["ann@example.org"])


def test_x_mailer_tag_headers_become_tags_not_custom_headers() -> None:
    msg = message(X_Order="42")
    msg["X-Mailer-Tag"] = "receipt, v2:en"
    msg["X-Mailer-Tag"] = "welcome"
    msg.set_content("Thanks!")
    body = parsed(msg, ["ann@example.org"])
    assert body["tags"] == ["receipt", "v2:en", "welcome"]
    assert body["headers"] == {"X-Order": "42"}
    assert EmailRequest.model_validate(body).tags == ["receipt", "v2:en", "welcome"]
