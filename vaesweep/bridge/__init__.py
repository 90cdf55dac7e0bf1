"""The Hydra bridge: the only package that imports Hydra or OmegaConf.

* :mod:`.overrides` — command-line overrides as Hydra's grammar wants them (no Hydra import);
* :mod:`.compose` — compose one run's config into typed dataclasses, map errors to one line;
* :mod:`.grid` — expand a sweep's overrides into runs and validate every run before launching;
* :mod:`.launch` — run a Hydra multirun with :func:`~.launch.hydra_task`, list launchers;
* :mod:`.hydra_internals` — the private Hydra/joblib hooks, each pinned by tests/test_bridge_hooks.py.

Submodules are imported by name (``from vaesweep.bridge import compose``) so that importing
:mod:`.overrides` alone does not import Hydra.
"""
