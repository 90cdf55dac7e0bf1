"""The import rule of ARCHITECTURE.md: layers only point down (static, via ast; fast).

Each row of :data:`FORBIDDEN` names a layer (module prefixes) and the imports it must never
make. Imports inside functions count too: a late import is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vaesweep"

CORE = (
    "vaesweep.data",
    "vaesweep.model",
    "vaesweep.objective",
    "vaesweep.control",
    "vaesweep.training",
    "vaesweep.evaluation",
)
HYDRA = ("hydra", "omegaconf")
UPPER = ("vaesweep.cli", "vaesweep.commands", "vaesweep.bridge")
SWEEP_RECORD = (
    "vaesweep.record.sweep_plan",
    "vaesweep.record.sweep_index",
    "vaesweep.record.sweep_lock",
)

#: layer (module prefixes) -> imports it must not make (module prefixes).
FORBIDDEN: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (CORE, (*HYDRA, "vaesweep.record", "vaesweep.run", *UPPER, "vaesweep.report")),
    (("vaesweep.config",), (*HYDRA, "vaesweep.record", "vaesweep.run", *UPPER)),
    (("vaesweep.report",), ("torch", *HYDRA, "vaesweep.training", "vaesweep.run", *UPPER)),
    (
        ("vaesweep.record",),
        ("vaesweep.training", "vaesweep.model", "vaesweep.control", *HYDRA, "vaesweep.run", *UPPER),
    ),
    # A run never touches its sweep: the bridge's task function refreshes runs.csv.
    (("vaesweep.run",), (*HYDRA, *UPPER, *SWEEP_RECORD)),
    (("vaesweep.bridge",), ("vaesweep.commands", "vaesweep.cli")),
    (("vaesweep.commands",), ("vaesweep.cli",)),
]
#: Only the bridge may import Hydra or OmegaConf.
HYDRA_ALLOWED = ("vaesweep.bridge",)
#: Modules allowed an arrow the table forbids, with the reason. Keep this empty.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str) -> set[str]:
    """Absolute names of every module imported in ``source`` (relative imports resolved)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: -node.level] if node.level else []
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            # `from vaesweep import record` imports vaesweep.record
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def violations(modules: dict[str, str]) -> list[str]:
    """Every forbidden arrow among ``{module name: source}``, as readable lines."""
    found = []
    for module, source in sorted(modules.items()):
        for name in sorted(imports_of(source, module)):
            if (module, name.split(".")[0]) in EXCEPTIONS or (module, name) in EXCEPTIONS:
                continue
            if _matches(name, HYDRA) and not _matches(module, HYDRA_ALLOWED):
                found.append(f"{module} imports {name}: only vaesweep.bridge imports Hydra")
                continue
            for layer, forbidden in FORBIDDEN:
                if _matches(module, layer) and _matches(name, forbidden):
                    found.append(f"{module} imports {name}, which is above or beside its layer")
    return found


def package_sources() -> dict[str, str]:
    return {module_name(p): p.read_text() for p in PACKAGE.rglob("*.py")}


def test_layers_only_point_down() -> None:
    assert violations(package_sources()) == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("vaesweep.training.trainer", "from vaesweep.record import contract\n"),
        ("vaesweep.model.vae", "def f():\n    import hydra\n"),
        ("vaesweep.report.load", "import torch\n"),
        ("vaesweep.record.files", "from vaesweep.training.trainer import Trainer\n"),
        ("vaesweep.run.job", "from vaesweep.commands.sweep import sweep\n"),
        ("vaesweep.run.job", "from vaesweep.bridge import launch\n"),
        ("vaesweep.run.job", "from vaesweep.record.sweep_index import refresh_index\n"),
        ("vaesweep.bridge.launch", "from vaesweep.commands import train\n"),
        ("vaesweep.commands.train", "from omegaconf import OmegaConf\n"),
        ("vaesweep.evaluation.final", "from vaesweep import record\n"),
        ("vaesweep.control.base", "from .. import bridge\n"),
    ],
)
def test_the_rule_catches_a_wrong_arrow(module: str, source: str) -> None:
    assert violations({module: source}), f"{module}: {source!r} should be a violation"


def test_allowed_arrows_pass() -> None:
    allowed = {
        "vaesweep.bridge.compose": "from omegaconf import OmegaConf\nfrom vaesweep import config\n",
        "vaesweep.commands.sweep": "from vaesweep.bridge import grid\n",
        "vaesweep.run.job": "from vaesweep.record import RunRecord\nimport torch\n",
        "vaesweep.report.load": "import pandas\nfrom vaesweep.record import contract\n",
    }
    assert violations(allowed) == []
