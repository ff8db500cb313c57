"""Charts as inline SVG, drawn on the server: no script, no fonts or files fetched, readable without colour
(every bar carries its number in a ``<title>`` and the table beside it has the figures)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

#: One colour per category (colour-blind-safe palette by Okabe & Ito).
COLOURS: Mapping[str, str] = {
    "licensed": "#009E73",
    "grace": "#E69F00",
    "unlicensed": "#D55E00",
    "failing": "#CC79A7",
    "unreachable": "#56B4E9",
    "unknown": "#999999",
}


def _attr(value: str) -> str:
    return escape(value, quote=True)


def stacked_bars(
    columns: Sequence[tuple[str, Mapping[str, int]]],
    labels: Mapping[str, str],
    *,
    title: str,
    width: int = 720,
    height: int = 220,
) -> str:
    """One stacked bar per column (e.g. per run), the keys of ``labels`` stacked in order, with a legend."""
    top = max((sum(c.get(k, 0) for k in labels) for _, c in columns), default=0) or 1
    plot_h = height - 50
    step = (width - 60) / max(1, len(columns))
    bar_w = max(2.0, step * 0.7)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{escape(title)}</title>',
        f'<text x="50" y="12" font-size="11">{top}</text>',
        f'<line x1="50" y1="{20 + plot_h}" x2="{width - 5}" y2="{20 + plot_h}" stroke="#444"/>',
    ]
    for i, (name, counts) in enumerate(columns):
        x = 55 + i * step
        y = 20.0 + plot_h
        for key, label in labels.items():
            n = counts.get(key, 0)
            if n <= 0:
                continue
            h = plot_h * n / top
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{COLOURS.get(key, "#777")}">'
                f"<title>{escape(name)}: {escape(label)} {n}</title></rect>"
            )
    legend_x = 55.0
    for key, label in labels.items():
        parts.append(
            f'<rect x="{legend_x:.0f}" y="{height - 16}" width="10" height="10" fill="{COLOURS.get(key, "#777")}"/>'
            f'<text x="{legend_x + 14:.0f}" y="{height - 7}" font-size="11">{escape(label)}</text>'
        )
        legend_x += 24 + 7 * len(label) + (7 * len(label) if not label.isascii() else 0)
    parts.append("</svg>")
    return "".join(parts)


def horizontal_bars(rows: Sequence[tuple[str, int, str]], *, title: str, width: int = 720) -> str:
    """One bar per row ``(label, value, link)``, longest first as given; each label links to its list."""
    top = max((v for _, v, _ in rows), default=0) or 1
    line = 22
    height = 10 + line * max(1, len(rows))
    label_w = 300
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{escape(title)}</title>'
    ]
    for i, (label, value, link) in enumerate(rows):
        y = 5 + i * line
        w = (width - label_w - 60) * value / top
        short = label if len(label) <= 40 else label[:39] + "…"
        parts.append(
            f'<a href="{_attr(link)}"><text x="{label_w - 6}" y="{y + 14}" font-size="12" text-anchor="end">'
            f"{escape(short)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="14" fill="{COLOURS["failing"]}">'
            f"<title>{escape(label)}: {value}</title></rect>"
            f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" font-size="12">{value}</text></a>'
        )
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["COLOURS", "horizontal_bars", "stacked_bars"]
