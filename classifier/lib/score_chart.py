"""A lesion's malignancy score over time, drawn on the server as an SVG (no script, no chart library).

The x axis is time (the date each picture was taken, proportionally spaced), the y axis
the score from 0 to 1. Each version of the model is its own series: its own marker shape
and its own line, never joined to another version's, with a vertical rule and its name
where the version changes, because a score from a new model is not comparable with one
from the old (classifier.lib.changes does not compare them either). The dashed line is
the flag threshold of the version that read those pictures. A picture without a reading
is a cross under the axis, so a visit is never silently missing.

Every point has a <title> (date, score, most likely class, model version); the chart has
a <title> and a <desc> that says in words what the picture shows. All text is escaped.
The output is well-formed XML, inline in an HTML page or saved as a file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from classifier.lib.changes import class_words

WIDTH, HEIGHT = 640, 280
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 20, 34, 58
EDGE_PAD = 14  # px between the first and last points and the plot's sides, so no marker sits on an axis
MIN_LABEL_GAP = 84  # px between two date labels: a "2026-01-31" at 11 px is about 66 px wide
MARKERS = ("circle", "square", "triangle", "diamond")  # one per model version, in order of first use
SCORE_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class ScorePoint:
    """One picture of the lesion: when it was taken and its reading.

    ``score`` is None for a picture without a reading, and ``no_reading`` says why
    ("out of distribution", "failed", "pending"). ``flagged`` is the prediction's flag;
    when None it is worked out as score >= threshold, the platform's rule.
    """

    taken_at: dt.date | dt.datetime
    score: float | None
    top_class: str = ""
    model_version: str = ""
    threshold: float | None = None
    flagged: bool | None = None
    no_reading: str = ""

    @property
    def is_flagged(self) -> bool:
        if self.score is None:
            return False
        if self.flagged is not None:
            return self.flagged
        return self.threshold is not None and self.score >= self.threshold

    @property
    def date_words(self) -> str:
        return self.taken_at.strftime("%Y-%m-%d")

    @property
    def title(self) -> str:
        if self.score is None:
            return f"{self.date_words}: no reading ({self.no_reading or 'no reading'})"
        words = f"{self.date_words}: malignancy score {self.score:.2f}"
        if self.top_class:
            words += f", most likely {class_words(self.top_class)}"
        if self.is_flagged:
            words += ", flagged as suspicious"
        return words + f" (model {self.model_version or 'unknown'})"


def score_chart_svg(
    points: Iterable[ScorePoint],
    *,
    chart_id: str = "score-chart",
    title: str = "Malignancy score over time",
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """The chart as an <svg> element. ``chart_id`` prefixes the ids inside it (two charts on a page need two)."""
    ordered = sorted(points, key=lambda point: _moment(point.taken_at))
    plot = _Plot(width, height, ordered)
    versions = _versions(ordered)
    runs = _runs([point for point in ordered if point.score is not None])
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'class="score-chart" role="img" aria-labelledby="{_attr(chart_id)}-title {_attr(chart_id)}-desc">',
        f'<title id="{_attr(chart_id)}-title">{_text(title)}</title>',
        f'<desc id="{_attr(chart_id)}-desc">{_text(describe(ordered))}</desc>',
    ]
    out += _axes(plot)
    if not ordered:
        out.append(
            f'<text class="empty" x="{plot.left + plot.width / 2:.1f}" y="{plot.top + plot.height / 2:.1f}" '
            'text-anchor="middle">No pictures yet</text>'
        )
    out += _date_labels(plot, ordered)
    out += _thresholds(plot, runs)
    out += _version_changes(plot, runs)
    for run in runs:
        marker = MARKERS[versions.index(run[0].model_version) % len(MARKERS)]
        if len(run) > 1:
            coordinates = " ".join(f"{plot.x(p):.1f},{plot.y(p.score):.1f}" for p in run)
            out.append(
                f'<polyline class="series" points="{coordinates}" fill="none" stroke="#0b5cad" stroke-width="1.5"/>'
            )
        out += [_marker(marker, plot.x(p), plot.y(p.score), p) for p in run]
    out += [_no_reading(plot, point) for point in ordered if point.score is None]
    out += _legend(versions, ordered)
    out.append("</svg>")
    return "\n".join(out)


def describe(points: list[ScorePoint]) -> str:
    """The chart in words, for a screen reader and for anyone who cannot see the picture."""
    if not points:
        return "No pictures of this lesion yet."
    read = [point for point in points if point.score is not None]
    words = [
        f"{len(points)} picture{'s' if len(points) != 1 else ''} from {points[0].date_words} to "
        f"{points[-1].date_words}."
    ]
    if read:
        latest = read[-1]
        words.append(
            f"Latest score {latest.score:.2f} on {latest.date_words}"
            + (" (flagged as suspicious)." if latest.is_flagged else " (not flagged).")
        )
        highest = max(read, key=lambda point: point.score)
        words.append(f"Highest score {highest.score:.2f} on {highest.date_words}.")
        versions = _versions(read)
        if len(versions) > 1:
            counts = ", ".join(
                f"{version or 'unknown'} ({sum(p.model_version == version for p in read)})" for version in versions
            )
            words.append(
                f"Read by {len(versions)} model versions: {counts}; scores of different versions are not comparable."
            )
        else:
            words.append(f"All read by model {versions[0] or 'unknown'}.")
    missing = len(points) - len(read)
    if missing:
        words.append(f"{missing} picture{'s' if missing != 1 else ''} without a reading.")
    return " ".join(words)


class _Plot:
    """Where things go: the plot area and the mapping of dates and scores onto it."""

    def __init__(self, width: int, height: int, points: list[ScorePoint]):
        self.left, self.top = MARGIN_LEFT, MARGIN_TOP
        self.width = width - MARGIN_LEFT - MARGIN_RIGHT
        self.height = height - MARGIN_TOP - MARGIN_BOTTOM
        self.bottom = self.top + self.height
        moments = [_moment(point.taken_at).timestamp() for point in points]
        self.start = min(moments, default=0.0)
        self.span = max(moments, default=0.0) - self.start

    def x(self, point: ScorePoint) -> float:
        if self.span == 0:
            return self.left + self.width / 2  # one date: in the middle
        fraction = (_moment(point.taken_at).timestamp() - self.start) / self.span
        return self.left + EDGE_PAD + fraction * (self.width - 2 * EDGE_PAD)

    def y(self, score: float) -> float:
        return self.top + (1 - min(max(score, 0.0), 1.0)) * self.height


def _axes(plot: _Plot) -> list[str]:
    out = ['<g class="axes" font-family="system-ui, sans-serif" font-size="11" fill="#4a5560">']
    for tick in SCORE_TICKS:
        y = plot.y(tick)
        out.append(
            f'<line x1="{plot.left}" y1="{y:.1f}" x2="{plot.left + plot.width}" y2="{y:.1f}" '
            f'stroke="{"#4a5560" if tick == 0 else "#d5dae0"}" stroke-width="1"/>'
        )
        out.append(f'<text x="{plot.left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    middle = plot.top + plot.height / 2
    out.append(
        f'<text x="14" y="{middle:.1f}" text-anchor="middle" transform="rotate(-90 14 {middle:.1f})">'
        "Malignancy score</text>"
    )
    out.append(f'<line x1="{plot.left}" y1="{plot.top}" x2="{plot.left}" y2="{plot.bottom}" stroke="#4a5560"/>')
    out.append(
        f'<text x="{plot.left + plot.width / 2:.1f}" y="{plot.bottom + 50}" text-anchor="middle">Date taken</text>'
    )
    out.append("</g>")
    return out


def _date_labels(plot: _Plot, points: list[ScorePoint]) -> list[str]:
    """A label under the first and the last date, and under others where there is room."""
    chosen: list[tuple[float, str]] = []
    for point in points:
        x, words = plot.x(point), point.date_words
        if chosen and (chosen[-1][1] == words):
            continue
        if not chosen or x - chosen[-1][0] >= MIN_LABEL_GAP:
            chosen.append((x, words))
        elif point is points[-1] and len(chosen) > 1:
            chosen[-1] = (x, words)  # the last date matters more than the one before it
    out = ['<g class="dates" font-family="system-ui, sans-serif" font-size="11" fill="#4a5560">']
    for x, words in chosen:
        out.append(f'<line x1="{x:.1f}" y1="{plot.bottom}" x2="{x:.1f}" y2="{plot.bottom + 4}" stroke="#4a5560"/>')
        out.append(f'<text x="{x:.1f}" y="{plot.bottom + 30}" text-anchor="middle">{_text(words)}</text>')
    out.append("</g>")
    return out


def _runs(points: list[ScorePoint]) -> list[list[ScorePoint]]:
    """Consecutive points read by the same model version."""
    runs: list[list[ScorePoint]] = []
    for point in points:
        if runs and runs[-1][-1].model_version == point.model_version:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def _versions(points: list[ScorePoint]) -> list[str]:
    return list(dict.fromkeys(point.model_version for point in points if point.score is not None))


def _run_span(plot: _Plot, runs: list[list[ScorePoint]], index: int) -> tuple[float, float]:
    """From halfway after the previous run's last point to halfway before the next run's first."""
    run = runs[index]
    start = plot.left if index == 0 else (plot.x(runs[index - 1][-1]) + plot.x(run[0])) / 2
    end = plot.left + plot.width if index == len(runs) - 1 else (plot.x(run[-1]) + plot.x(runs[index + 1][0])) / 2
    return start, end


def _thresholds(plot: _Plot, runs: list[list[ScorePoint]]) -> list[str]:
    out = ['<g class="thresholds" font-family="system-ui, sans-serif" font-size="10" fill="#8a1c1c">']
    for index, run in enumerate(runs):
        threshold = run[-1].threshold
        if threshold is None:
            continue
        start, end = _run_span(plot, runs, index)
        y = plot.y(threshold)
        out.append(
            f'<line class="threshold" x1="{start:.1f}" y1="{y:.1f}" x2="{end:.1f}" y2="{y:.1f}" '
            'stroke="#8a1c1c" stroke-width="1.2" stroke-dasharray="6 4"/>'
        )
        out.append(f'<text x="{end - 2:.1f}" y="{y - 4:.1f}" text-anchor="end">flag threshold {threshold:.2f}</text>')
    out.append("</g>")
    return out


def _version_changes(plot: _Plot, runs: list[list[ScorePoint]]) -> list[str]:
    out = ['<g class="version-changes" font-family="system-ui, sans-serif" font-size="10" fill="#1b1f24">']
    for index in range(1, len(runs)):
        x = _run_span(plot, runs, index)[0]
        name = runs[index][0].model_version or "unknown"
        out.append(
            f'<line class="version-change" x1="{x:.1f}" y1="{plot.top}" x2="{x:.1f}" y2="{plot.bottom}" '
            'stroke="#1b1f24" stroke-width="1" stroke-dasharray="2 3"/>'
        )
        out.append(f'<text x="{x + 3:.1f}" y="{plot.top + 10}">model {_text(name)} from here</text>')
    out.append("</g>")
    return out


def _marker(shape: str, x: float, y: float, point: ScorePoint) -> str:
    flagged = point.is_flagged
    attributes = (
        f'class="point {shape}{" flagged" if flagged else ""}" fill="{"#8a1c1c" if flagged else "#0b5cad"}" '
        f'stroke="#ffffff" data-date="{_attr(point.date_words)}" data-score="{point.score:.4f}"'
    )
    return _shape(shape, x, y, attributes, f"<title>{_text(point.title)}</title>")


def _shape(shape: str, x: float, y: float, attributes: str, content: str = "") -> str:
    if shape == "circle":
        tag, geometry = "circle", f'cx="{x:.1f}" cy="{y:.1f}" r="5"'
    elif shape == "square":
        tag, geometry = "rect", f'x="{x - 4.5:.1f}" y="{y - 4.5:.1f}" width="9" height="9"'
    elif shape == "triangle":
        tag, geometry = "polygon", f'points="{x:.1f},{y - 6:.1f} {x + 5.5:.1f},{y + 4:.1f} {x - 5.5:.1f},{y + 4:.1f}"'
    else:
        corners = f"{x:.1f},{y - 6:.1f} {x + 6:.1f},{y:.1f} {x:.1f},{y + 6:.1f} {x - 6:.1f},{y:.1f}"
        tag, geometry = "polygon", f'points="{corners}"'
    return f"<{tag} {attributes} {geometry}>{content}</{tag}>"


def _no_reading(plot: _Plot, point: ScorePoint) -> str:
    x, y = plot.x(point), plot.bottom + 12
    return (
        f'<g class="no-reading" data-date="{_attr(point.date_words)}"><title>{_text(point.title)}</title>'
        f'<path d="M{x - 4:.1f},{y - 4:.1f} L{x + 4:.1f},{y + 4:.1f} M{x + 4:.1f},{y - 4:.1f} '
        f'L{x - 4:.1f},{y + 4:.1f}" stroke="#4a5560" stroke-width="1.5"/></g>'
    )


def _legend(versions: list[str], points: list[ScorePoint]) -> list[str]:
    """Which marker is which model version, and what red and a cross mean, along the top."""
    if not points:
        return []
    out = ['<g class="legend" font-family="system-ui, sans-serif" font-size="11" fill="#1b1f24">']
    x = MARGIN_LEFT
    entries = [(MARKERS[index % len(MARKERS)], "#0b5cad", f"model {version or 'unknown'}")
               for index, version in enumerate(versions)]  # fmt: skip
    if any(point.is_flagged for point in points):
        entries.append(("circle", "#8a1c1c", "flagged as suspicious"))
    for shape, fill, words in entries:
        out.append(_shape(shape, x + 5, 14, f'fill="{fill}"'))
        out.append(f'<text x="{x + 14}" y="18">{_text(words)}</text>')
        x += 30 + 6.5 * len(words)  # about 6.5 px a character at 11 px
    if any(point.score is None for point in points):
        out.append(f'<path d="M{x + 1},10 L{x + 9},18 M{x + 9},10 L{x + 1},18" stroke="#4a5560" stroke-width="1.5"/>')
        out.append(f'<text x="{x + 14}" y="18">no reading</text>')
    out.append("</g>")
    return out


def _moment(moment: dt.date | dt.datetime) -> dt.datetime:
    """Dates count as the start of their day (UTC), aware datetimes by their UTC time, naive ones as UTC."""
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime.combine(moment, dt.time())
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _text(value: str) -> str:
    return escape(value)


def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;"})
