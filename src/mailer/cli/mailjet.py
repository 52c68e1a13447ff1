"""Talking to Mailjet: `mailer mailjet register-webhook`, `webhooks`, `doctor`, `backfill`.

Without Mailjet keys or MAILJET_API_URL they talk to the built-in simulator of a running
`mailer run` (found through its state file beside the embedded database)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from mailer.cli.common import (
    T,
    main,
    print_json,
    run_async,
    settings_or_exit,
    started_or_exit,
    with_event_credentials,
)
from mailer.config import Settings


@main.group()
def mailjet() -> None:
    """Mailjet account setup: where Mailjet posts its tracking events."""


def _mailjet_call(settings: Settings, call: Callable[[Any], Awaitable[T]]) -> T:
    """Run `call(client)` against the configured Mailjet (or a `mailer simulator`)."""
    from mailer import runtime
    from mailer.mailjet import MailjetClient, MailjetError

    try:
        target = runtime.configured_mailjet(settings)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None

    async def go() -> T:
        async with MailjetClient(target.url, target.api_key, target.secret_key) as client:
            return await call(client)

    try:
        return run_async(go())
    except MailjetError as exc:
        raise click.ClickException(f"Mailjet ({target.url}): {exc}") from None


@mailjet.command("register-webhook")
@click.argument("public_url")
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
def mailjet_register_webhook(public_url: str, dry_run: bool) -> None:
    """Register PUBLIC_URL, Mailer's /events as Mailjet reaches it, for all seven event types.

    MAILER_EVENTS_USER/MAILER_EVENTS_PASSWORD are embedded in the URL (Mailjet's only way
    to authenticate its callbacks); events are grouped (Version 2). Idempotent: missing
    records are created, wrong ones updated, right ones left alone.
    """
    from mailer.mailjet import registration

    settings = settings_or_exit()
    if settings.events_user is None or settings.events_password is None:
        raise click.ClickException(
            "set MAILER_EVENTS_USER and MAILER_EVENTS_PASSWORD (the API must use the same) "
            "before registering: Mailjet sends them with every event"
        )
    settings = with_event_credentials(settings)  # validates them
    assert settings.events_user is not None and settings.events_password is not None
    try:
        url = registration.webhook_url(
            public_url, settings.events_user, settings.events_password.get_secret_value()
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="PUBLIC_URL") from None
    if registration.is_cleartext(url):
        click.echo("warning: plain http: the credentials will cross the network in clear", err=True)
    actions = _mailjet_call(
        settings, lambda client: registration.register(client, url, dry_run=dry_run)
    )
    for action in actions:
        click.echo(("(dry run) " if dry_run else "") + action.describe())
    click.echo(registration.summary(actions, dry_run=dry_run))


@mailjet.command("webhooks")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def mailjet_webhooks(as_json: bool) -> None:
    """List the event callback URLs registered with Mailjet (passwords masked)."""
    from mailer.mailjet.registration import describe_callback, mask_url

    records = _mailjet_call(settings_or_exit(), lambda client: client.list_event_callbacks())
    records.sort(key=lambda r: (r.event_type, r.is_backup, r.id))
    if as_json:
        print_json(
            [
                {
                    "id": r.id,
                    "event_type": r.event_type,
                    "url": mask_url(r.url),
                    "status": r.status,
                    "is_backup": r.is_backup,
                    "version": r.version,
                }
                for r in records
            ]
        )
        return
    for record in records:
        click.echo(describe_callback(record))
    if not records:
        click.echo("no event callback URLs registered")


def _ours(settings: Settings, public_url: str | None) -> Any:
    """What our callback URL is (`runtime.our_callback`), PUBLIC_URL checked."""
    from mailer import runtime

    try:
        return runtime.our_callback(settings, public_url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="PUBLIC_URL") from None


@mailjet.command("doctor")
@click.argument("public_url", required=False)
def mailjet_doctor(public_url: str | None) -> None:
    """Check the Mailjet account for tracking: the key, the seven event callbacks (to
    PUBLIC_URL, Mailer's /events, with our credentials, Version 2), the sender domains the
    apps use (SPF, DKIM) and whether `sent` events arrive. One line per finding; exit
    status 1 when there is a problem.

    Without PUBLIC_URL a callback counts as ours when it carries MAILER_EVENTS_USER and
    MAILER_EVENTS_PASSWORD; in the demo, the URL `mailer run` registered is used.
    """
    from mailer import runtime
    from mailer.db.pool import connect
    from mailer.tracking.doctor import diagnose

    settings = settings_or_exit()
    ours = _ours(settings, public_url)

    async def check(client: Any) -> list[Any]:
        with runtime.database(settings) as dsn:
            await runtime.check_database(dsn)
            conn = await connect(dsn)
            try:
                return await diagnose(
                    client, conn, ours, silence_after=settings.event_silence_after
                )
            finally:
                await conn.close()

    findings = started_or_exit(_mailjet_call, settings, check)
    for finding in findings:
        click.echo(finding.line())
    problems = sum(f.level == "problem" for f in findings)
    click.echo(f"{problems} problem(s)" if problems else "no problems found")
    if problems:
        raise SystemExit(1)


def _moment(value: str) -> datetime:
    """An ISO 8601 date-time (UTC unless it says otherwise), or an age: 90m, 6h, 3d."""
    units = {"m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: give an ISO 8601 date-time (2026-12-01T08:00Z) or an age (90m, 6h, 3d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@mailjet.command("backfill")
@click.option("--since", "since_text", help="Start: ISO date-time or age (6h).")
@click.option("--resume", is_flag=True, help="Go on with the latest unfinished backfill.")
@click.option("--until", "until_text", help="End (default now; a resumed run keeps its own).")
@click.option("--max-calls", type=click.IntRange(1), default=5000, show_default=True,
              help="Most Mailjet calls this run makes; run again to go on.")  # fmt: skip
@click.option("--page-size", type=click.IntRange(1, 1000), default=1000, show_default=True)
@click.option("--restart", is_flag=True, help="Start the window afresh, not at its checkpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def mailjet_backfill(
    since_text: str | None,
    resume: bool,
    until_text: str | None,
    max_calls: int,
    page_size: int,
    restart: bool,
    as_json: bool,
) -> None:
    """Ask Mailjet for the messages it sent since --since and apply the events Mailer
    missed (lost or never-registered callbacks), through the same intake as callbacks.

    Idempotent (with callbacks that arrive later too), bounded by --max-calls, resumable:
    --resume (or the same --since) continues an unfinished run from its checkpoint.
    """
    from mailer import runtime
    from mailer.db.pool import create_pool
    from mailer.tracking.backfill import backfill

    settings = settings_or_exit()
    if (since_text is None) == (not resume):
        raise click.UsageError("give --since (a new window, or one to go on with) or --resume")
    since = _moment(since_text) if since_text else None
    until = _moment(until_text) if until_text else None

    async def go(client: Any) -> Any:
        with runtime.database(settings) as dsn:
            await runtime.check_database(dsn)
            pool = await create_pool(dsn, min_size=1, max_size=2)
            try:
                with click.progressbar(length=0, label="backfill", file=sys.stderr) as bar:

                    def progress(done: int, total: int) -> None:
                        bar.length = total
                        bar.update(done - bar.pos)

                    return await backfill(
                        pool, client, since, until=until, max_calls=max_calls,
                        page_size=page_size, restart=restart, on_progress=progress,
                    )  # fmt: skip
            finally:
                await pool.close()

    from mailer.tracking.backfill import NothingToResume

    try:
        report = started_or_exit(_mailjet_call, settings, go)
    except NothingToResume as exc:
        raise click.ClickException(f"{exc}: start one with --since") from None
    _print_backfill(report, max_calls, as_json=as_json)


def _print_backfill(report: Any, max_calls: int, *, as_json: bool) -> None:
    if as_json:
        print_json(dataclasses.asdict(report))
        return
    click.echo(
        f"{'resumed' if report.resumed else 'started'} backfill #{report.run_id} "
        f"({report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC): "
        f"{report.messages_seen} messages seen of {report.total}, {report.histories_fetched} "
        f"histories fetched, {report.events_stored} events stored, {report.calls} Mailjet calls"
    )
    if not report.finished:
        click.echo(
            f"stopped at --max-calls {max_calls} (offset {report.offset} of {report.total}): "
            "`mailer mailjet backfill --resume` goes on"
        )
