"""exactattn: learn attention from value queries, exactly.

The executable companion of *Provably Learning Attention with Queries*
(Bhattamishra, Shah, Hahn, Kanade; arXiv 2601.16873, ICML 2026).

The user-facing names are importable from here (listed in ``__all__`` and in
docs/api.md): the fields, the hidden models, the oracles, every learner,
:func:`verify` and the error hierarchy.

>>> import exactattn as ea
>>> head = ea.SingleHeadAttention([[1, 0], [0, 2]], [1, 1], field=ea.EXP)
>>> oracle = ea.ValueOracle(head)
>>> rec = ea.learn_single_head(oracle)
>>> rec.status, ea.verify(rec, oracle, probes=2).holds
('exact', True)
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from . import learners as _learners
from .certificates import Certificate, verify
from .errors import (
    ExactattnError,
    HypothesisViolatedError,
    IncompatibleFieldError,
    InvalidEntryError,
    NotIdentifiableError,
    NotRepresentableError,
    OracleUnavailableError,
    QueryBudgetExceededError,
    RecoveryFailedError,
    ShapeError,
)
from .fields import BALL, EXP, F64, MP, QQ, field_by_name
from .learners import *  # noqa: F403  (every learner; their list is learners.__all__)
from .learners.recovery import STATUSES
from .models import (
    BiasedMultiHeadAttention,
    BiasedSingleHeadAttention,
    MultiHeadAttention,
    OneLayerTransformer,
    ReluFFN,
    ResidualOneLayerTransformer,
    SingleHeadAttention,
)
from .oracle import NoisyOracle, ValueOracle, enclosing_oracle
from .remote import HttpOracle

__all__ = [
    "__version__",
    # fields
    "QQ", "EXP", "F64", "BALL", "MP", "field_by_name",
    # hidden models
    "SingleHeadAttention", "BiasedSingleHeadAttention", "MultiHeadAttention",
    "BiasedMultiHeadAttention",
    "OneLayerTransformer", "ResidualOneLayerTransformer", "ReluFFN",
    # oracles
    "ValueOracle", "NoisyOracle", "enclosing_oracle", "HttpOracle",
    # certificates and status words
    "verify", "Certificate", "STATUSES",
    # errors
    "ExactattnError", "ShapeError", "InvalidEntryError", "IncompatibleFieldError",
    "NotRepresentableError", "QueryBudgetExceededError", "NotIdentifiableError",
    "HypothesisViolatedError", "RecoveryFailedError", "OracleUnavailableError",
    # learners (Recovery and every learn_*)
    *_learners.__all__,
]
