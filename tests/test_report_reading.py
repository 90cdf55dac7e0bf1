"""The written reading: each number it quotes is in the tables, each judgement follows them."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vaesweep.report.build import build_report
from vaesweep.report.data.aggregate import SweepRecords, build_sweep
from vaesweep.report.data.load import load
from vaesweep.report.numbers import fmt, fmt_int
from vaesweep.report.reading.build import Reading, build_reading
from vaesweep.testing.fabricate import fabricate_run, fabricate_sweep

BETAS = [0.01, 0.1, 1.0, 8.0]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reading") / "grid"
    fabricate_sweep(root, BETAS, [0, 1], images=False)
    return root


@pytest.fixture(scope="module")
def sweep(sweep_dir: Path) -> SweepRecords:
    return build_sweep(load([sweep_dir]))


@pytest.fixture(scope="module")
def reading(sweep: SweepRecords) -> Reading:
    return build_reading(sweep)


def g(sweep: SweepRecords, label: str, col: str) -> float:
    groups = sweep.groups.set_index("label")
    return float(groups.loc[label, f"{col}_mean"])


def test_the_answer_quotes_the_tables(sweep: SweepRecords, reading: Reading) -> None:
    answer = " ".join(reading.answer)
    hi, lo = "β=8", "β=0.01"

    def v(label: str, col: str) -> str:
        return fmt(g(sweep, label, col))

    share = g(sweep, hi, "sse") / g(sweep, hi, "total_variance")
    assert share >= 0.8  # the mean image's error, or within 20% of it
    look = "no better than" if share >= 1 else "close to"
    assert (
        f"At β=8 the reconstructions are {look} the mean image: their squared error is "
        f"{v(hi, 'sse')} per image (PSNR {v(hi, 'psnr')} dB)"
    ) in answer
    assert f"at β=0.01 it is {v(lo, 'sse')} (" in answer
    assert (
        f"The code carries {v(hi, 'kl')} nats per image at β=8, with "
        f"{fmt_int(g(sweep, hi, 'informative_dims'))} of its 8 latent dimensions above 0.1 nats, "
        f"against {v(lo, 'kl')} nats and {fmt_int(g(sweep, lo, 'informative_dims'))} dimensions "
        f"at β=0.01"
    ) in answer
    assert f"so β=8 assumes pixel noise σ = {v(hi, 'sigma_eff')} on the [0, 1] scale" in answer
    assert f"and β=0.01 assumes σ = {v(lo, 'sigma_eff')} (" in answer
    assert f"{v(hi, 'sigma_eff_255')} grey levels on the 0–255 scale" in answer
    share = g(sweep, hi, "sse") / g(sweep, hi, "total_variance")
    assert f"{100 * share:.0f}% of the data's total variance" in answer
    assert f"β_calib = σ²_eff / MSE is {fmt(g(sweep, hi, 'beta_calib'))} at β=8" in answer
    assert (
        f"{fmt_int(g(sweep, hi, 'lin_active_units'))} of the top 8 principal components" in answer
    )
    # Judgements follow the numbers: beta = 8 left nothing informative and sits near the mean.
    assert g(sweep, hi, "informative_dims") == 0
    assert "at β=8 the posterior has collapsed to the prior" in answer
    assert share >= 1 and "no better than the mean image" in answer


def test_calibrated_beta_is_interpolated_from_the_table(
    sweep: SweepRecords, reading: Reading
) -> None:
    bc = [g(sweep, f"β={b:g}", "beta_calib") for b in BETAS]
    i = next(i for i in range(len(bc) - 1) if (bc[i] - 1) * (bc[i + 1] - 1) <= 0)
    t = -math.log(bc[i]) / (math.log(bc[i + 1]) - math.log(bc[i]))
    star = math.exp(math.log(BETAS[i]) + t * (math.log(BETAS[i + 1]) - math.log(BETAS[i])))
    assert f"near β ≈ {fmt(star, 2)}" in " ".join(reading.answer)


def test_collapse_sentences(sweep: SweepRecords, reading: Reading) -> None:
    section = dict(reading.sections)["Posterior collapse"]
    counts = ", ".join(
        f"{fmt_int(g(sweep, f'β={b:g}', 'informative_dims'))} at β={b:g}" for b in BETAS
    )
    assert section[0] == f"Dimensions carrying at least 0.1 nats, out of M = 8: {counts}."
    inf = [g(sweep, f"β={b:g}", "informative_dims") for b in BETAS]
    j = inf.index(0)
    assert any(
        s.startswith(
            f"Full collapse (no dimension with 0.1 nats) sets in between β={BETAS[j - 1]:g}"
        )
        and f"and β={BETAS[j]:g}" in s
        for s in section
    )


def test_effective_beta_per_setting(sweep: SweepRecords, reading: Reading) -> None:
    section = dict(reading.sections)["Effective β and implied decoder noise"]
    for b, sentence in zip(BETAS, section):
        label = f"β={b:g}"
        assert sentence.startswith(f"{label}: β_sum = {fmt(g(sweep, label, 'beta_sum'))}")
        assert f"σ²_eff = {fmt(g(sweep, label, 'sigma2_eff'))}" in sentence
        bc = g(sweep, label, "beta_calib")
        # Bands (issue 11): near calibrated within a factor 1.5, "somewhat" up to 3.
        if bc > 3:
            verdict = "over-regularised"
        elif bc < 1 / 3:
            verdict = "autoencoder-like"
        elif bc > 1.5:
            verdict = "somewhat over-regularised"
        elif bc < 1 / 1.5:
            verdict = "somewhat under-regularised"
        else:
            verdict = "near calibrated"
        assert sentence.endswith(f"β_calib = {fmt(bc)} ({verdict}).")
    assert any("Bands: β_calib within a factor 1.5 of 1" in s for s in section)
    assert "no β was inflated" in section[-1] and "D = 64" in section[-1]


def test_linear_reference_sentences(sweep: SweepRecords, reading: Reading) -> None:
    section = dict(reading.sections)["Distance from the linear (PCA) reference"]
    for b, sentence in zip(BETAS, section):
        label = f"β={b:g}"
        gap = g(sweep, label, "sse_above_linear")
        ref = g(sweep, label, "lin_sse_at_rate")
        assert (
            f"a linear VAE reaches {fmt(ref)} at that rate, a difference of {fmt(gap)}" in sentence
        )
        assert ("above it" in sentence) == (gap > 0.05 * ref)


def _numbers(text: str) -> list[str]:
    # Numbers as printed: 1,234 / 0.0707 / 6.4e-9 / 95% ; not parts of words like "β_sum" or "L2".
    return re.findall(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e-?\d+)?%?", text)


def assert_numbers_backed(sweep: SweepRecords, reading: Reading) -> None:
    """Every number in the reading is a table value as printed, a constant of the method, or
    one of the few values derived from table columns in plain sight (percentages, the
    interpolated calibrated beta, which has its own test)."""
    allowed: set[str] = set()
    for frame in (sweep.table, sweep.groups):
        for v in frame.select_dtypes("number").to_numpy(dtype=float).ravel():
            if np.isfinite(v):
                allowed |= {fmt(v), fmt(v, 2), fmt_int(v)}
    # Text that came from disk (run names, error messages) may hold numbers of its own.
    for text in [
        *sweep.table["run"],
        *sweep.table["error"],
        *sweep.table["problems"],
        *sweep.problems,
    ]:
        allowed |= set(_numbers(str(text)))
    # Constants of the method, each explained where it is used: thresholds (0.1 nats per
    # dimension, 0.01 variance, 5% of the linear reference), the 0-255 grey scale, the [0, 1]
    # pixel scale, reference years.
    allowed |= {"0", "1", "2", "0.1", "0.01", "255", "5%", "2016", "2017", "2018", "2019", "2021"}
    # Issue 11's constants: the beta_calib bands (1.5, 3), Adam's "recon + 0.1 KL trains like
    # 10 recon + KL", the 8 bits/dim of a uniform density, the balance cosine, the settling
    # window and tolerance.
    allowed |= {"1.5", "3", "10", "8", "-0.9", "20%"}
    # Counts of rows (runs, settings, statuses) are read off the tables' shape.
    allowed |= {str(i) for i in range(len(sweep.table) + 1)}
    groups = sweep.groups
    allowed |= {
        f"{100 * s / t:.0f}%" for s, t in zip(groups["sse_mean"], groups["total_variance_mean"])
    }
    for col in ("beta_t_change", "sigma_change"):  # printed as percentages
        allowed |= {f"{100 * v:.0f}%" for v in groups.get(f"{col}_mean", []) if np.isfinite(v)}
    text = reading.text()
    allowed |= set(re.findall(r"near β ≈ (\S+) ", text))
    strange = [n for n in _numbers(text) if n not in allowed]
    assert not strange, strange


def test_every_number_in_the_reading_is_in_the_tables(
    sweep: SweepRecords, reading: Reading
) -> None:
    assert_numbers_backed(sweep, reading)


@pytest.mark.parametrize("kind", ["methods", "partial", "mean", "single"])
def test_every_number_is_backed_in_other_sweeps(tmp_path: Path, kind: str) -> None:
    root = tmp_path / kind
    if kind == "methods":
        fabricate_sweep(root, [1.0], methods=["constant", "warmup", "geco"], images=False)
    elif kind == "partial":
        fabricate_sweep(
            root,
            [0.03, 0.3, 3.0],
            [0, 1],
            statuses={"beta=3,seed=1": "diverged", "beta=0.3,seed=0": "failed"},
            images=False,
        )
    elif kind == "mean":
        fabricate_sweep(root, [0.001, 0.01], images=False, reduction="mean")
    else:
        fabricate_run(root, beta=0.5, images=False)
    sweep = build_sweep(load([root]))
    reading = build_reading(sweep)
    assert reading.answer
    assert_numbers_backed(sweep, reading)


def test_mean_reduction_is_called_out(tmp_path: Path) -> None:
    fabricate_run(tmp_path / "runs" / "sum", beta=1.0, images=False)
    fabricate_run(tmp_path / "runs" / "mean", beta=1.0, reduction="mean", images=False)
    text = build_reading(build_sweep(load([tmp_path / "runs"]))).text()
    assert (
        "1 run(s) averaged the reconstruction over pixels (loss.recon_reduction=mean), "
        "which multiplies β by D = 64: mean had β = 1 but β_sum = 64" in text
    )


def test_no_collapse_is_not_claimed(tmp_path: Path) -> None:
    root = tmp_path / "low"
    fabricate_sweep(root, [0.001, 0.01], images=False)
    reading = build_reading(build_sweep(load([root])))
    text = reading.text()
    assert "collapsed" not in " ".join(reading.answer)
    assert "No β collapsed fully" in text
    assert "Full collapse" not in text


def test_methods_section(tmp_path: Path) -> None:
    root = tmp_path / "methods"
    fabricate_sweep(root, [1.0], methods=["constant", "warmup", "geco"], images=False)
    sweep = build_sweep(load([root]))
    reading = build_reading(sweep)
    section = dict(reading.sections)["KL-control methods"]
    t = sweep.table.set_index("method")
    for method in ("constant", "warmup", "geco"):
        line = next(s for s in section if s.startswith(f"{method}: "))
        assert f"final β_t = {fmt(t.loc[method, 'beta_t'])}" in line
        assert f"rate {fmt(t.loc[method, 'kl'])} nats" in line
    assert "final KL weights β_t range from" in reading.answer[0]
    assert not reading.questions[0][0].startswith("Is scaling")  # no beta comparison to make


@pytest.mark.slow
def test_reading_is_in_the_report(sweep_dir: Path, reading: Reading) -> None:
    page = build_report([sweep_dir], fmt="md").read_text(encoding="utf-8")
    first = reading.answer[0].replace("_", "\\_")
    assert first in page
    summary = pd.read_csv(sweep_dir / "report" / "summary.csv")
    assert len(summary) == 8


def test_unsettled_schedules_get_schedule_advice_not_controller_advice(tmp_path: Path) -> None:
    """Warm-up and cyclical move β_t on a fixed schedule: 'make the controller faster' is no
    advice for them; a controller (GECO) keeps it."""
    from vaesweep.report.reading.phrases import Groups
    from vaesweep.report.reading.settling import convergence

    fabricate_sweep(tmp_path / "m", [1.0], methods=["warmup", "cyclical", "geco"], images=False)
    sweep = build_sweep(load([tmp_path / "m"]))
    sweep.table["unsettled"] = "β_t"  # every run's β_t still moved at the end
    sweep.table["beta_t_change"] = 0.25
    lines = {line.split(":")[0]: line for line in convergence(Groups(sweep), None)}
    assert len(lines) == 3, lines
    for label, line in lines.items():
        if "geco" in label:
            assert "make the controller faster" in line
        else:
            assert "controller" not in line.split("equilibrium")[1], line
    assert "kl.epochs below train.epochs" in next(v for k, v in lines.items() if "warmup" in k)
    assert "kl.tail" in next(v for k, v in lines.items() if "cyclical" in k)


def test_beta_zero_is_read_as_a_plain_autoencoder(tmp_path: Path) -> None:
    """β = 0 has no KL term: no implied noise level to read ('σ = n/a, n/a grey levels')."""
    fabricate_sweep(tmp_path / "z", [0.0, 1.0], images=False)
    text = repr(build_reading(build_sweep(load([tmp_path / "z"]))))
    assert "a plain autoencoder" in text
    assert "n/a grey levels" not in text


@pytest.mark.parametrize(
    ("likelihood", "words"),
    [("mse", "lowers the squared error by"), ("cbernoulli", "lowers the reconstruction term")],
)
def test_the_slope_sentence_names_the_objectives_distortion(
    tmp_path: Path, likelihood: str, words: str
) -> None:
    """dD/dR = -β holds for the D of the objective: the squared error only under mse."""
    fabricate_sweep(tmp_path / likelihood, [0.1, 1.0], images=False, likelihood=likelihood)
    text = repr(build_reading(build_sweep(load([tmp_path / likelihood]))))
    assert words in text
