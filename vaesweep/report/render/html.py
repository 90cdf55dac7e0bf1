"""The HTML report: one self-contained file, images embedded as base64 PNG, readable offline.

Layout, top to bottom: title and what was read; the answer (the reading's opening and the short
answers to the three questions of the README); the figures with captions; the
detailed reading; tables (settings with mean ± std over seeds, every run, runs left out);
problems met while reading the records. Every piece of text that came from disk or the data
(run names, config values, error messages) goes through :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone

import pandas as pd

from vaesweep import __version__
from vaesweep.report.figures.style import Rendered
from vaesweep.report.page import Page
from vaesweep.report.render.fit import breakable, split_columns

CSS = """
body { font: 15px/1.55 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1d1d1f; margin: 0; background: #fafafa; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 64px; background: #fff; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; border-bottom: 1px solid #e3e3e3; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 22px 0 6px; }
.meta { color: #666; font-size: 13px; margin-bottom: 18px; }
.answer { background: #f2f7ff; border-left: 4px solid #3b6fd6; padding: 12px 18px; margin: 12px 0; }
.answer p { margin: 8px 0; }
dl.qa dt { font-weight: 600; margin-top: 12px; }
dl.qa dd { margin: 4px 0 0 0; }
figure { margin: 26px 0; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto;
             border: 1px solid #eee; }
figcaption { font-size: 13.5px; color: #444; margin-top: 6px; }
figcaption b { color: #1d1d1f; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0 16px; }
th, td { padding: 4px 4px; border-bottom: 1px solid #e6e6e6; text-align: right;
         white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; white-space: normal;
     vertical-align: bottom; }
td:first-child, th:first-child { text-align: left; white-space: normal; }
tr:nth-child(even) td { background: #fbfbfb; }
caption { caption-side: top; text-align: left; color: #666; font-size: 12px; }
.scroll { overflow-x: auto; }
.problems li, .left-out li { color: #8a4b00; }
nav a { margin-right: 12px; font-size: 13px; }
footer { color: #777; font-size: 12.5px; margin-top: 40px; }
code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; }
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def table_html(df: pd.DataFrame) -> str:
    """A DataFrame of strings as escaped HTML tables that fit the page: cut into parts by
    columns (:func:`~vaesweep.report.render.fit.split_columns`), each repeating the first."""
    parts = split_columns(df)
    return "".join(
        _one_table(part, f"continued ({i + 1} of {len(parts)})" if i else "")
        for i, part in enumerate(parts)
    )


def _one_table(df: pd.DataFrame, caption: str) -> str:
    """One part: headers and first-column names may wrap after a comma or a dot."""
    head = "".join(f"<th>{breakable(c)}</th>" for c in df.columns)
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{breakable(v) if j == 0 else esc(v)}</td>" for j, v in enumerate(row))
        + "</tr>"
        for row in df.itertuples(index=False)
    )
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (
        f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def figure_html(fig: Rendered) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (
        f'<figure id="{esc(fig.name)}"><img alt="{esc(fig.title)}" '
        f'src="data:image/png;base64,{data}">'
        f"<figcaption><b>{esc(fig.title)}.</b> {esc(fig.caption)}</figcaption></figure>"
    )


def render_html(page: Page) -> str:
    reading = page.reading
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(page.title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{esc(page.title)}</h1>",
        f'<div class="meta">Read from {", ".join(f"<code>{esc(s)}</code>" for s in page.sources)}'
        f" · {esc(reading.headline)} · vaesweep {esc(__version__)}, {esc(now)}</div>",
    ]
    nav = ['<a href="#answer">answer</a>']
    nav += [f'<a href="#{esc(f.name)}">{esc(f.title)}</a>' for f in page.figures]
    nav += ['<a href="#reading">reading</a>', '<a href="#tables">tables</a>']
    parts.append("<nav>" + "".join(nav) + "</nav>")
    parts.append(f'<h2 id="answer">{esc(reading.title)}</h2><div class="answer">')
    parts += [f"<p>{esc(p)}</p>" for p in reading.answer]
    if reading.questions:
        parts.append('<dl class="qa">')
        for q, a in reading.questions:
            parts.append(f"<dt>{esc(q)}</dt><dd>{esc(a)}</dd>")
        parts.append("</dl>")
    parts.append("</div>")
    if page.figures:
        parts.append('<h2 id="figures">Figures</h2>')
        parts += [figure_html(f) for f in page.figures]
    parts.append('<h2 id="reading">The reading, in detail</h2>')
    for heading, sentences in reading.sections:
        cls = ' class="left-out"' if heading == "Runs left out" else ""
        if heading.startswith("Problems"):
            cls = ' class="problems"'
        parts.append(f"<h3>{esc(heading)}</h3><ul{cls}>")
        parts += [f"<li>{esc(s)}</li>" for s in sentences]
        parts.append("</ul>")
    parts.append('<h2 id="tables">Tables</h2>')
    for heading, df in page.tables:
        if not df.empty:
            parts.append(f"<h3>{esc(heading)}</h3>{table_html(df)}")
    parts.append(
        "<footer>Files next to this page: "
        + ", ".join(f"<code>{esc(f)}</code>" for f in page.files)
        + ". Every number above is in summary.csv (one row per run) or seeds.csv (mean and "
        "standard deviation over seeds).</footer>"
    )
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"
