"""Benchmark rows run one per child process, so each row's peak memory is its own.

Shared by ``real_heads.py`` and ``transcripts.py``: the parent starts
``python SCRIPT --row JSON`` for every row spec, echoes the child's last stdout
line (one JSON row) and reads its ``targets_met``; the child calls
:func:`rss_mb` for ``ru_maxrss`` of its own process.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from typing import Any


def rss_mb() -> float:
    """Peak resident set size of this process in MB (``ru_maxrss``; Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_rows(script: str, specs: list[dict[str, Any]]) -> bool:
    """Run every spec as ``script --row JSON`` in its own process and print its row.

    Returns True when every child exited with 0 and its row has ``targets_met``.
    A failing child's stderr goes to stderr.
    """
    ok = True
    for spec in specs:
        print(f"running {spec}", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, script, "--row", json.dumps(spec)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            ok = False
            continue
        line = proc.stdout.strip().splitlines()[-1]
        print(line, flush=True)
        ok = ok and bool(json.loads(line)["targets_met"])
    return ok
