"""multihead_canonical, biased variant: biased (low-rank) heads and a layer, from float64.

The five kinds: a worked example with literal numbers; a property test
(every recovered entry within its first-order estimate); the query count
against its proved closed form; a certificate that rejects a perturbed
recovery and a non-attention oracle; violated hypotheses (a rank larger
than declared, more heads than declared, bad arguments) with clear errors,
and a near miss (a head whose two directions beyond the declared rank are 1e-4 small).
Plus the model (exact evaluation, factors, canonical form) and the layer
oracle on a checkpoint the test writes itself.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from exactattn.certificates import verify
from exactattn.checkpoint_layer import LayerReadout, layer_merged, layer_oracle
from exactattn.checkpoints import load_layer, random_layer
from exactattn.checks.multihead_biased import biased_recovery_errors
from exactattn.claims import run_claims
from exactattn.errors import (
    InvalidEntryError,
    RecoveryFailedError,
    ShapeError,
)
from exactattn.fields import EXP, F64
from exactattn.learners.multihead_biased import (
    LABEL,
    biased_query_count,
    learn_multihead_biased,
    low_rank_applies,
)
from exactattn.learners.recovery import Recovery
from exactattn.models import BiasedSingleHeadAttention
from exactattn.models.multihead_biased import (
    BiasedMultiHeadAttention,
    canonical_biased,
    random_biased_multihead,
)
from exactattn.oracle import ValueOracle

W1 = np.array([[0.5, -0.3, 0.1], [0.2, 0.4, -0.6], [0.0, 0.3, 0.2]])
C1 = np.array([0.3, -0.2, 0.5])
V1 = np.array([1.0, -0.5, 0.25])
W2 = np.array([[-0.6, 0.1, 0.4], [0.3, -0.2, 0.0], [0.5, 0.1, -0.3]])
C2 = np.array([-0.4, 0.1, 0.2])
V2 = np.array([0.3, 0.8, -0.7])
BETA = 0.75


# -- worked example ------------------------------------------------------------------
def test_worked_example() -> None:
    model = BiasedMultiHeadAttention([(W1, C1, V1), (W2, C2, V2)], BETA, field=F64)
    oracle = ValueOracle(model)
    rec = learn_multihead_biased(oracle, heads=2)
    assert rec.label == LABEL and rec.status == "float"
    assert rec.options["m"] == 2 and rec.options["low_rank"] is False
    assert rec.queries == oracle.queries == biased_query_count(2, 3) == 78
    assert rec.queries_by_phase["beta"] == 1
    # the heads, sorted by (W_h, c_h) row-major: W2 first (its first entry -0.6 < 0.5)
    for k, (W, c, v) in enumerate(((W2, C2, V2), (W1, C1, V1))):
        for name, true in (("W", W), ("c", c), ("v", v)):
            err = np.abs(rec.params[name][k] - true)
            assert (err <= rec.params[f"{name}_error_bound"][k]).all(), (name, k)
            assert err.max() < 1e-10
    assert abs(float(rec.params["beta"]) - BETA) <= float(rec.params["beta_error_bound"])
    assert any("H = 2 canonical heads" in h for h in rec.hypotheses)
    assert verify(rec, oracle, probes=8).holds


# -- property: recovery within the estimates -----------------------------------------
@settings(max_examples=4, deadline=None)
@example(seed=1208, H=2, d=4, low=False, in_span=False)   # the refusal named below
@given(seed=st.integers(0, 10_000), H=st.integers(1, 2), d=st.integers(4, 6),
       low=st.booleans(), in_span=st.booleans())
def test_recovery_within_estimates(seed: int, H: int, d: int, low: bool, in_span: bool) -> None:
    r = max(1, d // (H + 1))
    model = random_biased_multihead(H, d, rank=r, seed=seed, c_in_column_space=in_span,
                                    scale=3.0)
    oracle = ValueOracle(model)
    rank = r if low else None
    try:
        rec = learn_multihead_biased(oracle, heads=H, rank=rank, seed=seed,
                                     max_relative_bound=1.0)
    except RecoveryFailedError as exc:
        # a refusal is allowed, a silent wrong answer is not. Measured: 0 refusals in 60
        # seeded instances of this strategy; Hypothesis found one (seed 1208, H = 2, d = 4:
        # a two-pole pair family of the float learner fits a positive pole)
        event(f"refused: {str(exc)[:60]}")
        return
    rel, within = biased_recovery_errors(rec, model)
    assert rec.options["m"] == H and within, rel
    assert rec.queries == oracle.queries == biased_query_count(H, d, rank=rank)


# -- the query count -------------------------------------------------------------------
@pytest.mark.parametrize(("H", "d", "rank"), [(1, 4, None), (1, 4, 1), (2, 6, 2), (2, 5, None)])
def test_count_equals_closed_form(H: int, d: int, rank: int | None) -> None:
    model = random_biased_multihead(H, d, rank=rank or 2, seed=7, scale=3.0)
    oracle = ValueOracle(model)
    rec = learn_multihead_biased(oracle, heads=H, rank=rank, seed=7, max_relative_bound=1.0)
    assert rec.queries == oracle.queries == biased_query_count(H, d, rank=rank)
    assert rec.options["low_rank"] == low_rank_applies(d, H, rank)
    if rec.options["low_rank"]:
        assert rank is not None
        assert rec.queries_by_phase["W_low_rank"] == (d - rank) * (rank + 2) * H


def test_count_closed_form_values() -> None:
    # Q = 2 + 2Hfd + [m >= 2](d - 1) + (n_full + 2) K_W + n_low (r + 2) m, f = 2, P = 2
    H, d, r = 8, 64, 8
    K_W = H * (d - H + 1) + 3 * 2 * (H * (H - 1) // 2)
    assert biased_query_count(H, d, rank=r) == 2 + 2 * H * 2 * d + (d - 1) + (r + 2) * K_W \
        + (d - r) * (r + 2) * H == 12833
    assert biased_query_count(H, d) == 2 + 2 * H * 2 * d + (d - 1) + (d + 2) * K_W
    # the rank is used only when r <= d - m (the isolating space pins r + 1 coordinates)
    assert biased_query_count(4, 8, rank=6) == biased_query_count(4, 8)
    assert biased_query_count(2, 6, m=0) == 2 + 2 * 2 * 2 * 6


# -- certificates ------------------------------------------------------------------
def _with(rec: Recovery, **params: np.ndarray) -> Recovery:
    return dataclasses.replace(rec, params={**rec.params, **params})


def test_certificate_rejects_perturbed_recovery_and_non_attention() -> None:
    model = BiasedMultiHeadAttention([(W1, C1, V1), (W2, C2, V2)], BETA, field=F64)
    oracle = ValueOracle(model)
    rec = learn_multihead_biased(oracle, heads=2)
    assert verify(rec, oracle, probes=8).holds
    c = rec.params["c"].copy()
    c[1, 2] += 1e-6
    W = rec.params["W"].copy()
    W[0, 1, 1] += 1e-6
    for bad in (_with(rec, c=c), _with(rec, W=W), _with(rec, beta=np.array(BETA + 1e-9))):
        cert = verify(bad, oracle, probes=8)
        assert not cert.holds and cert.first_failure is not None
    # the same recovery against another function: a head's bias dropped
    other = ValueOracle(BiasedMultiHeadAttention([(W1, 0 * C1, V1), (W2, C2, V2)], BETA,
                                                 field=F64))
    assert not verify(rec, other, probes=8).holds


def test_certificate_rejects_a_bias_entry_off_by_1000_estimates() -> None:
    # the float tolerance is not vacuous: 1000 x the norm of head 1's c estimates (~1e-8)
    model = random_biased_multihead(2, 6, rank=2, seed=0, c_in_column_space=True)
    oracle = ValueOracle(model)
    rec = learn_multihead_biased(oracle, heads=2, rank=2, seed=0)
    shift = 1000 * float(np.linalg.norm(rec.params["c_error_bound"][0]))
    assert 0 < shift < 1e-7
    c = rec.params["c"].copy()
    c[0, 0] += shift
    assert verify(rec, oracle, probes=8, seed=0).holds
    assert not verify(_with(rec, c=c), oracle, probes=8, seed=0).holds


# -- hypotheses violated, near miss, bad input -------------------------------------------
def test_rank_larger_than_declared_is_refused() -> None:
    d, r = 6, 2
    base = random_biased_multihead(2, d, rank=r, seed=3, scale=3.0)
    Ws = base.Ws
    # rank [W_0 | c_0] = 4 > r + 1 (c_0 in the column space of the rank-2 part)
    Ws[0] = Ws[0] + 0.3 * (np.outer(np.eye(d)[0], np.eye(d)[5])
                           + np.outer(np.eye(d)[1], np.eye(d)[3]))
    model = BiasedMultiHeadAttention(list(zip(Ws, base.cs, base.vs, strict=True)),
                                     base.beta, field=F64)
    with pytest.raises(RecoveryFailedError, match=r"rank \[W_h \| c_h\] <= r \+ 1 = 3"):
        learn_multihead_biased(ValueOracle(model), heads=2, rank=r, max_relative_bound=1.0)


def test_rank_r_plus_one_with_c_in_its_column_space_is_learned() -> None:
    # rank(W_0) = 3 > r = 2 but rank [W_0 | c_0] = 3 = r + 1: within what the learner uses
    d, r = 6, 2
    base = random_biased_multihead(2, d, rank=r, seed=3, scale=3.0)
    Ws = base.Ws
    Ws[0] = Ws[0] + 0.3 * np.outer(np.eye(d)[0], np.eye(d)[5])
    model = BiasedMultiHeadAttention(list(zip(Ws, base.cs, base.vs, strict=True)),
                                     base.beta, field=F64)
    rec = learn_multihead_biased(ValueOracle(model), heads=2, rank=r, max_relative_bound=1.0)
    assert biased_recovery_errors(rec, model)[1]
    assert "rank [W_h | c_h] <= r + 1 = 3 for every head (implied by rank(W_h) <= r = 2)" \
        in rec.hypotheses


def test_near_miss_small_extra_rank_is_refused_not_accepted() -> None:
    # rank [W_1 | c_1] = 4 > r + 1 through two directions of size 1e-4: a float comparison
    # at 1e-3 would accept the head as rank 2; the residual refuses it
    d, r = 6, 2
    base = random_biased_multihead(2, d, rank=r, seed=4, scale=3.0)
    Ws = base.Ws
    Ws[1] = Ws[1] + 1e-4 * (np.outer(np.eye(d)[2], np.eye(d)[4])
                            + np.outer(np.eye(d)[3], np.eye(d)[1]))
    model = BiasedMultiHeadAttention(list(zip(Ws, base.cs, base.vs, strict=True)),
                                     base.beta, field=F64)
    with pytest.raises(RecoveryFailedError, match="not those of 2 canonical biased heads"):
        learn_multihead_biased(ValueOracle(model), heads=2, rank=r, max_relative_bound=1.0)
    # without the rank hypothesis the same oracle is learned, the small entry included
    rec = learn_multihead_biased(ValueOracle(model), heads=2, max_relative_bound=1.0)
    _, within = biased_recovery_errors(rec, model)
    assert within


def test_more_heads_than_declared_is_refused() -> None:
    model = random_biased_multihead(3, 5, rank=1, seed=2, scale=3.0)
    with pytest.raises(RecoveryFailedError):
        learn_multihead_biased(ValueOracle(model), heads=1, max_relative_bound=1.0)


def test_zero_heads_gives_beta_only() -> None:
    model = BiasedMultiHeadAttention([(W1, C1, 0 * V1)], BETA, field=F64)
    oracle = ValueOracle(model)
    rec = learn_multihead_biased(oracle, heads=2)
    assert rec.options["m"] == 0 and rec.params["W"].shape == (0, 3, 3)
    assert float(rec.params["beta"]) == BETA
    assert rec.queries == biased_query_count(2, 3, m=0) == oracle.queries


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"heads": 0}, "heads"), ({"heads": 2, "rank": 0}, "rank"),
    ({"heads": 2, "rank": 4}, "rank = 4 exceeds d = 3"),
    ({"heads": 2, "max_relative_bound": -1.0}, "max_relative_bound"),
    ({"heads": 2, "direction_scale": float("nan")}, "direction_scale"),
    ({"heads": 2, "scale": 0.0}, "scale"),
    ({"heads": 2, "refine_families": "yes"}, "refine_families must be True or False"),
])
def test_bad_arguments_refused_before_any_query(kwargs: dict[str, object], match: str) -> None:
    oracle = ValueOracle(BiasedMultiHeadAttention([(W1, C1, V1)], BETA, field=F64))
    with pytest.raises(InvalidEntryError, match=match):
        learn_multihead_biased(oracle, **kwargs)  # type: ignore[arg-type]
    assert oracle.queries == 0


def test_exact_oracle_refused() -> None:
    model = BiasedMultiHeadAttention([([[1, 0], [0, 1]], [0, 1], [1, 1])], 0)
    with pytest.raises(InvalidEntryError, match="runs over F64, not EXP"):
        learn_multihead_biased(ValueOracle(model), heads=1)


# -- the model ------------------------------------------------------------------------
def test_model_exact_is_the_sum_of_biased_heads() -> None:
    q = Fraction
    heads = [([[1, q(1, 2)], [0, -1]], [q(1, 3), 0], [2, -1]), ([[0, 1], [1, 0]], [0, 1], [1, 1])]
    model = BiasedMultiHeadAttention(heads, q(5, 2))
    X = [[1, q(-1, 2)], [0, 2], [q(3, 4), 1]]
    total = sum((BiasedSingleHeadAttention(W, c, v, 0)(X) for W, c, v in heads), EXP(q(5, 2)))
    assert model(X) == total
    assert model(X) != total + EXP(q(1, 10**30))     # a near miss: == in EXP, not a float


def test_model_factors_agree_with_dense_and_shapes_are_checked() -> None:
    f = random_biased_multihead(3, 6, rank=2, seed=1)
    dense = BiasedMultiHeadAttention(list(zip(f.Ws, f.cs, f.vs, strict=True)), f.beta,
                                     field=F64)
    X = np.random.default_rng(0).standard_normal((5, 4, 6))
    assert np.abs(f.batch(X) - dense.batch(X)).max() < 1e-13
    assert f.params["W"].shape == (3, 6, 6) and f.params["c"].shape == (3, 6)
    with pytest.raises(ShapeError, match="c_0 has shape"):
        BiasedMultiHeadAttention([(W1, C1[:2], V1)], 0.0, field=F64)
    with pytest.raises(ShapeError, match=r"\(H, d, r\)"):
        BiasedMultiHeadAttention.from_factors(np.zeros((2, 3, 1)), np.zeros((2, 3, 2)),
                                              np.zeros((2, 3)), np.zeros((2, 3)), 0.0)
    with pytest.raises(InvalidEntryError, match="beta is None"):
        BiasedMultiHeadAttention([(W1, C1, V1)], None, field=F64)


def test_canonical_merges_equal_heads_and_drops_zero_v() -> None:
    q = Fraction
    h1 = ([[1, 0], [0, 2]], [q(1, 2), 0])
    model = BiasedMultiHeadAttention([(*h1, [1, 2]), ([[0, 1], [1, 0]], [0, 0], [0, 0]),
                                      (*h1, [q(1, 2), -2])], 1)
    can = canonical_biased(model)
    assert can.H == 1 and can.vs[0].tolist() == [q(3, 2), 0]
    X = [[1, 2], [q(-1, 3), 1]]
    assert can(X) == model(X)


# -- a layer of a checkpoint --------------------------------------------------------
def test_layer_oracle_from_a_checkpoint_file(tmp_path: object) -> None:
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    layer = random_layer(12, 3, seed=2, init_scale=3.0)
    tensors = {f"encoder.layer.0.attention.{k}": np.ascontiguousarray(getattr(layer, a))
               for k, a in (("self.query.weight", "Wq"), ("self.query.bias", "bq"),
                            ("self.key.weight", "Wk"), ("self.key.bias", "bk"),
                            ("self.value.weight", "Wv"), ("self.value.bias", "bv"),
                            ("output.dense.weight", "Wo"), ("output.dense.bias", "bo"))}
    path = f"{tmp_path}/layer.safetensors"
    safetensors_numpy.save_file(tensors, path)
    loaded = load_layer(path, layer=0, num_heads=3)
    rho = np.random.default_rng(5).standard_normal(12)
    # the layer read-out is the sum of the heads' oracles, each of which keeps rho . b_o
    full = LayerReadout(loaded, readout=rho)
    X = np.random.default_rng(1).standard_normal((4, 3, 12))
    by_head = sum(loaded.head(j, readout=rho).batch(X) for j in range(3)) \
        - 2 * float(rho @ loaded.bo)
    assert np.abs(full.batch(X) - by_head).max() < 1e-13
    oracle, merged = layer_oracle(loaded, heads=(0, 2), readout=rho)
    rec = learn_multihead_biased(oracle, heads=2, rank=loaded.head_dim, max_relative_bound=1.0)
    rel, within = biased_recovery_errors(rec, merged)
    assert within and rel < 1e-8
    assert np.abs(layer_merged(loaded, heads=(0, 2), readout=rho).batch(X)
                  - LayerReadout(loaded, heads=(0, 2), readout=rho).batch(X)).max() < 1e-13
    with pytest.raises(InvalidEntryError, match="distinct head indices"):
        LayerReadout(loaded, heads=(1, 1))


def test_scale_of_the_bases_learns_a_layer_with_small_weights() -> None:
    # torch's default initialisation: W entries about 0.05, score gaps of order 0.05 at
    # unit bases. With bases of norm 4 the same heads are learned; W is the affine
    # solve divided by the scale (a loop variable once shadowed it: W came out halved)
    layer = random_layer(12, 3, seed=4)
    rho = np.random.default_rng(6).standard_normal(12) / np.sqrt(12)
    for scale in (1.0, 4.0):
        oracle, merged = layer_oracle(layer, heads=(0, 1), readout=rho)
        rec = learn_multihead_biased(oracle, heads=2, rank=layer.head_dim, scale=scale,
                                     max_relative_bound=1.0)
        rel, within = biased_recovery_errors(rec, merged)
        assert within and rel < 1e-7, (scale, rel)
        assert rec.options["scale"] == scale
    # without the copy families in the final refinement (the memory of a d = 384 layer)
    oracle, merged = layer_oracle(layer, heads=(0, 1), readout=rho)
    rec = learn_multihead_biased(oracle, heads=2, rank=layer.head_dim, scale=4.0,
                                 refine_families=False, max_relative_bound=1.0)
    rel, within = biased_recovery_errors(rec, merged)
    assert within and rel < 1e-7 and rec.options["refine_families"] is False


def test_saved_recovery_replays_from_the_command_line(tmp_path: Path) -> None:
    # a fresh process has not imported exactattn.checks: verify refused the F64 recovery
    # ("carries no W_error_bound, v_error_bound in its options") before its label's
    # float tolerance was registered (learn_multihead_float's recoveries too)
    model = random_biased_multihead(2, 6, rank=2, seed=0)
    oracle = ValueOracle(model)
    rec = learn_multihead_biased(oracle, heads=2, rank=2)
    path = tmp_path / "rec.json"
    rec.save(str(path))
    proc = subprocess.run([sys.executable, "-m", "exactattn", "replay", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    loaded = Recovery.load(str(path))
    assert float(loaded.params["beta"]) == float(rec.params["beta"])
    assert verify(loaded, oracle, probes=4).holds


def test_claim_holds() -> None:
    (result,) = run_claims(["multihead_canonical.float_biased_recovery"])
    assert result.outcome.holds, result.outcome.detail
