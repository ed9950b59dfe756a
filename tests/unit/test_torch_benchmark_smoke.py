"""Smoke test: ``benchmarks/torch_heads.py --quick`` runs and prints valid rows.

Needs PyTorch (the optional extra ``exactattn[torch]``, which .ci/run
installs); skipped with the reason when it is absent. Every stdout line must
be a JSON object with the documented keys, the (d + 1)^2 queries, one forward
pass per batch (d + 3), errors within the stated tolerance and a holding
certificate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="PyTorch is not installed: it is the optional extra "
                                    "exactattn[torch] (torch==2.13.0), which .ci/run installs")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "torch_heads.py"

KEYS = {
    "route", "d", "head_dim", "biases", "dtype", "scale", "queries", "expected_queries",
    "queries_by_phase", "forward_passes", "total_seconds", "oracle_seconds", "learner_seconds",
    "max_rel_error_W", "max_rel_error_v", "max_rel_error_c", "abs_error_beta", "rel_tolerance",
    "within_tolerance", "within_learner_bounds", "certificate_holds", "formula_max_abs_diff",
    "baseline_unit_probes_max_rel_error_W", "torch_version", "torch_threads",
}


def test_quick_benchmark_prints_valid_rows() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [(r["d"], r["biases"], r["dtype"]) for r in rows] == [
        (16, b, t) for b in (False, True) for t in ("float64", "float32")]
    for row in rows:
        assert not KEYS - set(row), sorted(KEYS - set(row))
        d = row["d"]
        assert row["head_dim"] == d
        assert row["queries"] == row["expected_queries"] == (d + 1) ** 2
        assert row["queries_by_phase"] == {"beta": 1, "v": d, "c": d, "W": d * d}
        assert row["forward_passes"] == d + 3
        assert row["within_tolerance"] and row["within_learner_bounds"]
        assert row["certificate_holds"] is True
        assert row["max_rel_error_W"] <= row["rel_tolerance"]
        assert (row["max_rel_error_c"] is None) == (not row["biases"])
        assert row["total_seconds"] >= row["oracle_seconds"] > 0
        assert abs(row["learner_seconds"] - (row["total_seconds"] - row["oracle_seconds"])) < 1e-5


def test_bad_arguments_are_usage_errors() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--max-d", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
