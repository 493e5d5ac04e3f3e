"""Charts of the statistics page as SVG built on the server: no plotting service, no script, no CDN.

Why hand-made SVG: a bar chart is a few ``<rect>`` and ``<text>`` elements; building them here keeps the
page one response that works offline and under the viewer's Content-Security-Policy (colours are SVG
attributes, not inline styles). Every label passes through :func:`markupsafe.escape` — class names are
publishers' text — so the result can be marked safe for the templates.

Example:
    >>> svg = bar_chart([("cat", 3), ("<dog>", 1)], title="instances")
    >>> svg.count('class="bar"'), "&lt;dog&gt;" in svg, "<dog>" in svg
    (2, True, False)
    >>> column_chart(["0", "1", "2"], [5, 0, 2], title="per image").count('class="bar"')
    3
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

__all__ = ["bar_chart", "column_chart", "MAX_BARS"]

MAX_BARS = 60
"""Most bars of a horizontal bar chart; the rest are summed into one "(N more)" bar."""

_FONT = 'font-family="sans-serif" font-size="12"'
_DEFAULT_COLOUR = "#4f7cac"


def _number(n: float) -> str:
    return f"{n:,}" if isinstance(n, int) else f"{n:.3g}"


def bar_chart(bars: Sequence[tuple[str, int]], *, title: str, colour: Callable[[str], str] | None = None,
              width: int = 640) -> Markup:
    """Horizontal bars, one per ``(label, value)`` in the order given (at most :data:`MAX_BARS`)."""
    bars = list(bars)
    if len(bars) > MAX_BARS:
        rest = bars[MAX_BARS - 1:]
        bars = [*bars[:MAX_BARS - 1], (f"({len(rest)} more)", sum(v for _, v in rest))]
    row, label_w, value_w = 20, 180, 70
    plot_w = width - label_w - value_w
    top = max((v for _, v in bars), default=0) or 1
    height = row * len(bars) + 30
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'),
             f"<title>{escape(title)}</title>",
             f'<text x="0" y="14" {_FONT} font-weight="bold" fill="currentColor">{escape(title)}</text>']
    for i, (label, value) in enumerate(bars):
        y = 24 + i * row
        w = 0 if value <= 0 else max(1, round(plot_w * value / top))
        fill = colour(label) if colour is not None and not label.startswith("(") else _DEFAULT_COLOUR
        shown = label if len(label) <= 26 else label[:25] + "…"
        parts.append(f'<g><title>{escape(label)}: {_number(value)}</title>'
                     f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" {_FONT} fill="currentColor">'
                     f"{escape(shown)}</text>"
                     f'<rect class="bar" x="{label_w}" y="{y + 2}" width="{w}" height="{row - 5}" '
                     f'fill="{escape(fill)}"/>'
                     f'<text x="{label_w + w + 4}" y="{y + 14}" {_FONT} fill="currentColor">{_number(value)}'
                     "</text></g>")
    parts.append("</svg>")
    return Markup("".join(parts))


def column_chart(labels: Sequence[str], values: Sequence[int], *, title: str, x_label: str = "",
                 width: int = 640, height: int = 200) -> Markup:
    """Vertical columns (a histogram): ``labels[i]`` under the column of ``values[i]``."""
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels for {len(values)} values")
    n = max(1, len(values))
    left, bottom, top_pad = 50, 40, 24
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    step = plot_w / n
    top = max(values, default=0) or 1
    every = max(1, n // 10)  # at most ~10 axis labels
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'),
             f"<title>{escape(title)}</title>",
             f'<text x="0" y="14" {_FONT} font-weight="bold" fill="currentColor">{escape(title)}</text>',
             (f'<text x="{left - 6}" y="{top_pad + 10}" text-anchor="end" {_FONT} fill="currentColor">'
             f"{_number(top)}</text>"),
             (f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" y2="{top_pad + plot_h}" '
             'stroke="currentColor" stroke-width="1"/>')]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = 0 if value <= 0 else max(1, round(plot_h * value / top))
        x = left + i * step
        parts.append(f'<g><title>{escape(label)}: {_number(value)}</title>'
                     f'<rect class="bar" x="{x + 1:.1f}" y="{top_pad + plot_h - h}" width="{max(1.0, step - 2):.1f}" '
                     f'height="{h}" fill="{_DEFAULT_COLOUR}"/></g>')
        if i % every == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{top_pad + plot_h + 14}" text-anchor="middle" {_FONT} '
                         f'fill="currentColor">{escape(label)}</text>')
    if x_label:
        parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle" {_FONT} '
                     f'fill="currentColor">{escape(x_label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
