"""Oracles from real attention modules: ``torch.nn.MultiheadAttention`` with one head.

PyTorch is an optional extra (``pip install "exactattn[torch]"``, pinned to
torch 2.13.0); it is imported inside the functions below, so importing this
module never needs it, and calling them without it raises an ImportError
naming the extra.

The function behind the oracle. A query X in R^{N x d} is fed as one
sequence, keys and values X, the query position the last token x_N only::

    out = module(query=X[-1:], key=X, value=X)      # shape (1, d)
    f(X) = rho^T out

with a read-out vector rho in R^d of the user's choice (default e_1, the
first output coordinate). A batch (B, N, d) is one forward pass; queries of
different lengths are padded at the end and masked (``key_padding_mask``),
still one pass.

Merged parameters (one head, head_dim h = d; orientation s_i = x_i^T W x_N).
With in_proj_weight = [W_q; W_k; W_v], in_proj_bias = [b_q; b_k; b_v] and
out_proj = (W_o, b_o), torch computes q = W_q x_N + b_q, k_i = W_k x_i + b_k,
val_i = W_v x_i + b_v, alpha = softmax(q . k_i / sqrt(h)) and
out = W_o sum_i alpha_i val_i + b_o. Expanding:

    q . k_i / sqrt(h) = x_i^T (W_k^T W_q / sqrt(h)) x_N + (W_k^T b_q / sqrt(h))^T x_i
                        + (x_N^T W_q^T b_k + b_q^T b_k) / sqrt(h),

and the last term is the same for every i, so it cancels in the softmax
(b_k is not identifiable); since sum_i alpha_i = 1,

    rho^T out = sum_i alpha_i (W_v^T W_o^T rho) . x_i + rho^T (W_o b_v + b_o).

Hence the module is :class:`~exactattn.models.BiasedSingleHeadAttention` with

    W = W_k^T W_q / sqrt(h),  c = W_k^T b_q / sqrt(h),
    v = W_v^T W_o^T rho,      beta = rho^T (W_o b_v + b_o)

(:func:`merged_parameters`; ``tests/unit/test_torch_oracle.py`` checks them
against the module's own outputs). Without biases (``bias=False``) c = 0 and
beta = 0 and the module is a :class:`~exactattn.models.SingleHeadAttention`.

Refused, with the reason: more than one head (a sum of heads, paper §7),
``add_bias_kv`` and ``add_zero_attn`` (an extra key whose score depends on
x_N alone does not cancel), ``kdim``/``vdim`` different from ``embed_dim``
(keys and values must be the tokens themselves).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import HypothesisViolatedError, InvalidEntryError, ShapeError
from .fields import F64, UNIT_ROUNDOFF, Array
from .oracle import ValueOracle
from .queries import as_query, as_query_batch

if TYPE_CHECKING:  # pragma: no cover - for the annotations only
    import torch

__all__ = ["oracle_from_torch", "merged_parameters", "MergedHead", "TorchHead",
           "TORCH_EXTRA", "TORCH_VERSION"]

#: the optional extra that installs PyTorch, and the version it pins
TORCH_EXTRA = "torch"
TORCH_VERSION = "2.13.0"

#: unit roundoff of the supported dtypes: IEEE 754 binary32 (2^-24) and binary64 (2^-53)
_ROUNDOFF = {"float32": 2.0**-24, "float64": UNIT_ROUNDOFF}


def _torch() -> Any:
    """The torch module, or an ImportError that names the extra to install."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            "exactattn.torch_oracle needs PyTorch, which is not installed; install the "
            f"optional extra: pip install \"exactattn[{TORCH_EXTRA}]\" "
            f"(torch=={TORCH_VERSION})") from exc
    return torch


def _dtype_name(torch: Any, dtype: Any) -> str:
    if isinstance(dtype, str) and dtype in _ROUNDOFF:
        return dtype
    for name in _ROUNDOFF:
        if dtype is getattr(torch, name):
            return name
    raise InvalidEntryError(f"dtype must be torch.float32 or torch.float64 (or the strings "
                            f"'float32', 'float64'), got {dtype!r}")


