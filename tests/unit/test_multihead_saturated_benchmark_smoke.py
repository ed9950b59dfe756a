"""Smoke test: ``benchmarks/multihead_saturated.py --quick`` runs and prints valid rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "multihead_saturated.py"

KEYS = {"case", "H", "d", "rank", "seed", "queries", "path_queries", "failed_tries",
        "degrees_of_freedom", "max_rel_error", "within_bounds", "max_relative_bound",
        "estimate_over_error", "seconds", "max_rss_mb", "target", "target_met"}


def test_quick_benchmark_prints_valid_json_rows() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [r["case"] for r in rows] == ["H2_d6_r2", "layer_4_of_4_heads_d16"]
    for row in rows:
        assert not KEYS - set(row), sorted(KEYS - set(row))
        assert row["within_bounds"] is True and row["max_rel_error"] <= row["target"]
        assert row["target_met"] is True and row["m"] == row["H"]
        assert row["max_relative_bound"] >= row["max_rel_error"]
    # the copy-family baseline in the same run, with the ratios against it
    assert rows[0]["baseline"] == "learn_multihead_biased"
    assert rows[0]["queries_ratio"] == round(rows[0]["queries"] / rows[0]["baseline_queries"], 3)
    assert rows[1]["layer_heads"] == 4


def test_bad_option_is_a_usage_error_before_any_row() -> None:
    for argv in (["--heads", "x"], ["--seeds", "0"],
                 ["--quick", "--checkpoint", str(ROOT / "no_such_file.safetensors")]):
        proc = subprocess.run([sys.executable, str(SCRIPT), *argv], cwd=ROOT,
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 2 and proc.stdout == "", argv
