"""The claims of each result, one module per stable label.

Importing this package registers every claim with :mod:`exactattn.claims`.
To add a result: write ``<label>.py`` here (``register_result`` then
``@claim`` checks), import it below, add ``tests/theorems/test_<label>.py``.
``bounds`` is the one module that is not a label: claims of blueprint
statements registered under existing labels.
"""

from __future__ import annotations

# Paper order: the order of `exactattn verify` and of the LaTeX companion.
# isort: off
from . import single_head_exact
from . import single_head_biased
from . import relu_ffn_exact
from . import one_layer_reduction
from . import low_rank
from . import low_rank_biased
from . import clipped_inverse
from . import noisy_oracle
from . import noisy_curve  # noisy_oracle's measured curve (a figure)
from . import multihead
from . import multihead_float
from . import multihead_biased
from . import multihead_saturated
from . import membership_queries
from . import bounds  # the blueprint's extra claims, under the labels above
from . import query_counts  # the closed-form query counts, under the labels above
# isort: on

__all__ = ["single_head_exact", "single_head_biased", "relu_ffn_exact", "one_layer_reduction",
           "low_rank", "low_rank_biased", "clipped_inverse", "noisy_oracle", "noisy_curve",
           "multihead",
           "multihead_float", "multihead_biased", "multihead_saturated", "membership_queries",
           "bounds", "query_counts"]
