"""Smoke test: ``benchmarks/low_rank.py --quick`` runs and prints valid rows.

Every stdout line is a JSON object with the documented keys; exact rows
recovered W exactly with the counts of their closed forms, the F64 row is
within its own bound, and every certificate holds. The nuclear-norm row
appears only when the optional extra ``sensing`` (cvxpy) is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "low_rank.py"

KEYS = {"d", "r", "method", "field", "queries", "floor", "queries_over_floor",
        "queries_over_d2_plus_d", "seconds", "exact", "error", "certificate_holds"}


def test_quick_benchmark_prints_valid_json_rows() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    methods = [(r["method"], r["field"]) for r in rows]
    expected = [("adaptive", "EXP"), ("adaptive-discover", "EXP"), ("adaptive", "QQ"),
                ("adaptive", "F64"), ("sensing-als", "EXP")]
    if "cvxpy yes" in proc.stderr:  # the optional extra `sensing` is installed
        expected.append(("sensing-nuclear", "EXP"))
    else:
        assert "cvxpy is not installed: nuclear-norm rows skipped" in proc.stderr
    assert methods == expected
    for row in rows:
        assert KEYS <= set(row), sorted(KEYS - set(row))
        assert "failure" not in row, row["failure"]
        assert row["certificate_holds"] is True
        d, r = row["d"], row["r"]
        assert row["floor"] == r * (2 * d - r) + d
        assert row["queries_over_d2_plus_d"] == round(row["queries"] / (d * d + d), 6)
        if row["method"] == "adaptive":
            assert row["queries"] == row["floor"]
        elif row["method"] == "adaptive-discover":
            assert row["queries"] == row["floor"] + 1
        else:
            assert row["method"].startswith("sensing")
            assert row["queries"] == d + row["measurements"]
            assert row["solver_seconds"] >= 0
        if row["field"] == "F64":
            assert row["exact"] is False and row["error"] < 1e-9 and row["within_bound"]
        else:
            assert row["exact"] is True and row["error"] == 0.0


def test_bad_option_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--only", "nothing"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
