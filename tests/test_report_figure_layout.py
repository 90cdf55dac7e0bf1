"""What a reader sees in a figure: nothing drawn under a legend, references inside the axes,
every text inside the figure, axes with enough numbers to read values off.

Each test draws one figure (its ``render`` swapped for a list, so the matplotlib figure can be
measured) from a fabricated sweep written by the real record writers.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox

from vaesweep.report.data.aggregate import SweepRecords, build_sweep
from vaesweep.report.data.load import load
from vaesweep.report.figures import plot_curves, plot_kl_heatmap, plot_rd, plot_spectrum
from vaesweep.report.figures.style import Palette
from vaesweep.testing.fabricate import fabricate_sweep

METHODS = ["constant", "warmup", "cyclical", "capacity", "free_bits", "geco", "pi"]


@pytest.fixture(autouse=True)
def _close_figures() -> Any:
    """The figures drawn here skip ``render``, which closes them; close them after each test."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _sweep(root: Path, betas: list[float], methods: list[str] | None = None) -> SweepRecords:
    fabricate_sweep(root, betas, methods=methods, epochs=4, images=False)
    return build_sweep(load([root]))


def _worse_than_the_mean_image(sweep: SweepRecords) -> None:
    """Runs stopped after a few epochs: every squared error above the mean image's (as 4-epoch
    digits runs on 300 images end), far above the linear VAE's curve and its points."""
    t = sweep.table
    t["sse"] = t["total_variance"] * np.linspace(1.15, 1.4, len(t))
    t["usable"] = True


def _draw(module: Any, maker: Callable[..., Any], sweep: SweepRecords, monkeypatch) -> Figure:
    figures: list[Figure] = []
    monkeypatch.setattr(module, "render", lambda fig: figures.append(fig) or b"")
    assert maker(sweep, Palette(sweep.table)) is not None
    (fig,) = figures
    fig.canvas.draw()
    return fig


def _legends(fig: Figure) -> list[Bbox]:
    found = [ax.get_legend() for ax in fig.axes] + list(fig.legends)
    return [leg.get_window_extent() for leg in found if leg is not None]


def _covered(fig: Figure, legends: list[Bbox] | None = None) -> list[str]:
    """Points and lines of any axes (sampled every pixel or so along each segment) and point
    labels that lie under a legend (any of the figure's, or those given)."""
    legends = _legends(fig) if legends is None else legends
    hits = []
    for ax in fig.axes:
        frame = ax.get_window_extent()
        for line in ax.get_lines():
            xy = line.get_xydata()
            if len(xy) == 0:
                continue
            pix = line.get_transform().transform(np.asarray(xy, dtype=float))
            if line.get_linestyle() not in ("None", "", " ") and len(pix) > 1:
                steps = [np.linspace(a, b, 50) for a, b in pairwise(pix)]
                pix = np.concatenate(steps)
            pix = pix[np.isfinite(pix).all(axis=1)]
            pix = pix[[frame.contains(*p) for p in pix]]  # what the axes clip is not drawn
            for box in legends:
                if any(box.contains(*p) for p in pix):
                    hits.append(f"line {line.get_label()!r} under a legend")
        for text in ax.texts:
            if text.get_text().strip() and any(
                text.get_window_extent().overlaps(box) for box in legends
            ):
                hits.append(f"text {text.get_text()!r} under a legend")
    return hits


def _inside_figure(fig: Figure) -> None:
    page = fig.bbox
    for box in _legends(fig):
        assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1, (box, page)
        assert page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1, (box, page)


@pytest.mark.parametrize(
    ("betas", "methods"),
    [
        ([1.0], METHODS),  # `vaesweep sweep kl=...`: 7 labelled groups and a legend
        ([0.1, 1.0], METHODS),  # 14 groups: a colour bar for beta, a legend of markers
        ([0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0], ["constant", "warmup"]),
    ],
)
def test_rate_distortion_legend_covers_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, betas: list[float], methods: list[str]
) -> None:
    """The group legend sat in the lower left of the plane, over the leaders to the linear
    VAE's points and over points of runs that ended there."""
    sweep = _sweep(tmp_path / "s", betas, methods)
    _worse_than_the_mean_image(sweep)
    fig = _draw(plot_rd, plot_rd.fig_rate_distortion, sweep, monkeypatch)
    assert fig.axes[0].get_legend() is not None
    assert not _covered(fig)
    _inside_figure(fig)


