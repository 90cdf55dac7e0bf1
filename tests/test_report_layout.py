"""The report package's shape: stages that import only the stages before them, no import cycle
(type-only imports included), and nothing heavy or test-only.

Stages, in the order ``build_report`` runs them: ``numbers`` (formatting, used by all) ->
``data`` -> ``figures`` -> ``reading`` -> ``page`` -> ``render`` -> ``build``. ``figures`` and
``reading`` are independent of each other. Every import statement counts, wherever it sits
(module level, inside a function, under ``TYPE_CHECKING``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import vaesweep.report

PACKAGE = Path(vaesweep.report.__file__).parent
#: What each stage may import from the report (besides itself).
ALLOWED = {
    "numbers": set(),
    "data": {"numbers"},
    "figures": {"numbers", "data"},
    "reading": {"numbers", "data"},
    "page": {"figures", "reading"},
    "render": {"numbers", "data", "figures", "reading", "page"},
    "build": {"numbers", "data", "figures", "reading", "page", "render"},
    "": {"build"},  # the package's __init__: build_report, lazily
}
FORBIDDEN_ROOTS = ("torch", "torchvision", "hydra", "omegaconf", "vaesweep.testing")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(("vaesweep", "report", *parts))] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names (``from a import b`` gives ``a.b``
    when that is a module of the report, else ``a``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 else ""


def test_stages_import_only_earlier_stages() -> None:
    modules = _modules()
    assert {_stage(m) for m in modules} == set(ALLOWED)
    wrong = []
    for module, path in modules.items():
        for target in _imports(path):
            stage = _stage(target)
            if (
                target in modules
                and stage != _stage(module)
                and stage not in ALLOWED[_stage(module)]
            ):
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong


def test_stage_packages_import_nothing() -> None:
    """A stage's ``__init__`` only documents it, so importing one module of a stage never runs
    another (and ``from vaesweep.report.reading import findings`` cannot close a loop)."""
    for module, path in _modules().items():
        if path.name == "__init__.py" and module != "vaesweep.report":
            assert not _imports(path), module


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = {
        m: {t for t in _imports(p) if t in modules and t != m and not m.startswith(t + ".")}
        for m, p in modules.items()
    }
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [])
    assert not cycles, cycles


def test_nothing_heavy_or_test_only() -> None:
    bad = [
        f"{module} imports {target}"
        for module, path in _modules().items()
        for target in _imports(path)
        if any(target == r or target.startswith(r + ".") for r in FORBIDDEN_ROOTS)
    ]
    assert not bad, bad
