"""Benchmark of the canonical multi-head learner (label ``multihead_canonical``).

Prints one JSON object per line to stdout, one per (H, d); progress goes to
stderr. Exit code 0 when every row recovered the canonical heads exactly
(``==`` in EXP) with a holding certificate and no more queries than the
published bound, 1 otherwise.

    python benchmarks/multihead.py [--quick] [--max-h H] [--max-d D] [--seed S]

Instances: ``random_multihead(H, d, seed)`` (entries p/q, |p| <= 9, q <= 8).
Keys: ``queries`` (spent, from the oracle's counter), ``proved_queries``
(``query_count(H, d, m, plan)``), ``published_bound`` (4 H d^2 - 2 H + 1,
arXiv 2608.03294), ``ratio_vs_published``, ``info_floor`` (H (d^2 + d)
unknowns), ``seconds`` (the learner, oracle included), ``oracle_seconds``,
``certificate_seconds`` (``verify(..., probes=8)``, timed separately),
``exact`` (recovered heads == canonical(model)), ``certificate_holds``,
``plan``, ``m``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

try:
    import exactattn
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import exactattn

from exactattn.certificates import verify
from exactattn.checks.multihead import recovered_model
from exactattn.errors import ExactattnError
from exactattn.learners.multihead import learn_multihead, published_bound, query_count
from exactattn.models.multihead import canonical, random_multihead, same_heads
from exactattn.oracle import ValueOracle

FULL = {"H": range(1, 5), "d": range(2, 9)}
QUICK = {"H": range(1, 3), "d": range(2, 4)}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(H: int, d: int, seed: int) -> dict[str, Any]:
    model = random_multihead(H, d, seed)
    oracle = ValueOracle(model)
    start = time.perf_counter()
    rec = learn_multihead(oracle, heads=H, seed=seed)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    cert = verify(rec, oracle, probes=8, seed=seed)
    cert_s = time.perf_counter() - start
    m, plan = int(rec.options["m"]), str(rec.options["plan"])
    return {
        "H": H, "d": d, "seed": seed, "m": m, "plan": plan,
        "queries": rec.queries,
        "proved_queries": query_count(H, d, m=m, plan=plan),
        "published_bound": published_bound(H, d),
        "ratio_vs_published": round(rec.queries / published_bound(H, d), 4),
        "info_floor": H * (d * d + d),
        "queries_by_phase": dict(rec.queries_by_phase),
        "seconds": round(seconds, 4),
        "oracle_seconds": round(oracle.seconds, 4),
        "exact": same_heads(recovered_model(rec), canonical(model)),
        "certificate_holds": cert.holds,
        "certificate_seconds": round(cert_s, 4),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="H = 1, 2 and d = 2, 3 only")
    p.add_argument("--max-h", type=int, default=None)
    p.add_argument("--max-d", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    grid = QUICK if args.quick else FULL
    ok = True
    log(f"exactattn {exactattn.__version__}: multihead_canonical benchmark")
    for H in grid["H"]:
        if args.max_h is not None and H > args.max_h:
            continue
        for d in grid["d"]:
            if args.max_d is not None and d > args.max_d:
                continue
            try:
                row = run(H, d, args.seed)
            except ExactattnError as exc:
                row = {"H": H, "d": d, "seed": args.seed, "exact": False,
                       "certificate_holds": False, "error": f"{type(exc).__name__}: {exc}"}
            log(f"H = {H}, d = {d}: {row.get('queries')} queries, {row.get('seconds')} s")
            if "error" in row or not (row["exact"] and row["certificate_holds"]
                                      and row["queries"] == row["proved_queries"]
                                      <= row["published_bound"]):
                ok = False
            print(json.dumps(row), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
