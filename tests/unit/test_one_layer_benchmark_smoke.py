"""Smoke test: ``benchmarks/one_layer.py --quick`` runs and prints valid rows.

Every stdout line is a JSON object; each row reports an exact recovery, the
query count equal to its closed form Q_FFN + 2(d + d^2), and a holding
certificate (label ``one_layer_reduction``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "one_layer.py"

KEYS = {
    "route", "d", "m", "seed", "queries", "ffn_queries", "attention_queries",
    "expected_queries", "queries_match", "queries_by_phase", "exact_match", "total_seconds",
    "oracle_seconds", "learner_seconds", "ffn_seconds", "certificate_holds",
    "certificate_seconds",
}


def test_quick_benchmark_prints_valid_json_rows() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [row["d"] for row in rows] == [4, 8]
    for row in rows:
        d = row["d"]
        assert not KEYS - set(row), sorted(KEYS - set(row))
        assert row["m"] == d and row["route"] == "EXP"
        assert row["exact_match"] is True and row["certificate_holds"] is True
        assert row["attention_queries"] == 2 * (d + d * d)
        assert row["queries"] == row["expected_queries"] == row["ffn_queries"] + 2 * (d + d * d)
        assert row["queries_match"] is True
        assert row["total_seconds"] >= row["oracle_seconds"] > 0
        assert abs(row["learner_seconds"] - (row["total_seconds"] - row["oracle_seconds"])) < 1e-5
