"""exactattn: learn attention from value queries, exactly.

The executable companion of *Provably Learning Attention with Queries*
(Bhattamishra, Shah, Hahn, Kanade; arXiv 2601.16873, ICML 2026).
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from .errors import ExactattnError
from .fields import EXP, F64, QQ

__all__ = ["__version__", "ExactattnError", "EXP", "F64", "QQ"]