def test_rate_distortion_keeps_the_linear_references_in_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs far above the linear VAE (short training): its points at the same beta and its curve
    under the runs fell below the axes, leaving dotted leaders that ended nowhere and a caption
    about a dashed curve that was not drawn."""
    sweep = _sweep(tmp_path / "s", [1.0], METHODS)
    _worse_than_the_mean_image(sweep)
    fig = _draw(plot_rd, plot_rd.fig_rate_distortion, sweep, monkeypatch)
    ax = fig.axes[0]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()

    def inside(x: float, y: float) -> bool:
        return x0 <= x <= x1 and y0 <= y <= y1

    t = sweep.usable
    lin = t[t["lin_rate"] > 0]
    assert not lin.empty
    for _, r in lin.iterrows():
        assert inside(r["lin_rate"], r["lin_sse"]), (r["label"], r["lin_rate"], r["lin_sse"])
    for _, r in t.iterrows():  # the curve right under each run
        assert inside(r["kl"], r["lin_sse_at_rate"]), (r["label"], r["lin_sse_at_rate"])
    leaders = [  # dotted, two points, in data coordinates (not the mean image's level)
        ln
        for ln in ax.get_lines()
        if ln.get_linestyle() == ":"
        and len(ln.get_xdata()) == 2
        and ln.get_transform() == ax.transData
    ]
    assert len(leaders) == len(lin)
    for ln in leaders:
        for x, y in ln.get_xydata():
            assert inside(x, y), (x, y)


@pytest.mark.parametrize("maker", ["fig_loss_curves", "fig_beta_t", "fig_grad_balance"])
def test_curve_legends_cover_no_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, maker: str
) -> None:
    """The legend of the run groups was placed 'best' inside the KL panel, which with seven
    methods still put it over their lines."""
    sweep = _sweep(tmp_path / "s", [1.0], METHODS)
    # Seven methods whose rates (and gradient balances) spread over three decades: flat lines
    # a short way apart from the bottom to the top of the panel, leaving no free corner.
    c = sweep.curves
    level = c["run"].map({k: 10.0 ** (-1.5 + 0.5 * i) for i, k in enumerate(sweep.table.index)})
    c["kl"] = level
    c["grad_norm_kl"] = c["grad_norm_recon"] * level
    fig = _draw(plot_curves, getattr(plot_curves, maker), sweep, monkeypatch)
    legend = fig.axes[1].get_legend()
    assert legend is not None and len(legend.get_texts()) == len(METHODS)
    assert not _covered(fig, [legend.get_window_extent()])
    _inside_figure(fig)
    # The panels keep their size: the figure widened for the legend instead.
    assert all(ax.get_window_extent().width > 300 for ax in fig.axes[:2])


def test_line2d_is_what_the_check_samples() -> None:
    """The overlap check above reads Line2D vertices; a line drawn across a box is caught."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1], "-")
    ax.legend(handles=[Line2D([], [], label="x" * 20)], loc="center")
    fig.canvas.draw()
    assert _covered(fig)
    plt.close(fig)


@pytest.mark.parametrize(
    ("lo", "hi", "least"),
    [
        (5.4, 14.0, 3),
        (0.085, 0.101, 3),
        (224.9, 256.2, 3),
        (0.6, 0.95, 3),
        (2.0, 8.0, 3),
        (0.01, 100.0, 5),
    ],
)
def test_log_axes_show_enough_numbers(lo: float, hi: float, least: int) -> None:
    """Short log axes were labelled with one number (a reconstruction term from 5.4 to 14, an
    MSE from 0.085 to 0.101) or none (colour images' reconstruction term from 225 to 256), so no
    value could be read off them."""
    import matplotlib.pyplot as plt

    from vaesweep.report.figures.style import plain_log_ticks

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    plain_log_ticks(ax.yaxis)
    fig.canvas.draw()
    shown = [
        t.get_text()
        for tick in ax.yaxis.get_major_ticks() + ax.yaxis.get_minor_ticks()
        for t in [tick.label1]
        if t.get_visible() and t.get_text() and lo <= tick.get_loc() <= hi
    ]
    plt.close(fig)
    assert len(shown) >= least, shown
    assert len(set(shown)) == len(shown), shown  # no number twice


