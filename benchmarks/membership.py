"""Benchmark of the membership (label) learner (label ``membership_queries``).

Prints one JSON object per line to stdout, one per (d, Q); progress goes to
stderr. Exit code 0 when every row ran, recovered W and v / |v_p| exactly
(``==`` in EXP), spent exactly the closed-form number of labels and has a
holding certificate; 1 otherwise; 2 for a usage error.

    python benchmarks/membership.py [--quick] [--max-d N] [--heights 7,1000,1000000]

Instances: :func:`exactattn.checks.membership_queries.membership_instance`
with d in 2, 4, 8, 16, 32, the height bound (M, Q) with M = 10 and Q in 7,
10^3, 10^6, a quarter of the coordinates of v set to 0 (so the pivot is not
the first coordinate) and a hidden scale |v_p| != 1. Seed ``--seed`` + d.

Keys of every row
-----------------
queries, closed_form      labels spent and d + (n_v - 1) L(M) + d^2 L(2M)
lower_bound               ceil((d^2 + d - 1) log_3 F(M, Q)): no learner does with fewer
lower_bound_binary        the same with log_2 (learners whose labels take two values)
over_lower_bound          queries / lower_bound
value_queries             d + d^2, what value queries need (single_head_exact)
over_value_queries        queries / (d + d^2): the price of labels
seconds, oracle_seconds   the learner call, and the time inside the oracle
exact_match               W == W and v == v / |v_p| (exact, EXP)
certificate_holds         transcript replay plus 8 fresh labels
target_seconds, target_met  the stated target: d = 16, Q = 10^3 in under 60 s
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

try:
    import exactattn  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exactattn.certificates import verify
from exactattn.checks.membership_queries import membership_instance
from exactattn.errors import ExactattnError
from exactattn.learners import learn_single_head_membership
from exactattn.learners.membership import lower_bound, query_count
from exactattn.oracle import SignOracle

SIZES = (2, 4, 8, 16, 32)
HEIGHTS = (7, 1000, 10**6)
QUICK = ((2, 7), (4, 1000), (5, 10**6))
M = 10
TARGET = {(16, 1000): 60.0}


def row(d: int, Q: int, seed: int) -> dict[str, Any]:
    inst = membership_instance(d, seed + d, max_abs=M, max_denominator=Q, zeros_in_v=d // 4)
    out: dict[str, Any] = {"d": d, "M": M, "Q": Q, "seed": seed + d, "pivot": inst.pivot}
    oracle = SignOracle(inst.model)
    start = time.perf_counter()
    try:
        rec = learn_single_head_membership(oracle, max_abs=M, max_denominator=Q)
    except ExactattnError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    seconds = time.perf_counter() - start
    n_v = sum(1 for x in inst.model.v if x != 0)
    p = inst.pivot
    closed = query_count(d, n_v, M, Q)
    lb3, lb2 = lower_bound(d, M, Q), lower_bound(d, M, Q, answers=2)
    cert = verify(rec, oracle, probes=8, seed=d)
    out.update({
        "queries": rec.queries, "closed_form": closed, "queries_by_phase":
        dict(rec.queries_by_phase), "nonzero_v": n_v,
        "lower_bound": lb3, "lower_bound_binary": lb2,
        "over_lower_bound": round(rec.queries / lb3, 4),
        "over_lower_bound_binary": round(rec.queries / lb2, 4),
        "value_queries": d + d * d, "over_value_queries": round(rec.queries / (d + d * d), 3),
        "seconds": round(seconds, 3), "oracle_seconds": round(oracle.seconds, 3),
        "exact_match": bool((rec.W == inst.model.W).all()
                            and (rec.v == inst.model.v / abs(inst.model.v[p])).all()),
        "status": rec.status, "certificate_holds": cert.holds,
        "certificate_checked": cert.checked,
    })
    if (d, Q) in TARGET:
        out["target_seconds"] = TARGET[(d, Q)]
        out["target_met"] = seconds < TARGET[(d, Q)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three small rows (a few seconds)")
    parser.add_argument("--max-d", type=int, default=max(SIZES))
    parser.add_argument("--heights", default=",".join(str(q) for q in HEIGHTS),
                        help="comma-separated Q values")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        heights = [int(q) for q in args.heights.split(",")]
    except ValueError:
        parser.error(f"--heights must be comma-separated integers, got {args.heights!r}")
    if any(q < 1 for q in heights) or args.max_d < 1:
        parser.error("heights and --max-d must be positive")
    cases = list(QUICK) if args.quick else [(d, Q) for Q in heights for d in SIZES
                                            if d <= args.max_d]
    ok = True
    for d, Q in cases:
        print(f"membership d={d} Q={Q} ...", file=sys.stderr, flush=True)
        r = row(d, Q, args.seed)
        print(json.dumps(r), flush=True)
        ok &= ("error" not in r and r["exact_match"] and r["certificate_holds"]
               and r["queries"] == r["closed_form"] and r.get("target_met", True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
