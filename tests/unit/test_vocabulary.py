"""One vocabulary: event types from the statuses Mailjet's events imply, feed filters that
also take the old names."""

from __future__ import annotations

import pytest

from mailer.tracking.precedence import EventType, status_for_event
from mailer.tracking.vocabulary import FEED_TYPES, event_type_of, statuses_of_types
from mailer.webhooks.outbox import EVENT_TYPES


def test_every_event_type_is_email_something_and_a_webhook_type() -> None:
    assert all(t.startswith("email.") for t in FEED_TYPES)
    # Every Mailjet event's type is a webhook type (`email.canceled` is the jobs slice's).
    assert FEED_TYPES - {"email.canceled"} <= EVENT_TYPES
    assert {"email.failed", "email.suppressed", "email.delivery_delayed"} <= EVENT_TYPES
    assert event_type_of("opened", "open") == "email.opened"
    assert event_type_of("deferred", "bounce") == "email.delivery_delayed"  # soft
    assert event_type_of("bounced", "bounce") == "email.bounced"  # hard
    assert event_type_of(None, "typofix") == "mailjet.typofix"  # not understood
    assert event_type_of("canceled", "canceled") == "email.canceled"  # Mailer's own
    assert event_type_of(None, None) is None


def test_every_mailjet_event_has_a_feed_type() -> None:
    for kind in EventType:
        for hard in (True, False):
            status = status_for_event(kind, hard_bounce=hard)
            assert event_type_of(str(status), str(kind)) in FEED_TYPES


def test_feed_filters_take_new_and_old_names() -> None:
    assert statuses_of_types(["email.opened", "click"]) == ["clicked", "opened"]
    assert statuses_of_types(["bounce"]) == ["bounced", "deferred"]  # both kinds, as before
    assert statuses_of_types(["email.delivery_delayed"]) == ["deferred"]
    assert statuses_of_types(["canceled", "email.canceled"]) == ["canceled"]
    with pytest.raises(ValueError):
        statuses_of_types(["email.failed"])  # not a Mailjet event: webhooks only
