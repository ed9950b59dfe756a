"""The hidden functions. Learners never import this package (see tests).

* :class:`SingleHeadAttention` (``single_head_exact``) and
  :class:`BiasedSingleHeadAttention` (a real head with biases);
* :class:`OneLayerTransformer`, :class:`ResidualOneLayerTransformer` and
  :class:`SkipHeadAttention` (``one_layer_reduction``);
* :class:`ReluFFN` with its canonical form (``relu_ffn_exact``);
* :class:`MultiHeadAttention` with its canonical form (``multihead_*``);
* :class:`BiasedMultiHeadAttention` (heads with biases, as a real layer has them).

``canonical`` and ``equivalent`` are the multi-head ones; the ReLU ones are
``relu_canonical`` and ``relu_equivalent`` here (plain names in :mod:`.relu`).
"""

from __future__ import annotations

from .attention import SingleHeadAttention, softmax_average
from .biased import BiasedSingleHeadAttention
from .multihead import (
    ConcatenatedMultiHeadAttention,
    Equivalence,
    MultiHeadAttention,
    canonical,
    equivalent,
)
from .multihead_biased import BiasedMultiHeadAttention
from .relu import CanonicalReLU, ReluFFN, parameter_error, witness
from .relu import canonical as relu_canonical
from .relu import equivalent as relu_equivalent
from .transformer import OneLayerTransformer, ResidualOneLayerTransformer, SkipHeadAttention

__all__ = [
    "SingleHeadAttention", "softmax_average", "BiasedSingleHeadAttention",
    "OneLayerTransformer", "ResidualOneLayerTransformer", "SkipHeadAttention",
    "CanonicalReLU", "ReluFFN", "parameter_error", "relu_canonical", "relu_equivalent",
    "witness",
    "ConcatenatedMultiHeadAttention", "Equivalence", "MultiHeadAttention", "canonical",
    "equivalent", "BiasedMultiHeadAttention",
]
