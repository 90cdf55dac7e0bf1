"""The report's files: every figure drawn, one self-contained HTML page, Markdown, escaping."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from vaesweep.report.build import SEEDS_CSV, SUMMARY_CSV, build_report
from vaesweep.report.data.aggregate import build_sweep
from vaesweep.report.data.load import load
from vaesweep.report.figures.style import Palette
from vaesweep.testing.fabricate import fabricate_run, fabricate_sweep

#: Each test renders whole reports (every figure): seconds each, so not in `make test-fast`.
pytestmark = pytest.mark.slow

BETA_FIGURES = {
    "reconstructions",
    "rate_distortion",
    "spectrum",
    "loss_curves",
    "beta_summary",
    "kl_heatmap",
    "information",
    "samples",
    "traversals",
    "grad_balance",
}


@pytest.fixture(scope="module")
def beta_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("out") / "betas"
    fabricate_sweep(root, [0.01, 0.1, 1.0, 8.0], [0, 1])
    build_report([root])
    return root


@pytest.fixture(scope="module")
def methods_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("out") / "methods"
    fabricate_sweep(root, [1.0], methods=["constant", "warmup", "geco"])
    build_report([root], fmt="md")
    return root


def _pngs(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in folder.glob("*.png")}


def test_every_figure_is_drawn(beta_sweep: Path) -> None:
    pngs = _pngs(beta_sweep / "report")
    assert set(pngs) == BETA_FIGURES  # no beta_t: every run is constant-beta
    for name, path in pngs.items():
        with Image.open(path) as im:
            assert im.format == "PNG"
            assert im.width >= 300 and im.height >= 150, name
            # Not blank: a drawn figure has many distinct colours.
            assert len(im.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 20


def test_methods_get_beta_t_figure(methods_sweep: Path) -> None:
    pngs = _pngs(methods_sweep / "report")
    assert "beta_t" in pngs
    assert "grad_balance" in pngs


def test_html_is_one_self_contained_file(beta_sweep: Path) -> None:
    report = beta_sweep / "report"
    page = (report / "index.html").read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    pngs = _pngs(report)
    assert len(images) == len(pngs)
    assert {base64.b64decode(b) for b in images} == {p.read_bytes() for p in pngs.values()}
    # Nothing is loaded from elsewhere: every src is embedded, no stylesheet or script links.
    assert set(re.findall(r'src="([a-z]+):', page)) == {"data"}
    assert "<link" not in page and "<script" not in page
    assert 'href="http' not in page
    # The answer comes before the figures, the tables after them.
    assert '<h2 id="answer">Why the reconstructions at β=8 are worse than at β=0.01</h2>' in page
    assert page.index('id="answer"') < page.index("<figure") < page.index('id="tables"')


def test_csv_files_are_written(beta_sweep: Path) -> None:
    summary = pd.read_csv(beta_sweep / "report" / SUMMARY_CSV)
    seeds = pd.read_csv(beta_sweep / "report" / SEEDS_CSV)
    assert len(summary) == 8 and len(seeds) == 4


def test_markdown_report(methods_sweep: Path) -> None:
    report = methods_sweep / "report"
    text = (report / "index.md").read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all((report / link).is_file() for link in links)
    assert set(links) == {f"{name}.png" for name in _pngs(report)}
    assert "## What β did in these runs" in text  # no beta comparison among methods
    assert "| setting |" in text
    assert "KL\\-control" not in text and "KL-control methods" in text


def test_names_and_config_values_are_escaped(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    evil_run = 'b<script>alert("x")&'  # no "/": it is a directory name
    fabricate_run(root / evil_run, beta=0.1, images=False)
    fabricate_run(
        root / "plain",
        beta=1.0,
        images=False,
        overrides={"data.name": "<img src=x onerror=alert(1)>"},
    )
    page = build_report([root]).read_text(encoding="utf-8")
    assert "<script>" not in page and "<img src=x" not in page
    assert "b&lt;script&gt;alert(&quot;x&quot;)&amp;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    md = build_report([root], fmt="md").read_text(encoding="utf-8")
    assert "<script>" not in md and "\\<script\\>" in md


def test_old_figures_do_not_linger(tmp_path: Path) -> None:
    root = tmp_path / "s"
    fabricate_sweep(root, [0.1, 1.0], images=False)
    stale = root / "report" / "beta_t.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    build_report([root])
    assert not stale.exists()
    assert not (root / "report" / "reconstructions.png").exists()  # no grids were written


def test_colours_follow_beta_consistently(beta_sweep: Path) -> None:
    sweep = build_sweep(load([beta_sweep]))
    pal = Palette(sweep.table)
    assert pal.by == "beta"
    # Same beta, same colour; colours ordered along the colour map by log beta.
    colours = [pal.colour[g] for g in ["β=0.01", "β=0.1", "β=1", "β=8"]]
    assert len(set(colours)) == 4
    greens = [c[1] for c in colours]  # viridis: green channel rises with the map position
    assert greens == sorted(greens)


def test_epoch_axes_tick_whole_epochs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 3-epoch sweep's curves were ticked at 1.00, 1.25, 1.50, ... epochs."""
    from vaesweep.report.figures import plot_curves

    fabricate_sweep(tmp_path / "s", [0.1, 1.0], epochs=3, images=False)
    sweep = build_sweep(load([tmp_path / "s"]))
    figures: list = []
    monkeypatch.setattr(plot_curves, "render", lambda fig: figures.append(fig) or "")
    plot_curves.fig_loss_curves(sweep, Palette(sweep.table))
    plot_curves.fig_grad_balance(sweep, Palette(sweep.table))
    assert len(figures) == 2
    for fig in figures:
        for ax in fig.axes[:2]:
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_kl_heatmap_counts_are_each_runs_count_averaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count under each heatmap column is each run's count averaged over seeds, as the
    tables and the reading count (it counted the averaged column: 14 where the text said 13.5)."""
    import numpy as np

    from vaesweep.report.figures import plot_kl_heatmap

    fabricate_sweep(tmp_path / "s", [0.1], [0, 1, 2], images=False)
    sweep = build_sweep(load([tmp_path / "s"]))
    per_run = ([1.0, 1.0, 0.05], [1.0, 0.05, 0.05], [1.0, 0.2, 0.05])  # 2, 1, 2 dims >= 0.1
    for k, dims in zip(sweep.usable.index, per_run, strict=True):
        sweep.kl_dims[k] = np.array(dims)  # averaged column: 1, 0.42, 0.05 -> 2 dims
    figures: list = []
    monkeypatch.setattr(plot_kl_heatmap, "render", lambda fig: figures.append(fig) or "")
    plot_kl_heatmap.fig_kl_heatmap(sweep, Palette(sweep.table))
    ticks = [t.get_text() for t in figures[0].axes[0].get_xticklabels()]
    assert ticks == ["β=0.1\n1.67 dims ≥ 0.1"], ticks


@pytest.mark.parametrize(("smallest", "extend"), [(1e-5, "min"), (0.05, "neither")])
def test_kl_heatmap_colour_bar_says_when_values_are_under_its_floor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smallest: float, extend: str
) -> None:
    """A collapsed dimension's KL under the scale's floor (0.001 nats) showed in the floor's
    colour with nothing on the bar to say it was smaller than the bar's lowest value."""
    import numpy as np

    from vaesweep.report.figures import plot_kl_heatmap

    fabricate_sweep(tmp_path / "s", [0.1], [0], images=False)
    sweep = build_sweep(load([tmp_path / "s"]))
    sweep.kl_dims[sweep.usable.index[0]] = np.array([2.0, 0.3, smallest])
    figures: list = []
    monkeypatch.setattr(plot_kl_heatmap, "render", lambda fig: figures.append(fig) or "")
    plot_kl_heatmap.fig_kl_heatmap(sweep, Palette(sweep.table))
    colorbar = figures[0].axes[0].images[0].colorbar
    assert colorbar.extend == extend
