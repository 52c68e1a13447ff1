"""The do-it-yourself Django peer: django-post_office's queue, django-anymail's Mailjet backend.

    python -m bench.post_office_peer --dsn DSN --mailjet-url URL --emails N \
        --processes P --threads T --cap S

Runs in its own process (the harness starts it, once per setting of its sweep), on a fresh
database of the bench's PostgreSQL: migrates post_office's tables, queues N one-recipient
emails like the delivery scenario's (`mail.send_many`, not timed), then times
`mail.send_queued(processes=P)` batch after batch, as `send_queued_mail_until_done` does,
until the queue is empty or `cap` seconds have passed. Each email is one Send API call
(anymail sends a message per call), made by one of post_office's T threads per process; P
above 1 forks a `multiprocessing` pool per batch, whose children inherit the parent's
psycopg 3 connection (post_office closes it in each child first). Prints one JSON line:
`BENCH_JSON {"sent", "failed", "requeued", "seconds", "capped", "error", "batches",
"parent_connection_broken", "left"}`: an exception (such as a connection broken across the
fork) ends the drain and is reported in "error"; "parent_connection_broken" counts the
forked batches after which the parent's own connection no longer answered.
"""

from __future__ import annotations

import argparse
import os
import time
import traceback
from typing import Any

import orjson

CHUNK = 1000


def _setup(args: argparse.Namespace) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.post_office_site.settings",
            "BENCH_PO_DSN": args.dsn,
            "BENCH_PO_MAILJET_URL": args.mailjet_url.rstrip("/"),
            "BENCH_PO_MAILJET_KEY": args.mailjet_key,
            "BENCH_PO_MAILJET_SECRET": args.mailjet_secret,
            "BENCH_PO_THREADS": str(args.threads),
            "BENCH_PO_BATCH_SIZE": str(args.batch_size),
        }
    )
    import django

    django.setup()


def _enqueue(emails: int) -> None:
    """Queue `emails` one-recipient emails with the delivery scenario's contents."""
    from post_office import mail

    from bench.payloads import email_body

    for start in range(0, emails, CHUNK):
        batch = []
        for i in range(start, min(emails, start + CHUNK)):
            body = email_body(i)
            to = body["to"][0]
            batch.append(
                {
                    "sender": f"{body['from']['name']} <{body['from']['email']}>",
                    "recipients": [f"{to['name']} <{to['email']}>"],
                    "subject": body["subject"],
                    "message": body["text"],
                    "html_message": body["html"],
                }
            )
        mail.send_many(batch)


def drain(cap: float, processes: int) -> dict[str, Any]:
    """`send_queued` batch after batch until nothing is queued or `cap` has passed."""
    from django.db import connection
    from post_office import mail

    sent = failed = requeued = 0
    batches = broken = 0
    error = None
    capped = False
    began = time.perf_counter()
    try:
        while True:
            done, lost, again = mail.send_queued(processes=processes)
            sent, failed, requeued = sent + done, failed + lost, requeued + again
            batches += 1
            # Forked children inherit the parent's connection and close it: does the
            # parent's side survive that?
            if processes > 1 and connection.connection is not None and not connection.is_usable():
                broken += 1
            # As send_queued_mail_until_done does between batches ("to avoid
            # multiprocessing errors"): the next batch opens a new connection.
            connection.close()
            if not mail.get_queued().exists():
                break
            if time.perf_counter() - began >= cap:
                capped = True
                break
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
        traceback.print_exc()
    seconds = time.perf_counter() - began
    return {
        "sent": sent,
        "failed": failed,
        "requeued": requeued,
        "seconds": seconds,
        "capped": capped,
        "error": error,
        "batches": batches,
        "parent_connection_broken": broken,
    }


def main() -> None:
    """Migrate, queue, drain, print the result."""
    parser = argparse.ArgumentParser(prog="python -m bench.post_office_peer")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--mailjet-url", required=True)
    parser.add_argument("--mailjet-key", required=True)
    parser.add_argument("--mailjet-secret", required=True)
    parser.add_argument("--emails", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--cap", type=float, default=60.0)
    args = parser.parse_args()
    _setup(args)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    _enqueue(args.emails)
    connection.close()
    result = drain(args.cap, args.processes)
    from post_office.models import STATUS, Email

    result["left"] = Email.objects.filter(status__in=[STATUS.queued, STATUS.requeued]).count()
    print("BENCH_JSON " + orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
