"""The spectrum figure's "N above" counts agree with the reading (a user audit: at β=0.01 the
label said 8 above, capped at M = 8, where the reading said 23 components clear σ²)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from vaesweep.report.data.aggregate import build_sweep
from vaesweep.report.data.load import load
from vaesweep.report.figures import plot_spectrum
from vaesweep.report.figures.style import Palette
from vaesweep.report.numbers import fmt_int
from vaesweep.report.reading.build import build_reading
from vaesweep.testing.fabricate import EIGENVALUES, fabricate_sweep


@pytest.fixture(autouse=True)
def _close_figures() -> Any:
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_label_counts_every_component_above_the_line_as_the_reading_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "s"
    fabricate_sweep(root, [0.01, 1.0], epochs=4, images=False)
    sweep = build_sweep(load([root]))
    figures: list[Figure] = []
    monkeypatch.setattr(plot_spectrum, "render", lambda fig: figures.append(fig) or b"")
    assert plot_spectrum.fig_spectrum(sweep, Palette(sweep.table)) is not None
    labels = {t.get_text().split(":")[0]: t.get_text() for t in figures[0].axes[0].texts}
    groups = sweep.groups.set_index("label")
    # Own count: the fabricated spectrum's eigenvalues above sigma^2 = beta / 2 (mse, summed).
    above = sum(v > 0.01 / 2 for v in EIGENVALUES)
    assert above > 8 == groups.loc["β=0.01", "latent_dim_mean"]
    assert groups.loc["β=0.01", "lin_components_above_mean"] == above
    assert f"{above} above (M = 8 kept)" in labels["β=0.01"], labels
    text = build_reading(sweep).text()
    assert f"{fmt_int(above)} components clear that bar" in text
    # Below M the label is the plain count, the same as the linear VAE keeps.
    few = sum(v > 1.0 / 2 for v in EIGENVALUES)
    assert labels["β=1"].endswith(f", {few} above")
    assert groups.loc["β=1", "lin_active_units_mean"] == few
