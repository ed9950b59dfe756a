"""Smoke test: ``benchmarks/membership.py --quick`` runs and prints valid rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "membership.py"

KEYS = {"d", "M", "Q", "queries", "closed_form", "lower_bound", "lower_bound_binary",
        "over_lower_bound", "value_queries", "over_value_queries", "seconds", "oracle_seconds",
        "exact_match", "certificate_holds", "status"}


def test_quick_benchmark_prints_valid_json_rows() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [(r["d"], r["Q"]) for r in rows] == [(2, 7), (4, 1000), (5, 10**6)]
    for r in rows:
        assert not KEYS - set(r), sorted(KEYS - set(r))
        assert r["queries"] == r["closed_form"]
        assert r["lower_bound"] <= r["lower_bound_binary"] <= r["queries"]
        assert r["exact_match"] is True and r["certificate_holds"] is True
        assert r["status"] == "exact_given"
        assert r["over_value_queries"] == round(r["queries"] / (r["d"] + r["d"] ** 2), 3)


def test_bad_heights_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--heights", "7,x"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "--heights" in proc.stderr
