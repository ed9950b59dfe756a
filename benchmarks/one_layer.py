"""Benchmark of ``one_layer_reduction``: learn a one-layer Transformer exactly (EXP).

One JSON object per line on stdout (progress on stderr), one row per size
d = 4, 8, 16 with m = d (``--quick``: d = 4, 8), on a seeded instance with
rational entries of denominator 1024 (W scaled by 1/sqrt(d), A and w_o
standard Gaussian draws; redrawn until A w_o != 0).

Keys
----
route, d, m, seed          the instance (route is always "EXP")
queries                    queries spent (the oracle's counter)
ffn_queries                queries of step 1 (the FFN learner), all of length 1
ffn_hidden_units           width of the recovered canonical FFN (K + 2 or K)
attention_queries          queries of step 2: 2 (d + d^2) expected
expected_queries           ffn_queries + 2 (d + d^2), the closed form
queries_match              queries == expected_queries
queries_by_phase           the oracle's split
exact_match                W == W*, v == A w_o (exact ==) and the FFN equivalent to g
total_seconds              the learn_one_layer call
oracle_seconds             time inside the oracle (evaluating the hidden TF, validation)
learner_seconds            total - oracle
ffn_seconds                step 1 alone (learner and oracle), measured by a separate run
certificate_holds, certificate_seconds
                           exactattn.certificates.verify(..., probes=8): the whole
                           Transformer rebuilt and replayed exactly
"""

from __future__ import annotations

import argparse
import gc
import json
import math
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

from flint import fmpq

import exactattn.checks.one_layer_reduction  # noqa: F401  (registers the certificate builder)
from exactattn.certificates import verify
from exactattn.errors import ExactattnError
from exactattn.fields import EXP
from exactattn.learners.one_layer import attention_query_count, learn_one_layer
from exactattn.learners.relu_ffn import learn_relu_ffn
from exactattn.models import OneLayerTransformer
from exactattn.models.relu import ReluFFN, equivalent
from exactattn.oracle import ValueOracle

SIZES = (4, 8, 16)
QUICK_SIZES = (4, 8)
DENOMINATOR = 1024
CERT_PROBES = 8


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rationals(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> Any:
    draws = np.rint(rng.standard_normal(shape) * DENOMINATOR * scale).astype(np.int64)
    out = np.empty(shape, dtype=object)
    out.flat[:] = [fmpq(int(n), DENOMINATOR) for n in draws.flat]
    return out


def instance(d: int, m: int, seed: int) -> OneLayerTransformer:
    rng = np.random.default_rng(seed)
    while True:
        tf = OneLayerTransformer(rationals(rng, (d, d), 1 / math.sqrt(d)),
                                 rationals(rng, (d, m)), rationals(rng, (m,)), field=EXP)
        if any(x != 0 for x in tf.v):
            return tf


def same(A: Any, B: Any) -> bool:
    return bool(A.shape == B.shape and all(a == b for a, b in zip(A.flat, B.flat, strict=True)))


def run(d: int, m: int, seed: int) -> dict[str, Any]:
    tf = instance(d, m, seed)
    # step 1 alone, on its own oracle: how much of the time is the FFN learner
    gc.collect()
    start = time.perf_counter()
    learn_relu_ffn(ValueOracle(tf), seed=seed)
    ffn_seconds = time.perf_counter() - start

    oracle = ValueOracle(tf)
    gc.collect()
    start = time.perf_counter()
    rec = learn_one_layer(oracle, seed=seed)
    total = time.perf_counter() - start
    q_ffn = int(rec.options["ffn_queries"])
    expected = q_ffn + attention_query_count(d)
    exact = (same(rec.W, tf.W) and same(rec.v, tf.v)
             and equivalent(ReluFFN(rec.params["A"], rec.params["w"], field=EXP),
                            ReluFFN(tf.A, tf.w_o, field=EXP)))
    start = time.perf_counter()
    cert = verify(rec, oracle, probes=CERT_PROBES, seed=1)
    cert_seconds = time.perf_counter() - start
    learner = total - oracle.seconds
    return {
        "route": "EXP", "d": d, "m": m, "seed": seed,
        "queries": rec.queries, "ffn_queries": q_ffn,
        "ffn_hidden_units": rec.options["ffn_hidden_units"],
        "attention_queries": rec.queries - q_ffn,
        "expected_queries": expected, "queries_match": rec.queries == expected,
        "queries_by_phase": dict(rec.queries_by_phase),
        "exact_match": exact,
        "total_seconds": round(total, 6),
        "oracle_seconds": round(oracle.seconds, 6),
        "learner_seconds": round(learner, 6),
        "ffn_seconds": round(ffn_seconds, 6),
        "certificate_holds": cert.holds, "certificate_checked": cert.checked,
        "certificate_seconds": round(cert_seconds, 6),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="d = 4, 8 only: a smoke test")
    p.add_argument("--seed", type=int, default=0, help="base seed (the row seed is seed + d)")
    args = p.parse_args(argv)
    log(f"exactattn {exactattn.__version__}: one_layer_reduction benchmark")
    ok = True
    for d in QUICK_SIZES if args.quick else SIZES:
        seed = args.seed + d
        log(f"d = m = {d} ...")
        try:
            row = run(d, d, seed)
        except ExactattnError as exc:
            row = {"route": "EXP", "d": d, "m": d, "seed": seed,
                   "error": f"{type(exc).__name__}: {exc}", "exact_match": False,
                   "queries_match": False, "certificate_holds": False}
        ok = ok and bool(row["exact_match"] and row["queries_match"]
                         and row["certificate_holds"])
        print(json.dumps(row), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
