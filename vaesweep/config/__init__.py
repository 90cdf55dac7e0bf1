"""Typed config schemas, one module per config group (conf/<group>/ mirrors vaesweep/config/<group>.py).

The dataclasses own every default and every option name (``DATASETS``, ``LIKELIHOODS``,
``MODEL_SCHEMAS``, ``KL_SCHEMAS``); the YAML under conf/ shows the defaults with comments, and
the core's tables (data loaders, likelihood factories, KL controllers) map exactly these names.
tests/test_config_yaml.py and tests/test_registries.py fail on any disagreement.
"""

from vaesweep.config.data import DataConfig
from vaesweep.config.eval import EvalConfig
from vaesweep.config.groups import OPTION_KEYS, OPTION_SCHEMAS
from vaesweep.config.kl import (
    KL_SCHEMAS,
    PIKL,
    CapacityKL,
    ConstantKL,
    CyclicalKL,
    FreeBitsKL,
    GecoKL,
    KLConfig,
    WarmupKL,
)
from vaesweep.config.loss import LossConfig
from vaesweep.config.model import MODEL_SCHEMAS, ConvConfig, MLPConfig, ModelConfig
from vaesweep.config.root import Config
from vaesweep.config.train import TrainConfig

__all__ = [
    "KL_SCHEMAS",
    "MODEL_SCHEMAS",
    "OPTION_KEYS",
    "OPTION_SCHEMAS",
    "PIKL",
    "CapacityKL",
    "Config",
    "ConstantKL",
    "ConvConfig",
    "CyclicalKL",
    "DataConfig",
    "EvalConfig",
    "FreeBitsKL",
    "GecoKL",
    "KLConfig",
    "LossConfig",
    "MLPConfig",
    "ModelConfig",
    "TrainConfig",
    "WarmupKL",
]
