"""An email as the Send API v3.1 message Mailjet is sent."""

from __future__ import annotations

import base64

from mailer.delivery.email import EmailRequest

PDF = base64.b64encode(b"%PDF-1.4").decode()
PNG = base64.b64encode(b"\x89PNG").decode()


def test_a_minimal_email_carries_only_what_was_given() -> None:
    email = EmailRequest.model_validate(
        {
            "from": {"email": "shop@example.org"},
            "to": [{"email": "ann@example.org", "name": "Ann"}],
            "subject": "Hi",
            "text": "Hello",
        }
    )
    assert email.to_mailjet() == {
        "From": {"Email": "shop@example.org"},
        "To": [{"Email": "ann@example.org", "Name": "Ann"}],
        "Subject": "Hi",
        "TextPart": "Hello",
    }


def test_every_field_has_its_mailjet_property() -> None:
    email = EmailRequest.model_validate(
        {
            "from": {"email": "shop@example.org", "name": "Shop"},
            "to": [{"email": "ann@example.org"}, {"email": "bob@example.org", "name": ""}],
            "cc": [{"email": "cat@example.org"}],
            "bcc": [{"email": "dan@example.org"}],
            "reply_to": {"email": "help@example.org", "name": "Help"},
            "subject": "Invoice",
            "text": "t",
            "html": "<p>h</p>",
            "template_id": 42,
            "template_language": True,
            "variables": {"total": 3},
            "headers": {"X-Order": "7"},
            "track_opens": "enabled",
            "track_clicks": "disabled",
            "attachments": [
                {"filename": "a.pdf", "content_type": "application/pdf", "content": PDF},
                {
                    "filename": "logo.png",
                    "content_type": "image/png",
                    "content": PNG,
                    "content_id": "logo",
                },
            ],
            "metadata": {"order": 7},
        }
    )
    assert email.to_mailjet() == {
        "From": {"Email": "shop@example.org", "Name": "Shop"},
        "To": [{"Email": "ann@example.org"}, {"Email": "bob@example.org"}],
        "Cc": [{"Email": "cat@example.org"}],
        "Bcc": [{"Email": "dan@example.org"}],
        "ReplyTo": {"Email": "help@example.org", "Name": "Help"},
        "Subject": "Invoice",
        "TextPart": "t",
        "HTMLPart": "<p>h</p>",
        "TemplateID": 42,
        "TrackOpens": "enabled",
        "TrackClicks": "disabled",
        "TemplateLanguage": True,
        "Variables": {"total": 3},
        "Headers": {"X-Order": "7"},
        "Attachments": [
            {"ContentType": "application/pdf", "Filename": "a.pdf", "Base64Content": PDF}
        ],
        "InlinedAttachments": [
            {
                "ContentType": "image/png",
                "Filename": "logo.png",
                "Base64Content": PNG,
                "ContentID": "logo",
            }
        ],
    }
