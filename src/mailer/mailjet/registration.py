"""Registering Mailer's ``/events`` endpoint with Mailjet's Event API, idempotently.

Mailjet keeps one callback URL record per event type (plus an optional backup), so
receiving all seven types takes seven records sharing our URL. Registration therefore
reads what exists (every page: Mailjet's default page of 10 records would hide some),
computes a plan with the pure :func:`plan`, and :func:`apply` carries it out:

- a type with no primary record: ``create`` (POST, ``Version 2`` = grouped, ``alive``);
- a primary record whose ``Url``, ``Version`` or ``Status`` differs: ``update`` (a partial
  PUT of just those fields; a new Url also revives a suspended record);
- a primary record already right: ``keep`` (nothing is sent).

Running it twice changes nothing the second time. Backup records are left alone.
Credentials travel in the URL (``https://user:pass@host/events``): Mailjet sends no
signature, and basic auth from the URL is what it offers; :func:`mask_url` hides the
password wherever a URL is shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from mailer.mailjet.client import MailjetClient
from mailer.mailjet.models import EventCallback

__all__ = [
    "ALL_EVENT_TYPES",
    "GROUPED_VERSION",
    "Action",
    "apply",
    "describe_callback",
    "is_cleartext",
    "local_events_url",
    "mask_url",
    "plan",
    "register",
    "summary",
    "webhook_url",
]

ALL_EVENT_TYPES = ("sent", "open", "click", "bounce", "spam", "blocked", "unsub")
GROUPED_VERSION = 2
ActionKind = Literal["create", "update", "keep"]


@dataclass(frozen=True, slots=True)
class Action:
    """What registration does for one event type.

    ``callback_id`` is the existing primary record (``None`` for ``create``); ``changes``
    names the fields an ``update`` sends (``"Url"``, ``"Version"``, ``"Status"``).
    """

    kind: ActionKind
    event_type: str
    url: str
    version: int = GROUPED_VERSION
    callback_id: int | None = None
    changes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One human line, password masked, e.g. ``update open #4 (Url, Version): ...``."""
        target = f"{mask_url(self.url)} (Version {self.version})"
        if self.kind == "create":
            return f"create {self.event_type}: {target}"
        changed = ", ".join(self.changes)
        if self.kind == "update":
            return f"update {self.event_type} #{self.callback_id} ({changed}): {target}"
        return f"keep   {self.event_type} #{self.callback_id}: already {target}"


def webhook_url(public_url: str, user: str, password: str) -> str:
    """``public_url`` with ``user:password@`` embedded (percent-encoded; old ones replaced).

    ``ValueError`` unless it is an absolute http(s) URL with a host.
    """
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {public_url!r}")
    host = parts.netloc.rpartition("@")[2]
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return urlunsplit((parts.scheme, f"{credentials}@{host}", parts.path or "/", parts.query, ""))


def local_events_url(host: str, port: int, user: str, password: str) -> str:
    """The loopback URL of ``/events`` on an API listening on ``host:port``, with credentials.

    A wildcard or ``localhost`` listen address becomes ``127.0.0.1`` (``::`` becomes ``::1``);
    the in-process simulator posts to loopback only.
    """
    loopback = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "localhost": "127.0.0.1", "::": "::1"}
    address = loopback.get(host, host)
    netloc = f"[{address}]" if ":" in address else address
    return webhook_url(f"http://{netloc}:{port}/events", user, password)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for display and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def _primaries(existing: Iterable[EventCallback]) -> dict[str, EventCallback]:
    found: dict[str, EventCallback] = {}
    for record in sorted(existing, key=lambda r: r.id):
        if not record.is_backup:
            found.setdefault(record.event_type, record)  # the oldest if Mailjet kept several
    return found


def plan(
    existing: Iterable[EventCallback],
    url: str,
    *,
    event_types: Sequence[str] = ALL_EVENT_TYPES,
    version: int = GROUPED_VERSION,
) -> list[Action]:
    """The actions that make ``url`` the alive primary callback of every event type.

    Pure: ``existing`` is every record Mailjet holds (all pages). One action per type, in
    ``event_types`` order.
    """
    primaries = _primaries(existing)
    actions: list[Action] = []
    for event_type in event_types:
        record = primaries.get(event_type)
        if record is None:
            actions.append(Action("create", event_type, url, version))
            continue
        changes = tuple(
            name
            for name, differs in (
                ("Url", record.url != url),
                ("Version", record.version != version),
                ("Status", record.status != "alive"),
            )
            if differs
        )
        kind: ActionKind = "update" if changes else "keep"
        actions.append(Action(kind, event_type, url, version, record.id, changes))
    return actions


async def apply(client: MailjetClient, actions: Iterable[Action]) -> list[EventCallback]:
    """Carry out ``create`` and ``update`` actions (``keep`` sends nothing); return the
    resulting records. Stops at the first :class:`~mailer.mailjet.errors.MailjetError`;
    running the whole registration again then finishes the job."""
    results: list[EventCallback] = []
    for action in actions:
        if action.kind == "create":
            created = await client.create_event_callback(
                action.event_type, action.url, version=action.version
            )
            results.append(created)
        elif action.kind == "update":
            assert action.callback_id is not None
            updated = await client.update_event_callback(
                action.callback_id,
                url=action.url if "Url" in action.changes else None,
                version=action.version if "Version" in action.changes else None,
                status="alive" if "Status" in action.changes else None,
            )
            results.append(updated)
    return results


async def register(client: MailjetClient, url: str, *, dry_run: bool = False) -> list[Action]:
    """List what is registered, plan, and (unless ``dry_run``) apply; return the plan."""
    actions = plan(await client.list_event_callbacks(), url)
    if not dry_run:
        await apply(client, actions)
    return actions


def summary(actions: Sequence[Action], *, dry_run: bool) -> str:
    """A closing line such as ``2 created, 1 updated, 4 already right``."""
    counts = {kind: sum(a.kind == kind for a in actions) for kind in ("create", "update", "keep")}
    if dry_run:
        return (
            f"dry run, nothing changed: {counts['create']} to create, "
            f"{counts['update']} to update, {counts['keep']} already right"
        )
    return f"{counts['create']} created, {counts['update']} updated, {counts['keep']} already right"


def describe_callback(record: EventCallback) -> str:
    """One line for a registered record, password masked."""
    role = "backup " if record.is_backup else "primary"
    return (
        f"#{record.id:<5} {record.event_type:<8} {role} {record.status:<6} "
        f"v{record.version}  {mask_url(record.url)}"
    )


def is_cleartext(url: str) -> bool:
    """True for an ``http://`` URL to a host other than loopback: credentials go in clear."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return (
        parts.scheme == "http" and host not in ("localhost", "::1") and not host.startswith("127.")
    )
