"""Inline SVG charts for the HTML reports, which are opened offline: no JavaScript, nothing to fetch.

Labels can come from user data, so every text goes through `markupsafe.escape` and each chart is
returned as `Markup` (jinja2 does not escape it twice). Every chart is an accessible image: role="img",
a <title>, an aria-label stating the data in words, and `data-chart` naming its kind. Sizes are viewBox
units; the stylesheet scales a chart to its card's width.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

# A narrow viewBox keeps 14-unit text legible (about 12.5 px) when a chart shrinks to a phone's width.
WIDTH = 360
FONT_SIZE = 14
LABEL_MAX_CHARS = 40
ROW_HEIGHT = 44
LINE_HEIGHT = 17  # a long label wraps onto further lines, each adding this to its row
BAR_HEIGHT = 14

# Okabe-Ito colours stay distinguishable with the common colour-vision deficiencies.
RAISES_COLOUR = "#D55E00"
LOWERS_COLOUR = "#0072B2"
RAISES_INK = "#A34100"  # darker shades of the two for text, to keep contrast above 4.5:1
LOWERS_INK = "#005A8C"
BAR_COLOUR = "#2F6690"
POINT_COLOUR = "#CC79A7"
INK = "#1C2530"
MUTED = "#5A6672"
GRID = "#D9E0E6"


def histogram(bin_edges: Sequence[float], counts: Sequence[int], title: str, x_label: str, *,
              x_format: str = ".2g", markers: Sequence[tuple[float, str]] = ()) -> Markup:
    """Vertical bars of counts per bin; `markers` draws labelled dashed lines (e.g. band cut-offs)."""
    height, left, right, top, bottom = 220, 40, 20, 26, 44
    plot_width, plot_height = WIDTH - left - right, height - top - bottom
    low, high = bin_edges[0], bin_edges[-1]
    ticks = _nice_ticks(max(counts, default=0))

    def x(value: float) -> float:
        return left + (value - low) / (high - low) * plot_width

    def y(count: float) -> float:
        return top + plot_height - count / ticks[-1] * plot_height

    parts = [_text(left - 8, top - 12, "people", colour=MUTED)]
    for tick in ticks:
        parts.append(_line(left, y(tick), WIDTH - right, y(tick), GRID))
        parts.append(_text(left - 6, y(tick) + 4, f"{tick:,.0f}", anchor="end", colour=MUTED))
    for start, end, count in zip(bin_edges[:-1], bin_edges[1:], counts):
        tip = f"{format(start, x_format)}–{format(end, x_format)}: {count:,} people"
        parts.append(f'<rect x="{x(start) + 1:.1f}" y="{y(count):.1f}" width="{max(x(end) - x(start) - 2, 1):.1f}" '
                     f'height="{plot_height + top - y(count):.1f}" fill="{BAR_COLOUR}">'
                     f'<title>{escape(tip)}</title></rect>')
    for edge in (low + (high - low) * tick / 5 for tick in range(6)):  # even ticks: bins may differ in width
        parts.append(_text(x(edge), height - bottom + 18, format(edge, x_format), anchor="middle", colour=MUTED))
    parts.append(_line(left, top + plot_height, WIDTH - right, top + plot_height, INK))
    parts.append(_text(left + plot_width / 2, height - 8, x_label, anchor="middle"))
    for value, label in markers:
        parts.append(_line(x(value), top - 4, x(value), top + plot_height, INK, dashed=True))
        parts.append(_text(x(value) + 4, top + 8, label))

    tallest = max(range(len(counts)), key=counts.__getitem__, default=None)
    description = f"{title}. {sum(counts):,} people in {len(counts)} bins"
    if tallest is not None:
        description += (f"; the most, {counts[tallest]:,}, between {format(bin_edges[tallest], x_format)}"
                        f" and {format(bin_edges[tallest + 1], x_format)}")
    return _svg("histogram", title, description, height, "".join(parts))


def bar_chart(rows: Sequence[tuple[str, float, float | None, float | None]], title: str,
              value_format: str) -> Markup:
    """Horizontal bars of rows (label, value >= 0, ci_low, ci_high), an interval drawn as a whisker; each
    label on its own line so long labels fit a phone. `value_format` is a format spec such as ".0%"."""
    shown = lambda value: format(value, value_format)  # noqa: E731
    value_texts = [f"{shown(value)} ({shown(low)}–{shown(high)})" if low is not None and high is not None
                   else shown(value) for _, value, low, high in rows]
    value_room = max((_text_width(text) for text in value_texts), default=0) + 8
    labels = [_label_lines(label) for label, *_ in rows]
    positions, height = _row_positions(labels, 0)
    largest = max((max(value, high if high is not None else value) for _, value, _, high in rows), default=0)
    scale = (WIDTH - value_room) / largest if largest > 0 else 0.0

    parts = []
    for (label, value, low, high), value_text, lines, (row_top, bar_y) in zip(rows, value_texts, labels, positions):
        parts.append(_row_label(row_top, label, lines))
        parts.append(f'<rect x="0" y="{bar_y}" width="{max(value * scale, 1):.1f}" height="{BAR_HEIGHT}" '
                     f'fill="{BAR_COLOUR}"/>')
        text_x = value * scale
        if low is not None and high is not None:
            middle = bar_y + BAR_HEIGHT / 2
            parts.append(_line(low * scale, middle, high * scale, middle, INK))
            parts.append(_line(low * scale, middle - 5, low * scale, middle + 5, INK))
            parts.append(_line(high * scale, middle - 5, high * scale, middle + 5, INK))
            text_x = max(text_x, high * scale)
        parts.append(_text(text_x + 6, bar_y + 11, value_text))
    spoken = "; ".join(f"{label}: {text}" for (label, *_), text in zip(rows, value_texts))
    return _svg("bar", title, f"{title}. {spoken}", height, "".join(parts))


def calibration_plot(predicted_means: Sequence[float], observed_rates: Sequence[float], counts: Sequence[int],
                     title: str) -> Markup:
    """Observed rate against mean predicted risk per bin, with the diagonal of perfect calibration; a
    point's area follows its bin's people, so sparse bins do not look as certain."""
    left, top, side = 58, 12, 276
    legend_y = top + side + 66
    height = legend_y + 30

    def x(value: float) -> float:
        return left + value * side

    def y(value: float) -> float:
        return top + side - value * side

    parts = []
    for tick in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        parts.append(_line(x(0), y(tick), x(1), y(tick), GRID))
        parts.append(_line(x(tick), y(0), x(tick), y(1), GRID))
        parts.append(_text(left - 6, y(tick) + 4, f"{tick:.0%}", anchor="end", colour=MUTED))
        parts.append(_text(x(tick), y(0) + 18, f"{tick:.0%}", anchor="middle", colour=MUTED))
    parts.append(_line(x(0), y(0), x(1), y(1), INK, dashed=True))
    parts.append(_text(left + side / 2, y(0) + 38, "mean predicted risk", anchor="middle"))
    parts.append(f'<text transform="translate(12 {top + side / 2}) rotate(-90)" text-anchor="middle" '
                 f'fill="{INK}">observed rate</text>')

    points = list(zip(predicted_means, observed_rates, counts))
    if points:
        path = " ".join(f"{x(p):.1f},{y(o):.1f}" for p, o, _ in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{POINT_COLOUR}" stroke-width="2"/>')
    largest = max(counts, default=1) or 1
    for predicted, observed, count in points:
        radius = 3 + 5 * math.sqrt(count / largest)
        tip = f"predicted {predicted:.0%}, observed {observed:.0%} ({count:,} people)"
        parts.append(f'<circle cx="{x(predicted):.1f}" cy="{y(observed):.1f}" r="{radius:.1f}" '
                     f'fill="{POINT_COLOUR}" stroke="{INK}"><title>{escape(tip)}</title></circle>')

    parts.append(_line(left, legend_y - 4, left + 22, legend_y - 4, INK, dashed=True))
    parts.append(_text(left + 28, legend_y, "perfect calibration"))
    parts.append(f'<circle cx="{left + 11}" cy="{legend_y + 18}" r="5" fill="{POINT_COLOUR}" stroke="{INK}"/>')
    parts.append(_text(left + 28, legend_y + 22, "model (larger dot: more people)"))

    spoken = "; ".join(f"predicted {p:.0%}, observed {o:.0%} ({c:,} people)" for p, o, c in points)
    return _svg("calibration", title, f"{title}. {spoken}", height, "".join(parts))


def contribution_bars(rows: Sequence[tuple[str, float]], title: str, *,
                      value_text: Callable[[float], str] = lambda value: format(value, "+.2f")) -> Markup:
    """Bars diverging from zero: to the right (vermillion) raises risk, to the left (blue) lowers it.

    Each label also says "raises risk" or "lowers risk", so colour is never the only cue; the "lowers
    risk" heading is drawn only when a bar lowers it. `value_text` writes each bar's number."""
    top = 24
    centre = WIDTH / 2
    value_texts = [value_text(value).replace("-", "−") for _, value in rows]
    text_room = max((_text_width(text) for text in value_texts), default=0) + 8
    labels = [_label_lines(label, _effect(value)) for label, value in rows]
    positions, height = _row_positions(labels, top)
    largest = max((abs(value) for _, value in rows), default=0)
    scale = (centre - text_room) / largest if largest > 0 else 0.0

    parts = [_text(centre + 8, 12, "raises risk ▶", colour=RAISES_INK)]
    if any(value < 0 for _, value in rows):
        parts.append(_text(centre - 8, 12, "◀ lowers risk", anchor="end", colour=LOWERS_INK))
    spoken = []
    for (label, value), text, lines, (row_top, bar_y) in zip(rows, value_texts, labels, positions):
        length = max(abs(value) * scale, 1)
        raises = value >= 0
        effect = _effect(value)
        parts.append(_row_label(row_top, label, lines, effect))
        parts.append(_line(centre, bar_y - 3, centre, bar_y + BAR_HEIGHT + 3, INK))
        bar_x = centre if raises else centre - length
        parts.append(f'<rect x="{bar_x:.1f}" y="{bar_y}" width="{length:.1f}" height="{BAR_HEIGHT}" '
                     f'fill="{RAISES_COLOUR if raises else LOWERS_COLOUR}"/>')
        text_x = centre + length + 6 if raises else centre - length - 6
        parts.append(_text(text_x, bar_y + 11, text, anchor="start" if raises else "end"))
        spoken.append(f"{label}: {effect}, {text}")
    return _svg("contribution", title, f"{title}. " + "; ".join(spoken), height, "".join(parts))