def test_latent_dimension_panel_keeps_its_legend_and_label_off_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The legend of the latent-dimension panel was pinned to the lower left, where a beta
    sweep's active units fall from many to none (the 4-epoch digits sweep's line ran through
    it), and the "M = 16" label sat on the points of runs that use every dimension."""
    from vaesweep.report.figures import plot_beta

    fabricate_sweep(tmp_path / "s", [0.01, 0.1, 1.0, 10.0], epochs=4, latent_dim=16, images=False)
    sweep = build_sweep(load([tmp_path / "s"]))
    t = sweep.table  # what the real sweep (beta=0.01,0.1,1,10) ended with
    t["active_units"] = [12.0, 2.0, 0.0, 0.0]
    t["informative_dims"] = [16.0, 12.0, 0.0, 0.0]
    t["lin_active_units"] = [16.0, 16.0, 3.0, 0.0]
    fig = _draw(plot_beta, plot_beta.fig_beta_summary, sweep, monkeypatch)
    dims = fig.axes[1]
    assert not _covered(fig, [dims.get_legend().get_window_extent()])
    _inside_figure(fig)


def test_latent_dimension_label_covers_no_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "M = 16" was written at the largest beta, on the point of a run that used every
    dimension there (free bits in a methods sweep)."""
    from vaesweep.report.figures import plot_beta

    fabricate_sweep(tmp_path / "s", [1.0], methods=METHODS, latent_dim=16, images=False)
    sweep = build_sweep(load([tmp_path / "s"]))
    t = sweep.table
    t.loc[t["method"] == "free_bits", "informative_dims"] = 16.0
    fig = _draw(plot_beta, plot_beta.fig_beta_summary, sweep, monkeypatch)
    dims = fig.axes[1]
    (label,) = [t for t in dims.texts if t.get_text().startswith("M = ")]
    box = label.get_window_extent().padded(4)  # a marker's radius
    points = [
        xy
        for line in dims.get_lines()
        if line.get_marker() not in ("None", "", None)
        for xy in dims.transData.transform(line.get_xydata())
    ]
    assert points
    assert not [xy for xy in points if box.contains(*xy)], "the M label covers a point"
    assert label.get_window_extent().x1 <= fig.bbox.x1


@pytest.mark.parametrize(
    "label",
    ["β=0.1, lr=0.001  z13 (0.88 nats)", "constant  z15 (0.036 nats)", "β=1", "original"],
)
def test_image_grid_row_labels_are_whole(monkeypatch: pytest.MonkeyPatch, label: str) -> None:
    """The traversal grid's label column was 150 px whatever the labels: a sweep over beta and
    the learning rate read "lr=0.001  z13 (0.88 nats)", its beta cut off at the figure's edge."""
    from vaesweep.report.figures import plot_images

    figures: list[Figure] = []
    monkeypatch.setattr(plot_images, "render", lambda fig: figures.append(fig) or b"")
    row = np.zeros((8, 9 * 10, 3), dtype=np.uint8)
    plot_images._grid_figure([(label, row), ("β=10", row)], header="h", col_labels=["-3"] * 9)
    (fig,) = figures
    fig.canvas.draw()
    for text in fig.axes[0].get_yticklabels():
        box = text.get_window_extent()
        assert box.x0 >= 0 and box.x1 <= fig.axes[0].get_window_extent().x0, text.get_text()


@pytest.mark.parametrize("maker", ["fig_loss_curves", "fig_beta_t", "fig_grad_balance"])
def test_curve_legends_list_only_runs_with_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, maker: str
) -> None:
    """Runs that diverged at their first step (train.lr=50) have no epoch to draw, yet their
    groups were in the legend, with the colour of the run at the same beta that did train."""
    fabricate_sweep(
        tmp_path / "s",
        [0.1, 1.0],
        methods=["constant", "warmup"],
        statuses={"kl=warmup,beta=0.1": "failed"},
        images=False,
    )
    sweep = build_sweep(load([tmp_path / "s"]))
    # A capacity run held at its target logs no beta_t, so no KL gradient: no line in the
    # balance panel, yet its reconstruction gradient is drawn beside it.
    c = sweep.curves
    c.loc[c["run"] == "kl=warmup,beta=1", ["grad_norm_kl", "beta_t"]] = np.nan
    fig = _draw(plot_curves, getattr(plot_curves, maker), sweep, monkeypatch)
    names = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert sorted(names) == sorted(
        sweep.table.loc[sweep.table["status"] == "completed", "label"]
    ), names


