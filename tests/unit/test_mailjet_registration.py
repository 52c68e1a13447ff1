"""The idempotent registration plan for Mailjet event callback URLs, and URL helpers."""

from __future__ import annotations

import pytest

from mailer.mailjet import EventCallback
from mailer.mailjet.registration import (
    ALL_EVENT_TYPES,
    Action,
    describe_callback,
    is_cleartext,
    local_events_url,
    mask_url,
    plan,
    summary,
    webhook_url,
)

URL = "https://hook:s3cret@mailer.example.org/events"


def record(
    id: int,
    event_type: str,
    url: str = URL,
    *,
    version: int = 2,
    status: str = "alive",
    is_backup: bool = False,
) -> EventCallback:
    return EventCallback(id, event_type, url, status, is_backup, version)


def kinds(actions: list[Action]) -> dict[str, str]:
    return {a.event_type: a.kind for a in actions}


def test_nothing_registered_creates_all_seven_grouped() -> None:
    actions = plan([], URL)
    assert [a.event_type for a in actions] == list(ALL_EVENT_TYPES)
    assert all(a.kind == "create" and a.version == 2 and a.url == URL for a in actions)
    assert all(a.callback_id is None for a in actions)


def test_all_right_keeps_everything() -> None:
    existing = [record(i, t) for i, t in enumerate(ALL_EVENT_TYPES, 1)]
    actions = plan(existing, URL)
    assert set(kinds(actions).values()) == {"keep"}
    assert [a.callback_id for a in actions] == list(range(1, 8))
    assert summary(actions, dry_run=False) == "0 created, 0 updated, 7 already right"


def test_some_registered_creates_only_the_missing() -> None:
    existing = [record(3, "sent"), record(9, "open")]
    actions = plan(existing, URL)
    assert kinds(actions) == {
        "sent": "keep",
        "open": "keep",
        "click": "create",
        "bounce": "create",
        "spam": "create",
        "blocked": "create",
        "unsub": "create",
    }
    assert summary(actions, dry_run=True) == (
        "dry run, nothing changed: 5 to create, 0 to update, 2 already right"
    )


def test_wrong_url_version_or_status_updates_just_those_fields() -> None:
    existing = [
        record(1, "sent", "https://old.example.org/hook"),
        record(2, "open", version=1),
        record(3, "click", status="dead"),
        record(4, "bounce", "https://hook:oldpass@mailer.example.org/events", version=1),
    ]
    by_type = {a.event_type: a for a in plan(existing, URL)}
    assert (by_type["sent"].kind, by_type["sent"].changes) == ("update", ("Url",))
    assert by_type["open"].changes == ("Version",) and by_type["open"].callback_id == 2
    assert by_type["click"].changes == ("Status",)
    assert by_type["bounce"].changes == ("Url", "Version")
    assert by_type["spam"].kind == "create"


def test_backups_and_unknown_types_are_left_alone() -> None:
    existing = [
        record(1, "sent", "https://backup.example.org/", is_backup=True),
        record(2, "typofix"),
    ]
    actions = plan(existing, URL)
    assert kinds(actions)["sent"] == "create" and len(actions) == 7


def test_twelve_records_beyond_the_default_page() -> None:
    # 7 primaries (2 of them wrong) and 5 backups: more than Mailjet's default Limit of 10.
    existing = [record(i, t) for i, t in enumerate(ALL_EVENT_TYPES, 1)]
    existing[5] = record(6, "blocked", "http://stale.example.org/events")
    existing[6] = record(7, "unsub", version=1)
    existing += [record(20 + i, t, is_backup=True) for i, t in enumerate(ALL_EVENT_TYPES[:5])]
    assert len(existing) == 12
    actions = plan(existing, URL)
    assert [(a.kind, a.callback_id) for a in actions] == [
        ("keep", 1),
        ("keep", 2),
        ("keep", 3),
        ("keep", 4),
        ("keep", 5),
        ("update", 6),
        ("update", 7),
    ]


def test_duplicate_primaries_use_the_oldest() -> None:
    actions = plan([record(8, "sent", "http://x.org/"), record(5, "sent")], URL)
    assert (actions[0].kind, actions[0].callback_id) == ("keep", 5)


def test_describe_masks_the_password() -> None:
    (create,) = plan([], URL, event_types=["open"])
    assert create.describe() == (
        "create open: https://hook:***@mailer.example.org/events (Version 2)"
    )
    update = plan([record(4, "open", version=1)], URL, event_types=["open"])[0]
    assert update.describe().startswith("update open #4 (Version): https://hook:***@")
    keep = plan([record(4, "open")], URL, event_types=["open"])[0]
    assert "s3cret" not in keep.describe() and keep.describe().startswith("keep")
    assert "s3cret" not in describe_callback(record(4, "open"))


def test_webhook_url_embeds_encoded_credentials() -> None:
    assert webhook_url("https://mailer.example.org/events", "hook", "p@ss:w/rd") == (
        "https://hook:p%40ss%3Aw%2Frd@mailer.example.org/events"
    )
    assert webhook_url("https://old:cred@h.example.org:8443", "u", "p") == (
        "https://u:p@h.example.org:8443/"
    )
    for bad in ("mailer.example.org/events", "ftp://h/x", "https:///events"):
        with pytest.raises(ValueError):
            webhook_url(bad, "u", "p")


def test_mask_url() -> None:
    assert mask_url(URL) == "https://hook:***@mailer.example.org/events"
    assert mask_url("https://mailer.example.org/events") == "https://mailer.example.org/events"
    assert mask_url("http://u:p%40x@127.0.0.1:9/e?q=1") == "http://u:***@127.0.0.1:9/e?q=1"


def test_local_events_url() -> None:
    assert local_events_url("0.0.0.0", 8000, "u", "p") == "http://u:p@127.0.0.1:8000/events"
    assert local_events_url("127.0.0.1", 81, "u", "p") == "http://u:p@127.0.0.1:81/events"
    assert local_events_url("::", 81, "u", "p") == "http://u:p@[::1]:81/events"
    assert local_events_url("::1", 81, "u", "p") == "http://u:p@[::1]:81/events"


def test_is_cleartext() -> None:
    assert is_cleartext("http://u:p@mailer.example.org/events")
    assert not is_cleartext("https://u:p@mailer.example.org/events")
    assert not is_cleartext("http://u:p@127.0.0.1:8000/events")
    assert not is_cleartext("http://u:p@localhost:8000/events")
