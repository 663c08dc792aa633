"""The shape of the code, checked: imports run one way (loop -> verifiers -> sandbox) without cycles,
function-local imports only defer heavy dependencies (and say so), and no module or class grows
past its size. ``python tests/test_architecture.py`` prints the import graph."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"loop": "starloop.loop", "verifiers": "starloop.verifiers", "sandbox": "starloop.sandbox"}
LAYERS = ["starloop.loop", "starloop.verifiers", "starloop.sandbox"]  # each may import only those after it
MAX_MODULE_LINES = 420  # "about 400"
MAX_CLASS_LINES = 150
EXEMPT = {"starloop.sandbox._zygote"}  # one stdlib-only file by design: the sandbox's zygote
HEAVY = {"torch", "transformers", "vllm", "trl", "peft", "deepspeed", "matplotlib", "datasets", "pyarrow",
         "tokenizers", "wandb", "sympy", "latex2sympy2_extended", "safetensors", "huggingface_hub", "evaluate",
         "openai", "ray", "rouge_score"}


def modules() -> dict[str, Path]:
    out = {}
    for folder, name in PACKAGES.items():
        for f in sorted((REPO / folder).rglob("*.py")):
            parts = list(f.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([name, *parts])] = f
    return out


def imports(path: Path, known: set[str]) -> list[tuple[str, ast.stmt, bool]]:
    """(imported starloop module or external top-level name, node, function-local) for every import."""
    tree = ast.parse(path.read_text())
    local = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
             for n in ast.walk(f) if isinstance(n, ast.Import | ast.ImportFrom)}
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        for name in names:
            if name.startswith("starloop."):
                while name not in known and "." in name:  # a name imported from a module, not a module
                    name = name.rsplit(".", 1)[0]
            out.append((name, node, id(node) in local))
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: {n for n, _, _ in imports(p, set(mods)) if n in mods and n != m} for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in g:
        if v not in index:
            visit(v)
    return out


def package_of(module: str) -> str:
    """``starloop.loop.runtime.sampling`` -> ``starloop.loop.runtime``: the sub-package level of the graph."""
    return ".".join(module.split(".")[:3])


def package_graph() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m, deps in graph().items():
        out.setdefault(package_of(m), set()).update(package_of(d) for d in deps if package_of(d) != package_of(m))
    return out


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_no_cycles_between_packages():
    """Not even between sub-packages: errors, fileio <- config <- records <- tasks <- runtime <- stages <- driver
    <- cli."""
    assert cycles(package_graph()) == []


def test_imports_run_one_way():
    bad = []
    for m, deps in graph().items():
        layer = next(i for i, p in enumerate(LAYERS) if m.startswith(p))
        bad += [f"{m} -> {d}" for d in deps if any(d.startswith(p) for p in LAYERS[:layer])]
    assert bad == []


def test_function_local_imports_only_defer_heavy_dependencies():
    mods = modules()
    bad = []
    for m, path in mods.items():
        if m in EXEMPT:
            continue
        lines = path.read_text().splitlines()
        for name, node, local in imports(path, set(mods)):
            if not local:
                continue
            top = name.split(".")[0]
            if top not in HEAVY or "#" not in lines[node.lineno - 1]:
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert bad == [], "function-local imports must defer a heavy dependency and say so in a comment"


def test_module_and_class_sizes():
    big = []
    for m, path in modules().items():
        if m in EXEMPT:
            continue
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            big.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                big.append(f"{path.relative_to(REPO)}: class {node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert big == []


def test_no_module_shadows_the_standard_library():
    """No module named like a stdlib module, except the verifiers named after what they verify (math, code)."""
    allowed = {"math", "code"}
    clash = sorted(m for m in modules() if m.rsplit(".", 1)[-1] in sys.stdlib_module_names - allowed)
    assert clash == []


if __name__ == "__main__":
    g, pg = graph(), package_graph()
    print("packages and top-level modules (an arrow: imports):")
    for p in sorted(pg):
        print(f"  {p.removeprefix('starloop.')} -> {', '.join(sorted(d.removeprefix('starloop.') for d in pg[p])) or '-'}")
    print(f"\nmodules: {len(g)}, import edges: {sum(map(len, g.values()))}, cycles: {cycles(g) or 'none'}, "
          f"package cycles: {cycles(pg) or 'none'}")
    for m in sorted(g):
        print(f"  {m.removeprefix('starloop.')} -> {', '.join(sorted(d.removeprefix('starloop.') for d in g[m])) or '-'}")
