"""Smoke test: ``benchmarks/real_heads.py --quick`` runs and prints valid rows.

Every stdout line must be a JSON object with the documented keys; the
oracle's query count must equal the closed-form count and stay within the
issue's target (degrees of freedom + d); errors within the learner's
first-order error estimates.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "real_heads.py"

KEYS = {"case", "d", "rank", "bias", "queries", "expected_queries", "degrees_of_freedom",
        "query_target", "full_biased_queries", "rel_error_W", "rel_error_c", "rel_error_v",
        "abs_error_beta", "within_bounds", "bound_rel_W", "seconds", "oracle_seconds",
        "model_seconds", "bookkeeping_seconds", "bookkeeping_ratio", "max_rss_mb",
        "targets_met"}


def test_quick_benchmark_prints_valid_rows() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [(r["d"], r["rank"], r["bias"]) for r in rows] == [
        (64, 8, "general"), (64, 8, "column_space")]
    for row in rows:
        assert not KEYS - set(row), sorted(KEYS - set(row))
        assert row["queries"] == row["expected_queries"] <= row["query_target"]
        assert row["degrees_of_freedom"] == 8 * (128 - 8) + 129
        assert row["within_bounds"] and row["targets_met"]
        assert max(row["rel_error_W"], row["rel_error_c"], row["rel_error_v"]) <= 1e-9
        assert row["max_rss_mb"] > 0
        # the hidden head's own time and the oracle's bookkeeping, from the same run
        assert 0 < row["model_seconds"] <= row["oracle_seconds"] <= row["seconds"]
        assert abs(row["bookkeeping_seconds"]
                   - (row["oracle_seconds"] - row["model_seconds"])) <= 2e-3


def test_bad_arguments_are_usage_errors() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--scale", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
