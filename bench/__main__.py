"""`python -m bench` (or `python3 dev.py bench`): Mailer's benchmarks, one table.

    python -m bench                      # --size full: every scenario, ~40 min on 2 cores
    python -m bench --size smoke         # seconds: checks the harness, not the figures
    python -m bench --size medium --only stack   # minutes: a first look, rough figures
    python -m bench --only delivery,latency
    python -m bench --long               # adds the soak
    python -m bench --only metrics       # the hot paths with MAILER_METRICS off and on
    python -m bench --only features      # the hot paths with tags and a daily quota

Starts everything itself on 127.0.0.1: a fresh database per scenario on the PostgreSQL of
MAILER_BENCH_DATABASE_URL (or DATABASE_URL, or postgresql://postgres@127.0.0.1:5432/test),
Mailer's API and worker processes, the Mailjet simulator and the baselines. Prints the
table and writes it under bench/results/ as JSON and Markdown. Exits non-zero when a
scenario failed to run or a correctness check failed (never for a missed target).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import (
    infra,
    scenarios_api,
    scenarios_dashboard,
    scenarios_features,
    scenarios_jobs,
    scenarios_metrics,
    scenarios_queue,
    scenarios_retention,
    scenarios_sizing,
    scenarios_stack,
    scenarios_stats,
)
from bench.load import pick_generator
from bench.report import Report, Row, cpu_ticks, machine_info, stolen_share
from bench.sizes import SIZES
from bench.stack import Bench

warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

Scenario = Callable[[Bench], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {
    "single": scenarios_api.single,
    "batch": scenarios_api.batch,
    "delivery": scenarios_queue.delivery,
    "events": scenarios_api.events,
    "latency": scenarios_api.latency,
    "stack": scenarios_stack.stack,
    "webhooks": scenarios_stack.webhooks,
    "backlog": scenarios_queue.backlog,
    "jobs": scenarios_jobs.jobs,
    "sizing": scenarios_sizing.sizing,
    "dashboard": scenarios_dashboard.dashboard,
    "erased": scenarios_queue.erased,
    "retention": scenarios_retention.retention,
    "stats": scenarios_stats.stats,
    "soak": scenarios_queue.soak,
    "metrics": scenarios_metrics.metrics,
    "features": scenarios_features.features,
}
# Run only when asked for: the soak (--long, or --only soak).
ON_REQUEST = ("soak",)
RESULTS = infra.ROOT / "bench" / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help=f"comma-separated scenarios to run (of {', '.join(SCENARIOS)}); repeatable",
    )
    parser.add_argument("--long", action="store_true", help="also run the soak")
    parser.add_argument(
        "--load", choices=["auto", "wrk", "python"], default="auto", help="load generator"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write results")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for `mailer worker` (e.g. MAILER_WORKER_CONCURRENCY=32)",
    )
    args = parser.parse_args(argv)
    only = [name for item in args.only for name in item.split(",") if name]
    unknown = [name for name in only if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    args.scenarios = only or [
        n for n in SCENARIOS if n not in ON_REQUEST or (n == "soak" and args.long)
    ]
    return args


async def run(args: argparse.Namespace, command: str) -> Report:
    """Run the chosen scenarios, each isolated: one failing does not stop the others."""
    size = SIZES[args.size]
    server = infra.server_dsn()
    load = pick_generator(args.load)
    report = Report(command=command, size=size.name)
    report.machine = machine_info(await infra.pg_version(server), load.name)
    worker_env = dict(item.split("=", 1) for item in args.worker_env)
    bench = Bench(size, server, load, report, args.results / "logs", worker_env)
    if load.name != "wrk":
        report.note("wrk not found: the Python load generator is used (apt-get install wrk)")
    for name in args.scenarios:
        print(f"== {name}", flush=True)
        ticks, began = cpu_ticks(), time.monotonic()
        try:
            await SCENARIOS[name](bench)
        except Exception as exc:
            traceback.print_exc()
            report.add(Row(name, "scenario failed", f"error: {type(exc).__name__}"))
            report.check(f"{name}: ran", False)
            report.note(f"{name}: {type(exc).__name__}: {exc}")
        # On a shared virtual machine the hypervisor may run other guests on "our" cores:
        # figures measured while much was stolen are not comparable with other runs.
        print(f"   ({name}: {time.monotonic() - began:.0f} s)", flush=True)
        stolen = stolen_share(ticks, cpu_ticks())
        if stolen is not None:
            report.note(f"{name}: CPU time stolen by the hypervisor: {stolen:.0%}")
    return report


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write the results; 1 if a scenario or a check failed."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    import uvloop

    report = uvloop.run(run(args, command.strip()))
    json_path, md_path = report.write(args.results)
    print()
    print(report.markdown())
    print(f"results: {json_path} and {md_path}")
    return 0 if all(report.checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
