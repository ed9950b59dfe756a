"""Claim ``multihead_canonical.saturated_recovery``: biased heads separated by saturation.

:func:`exactattn.learners.learn_multihead_saturated` learns the canonical
biased heads (W_h, c_h, v_h) and beta without fitting a pole: a path of
saturated directions gives the head count and v_h, muted heads isolate each
head's logits. Its recoveries carry the label ``multihead_biased``, so the
model builder and the float tolerance of the certificate are those of
:mod:`exactattn.checks.multihead_biased`. A float check (route "float64
(tolerance)"), never called exact; the refusal of heads the path cannot
separate is checked too.
"""

from __future__ import annotations

import numpy as np

from ..claims import Outcome, claim, first_failure
from ..errors import IllConditionedError
from ..fields import F64
from ..learners.multihead import PAPER_REF
from ..learners.multihead_biased import CLAIM_LABEL
from ..learners.multihead_saturated import learn_multihead_saturated, saturated_query_count
from ..models.multihead_biased import BiasedMultiHeadAttention, random_biased_multihead
from ..oracle import ValueOracle
from .multihead_biased import ROUTE, biased_recovery_errors, rejection_failures
from .multihead_float import float_recovery_failures

__all__ = ["SATURATED_INSTANCES"]

#: (H, d, rank or None, c in the column space of W_h, seed): each runs in under a second
SATURATED_INSTANCES = ((3, 12, 3, True, 0), (2, 8, None, False, 1), (4, 16, 4, False, 2))


@claim(CLAIM_LABEL, "saturated_recovery", paper_ref=PAPER_REF,
       title="Biased heads separated by saturation, no pole fitted: (W_h, c_h, v_h) and beta "
             "within their first-order estimates; the certificate rejects a bias entry off by "
             "1e-5 or by 1000 times its head's estimate; nearly equal heads are refused",
       statement=r"|\hat W_h - W_h| \le \epsilon_{W_h},\ |\hat c_h - c_h| \le \epsilon_{c_h},\ "
                 r"|\hat v_h - v_h| \le \epsilon_{v_h},\ Q = Q_{\mathrm{path}} + "
                 r"Q_{\mathrm{rescaled}} + 2 + p\,m(d - m + 1) + m(d + 1) + "
                 r"(n_{\mathrm{full}} + 1)(1 + m(d - m + 1) + 2m(m - 1)) + "
                 r"n_{\mathrm{low}}(1 + m(r + 2))",
       route=ROUTE)
def _check_saturated_recovery() -> Outcome:
    failures, checked = [], 0
    for H, d, r, in_span, seed in SATURATED_INSTANCES:
        model = random_biased_multihead(H, d, rank=r or max(1, d // H), seed=seed,
                                        c_in_column_space=in_span)
        oracle = ValueOracle(model)
        rec = learn_multihead_saturated(oracle, heads=H, rank=r, seed=seed)
        checked += 1
        name = f"H={H}, d={d}, rank={r}"
        rel, within = biased_recovery_errors(rec, model)
        if rec.options["m"] != H or not within:
            failures.append(f"{name}: {rec.options['m']} heads, or a recovered entry outside "
                            f"its estimate (relative error {rel:.2e})")
        path = rec.options["path"]
        count = saturated_query_count(
            rec.options["m"], d, rank=r, path=path["queries"],
            isolate_passes=path["isolate_passes"],
            rescaled=rec.options["conditioning"]["rescaled_queries"])
        failures += float_recovery_failures(name, rec, oracle, count, seed)
        failures += rejection_failures(name, rec, oracle, seed)
    # two heads 1e-6 apart (proportional W, c): refused, never merged silently
    base = random_biased_multihead(3, 12, rank=3, seed=0)
    Ws = [np.asarray(W, dtype=float) for W in base.Ws]
    cs = [np.asarray(c, dtype=float) for c in base.cs]
    vs = [np.asarray(v, dtype=float) for v in base.vs]
    near = BiasedMultiHeadAttention(
        [(Ws[0], cs[0], vs[0]), (Ws[0] * (1 + 1e-6), cs[0] * (1 + 1e-6), vs[1]),
         (Ws[2], cs[2], vs[2])], 0.5, field=F64)
    checked += 1
    try:
        got = learn_multihead_saturated(ValueOracle(near), heads=3, rank=3)
        failures.append(f"heads 1e-6 apart: returned {got.options['m']} heads instead of "
                        "refusing")
    except IllConditionedError:
        pass
    return first_failure(failures, checked, "within estimates, count equal to the counter, "
                         "certificate holds and rejects, nearly equal heads refused")
