"""Packaging contracts: a plain (non-editable) install holds every module, and every
third-party module the installed code imports is a declared dependency."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIR: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
PACKAGES: list[str] = PYPROJECT["tool"]["setuptools"]["packages"]
# Imported only inside functions that need them, with a message naming the package to install.
OPTIONAL = {"pyspark"}
# The pytest plugin (experiments/pytest_plugin.py) is loaded by pytest only: pytest is there.
RUNS_UNDER = {"spanlake.experiments": {"pytest", "_pytest"}}


def _source_packages() -> set[str]:
    found = set()
    for name, folder in PACKAGE_DIR.items():
        for d in [ROOT / folder, *(ROOT / folder).rglob("*")]:
            if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")):
                found.add(".".join([name, *d.relative_to(ROOT / folder).parts]))
    return found


def test_every_source_folder_is_packaged() -> None:
    """A folder missing from [tool.setuptools] packages works editable and is absent from a wheel."""
    assert _source_packages() == set(PACKAGES)


def _requirement_name(req: str) -> str:
    return re.split(r"[\s<>=!~\[;]", req, maxsplit=1)[0].lower().replace("_", "-")


def _imports(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_runtime_imports_are_declared() -> None:
    project = PYPROJECT["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    demo = declared | {_requirement_name(r) for r in project["optional-dependencies"]["demo"]}
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for name, folder in PACKAGE_DIR.items():
        allowed = demo if name == "spanlake.demo" else declared
        found = _imports(ROOT / folder) - set(sys.stdlib_module_names) - {"spanlake"} - OPTIONAL
        for module in sorted(found - RUNS_UNDER.get(name, set())):
            dists = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
            if not dists & allowed and not _is_transitive(dists, allowed):
                missing.append(f"{folder}/ imports {module} ({', '.join(sorted(dists)) or 'not installed'})")
    assert not missing, "undeclared runtime dependencies:\n" + "\n".join(missing)


def _is_transitive(dists: set[str], allowed: set[str]) -> bool:
    """protobuf's `google` namespace is shared by several declared distributions."""
    return bool(dists) and dists <= {"protobuf", "googleapis-common-protos"} and "protobuf" in allowed
