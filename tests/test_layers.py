"""The layer contract of docs/design.md ("Packages"), checked on the real import graph.

* No import cycle between any two modules of models, sinks, streams, tilannekuva:
  every import counts, including those inside functions (a lazy import hides a cycle
  from Python's import machinery, not from the design).
* The rules in ``[tool.importlinter]`` of pyproject.toml (``make lint`` runs the same):
  ``models`` imports none of ``streams``, ``sinks``, ``tilannekuva``; ``sinks`` imports
  no ``streams`` or ``tilannekuva``; ``streams`` imports ``tilannekuva.config`` only.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "sinks", "streams", "tilannekuva")


def import_graph() -> Mapping[str, set[str]]:
    """Module -> the project modules it imports (directly, anywhere in the file)."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One shortest cycle ``[a, b, ..., a]`` per strongly connected component of more
    than one module (or a module that imports itself), in a stable order.

    >>> cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    [['a', 'b', 'c', 'a']]
    >>> cycles({"a": {"b"}, "b": set()})
    []
    """
    succ = {m: sorted(set(edges.get(m, ())) & set(edges)) for m in sorted(edges)}
    # Tarjan's strongly connected components, iteratively (no recursion limit).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in succ:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = len(index)
                stack.append(v)
                on_stack.add(v)
            if i < len(succ[v]):
                work.append((v, i + 1))
                w = succ[v][i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in succ[v]:
                    components.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return sorted(_shortest_cycle(comp, succ) for comp in components)


def _shortest_cycle(comp: list[str], succ: Mapping[str, list[str]]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component."""
    start, inside = comp[0], set(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in succ[v]:
                if w not in inside:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [*reversed(path), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"not a cycle: {comp}")  # pragma: no cover


def test_cycle_finder_finds_a_planted_cycle():
    edges = {
        "models.features": {"models.service_need"},
        "models.service_need": {"models.features", "numpy_like"},
        "models.picture": {"models.contract"},
        "models.contract": set(),
    }
    assert cycles(edges) == [["models.features", "models.service_need", "models.features"]]
    assert cycles({"m": {"m"}}) == [["m", "m"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"b", "a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles_between_modules():
    edges = import_graph()
    assert "models.features" in edges and "streams.app" in edges  # the graph is the tree
    found = cycles(edges)
    report = "\n".join(" -> ".join(c) for c in found)
    assert not found, f"import cycles between modules:\n{report}"


def test_layer_contracts_are_configured():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert sorted(config["root_packages"]) == sorted(PACKAGES)
    rules = {
        c["id"]: (c["type"], set(c["source_modules"]), set(c["forbidden_modules"]))
        for c in config["contracts"]
    }
    assert rules["models-bottom"] == ("forbidden", {"models"}, {"streams", "sinks", "tilannekuva"})
    assert rules["sinks-below-streams"] == ("forbidden", {"sinks"}, {"streams", "tilannekuva"})
    assert rules["streams-settings-only"][:2] == ("forbidden", {"streams"})


def test_layer_contracts_hold():
    """lint-imports on pyproject.toml, as `make lint` runs it."""
    code = (
        "import sys\n"
        "from importlinter.cli import lint_imports\n"
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, f"layer contract broken:\n{run.stdout}\n{run.stderr}"