def _svg(kind: str, title: str, description: str, height: float, body: str) -> Markup:
    """Wrap chart parts in an accessible, scalable <svg> element; only `body` is trusted markup."""
    return Markup(f'<svg class="chart" data-chart="{kind}" role="img" aria-label="{escape(description)}" '
                  f'viewBox="0 0 {WIDTH} {height:.0f}" font-size="{FONT_SIZE}">'
                  f"<title>{escape(title)}</title>{body}</svg>")


def _effect(value: float) -> str:
    return "raises risk" if value >= 0 else "lowers risk"


def _label_lines(label: str, note: str = "") -> list[str]:
    """A label wrapped at word boundaries (never cut), with room for the note on its last line or a new one."""
    lines = textwrap.wrap(label, LABEL_MAX_CHARS, break_long_words=True) or [""]
    if note and len(lines[-1]) + len(note) + 3 > LABEL_MAX_CHARS:
        lines.append("")
    return lines


def _row_positions(labels: list[list[str]], top: float) -> tuple[list[tuple[float, float]], float]:
    """Each row's top and its bar's top, and the chart's height: rows with wrapped labels are taller."""
    positions = []
    for lines in labels:
        positions.append((top, top + 22 + LINE_HEIGHT * (len(lines) - 1)))
        top += ROW_HEIGHT + LINE_HEIGHT * (len(lines) - 1)
    return positions, top + 4


