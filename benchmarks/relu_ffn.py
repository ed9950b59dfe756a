"""Benchmark of the ReLU FFN learner (label ``relu_ffn_exact``).

Prints one JSON object per line to stdout (progress on stderr). Exit code 0
when every row ran, every exact row recovered the network exactly
(canonical forms equal) and every certificate holds; 1 otherwise; 2 for a
usage error.

    python benchmarks/relu_ffn.py [--quick] [--routes QQ,F64,QQ784] [--seed S]

Routes
------
QQ     exact, (d, m) = (8, 4), (16, 8), (32, 16), (64, 32): A, w drawn N(0, 1) at
       denominator 1024 (so K = m distinct hyperplanes). ``exact``: the
       recovered network's canonical form equals the hidden one's (``==``).
F64    the size of the best-known cryptanalytic extraction (784-128-1;
       Carlini, Jagielski, Mironov 2020: 2^21.5 queries, worst-case error
       2^-25, float64, *with* biases) but bias-free: A ~ N(0, 1/d),
       w ~ N(0, 1/m), the learner over F64 (tolerances F64_STEP = 2^-20,
       F64_RTOL = 2^-24, F64_GRADIENT_STEP = 2^-24, see
       exactattn/learners/relu_ffn.py). ``max_parameter_error``: the largest of
       |l - l_hat|_inf and |beta n - beta_hat n_hat|_inf over the canonical
       terms (unit normals), after canonicalisation
       (:func:`exactattn.models.relu.parameter_error`).
QQ784  784-128-1 in exact arithmetic, small-integer weights in [-3, 3] (some
       w_k = 0: dead neurons; K reported). About 2 to 5 minutes (machine load).
HARD   the two networks of issue 10: the hidden cancellation
       10|x_0| + |10 x_0 + x_1| - |20 x_0 + x_1| (H fails; g != 0 on a double
       wedge of measure atan(1/10)/pi = 3.2 %) over seeds 0..19, and the weight
       ratio A = [[1, 10^10], [0, 1]], w = (1, 1) over seeds 0..19. One row
       each: exact (canonical forms equal on every seed), exact_seeds, refused,
       mean/max queries, mean lines.

--quick: QQ (8, 4), (16, 8), (32, 16); F64 at (64, 32); no QQ784.

Keys: route, d, m, K (canonical terms), seed, queries, expected_queries (the
closed form 8 + 5K + (K + 1)(max(d - 2, 0) + 1) + R + E, F64: 8 + 7K + (K +
1)(d + 2) + R + E + retries), residual_queries (R per round, default R =
1513: the least R with 4 (99/100)^R <= 10^-6), line_queries (queries -
residual_queries, the lines' part), miss_bound (L (1 - 1/100)^R, rounded
up), extra (E), extra_over_K, queries_over_md, log2_queries, total_seconds
(the learn_relu_ffn call), oracle_seconds, learner_seconds, exact,
certificate_holds, certificate_kind, certificate_seconds; F64 rows add
max_parameter_error and its log2; the 784 rows add the reference figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

try:
    import exactattn
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import exactattn

from exactattn.certificates import verify
from exactattn.checks.relu_ffn_exact import WEDGE  # (also registers the label's certificate)
from exactattn.errors import ExactattnError
from exactattn.fields import F64, QQ
from exactattn.learners.relu_ffn import learn_relu_ffn, query_count
from exactattn.models.relu import ReluFFN, canonical, parameter_error
from exactattn.oracle import ValueOracle

QQ_SIZES = ((8, 4), (16, 8), (32, 16), (64, 32))
QUICK_QQ_SIZES = ((8, 4), (16, 8), (32, 16))
F64_SIZE, QUICK_F64_SIZE = (784, 128), (64, 32)
CERT_PROBES = 16
REFERENCE = {"reference": "Carlini, Jagielski, Mironov 2020: 784-128-1 with biases, float64",
             "reference_log2_queries": 21.5, "reference_log2_error": -25}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(route: str, g: ReluFFN, seed: int, *, keep_transcript: bool = True) -> dict[str, Any]:
    oracle = ValueOracle(g, keep_transcript=keep_transcript)
    start = time.perf_counter()
    rec = learn_relu_ffn(oracle, seed=seed)
    total = time.perf_counter() - start
    terms = rec.options["query_terms"]
    K = int(rec.options["canonical_terms"])
    E = int(rec.options["extra_queries"])
    exact_route = rec.field.exact
    expected = query_count(g.d, K, extra=E, exact=exact_route)
    row: dict[str, Any] = {
        "route": route, "d": g.d, "m": g.m, "K": K, "seed": seed,
        "queries": rec.queries, "expected_queries": expected,
        "queries_by_phase": dict(rec.queries_by_phase),
        "residual_queries": int(terms["residual"]),
        "line_queries": rec.queries - int(terms["residual"]),
        "miss_bound": rec.options["miss_bound"]["probability_at_most"],
        "extra": E, "extra_over_K": round(E / K, 3) if K else None,
        "queries_over_md": round(rec.queries / (g.m * g.d), 4),
        "log2_queries": round(math.log2(rec.queries), 3),
        "lines": rec.options["lines"],
        "total_seconds": round(total, 4),
        "oracle_seconds": round(oracle.seconds, 4),
        "learner_seconds": round(total - oracle.seconds, 4),
        "transcript": keep_transcript,
    }
    hat = ReluFFN(rec.params["A"], rec.params["w"], field=rec.field)
    if exact_route:
        row["exact"] = canonical(hat) == canonical(g)
    else:
        err = parameter_error(hat, g)
        row["exact"] = False
        row["max_parameter_error"] = err
        row["log2_max_parameter_error"] = round(math.log2(err), 2) if err > 0 else None
    start = time.perf_counter()
    cert = verify(rec, oracle, probes=CERT_PROBES, seed=seed + 1)
    row["certificate_holds"] = cert.holds
    row["certificate_kind"] = cert.kind
    row["certificate_checked"] = cert.checked
    row["certificate_seconds"] = round(time.perf_counter() - start, 4)
    if not cert.holds:
        row["certificate_failure"] = str(cert.first_failure)
    return row


HARD = {
    "hidden_cancellation": WEDGE,
    "weight_ratio_1e10": ([[1, 10**10], [0, 1]], [1, 1]),
}


def run_hard(name: str, seeds: int = 20) -> dict[str, Any]:
    """One row: the issue-10 network ``name`` learned with seeds 0..seeds-1."""
    g = ReluFFN(*HARD[name], field=QQ)
    queries, lines, exact, refused = [], [], 0, 0
    start = time.perf_counter()
    for seed in range(seeds):
        try:
            rec = learn_relu_ffn(ValueOracle(g), seed=seed)
        except ExactattnError:
            refused += 1
            continue
        queries.append(rec.queries)
        lines.append(rec.options["lines"])
        hat = ReluFFN(rec.params["A"], rec.params["w"], field=QQ)
        exact += int(canonical(hat) == canonical(g))
    return {"route": "HARD", "network": name, "d": g.d, "m": g.m, "seeds": seeds,
            "exact": exact == seeds, "exact_seeds": exact, "refused": refused,
            "mean_queries": round(sum(queries) / len(queries), 1) if queries else None,
            "max_queries": max(queries, default=None),
            "mean_lines": round(sum(lines) / len(lines), 2) if lines else None,
            "total_seconds": round(time.perf_counter() - start, 3)}


def qq_instance(d: int, m: int, seed: int) -> ReluFFN:
    rng = np.random.default_rng([seed, d, m])
    return ReluFFN(QQ.gaussian(rng, (d, m)), QQ.gaussian(rng, m), field=QQ)


def f64_instance(d: int, m: int, seed: int) -> ReluFFN:
    rng = np.random.default_rng([seed, d, m])
    return ReluFFN(rng.standard_normal((d, m)) / np.sqrt(d), rng.standard_normal(m) / np.sqrt(m),
                   field=F64)


def qq784_instance(seed: int) -> ReluFFN:
    rng = np.random.default_rng([seed, 784, 128])
    A = rng.integers(-3, 4, size=(784, 128))
    w = rng.integers(-3, 4, size=128)
    return ReluFFN(A.tolist(), w.tolist(), field=QQ)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true",
                   help="small sizes only (QQ up to (32, 16), F64 at (64, 32)): a smoke test")
    p.add_argument("--routes", default=None,
                   help="comma-separated subset of QQ,F64,QQ784,HARD (default: all; "
                        "--quick: QQ,F64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the instances and the learner")
    args = p.parse_args(argv)
    default = "QQ,F64" if args.quick else "QQ,F64,QQ784,HARD"
    routes = [r.strip().upper() for r in (args.routes or default).split(",") if r.strip()]
    bad = [r for r in routes if r not in ("QQ", "F64", "QQ784", "HARD")]
    if bad or not routes:
        p.error(f"--routes takes QQ, F64, QQ784 and/or HARD, got {args.routes!r}")
    if args.quick and ("QQ784" in routes or "HARD" in routes):
        p.error("QQ784 and HARD are not quick routes")
    args.routes = routes
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log(f"exactattn {exactattn.__version__}, python {platform.python_version()}, "
        f"numpy {np.__version__}, {platform.machine()}, loadavg {os.getloadavg()[0]:.2f}")
    jobs: list[tuple[str, Any, bool, dict[str, Any]]] = []
    for route in args.routes:
        if route == "QQ":
            for d, m in QUICK_QQ_SIZES if args.quick else QQ_SIZES:
                jobs.append((route, lambda d=d, m=m: qq_instance(d, m, args.seed), True, {}))
        elif route == "F64":
            d, m = QUICK_F64_SIZE if args.quick else F64_SIZE
            jobs.append((route, lambda d=d, m=m: f64_instance(d, m, args.seed), d < 500,
                         REFERENCE if d == 784 else {}))
        elif route == "QQ784":
            jobs.append((route, lambda: qq784_instance(args.seed), False, REFERENCE))
    ok = True
    if "HARD" in args.routes:
        for name in HARD:
            log(f"[HARD] {name}, seeds 0..19 ...")
            hard = run_hard(name)
            ok = ok and hard["exact"]
            print(json.dumps(hard), flush=True)
    for route, make, keep, extra in jobs:
        g = make()
        log(f"[{route}] d = {g.d}, m = {g.m} ...")
        try:
            row = run(route, g, args.seed, keep_transcript=keep)
        except ExactattnError as exc:
            row = {"route": route, "d": g.d, "m": g.m, "seed": args.seed,
                   "error": f"{type(exc).__name__}: {exc}", "exact": False,
                   "certificate_holds": False}
        row.update(extra)
        log(f"[{route}] d = {g.d}, m = {g.m}: {row.get('queries')} queries, "
            f"{row.get('total_seconds')} s")
        if "error" in row or not row["certificate_holds"] or (
                route != "F64" and not row["exact"]) or (
                route == "F64" and not row["max_parameter_error"] < 1e-6):
            ok = False
        print(json.dumps(row), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