def test_spectrum_key_and_note_cover_no_noise_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At beta=0.01 the noise level lies below every eigenvalue, at the bottom of the panel,
    where the key (lower left) and the note on M were written over it."""
    sweep = _sweep(tmp_path / "s", [0.01, 0.1, 1.0, 10.0])
    fig = _draw(plot_spectrum, plot_spectrum.fig_spectrum, sweep, monkeypatch)
    ax = fig.axes[0]
    boxes = _legends(fig) + [t.get_window_extent() for t in ax.texts if t.get_text().strip()]
    frame = ax.get_window_extent()
    inside = [b for b in boxes if b.overlaps(frame)]
    assert not _covered(fig, inside)
    _inside_figure(fig)
    assert any("latent dims" in t.get_text() for leg in fig.legends for t in leg.get_texts())


def test_spectrum_names_every_group_on_shared_levels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven methods ending at four noise levels (constant, cyclical and free bits at 0.5, PI at
    0.485, as the 4-epoch digits sweep did) got one label per level: three groups unnamed."""
    sweep = _sweep(tmp_path / "s", [1.0], METHODS)
    t = sweep.table
    s2 = {"constant": 0.5, "cyclical": 0.5, "free_bits": 0.5, "pi": 0.485, "geco": 0.347}
    s2 |= {"warmup": 0.2, "capacity": 0.5}
    t["sigma2_eff"] = t["method"].map(s2)
    fig = _draw(plot_spectrum, plot_spectrum.fig_spectrum, sweep, monkeypatch)
    texts = [x for x in fig.axes[0].texts if x.get_text().strip()]
    for name in METHODS:
        assert sum(name in x.get_text() for x in texts) == 1, name
    boxes = [x.get_window_extent() for x in texts]
    for i, a in enumerate(boxes):
        assert a.x1 <= fig.bbox.x1, texts[i].get_text()
        assert not any(a.overlaps(b) for b in boxes[i + 1 :]), texts[i].get_text()


def test_one_run_sits_inside_its_log_axes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-run report drew its MSE (0.101) on an axis from 0.1 to 1: the point on the bottom
    edge, PSNR from 0 to 10 dB around a run at 9.9 dB."""
    from vaesweep.report.figures import plot_beta

    sweep = _sweep(tmp_path / "s", [1.0])
    sweep.table["mse"] = 0.1012
    fig = _draw(plot_beta, plot_beta.fig_beta_summary, sweep, monkeypatch)
    mse = fig.axes[2]
    lo, hi = mse.get_ylim()
    share = (np.log(0.1012) - np.log(lo)) / (np.log(hi) - np.log(lo))
    assert 0.2 < share < 0.8, (lo, hi)


def test_captions_name_the_runs_off_the_beta_axis(tmp_path: Path) -> None:
    """A capacity run held at its target logs no beta_t (NaN, as the reading says): the ELBO
    figure's caption said its "final β_t ≤ 0", and the information figure left it out silently."""
    from vaesweep.report.figures import plot_beta

    sweep = _sweep(tmp_path / "s", [1.0], ["constant", "capacity", "geco"])
    t = sweep.table
    t.loc[t["method"] == "capacity", ["beta_t", "beta_x"]] = np.nan
    palette = Palette(t)
    for maker in (plot_beta.fig_beta_summary, plot_beta.fig_information):
        caption = maker(sweep, palette).caption
        assert "capacity" in caption and "no final β_t was logged" in caption, caption
        assert "≤ 0" not in caption and "constant" not in caption.split("Not drawn")[-1]


