"""The hidden functions. Learners never import this package (see tests)."""

from __future__ import annotations

from .attention import SingleHeadAttention, softmax_average

__all__ = ["SingleHeadAttention", "softmax_average"]
