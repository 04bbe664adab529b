"""The house rules that a tool can check: layers run one way, and imports sit at the top.

Layers (pyproject.toml [tool.importlinter], docs/architecture.md): cli, dashboard, demo →
server → experiments → evaluators → collector | analytics (independent of each other) → storage → the SDK. A
function-level import is allowed only for a heavy optional dependency, marked on its line
with `# optional dependency: <why>`.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    "cli",
    "collector",
    "storage",
    "analytics",
    "server",
    "experiments",
    "evaluators",
    "dashboard",
    "demo",
    "sdk/src/spanlake/sdk",
]
MARK = "# optional dependency:"


def lint_imports() -> Path:
    exe = Path(sys.executable).with_name("lint-imports")
    return exe if exe.exists() else Path(shutil.which("lint-imports") or "lint-imports")


def test_import_contracts_hold() -> None:
    out = subprocess.run(
        [str(lint_imports()), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]


def function_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, source) of each import inside a function body of `path` that carries no MARK."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import | ast.ImportFrom):
                text = "\n".join(lines[sub.lineno - 1 : (sub.end_lineno or sub.lineno)])
                if MARK not in text:
                    found.append((sub.lineno, text.strip()))
    return found


def test_imports_are_at_the_top_unless_marked_optional() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, text in function_level_imports(path)
    ]
    hint = "imports inside functions (move them to the top, or mark a heavy optional one):"
    assert not offenders, "\n".join([hint, *offenders])


def test_the_checker_finds_a_hidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from spanlake.analytics import runner\n"
        f"def g():\n    import pyspark  {MARK} the Spark engine is an extra\n"
    )
    assert function_level_imports(module) == [(2, "from spanlake.analytics import runner")]