def test_point_labels_cover_no_other_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where two methods ended close together (capacity and free bits, constant and PI in the
    4-epoch digits sweep) one's name was printed under the other's marker."""
    sweep = _sweep(tmp_path / "s", [1.0], METHODS)
    t = sweep.table
    ended = {  # (rate, SSE) the real sweep ended with
        "constant": (0.228, 6.475),
        "warmup": (1.167, 5.986),
        "cyclical": (0.544, 6.230),
        "capacity": (4.711, 5.451),
        "free_bits": (5.636, 5.444),
        "geco": (0.411, 6.278),
        "pi": (0.239, 6.464),
    }
    t["kl"] = t["method"].map(lambda m: ended[m][0])
    t["sse"] = t["method"].map(lambda m: ended[m][1])
    t.loc[t["method"] == "capacity", ["beta_t", "beta_x"]] = np.nan  # held at its target
    fig = _draw(plot_rd, plot_rd.fig_rate_distortion, sweep, monkeypatch)
    ax = fig.axes[0]
    labels = [a for a in ax.texts if a.get_text() in set(t["label"])]
    assert len(labels) == len(METHODS)
    for a in labels:
        box = a.get_window_extent()
        for _, r in t[t["label"] != a.get_text()].iterrows():
            px, py = ax.transData.transform((r["kl"], r["sse"]))
            assert not box.padded(4).contains(px, py), (a.get_text(), r["label"])
        for b in labels:
            if b is not a:
                assert not box.overlaps(b.get_window_extent()), (a.get_text(), b.get_text())


@pytest.mark.parametrize(
    ("betas", "methods"),
    [
        ([0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0], ["constant", "warmup"]),
        ([0.001, 0.01, 0.1, 1.0, 10.0, 100.0], None),
        ([1.0], METHODS),
    ],
)
def test_rate_distortion_texts_stay_inside_the_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, betas: list[float], methods: list[str] | None
) -> None:
    """A line of constant R + D entering near the right edge wrote its label past it, over
    the beta colour bar; a point near the edge did the same with its name."""
    sweep = _sweep(tmp_path / "s", betas, methods)
    fig = _draw(plot_rd, plot_rd.fig_rate_distortion, sweep, monkeypatch)
    ax = fig.axes[0]
    frame = ax.get_window_extent()
    for text in ax.texts:
        box = text.get_window_extent()
        assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1, text.get_text()


@pytest.mark.parametrize(
    ("betas", "methods"),
    [
        ([0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0], ["constant", "warmup"]),
        ([0.01, 0.1, 1.0, 10.0], None),
        ([1.0], METHODS),
    ],
)
def test_kl_heatmap_column_labels_do_not_overprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, betas: list[float], methods: list[str] | None
) -> None:
    """With 20 groups ("constant, β=0.001" over "16 dims ≥ 0.1") each column label ran into
    its neighbours'."""

    sweep = _sweep(tmp_path / "s", betas, methods)
    fig = _draw(plot_kl_heatmap, plot_kl_heatmap.fig_kl_heatmap, sweep, monkeypatch)
    ticks = [t for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert len(ticks) == sweep.table["group"].nunique()
    boxes = [t.get_window_extent() for t in ticks]
    for a, b in pairwise(boxes):
        assert a.x1 <= b.x0, (a, b)
    for box in boxes:
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and box.y0 >= fig.bbox.y0


@pytest.mark.slow  # writes every run's image grids (torch)
def test_image_grids_say_when_they_show_a_subset(tmp_path: Path) -> None:
    """Prior samples (16 rows) and traversals (12 groups) of a 20-group sweep left groups out
    without a word; only the reconstructions' caption said so."""
    from vaesweep.report.figures import plot_images

    betas = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]
    fabricate_sweep(tmp_path / "s", betas, methods=["constant", "warmup"], epochs=2)
    sweep = build_sweep(load([tmp_path / "s"]))
    palette = Palette(sweep.table)
    expected = {"reconstructions": 16, "samples": 16, "traversals": 12}
    for maker in (plot_images.fig_reconstructions, plot_images.fig_samples):
        fig = maker(sweep, palette)
        assert fig is not None and f"Showing {expected[fig.name]} of 20 groups" in fig.caption
    fig = plot_images.fig_traversals(sweep, palette)
    assert fig is not None and "Showing 12 of 20 groups" in fig.caption


