"""Claim ``multihead_canonical.float_biased_recovery``: biased (low-rank) heads from float64.

:func:`exactattn.learners.multihead_biased.learn_multihead_biased` learns the
canonical heads (W_h, c_h, v_h) and beta of a biased multi-head model, the
heads of a real attention layer read out by a vector. Recoveries carry the
label ``multihead_biased``; the model builder (a
:class:`~exactattn.models.BiasedMultiHeadAttention`) and the float64
tolerance of its certificate are registered here. The check is a float
check (route "float64 (tolerance)"), never called exact.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..certificates import register_model_builder
from ..certificates import verify as certify
from ..claims import Outcome, claim, first_failure
from ..errors import InvalidEntryError
from ..fields import Array
from ..learners.multihead import PAPER_REF
from ..learners.multihead_biased import (
    CLAIM_LABEL,
    LABEL,
    biased_query_count,
    f64_biased_multihead_tolerance,
    learn_multihead_biased,
)
from ..learners.recovery import Recovery
from ..models.multihead_biased import BiasedMultiHeadAttention, random_biased_multihead
from ..oracle import ValueOracle
from .multihead_float import float_recovery_failures

__all__ = ["rebuild_biased_multihead", "biased_recovery_errors", "rejection_failures",
           "paired_heads", "head_errors",
           "TOLERANCE_TEXT", "BIASED_INSTANCES"]

ROUTE = "float64 (tolerance)"
TOLERANCE_TEXT = ("first-order float64 estimate: the recovery's per-entry error estimates "
                  "(W_h, c_h, v_h, beta) propagated to the query head by head, plus the "
                  "rounding of both evaluations (Higham gamma_{4d+16})")


def rebuild_biased_multihead(rec: Recovery) -> BiasedMultiHeadAttention:
    """The biased multi-head model of a recovery: ``W`` (m, d, d), ``c``, ``v`` (m, d), ``beta``."""
    W, c, v = rec.params["W"], rec.params["c"], rec.params["v"]
    if W.ndim != 3 or W.shape[1] != W.shape[2] or c.shape != W.shape[:2] or \
            v.shape != W.shape[:2]:
        raise InvalidEntryError(
            f"the parameters W {W.shape}, c {c.shape}, v {v.shape} do not describe a biased "
            "multi-head recovery: expected W (m, d, d), c and v (m, d), head first")
    beta = np.asarray(rec.params["beta"]).reshape(())[()]
    return BiasedMultiHeadAttention(list(zip(W, c, v, strict=True)), beta, field=rec.field,
                                    d=int(W.shape[1]))


register_model_builder(LABEL, rebuild_biased_multihead,
                       float_tolerance=f64_biased_multihead_tolerance,
                       tolerance_text=TOLERANCE_TEXT)

#: (H, d, rank or None, c in the column space of W_h, seed): small, each runs in about a second
BIASED_INSTANCES = ((2, 6, 2, True, 0), (2, 5, None, False, 1), (3, 9, 3, False, 2))


def paired_heads(W: Array, truths: list[Array]) -> list[int] | None:
    """The recovered head nearest in W (max entry) to each true head; None unless that is
    one-to-one with every recovered head used."""
    if W.shape[0] != len(truths):
        return None
    pairs = [int(np.argmin([np.abs(W[k] - Wt).max() for k in range(W.shape[0])]))
             for Wt in truths]
    return pairs if len(set(pairs)) == len(pairs) else None


def head_errors(params: Mapping[str, Any], k: int, Wt: Array, ct: Array, vt: Array
                ) -> tuple[dict[str, float | None], bool]:
    """Recovered head k against a true head: the largest entry error of W, c and v over
    the true head's largest entry of W, of max(c, W), of v (None where that is 0), and
    whether every entry lies within its first-order estimate."""
    wmax = float(np.abs(Wt).max())
    parts = {"W": (params["W"][k], Wt, params["W_error_bound"][k], wmax),
             "c": (params["c"][k], ct, params["c_error_bound"][k],
                   max(float(np.abs(ct).max()), wmax)),
             "v": (params["v"][k], vt, params["v_error_bound"][k], float(np.abs(vt).max()))}
    rel = {n: float(np.abs(x - t).max()) / size if size > 0 else None
           for n, (x, t, _, size) in parts.items()}
    within = all(bool((np.abs(x - t) <= e).all()) for x, t, e, _ in parts.values())
    return rel, within


def biased_recovery_errors(rec: Recovery, model: BiasedMultiHeadAttention
                           ) -> tuple[float, bool]:
    """The largest error relative to the largest entry of the hidden head's W, c or v
    (heads paired one-to-one by nearest W, :func:`paired_heads`; beta relative to
    max(1, |beta|)), and whether every recovered entry lies within its first-order
    estimate (inf and False when the heads do not pair)."""
    truths = [np.asarray(x, dtype=np.float64) for x in model.Ws]
    pairs = paired_heads(rec.params["W"], truths)
    if pairs is None:
        return float("inf"), False
    rel, within = 0.0, True
    for k, Wt, ct, vt in zip(pairs, truths, model.cs, model.vs, strict=True):
        errs, ok = head_errors(rec.params, k, Wt, np.asarray(ct, dtype=np.float64),
                               np.asarray(vt, dtype=np.float64))
        rel = max(rel, *(math.inf if e is None else e for e in errs.values()))
        within &= ok
    e_beta = abs(float(rec.params["beta"]) - float(model.beta))
    rel = max(rel, e_beta / max(1.0, abs(float(model.beta))))
    within &= e_beta <= float(rec.params["beta_error_bound"])
    return rel, within


def rejection_failures(name: str, rec: Recovery, oracle: ValueOracle, seed: int) -> list[str]:
    """The certificate shown rejecting a wrong model: one bias entry off by 1e-5 (1e6 to 1e7
    times its estimate), and by 1000 times the norm of its head's c estimates (~1e-8), so
    that the tolerance is not vacuous."""
    failures = []
    for shift in (1e-5, 1000 * float(np.linalg.norm(rec.params["c_error_bound"][0]))):
        c = rec.params["c"].copy()
        c[0, 0] += shift
        bad = dataclasses.replace(rec, params={**rec.params, "c": c})
        if certify(bad, oracle, probes=8, seed=seed).holds:
            failures.append(f"{name}: the certificate accepts c_1 off by {shift:.1e}")
    return failures


@claim(CLAIM_LABEL, "float_biased_recovery", paper_ref=PAPER_REF,
       title="Biased low-rank heads (W_h, c_h, v_h) and beta from a float64 oracle, within "
             "their first-order estimates; the certificate rejects a bias entry off by "
             "1e-5, or by 1000 times its head's estimate",
       statement=r"|\hat W_h - W_h| \le \epsilon_{W_h},\ |\hat c_h - c_h| \le \epsilon_{c_h},\ "
                 r"|\hat v_h - v_h| \le \epsilon_{v_h},\ |\hat\beta - \beta| \le "
                 r"\epsilon_\beta,\ Q = 2 + 2Hfd + [m \ge 2](d-1) + (n_{\mathrm{full}} + 2) K_W "
                 r"+ n_{\mathrm{low}}(r + 2) m",
       route=ROUTE)
def _check_float_biased_recovery() -> Outcome:
    failures, checked = [], 0
    for H, d, r, in_span, seed in BIASED_INSTANCES:
        model = random_biased_multihead(H, d, rank=r or max(1, d // H), seed=seed,
                                        c_in_column_space=in_span)
        oracle = ValueOracle(model)
        rec = learn_multihead_biased(oracle, heads=H, rank=r, seed=seed)
        checked += 1
        name = f"H={H}, d={d}, rank={r}"
        rel, within = biased_recovery_errors(rec, model)
        if rec.options["m"] != H or not within:
            failures.append(f"{name}: a recovered entry is outside its estimate "
                            f"(relative error {rel:.2e})")
        failures += float_recovery_failures(name, rec, oracle,
                                            biased_query_count(H, d, rank=r), seed)
        failures += rejection_failures(name, rec, oracle, seed)
    return first_failure(failures, checked,
                         "within estimates; query count derived (prose), equal to the "
                         f"counter on {checked} instances; certificate holds and rejects")
