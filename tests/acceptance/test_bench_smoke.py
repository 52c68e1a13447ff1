"""The benchmark harness at its smoke size: it runs end to end and every email is delivered
exactly once. Figures are never asserted here: timing belongs to `python -m bench`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_smoke_runs_and_delivers_every_email_once(server_dsn: str, tmp_path: Path) -> None:
    env = {**os.environ, "MAILER_BENCH_DATABASE_URL": server_dsn, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--size", "smoke", "--results", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        # A bound, not a speed check: the smoke run takes ~3 min on 2 loaded cores.
        timeout=600,
        check=False,
    )
    output = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, output

    report = orjson.loads((tmp_path / "latest-smoke.json").read_bytes())
    scenarios = {row["scenario"] for row in report["rows"]}
    expected = {"single", "batch", "delivery", "events", "latency", "stack", "webhooks"}
    assert expected | {"backlog", "stats", "metrics", "features"} <= scenarios, output
    assert not [r for r in report["rows"] if r["measure"] == "scenario failed"], output
    if Path("/proc/self/stat").exists():  # sizing reads CPU times there
        sizing = [r for r in report["rows"] if r["scenario"] == "sizing"]
        assert len(sizing) == 6 and all(r["value"] > 0 for r in sizing), output
    checks = report["checks"]
    # Counted by the simulator: each queued email's CustomID was accepted once, none twice.
    assert checks["delivery: every email sent exactly once"] is True
    assert checks["delivery: every send recorded"] is True
    assert checks["latency: every email reached the simulator"] is True
    assert checks["single: every 202 committed"] is True
    assert checks["batch: every accepted email committed"] is True
    assert checks["stats: 30 days by the hour agrees with the events table"] is True
    assert checks["stack: every 202 committed"] is True
    assert checks["stack: every email sent exactly once"] is True
    # Counted by the receiver: each fanned-out delivery's webhook-id arrived once.
    assert checks["webhooks: every delivery received once and recorded"] is True
    assert all(checks.values()), checks
    # The table went to stdout and the Markdown file beside the JSON.
    assert "| scenario | measure | value | baseline | ratio | target | met |" in proc.stdout
    assert (tmp_path / "latest-smoke.md").read_text().count("\n|") >= len(report["rows"])
    # Each scenario says how much of the machine the hypervisor took meanwhile.
    if Path("/proc/stat").exists():
        stolen = [n for n in report["notes"] if "stolen by the hypervisor" in n]
        assert len(stolen) == len(scenarios), report["notes"]