def test_group_label_covers_none_of_its_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the seeds sweep (beta=0.1,1 x seed=0,1,2) the name "β=1" was printed over two of its
    own single-seed points, drawn faint next to the mean."""
    sweep = _sweep_seeds(tmp_path / "s")
    t = sweep.table
    ended = {  # (rate, SSE) of each run of the real 4-epoch sweep
        (0.1, 0): (5.084, 5.440),
        (0.1, 1): (6.586, 5.474),
        (0.1, 2): (5.450, 5.535),
        (1.0, 0): (0.228, 6.475),
        (1.0, 1): (0.4287, 6.911),
        (1.0, 2): (0.4202, 6.915),
    }
    t["kl"] = [ended[(b, int(s))][0] for b, s in zip(t["beta"], t["seed"])]
    t["sse"] = [ended[(b, int(s))][1] for b, s in zip(t["beta"], t["seed"])]
    fig = _draw(plot_rd, plot_rd.fig_rate_distortion, sweep, monkeypatch)
    ax = fig.axes[0]
    labels = [a for a in ax.texts if a.get_text() in set(t["label"])]
    assert len(labels) == 2
    for a in labels:
        box = a.get_window_extent()
        for _, r in t.iterrows():
            px, py = ax.transData.transform((r["kl"], r["sse"]))
            assert not box.contains(px, py), (a.get_text(), r["run"])


def _sweep_seeds(root: Path) -> SweepRecords:
    fabricate_sweep(root, [0.1, 1.0], [0, 1, 2], epochs=4, images=False)
    return build_sweep(load([root]))


def test_groups_that_differ_in_another_key_look_different(tmp_path: Path) -> None:
    """`sweep beta=0.01,0.1,1 model.latent_dim=4,32`: colour said beta and the marker the
    method, so latent_dim=4 and 32 at one beta had the same colour and marker, their lines and
    legend entries identical."""
    from vaesweep.record.sweep_plan import PlannedRun, SweepPlan
    from vaesweep.testing.fabricate import fabricate_run

    root = tmp_path / "s"
    planned = []
    for beta in (0.01, 0.1, 1.0):
        for m in (4, 32):
            values = {"beta": f"{beta:g}", "model.latent_dim": str(m)}
            name = ",".join(f"{k}={v}" for k, v in values.items())
            planned.append(PlannedRun(name, values, [f"{k}={v}" for k, v in values.items()]))
            fabricate_run(root / name, beta=beta, latent_dim=m, images=False)
    SweepPlan(name="s", overrides=[], swept_keys=["beta", "model.latent_dim"], runs=planned).save(
        root
    )
    sweep = build_sweep(load([root]))
    palette = Palette(sweep.table)
    groups = sweep.table["group"].unique()
    assert len(groups) == 6
    looks = {(tuple(palette.of(g)["color"]), palette.of(g)["marker"]) for g in groups}
    assert len(looks) == 6
    # The two shades of one beta differ visibly, not by a rounding of the colour map.
    rgb = {g: np.array(palette.of(g)["color"][:3]) for g in groups}
    beta = dict(zip(sweep.table["group"], sweep.table["beta"]))
    for g in groups:
        twin = next(h for h in groups if h != g and beta[h] == beta[g])
        assert np.linalg.norm(rgb[g] - rgb[twin]) > 0.1


@pytest.mark.parametrize("maker", ["fig_loss_curves", "fig_beta_t", "fig_grad_balance"])
def test_curves_show_the_method_marker_their_legend_explains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, maker: str
) -> None:
    """Ten betas x two methods: colour said beta (a colour bar) and a legend said 'kl.method:
    ● constant ■ warmup', but the lines carried no marker, so the methods could not be told
    apart."""
    betas = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]
    sweep = _sweep(tmp_path / "s", betas, ["constant", "warmup"])
    palette = Palette(sweep.table)
    fig = _draw(plot_curves, getattr(plot_curves, maker), sweep, monkeypatch)
    ax = fig.axes[1]
    assert ax.get_legend() is not None
    shown = {line.get_marker() for line in ax.get_lines()}
    assert set(palette.marker_of_method.values()) <= shown


@pytest.mark.parametrize(
    ("betas", "methods"),
    [
        ([0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0], ["constant", "warmup"]),
        ([0.01, 0.1, 1.0, 10.0], None),
    ],
)
def test_constant_r_plus_d_labels_cover_no_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, betas: list[float], methods: list[str] | None
) -> None:
    """The label of a line of constant R + D was written at the line's start, which at the
    top left is where the largest beta ends: 'R + D = 6.57' over the beta=30 point."""
    sweep = _sweep(tmp_path / "s", betas, methods)
    fig = _draw(plot_rd, plot_rd.fig_rate_distortion, sweep, monkeypatch)
    ax = fig.axes[0]
    means = sweep.usable.groupby("group")[["kl", "sse"]].mean()
    labels = [t for t in ax.texts if "R + D" in t.get_text()]
    assert labels
    for text in labels:
        box = text.get_window_extent()
        for _, r in means.iterrows():
            px, py = ax.transData.transform((r["kl"], r["sse"]))
            marker = Bbox.from_bounds(px - 6, py - 6, 12, 12)  # ms=9: 12.5 px across
            assert not box.overlaps(marker), (text.get_text(), r.name)


@pytest.mark.parametrize(
    ("betas", "circles"),
    [([0.1, 1.0], True), ([0.001 * 2**i for i in range(13)], False)],  # 13 groups > 12
)
def test_rate_distortion_caption_names_hollow_circles_only_where_drawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, betas: list[float], circles: bool
) -> None:
    """Above 12 groups the linear VAE's points are left out, but the caption still told the
    reader to look at hollow circles."""
    sweep = _sweep(tmp_path / "s", betas)
    figures: list[Figure] = []
    monkeypatch.setattr(plot_rd, "render", lambda fig: figures.append(fig) or b"")
    rendered = plot_rd.fig_rate_distortion(sweep, Palette(sweep.table))
    assert rendered is not None
    hollow = [
        line
        for line in figures[0].axes[0].get_lines()
        if line.get_marker() == "o"
        and line.get_markerfacecolor() == "none"
        and len(line.get_xdata())
    ]
    assert bool(hollow) == circles
    assert ("Hollow circles" in rendered.caption) == circles
    assert ("not drawn" in rendered.caption) == (not circles)


def test_beta_curves_are_drawn_per_setting_of_the_other_swept_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """β swept with model.latent_dim=4,8: one curve in β per latent size (one line through all
    six points zig-zagged between them), and an M line for each size."""
    from vaesweep.report.figures import plot_beta
    from vaesweep.report.reading.findings import collapse
    from vaesweep.report.reading.phrases import Groups

    for m in (4, 8):
        fabricate_sweep(tmp_path / f"m{m}", [0.01, 0.1, 1.0], latent_dim=m, epochs=4, images=False)
    sweep = build_sweep(load([tmp_path / "m4", tmp_path / "m8"]))
    assert set(sweep.table["others"]) == {"model.latent_dim=4", "model.latent_dim=8"}
    fig = _draw(plot_beta, plot_beta.fig_beta_summary, sweep, monkeypatch)
    mse, dims = fig.axes[2], fig.axes[1]
    curves = [ln for ln in mse.get_lines() if len(ln.get_xdata()) > 1]
    assert len(curves) == 2
    for ln in curves:
        assert list(ln.get_xdata()) == sorted(ln.get_xdata())  # each runs once along β
    levels = {
        float(ln.get_ydata()[0])
        for ln in dims.get_lines()
        if ln.get_linestyle() == "--" and len(set(ln.get_ydata())) == 1
    }
    assert {4.0, 8.0} <= levels
    listing = collapse(Groups(sweep), None)[0]
    assert "out of M" not in listing and " of 4 at " in listing and " of 8 at " in listing


def test_a_legend_with_no_free_place_moves_above_the_data() -> None:
    """Lines across the whole plot (contrived: a zigzag over every height) left matplotlib's
    'best' place on top of them; the y range now grows until the band above holds it, on a
    linear, a log and a symmetric-log axis alike."""
    import matplotlib.pyplot as plt

    from vaesweep.report.figures.placement import legend_clear

    x = np.linspace(0, 1, 41)
    for scale, low, high in (("linear", 0.0, 1.0), ("log", 0.01, 100.0), ("symlog", 0.0, 100.0)):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.set_yscale(scale)
        zig = np.where(np.arange(41) % 2 == 0, low, high)
        for shift in range(6):
            ax.plot(x, np.roll(zig, shift), label=f"series {shift} with a long name")
        ylim = ax.get_ylim()
        plain = ax.legend(fontsize=8)
        fig.canvas.draw()
        assert _covered(fig, [plain.get_window_extent()])  # the contrived case: no free place
        legend = legend_clear(ax, fontsize=8)
        fig.canvas.draw()
        assert not _covered(fig, [legend.get_window_extent()]), scale
        assert ax.get_ylim()[0] == ylim[0] and ax.get_ylim()[1] > ylim[1]
        assert ax.get_window_extent().contains(*legend.get_window_extent().p0)
        plt.close(fig)


def test_a_legend_with_a_free_place_stays_where_matplotlib_puts_it() -> None:
    import matplotlib.pyplot as plt

    from vaesweep.report.figures.placement import legend_clear

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([0, 1], [0, 0.2], label="low")
    ax.plot([0, 1], [0.1, 0.3], label="also low")
    ax.set_ylim(0, 1)
    legend = legend_clear(ax, fontsize=8)
    fig.canvas.draw()
    assert ax.get_ylim() == (0, 1) and not _covered(fig, [legend.get_window_extent()])
    plt.close(fig)