def _check_module(torch: Any, module: Any) -> int:
    """d of a supported module, or a clear error."""
    if not isinstance(module, torch.nn.MultiheadAttention):
        raise InvalidEntryError(
            f"expected a torch.nn.MultiheadAttention, got {type(module).__name__}")
    if module.num_heads != 1:
        raise HypothesisViolatedError(
            f"the module has {module.num_heads} heads; this oracle wraps one head (a "
            "multi-head module is a sum of heads, whose parameters are not identifiable "
            "in general, paper.md §6)", hypothesis="one head")
    if module.bias_k is not None or module.add_zero_attn:
        raise HypothesisViolatedError(
            "add_bias_kv / add_zero_attn append a key whose score depends on x_N alone; "
            "it does not cancel in the softmax, so the module is not a biased single head",
            hypothesis="no extra key/value tokens")
    d = int(module.embed_dim)
    if module.kdim != d or module.vdim != d or module.in_proj_weight is None:
        raise HypothesisViolatedError(
            f"kdim = {module.kdim}, vdim = {module.vdim}, embed_dim = {d}: keys and values "
            "must be the tokens themselves (self-attention), so all three must agree",
            hypothesis="kdim = vdim = embed_dim")
    return d


def _readout(readout: Any, d: int) -> Array:
    if readout is None:
        rho = np.zeros(d)
        rho[0] = 1.0
        return rho
    if np.shape(readout) != (d,):
        raise ShapeError(f"readout has shape {np.shape(readout)}, expected a vector of "
                         f"length embed_dim = {d}")
    return F64.array(np.asarray(readout, dtype=np.float64) if isinstance(readout, np.ndarray)
                     else readout, name="readout").copy()


@dataclass(frozen=True)
class MergedHead:
    """The merged parameters of a one-head module for read-out rho (float64).

    ``W = W_k^T W_q / sqrt(h)``, ``c = W_k^T b_q / sqrt(h)``,
    ``v = W_v^T W_o^T rho``, ``beta = rho^T (W_o b_v + b_o)``; ``head_dim`` is
    h (= d for one head). See the module docstring for the derivation.
    """

    W: Array
    c: Array
    v: Array
    beta: float
    head_dim: int


def merged_parameters(module: torch.nn.MultiheadAttention, readout: Any = None) -> MergedHead:
    """(W, c, v, beta) of a one-head ``torch.nn.MultiheadAttention``, in float64.

    The weights are converted to float64 before any product, so the merged
    parameters carry only float64 rounding (whatever the module's dtype).

    Parameters
    ----------
    module : a ``torch.nn.MultiheadAttention`` with ``num_heads=1``.
    readout : the read-out vector rho (length embed_dim); default e_1.

    >>> import pytest; torch = pytest.importorskip("torch")
    >>> _ = torch.manual_seed(0)
    >>> m = torch.nn.MultiheadAttention(4, 1, bias=False)
    >>> p = merged_parameters(m)
    >>> p.W.shape, p.head_dim, bool((p.c == 0).all()), p.beta
    ((4, 4), 4, True, 0.0)
    """
    torch = _torch()
    d = _check_module(torch, module)
    rho = _readout(readout, d)
    h = int(module.head_dim)

    def f64(t: Any) -> Array:
        out: Array = t.detach().to(device="cpu", dtype=torch.float64).numpy().copy()
        return out

    Wq, Wk, Wv = (f64(module.in_proj_weight[k * d:(k + 1) * d]) for k in range(3))
    if module.in_proj_bias is not None:
        bq, _bk, bv = (f64(module.in_proj_bias[k * d:(k + 1) * d]) for k in range(3))
    else:
        bq, bv = np.zeros(d), np.zeros(d)
    Wo = f64(module.out_proj.weight)
    bo = f64(module.out_proj.bias) if module.out_proj.bias is not None else np.zeros(d)
    scale = 1.0 / math.sqrt(h)
    return MergedHead(W=Wk.T @ Wq * scale, c=Wk.T @ bq * scale, v=Wv.T @ (Wo.T @ rho),
                      beta=float(rho @ (Wo @ bv + bo)), head_dim=h)


