"""The house is one-way: no module imports from a higher floor, and no import cycles.

Floors (README, "Architecture"), from the ground up; a module may import from its own floor or
below. Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pex_tuner"

FLOORS: list[set[str]] = [
    {"errors", "progress"},
    {"files", "checks", "db"},
    {"schema"},
    {"rules"},
    {"data"},
    {"datasets", "effects"},
    {"ope"},
    {"policies"},
    {"explain"},
    {"distributed"},
    {"tuning"},
    {"launch"},
    {"workflows"},
    {"cli", "service", "plotting", "client"},
]
FLOOR = {room: i for i, rooms in enumerate(FLOORS) for room in rooms}
# On the top floor: cli calls workflows, serves the service and draws; the service draws nothing.
TOP_FLOOR_ALLOWED = {("cli", "service"), ("cli", "plotting")}
# Only these rooms may import plotting (figures are drawn by flows, not by the library's core);
# plotting itself stands on the ground floors (errors, files) and knows no domain room.
PLOTTING_IMPORTERS = {"workflows", "cli", "plotting"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "pex_tuner" else None


def _imports(path: Path) -> set[str]:
    """Every pex_tuner module named by an import statement in ``path`` (at any depth)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    this = _module_name(path)
    package = this if path.name == "__init__.py" else this.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pex_tuner"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if mod.startswith("pex_tuner"):
                found.add(mod)
                # ``from pex_tuner.x import y`` may name a submodule y
                for a in node.names:
                    sub = f"{mod}.{a.name}"
                    if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() or (
                        PACKAGE.parent / sub.replace(".", "/") / "__init__.py"
                    ).exists():
                        found.add(sub)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_room_has_a_floor() -> None:
    rooms = {_room(m) for m in _graph()} - {None}
    assert rooms <= set(FLOOR), f"rooms without a floor in FLOORS: {sorted(rooms - set(FLOOR))}"


def test_no_import_from_a_higher_floor() -> None:
    bad = []
    for module, imports in _graph().items():
        src = _room(module)
        if src is None:  # pex_tuner/__init__.py: the public API sits on top of everything
            continue
        for target in imports:
            dst = _room(target)
            if dst is None or dst == src:
                continue
            if dst == "plotting":  # drawn by flows: the only exception to the floors
                if src not in PLOTTING_IMPORTERS:
                    bad.append(f"{module} -> {target} (only {sorted(PLOTTING_IMPORTERS)} draw)")
            elif FLOOR[dst] > FLOOR[src]:
                bad.append(f"{module} -> {target} (floor {FLOOR[src]} -> {FLOOR[dst]})")
            elif (
                FLOOR[dst] == FLOOR[src] == len(FLOORS) - 1 and (src, dst) not in TOP_FLOOR_ALLOWED
            ):
                bad.append(f"{module} -> {target} (top-floor rooms do not import each other)")
    assert not bad, "imports against the floors:\n" + "\n".join(sorted(bad))


def test_no_import_cycles() -> None:
    graph = _graph()
    edges = {m: {t for t in imps if t in graph and t != m} for m, imps in graph.items()}
    # a package __init__ re-exporting its own modules is not a cycle of substance
    for m in edges:
        edges[m] = {t for t in edges[m] if not m.startswith(t + ".") and not t.startswith(m + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("room", ["ope"])
def test_ope_knows_no_policy_classes(room: str) -> None:
    for path in (PACKAGE / room).rglob("*.py"):
        assert not {t for t in _imports(path) if _room(t) == "policies"}, path


def test_plotting_stands_on_the_ground_floors() -> None:
    """Figures take results and return figures: plotting imports only errors, files, checks."""
    for module, imports in _graph().items():
        if _room(module) == "plotting":
            rooms = {_room(t) for t in imports} - {"plotting", None}
            assert all(FLOOR[r] <= 1 for r in rooms), (module, sorted(rooms))
