"""Smoke test: ``benchmarks/relu_ffn.py --quick`` runs and prints valid rows.

Every stdout line must be a JSON object with the documented keys; QQ rows
must report an exact recovery with the closed-form query count and a
holding certificate; the F64 row a small parameter error. Label
``relu_ffn_exact``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "relu_ffn.py"

KEYS = {
    "route", "d", "m", "K", "seed", "queries", "expected_queries", "extra", "extra_over_K",
    "queries_over_md", "log2_queries", "total_seconds", "oracle_seconds", "learner_seconds",
    "exact", "certificate_holds", "certificate_kind", "certificate_seconds",
}


def test_quick_benchmark_prints_valid_json_rows() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [(r["route"], r["d"], r["m"]) for r in rows] == [
        ("QQ", 8, 4), ("QQ", 16, 8), ("QQ", 32, 16), ("F64", 64, 32)]
    for row in rows:
        missing = KEYS - set(row)
        assert not missing, f"{row['route']} d={row['d']} lacks {sorted(missing)}"
        assert "error" not in row
        assert row["queries"] == row["expected_queries"]
        assert row["K"] == row["m"]  # Gaussian weights: distinct hyperplanes
        assert row["certificate_holds"] is True
        assert row["total_seconds"] >= row["oracle_seconds"] > 0
        if row["route"] == "QQ":
            assert row["exact"] is True and row["certificate_kind"] == "exact"
        else:
            assert row["exact"] is False and row["certificate_kind"] == "tolerance"
            assert row["max_parameter_error"] < 1e-6


def test_bad_route_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--routes", "EXP"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