class TorchHead:
    """The hidden function of :func:`oracle_from_torch`: X -> rho^T module(x_N; X, X).

    Holds a snapshot of the module (a deep copy converted to ``dtype``, in
    evaluation mode, so dropout is off and later changes to the caller's
    module do not leak in). ``field`` is F64: answers are float64 numbers
    (a float32 module's answers are float32 values widened exactly).
    ``unit_roundoff`` is the dtype's (2^-24 or 2^-53), for
    :func:`~exactattn.learners.biased_head.learn_biased_head`'s ``roundoff=``.
    """

    field = F64

    def __init__(self, module: torch.nn.MultiheadAttention, *, readout: Any = None,
                 dtype: Any = "float64") -> None:
        torch = _torch()
        self.d = _check_module(torch, module)
        self.dtype = _dtype_name(torch, dtype)
        self.unit_roundoff = _ROUNDOFF[self.dtype]
        self.readout = _readout(readout, self.d)
        self.readout.flags.writeable = False
        self.head_dim = int(module.head_dim)
        self._torch = torch
        self._tdtype = getattr(torch, self.dtype)
        snapshot = copy.deepcopy(module).to(dtype=self._tdtype).eval()
        for p in snapshot.parameters():
            p.requires_grad_(False)
        self._module = snapshot
        self._device = next(snapshot.parameters()).device
        self._batch_first = bool(snapshot.batch_first)
        self.forward_passes = 0

    def __repr__(self) -> str:
        return f"TorchHead(d={self.d}, dtype={self.dtype})"

    def _forward(self, Xs: Array, lengths: Array | None = None) -> Array:
        """rho^T out for a (B, N, d) float64 array, in one forward pass.

        ``lengths`` (padded batches): the true length of each query; keys past
        it are masked and the query position is its last true token.
        """
        torch = self._torch
        # torch.tensor copies: the oracle's arrays are read-only (and stay so)
        X = torch.tensor(Xs, device=self._device, dtype=self._tdtype)
        B, N, _ = Xs.shape
        mask = None
        if lengths is None:
            q = X[:, -1:, :]
        else:
            idx = torch.from_numpy(np.asarray(lengths, dtype=np.int64) - 1).to(self._device)
            q = X[torch.arange(B, device=self._device), idx][:, None, :]
            mask = (torch.arange(N, device=self._device)[None, :]
                    >= torch.from_numpy(np.asarray(lengths, dtype=np.int64))
                    .to(self._device)[:, None])
        if not self._batch_first:
            X, q = X.transpose(0, 1), q.transpose(0, 1)
        with torch.inference_mode():
            out, _ = self._module(q, X, X, key_padding_mask=mask, need_weights=False)
        self.forward_passes += 1
        if not self._batch_first:
            out = out.transpose(0, 1)
        outs: Array = out[:, 0, :].to(device="cpu", dtype=torch.float64).numpy()
        answers: Array = outs @ self.readout
        return answers

    def __call__(self, X: Any) -> np.float64:
        Xc = as_query(F64, X, self.d)
        return np.float64(self._forward(Xc[None])[0])

    def batch(self, Xs: Any) -> Array:
        """Answers to a batch: a (B, N, d) array, or queries of mixed lengths, in one pass."""
        checked = as_query_batch(F64, Xs, self.d)
        if isinstance(checked, np.ndarray):
            return self._forward(checked)
        if not checked:
            return np.empty(0, dtype=np.float64)
        lengths = np.array([X.shape[0] for X in checked])
        padded = np.zeros((len(checked), int(lengths.max()), self.d))
        for b, X in enumerate(checked):
            padded[b, : X.shape[0]] = X
        if (lengths == lengths[0]).all():
            return self._forward(padded)
        return self._forward(padded, lengths)


def oracle_from_torch(
    module: torch.nn.MultiheadAttention,
    *,
    readout: Any = None,
    dtype: Any = "float64",
    budget: int | None = None,
    keep_transcript: bool = True,
    name: str | None = None,
) -> ValueOracle:
    """A float64 value oracle for a one-head ``torch.nn.MultiheadAttention``.

    Parameters
    ----------
    module : the attention module (``num_heads=1``, self-attention dims);
        it is copied, so the oracle is a fixed function.
    readout : the read-out vector rho (length embed_dim); default e_1, the
        first output coordinate.
    dtype : ``torch.float64`` (default, also ``"float64"``) or
        ``torch.float32``: the precision the module is evaluated in.
    budget, keep_transcript, name : as for :class:`~exactattn.oracle.ValueOracle`.

    Returns
    -------
    ValueOracle
        over F64 with ``d = embed_dim``; its ``batch`` of a (B, N, d) array is
        one forward pass of the module. For a float32 module, learn with
        ``learn_biased_head(oracle, roundoff=2**-24)`` so that the error
        bounds use float32's unit roundoff (or build the oracle yourself:
        ``head = TorchHead(m, dtype=torch.float32)``, ``ValueOracle(head)``,
        ``roundoff=head.unit_roundoff``).

    >>> import pytest; torch = pytest.importorskip("torch")
    >>> from exactattn.learners.biased_head import learn_biased_head
    >>> _ = torch.manual_seed(0)
    >>> m = torch.nn.MultiheadAttention(3, 1, batch_first=True)
    >>> rec = learn_biased_head(oracle_from_torch(m))
    >>> rec.queries, bool(abs(rec.W - merged_parameters(m).W).max() < 1e-12)
    (16, True)
    """
    target = TorchHead(module, readout=readout, dtype=dtype)
    return ValueOracle(target, field=F64, d=target.d, budget=budget,
                       keep_transcript=keep_transcript,
                       name=name or f"torch.nn.MultiheadAttention(d={target.d}, {target.dtype})")
