"""The tables show what the runs did (exploratory tests: planned steps for a diverged run,
"<NA>" and "<NA>/8" for a run without epochs, a stack member's time without saying so)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from vaesweep.report.data.aggregate import SweepRecords, build_sweep
from vaesweep.report.data.load import load
from vaesweep.report.render.fit import PAGE_PX, min_px
from vaesweep.report.render.html import table_html
from vaesweep.report.render.tables import left_out_table, runs_table, settings_table
from vaesweep.testing.fabricate import fabricate_sweep


def test_steps_done_and_dashes_for_missing_epochs(tmp_path: Path) -> None:
    root = tmp_path / "s"
    fabricate_sweep(
        root,
        [0.01, 0.1, 1.0],
        images=False,
        converged=True,
        statuses={"beta=0.01": "diverged", "beta=0.1": "failed"},
    )
    runs = runs_table(build_sweep(load([root]))).set_index("run")
    assert runs.loc["beta=0.01", "steps"] == "52"  # diverged at epoch 2 of 5 (26 steps each)
    assert runs.loc["beta=1", "steps"] == "130"
    assert runs.loc["beta=0.1", "epochs"] == "–"
    left = left_out_table(build_sweep(load([root]))).set_index("run")
    assert left.loc["beta=0.1", "epochs"] == "–/5"
    assert "<NA>" not in runs.to_string() + left.to_string()


def test_a_stack_members_time_is_labelled_as_its_stacks(tmp_path: Path) -> None:
    root = tmp_path / "s"
    fabricate_sweep(root, [0.1, 1.0], images=False)
    for run in root.glob("beta=*"):
        summary = json.loads((run / "summary.json").read_text())
        summary["timings"] = {"stack_size": 2}
        (run / "summary.json").write_text(json.dumps(summary))
    assert "time (s; a stacked run: its stack's)" in runs_table(build_sweep(load([root])))


# ----------------------------------------------------------------------------- fitting the page

#: A sweep crossing β with two other keys, three seeds each: 20-odd columns per setting.
CROSSED = {"latent_dim": [8, 16], "reduction": ["sum", "mean"]}


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> SweepRecords:
    root = tmp_path_factory.mktemp("wide") / "s"
    fabricate_sweep(root, [0.01, 0.1, 1.0], [0, 1, 2], crossed=CROSSED, epochs=4, images=False)
    return build_sweep(load([root]))


def _tables(page: str) -> list[pd.DataFrame]:
    """Each <table> of the page as strings (headers and cells unescaped, <wbr> dropped)."""
    found = []
    for table in re.findall(r"<table>(.*?)</table>", page, flags=re.S):

        def cells(tag: str, text: str) -> list[str]:
            raw = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.S)
            return [html.unescape(c.replace("<wbr>", "")) for c in raw]

        head = cells("th", table)
        rows = [cells("td", r) for r in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)[1:]]
        found.append(pd.DataFrame(rows, columns=head))
    return found


def test_wide_tables_are_cut_to_fit_the_page(wide: SweepRecords) -> None:
    """Every part fits the page's text column; together the parts hold every column once,
    each part repeating the first (a user audit: the tables scrolled sideways)."""
    settings = settings_table(wide)
    assert sum(min_px(str(c), settings[c], first=i == 0) for i, c in enumerate(settings)) > 1.5 * (
        PAGE_PX
    )
    assert len(_tables(table_html(settings))) > 1
    for df in (settings, runs_table(wide)):
        parts = _tables(table_html(df))
        for part in parts:
            assert part.columns[0] == df.columns[0]
            widths = [min_px(str(c), part[c], first=i == 0) for i, c in enumerate(part)]
            assert sum(widths) <= PAGE_PX, list(part.columns)
        columns = [c for part in parts for c in part.columns[1:]]
        assert columns == list(df.columns[1:])
        pd.testing.assert_frame_equal(
            pd.concat([parts[0], *(p.iloc[:, 1:] for p in parts[1:])], axis=1), df
        )


def test_run_names_and_config_keys_may_wrap(wide: SweepRecords) -> None:
    page = table_html(runs_table(wide))
    assert "model.<wbr>latent_dim" in page
    assert "model.<wbr>latent_dim=8,<wbr>loss.<wbr>recon_reduction=sum,<wbr>beta=0.01," in page
    assert "0.<wbr>" not in page  # never inside a number


def test_a_narrow_table_stays_one_table(tmp_path: Path) -> None:
    root = tmp_path / "s"
    fabricate_sweep(root, [0.1, 1.0], images=False, statuses={"beta=1": "diverged"})
    left = left_out_table(build_sweep(load([root])))
    assert table_html(left).count("<table>") == 1


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("chromium"), reason="needs chromium to lay the page out")
def test_no_table_scrolls_in_a_browser(wide: SweepRecords, tmp_path: Path) -> None:
    """Chromium lays the tables out at a 1280 px window: no table's box is wider than the
    page (the measure behind the audit's screenshot)."""
    from vaesweep.report.page import Page
    from vaesweep.report.reading.build import Reading
    from vaesweep.report.render.html import render_html

    tables = [("settings", settings_table(wide)), ("runs", runs_table(wide))]
    page = render_html(Page("wide", ["s"], Reading("h"), [], tables, []))
    probe = (
        "<script>var o=[];document.querySelectorAll('.scroll').forEach(function(d){"
        "if(d.scrollWidth>d.clientWidth+1)o.push(d.scrollWidth+'>'+d.clientWidth)});"
        "document.body.setAttribute('data-overflow',o.join(';')||'none')</script></body>"
    )
    file = tmp_path / "index.html"
    file.write_text(page.replace("</body>", probe), encoding="utf-8")
    out = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1280,2000",
            "--dump-dom",
            file.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert 'data-overflow="none"' in out, re.findall(r'data-overflow="[^"]*"', out)
