"""The house rules of src/peftlab: no import circles, no import from a layer above, no file over 300 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "peftlab"

# Lowest first: a module may import only from its own layer or from layers listed before it.
LAYERS = [
    ["errors", "validators", "distributed", "batch", "packaged_assets"],
    ["checkpoints", "tasks"],
    ["pruning"],
    ["data", "models", "sharing", "weighting", "clipping"],
    ["callbacks"],
    ["reporting"],
    ["builders"],
    ["train", "evaluate", "export", "inference", "generate_text", "predict", "oneshot", "dense_first", "recover"],
    ["runs"],
    ["config"],
    ["cli"],
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}
MAX_LINES = 300


def top_unit(module: str) -> str:
    """``peftlab.data.glue`` → ``data``."""
    return module.split(".")[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def peftlab_imports(path: Path) -> set[str]:
    """Every ``peftlab.*`` module imported anywhere in ``path`` (also inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("peftlab") and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("peftlab"))
    return {m for m in found if m != "peftlab"}


def source_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_top_level_unit_has_a_layer():
    units = {p.stem if p.parent == SRC else p.relative_to(SRC).parts[0] for p in source_files() if p.name != "__init__.py" or p.parent != SRC}
    assert units <= set(LAYER_OF), f"give these a layer in LAYERS: {sorted(units - set(LAYER_OF))}"


def test_no_import_from_a_layer_above():
    upward = []
    for path in source_files():
        me = module_name(path)
        if me == "peftlab":
            continue
        for imported in peftlab_imports(path):
            if LAYER_OF[top_unit(imported)] > LAYER_OF[top_unit(me)]:
                upward.append(f"{me} -> {imported}")
    assert not upward, "imports from a layer above:\n" + "\n".join(sorted(upward))


def test_no_import_circle():
    modules = {module_name(p): p for p in source_files()}
    graph = {m: {i for i in peftlab_imports(p) if i in modules} for m, p in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m)
            assert cycle is None, "import circle: " + " -> ".join(cycle)


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_file_over_300_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES
