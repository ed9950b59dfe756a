"""Learners: one module per paper result. They see only an oracle.

No module in this package imports :mod:`exactattn.models` (checked by
``tests/unit/test_layering.py``): a learner cannot look at the hidden model.
"""

from __future__ import annotations

from .biased_head import learn_biased_head
from .biased_low_rank import learn_biased_low_rank
from .low_rank import learn_low_rank
from .membership import learn_single_head_membership
from .multihead import learn_multihead, learn_orthogonal_heads
from .multihead_biased import learn_multihead_biased
from .multihead_float import learn_multihead_float
from .multihead_saturated import learn_multihead_saturated
from .noisy import learn_single_head_noisy
from .noisy_adapted import learn_single_head_noisy_adapted
from .one_layer import learn_one_layer
from .recovery import Recovery
from .relu_ffn import learn_relu_ffn
from .single_head import learn_single_head
from .skip_head import learn_skip_head

__all__ = [
    "Recovery", "learn_single_head", "learn_biased_head", "learn_one_layer", "learn_skip_head",
    "learn_relu_ffn", "learn_low_rank", "learn_biased_low_rank", "learn_single_head_noisy",
    "learn_single_head_noisy_adapted", "learn_multihead", "learn_orthogonal_heads",
    "learn_single_head_membership", "learn_multihead_float", "learn_multihead_biased",
    "learn_multihead_saturated",
]
