"""Learners: one module per paper result. They see only an oracle.

No module in this package imports :mod:`exactattn.models` (checked by
``tests/unit/test_layering.py``): a learner cannot look at the hidden model.
"""

from __future__ import annotations

from .recovery import Recovery
from .single_head import learn_single_head

__all__ = ["Recovery", "learn_single_head"]
