"""The packages' boundaries (docs/ARCHITECTURE.md, "Boundaries"), read from the source with ast.

Every .py file under rfnet/, rfsynth/, rfft/, nodes/ and scripts/ is parsed; each import is
resolved to a module name (relative ones included: ``from . import x`` is the module ``pkg.x``
when there is one) and marked module-level (run at import) or lazy (inside a function).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rfnet", "rfsynth", "rfft", "nodes")
# rfft's core: placement, generation, Recurrent Generation and RFFT. RF-Synth is one world to
# evaluate them in (rfft.evaluate, rfft.generate's oracle), never something they need.
RFFT_CORE = ("rfft.placement", "rfft.pipeline", "rfft.recurrent", "rfft.losses", "rfft.trainer", "rfft.train")
TEST_MODULES = {p.stem for p in (ROOT / "tests").glob("*.py")} | {"tests"}


def _module_name(path: Path) -> tuple[str, bool]:
    """(dotted name, is a package) of a file; scripts are named scripts.NAME."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


class _Imports(ast.NodeVisitor):
    def __init__(self):
        self.found: list[tuple[ast.AST, bool]] = []  # (node, module-level)
        self.depth = 0  # functions we are inside

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node):
        self.found.append((node, self.depth == 0))

    visit_ImportFrom = visit_Import


@lru_cache(maxsize=None)
def modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for top in (*PACKAGES, "scripts"):
        for path in sorted((ROOT / top).rglob("*.py")):
            name, is_pkg = _module_name(path)
            found[name] = (path, is_pkg)
    return found


def _targets(name: str, is_pkg: bool, node: ast.AST) -> list[str]:
    """The modules an import statement names (external ones included)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module
    out = [prefix]
    for a in node.names:  # from pkg import submodule
        if f"{prefix}.{a.name}" in modules():
            out.append(f"{prefix}.{a.name}")
    return out


@lru_cache(maxsize=None)
def imports() -> dict[str, list[tuple[str, bool, int]]]:
    """{module: [(imported module, module-level, line)]}; importing a.b.c also runs a and a.b."""
    out = {}
    for name, (path, is_pkg) in modules().items():
        v = _Imports()
        v.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        found = []
        for node, top in v.found:
            for t in _targets(name, is_pkg, node):
                parts = t.split(".")
                for k in range(1, len(parts) + 1):
                    found.append((".".join(parts[:k]), top, node.lineno))
        out[name] = found
    return out


def graph(module_level_only: bool) -> dict[str, set[str]]:
    """Edges between this project's modules."""
    known = modules()
    return {m: {t for t, top, _ in imps if t in known and t != m and (top or not module_level_only)}
            for m, imps in imports().items()}


def _where(module: str) -> str:
    return str(modules()[module][0].relative_to(ROOT))


def _reach(start: str, edges: dict[str, set[str]]) -> dict[str, str | None]:
    """{module reachable from start: the module that imports it on the first path found}."""
    seen: dict[str, str | None] = {start: None}
    todo = [start]
    while todo:
        m = todo.pop()
        for t in sorted(edges.get(m, ())):
            if t not in seen:
                seen[t] = m
                todo.append(t)
    return seen


