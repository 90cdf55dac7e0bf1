"""What β buys on a dataset with known factors: disentanglement scores, their trade-off with
reconstruction, and which latent carries which factor.

Scores come from each run's ``summary.json["disentanglement"]`` (one column per score in
summary.csv), the latent-factor information from ``disentanglement.json``
(:mod:`vaesweep.record.contract`). Metrics: BetaVAE (Higgins et al. 2017), FactorVAE (Kim & Mnih
2018), MIG (Chen et al. 2018), SAP (Kumar et al. 2018), DCI (Eastwood & Williams 2018), with
disentanglement_lib's settings (Locatello et al. 2019).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vaesweep.record import contract
from vaesweep.record.files import parse_json
from vaesweep.report.data.aggregate import SweepRecords
from vaesweep.report.figures.placement import group_legend
from vaesweep.report.figures.plot_beta import _on_log_axis, _series
from vaesweep.report.figures.style import (
    Palette,
    Rendered,
    margins,
    ordered_groups,
    plt,
    render,
)

#: Score column -> axis label, in the order the panels show them.
SCORE_LABELS = {
    "mig": "MIG",
    "factor_vae": "FactorVAE score",
    "beta_vae": "BetaVAE score",
    "dci_disentanglement": "DCI disentanglement",
    "dci_completeness": "DCI completeness",
    "dci_informativeness": "DCI informativeness",
    "sap": "SAP",
}
#: The scores the trade-off figure plots against reconstruction error.
TRADEOFF = ("mig", "factor_vae", "beta_vae", "dci_disentanglement", "sap", "dci_informativeness")
MAX_HEATMAPS = 8
CITATION = (
    "BetaVAE: Higgins et al. 2017; FactorVAE: Kim & Mnih 2018; MIG: Chen et al. 2018; SAP: "
    "Kumar et al. 2018; DCI: Eastwood & Williams 2018; settings of disentanglement_lib "
    "(Locatello et al. 2019)."
)


def _scored(sweep: SweepRecords) -> list[str]:
    t = sweep.usable
    return [c for c in SCORE_LABELS if c in t.columns and t[c].notna().any()]


def _grid(n: int, width: float = 3.6, height: float = 3.0) -> tuple[Any, np.ndarray]:
    cols = min(n, 4 if n > 6 else 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    margins(fig, 0.65, 0.25, 0.55, 0.4, wspace=0.35, hspace=0.5)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def fig_disentanglement(sweep: SweepRecords, palette: Palette) -> Rendered | None:
    """Each disentanglement score against β: group means over seeds ± one std, every run."""
    scores = _scored(sweep)
    if not scores or _on_log_axis(sweep.usable).empty:
        return None
    fig, axes = _grid(len(scores))
    for ax, col in zip(axes, scores):
        _series(ax, sweep, palette, col)
        ax.set(title=SCORE_LABELS[col], xlabel=sweep.beta_label + " (log scale)")
        lo = min(0.0, float(sweep.usable[col].min()))
        ax.set_ylim(lo, max(1.0, float(sweep.usable[col].max())) * 1.05)
    caption = (
        "Disentanglement scores of the final model's means of q(z|x) against β (log scale), "
        "1 is the best each can reach: group means over seeds with one-standard-deviation bars, "
        "faint markers single runs. Seeds matter as much as β for these scores (Locatello et al. "
        f"2019): compare the bars with the differences between β. {CITATION}"
    )
    return Rendered("disentanglement", "Disentanglement against β", caption, render(fig))


def fig_tradeoff(sweep: SweepRecords, palette: Palette) -> Rendered | None:
    """Reconstruction error against each score, one point per run (Locatello et al. 2019)."""
    t = sweep.usable
    scores = [c for c in TRADEOFF if c in _scored(sweep)]
    if not scores or t["mse"].notna().sum() == 0:
        return None
    fig, axes = _grid(len(scores))
    groups = [g for g in ordered_groups(sweep.table) if g in set(t["group"])]
    for ax, col in zip(axes, scores):
        for g in groups:
            rows = t[t["group"] == g]
            ax.plot(rows[col], rows["mse"], ls="", ms=6, mec="k", mew=0.4, **palette.of(g))
        ax.set(title=SCORE_LABELS[col], xlabel=SCORE_LABELS[col], ylabel="MSE per pixel")
        if (t["mse"] > 0).all() and t["mse"].max() > 10 * t["mse"].min():
            ax.set_yscale("log")
    group_legend(axes[0], palette, groups, fontsize=7)
    caption = (
        "The trade-off: reconstruction error (final validation MSE per pixel, lower is better) "
        "against each disentanglement score (higher is better), one point per run, coloured by "
        "β as in Locatello et al. (2019). Points towards the lower right reconstruct well and "
        f"disentangle; a cloud sloping up to the right is the price of disentanglement. {CITATION}"
    )
    return Rendered(
        "tradeoff",
        "Reconstruction against disentanglement, one point per run",
        caption,
        render(fig),
    )


def _information(sweep: SweepRecords, key: str) -> dict[str, Any] | None:
    run = sweep.runs.get(key)
    if run is None:
        return None
    try:
        data = parse_json((run.path / contract.DISENTANGLEMENT_FILE).read_text())
        mig = data["metrics"]["mig"]
        matrix = np.asarray(mig["normalised_mutual_information"], dtype=float)
        return {"matrix": matrix, "factors": list(data["factors"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def fig_factor_information(sweep: SweepRecords, palette: Palette) -> Rendered | None:
    """Per β (the first seed), I(z_j; v_k) / H(v_k) for every latent j and factor k."""
    t = sweep.usable
    if "mig" not in _scored(sweep):
        return None
    shown = []
    for g in ordered_groups(sweep.table):
        rows = t[(t["group"] == g) & t["mig"].notna()].sort_values("seed")
        info = _information(sweep, str(rows.index[0])) if len(rows) else None
        if info is not None and info["matrix"].ndim == 2 and info["matrix"].size:
            shown.append((g, rows.index[0], info))
        if len(shown) == MAX_HEATMAPS:
            break
    if not shown:
        return None
    n = len(shown)
    cols = min(n, 4)
    rows_n = math.ceil(n / cols)
    m = max(info["matrix"].shape[0] for _, _, info in shown)
    fig, axes = plt.subplots(
        rows_n, cols, figsize=(2.9 * cols + 0.8, (0.22 * m + 1.6) * rows_n), squeeze=False
    )
    margins(fig, 0.6, 0.9, 0.75, 0.35, wspace=0.45, hspace=0.6)
    image = None
    for ax, (g, _key, info) in zip(axes.ravel(), shown):
        mat = np.nan_to_num(info["matrix"])
        image = ax.imshow(mat, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(info["factors"])), info["factors"], rotation=45, fontsize=7)
        ax.set_yticks(range(mat.shape[0]), [f"z{j}" for j in range(mat.shape[0])], fontsize=6)
        ax.grid(False)
        for k in range(mat.shape[1]):  # the latent that carries the most of each factor
            j = int(np.argmax(mat[:, k]))
            ax.text(k, j, f"{mat[j, k]:.2f}", ha="center", va="center", fontsize=6, color="w")
        ax.set_title(palette.label.get(g, g), fontsize=9, color=palette.of(g)["color"])
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(
            image, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02, label="I(z_j; v_k) / H(v_k)"
        )
    caption = (
        "Which latent carries which factor: the mutual information between each latent's mean "
        "(20-bin histogram) and each factor, divided by the factor's entropy, for the first seed "
        "of each β; the largest entry of each factor is printed. A disentangled code has one "
        "bright cell per column, each in a different row (MIG is the gap between the brightest "
        "and second-brightest cell of each column, averaged; Chen et al. 2018)."
    )
    return Rendered(
        "factor_information", "Latent-factor mutual information per β", caption, render(fig)
    )
