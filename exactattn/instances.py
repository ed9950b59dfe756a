"""Built-in seeded instances: the hidden models that ``exactattn verify`` checks.

Same seed, same instance, on every machine: entries are drawn with numpy's
``default_rng(seed)`` and turned into small rationals exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .errors import InvalidEntryError
from .fields import F64, Field
from .fields.rational import sqrt_upper
from .models import SingleHeadAttention

__all__ = ["SingleHeadInstance", "random_rational", "single_head_instance",
           "builtin_single_head_instances", "noisy_single_head_instance", "check_size",
           "MAX_REDRAWS"]

#: an instance builder that redraws until a generic condition holds (rank r, v != 0)
#: gives up after this many draws with an error instead of looping
MAX_REDRAWS = 64


def check_size(name: str, value: object, *, low: int = 0, high: int | None = None,
               why: str = "") -> int:
    """``value`` as an int in [low, high], else :class:`InvalidEntryError` naming it.

    Every instance builder checks its sizes and seed with this before drawing
    anything, so a bad argument is refused at once (a rank above d would make
    a redraw loop run forever; a negative seed reaches numpy as a ValueError).

    >>> check_size("rank", 2, high=3)
    2
    >>> check_size("rank", 4, high=3, why="rank(W) <= d")
    Traceback (most recent call last):
    ...
    exactattn.errors.InvalidEntryError: rank must be an integer in [0, 3] (rank(W) <= d), got 4
    """
    span = f">= {low}" if high is None else f"in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low \
            or (high is not None and value > high):
        reason = f" ({why})" if why else ""
        raise InvalidEntryError(f"{name} must be an integer {span}{reason}, got {value!r}")
    return int(value)

#: the token dimensions of the built-in instances
BUILTIN_DIMENSIONS = tuple(range(1, 9))


@dataclass(frozen=True)
class SingleHeadInstance:
    """A seeded single-head instance: the hidden model and how it was made."""

    name: str
    d: int
    seed: int
    model: SingleHeadAttention


def random_rational(rng: np.random.Generator, *, max_num: int = 9, max_den: int = 8) -> Fraction:
    """A small random rational p/q, |p| <= max_num, 1 <= q <= max_den."""
    return Fraction(int(rng.integers(-max_num, max_num + 1)), int(rng.integers(1, max_den + 1)))


def single_head_instance(
    d: int, seed: int, *, field: Field, zeros_in_v: int | None = None, v_zero: bool = False
) -> SingleHeadInstance:
    """A seeded instance with rational W, v; ``zeros_in_v`` coordinates of v are 0.

    Over F64 the same draws are used as floats, with W scaled by 1/sqrt(d)
    (well-scaled logits). v always has a nonzero coordinate unless
    ``v_zero`` is set.

    >>> from exactattn.fields import EXP
    >>> inst = single_head_instance(3, 0, field=EXP, zeros_in_v=1)
    >>> sum(1 for x in inst.model.v if x == 0)
    1
    """
    check_size("d", d, low=1)
    check_size("seed", seed)
    if zeros_in_v is not None:
        check_size("zeros_in_v", zeros_in_v)
    rng = np.random.default_rng([seed, d])
    if zeros_in_v is None:
        zeros_in_v = int(rng.integers(0, d)) if d > 1 else 0
    zeros_in_v = min(zeros_in_v, d - 1)
    W = [[random_rational(rng) for _ in range(d)] for _ in range(d)]
    v = [random_rational(rng) for _ in range(d)]
    for i in range(d):
        if v[i] == 0:
            v[i] = Fraction(1, int(rng.integers(1, 5)))
    for i in rng.permutation(d)[:zeros_in_v]:
        v[int(i)] = Fraction(0)
    if v_zero:
        v = [Fraction(0)] * d
    if field is F64:
        Wf = np.array([[float(x) for x in row] for row in W]) / np.sqrt(d)
        model = SingleHeadAttention(Wf, np.array([float(x) for x in v]), field=F64)
    else:
        model = SingleHeadAttention(W, v, field=field)
    return SingleHeadInstance(f"single_head(d={d}, seed={seed})", d, seed, model)


def builtin_single_head_instances(field: Field, *, per_d: int = 2) -> list[SingleHeadInstance]:
    """The instances of ``exactattn verify``: d = 1..8, ``per_d`` seeds each.

    Seed 0 has no zero in v; the other seeds have between 1 and d - 1 zeros.
    """
    out = []
    for d in BUILTIN_DIMENSIONS:
        for seed in range(per_d):
            zeros = 0 if seed == 0 else max(1, d // 2) if d > 1 else 0
            out.append(single_head_instance(d, seed, field=field, zeros_in_v=zeros))
    return out


def noisy_single_head_instance(
    d: int, seed: int, *, W_bound: Fraction = Fraction(2), sparse_v: bool = False
) -> tuple[SingleHeadInstance, Fraction]:
    """A seeded instance meeting the noisy theorem's hypotheses, and its margin.

    W is rational with ||W||_F <= W_bound (checked exactly on squares); v has
    ||v|| <= 1 and every |v_i| >= margin = 1 / (2 ceil(sqrt d)), unless
    ``sparse_v`` (then v = e_1 / 2: the margin hypothesis fails, ||v|| = 1/2).
    The model is over EXP.
    """
    from .fields import EXP

    check_size("d", d, low=1)
    check_size("seed", seed)
    W_bound = Fraction(W_bound)
    if W_bound <= 0:
        raise InvalidEntryError(f"W_bound must be a positive rational, got {W_bound}")
    rng = np.random.default_rng([seed, d, 6])
    W = [[random_rational(rng) for _ in range(d)] for _ in range(d)]
    frob_sq = sum((x * x for row in W for x in row), Fraction(0))
    if frob_sq > 0:
        shrink = Fraction(int(rng.integers(1, 5)), 4)  # 1/4 .. 1 of the largest allowed
        root = sqrt_upper(frob_sq)
        factor = W_bound / Fraction(int(root.p), int(root.q)) * shrink
        W = [[x * factor for x in row] for row in W]
    if sum((x * x for row in W for x in row), Fraction(0)) > W_bound**2:  # pragma: no cover
        raise AssertionError("instance violates ||W||_F <= W_bound")
    r = math.isqrt(d - 1) + 1  # ceil(sqrt d)
    margin = Fraction(1, 2 * r)
    if sparse_v:
        v = [Fraction(1, 2)] + [Fraction(0)] * (d - 1)
    else:
        v = [margin * Fraction(8 + int(rng.integers(0, 5)), 8) * int(rng.choice([-1, 1]))
             for _ in range(d)]
    model = SingleHeadAttention(W, v, field=EXP)
    return SingleHeadInstance(f"noisy_single_head(d={d}, seed={seed})", d, seed, model), margin
