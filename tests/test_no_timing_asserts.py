"""Tests assert results, never wall-clock time: timing belongs in bench/ (machines get loaded)."""

import ast
from pathlib import Path

import pytest

CLOCKS = {"time", "monotonic", "perf_counter", "perf_counter_ns", "monotonic_ns", "time_ns"}
TESTS = sorted(Path(__file__).resolve().parent.rglob("*.py"))


def _reads_a_clock(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
               and n.func.attr in CLOCKS and isinstance(n.func.value, ast.Name)
               and n.func.value.id == "time" for n in ast.walk(node))


def _clock_names(tree: ast.AST) -> set[str]:
    """Names assigned from a clock reading (`start = time.monotonic()`)."""
    return {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and _reads_a_clock(n.value)
            for t in n.targets if isinstance(t, ast.Name)}


def timing_asserts(source: str) -> list[int]:
    """Line numbers of asserts that compare a clock reading or a name taken from one."""
    tree = ast.parse(source)
    names = _clock_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            used = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
            if _reads_a_clock(node.test) or used & names:
                found.append(node.lineno)
    return found


def test_the_check_finds_a_wall_clock_assert():
    assert timing_asserts("import time\nt = time.monotonic()\nassert time.monotonic() - t < 5\n")
    assert not timing_asserts("import time\ntime.sleep(0.1)\nassert 1 < 5\n")


@pytest.mark.parametrize("path", TESTS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_no_wall_clock_asserts(path):
    assert timing_asserts(path.read_text()) == [], f"{path}: move timing to bench/"
