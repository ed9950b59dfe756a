"""Smoke test: ``benchmarks/multihead.py --quick`` runs and prints valid rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "multihead.py"

KEYS = {"H", "d", "m", "plan", "queries", "proved_queries", "published_bound",
        "ratio_vs_published", "info_floor", "seconds", "exact", "certificate_holds"}


def test_quick_benchmark_prints_valid_json_rows() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [(r["H"], r["d"]) for r in rows] == [(1, 2), (1, 3), (2, 2), (2, 3)]
    for row in rows:
        assert not KEYS - set(row), sorted(KEYS - set(row))
        assert row["exact"] is True and row["certificate_holds"] is True
        assert row["queries"] == row["proved_queries"] <= row["published_bound"]
        H, d = row["H"], row["d"]
        assert row["published_bound"] == 4 * H * d * d - 2 * H + 1


def test_bad_option_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--max-h", "x"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
