"""The layout shows the design: layered packages, no import cycles, small modules and functions.

The import rules live in pyproject.toml as import-linter contracts; this runs them, so the
suite fails on an upward import or a cycle, as `lint-imports` does in CI.
"""

from __future__ import annotations

import ast
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bdp"
#: The caps of ../shared/STYLE.md, measured after `ruff format`.
MODULE_LINES, FUNCTION_LINES, FUNCTION_P90 = 400, 50, 30


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def function_lengths() -> dict[str, int]:
    """Lines of every function and method in bdp/, by ``path:line name``."""
    lengths = {}
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
                lengths[where] = (node.end_lineno or node.lineno) - node.lineno + 1
    return lengths


def test_the_import_contracts_hold_no_upward_import_and_no_cycle() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_every_subpackage_says_what_lives_there_and_what_it_may_import() -> None:
    packages = sorted(p.parent for p in PACKAGE.glob("*/__init__.py"))
    assert {p.name for p in packages} >= {"cli", "queue", "run", "agent", "repo", "ops", "broker"}
    for package in packages:
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
        assert doc, f"{package.name}/__init__.py has no docstring"
        assert "import" in doc, f"{package.name}/__init__.py does not say what it may import"


@pytest.mark.parametrize("marker", ["fmt: skip", "fmt: off"])
def test_no_formatting_is_switched_off_in_bdp(marker: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in modules()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if marker in line
    ]
    assert found == []


def test_no_module_is_longer_than_the_cap() -> None:
    lengths = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in modules()}
    assert {str(p): n for p, n in lengths.items() if n > MODULE_LINES} == {}


def test_no_function_is_longer_than_the_hard_cap_and_nine_in_ten_are_short() -> None:
    lengths = function_lengths()
    assert {name: n for name, n in lengths.items() if n > FUNCTION_LINES} == {}
    assert statistics.quantiles(lengths.values(), n=10)[-1] <= FUNCTION_P90
