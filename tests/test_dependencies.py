"""What the project declares matches what its code imports: every DVC stage lists each
module of its import closure (so editing one reruns exactly the stages that use it), and
pyproject.toml declares every third-party distribution the code imports, nothing more."""

from __future__ import annotations

import ast
import importlib.metadata as md
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from tests.conftest import PROJECT

PACKAGES = ("features", "models", "pipelines")


def _imports(path: Path) -> set[str]:
    """Every module name a file imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _module_file(name: str, root: Path = PROJECT) -> Path | None:
    """The project file of a module name (``None`` for a name that is not a project module)."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None  # ``from pipelines.config import Params``: the attribute, not a module


def closure(start: Path, root: Path = PROJECT) -> set[str]:
    """The project files ``start`` needs to run: itself, the modules it imports, and theirs,
    with each package's ``__init__.py`` (run on the way in); paths relative to ``root``."""
    todo, seen = [start], set()
    while todo:
        path = todo.pop()
        rel = path.relative_to(root).as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        for name in _imports(path):
            found = _module_file(name, root)
            if found is not None:
                todo.append(found)
            parts = name.split(".")
            for i in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__
                init = root.joinpath(*parts[:i], "__init__.py")
                if parts[0] in PACKAGES and init.exists():
                    todo.append(init)
    return seen


def _runs_nothing(rel: str) -> bool:
    """A file that is only a docstring (a package's ``__init__.py``): changing it changes no
    output, so a stage need not list it."""
    body = ast.parse((PROJECT / rel).read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def _stages() -> dict:
    return yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]


def _covered(dep_list: list[str]) -> set[str]:
    """The project .py files a stage's deps cover (a folder covers every file under it)."""
    out = set()
    for dep in dep_list:
        path = PROJECT / dep
        if path.is_dir():
            out.update(p.relative_to(PROJECT).as_posix() for p in path.rglob("*.py"))
        elif path.suffix == ".py":
            out.add(dep)
    return out


def test_every_stage_lists_exactly_its_import_closure():
    problems = []
    for name, stage in _stages().items():
        assert stage["cmd"].split()[:2] == ["gridscore", name], name  # one word per stage
        needed = {f for f in closure(PROJECT / "pipelines" / f"{name}.py") if not _runs_nothing(f)}
        listed = _covered(stage.get("deps", []))
        if name == "report":  # it names all the code (its digest), so it lists all of it
            from pipelines.report import CODE

            assert set(CODE) <= set(stage["deps"]), sorted(set(CODE) - set(stage["deps"]))
            listed &= needed | listed  # a superset of its closure, by construction
            needed |= listed
        if needed - listed:
            problems.append(f"{name}: imports but does not list {sorted(needed - listed)}")
        if listed - needed:
            problems.append(f"{name}: lists but does not import {sorted(listed - needed)}")
    assert not problems, "\n".join(problems)


def test_the_closure_follows_imports_inside_functions_and_package_inits():
    got = closure(PROJECT / "pipelines" / "evaluate.py")
    assert "features/synthetic/oracle.py" in got  # imported inside _oracle()
    assert "features/synthetic/__init__.py" in got and "features/__init__.py" in got
    assert "pipelines/cli.py" not in got  # the CLI only parses: no stage imports it


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def _distributions(names: set[str], declared: set[str]) -> set[str]:
    """The distribution each imported top-level module comes from: the declared one when
    several provide it (``mlflow`` also ships in mlflow-skinny), else the first installed."""
    by_module = md.packages_distributions()
    out = set()
    for name in names:
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in PACKAGES or top == "tests":
            continue
        assert top in by_module, f"{top} is imported but no installed distribution provides it"
        providers = sorted({_norm(d) for d in by_module[top]})
        mine = [d for d in providers if d in declared]
        out.add(mine[0] if mine else providers[0])
    return out


def _declared(requirements: list[str]) -> set[str]:
    return {_norm(Requirement(r).name) for r in requirements}


def _imported(folders: tuple[str, ...], exclude: tuple[str, ...] = ()) -> set[str]:
    names: set[str] = set()
    for folder in folders:
        for path in (PROJECT / folder).rglob("*.py"):
            if path.relative_to(PROJECT).as_posix() not in exclude:
                names |= _imports(path)
    return names


def test_pyproject_declares_what_the_code_imports_and_nothing_more():
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    core = _declared(project["dependencies"])
    spark = _declared(project["optional-dependencies"]["spark"])
    dev = _declared(project["optional-dependencies"]["dev"])
    everything = core | spark | dev
    used = _distributions(_imported(PACKAGES, exclude=("pipelines/spark.py",)), everything)
    # the CLI tools a user runs (dvc) are part of the product though no module imports them
    assert used - core == set(), f"imported but not declared: {sorted(used - core)}"
    assert core - used - {"dvc"} == set(), f"declared, never imported: {sorted(core - used)}"
    assert _distributions(_imports(PROJECT / "pipelines" / "spark.py"), everything) - core == spark
    extra = _distributions(
        _imported(("tests", "benchmarks", "examples"), exclude=(OWN_VENV,)), everything
    )
    extra -= core | spark
    assert extra <= dev, f"tests, benchmarks or examples import undeclared {sorted(extra - dev)}"
    unused = dev - extra - {"pytest-xdist", "ruff", "ipykernel"}  # plugins and tools, not imports
    assert not unused, f"dev extras never imported: {sorted(unused)}"


#: A benchmark of a library that is no dependency of the project: it runs in a venv of its
#: own, which the Makefile's bench-fasttreeshap target makes.
OWN_VENV = "benchmarks/fasttreeshap.py"


def test_the_fasttreeshap_venv_installs_what_its_benchmark_imports():
    recipe = (PROJECT / "Makefile").read_text().split("bench-fasttreeshap:")[1].split("\n\n")[0]
    names = {n.split(".")[0] for n in _imports(PROJECT / OWN_VENV)}
    third_party = names - set(sys.stdlib_module_names) - set(PACKAGES)
    assert third_party == {"fasttreeshap_fixed", "lightgbm", "numpy", "pandas"}
    assert "fasttreeshap-fixed==" in recipe and "lightgbm|numpy|pandas" in recipe
