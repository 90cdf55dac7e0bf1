"""``vaesweep report``: read the runs, aggregate, draw, write the reading, save the report.

Outputs in the report folder (``DIR/report`` of the first DIR unless ``out`` is given):
``index.html`` (one self-contained file) or ``index.md``, one PNG per figure, ``summary.csv``
(one row per run) and ``seeds.csv`` (one row per setting: mean and standard deviation over
seeds). Never imports torch or Hydra.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vaesweep.errors import UserError, printable
from vaesweep.record import contract
from vaesweep.record.files import atomic_write_bytes, atomic_write_text
from vaesweep.record.sweep_plan import PLAN_FILE
from vaesweep.report.data.aggregate import SweepRecords, build_sweep, summary_columns
from vaesweep.report.data.load import REPORT_DIR, load
from vaesweep.report.figures.style import Palette, Rendered
from vaesweep.report.page import Page
from vaesweep.report.reading.build import build_reading
from vaesweep.report.render.tables import left_out_table, runs_table, settings_table

FORMATS = ("html", "md")
SUMMARY_CSV = "summary.csv"
SEEDS_CSV = "seeds.csv"


def figure_makers() -> list[tuple[str, Callable[[SweepRecords, Palette], Rendered | None]]]:
    """The figures in the order the report shows them (the visual answer first)."""
    from vaesweep.report.figures import (
        plot_beta,
        plot_curves,
        plot_disentanglement,
        plot_images,
        plot_kl_heatmap,
        plot_rd,
        plot_spectrum,
    )

    return [
        ("reconstructions", plot_images.fig_reconstructions),
        ("rate_distortion", plot_rd.fig_rate_distortion),
        ("spectrum", plot_spectrum.fig_spectrum),
        ("loss_curves", plot_curves.fig_loss_curves),
        ("beta_summary", plot_beta.fig_beta_summary),
        ("kl_heatmap", plot_kl_heatmap.fig_kl_heatmap),
        ("information", plot_beta.fig_information),
        ("tradeoff", plot_disentanglement.fig_tradeoff),
        ("disentanglement", plot_disentanglement.fig_disentanglement),
        ("factor_information", plot_disentanglement.fig_factor_information),
        ("samples", plot_images.fig_samples),
        ("traversals", plot_images.fig_traversals),
        ("beta_t", plot_curves.fig_beta_t),
        ("grad_balance", plot_curves.fig_grad_balance),
    ]


def make_figures(sweep: SweepRecords) -> list[Rendered]:
    """Every figure that the data support; one that fails is reported, not fatal."""
    palette = Palette(sweep.table)
    figures = []
    for name, maker in figure_makers():
        try:
            # Extreme values (a diverging run) make numpy and matplotlib warn about overflow
            # on every axis computation; a figure that still fails is listed below.
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                warnings.simplefilter("ignore", UserWarning)
                fig = maker(sweep, palette)
        except Exception as err:  # a plotting bug on odd data must not cost the whole report
            from vaesweep.report.figures.style import plt

            plt.close("all")
            sweep.problems.append(f"figure {name} could not be drawn ({type(err).__name__}: {err})")
            continue
        if fig is not None:
            figures.append(fig)
    return figures


def _title(sweep: SweepRecords, sources: list[Path]) -> str:
    names = ", ".join(p.resolve().name for p in sources)
    return f"vaesweep report: {names}"


def _check_out(report_dir: Path) -> None:
    """A report folder never mixes with a record: not a run's folder or a folder inside it
    (its own ``report/``, the default for a run, excepted), and not a sweep's own folder,
    whose files the report would sit among (or replace: the grids)."""
    where = report_dir.expanduser().resolve()
    for folder in (where, *where.parents):
        if (folder / contract.SUMMARY_FILE).is_file():
            own = folder / REPORT_DIR
            if where == own or own in where.parents:
                return
            raise UserError(
                f"--out {printable(report_dir)} is inside the run {printable(folder)}, whose "
                f"files the report would mix with or replace; use a folder of its own, e.g. "
                f"{printable(own)} (the default)"
            )
    if (where / PLAN_FILE).is_file():
        raise UserError(
            f"--out {printable(report_dir)} is a sweep's own folder; use a folder of its own, "
            f"e.g. {printable(where / REPORT_DIR)} (the default)"
        )


def build_report(
    dirs: list[Path],
    fmt: str = "html",
    out: Path | None = None,
    outputs: Path | None = None,
    console: Any = None,
) -> Path:
    """Write the report of the runs in ``dirs`` (default: the newest sweep under ``outputs``).

    Returns the path of ``index.html`` (``fmt="html"``) or ``index.md`` (``fmt="md"``).
    Raises :class:`~vaesweep.errors.UserError` for an unknown format, a directory that holds no
    run, or a report folder that cannot be written.
    """
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not supported; use html or md")
    t0 = time.perf_counter()
    loaded = load([Path(d) for d in dirs], outputs)
    sweep = build_sweep(loaded)
    report_dir = Path(out) if out else loaded.sources[0].path / REPORT_DIR
    _check_out(report_dir)
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot write the report to {report_dir} ({err.strerror})") from None
    table = sweep.table[summary_columns(sweep)]
    atomic_write_text(report_dir / SUMMARY_CSV, table.to_csv(index=False))
    atomic_write_text(report_dir / SEEDS_CSV, sweep.groups.to_csv(index_label="group"))
    figures = make_figures(sweep)
    for fig in figures:
        atomic_write_bytes(report_dir / f"{fig.name}.png", fig.png)
    produced = {f.name for f in figures}
    for name, _ in figure_makers():  # a figure this report does not have must not linger
        if name not in produced:
            (report_dir / f"{name}.png").unlink(missing_ok=True)
    reading = build_reading(sweep)
    tables = [
        ("Settings: mean ± standard deviation over seeds", settings_table(sweep)),
        ("Every run", runs_table(sweep)),
        ("Runs left out of the final-value plots", left_out_table(sweep)),
    ]
    page = Page(
        title=_title(sweep, [s.path for s in loaded.sources]),
        sources=[str(s.path) for s in loaded.sources],
        reading=reading,
        figures=figures,
        tables=tables,
        files=[f"{f.name}.png" for f in figures] + [SUMMARY_CSV, SEEDS_CSV],
    )
    if fmt == "html":
        from vaesweep.report.render.html import render_html as render

        path = report_dir / "index.html"
    else:
        from vaesweep.report.render.markdown import render_markdown as render

        path = report_dir / "index.md"
    atomic_write_text(path, render(page))
    if console is not None:
        n_ok = int((sweep.table["usable"] & ~sweep.table["partial"]).sum())
        n_partial = int(sweep.table["partial"].sum())
        values = f"{n_ok} with final values" + (
            f", {n_partial} not finished (compared at their latest epoch)" if n_partial else ""
        )
        console.print(
            f"report: {len(sweep.table)} runs ({values}), {len(figures)} figures "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        from rich.markup import escape

        for problem in sweep.problems:
            console.print(f"[yellow]warning:[/] {escape(problem)}", soft_wrap=True)
        console.print(f"wrote {escape(str(path))}")
    return path
