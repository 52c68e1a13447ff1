"""The metric objects of a Mailer process, and the bounded values of their labels.

Labels stay bounded: route templates (never raw paths), apps by id (as many as there are
apps), outcome and type names from the fixed sets below; never job ids or addresses.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# No `_created` series beside every counter and histogram: half the samples of a scrape,
# and nothing the dashboards or alerts read.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Mailjet's event types (mailer.mailjet.EVENT_TYPES); anything else is counted as "other".
EVENT_TYPES = frozenset({"sent", "open", "click", "bounce", "spam", "blocked", "unsub"})
OTHER = "other"

ENQUEUE_OUTCOMES = ("accepted", "replayed", "rejected")
MAILJET_CALL_OUTCOMES = (
    "success",  # every message accepted
    "partial",  # some messages accepted, some refused one by one
    "4xx",  # refused: the whole request, or every message of it
    "401_403",  # our credentials
    "429",
    "5xx",
    "timeout",
    "connection",  # no connection, or it broke mid-request
    "unexpected",  # an answer of a shape Mailjet never sends
)
LOOKUP_RESULTS = ("found", "not_found", "error")
EVENT_OUTCOMES = ("applied", "duplicate", "early", "unknown_message", "test")
WEBHOOK_OUTCOMES = ("delivered", "retrying", "failed")

# Latencies of an HTTP exchange (seconds), and of an email's or event's way through.
_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

EMAILS_ENQUEUED = Counter(
    "mailer_emails_enqueued",
    "Emails answered by POST /queue and /queue/batch, by app and outcome",
    ["app", "outcome"],
)
HTTP_REQUESTS = Counter(
    "mailer_http_requests",
    "HTTP requests answered by the API, by route template, method and status",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "mailer_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
MAILJET_CALLS = Counter(
    "mailer_mailjet_calls", "Send API calls, by what the answer meant", ["outcome"]
)
MAILJET_DURATION = Histogram(
    "mailer_mailjet_call_duration_seconds",
    "Duration of Mailjet calls, by operation (send, lookup)",
    ["operation"],
    buckets=_CALL_BUCKETS,
)
MAILJET_LOOKUPS = Counter(
    "mailer_mailjet_lookups",
    "Lookups by CustomID before a resend (outcome of an earlier attempt unknown), by result",
    ["result"],
)
RECIPIENTS_SENT = Counter(
    "mailer_recipients_sent",
    "Recipients Mailjet accepted or that failed for good, by app and result",
    ["app", "result"],
)
JOBS_FINISHED = Counter(
    "mailer_jobs_finished", "Jobs that left the queue, by final state", ["state"]
)
SEND_LATENCY = Histogram(
    "mailer_send_latency_seconds",
    "From an email's enqueue to Mailjet's accepting it",
    buckets=_LAG_BUCKETS,
)
MAILJET_EVENTS = Counter(
    "mailer_mailjet_events",
    "Mailjet tracking events received, by type, outcome and app (empty when not linked)",
    ["type", "outcome", "app"],
)
LAST_EVENT = Gauge(
    "mailer_mailjet_last_event_timestamp_seconds",
    "When the last Mailjet event of each type arrived (Unix time): the silence clock",
    ["type"],
    multiprocess_mode="max",
)
WEBHOOK_DELIVERIES = Counter(
    "mailer_webhook_deliveries",
    "Webhook delivery attempts, by outcome (retrying: failed, another attempt follows)",
    ["outcome"],
)
WEBHOOK_LAG = Histogram(
    "mailer_webhook_delivery_lag_seconds",
    "From a webhook event's creation to its successful delivery",
    buckets=_LAG_BUCKETS,
)
ENDPOINTS_DISABLED = Counter(
    "mailer_webhook_endpoints_disabled",
    "Webhook endpoints disabled, by reason (gone: 410; failing: days of failures)",
    ["reason"],
)
SUPPRESSIONS_ADDED = Counter(
    "mailer_suppressions_added", "Addresses added to a suppression list, by reason", ["reason"]
)
POOL_CONNECTIONS = Gauge(
    "mailer_db_pool_connections",
    "Connections of the process's asyncpg pool, by state (in_use, idle, max)",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
