"""Benchmark of the saturation learner for biased multi-head attention (issue 15).

Prints one JSON object per line to stdout, one per case; progress goes to
stderr. Exit code 0 when every row meets its target, 1 otherwise, 2 for a
usage error.

    python benchmarks/multihead_saturated.py [--quick] [--seeds N]
                                             [--checkpoint FILE --layer L [--heads 0,1,...]]

Synthetic rows: the rows of benchmarks/multihead_biased.py
(``random_biased_multihead`` with scale 3: ``H2_d16_r4``, ``H3_d24_r4``,
``H4_d32_r8``, ``H8_d64_r8``; target max relative error <= 1e-8), each over
``--seeds`` seeds, learned by :func:`~exactattn.learners.learn_multihead_saturated`
with the rank. The baseline, in the same run, is the copy-family learner
:func:`~exactattn.learners.learn_multihead_biased` on the two smallest rows
(``baseline_*`` keys and the ratios ``queries_ratio`` and ``seconds_ratio``,
saturated over baseline); on the larger rows it takes minutes (H4_d32_r8) or
refuses (H8_d64_r8), as docs/multihead_biased.md records.

Layer row (``--checkpoint``, never in tests or CI): every head of one
attention layer of a BERT-style ``.safetensors`` file (for example
all-MiniLM-L6-v2 layer 0: d = 384, 12 heads of dimension 32), read out by
rho ~ N(0, I / d) before the residual, learned at ``--scale`` (default 4)
with rank = the head dimension, and compared with the merged parameters
from the file; target <= 1e-6 for every head. ``--quick``: ``H2_d6_r2``
and a random 4-head layer of d = 16 (a smoke test).

Keys: case, H, d, rank, seed, queries (the oracle's counter), path_queries
(the adaptive part), failed_tries, degrees_of_freedom (H (r (2d - r) + 2d) +
1), max_rel_error (max over heads of the largest entry error of W_h, c_h or
v_h over the largest entry of the hidden head; beta over max(1, |beta|)),
per_head (the same per head, rows of more than 4 heads), within_bounds (every entry within
its first-order estimate), max_relative_bound (the learner's estimate),
estimate_over_error, seconds, max_rss_mb, target, target_met; ``refused``
with ``error`` when the learner refused.

BLAS threads are pinned to 1 before numpy loads (as in the other benchmarks).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

try:
    import exactattn  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from multihead_biased import SYNTHETIC, _dof, checkpoint_layer  # noqa: E402

from exactattn.checkpoint_layer import layer_oracle  # noqa: E402
from exactattn.checkpoints import random_layer  # noqa: E402
from exactattn.checks.multihead_biased import (  # noqa: E402
    biased_recovery_errors,
    head_errors,
    paired_heads,
)
from exactattn.errors import ExactattnError  # noqa: E402
from exactattn.learners import learn_multihead_biased, learn_multihead_saturated  # noqa: E402
from exactattn.models.multihead_biased import (  # noqa: E402
    BiasedMultiHeadAttention,
    random_biased_multihead,
)
from exactattn.oracle import ValueOracle  # noqa: E402

QUICK = (("H2_d6_r2", 2, 6, 2, 1e-8),)
#: the rows on which the copy-family baseline runs in seconds
BASELINE_ROWS = ("H2_d16_r4", "H3_d24_r4", "H2_d6_r2")
LAYER_TARGET = 1e-6


def _per_head(rec: Any, truth: BiasedMultiHeadAttention) -> list[float | None]:
    """Per true head, its largest relative error of W, c or v (heads paired one-to-one by
    nearest W; None for each head when they do not pair)."""
    truths = [np.asarray(x, dtype=np.float64) for x in truth.Ws]
    pairs = paired_heads(rec.params["W"], truths)
    if pairs is None:
        return [None] * len(truths)
    out: list[float | None] = []
    for k, Wt, ct, vt in zip(pairs, truths, truth.cs, truth.vs, strict=True):
        rel, _ = head_errors(rec.params, k, Wt, np.asarray(ct, dtype=np.float64),
                             np.asarray(vt, dtype=np.float64))
        out.append(max(math.inf if e is None else e for e in rel.values()))
    return out


def _run(case: str, oracle: ValueOracle, truth: BiasedMultiHeadAttention, H: int, r: int,
         target: float, seed: int, extra: dict[str, Any], scale: float = 1.0,
         baseline: bool = False) -> dict[str, Any]:
    d = truth.d
    row: dict[str, Any] = {"case": case, "H": H, "d": d, "rank": r, "seed": seed, **extra,
                           "degrees_of_freedom": _dof(H, d, r), "target": target}
    print(f"[multihead_saturated] {case} seed {seed}: H = {H}, d = {d}, r = {r} ...",
          file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        # the estimates are reported, not used to refuse: the target is the measured error
        rec = learn_multihead_saturated(oracle, heads=H, rank=r, seed=seed, scale=scale,
                                        max_relative_bound=1.0)
    except ExactattnError as exc:
        row.update({"queries": oracle.queries, "seconds": round(time.perf_counter() - t0, 3),
                    "refused": True, "error": f"{type(exc).__name__}: {str(exc)[:400]}",
                    "target_met": False})
        return row
    seconds = time.perf_counter() - t0
    rel, within = biased_recovery_errors(rec, truth)
    est = rec.options["conditioning"]["max_relative_bound"]
    row.update({"queries": rec.queries, "path_queries": rec.options["path"]["queries"],
                "failed_tries": len(rec.options["path"]["failed_tries"]),
                "seconds": round(seconds, 3), "refused": False, "m": rec.options["m"],
                "max_rel_error": rel,
                "log10_max_rel_error": round(math.log10(rel), 2) if rel > 0 else None,
                "within_bounds": within, "max_relative_bound": est,
                "estimate_over_error": est / rel if rel > 0 else None,
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                "target_met": bool(rel <= target and rec.options["m"] == H)})
    if truth.H > 4:
        row["per_head"] = _per_head(rec, truth)
    if baseline:
        base_oracle = ValueOracle(truth)
        t1 = time.perf_counter()
        try:
            base = learn_multihead_biased(base_oracle, heads=H, rank=r, seed=seed,
                                          max_relative_bound=1.0)
            b_rel, _ = biased_recovery_errors(base, truth)
            b_sec = time.perf_counter() - t1
            row.update({"baseline": "learn_multihead_biased", "baseline_queries": base.queries,
                        "baseline_seconds": round(b_sec, 3), "baseline_max_rel_error": b_rel,
                        "queries_ratio": round(rec.queries / base.queries, 3),
                        "seconds_ratio": round(seconds / b_sec, 4)})
        except ExactattnError as exc:
            row.update({"baseline": "learn_multihead_biased",
                        "baseline_error": f"{type(exc).__name__}: {str(exc)[:200]}"})
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: small rows only")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per synthetic row (default 3)")
    ap.add_argument("--checkpoint", help="a BERT-style .safetensors file (the layer row)")
    ap.add_argument("--layer", type=int, default=0)
    ap.add_argument("--heads", default=None, help="heads of the layer, 0-based (default all)")
    ap.add_argument("--num-heads", type=int, default=None)
    ap.add_argument("--scale", type=float, default=4.0,
                    help="norm of the bases' steps for the layer row (default 4)")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        print("--seeds must be >= 1", file=sys.stderr)
        return 2
    heads = None
    if args.heads is not None:
        try:
            heads = tuple(int(x) for x in args.heads.split(","))
        except ValueError:
            print(f"--heads must be comma-separated integers, got {args.heads!r}",
                  file=sys.stderr)
            return 2
    if args.checkpoint:
        loaded = checkpoint_layer(args)
        if loaded is None:
            return 2
        layer, source = loaded
    elif args.quick:
        layer = random_layer(16, 4, seed=0, init_scale=3.0)
        source = {"source": "random_layer(16, 4, init_scale=3)", "layer": 0}
    else:
        layer = None
    layer_case = None
    if layer is not None:   # checked before any row runs: a usage error does no work
        rho = np.random.default_rng([0, 15]).standard_normal(layer.d) / math.sqrt(layer.d)
        try:
            layer_case = layer_oracle(layer, heads=heads, readout=rho)
        except ExactattnError as exc:
            print(f"--heads: {exc}", file=sys.stderr)
            return 2
    rows = []
    for case, H, d, r, target in (QUICK if args.quick else SYNTHETIC):
        for seed in range(1 if args.quick else args.seeds):
            model = random_biased_multihead(H, d, rank=r, seed=seed, scale=3.0)
            rows.append(_run(case, ValueOracle(model), model, H, r, target, seed, {},
                             baseline=case in BASELINE_ROWS))
            print(json.dumps(rows[-1]), flush=True)
    if layer is not None and layer_case is not None:
        oracle, merged = layer_case
        case = f"layer_{merged.H}_of_{layer.num_heads}_heads_d{layer.d}"
        rows.append(_run(case, oracle, merged, merged.H, layer.head_dim, LAYER_TARGET, 0,
                         {**source, "layer_heads": layer.num_heads, "scale": args.scale},
                         scale=args.scale))
        print(json.dumps(rows[-1]), flush=True)
    return 0 if all(r["target_met"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
