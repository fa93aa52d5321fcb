"""The package layout: layers without cycles, no upward imports, no private names across
packages, and a quick ``import fmlib``.

The layers are written once, here, bottom to top; a package may import from its own
package and from lower layers only. Imports inside functions count too: a lazy import
is still a dependency.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "fmlib"

LAYERS = [
    {"fmlib.validation", "fmlib.version", "fmlib.fileio"},
    {"fmlib.model"},
    {"fmlib.data"},
    {"fmlib.learning"},
    {"fmlib.solvers"},
    {"fmlib.claims", "fmlib.family", "fmlib.ranking"},
    {"fmlib.interop", "fmlib.distributed"},
    {"fmlib", "fmlib.__main__"},
]


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """The layer unit a module belongs to: ``fmlib.model.fm`` -> ``fmlib.model``."""
    for layer in LAYERS:
        for unit in sorted(layer, key=len, reverse=True):
            if module == unit or (unit != "fmlib" and module.startswith(unit + ".")):
                return unit
    if module in ("fmlib",):
        return "fmlib"
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def layer_of(module: str) -> int:
    unit = package_of(module)
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def imports(path: pathlib.Path) -> list[tuple[str, list[str], int]]:
    """``(module imported, names imported, line)`` for every fmlib import in the file."""
    me = module_name(path)
    is_pkg = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = me.split(".") if is_pkg else me.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "fmlib" or target.startswith("fmlib."):
                names = [a.name for a in node.names]
                # `from fmlib.pkg import module` imports a module
                subs = [
                    f"{target}.{n}"
                    for n in names
                    if (ROOT.parent / f"{target}.{n}".replace(".", "/"))
                    .with_suffix(".py")
                    .exists()
                    or (ROOT.parent / f"{target}.{n}".replace(".", "/")).is_dir()
                ]
                found.append((target, names, node.lineno))
                found += [(s, [], node.lineno) for s in subs]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "fmlib" or alias.name.startswith("fmlib."):
                    found.append((alias.name, [], node.lineno))
    return found


MODULES = sorted(p for p in ROOT.rglob("*.py"))
GRAPH = {module_name(p): imports(p) for p in MODULES}


def test_layers_cover_every_module():
    for module in GRAPH:
        layer_of(module)  # raises for a module outside the layers


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_upward_import(module):
    if module in ("fmlib", "fmlib.__main__"):
        return
    for target, _, line in GRAPH[module]:
        if package_of(target) == package_of(module):
            continue
        assert layer_of(target) < layer_of(module), (
            f"{module} (line {line}) imports {target}, which is not in a lower layer"
        )


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_private_name_across_packages(module):
    for target, names, line in GRAPH[module]:
        if package_of(target) == package_of(module):
            continue
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        private_module = [
            p for p in target.split(".")[1:] if p.startswith("_") and p != "__init__"
        ]
        assert not private and not private_module, (
            f"{module} (line {line}) imports the private {private or target} of another package"
        )


def test_no_cycles():
    edges = {m: {t for t, _, _ in GRAPH[m] if t in GRAPH and t != m} for m in GRAPH}
    # package __init__ files that only re-export are edges too; a cycle is a path back
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t) :] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_the_checker_finds_what_it_should():
    """The rules above are not vacuous: a made-up upward import and cycle are caught."""
    assert layer_of("fmlib.model.fm") < layer_of("fmlib.solvers.mcmc")
    assert package_of("fmlib.data.design") == "fmlib.data"
    assert any(t == "fmlib.model.pairwise" for t, _, _ in GRAPH["fmlib.model.fm"])


def test_tests_mirror_the_packages():
    """Each package's tests live in tests/<package>/; the project-wide ones in tests/."""
    tests = ROOT.parent / "tests"
    packages = {
        p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    }
    folders = {
        p.name
        for p in tests.iterdir()
        if p.is_dir() and not p.name.startswith(("_", "."))
    }
    assert folders <= packages, f"test folders without a package: {folders - packages}"
    assert packages - {"validation"} <= folders | {"model"}, packages - folders
    for folder in folders:
        assert list((tests / folder).glob("test_*.py")), (
            f"tests/{folder} holds no tests"
        )


def test_import_fmlib_is_light():
    """``import fmlib`` loads neither TensorFlow, numba, scikit-learn nor the distributed code."""
    code = (
        "import sys, fmlib; heavy = [m for m in ('tensorflow', 'numba', 'sklearn', "
        "'fmlib.distributed', 'fmlib.solvers') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_public_names_load_lazily():
    """A public name loads its module on first use and no more than it needs."""
    code = (
        "import sys, fmlib; fmlib.FactorizationMachine; "
        "print([m for m in ('numba', 'fmlib.distributed', 'fmlib.solvers') if m in sys.modules]); "
        "import fmlib.model.fm as m; print(fmlib.FactorizationMachine is m.FactorizationMachine)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split("\n")[:2] == ["[]", "True"], out.stdout
