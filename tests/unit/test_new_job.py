"""Building a job from a validated email."""

from __future__ import annotations

import base64
import uuid

from mailer.delivery.email import EmailRequest
from mailer.delivery.enqueue import job_size, new_job


def test_a_job_weighs_its_bodies_and_attachments() -> None:
    content = base64.b64encode(b"x" * 3000).decode()
    email = EmailRequest.model_validate(
        {
            "from": {"email": "shop@example.org"},
            "to": [{"email": "Ann@Example.org"}],
            "subject": "Invoice",
            "text": "t" * 100,
            "html": "h" * 200,
            "attachments": [
                {"filename": "a.pdf", "content_type": "application/pdf", "content": content},
                {
                    "filename": "logo.png",
                    "content_type": "image/png",
                    "content": content,
                    "content_id": "logo",
                },
            ],
        }
    )
    job = new_job(uuid.uuid4(), email)
    assert job_size(job) == 100 + 200 + 2 * len(content)
    assert job.recipients == [("to", "ann@example.org")]
