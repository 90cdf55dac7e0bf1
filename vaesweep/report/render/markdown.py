"""The Markdown report: ``index.md`` next to the PNGs, for a paper draft or a pull request.

Same content and order as the HTML page; figures are linked by relative path, so the folder can
be committed or attached as is. Table cells escape ``|`` and line breaks; free text escapes the
characters Markdown would otherwise read as markup.
"""

from __future__ import annotations

import re

import pandas as pd

from vaesweep.report.page import Page

_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|])")


def md_escape(text: object) -> str:
    return _SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def table_md(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(md_escape(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(md_escape(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def render_markdown(page: Page) -> str:
    reading = page.reading
    out = [f"# {md_escape(page.title)}", ""]
    out.append(
        "Read from "
        + ", ".join(f"`{s}`" for s in page.sources)
        + ". "
        + md_escape(reading.headline)
    )
    out += ["", f"## {md_escape(reading.title)}", ""]
    for p in reading.answer:
        out += [md_escape(p), ""]
    for q, a in reading.questions:
        out += [f"**{md_escape(q)}** {md_escape(a)}", ""]
    if page.figures:
        out += ["## Figures", ""]
        for f in page.figures:
            out += [
                f"### {md_escape(f.title)}",
                "",
                f"![{md_escape(f.title)}]({f.name}.png)",
                "",
                md_escape(f.caption),
                "",
            ]
    out += ["## The reading, in detail", ""]
    for heading, sentences in reading.sections:
        out += [f"### {md_escape(heading)}", ""]
        out += [f"- {md_escape(s)}" for s in sentences]
        out.append("")
    out += ["## Tables", ""]
    for heading, df in page.tables:
        if not df.empty:
            out += [f"### {md_escape(heading)}", "", table_md(df), ""]
    out.append("Files: " + ", ".join(f"`{f}`" for f in page.files) + ".")
    return "\n".join(out) + "\n"