def _path(seen: dict[str, str | None], end: str) -> str:
    chain = [end]
    while seen[chain[-1]] is not None:
        chain.append(seen[chain[-1]])
    return " -> ".join(reversed(chain))


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (as [a, b, ..., a]), or None: depth-first search, three colours."""
    colour: dict[str, int] = {}  # absent: unvisited, 1: on the current path, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        colour[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if colour.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in colour:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        colour[m] = 2
        return None

    for m in sorted(edges):
        if m not in colour:
            found = visit(m)
            if found:
                return found
    return None


def test_the_scan_sees_the_packages_and_resolves_relative_imports():
    assert {"rfnet.model", "rfsynth.oracle", "rfft.train", "nodes.host", "scripts.make_workflows"} <= set(modules())
    # `from . import fileio` in rfnet is rfnet.fileio; `from . import rules` in rfsynth.oracle
    assert ("rfnet.fileio", True) in {(t, top) for t, top, _ in imports()["rfnet.calibrate"]}
    assert "rfsynth.rules" in graph(True)["rfsynth.oracle"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_rfnet_imports_neither_rfsynth_nor_rfft():
    """rfnet is the inspector alone: not even a lazy import of the worlds built on it."""
    bad = [f"{_where(m)}:{line} imports {t}" for m, imps in imports().items() if m.split(".")[0] == "rfnet"
           for t, _, line in imps if t.split(".")[0] in ("rfsynth", "rfft")]
    assert not bad, "\n".join(bad)


def test_the_engine_never_imports_the_nodes():
    bad = [f"{_where(m)}:{line} imports {t}" for m, imps in imports().items() if m.split(".")[0] in PACKAGES[:3]
           for t, _, line in imps if t.split(".")[0] == "nodes"]
    assert not bad, "\n".join(bad)


def test_rfsynth_reads_and_writes_the_format_through_rfnet_dataformat():
    bad = [f"{_where(m)}:{line} imports {t}" for m, imps in imports().items() if m.split(".")[0] == "rfsynth"
           for t, _, line in imps if t == "rfnet.data"]
    assert not bad, "rfsynth must use rfnet.dataformat (torch-free), not rfnet.data:\n" + "\n".join(bad)


def test_extractors_and_estimators_do_not_import_each_other():
    """Not even lazily: the interface they share lives in rfnet.extractor_base."""
    g = graph(module_level_only=False)
    both = ("rfnet.estimators", "rfnet.extractors")
    assert not (both[0] in g[both[1]] and both[1] in g[both[0]]), "rfnet.extractors and rfnet.estimators import each other"
    private = []  # nor does either take a private name from a module of rfnet (as estimators took _check)
    for m in both:
        for node in ast.walk(ast.parse(modules()[m][0].read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("rfnet")):
                private += [f"{_where(m)}:{node.lineno} {a.name}" for a in node.names if a.name.startswith("_")]
    assert not private, "private names imported:\n" + "\n".join(private)


def test_rfft_core_does_not_reach_rfsynth_at_import_time():
    g = graph(module_level_only=True)
    for core in RFFT_CORE:
        seen = _reach(core, g)
        bad = [_path(seen, m) for m in sorted(seen) if m.split(".")[0] == "rfsynth"]
        assert not bad, f"{core} loads RF-Synth at import: " + "; ".join(bad)


def test_no_import_cycles_between_modules():
    cycle = find_cycle(graph(module_level_only=True))
    assert cycle is None, "import cycle (module level): " + " -> ".join(cycle)


def test_scripts_import_nothing_from_tests():
    bad = [f"{_where(m)}:{line} imports {t}" for m, imps in imports().items() if m.startswith("scripts.")
           for t, _, line in imps if t.split(".")[0] in TEST_MODULES]
    assert not bad, "\n".join(bad)
    for path in (ROOT / "scripts").glob("*.py"):  # nor put tests/ on their path
        assert '/ "tests"' not in path.read_text(encoding="utf-8"), path


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)


def test_the_dataset_format_is_torch_free():
    r = _fresh("import sys, rfnet.dataformat, rfnet.labels; assert 'torch' not in sys.modules, 'torch loaded'; "
               "from rfnet.dataformat import MANIFEST, RFDatasetWriter, read_label_txt, read_records")
    assert r.returncode == 0, r.stderr
    # rfnet.data keeps every old name: the format's are the same objects
    r = _fresh("import rfnet.data as d, rfnet.dataformat as f; "
               "assert all(getattr(d, n) is getattr(f, n) for n in ('RFDatasetWriter', 'read_records', "
               "'read_label_txt', 'SkipReport', 'MANIFEST', 'open_image', 'SampleError', 'IMAGE_MODES'))")
    assert r.returncode == 0, r.stderr


def test_importing_rfft_train_does_not_load_rfsynth():
    r = _fresh("import sys, rfft.train; loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'rfsynth'); "
               "assert not loaded, loaded")
    assert r.returncode == 0, r.stderr


def test_no_two_modules_import_each_other_even_lazily():
    """A lazy import hides a cycle from the interpreter, not from the reader: a pair of modules
    that need each other is one module, or two with a third that both import (rfnet.images
    took what rfnet.ood borrowed from rfnet.inspect)."""
    g = graph(module_level_only=False)
    pairs = sorted({tuple(sorted((a, b))) for a, deps in g.items() for b in deps if b != a and a in g.get(b, ())})
    assert not pairs, "modules importing each other: " + "; ".join(" <-> ".join(p) for p in pairs)
