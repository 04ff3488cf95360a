"""Small stacked bar charts as inline SVG, drawn on the server: no chart library, no script, no CSP exception.

A chart is one bar per minute over the last hour, stacked by series (event kind, admission outcome); the
colours come from the stylesheet (``series-<name>`` classes), every bar carries a ``<title>`` a screen reader
and a hover can read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape

from markupsafe import Markup

__all__ = ["stacked_bars"]

WIDTH, HEIGHT, PAD = 720, 140, 24


def _label(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, tz=UTC).strftime("%H:%M")


def stacked_bars(
    series: Mapping[int, Mapping[str, int]],
    *,
    end_minute: int,
    minutes: int,
    order: Sequence[str],
    title: str,
) -> Markup:
    """``series``: minute → name → count. Bars for ``end_minute - minutes + 1 … end_minute``."""
    first = end_minute - minutes + 1
    totals = [sum(series.get(m, {}).values()) for m in range(first, end_minute + 1)]
    peak = max(totals) if totals and max(totals) > 0 else 1
    plot_h = HEIGHT - PAD - 8
    step = (WIDTH - PAD) / minutes
    bar_w = max(1.0, step - 2)
    names = list(order) + sorted({k for m in series.values() for k in m} - set(order))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH}" y2="{HEIGHT - PAD}"/>',
        f'<text class="tick" x="0" y="12">{peak}</text>',
        f'<text class="tick" x="0" y="{HEIGHT - PAD}">0</text>',
    ]
    for index, minute in enumerate(range(first, end_minute + 1)):
        x = PAD + index * step
        y: float = HEIGHT - PAD
        counts = series.get(minute, {})
        for name in names:
            n = counts.get(name, 0)
            if not n:
                continue
            h = n / peak * plot_h
            y -= h
            parts.append(
                f'<rect class="series-{escape(name.lower())}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}"><title>{_label(minute)} UTC — {escape(name)}: {n}</title></rect>'
            )
        if index % 10 == 0:
            parts.append(f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 6}">{_label(minute)}</text>')
    parts.append("</svg>")
    legend = "".join(
        f'<span class="legend"><span class="swatch series-{escape(n.lower())}"></span>{escape(n)}</span>'
        for n in names
        if any(series.get(m, {}).get(n) for m in range(first, end_minute + 1))
    )
    return Markup("".join(parts) + f'<div class="legends">{legend}</div>')  # noqa: S704 - built from escaped parts
