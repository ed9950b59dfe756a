"""Smoke test: ``benchmarks/multihead_biased.py --quick`` runs and prints valid rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "multihead_biased.py"

KEYS = {"case", "H", "d", "rank", "queries", "proved_queries", "degrees_of_freedom",
        "full_rank_queries", "max_rel_error", "within_bounds", "max_relative_bound",
        "margin_decades", "seconds", "target", "target_met"}


def test_quick_benchmark_prints_valid_json_rows() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [r["case"] for r in rows] == ["H2_d6_r2", "layer_2_of_3_heads_d12"]
    for row in rows:
        assert not KEYS - set(row), sorted(KEYS - set(row))
        assert row["queries"] == row["proved_queries"] < row["full_rank_queries"]
        assert row["within_bounds"] is True and row["max_rel_error"] <= row["target"]
        assert row["target_met"] is True
    assert rows[1]["heads"] == [0, 2] and rows[1]["layer_heads"] == 3


def test_bad_option_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--heads", "x"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--checkpoint",
                           str(ROOT / "no_such_file.safetensors")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and proc.stdout == ""
