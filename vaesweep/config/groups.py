"""Config groups whose options each have their own schema, in one table.

``model=conv`` and ``model=mlp`` take different keys, so each option is its own dataclass,
chosen by a key stored in the config (``model.arch``, ``kl.method``). The Hydra bridge
registers these schemas, :mod:`vaesweep.config.messages` names the option a stray key belongs
to, and :func:`vaesweep.config.from_dict.config_from_dict` rebuilds a stored run's config
from this one table.
"""

from __future__ import annotations

from vaesweep.config.kl import KL_SCHEMAS
from vaesweep.config.model import MODEL_SCHEMAS

#: {group: {option: schema}}.
OPTION_SCHEMAS: dict[str, dict[str, type]] = {"model": MODEL_SCHEMAS, "kl": KL_SCHEMAS}
#: {group: the field that names the option}.
OPTION_KEYS: dict[str, str] = {"model": "arch", "kl": "method"}
