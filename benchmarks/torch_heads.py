"""Benchmark: learning the merged parameters of real ``torch.nn.MultiheadAttention`` heads.

Prints one JSON object per line to stdout, one per (d, biases, dtype);
progress goes to stderr. Needs the optional extra ``exactattn[torch]``
(exit code 2 without it). Exit code 0 when every row is within its stated
tolerance and its certificate holds, 1 otherwise.

    python benchmarks/torch_heads.py [--quick] [--max-d N] [--threads T] [--seed S]

Rows
----
The module: ``torch.nn.MultiheadAttention(d, 1, bias=biases, batch_first=True)``
with torch's default initialisation (seed ``--seed`` + d); with biases,
b_q, b_k, b_v, b_o ~ N(0, 1) (torch initialises them to 0, which would make
c = 0 and beta = 0). Read-out: the first output coordinate (rho = e_1).
The oracle (:func:`exactattn.torch_oracle.oracle_from_torch`) evaluates the
module in ``dtype`` (float64 or float32), one forward pass per batch. The
learner: :func:`exactattn.learners.biased_head.learn_biased_head` with
``scale = sqrt(d)`` and ``roundoff`` = the dtype's unit roundoff; truth:
:func:`exactattn.torch_oracle.merged_parameters` (W = W_k^T W_q / sqrt(h),
c = W_k^T b_q / sqrt(h), v = W_v^T W_o^T rho, beta = rho^T (W_o b_v + b_o)).

Keys
----
d, head_dim (= d: one head), biases, dtype, scale, queries, expected_queries
((d + 1)^2), queries_by_phase, forward_passes; total_seconds (the learner
call), oracle_seconds (time inside the oracle: validation and the module's
forward passes), learner_seconds (= total - oracle); max_rel_error_W,
max_rel_error_v, max_rel_error_c (max|error| / max|truth|; c only with
biases), abs_error_beta; rel_tolerance = 2^8 d u (u = 2^-24 or 2^-53, see
``tests/unit/test_torch_oracle.py`` for its derivation from Higham's gamma_n)
and within_tolerance; within_learner_bounds (Frobenius / 2-norm errors of W,
c, v within the recovery's first-order bounds); certificate_holds (fresh and
replayed queries within the certificate's float tolerance);
formula_max_abs_diff (module vs the merged model on 32 random queries);
baseline_unit_probes_max_rel_error_W (the same learner with scale = 1, the
paper's unit probes: what the scale gains); torch_version, torch_threads and
the machine's load.
"""

from __future__ import annotations

import argparse
import gc
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

import exactattn.checks.single_head_biased  # noqa: F401  (the certificate builder)
from exactattn.certificates import verify
from exactattn.errors import ExactattnError
from exactattn.fields import F64
from exactattn.learners.biased_head import biased_query_count, learn_biased_head
from exactattn.models import BiasedSingleHeadAttention
from exactattn.oracle import ValueOracle
from exactattn.torch_oracle import TorchHead, merged_parameters

SIZES = (16, 64, 256)
QUICK_SIZES = (16,)
DTYPES = ("float64", "float32")
ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}
CERT_PROBES = 8
FORMULA_QUERIES = 32


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_module(torch: Any, d: int, biases: bool, seed: int) -> Any:
    torch.manual_seed(seed)
    m = torch.nn.MultiheadAttention(d, 1, bias=biases, batch_first=True)
    if biases:
        with torch.no_grad():
            m.in_proj_bias.normal_()
            m.out_proj.bias.normal_()
    return m


def rel(err: Any, truth: Any) -> float:
    return float(np.abs(err).max() / np.abs(truth).max())


