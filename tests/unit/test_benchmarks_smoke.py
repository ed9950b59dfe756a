"""Smoke test: ``benchmarks/single_head.py --quick`` runs and prints valid rows.

Every stdout line must be a JSON object with the documented keys; EXP rows
must report an exact recovery (``exact_match`` true) with the expected
d + d^2 queries and a holding certificate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "single_head.py"

COMMON = {
    "route", "d", "queries", "expected_queries", "total_seconds", "oracle_seconds",
    "learner_seconds", "learner_over_oracle", "exact_match", "certificate_holds",
    "certificate_seconds", "baseline", "baseline_seconds", "ratio_vs_baseline", "transcript",
}
F64_KEYS = COMMON | {
    "max_abs_error_W", "max_abs_error_v", "relative_error_W", "relative_error_v",
    "W_error_bound",
}


def test_quick_benchmark_prints_valid_json_rows() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, "no output on stdout"
    rows = [json.loads(line) for line in lines]  # every line must parse
    assert all(isinstance(row, dict) for row in rows)
    routes = {row["route"] for row in rows}
    assert routes == {"EXP", "F64"}
    for row in rows:
        d = row["d"]
        missing = (F64_KEYS if row["route"] == "F64" else COMMON) - set(row)
        assert not missing, f"{row['route']} d={d} lacks {sorted(missing)}"
        assert "error" not in row, row["error"]
        assert row["queries"] == row["expected_queries"] == d + d * d
        assert row["certificate_holds"] is True
        assert row["total_seconds"] >= row["oracle_seconds"] > 0
        gap = row["total_seconds"] - row["oracle_seconds"]
        assert abs(row["learner_seconds"] - gap) < 1e-5
        assert row["baseline_seconds"] > 0 and row["ratio_vs_baseline"] > 0
        if row["route"] == "EXP":
            assert row["exact_match"] is True
        else:
            assert row["max_abs_error_W"] <= row["W_error_bound"]
            assert row["relative_error_W"] < 1e-8


def test_routes_and_max_d_filter() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--routes", "EXP", "--max-d", "8"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [(r["route"], r["d"]) for r in rows] == [("EXP", 4), ("EXP", 8)]
    assert all(r["exact_match"] is True for r in rows)


def test_bad_route_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--routes", "QQ"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
