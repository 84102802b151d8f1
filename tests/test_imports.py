"""The package's import graph: no cycle, and no import from a lower layer into a higher one
(docs/architecture.md, "Layers"), function-level imports included."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "palette"

# docs/architecture.md, "Layers". A module imports its own layer or lower ones only.
LAYERS = {
    0: ["files", "errors", "tasks", "masks", "nn", "signals", "ema", "lease", "distributed", "sampler_presets",
        "verdict", "reference_sets", "slurm", "frechet", "attempts", "departures", "paper_numbers", "layering",
        "public_config", "external", "unet_presets"],
    1: ["imageio", "config", "unet", "diffusion", "calibration"],
    2: ["degradations", "models", "study", "datacheck"],
    3: ["data", "checkpoint"],
    4: ["prepare", "workflow_data", "train", "inference", "shards", "import_public", "external_model"],
    5: ["weights", "restore", "standins"],
    6: ["metrics", "report", "plan"],
    7: ["cli", "*_cli", "launch"],
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the palette modules it imports, at module level or inside functions alike."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            targets |= {c for c in candidates if c in modules and c != name}
        # A package's __init__ is imported with any of its submodules: not an edge of its own.
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    state = {}  # 1 = on the current path, 2 = done

    def visit(node, path):
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target, path + [target])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def layer_of(module: str) -> int | None:
    """The layer of a palette module (a subpackage's modules share its layer); None if unplaced."""
    if module == "palette":
        return -1
    first = module.split(".")[1]
    for layer, names in LAYERS.items():
        if first in names or (first.endswith("_cli") and "*_cli" in names):
            return layer
    return None


def test_find_cycle_reports_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_palette_has_no_import_cycle():
    graph = import_graph()
    assert {"palette.train", "palette.checkpoint", "palette.models"} <= set(graph)
    assert "palette.models" in graph["palette.checkpoint"]  # the edge that replaced checkpoint -> train
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_has_a_layer_and_imports_none_above_it():
    graph = import_graph()
    unplaced = sorted(module for module in graph if layer_of(module) is None)
    assert not unplaced, f"modules without a layer in LAYERS (docs/architecture.md): {unplaced}"
    upward = sorted(f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
                    for module, targets in graph.items() for target in targets
                    if layer_of(target) > layer_of(module))
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)
