"""Fit a wide display table into the HTML page's text column, instead of scrolling it sideways.

A sweep crossing β with two other keys and several seeds gives the settings table 20-odd
columns of "mean ± std": wider than the page, so a reader had to scroll each table to the right
and lost the row's name on the way. Here a table whose columns cannot fit side by side is cut
into parts that can, each repeating the first column (the setting or run) so every part reads
on its own, and long names and headers get break opportunities (after a comma or a dot).

Widths are estimated from character counts at the table's font size (:data:`CHAR_PX`, a little
generous for digits and Greek letters) against the column's narrowest rendering (its
min-content width): a data cell never wraps, a header wraps at spaces, the first column at
spaces and after commas. The browser then lays out each part within the column.
"""

from __future__ import annotations

import html
import re

import pandas as pd

#: The page's text column in CSS pixels: ``main``'s max-width (html.CSS; its content box, the
#: padding lies outside it) on a window at least that wide.
PAGE_PX = 1120
#: Average advance of one character of the 12 px table font, with a margin: digits are 6.7 px
#: in Helvetica/Arial, "±" and Greek letters about the same, lowercase letters narrower.
CHAR_PX = 7.0
#: A cell's horizontal padding (4 px + 4 px, html.CSS) and border.
PAD_PX = 10
#: Where a long name may break: after a comma (run names) or a dot before a letter (config
#: keys such as loss.recon_reduction; never inside a number such as 0.01).
_BREAKS = re.compile(r"(?<=,)(?=\S)|(?<=\.)(?=[^\W\d])")


def _pieces(text: str, breaks: bool) -> list[str]:
    """The unbreakable pieces of ``text``: words, split after commas and dots if ``breaks``."""
    words = str(text).split() or [""]
    return [p for w in words for p in (_BREAKS.split(w) if breaks else [w])]


def min_px(header: str, cells: pd.Series, first: bool) -> float:
    """The narrowest width a column can take: its longest header piece, and its longest cell
    (a piece of one in the first column, whose cells may wrap)."""
    head = max(len(p) for p in _pieces(header, breaks=True))
    texts = cells.astype(str)
    if first:
        body = max((len(p) for t in texts for p in _pieces(t, breaks=True)), default=0)
    else:
        body = int(texts.str.len().max()) if len(texts) else 0
    return max(head, body) * CHAR_PX + PAD_PX


def split_columns(df: pd.DataFrame, width: float = PAGE_PX) -> list[pd.DataFrame]:
    """``df`` as parts that each fit ``width``: the first column, then the next columns in
    order, as few parts as fit and about equally wide (at least one column per part)."""
    if df.shape[1] <= 1:
        return [df]
    key, *rest = list(df.columns)
    room = width - min_px(str(key), df[key], first=True)
    widths = [min_px(str(c), df[c], first=False) for c in rest]
    n = len(_fill(widths, room))
    # The fewest parts are known; the smallest limit that keeps them evens the parts out.
    limit = max(sum(widths) / n, max(widths))
    while len(_fill(widths, limit)) > n:
        limit += CHAR_PX
    return [df[[key, *(rest[i] for i in part)]] for part in _fill(widths, min(limit, room))]


def _fill(widths: list[float], limit: float) -> list[list[int]]:
    """Column indices in consecutive parts, each as many as fit ``limit`` (at least one)."""
    parts: list[list[int]] = [[]]
    used = 0.0
    for i, w in enumerate(widths):
        if parts[-1] and used + w > limit:
            parts.append([])
            used = 0.0
        parts[-1].append(i)
        used += w
    return parts


def breakable(text: object) -> str:
    """``text`` escaped for HTML, with a break opportunity (``<wbr>``) after each comma or dot
    that a word continues past, so a run name or a config key can wrap there."""
    return "<wbr>".join(html.escape(p, quote=True) for p in _BREAKS.split(str(text)))
