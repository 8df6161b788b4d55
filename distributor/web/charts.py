"""The workspace's bar charts, laid out for an inline SVG: the bars and the y axis's top
(the dashboard's messages per hour, ``admin.chart``), and the per-day chart of fetches
(``reporting.statistics``): page views and downloads side by side
(``templates/admin/_daily.html``, with a table of the same figures for those who do not
see the chart)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from distributor.reporting.statistics import Day


@dataclass(frozen=True)
class Bar:
    """One bar of a chart, in the SVG's user units."""

    x: float
    y: float
    width: float
    height: float
    label: str


def _ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 × 10ⁿ at least ``value`` (at least 1): the y axis's top."""
    top = 1
    while top < value:
        magnitude = 10 ** (len(str(top)) - 1)
        top = next(m * magnitude for m in (2, 5, 10) if m * magnitude > top)
    return top


@dataclass(frozen=True)
class DayChart:
    """Page views and downloads per day, in the SVG's user units."""

    width: int
    height: int
    top: int
    left: int
    views: list[Bar]
    downloads: list[Bar]
    ticks: list[tuple[float, str]]  # x, day label
    scale: list[tuple[float, int]]  # y, value
    rows: list[tuple[str, int, int, int, int]]  # day, views, downloads, feeds 200, 304
    total_views: int
    total_downloads: int


def day_chart(days: Sequence[Day], say: Callable[[str], str] = str) -> DayChart:
    """The bars and labels of ``days`` (oldest first); each bar's label in the page's
    language (``say``: its gettext)."""
    width, height, top, bottom, left = 720, 180, 10, 30, 44
    plot_w, plot_h = width - left - 6, height - top - bottom
    downloads = [d.image_downloads + d.document_downloads for d in days]
    peak = _ceiling(max([d.page_views for d in days] + downloads + [1]))
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.4, 1.0)
    views_bars: list[Bar] = []
    download_bars: list[Bar] = []
    ticks: list[tuple[float, str]] = []
    every = max(1, len(days) // 8)  # at most about 8 labels under the bars
    for i, (day, got) in enumerate(zip(days, downloads, strict=True)):
        x = left + i * slot + slot * 0.1
        label = day.day.isoformat()
        for bars, value, dx, text in (
            (views_bars, day.page_views, 0.0, say("{day}: {count} page views")),
            (download_bars, got, bar_w, say("{day}: {count} downloads")),
        ):
            h = plot_h * value / peak
            bars.append(
                Bar(
                    round(x + dx, 1),
                    round(top + plot_h - h, 1),
                    round(bar_w, 1),
                    round(h, 1),
                    text.format(day=label, count=value),
                )
            )
        if i % every == 0:
            ticks.append((round(left + i * slot + slot / 2, 1), label[5:]))
    marks = sorted({0, peak // 2, peak})
    return DayChart(
        width,
        height,
        top,
        left,
        views_bars,
        download_bars,
        ticks,
        [(round(top + plot_h - plot_h * v / peak, 1), v) for v in marks],
        [
            (d.day.isoformat(), d.page_views, got, d.feed_fetches, d.feed_not_modified)
            for d, got in zip(days, downloads, strict=True)
        ],
        sum(d.page_views for d in days),
        sum(downloads),
    )
