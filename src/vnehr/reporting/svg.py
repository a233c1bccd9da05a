"""The dashboard's three charts as plain SVG, written here rather than drawn by matplotlib.

The department's page drew them with matplotlib: importing it took about 0.7 s on a process's
first report, and every load spent another 0.25 s laying out and drawing text as paths (130 KB
of the page's 141 KB). These are bars, ticks and words: written directly they take a
millisecond, their words are text a screen reader reads and a search finds, and each bar tells
its figure on hover. The PDF keeps matplotlib's charts (``outputs.charts``, PNG).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from vnehr.reporting.outputs import _duration, _number, _percent

WIDTH = 750
FONT = 11
SMALL = 10
INSURED = "#b3261e"
UNINSURED = "#5f6368"
GRID = "#dadce0"


def charts(figures: dict[str, Any]) -> dict[str, bytes]:
    """The matrix (visits sent, insured or not), the lag distribution and accounts by ward, as
    ``<svg>`` documents keyed as ``outputs.charts`` keys them."""
    matrix = _matrix(figures["matrix"], _number)
    histogram = [h for h in figures["timeliness"]["histogram"] if h["visits"]]
    lag = _columns(
        "Độ trễ từ khi kết thúc lượt khám đến khi nhận",
        "Số lượt",
        [
            (
                _duration(h["up_to_minutes"]) if h["up_to_minutes"] else "lâu hơn",
                h["visits"],
                _number(h["visits"]),
            )
            for h in histogram
        ],
        "#0b57d0",
        rotate=45,
        whole=True,
    )
    wards = [w for w in figures["people"]["by_ward"] if w["population"]][:30]
    accounts = _columns(
        "Tài khoản Sổ sức khỏe điện tử theo phường, xã",
        "% dân số có tài khoản",
        [(w["name"] or w["ward"], 100 * (w["share"] or 0), _percent(w["share"])) for w in wards],
        "#137333",
        rotate=60,
    )
    return {"matrix": matrix.encode(), "lag": lag.encode(), "accounts": accounts.encode()}


def _ticks(top: float, *, whole: bool = False) -> list[float]:
    """Round steps (1, 2, 2.5 or 5 times a power of ten) from 0 to at least ``top``; for
    counts (``whole``) steps of 1, 2 or 5 times a power of ten, never below 1 (no half a
    visit)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = max(top / 5, 1.0) if whole else top / 5
    power = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)
    step = next(m * power for m in steps if m * power >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _tick_label(value: float) -> str:
    return (
        f"{value:,.0f}".replace(",", ".") if value == int(value) else f"{value:g}".replace(".", ",")
    )


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _svg(title: str, height: float, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'width="{WIDTH}" height="{height:.0f}" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'font-size="{FONT}">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _matrix(rows: Sequence[dict[str, Any]], number: Callable[[int], str]) -> str:
    """Horizontal bars: each kind of care named on its own line, then its insured and
    uninsured visits sent, each bar with its figure at its end."""
    title = "Số lượt đã gửi lên Sổ sức khỏe điện tử"
    left, right, top = 10, WIDTH - 70, 34
    ticks = _ticks(
        max([r[f]["sent"] for r in rows for f in ("insured", "uninsured")] or [0]), whole=True
    )
    scale = (right - left) / ticks[-1]
    body = []
    for x, colour, label in (
        (left, INSURED, "Có thẻ BHYT"),
        (left + 130, UNINSURED, "Không có thẻ BHYT"),
    ):
        body.append(f'<rect x="{x}" y="8" width="12" height="12" fill="{colour}"/>')
        body.append(f'<text x="{x + 18}" y="18">{label}</text>')
    y = top
    for row in rows:
        name = row["title"][0]
        body.append(f'<text x="{left}" y="{y + 11}">{escape(name)}</text>')
        y += 16
        for flag, colour, label in (
            ("insured", INSURED, "có thẻ BHYT"),
            ("uninsured", UNINSURED, "không có thẻ BHYT"),
        ):
            value = row[flag]["sent"]
            width = value * scale
            body.append(
                f'<rect x="{left}" y="{y}" width="{width:.1f}" height="12" fill="{colour}">'
                f"<title>{escape(name)}, {label}: {number(value)}</title></rect>"
            )
            body.append(
                f'<text x="{left + width + 4:.1f}" y="{y + 10}" font-size="{SMALL}">'
                f"{number(value)}</text>"
            )
            y += 14
        y += 8
    bottom = y
    for tick in ticks:
        across = left + tick * scale
        body.insert(
            0,
            f'<line x1="{across:.1f}" y1="{top}" x2="{across:.1f}" y2="{bottom}" stroke="{GRID}"/>',
        )
        body.append(
            f'<text x="{across:.1f}" y="{bottom + 14}" text-anchor="middle" font-size="{SMALL}">'
            f"{_tick_label(tick)}</text>"
        )
    body.append(
        f'<text x="{(left + right) / 2:.0f}" y="{bottom + 32}" text-anchor="middle">{title}</text>'
    )
    return _svg(title, bottom + 40, body)


def _columns(
    title: str,
    axis: str,
    bars: Sequence[tuple[str, float, str]],
    colour: str,
    *,
    rotate: int,
    whole: bool = False,
) -> str:
    """Vertical bars (name, height, the figure as written) under a title, the axis named at
    the left, the bars' names slanted below them; a chart without bars says so."""
    ticks = _ticks(max([value for _, value, _ in bars] or [0]), whole=whole)
    # a name is about 0.6 em a letter: slanted, it reaches down and to the left of its bar
    longest = 0.6 * SMALL * max([len(_short(name)) for name, _, _ in bars] or [0])
    slot = (WIDTH - 10 - 60) / max(len(bars), 1)
    left = round(
        max(
            24 + 6 * max(len(_tick_label(t)) for t in ticks),
            longest * math.cos(math.radians(rotate)) - slot / 2 + 4,
        )
    )
    right, top, plot = WIDTH - 10, 30, 170
    height = top + plot + 12 + longest * math.sin(math.radians(rotate)) + 8
    base = top + plot
    scale = plot / ticks[-1]
    body = [
        f'<text x="{WIDTH / 2:.0f}" y="16" text-anchor="middle" font-weight="bold">{title}</text>'
    ]
    body.append(
        f'<text transform="translate(12 {top + plot / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle" font-size="{SMALL}">{escape(axis)}</text>'
    )
    for tick in ticks:
        y = base - tick * scale
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="{SMALL}">'
            f"{_tick_label(tick)}</text>"
        )
    if not bars:
        body.append(
            f'<text x="{(left + right) / 2:.0f}" y="{top + plot / 2:.0f}" text-anchor="middle" '
            f'fill="{UNINSURED}">Chưa có số liệu</text>'
        )
    slot = (right - left) / max(len(bars), 1)
    for i, (name, value, shown) in enumerate(bars):
        x = left + i * slot
        height_of = value * scale
        body.append(
            f'<rect x="{x + slot * 0.15:.1f}" y="{base - height_of:.1f}" '
            f'width="{slot * 0.7:.1f}" height="{height_of:.1f}" fill="{colour}">'
            f"<title>{escape(name)}: {shown}</title></rect>"
        )
        middle = x + slot / 2
        body.append(
            f'<text transform="translate({middle:.1f} {base + 12}) rotate(-{rotate})" '
            f'text-anchor="end" font-size="{SMALL}">{escape(_short(name))}</text>'
        )
    body.append(f'<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#5f6368"/>')
    return _svg(title, height, body)
