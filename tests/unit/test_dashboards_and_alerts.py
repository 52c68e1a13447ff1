"""deploy/grafana/mailer.json and deploy/prometheus/alerts.yml name only metrics Mailer
exports: every PromQL expression in them parses, and every metric it selects is one of
the registry's (a counter as `_total`, a histogram as `_bucket`/`_sum`/`_count` ...)."""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

import mailer.metrics.families  # noqa: F401 - registers the process metrics
from mailer.ops.gauges import DatabaseGauges, Snapshot
from mailer.ops.rows import MetricGauges

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "mailer.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def exported_names() -> set[str]:
    """Every series name a Mailer /metrics can hold: the process metrics and the
    database-wide gauges (rendered from a reading with every field set)."""
    reading = types.SimpleNamespace(**dict.fromkeys(_gauge_fields(), 1))
    gauges = DatabaseGauges(cast(Any, None))
    gauges._snapshot = Snapshot(cast(MetricGauges, reading), [])
    names = set()
    for family in [*REGISTRY.collect(), *gauges.collect()]:
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def _gauge_fields() -> list[str]:
    return [n for n, v in vars(MetricGauges).items() if not n.startswith("_") and v is not None]


def selected_metrics(expr: str) -> set[str]:
    """The metric names an expression selects (Grafana's `$__rate_interval` as 5m)."""
    tree = promql_parser.parse(expr.replace("$__rate_interval", "5m"))
    return {
        node.name
        for node in _walk(tree)
        if isinstance(node, promql_parser.VectorSelector) and node.name is not None
    }


def _walk(node: Any) -> Iterator[Any]:
    yield node
    for child in ("lhs", "rhs", "expr", "param", "vector_selector"):
        value = getattr(node, child, None)
        if value is not None and not isinstance(value, (int, float, str)):
            yield from _walk(value)
    for arg in getattr(node, "args", None) or ():
        yield from _walk(arg)


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]
    return rules


@pytest.mark.parametrize("expr", dashboard_exprs())
def test_every_dashboard_query_names_exported_metrics(expr: str) -> None:
    named = selected_metrics(expr)
    assert named, expr
    assert named <= exported_names(), named - exported_names()


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: str(r["alert"]))
def test_every_alert_names_exported_metrics(rule: dict[str, Any]) -> None:
    named = selected_metrics(rule["expr"])
    assert named and named <= exported_names(), named - exported_names()
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_dashboard_and_alerts_cover_what_operators_watch() -> None:
    titles = {p["title"] for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] == "row"}
    assert titles == {"Queue", "Throughput", "Mailjet", "Events", "Webhooks", "HTTP", "Database"}
    assert {r["alert"] for r in alert_rules()} >= {
        "MailerNoLiveWorkers",
        "MailerQueueAgeHigh",
        "MailerMailjet5xx",
        "MailerMailjetRateLimited",
        "MailerMailjetCredentialsRefused",
        "MailerMailjetEventSilence",
        "MailerWebhookFailures",
        "MailerBounceRateHigh",
        "MailerComplaintRateHigh",
        "MailerApi5xx",
    }


def test_a_misspelt_metric_is_caught() -> None:
    assert selected_metrics('sum(rate(mailer_mailjet_call_total{outcome="5xx"}[5m]))') == {
        "mailer_mailjet_call_total"
    }
    assert "mailer_mailjet_call_total" not in exported_names()
    assert "mailer_mailjet_calls_total" in exported_names()