def _row_label(row_top: float, label: str, lines: list[str], note: str = "") -> str:
    """A row's bold label (and a muted note) on its own lines above the bar, the full label as a tooltip."""
    note_part = f'<tspan fill="{MUTED}" font-weight="400">{" · " if lines[-1] else ""}{escape(note)}</tspan>' \
        if note else ""
    shown = "".join(f'<tspan x="0" dy="{0 if index == 0 else LINE_HEIGHT}">{escape(line)}</tspan>'
                    for index, line in enumerate(lines))
    return (f'<text x="0" y="{row_top + 14}" fill="{INK}" font-weight="600">'
            f"<title>{escape(label)}</title>{shown}{note_part}</text>")


def _text_width(text: str) -> float:
    """A generous estimate of rendered text width, to reserve room for value labels."""
    return len(text) * FONT_SIZE * 0.62


def _text(x: float, y: float, content: str, *, anchor: str = "start", colour: str = INK) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{colour}">{escape(content)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, *, dashed: bool = False) -> str:
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{colour}" stroke-width="1"{dash}/>')


def _nice_ticks(highest: float, target: int = 4) -> list[int]:
    """Whole-number ticks from 0 to at least `highest`, in steps of 1, 2 or 5 times a power of ten."""
    if highest <= 0:
        return [0, 1]
    raw_step = highest / target
    magnitude = max(10 ** math.floor(math.log10(raw_step)), 1)
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    return [i * step for i in range(math.ceil(highest / step) + 1)]
