"""The ready-made answers are byte for byte what `Json` renders."""

from __future__ import annotations

from mailer.api.responses import Json, Queued
from mailer.ids import uuid7


def test_queued_is_the_json_answer_of_a_new_email() -> None:
    for _ in range(100):
        job_id = str(uuid7())
        made, rendered = Queued(job_id), Json({"job_id": job_id, "status": "queued"}, 202)
        assert (made.status_code, made.body) == (rendered.status_code, rendered.body)
        assert made.raw_headers == rendered.raw_headers
        assert made.background is None and made.media_type == rendered.media_type
