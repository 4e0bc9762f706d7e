"""Small inline SVG charts for the HTML report: horizontal bars, columns, a donut.

Self-contained on purpose (no chart library, no script, no external font): every label and
value is escaped here, and text widths are estimated (East Asian wide characters count two),
which is all a bar label needs. Charts carry ``role="img"`` and an ``aria-label``, and each bar
a ``<title>`` with its full label and count.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from html import escape

PALETTE = ("#3b82f6", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#14b8a6", "#f97316",
           "#64748b", "#ec4899", "#84cc16")  # fmt: skip
MUTED = "#cbd2d9"
CHAR_PX = 7.5  # width of a narrow character at the charts' 12px font


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def text_width(text: str) -> int:
    """Display width in narrow characters (CJK and full-width forms count two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` narrow characters, with an ellipsis when cut."""
    if text_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = text_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _open(width: float, height: float, label: str) -> str:
    return (
        f'<svg class="chart" width="{width:.0f}" height="{height:.0f}"'
        f' viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{esc(label)}">'
    )


def hbars(
    items: Sequence[tuple[str, int]],
    *,
    label: str,
    total: int | None = None,
    colour: str = PALETTE[0],
    muted: frozenset[str] = frozenset(),
    width: int = 460,
) -> str:
    """One bar per item, longest = the largest value (or ``total``: bars as shares of it);
    items named in ``muted`` (such as "(none)") are drawn grey."""
    if not items:
        return ""
    label_chars = min(22, max(text_width(name) for name, _ in items))
    left = 18 + label_chars * CHAR_PX
    right = 70
    row = 22
    scale = max(total or 0, *(n for _, n in items), 1)
    span = max(width - left - right, 40)
    parts = [_open(width, row * len(items) + 6, label)]
    for i, (name, n) in enumerate(items):
        y = 3 + i * row
        w = span * n / scale
        fill = MUTED if name in muted else colour
        shown = f"{n}" if not total else f"{n} ({100 * n / total:.0f}%)"
        parts.append(
            f"<g><title>{esc(name)}: {esc(shown)}</title>"
            f'<text x="{left - 6:.0f}" y="{y + 15}" text-anchor="end">{esc(clip(name, 22))}</text>'
            f'<rect x="{left:.0f}" y="{y + 3}" width="{max(w, 1 if n else 0):.1f}" height="16"'
            f' rx="2" fill="{fill}"/>'
            f'<text x="{left + w + 5:.1f}" y="{y + 15}" class="n">{esc(shown)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def columns(
    items: Sequence[tuple[str, int]],
    *,
    label: str,
    colour: str = PALETTE[0],
    width: int = 460,
    height: int = 170,
) -> str:
    """Vertical columns (e.g. age buckets), value on top, label below."""
    if not items:
        return ""
    top, bottom = 18, 24
    plot = height - top - bottom
    slot = width / len(items)
    bar = min(56.0, slot * 0.7)
    scale = max(max(n for _, n in items), 1)
    parts = [_open(width, height, label)]
    parts.append(f'<line x1="0" y1="{top + plot}" x2="{width}" y2="{top + plot}" class="axis"/>')
    for i, (name, n) in enumerate(items):
        h = plot * n / scale
        x = i * slot + (slot - bar) / 2
        cx = i * slot + slot / 2
        parts.append(
            f"<g><title>{esc(name)}: {n}</title>"
            f'<rect x="{x:.1f}" y="{top + plot - h:.1f}" width="{bar:.1f}" height="{h:.1f}"'
            f' rx="2" fill="{colour}"/>'
            f'<text x="{cx:.1f}" y="{top + plot - h - 4:.1f}" text-anchor="middle" class="n">'
            f"{n}</text>"
            f'<text x="{cx:.1f}" y="{height - 7}" text-anchor="middle">{esc(clip(name, 12))}'
            "</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def donut(
    items: Sequence[tuple[str, int, str]], *, label: str, centre: str, size: int = 150
) -> str:
    """A ring of (name, value, colour) shares, ``centre`` written in the hole."""
    total = sum(n for _, n, _ in items)
    r = size / 2 - 14
    c = size / 2
    length = 2 * math.pi * r
    parts = [_open(size, size, label)]
    parts.append(f'<circle cx="{c}" cy="{c}" r="{r:.1f}" class="ring"/>')
    offset = 0.0
    for name, n, colour in items:
        if not n or not total:
            continue
        dash = length * n / total
        parts.append(
            f'<circle cx="{c}" cy="{c}" r="{r:.1f}" fill="none" stroke="{colour}"'
            f' stroke-width="22" stroke-dasharray="{dash:.2f} {length - dash:.2f}"'
            f' stroke-dashoffset="{-offset:.2f}" transform="rotate(-90 {c} {c})">'
            f"<title>{esc(name)}: {n} ({100 * n / total:.1f}%)</title></circle>"
        )
        offset += dash
    parts.append(
        f'<text x="{c}" y="{c + 5}" text-anchor="middle" class="centre">{esc(centre)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
