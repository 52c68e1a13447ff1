"""The one results table: each figure, its baseline from the same run, the ratio, the target.

Rows are collected while the scenarios run; at the end they are printed as one table and
written to `bench/results/` as JSON (everything, for tools) and Markdown (for docs).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


@dataclass
class Row:
    """One measured figure, with its baseline and target when it has them."""

    scenario: str
    measure: str
    value: float | str | None
    unit: str = ""
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """Value over baseline value, when both are numbers."""
        if isinstance(self.value, int | float) and self.baseline_value:
            return float(self.value) / self.baseline_value
        return None

    def as_json(self) -> dict[str, Any]:
        """The row as a JSON object (with the ratio)."""
        data = dataclasses.asdict(self)
        data["ratio"] = self.ratio
        return data


def _num(value: float | str | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def _met(met: bool | None) -> str:
    return {True: "yes", False: "**NO**", None: ""}[met]


@dataclass
class Report:
    """Everything one run produced."""

    command: str
    size: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    machine: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def add(self, row: Row) -> Row:
        """Keep a row (and print it at once, so a long run shows progress)."""
        self.rows.append(row)
        ratio = f" ({row.ratio:.2f}x {row.baseline})" if row.ratio is not None else ""
        print(f"  {row.scenario}: {row.measure} = {_num(row.value, row.unit)}{ratio}", flush=True)
        return row

    def check(self, name: str, ok: bool) -> None:
        """Record a correctness check (every email exactly once, every 202 committed...)."""
        self.checks[name] = ok
        print(f"  check {name}: {'ok' if ok else 'FAILED'}", flush=True)

    def note(self, text: str) -> None:
        """A note printed under the table (skips, caveats)."""
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def table(self) -> str:
        """The Markdown table of all rows."""
        header = ["scenario", "measure", "value", "baseline", "ratio", "target", "met"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            baseline = (
                f"{row.baseline}: {_num(row.baseline_value, row.unit)}" if row.baseline else ""
            )
            ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
            measure = row.measure + (f" ({row.note})" if row.note else "")
            cells = [
                row.scenario,
                measure,
                _num(row.value, row.unit),
                baseline,
                ratio,
                row.target,
                _met(row.met),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def markdown(self) -> str:
        """The whole report as Markdown: command, machine, table, checks, notes."""
        out = [
            f"Command: `{self.command}` (size {self.size}), "
            f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(self.started))}, "
            f"{time.time() - self.started:.0f} s",
            "",
            "Machine: " + ", ".join(f"{k} {v}" for k, v in self.machine.items()),
            "",
            self.table(),
            "",
        ]
        if self.checks:
            out.append(
                "Checks: "
                + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in self.checks.items())
            )
            out.append("")
        out += [f"- {n}" for n in self.notes]
        return "\n".join(out).rstrip() + "\n"

    def as_json(self) -> dict[str, Any]:
        """The whole report as JSON."""
        return {
            "command": self.command,
            "size": self.size,
            "started": self.started,
            "seconds": time.time() - self.started,
            "machine": self.machine,
            "rows": [r.as_json() for r in self.rows],
            "checks": self.checks,
            "notes": self.notes,
        }

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write `<stamp>-<size>.json` and `.md` (and `latest-<size>.*`) under `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.started))
        paths = []
        for suffix, data in (
            ("json", orjson.dumps(self.as_json(), option=orjson.OPT_INDENT_2)),
            ("md", self.markdown().encode()),
        ):
            path = directory / f"{stamp}-{self.size}.{suffix}"
            path.write_bytes(data)
            (directory / f"latest-{self.size}.{suffix}").write_bytes(data)
            paths.append(path)
        return paths[0], paths[1]


def machine_info(pg_version: str, load_generator: str) -> dict[str, str]:
    """What the run ran on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                break
    except OSError:
        pass
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "load generator": load_generator,
    }


def cpu_ticks() -> tuple[int, int] | None:
    """All CPU time and the part stolen by the hypervisor, in ticks since boot (Linux's
    /proc/stat); None where that is not available."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    if fields[0] != "cpu" or len(fields) < 9:
        return None
    ticks = [int(x) for x in fields[1:]]
    # guest time (fields 9, 10) is counted in user time already
    return sum(ticks[:8]), ticks[7]


def stolen_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of the machine's CPU time the hypervisor took between two `cpu_ticks`."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    return (after[1] - before[1]) / (after[0] - before[0])
