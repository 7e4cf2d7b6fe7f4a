"""Small server-side SVG charts for the dashboard.

Written here rather than pulled from a charting library: two chart shapes (stacked columns over
time, horizontal bars) are a few dozen lines, render with no JavaScript, and need nothing fetched
at run time.
"""
from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

COLORS = {"complete": "#2e7d32", "failed": "#c62828", "bar": "#1565c0", "grid": "#e0e0e0", "text": "#424242"}


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= step:
            return step
    return value


def stacked_columns(buckets: list[tuple[str, int, int]], *, title: str, label_every: int = 15,
                    width: int = 420, height: int = 150) -> SafeString:
    """Columns of (label, complete, failed) per time bucket, failed stacked on complete, with a y axis."""
    left, bottom, top = 36, 22, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = _nice_max(max((c + f for _, c, f in buckets), default=0))
    slot = plot_w / max(len(buckets), 1)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
             f"<title>{escape(title)}</title>"]
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="{COLORS["grid"]}"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="{COLORS["text"]}">{peak * fraction:g}</text>')
    for index, (label, complete, failed) in enumerate(buckets):
        x = left + index * slot + slot * 0.1
        bar_w = max(slot * 0.8, 1)
        y = top + plot_h
        for value, color, name in ((complete, COLORS["complete"], "complete"), (failed, COLORS["failed"], "failed")):
            if value:
                h = plot_h * value / peak
                y -= h
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{color}">'
                             f"<title>{escape(label)}: {value} {name}</title></rect>")
        last = index == len(buckets) - 1
        if index % label_every == 0 or last:
            anchor = "end" if last else "start" if index == 0 else "middle"
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" text-anchor="{anchor}" font-size="11" '
                         f'fill="{COLORS["text"]}">{escape(label)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def horizontal_bars(items: list[tuple[str, float, str]], *, title: str, unit: str = "",
                    width: int = 420, row: int = 22) -> SafeString:
    """One bar per (label, value, display text); an empty list draws a 'none' note."""
    if not items:
        return mark_safe('<p class="muted">None.</p>')
    label_w, pad = 170, 8
    height = row * len(items) + pad
    peak = max((value for _, value, _ in items), default=0) or 1
    bar_space = width - label_w - 70
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
             f"<title>{escape(title)}</title>"]
    for index, (label, value, text) in enumerate(items):
        y = pad / 2 + index * row
        w = bar_space * value / peak if value else 0
        parts.append(f'<text x="{label_w - 6}" y="{y + row * 0.65:.1f}" text-anchor="end" font-size="12" '
                     f'fill="{COLORS["text"]}">{escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 3:.1f}" width="{max(w, 1 if value else 0):.1f}" '
                     f'height="{row - 8}" fill="{COLORS["bar"]}"/>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + row * 0.65:.1f}" font-size="12" '
                     f'fill="{COLORS["text"]}">{escape(text)}{escape(unit)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))