def run(torch: Any, d: int, biases: bool, dtype: str, seed: int) -> dict[str, Any]:
    m = make_module(torch, d, biases, seed)
    truth = merged_parameters(m)
    head = TorchHead(m, dtype=getattr(torch, dtype))
    oracle = ValueOracle(head)
    scale = math.sqrt(d)
    gc.collect()
    start = time.perf_counter()
    rec = learn_biased_head(oracle, scale=scale, roundoff=head.unit_roundoff)
    total = time.perf_counter() - start
    W, c, v, beta = rec.W, rec.params["c"], rec.v, float(rec.params["beta"][()])
    tol = 2.0**8 * d * ROUNDOFF[dtype]
    row: dict[str, Any] = {
        "route": "torch", "d": d, "head_dim": int(m.head_dim), "biases": biases,
        "dtype": dtype, "readout": "first output coordinate", "scale": scale, "seed": seed,
        "queries": rec.queries, "expected_queries": biased_query_count(d),
        "queries_by_phase": dict(rec.queries_by_phase),
        "forward_passes": head.forward_passes,
        "total_seconds": round(total, 6), "oracle_seconds": round(oracle.seconds, 6),
        "learner_seconds": round(total - oracle.seconds, 6),
        "max_rel_error_W": rel(W - truth.W, truth.W),
        "max_rel_error_v": rel(v - truth.v, truth.v),
        "max_rel_error_c": rel(c - truth.c, truth.c) if biases else None,
        "abs_error_c": float(np.abs(c - truth.c).max()),
        "abs_error_beta": abs(beta - truth.beta),
        "rel_tolerance": tol,
    }
    row["within_tolerance"] = bool(
        row["max_rel_error_W"] <= tol and row["max_rel_error_v"] <= tol
        and (row["max_rel_error_c"] is None or row["max_rel_error_c"] <= tol))
    o = rec.options
    row["within_learner_bounds"] = bool(
        np.linalg.norm(W - truth.W) <= o["W_error_bound"]
        and np.linalg.norm(c - truth.c) <= o["c_error_bound"]
        and np.linalg.norm(v - truth.v) <= o["v_error_bound"])
    row["W_error_bound"] = float(o["W_error_bound"])
    start = time.perf_counter()
    cert = verify(rec, oracle, probes=CERT_PROBES, seed=seed)
    row["certificate_holds"] = cert.holds
    row["certificate_kind"] = cert.kind
    row["certificate_seconds"] = round(time.perf_counter() - start, 6)
    if not cert.holds:
        row["certificate_failure"] = str(cert.first_failure)
    # the formulas against the module's own outputs
    model = BiasedSingleHeadAttention(truth.W, truth.c, truth.v, truth.beta, field=F64)
    Xs = np.random.default_rng(seed).standard_normal((FORMULA_QUERIES, 4, d)) * math.sqrt(d)
    row["formula_max_abs_diff"] = float(np.abs(head.batch(Xs) - model.batch(Xs)).max())
    # baseline: the paper's unit probes (scale = 1)
    base = learn_biased_head(ValueOracle(TorchHead(m, dtype=getattr(torch, dtype))),
                             roundoff=head.unit_roundoff)
    row["baseline_unit_probes_max_rel_error_W"] = rel(base.W - truth.W, truth.W)
    return row


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="d = 16 only: a smoke test")
    p.add_argument("--max-d", type=int, default=None, help="skip sizes with d > N")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: the forward passes are small)")
    p.add_argument("--seed", type=int, default=0, help="base seed (the row seed is seed + d)")
    args = p.parse_args(argv)
    if args.max_d is not None and args.max_d < 1:
        p.error("--max-d must be a positive integer")
    if args.threads < 1:
        p.error("--threads must be a positive integer")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        log('torch_heads.py needs PyTorch: pip install "exactattn[torch]" (torch==2.13.0)')
        return 2
    torch.set_num_threads(args.threads)
    log(f"exactattn {exactattn.__version__}, torch {torch.__version__}, python "
        f"{platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    ok = True
    for d in QUICK_SIZES if args.quick else SIZES:
        if args.max_d is not None and d > args.max_d:
            continue
        for biases in (False, True):
            for dtype in DTYPES:
                seed = args.seed + d
                load = os.getloadavg()[0]
                log(f"d = {d}, biases = {biases}, {dtype}: {biased_query_count(d)} queries ...")
                try:
                    row = run(torch, d, biases, dtype, seed)
                except ExactattnError as exc:
                    row = {"route": "torch", "d": d, "biases": biases, "dtype": dtype,
                           "error": f"{type(exc).__name__}: {exc}", "within_tolerance": False,
                           "certificate_holds": False}
                row.update({"torch_version": torch.__version__,
                            "torch_threads": torch.get_num_threads(),
                            "cpu_count": os.cpu_count(), "loadavg_1min_before": round(load, 2)})
                ok = ok and "error" not in row and row["within_tolerance"] and \
                    row["certificate_holds"]
                print(json.dumps(row), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
