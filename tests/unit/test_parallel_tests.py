"""The split of the integration tests over two processes: every file runs exactly once,
the halves are balanced, and the measured durations name only files that exist."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load() -> object:
    spec = importlib.util.spec_from_file_location("parallel_tests", ROOT / "tools" / "parallel_tests.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_integration_file_runs_once_in_balanced_halves() -> None:
    tool = load()
    files = sorted((ROOT / "tests" / "integration").glob("test_*.py"))
    groups = tool.split(files)  # type: ignore[attr-defined]
    assert len(groups) == 2
    assert sorted(p for g in groups for p in g) == files
    weights = tool.WEIGHTS  # type: ignore[attr-defined]
    totals = [sum(weights.get(p.name, tool.UNKNOWN) for p in g) for g in groups]  # type: ignore[attr-defined]
    assert abs(totals[0] - totals[1]) <= max(weights.values()) * 0.1, totals
    assert set(weights) <= {p.name for p in files}, "WEIGHTS names a file that no longer exists"
