"""Finite precision made exact: computed precision bound vs the smallest that works.

For seeded rational single-head instances (entries p/q with |p/q| <= 9,
q <= 8) an oracle answers rigorous balls at a precision of `prec` bits
(`enclosing_oracle(model, BALL(prec))`); the learner reconstructs every entry
as the unique rational of denominator <= 8 in its ball. Each row prints, as
one JSON object: d, the provable bound `required_precision(d, 9, 8)`, the
smallest precision that reconstructed the instance (binary search over
[8, bound]; every precision at or above it is checked to work too on a
sample), the slack (bound / smallest), seconds and queries at the bound,
exact (reconstruction equals the hidden model, compared with ==).
Baseline in the same run: the same instance learned exactly in EXP
(ratio = seconds over BALL at the bound / seconds in EXP).

Rows with "route": "F64 rescaled" measure the float64 route on large heads
(W = w [[1]] and d = 8 heads with Gaussian entries times w): the relative
Frobenius error of W (and in units of u = 2^-53), the stated first-order bound
W_error_bound, whether the error is within it, and the extra queries of phase
"W rescaled". Baseline: the plain d + d^2 probes (rescale=False) on the same
head, its relative error or the error it raises.

    python benchmarks/precision.py [--quick] [--max-d N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from exactattn.errors import ExactattnError
from exactattn.fields import BALL, EXP, F64
from exactattn.instances import single_head_instance
from exactattn.learners import learn_single_head
from exactattn.models import SingleHeadAttention
from exactattn.oracle import ValueOracle, enclosing_oracle
from exactattn.reconstruct import required_precision

MAX_ENTRY, MAX_DEN = 9, 8


def works(model: object, d: int, prec: int) -> bool:
    try:
        rec = learn_single_head(enclosing_oracle(model, BALL(prec)), max_denominator=MAX_DEN)
    except ExactattnError:
        return False
    return bool((rec.W == model.W).all() and (rec.v == model.v).all())  # type: ignore[attr-defined]


def row(d: int, seed: int) -> dict[str, object]:
    inst = single_head_instance(d, seed, field=EXP)
    bound = required_precision(d, MAX_ENTRY, MAX_DEN)
    start = time.perf_counter()
    oracle = enclosing_oracle(inst.model, BALL(bound))
    rec = learn_single_head(oracle, max_denominator=MAX_DEN)
    seconds = time.perf_counter() - start
    exact = bool((rec.W == inst.model.W).all() and (rec.v == inst.model.v).all())
    lo, hi = 8, bound  # invariant: hi works
    while lo < hi:
        mid = (lo + hi) // 2
        if works(inst.model, d, mid):
            hi = mid
        else:
            lo = mid + 1
    above = all(works(inst.model, d, p) for p in range(hi, min(bound, hi + 8) + 1))
    t0 = time.perf_counter()
    learn_single_head(ValueOracle(inst.model))
    exp_seconds = time.perf_counter() - t0
    return {
        "d": d, "seed": seed, "bound_bits": bound, "smallest_working_bits": hi,
        "slack_bits": bound - hi, "all_checked_above_smallest_work": above,
        "queries": rec.queries, "expected_queries": d + d * d, "seconds": round(seconds, 4),
        "oracle_seconds": round(oracle.seconds, 4), "exact": exact,
        "max_error": 0 if exact else None,
        "baseline": "the same instance learned exactly in EXP (ValueOracle)",
        "baseline_seconds": round(exp_seconds, 4),
        "ratio_vs_baseline": round(seconds / exp_seconds, 3) if exp_seconds else None,
    }


def _fro(A: np.ndarray) -> float:
    m = float(np.abs(A).max())
    return m * float(np.linalg.norm(A / m)) if m > 0 else 0.0


def f64_row(d: int, w: float, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    W = np.array([[w]]) if d == 1 else rng.standard_normal((d, d)) * w
    v = np.array([1.0]) if d == 1 else rng.standard_normal(d)
    oracle = ValueOracle(SingleHeadAttention(W, v, field=F64))
    start = time.perf_counter()
    rec = learn_single_head(oracle)
    seconds = time.perf_counter() - start
    err = _fro(rec.W - W)
    rel = err / _fro(W)
    bound = float(rec.options["W_error_bound"])  # type: ignore[arg-type]
    try:
        plain = learn_single_head(ValueOracle(SingleHeadAttention(W, v, field=F64)),
                                  rescale=False)
        baseline: object = _fro(plain.W - W) / _fro(W)
    except ExactattnError as exc:
        baseline = f"{type(exc).__name__}: {str(exc)[:80]}"
    return {
        "route": "F64 rescaled", "d": d, "scale": w, "seed": seed,
        "relative_error_W": rel, "relative_error_in_ulps": round(rel / 2.0**-53, 2),
        "W_error_bound": bound, "relative_bound": bound / _fro(W),
        "within_bound": err <= bound, "queries": rec.queries,
        "rescaled_queries": rec.queries_by_phase.get("W rescaled", 0),
        "expected_queries_without_rescaling": d + d * d, "seconds": round(seconds, 4),
        "baseline": "the plain d + d^2 probes (rescale=False) on the same head",
        "baseline_relative_error_W": baseline,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d = 2, 4 only")
    parser.add_argument("--max-d", type=int, default=16)
    args = parser.parse_args(argv)
    dims = [2, 4] if args.quick else [d for d in (2, 4, 8, 16) if d <= args.max_d]
    ok = True
    for d in dims:
        for seed in (0, 1):
            print(f"precision: d = {d}, seed = {seed}", file=sys.stderr, flush=True)
            r = row(d, seed)
            ok = ok and bool(r["exact"]) and bool(r["all_checked_above_smallest_work"])
            print(json.dumps(r), flush=True)
    heads = [(1, 1e6), (1, 1e12)] if args.quick else [
        (1, 1e3), (1, 1e6), (1, -1e6), (1, 1e12), (1, 1e100), (8, 1e4), (8, 1e8), (8, 1e12)]
    for d, w in heads:
        print(f"precision: F64 head d = {d}, scale {w:g}", file=sys.stderr, flush=True)
        r = f64_row(d, w, 0)
        ok = ok and bool(r["within_bound"])
        print(json.dumps(r), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
