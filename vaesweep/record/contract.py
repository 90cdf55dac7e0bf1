"""The on-disk run format: the contract between training (writer) and ``vaesweep report`` (reader).

A run directory holds:

``metrics.csv``
    One row per evaluated epoch and split (``train``, ``val``), columns :data:`METRIC_COLUMNS`
    in that order, then method-specific columns (:data:`OPTIONAL_COLUMNS`, present when the
    run produced them), then ``kl_dim_0 .. kl_dim_{M-1}`` (KL per latent dimension). Units:
    nats per image for ``nll``, ``kl``, ``elbo``; ``recon`` is in the likelihood's unit
    (SSE per image for ``mse``, nats otherwise); ``mse`` is per pixel (pixels in [0, 1]);
    ``psnr`` in dB; ``seconds`` is the wall time of that split's pass.
``summary.json``
    Keys :data:`SUMMARY_KEYS`: status, the final validation metrics, the end-of-run IWAE
    estimate, what the run was (config, data, model), wall time and versions.
``config.yaml``
    The fully resolved config the run used.
``checkpoint.pt``
    Model, optimiser, KL-controller and RNG state after the last finished epoch, as a
    safetensors file whose metadata holds the non-tensor state as JSON (read with
    :func:`vaesweep.tensorfile.loads`; nothing in it is unpickled).
``reconstructions.png``, ``samples.png``, ``traversals.png``
    Image grids; their layout (rows, columns, cell size) is in ``summary.json["images"]``.
``disentanglement.json``
    Runs on a dataset with known factors (``data=dsprites``, ``data=shapes``) only: the
    disentanglement metrics of the final model's means of q(z|x), written at the end of the run
    and by ``vaesweep eval RUN --disentanglement``. Keys: ``factors`` and ``factor_sizes``;
    ``settings`` (sample sizes, bins, seed; ``preset``: published | quick); ``scores`` (the
    headline numbers, :data:`DISENTANGLEMENT_SCORES`, null when skipped); ``metrics``, per
    metric its score and details: ``mig.mutual_information`` (latents x factors, nats),
    ``mig.normalised_mutual_information`` (divided by H(factor)), ``mig.top_latent`` (the latent
    sharing the most information with each factor), ``dci.importance`` (latents x factors),
    ``sap.matrix``, ``factor_vae.votes``; ``skipped`` (metric -> why); ``seconds``;
    ``encoded_combinations``. The same ``scores`` are in ``summary.json["disentanglement"]``.
``eval.json``
    Written by ``vaesweep eval RUN``: ``{"evaluations": {key: entry}}``, one entry per
    evaluation setting, keyed like ``split=val,images=360,iwae_samples=1000`` (and
    ``disentanglement_preset=quick`` with ``--disentanglement``); evaluating again with the
    same settings replaces that entry, with others adds one
    (:mod:`vaesweep.record.evaluations`). An entry holds the metrics recomputed from
    ``checkpoint.pt`` (the keys of :func:`vaesweep.commands.evaluate.evaluate_run`'s result)
    and the checkpoint's ``epoch``.
``events.out.tfevents.*``, ``mlflow.json`` (with ``tracker=tensorboard`` / ``mlflow``)
    TensorBoard's event files, and the ids of the run's MLflow run (:data:`MLFLOW_FILE`);
    views of the files above for the trackers, never read by ``vaesweep report``.

Every file is written to a temporary name and renamed, so a killed run never leaves a
half-written file. The format version is :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "checkpoint.pt"
RECONSTRUCTIONS_FILE = "reconstructions.png"
SAMPLES_FILE = "samples.png"
TRAVERSALS_FILE = "traversals.png"
#: Written by ``vaesweep eval``: metrics recomputed from the checkpoint, one entry per setting.
EVAL_FILE = "eval.json"
#: Disentanglement metrics of runs on factor datasets (see the module docstring).
DISENTANGLEMENT_FILE = "disentanglement.json"
#: The headline disentanglement scores, as keys of ``disentanglement.json["scores"]`` and
#: ``summary.json["disentanglement"]``: BetaVAE and FactorVAE accuracy, MIG, SAP, DCI.
DISENTANGLEMENT_SCORES = (
    "beta_vae",
    "factor_vae",
    "mig",
    "sap",
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness",
)
#: With ``tracker=mlflow``: ``{"tracking_uri", "experiment_id", "run_id"}`` of the MLflow run
#: of a run directory (resuming continues it), or of a sweep directory's parent run.
MLFLOW_FILE = "mlflow.json"

#: ``summary.json["status"]`` of a run; a run directory without a readable summary is pending.
PENDING, RUNNING, COMPLETED, DIVERGED, FAILED = (
    "pending",
    "running",
    "completed",
    "diverged",
    "failed",
)
#: Stopped by Ctrl-C, SIGTERM or SIGHUP; resumable from its last checkpoint.
INTERRUPTED = "interrupted"
STATUSES = (PENDING, RUNNING, COMPLETED, DIVERGED, FAILED, INTERRUPTED)
#: Statuses after which a run does no more work.
FINISHED = (COMPLETED, DIVERGED, FAILED)

#: Always present, in this order.
METRIC_COLUMNS = (
    "epoch",  # 1-based epoch just finished
    "step",  # optimiser steps taken so far
    "split",  # train | val
    "beta",  # the configured beta
    "beta_t",  # KL weight in effect at the end of the epoch (canonical convention)
    "loss",  # the training objective per image (as minimised)
    "recon",  # reconstruction term per image: SSE for mse, nats otherwise
    "nll",  # -log p(x|z) per image in nats under the decoder density (mse: sigma^2 = 1/2)
    "kl",  # KL(q(z|x) || p(z)) per image, nats (the rate)
    "elbo",  # -(nll + kl): ELBO at beta = 1, nats per image
    "elbo_calib",  # ELBO under a Gaussian decoder with sigma^2 = this split's per-pixel MSE
    "sse",  # squared error per image of the decoder mean
    "mse",  # per-pixel mean squared error
    "psnr",  # 10 log10(1 / mse), dB
    "active_units",  # latent dims with Var_x(E[z_j|x]) > 0.01 (Burda et al. 2016)
    "beta_sum",  # canonical beta: recon and KL both summed per image
    "beta_norm",  # Higgins et al.'s normalised beta = beta_sum * M / D
    "sigma2_eff",  # implied Gaussian decoder variance (NaN without a Gaussian reading)
    "beta_calib",  # sigma2_eff / mse: >> 1 over-regularised, ~1 calibrated, << 1 autoencoder
    "seconds",  # wall time of this split's pass
    "images_per_sec",
    "lr",
)

#: Present when the run produced them (validation rows carry mi .. grad_norm_kl).
OPTIONAL_COLUMNS = (
    "mi",  # I_q(x;z), nats (Hoffman & Johnson 2016, over eval.mi_images; at most log N)
    "marginal_kl",  # KL(q(z) || p(z)) = kl - mi, nats
    "grad_norm_recon",  # || E_eps d recon / d(mu, logvar) || (eval.grad_draws draws averaged)
    "grad_norm_kl",  # || d beta_t*KL / d(mu, logvar) ||
    "grad_cos",  # cosine of the two expected gradients (-1: they cancel, a stationary point)
    "decoder_sigma",  # decoder std for Gaussian-family / Laplace / logistic likelihoods
    "free_bits_share",  # share of KL groups under the free-bits threshold
    "kl_target",  # capacity C_t or the PI controller's KL target, nats
    "pi_error",  # PI controller error target - KL
    "geco_lambda",  # GECO's Lagrange multiplier
    "geco_constraint",  # GECO's moving-average constraint MSE / kappa^2 - 1
)

KL_DIM_PREFIX = "kl_dim_"

SUMMARY_KEYS = (
    "schema",  # SCHEMA_VERSION
    "status",  # running | completed | diverged | failed
    "error",  # None, or one line saying what went wrong
    "error_kind",  # None | "user" (bad input) | "numeric" (diverged) | "internal"
    "name",  # run directory name
    "beta",
    "seed",
    "overrides",  # the command-line overrides that made this run
    "epochs",  # epochs the run trains (the last may be partial): train.epochs, or from train.steps
    "steps",  # optimiser steps the run trains: train.steps, or train.epochs x steps_per_epoch
    "steps_per_epoch",  # ceil(n_train / batch_size)
    # {"rule", "tolerance", "window", "from_step", "to_step", "rel_change", "relative_to",
    #  "converged"}: did the validation objective still fall over the last 10% of steps;
    # rel_change = (start - end) / |start| of that window (evaluation/convergence.py)
    "convergence",
    # While a run trains, epochs_done / step / final are refreshed at most every 2 s (metrics.csv
    # and checkpoint.pt every epoch); when it ends they are exact.
    "epochs_done",
    "step",
    "final",  # {"train": {...}, "val": {...}}: the last metrics rows (without kl_dim_*)
    "kl_per_dim",  # final validation KL per latent dimension
    # {"nll", "bpd", "elbo_nll", "elbo_bpd" (the ELBO on the same inputs and draws),
    #  "samples", "images", "split", "dequantized", and for mse runs "calibrated": {"nll",
    #  "bpd", "sigma2"}: the bound with sigma^2 = the final val MSE} or None
    "iwae",
    # Factor datasets only: {score name: value or None for each of DISENTANGLEMENT_SCORES,
    #  "preset", "factors", "top_latent" (per factor: the latent carrying most of it, or null),
    #  "seconds"}; None otherwise.
    "disentanglement",
    "config",  # the resolved config as a dict
    # {"name", "root", "path" (absolute), "shape", "n_pixels", "n_train", "n_val", "n_test",
    #  "source", "notes",
    #  "pca": {"eigenvalues" (top, descending, per-image SSE units), "total_variance", "n_images"}}
    "data",
    "model",  # {"arch", "latent_dim", "parameters"}
    "images",  # {"reconstructions": {"rows", "cols", "cell", "val_index"}, ...}
    "wall_time_s",
    "timings",  # {"setup_s", "train_s", "record_s", "final_s", "disentanglement_s" (factor data)}
    "stack",  # trained in a stack: the run names of its members, this one included
    "started",
    "finished",
    "resumed",  # epochs at which the run was resumed
    "device",
    "threads",
    "host",
    "versions",  # {"vaesweep", "torch", "python", "platform"}, and from a git clone
    # "git_commit" and "git_modified" (record/provenance.py)
    "config_hash",
)
