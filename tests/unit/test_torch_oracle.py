"""Oracles from ``torch.nn.MultiheadAttention`` and the merged parameters of a real head.

Tests that need PyTorch skip, with the reason, when it is absent (it is the
optional extra ``exactattn[torch]``; ``.ci/run`` installs it so they run in
CI); the first tests check that the core works without it.

Tolerances, both from the rounding model of Higham, *Accuracy and Stability
of Numerical Algorithms* (2nd ed.), Lemma 3.1 and eq. (3.5): a length-n dot
product in floating point with unit roundoff u errs by at most
gamma_n |x|^T |y|, gamma_n = n u / (1 - n u); u = 2^-24 for IEEE 754 binary32
(torch.float32) and 2^-53 for binary64 (torch.float64).

* Formulas against the module: |module(X) - merged(X)| <= 2 gamma_n(u)
  (M_values + spread * max_i M_score_i), n = 3d + N + 8, with the magnitudes
  M of the value path rho^T W_o (W_v x_i + b_v) + rho^T b_o and of the scores
  (W_q x_N + b_q)^T (W_k x_i + b_k) / sqrt(h) computed with absolute values,
  and spread the range of the values (the softmax average moves by at most
  max |delta s| times it). Twice: the module's evaluation and ours.
* Recovery: max relative error (max-norm, max|error| / max|truth|) of W and
  v at most 2^8 d u: the answer error gamma_{4d+16}(u) ~ 4 d u of the
  learner's rounding model times an allowance of 2^6 for the logit's
  derivative 1/(p(1 - p)) >= 4, ||Z^{-1}|| and the division by the scale;
  and the actual errors of W, c, v within the learner's own first-order
  bounds; beta, a single answer, within the formula bound at X = [0].
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import exactattn.checks.single_head_biased  # noqa: F401  (the certificate builder)
from exactattn.certificates import verify
from exactattn.errors import HypothesisViolatedError, InvalidEntryError, ShapeError
from exactattn.fields import F64
from exactattn.learners.biased_head import biased_query_count, learn_biased_head
from exactattn.models import BiasedSingleHeadAttention
from exactattn.oracle import ValueOracle
from exactattn.torch_oracle import TorchHead, merged_parameters, oracle_from_torch

SKIP_REASON = ("PyTorch is not installed: it is the optional extra exactattn[torch] "
               "(torch==2.13.0), which .ci/run installs")
ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}


@pytest.fixture
def torch() -> Any:
    """The torch module (or skip), single-threaded while the test runs.

    One thread: the oracle's forward passes are small, and on a loaded machine
    torch's thread pool costs more than it gains.
    """
    torch = pytest.importorskip("torch", reason=SKIP_REASON)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def make_module(torch: Any, d: int, biases: bool, *, seed: int = 0,
                batch_first: bool = True) -> Any:
    """torch's default initialisation; with biases, b_q, b_k, b_v, b_o ~ N(0, 1).

    (torch initialises the biases to 0, which would make c = 0 and beta = 0:
    random biases stand for a trained module.)
    """
    torch.manual_seed(seed)
    m = torch.nn.MultiheadAttention(d, 1, bias=biases, batch_first=batch_first)
    if biases:
        with torch.no_grad():
            m.in_proj_bias.normal_()
            m.out_proj.bias.normal_()
    return m


def gamma(n: int, u: float) -> float:
    return n * u / (1 - n * u)


def formula_tolerance(torch: Any, m: Any, rho: Any, Xs: Any, u: float) -> Any:
    """The Higham bound of the module docstring, per query of a (B, N, d) batch."""
    d = m.embed_dim
    A = [t.detach().double().numpy() for t in m.in_proj_weight.split(d)]
    b = ([t.detach().double().numpy() for t in m.in_proj_bias.split(d)]
         if m.in_proj_bias is not None else [np.zeros(d)] * 3)
    Wo = m.out_proj.weight.detach().double().numpy()
    bo = m.out_proj.bias.detach().double().numpy() if m.out_proj.bias is not None else 0 * rho
    aX = np.abs(Xs)
    qa = aX[:, -1, :] @ np.abs(A[0]).T + np.abs(b[0])  # (B, d)
    ka = aX @ np.abs(A[1]).T + np.abs(b[1])  # (B, N, d)
    score = np.einsum("bnd,bd->bn", ka, qa) / np.sqrt(m.head_dim)
    values = np.abs(rho) @ np.abs(Wo) @ (np.abs(A[2]) @ aX.transpose(0, 2, 1)
                                         + np.abs(b[2])[:, None])  # (B, N)
    M_val = values.max(axis=1) + np.abs(rho) @ np.abs(bo)
    p = merged_parameters(m, rho)
    c = Xs @ p.v
    spread = c.max(axis=1) - c.min(axis=1)
    return 2 * gamma(3 * d + Xs.shape[1] + 8, u) * (M_val + spread * score.max(axis=1))


# -- without torch ----------------------------------------------------------------------
def test_the_core_imports_without_torch() -> None:
    code = ("import sys\n"
            "import exactattn, exactattn.models, exactattn.torch_oracle, exactattn.claims\n"
            "import exactattn.learners.biased_head, exactattn.checks.single_head_biased\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr


def test_a_clear_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    for call in (lambda: oracle_from_torch(object()), lambda: merged_parameters(object()),
                 lambda: TorchHead(object())):
        with pytest.raises(ImportError, match=r'pip install "exactattn\[torch\]"'):
            call()


# -- the merged parameters ----------------------------------------------------------------
def test_merged_parameters_worked_example(torch: Any) -> None:
    # d = h = 1, so sqrt(h) = 1: W_q = 2, W_k = 3, W_v = 5, b = (7, 11, 13), W_o = -1, b_o = 17
    m = torch.nn.MultiheadAttention(1, 1, batch_first=True).double()
    with torch.no_grad():
        m.in_proj_weight.copy_(torch.tensor([[2.0], [3.0], [5.0]]))
        m.in_proj_bias.copy_(torch.tensor([7.0, 11.0, 13.0]))
        m.out_proj.weight.fill_(-1.0)
        m.out_proj.bias.fill_(17.0)
    p = merged_parameters(m, readout=[2.0])
    # W = 3 * 2, c = 3 * 7, v = 5 * (-1) * 2, beta = 2 * (-13 + 17); b_k = 11 cancels
    assert (p.W.tolist(), p.c.tolist(), p.v.tolist(), p.beta, p.head_dim) == (
        [[6.0]], [21.0], [-10.0], 8.0, 1)
    oracle = oracle_from_torch(m, readout=[2.0])
    assert oracle([[1.0]]) == -10.0 * 1 + 8.0 == -2.0  # one token: v . x + beta
    assert oracle([[0.0]]) == 8.0  # the zero token: beta
    # [1; 0]: scores (W*1*0 + c*1, 0) = (21, 0): f = 8 - 10 sigma(21)
    assert oracle([[1.0], [0.0]]) == pytest.approx(8 - 10 / (1 + np.exp(-21.0)), abs=1e-14)
    # [1; 1/2]: s = (6/2 + 21, 6/4 + 21/2) = (24, 12); values (-10, -5)
    s = np.array([24.0, 12.0])
    a = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    assert oracle([[1.0], [0.5]]) == pytest.approx(8 + a @ [-10.0, -5.0], abs=1e-14)


@pytest.mark.parametrize("d", [4, 16])
@pytest.mark.parametrize("biases", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("readout", ["first", "random"])
def test_merged_parameters_reproduce_the_module(torch: Any, d: int, biases: bool, dtype: str,
                                                batch_first: bool, readout: str) -> None:
    m = make_module(torch, d, biases, seed=d, batch_first=batch_first)
    rho = np.eye(d)[0] if readout == "first" else np.random.default_rng(d).standard_normal(d)
    p = merged_parameters(m, None if readout == "first" else rho)
    if not biases:
        assert not p.c.any() and p.beta == 0.0
    model = BiasedSingleHeadAttention(p.W, p.c, p.v, p.beta, field=F64)
    head = TorchHead(m, readout=None if readout == "first" else rho, dtype=getattr(torch, dtype))
    rng = np.random.default_rng(7)
    for N in (1, 2, 5):
        Xs = rng.standard_normal((20, N, d)) * np.sqrt(d)
        diff = np.abs(head.batch(Xs) - model.batch(Xs))
        tol = formula_tolerance(torch, m, rho, Xs, ROUNDOFF[dtype])
        assert (diff <= tol).all(), (N, float(diff.max()), float(tol.min()))
    # and W, c, v, beta from the formulas match an independent evaluation of q . k_i
    X = rng.standard_normal((3, d))
    Wq, Wk, _ = (t.detach().double().numpy() for t in m.in_proj_weight.split(d))
    bq, bk = ((t.detach().double().numpy() for t in m.in_proj_bias.split(d)[:2])
              if biases else (np.zeros(d), np.zeros(d)))
    scores = (X @ Wk.T + bk) @ (Wq @ X[-1] + bq) / np.sqrt(d)
    merged = X @ p.W @ X[-1] + X @ p.c
    gaps = scores - scores[-1], merged - merged[-1]  # equal up to a shift (it cancels)
    assert np.allclose(*gaps, rtol=0, atol=1e-12)


# -- recovery of a real module -------------------------------------------------------------
@pytest.mark.parametrize("d", [16, 64])
@pytest.mark.parametrize("biases", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_learner_recovers_the_merged_parameters(torch: Any, d: int, biases: bool,
                                                dtype: str) -> None:
    m = make_module(torch, d, biases, seed=d)
    head = TorchHead(m, dtype=getattr(torch, dtype))
    oracle = ValueOracle(head)
    rec = learn_biased_head(oracle, scale=float(np.sqrt(d)), roundoff=head.unit_roundoff)
    p = merged_parameters(m)
    assert rec.queries == oracle.queries == biased_query_count(d) == (d + 1) ** 2
    assert head.forward_passes == d + 3  # beta, v, c, then one batch per column of W
    u = ROUNDOFF[dtype]
    rel_W = np.abs(rec.W - p.W).max() / np.abs(p.W).max()
    rel_v = np.abs(rec.v - p.v).max() / np.abs(p.v).max()
    print(f"d = {d}, biases = {biases}, {dtype}: max relative error W {rel_W:.2e}, "
          f"v {rel_v:.2e} (tolerance 2^8 d u = {2**8 * d * u:.2e})")
    assert rel_W <= 2**8 * d * u and rel_v <= 2**8 * d * u
    if biases:
        assert np.abs(rec.params["c"] - p.c).max() / np.abs(p.c).max() <= 2**8 * d * u
    o = rec.options
    assert np.linalg.norm(rec.W - p.W) <= o["W_error_bound"]
    assert np.linalg.norm(rec.params["c"] - p.c) <= o["c_error_bound"]
    assert np.linalg.norm(rec.v - p.v) <= o["v_error_bound"]
    # beta = y([0]) is one answer of the module: its error is the module's own rounding
    # of rho^T (W_o b_v + b_o), which may cancel (invisible to the learner's model)
    zero = np.zeros((1, 1, d))
    assert abs(rec.params["beta"][()] - p.beta) <= formula_tolerance(torch, m, np.eye(d)[0],
                                                                     zero, u)[0]
    cert = verify(rec, oracle, probes=4)
    assert cert.holds and cert.kind == "tolerance"


def test_unit_probes_also_work_in_float64(torch: Any) -> None:
    m = make_module(torch, 16, True, seed=3)
    rec = learn_biased_head(oracle_from_torch(m, dtype=torch.float64))
    p = merged_parameters(m)
    rel_W = np.abs(rec.W - p.W).max() / np.abs(p.W).max()
    # unit probes give up the factor a^2 = d that scale = sqrt(d) gains
    assert rel_W <= 2**8 * 16 * 2.0**-53 * 16


# -- the oracle -------------------------------------------------------------------------------
def test_batches_are_one_forward_pass_even_with_mixed_lengths(torch: Any) -> None:
    m = make_module(torch, 6, True, batch_first=False)
    head = TorchHead(m)
    rng = np.random.default_rng(0)
    queries = [rng.standard_normal((N, 6)) for N in (3, 1, 5, 2)]
    got = head.batch(queries)
    assert head.forward_passes == 1
    alone = [head(X) for X in queries]
    assert np.allclose(got, alone, rtol=0, atol=1e-13)
    oracle = ValueOracle(head)
    oracle.batch(rng.standard_normal((9, 4, 6)))
    assert head.forward_passes == 1 + 4 + 1 and oracle.queries == 9


def test_the_oracle_is_a_snapshot_in_evaluation_mode(torch: Any) -> None:
    torch.manual_seed(0)
    m = torch.nn.MultiheadAttention(4, 1, dropout=0.5, batch_first=True)  # training mode
    oracle = oracle_from_torch(m)
    X = np.random.default_rng(1).standard_normal((3, 4))
    y = oracle(X)
    assert oracle(X) == y  # dropout is off: the same answer every time
    with torch.no_grad():
        m.in_proj_weight.mul_(2.0)  # the caller's module changes; the oracle does not
    assert oracle(X) == y
    assert m.training  # and the caller's module is left in training mode


@pytest.mark.parametrize("kwargs, error, match", [
    ({"num_heads": 2}, HypothesisViolatedError, "2 heads"),
    ({"add_bias_kv": True}, HypothesisViolatedError, "add_bias_kv"),
    ({"add_zero_attn": True}, HypothesisViolatedError, "add_zero_attn"),
    ({"kdim": 3}, HypothesisViolatedError, "kdim = 3"),
])
def test_modules_that_are_not_one_biased_head_are_refused(
        torch: Any, kwargs: dict[str, Any], error: type, match: str) -> None:
    m = torch.nn.MultiheadAttention(4, kwargs.pop("num_heads", 1), **kwargs)
    with pytest.raises(error, match=match):
        oracle_from_torch(m)
    with pytest.raises(error, match=match):
        merged_parameters(m)


def test_bad_arguments(torch: Any) -> None:
    m = torch.nn.MultiheadAttention(4, 1)
    with pytest.raises(InvalidEntryError, match="expected a torch.nn.MultiheadAttention"):
        oracle_from_torch(torch.nn.Linear(4, 4))
    with pytest.raises(ShapeError, match="readout has shape"):
        oracle_from_torch(m, readout=[1.0, 2.0])
    with pytest.raises(InvalidEntryError, match="not finite"):
        oracle_from_torch(m, readout=[1.0, float("nan"), 0.0, 0.0])
    with pytest.raises(InvalidEntryError, match="dtype must be"):
        oracle_from_torch(m, dtype=torch.float16)
    oracle = oracle_from_torch(m)
    with pytest.raises(ShapeError, match="expected d = 4"):
        oracle([[1.0, 2.0]])
