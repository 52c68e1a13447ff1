"""A bar chart as inline SVG, drawn on the server: no JavaScript, nothing to load.

Each time bucket gets one bar per series, side by side; the y axis starts at zero and
ends at a round number at or above the largest value, so bars of one chart compare.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Bar", "ChartLayout", "bar_chart", "bars", "nice_ceiling"]

# One colour per series, in order (the CSS legend uses the same classes).
SERIES_CLASSES = ("series-0", "series-1", "series-2", "series-3", "series-4")


@dataclass(frozen=True)
class ChartLayout:
    """The drawing's size and margins, in SVG user units."""

    width: float = 720
    height: float = 220
    left: float = 48
    right: float = 8
    top: float = 8
    bottom: float = 28

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom


@dataclass(frozen=True)
class Bar:
    """One drawn bar: where, how big, which series, and the value it stands for."""

    x: float
    y: float
    width: float
    height: float
    series: int
    value: int
    label: str


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2 or 5 times a power of ten that is at least `value` (1 for 0)."""
    if value <= 1:
        return 1
    power: int = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    raise AssertionError("unreachable")  # pragma: no cover


def bars(
    labels: Sequence[str], series: Mapping[str, Sequence[int]], layout: ChartLayout
) -> tuple[list[Bar], int]:
    """The bars of the chart and the top of its y axis; zero values draw no bar."""
    top = nice_ceiling(max((v for values in series.values() for v in values), default=0))
    slot = layout.plot_width / max(len(labels), 1)
    width = slot * 0.8 / max(len(series), 1)
    drawn: list[Bar] = []
    for index, (name, values) in enumerate(series.items()):
        for position, value in enumerate(values):
            if value <= 0:
                continue
            height = layout.plot_height * value / top
            drawn.append(
                Bar(
                    x=layout.left + position * slot + slot * 0.1 + index * width,
                    y=layout.top + layout.plot_height - height,
                    width=width,
                    height=height,
                    series=index,
                    value=value,
                    label=f"{labels[position]}: {value} {name}",
                )
            )
    return drawn, top


def _axes(labels: Sequence[str], top: int, layout: ChartLayout) -> list[str]:
    base = layout.top + layout.plot_height
    parts = [
        f'<line class="axis" x1="{layout.left}" y1="{base}" '
        f'x2="{layout.width - layout.right}" y2="{base}"/>',
        f'<text class="tick" x="{layout.left - 6}" y="{layout.top + 4}" '
        f'text-anchor="end">{top}</text>',
        f'<text class="tick" x="{layout.left - 6}" y="{base}" text-anchor="end">0</text>',
    ]
    slot = layout.plot_width / max(len(labels), 1)
    every = max(1, math.ceil(len(labels) / 8))  # at most 8 labels under the axis
    for position in range(0, len(labels), every):
        x = layout.left + position * slot + slot / 2
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{base + 18}" text-anchor="middle">'
            f"{escape(labels[position])}</text>"
        )
    return parts


def bar_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[int]],
    *,
    title: str,
    layout: ChartLayout | None = None,
    classes: Sequence[str] | None = None,
) -> Markup:
    """An `<svg>` of `series` (name → one value per label), safe to put in a page; each
    series' bars get its class from `classes` (by default `series-0`, `series-1` …)."""
    layout = layout or ChartLayout()
    classes = classes or SERIES_CLASSES
    drawn, top = bars(labels, series, layout)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {layout.width} {layout.height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        *_axes(labels, top, layout),
    ]
    for bar in drawn:
        parts.append(
            f'<rect class="bar {classes[bar.series % len(classes)]}" '
            f'x="{bar.x:.2f}" y="{bar.y:.2f}" width="{bar.width:.2f}" '
            f'height="{bar.height:.2f}"><title>{escape(bar.label)}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
