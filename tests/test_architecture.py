"""The layered architecture, enforced: the import contract, no imports hidden in functions, one registry."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import polyak
from polyak.algos import registry

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "polyak"


def test_import_contract_holds():
    """pyproject.toml's [tool.importlinter] contracts: layers import only downward, families and algorithms
    are independent, the core imports neither Gymnasium nor files."""
    exe = shutil.which("lint-imports")
    if exe is None:  # installed with the test extra; run it from this interpreter's scripts otherwise
        exe = str(Path(sys.executable).parent / "lint-imports")
    out = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "BROKEN" not in out.stdout and out.stdout.count("KEPT") >= 4


def _local_polyak_imports(path: Path) -> list[str]:
    """`import polyak...` / `from polyak... import` statements inside functions or classes of one module."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for inner in ast.walk(node):
            names = ([a.name for a in inner.names] if isinstance(inner, ast.Import) else
                     [inner.module or ""] if isinstance(inner, ast.ImportFrom) and inner.level == 0 else [])
            if any(n == "polyak" or n.startswith("polyak.") for n in names):
                found.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    return found


def test_no_package_import_is_hidden_inside_a_function():
    """Every import of polyak's own modules is at module level, so the contract above sees all of them
    (a function-local import is how an import circle hides)."""
    found = sorted({hit for path in PACKAGE.rglob("*.py") for hit in _local_polyak_imports(path)})
    assert not found, f"function-local imports of polyak modules: {found}"


def test_the_checker_finds_a_function_local_import(tmp_path):
    sample = ROOT / "tests" / "_sample_local_import.py"
    sample.write_text("def f():\n    from polyak.core import losses\n    return losses\n")
    try:
        assert _local_polyak_imports(sample) == ["tests/_sample_local_import.py:2"]
    finally:
        sample.unlink()


def test_every_registered_algorithm_is_exported_and_loadable_by_name():
    names = registry.names()
    assert set(names) == set(polyak.ALGORITHMS)
    assert {"sac", "td3", "ddpg", "dqn", "double_dqn", "ppo", "a2c", "a3c", "reinforce", "awr", "qlearning"} <= set(names)
    for name in names:
        cls = registry.algorithm_class(name)
        assert getattr(polyak, cls.__name__) is cls and cls.__name__ in polyak.__all__
        assert issubclass(cls, polyak.algos.algorithm.Algorithm) and cls.name == name
        assert cls.__module__.startswith(f"polyak.algos.{registry.entry(name).family}.")
    with pytest.raises(registry.UnknownAlgorithmError, match="unknown algorithm 'sacc'; known: .*sac, td3"):
        registry.algorithm_class("sacc")


def test_registry_refuses_a_second_class_under_one_name():
    class Fake:
        name = "sac"

    with pytest.raises(ValueError, match="registered twice"):
        registry.register(family="offpolicy", action_kinds=("Box",))(Fake)
    with pytest.raises(ValueError, match="unknown family"):
        registry.register(family="bandits", action_kinds=("Box",))


def test_benchmarks_are_not_part_of_the_package():
    assert not list(PACKAGE.rglob("bench*.py"))
    assert (ROOT / "benchmarks" / "bench.py").is_file() and (ROOT / "benchmarks" / "bench_jax.py").is_file()
