r"""The learners' closed-form query counts, checked as polynomials (SymPy).

A learner's docstring derives its query count in prose: each phase asks a
batch of a stated size (``(d queries of length 1)``), the sizes add up to a
closed form (``Total: exactly d + d^2 queries``), and a counting function
(:func:`exactattn.learners.single_head.query_count`) returns it. This module
checks the arithmetic of that derivation for every value of the parameters,
not on instances:

1. each formula is read from the docstring that prints it (the printed text
   must occur there, whitespace aside, or the step is NOT VERIFIED): the check
   is of the printed statement itself, not of a copy typed beside it (two
   exceptions, each piece printed but not the whole: a sum printed with its
   terms labelled, ``1 (beta) + d (v) + ...``, and the multihead total with K
   replaced by a printed per-base count);
2. the printed forms of one count agree (``1 + d + d + d^2 = (d + 1)^2``);
3. the printed per-phase batch sizes sum to the closed form;
4. the code's counting function, called with SymPy symbols instead of
   integers (its own additions, products, conditions and floor divisions),
   returns the same polynomial.

Each identity is a :class:`~exactattn.symbolic.steps.Step` (``expand(lhs - rhs)
== 0``). Conditions of the code (``m >= 2``, ``1 <= r <= d - m``) are decided
by writing the parameter as a bound plus a nonnegative integer symbol
(``m = k + 2``); each case is a separate derivation. A floor division
``x // 2`` is dropped only when x / 2 is shown integer-valued (its expansion
has integer coefficients for each parity of each variable).

What is NOT checked here, and stays prose: that each phase of the learner
asks exactly its stated batch and nothing else. That step is evidence only:
the claims compare the oracle's counter with the counting function (and the
tests the per-phase counters with these batch sizes) on instances. Hence a
result claim prints its query count as "derived (prose), equal to the counter
on N instances", never "proved"; the closed form's claim
(``<label>.query_count_closed_form``) says that each phase's batch is prose.

>>> all(step.verified for step in count_derivation("single_head_exact").steps)
True
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import sympy as sp
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication,
    parse_expr,
    split_symbols_custom,
    standard_transformations,
)

from .steps import Step, identity_step, recorded

__all__ = ["Printed", "CountCase", "CountEntry", "CountDerivation", "COUNTS", "parse_count",
           "count_derivation", "phase_sizes", "printed_in", "drop_integer_floors"]


def _split(name: str) -> bool:
    """Split ``Hd`` into H d (juxtaposed one-letter symbols); keep ``K_W``, ``n_full``."""
    return len(name) > 1 and name.isalpha() and name not in ("Piecewise", "True", "False")


_TRANSFORMS = (*standard_transformations, split_symbols_custom(_split), implicit_multiplication,
               convert_xor)
_IVERSON = re.compile(r"\[\s*([A-Za-z_]+)\s*(>=|<=|<|>)\s*([A-Za-z_0-9]+)\s*\]")


def parse_count(text: str) -> sp.Expr:
    """A count as a docstring prints it, as a SymPy expression in plain symbols.

    Juxtaposition is a product (``2Hd``, ``r(2d - r)``), ``^`` a power,
    ``[m >= 2]`` the Iverson bracket (1 if it holds, else 0), ``|NAME|`` the
    symbol ``len_NAME``, and LaTeX's ``\\ge``/``\\le`` and ``$`` are read too.

    >>> sp.expand(parse_count("1 + 2Hd + [H >= 2](d - 1) + (d - 1)(Hd + (H - 1)^2)").subs("H", 1))
    d**2 + d + 1
    >>> parse_count("r(2d - r) + d"), parse_count("(|REFINE_SCALES| + (d - 1) e) K_W")
    (d + r*(2*d - r), K_W*(e*(d - 1) + len_REFINE_SCALES))
    """
    s = re.sub(r"\\mathrm\{(\w+)\}", r"\1", text)  # n_{\mathrm{full}} -> n_{full}
    s = re.sub(r"_\{(\w+)\}", r"_\1", s)  # n_{full} -> n_full
    s = s.replace("$", "").replace(r"\ge", ">=").replace(r"\le", "<=").replace("{", "(")
    s = s.replace(r"\max", "max").replace(r"\min", "min")
    s = s.replace("}", ")").replace(r"\,", " ")
    s = re.sub(r"\|([A-Za-z_]+)\|", r"len_\1", s)
    s = _IVERSON.sub(r"(Piecewise((1, \1 \2 \3), (0, True)))", s)
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", s)) - {"Piecewise", "True"}
    # one letter is a symbol, never SymPy's constant (E, I, N, O, Q, S)
    local = {n: sp.Symbol(n) for n in names if "_" in n or len(n) == 1}
    return sp.sympify(parse_expr(s, local_dict=local, transformations=_TRANSFORMS))


def _normal(text: str) -> str:
    return " ".join(text.split())


def printed_in(text: str, where: str) -> bool:
    """Whether ``text`` occurs (whitespace aside) in the docstring of the dotted name ``where``,
    or, for ``where = "blueprint:KEY"``, in the query count the companion prints for KEY, or,
    for ``where = "claim:ID"``, in the LaTeX statement of the registered claim ID.

    >>> printed_in("$(d + 1)^2$", "blueprint:single_head_biased")
    True
    """
    if where.startswith("blueprint:"):
        from ..blueprint import STATEMENTS

        key = where.removeprefix("blueprint:")
        return any(_normal(text) in _normal(st.queries) for st in STATEMENTS if st.key == key)
    if where.startswith("claim:"):
        from ..claims import REGISTRY

        cid = where.removeprefix("claim:")
        return any(_normal(text) in _normal(c.statement) for c in REGISTRY if c.id == cid)
    return _normal(text) in _normal(inspect.getdoc(_resolve(where)) or "")


def _resolve(dotted: str) -> Any:
    """The module, or module attribute, named ``exactattn.learners.x`` / ``...x.f``."""
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError:
        module, _, name = dotted.rpartition(".")
        return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Printed:
    """A formula as a docstring prints it.

    ``text`` is the formula; ``context`` (default ``text``) the printed words
    around it that must occur in the docstring of ``where`` (a dotted name).
    """

    text: str
    where: str
    context: str = ""

    @property
    def shown(self) -> str:
        return self.context or self.text


@dataclass(frozen=True)
class CountCase:
    """One case of a count: the counter's arguments and the symbols' values in it.

    ``kwargs``: the counting function's arguments (SymPy expressions, strings);
    ``subs``: plain symbol name -> expression, applied to every parsed formula
    (``m -> k + 2``, ``n_full -> r``, ``len_REFINE_SCALES -> 2``);
    ``back``: the substitution that prints the result in the paper's letters
    (``k -> m - 2``).
    """

    name: str
    kwargs: Mapping[str, Any]
    closed: tuple[Printed, ...]
    phases: tuple[tuple[str, Printed], ...] = ()
    subs: Mapping[str, Any] = field(default_factory=dict)
    back: Mapping[sp.Symbol, Any] = field(default_factory=dict)
    context: tuple[Printed, ...] = ()  # definitions used by ``subs``, printed where they say


@dataclass(frozen=True)
class CountEntry:
    """A learner's count: its counting function and the cases of its derivation."""

    key: str  # the blueprint statement the count belongs to
    counter: str  # dotted name of the counting function
    cases: tuple[CountCase, ...]
    headline: str = ""  # the case the claim's statement prints (default: the first)

    def headline_case(self) -> CountCase:
        return next((c for c in self.cases if c.name == self.headline), self.cases[0])

    def headline_value(self) -> sp.Expr:
        """The counting function on the headline case's symbols, in the docstring's letters."""
        case = self.headline_case()
        value = sp.sympify(drop_integer_floors(_resolve(self.counter)(**case.kwargs)))
        return sp.factor_terms(sp.expand(value.subs(dict(case.back))))


@dataclass(frozen=True)
class CountDerivation:
    """The checked steps of one entry (every case), for the proof companion."""

    key: str
    counter: str
    steps: tuple[Step, ...]

    @property
    def holds(self) -> bool:
        return all(s.verified for s in self.steps)


def _integer_valued(expr: sp.Expr) -> bool:
    """Whether a polynomial with rational coefficients is an integer at every integer point,
    shown by integer coefficients after writing each variable as 2t or 2t + 1."""
    syms = sorted(expr.free_symbols, key=str)
    if not syms:
        return bool(expr.is_integer)
    if not all(s.is_integer for s in syms):
        return False
    t = [sp.Symbol(f"t_{k}", integer=True) for k in range(len(syms))]
    for bits in itertools.product((0, 1), repeat=len(syms)):
        parity = {s: 2 * tk + bit for s, tk, bit in zip(syms, t, bits, strict=True)}
        poly = sp.Poly(sp.expand(expr.subs(parity)), *t)
        if not all(c.is_integer for c in poly.coeffs()):
            return False
    return True


def drop_integer_floors(expr: Any) -> Any:
    """``expr`` with every ``floor(x)`` replaced by ``x`` where x is shown integer-valued.

    >>> k = sp.Symbol("k", integer=True, nonnegative=True)
    >>> drop_integer_floors((k + 2) * (k + 1) // 2), drop_integer_floors(k // 2)
    ((k + 1)*(k + 2)/2, floor(k/2))
    """
    expr = sp.sympify(expr)
    return expr.replace(lambda e: isinstance(e, sp.floor) and _integer_valued(e.args[0]),
                        lambda e: e.args[0])


def _printed_step(p: Printed, value: sp.Expr) -> Step | None:
    """None if ``p`` is printed where it says, else a NOT VERIFIED step saying it is not."""
    if printed_in(p.shown, p.where):
        return None
    return Step(value, value, f"NOT PRINTED: \\texttt{{{_tex_text(p.shown)}}} is not in the "
                f"docstring of \\texttt{{{_tex_text(p.where)}}}", False)


def _tex_text(s: str) -> str:
    """Plain text for LaTeX's text mode (inside ``\\texttt``)."""
    out = s.replace("\\", "\x00")
    for a, b in (("{", r"\{"), ("}", r"\}"), ("_", r"\_"), ("^", r"\^{}"), ("&", r"\&"),
                 ("%", r"\%"), ("#", r"\#"), ("$", r"\$"), ("|", r"\textbar{}"),
                 ("~", r"\~{}"), ("\n", " ")):
        out = out.replace(a, b)
    return out.replace("\x00", r"\textbackslash{}")


def _value(case: CountCase, p: Printed) -> sp.Expr:
    """A printed formula in the case's symbols (its definitions and conditions substituted)."""
    subs = {sp.Symbol(k): v for k, v in case.subs.items()}
    canon = {sp.Symbol(k): v for k, v in _CANON.items() if k not in case.subs}
    return sp.sympify(parse_count(p.text).subs(subs).subs(canon))


def phase_sizes(key: str, case_name: str, **values: int) -> dict[str, int]:
    """The printed batch size of each phase of one case, at integer parameter values.

    The tests compare these with the oracle's per-phase counters on instances
    (the evidence for the prose step "each phase asks exactly its batch").

    >>> phase_sizes("low_rank_adaptive", "rank given", d=5, r=2)
    {'v': 5, 'core': 4, 'WB': 6, 'AW': 6}
    """
    case = next(c for c in COUNTS[key].cases if c.name == case_name)
    out = {}
    for phase, p in case.phases:
        expr = sp.sympify(_value(case, p)).subs(dict(case.back))
        out[phase] = int(expr.subs({s: values[str(s)] for s in expr.free_symbols}))
    return out


def _where(p: Printed) -> str:
    """Which text prints ``p``: ``single_head``, ``single_head.query_count``, ``blueprint``."""
    if p.where.startswith("blueprint:"):
        return "the blueprint's query count"
    if p.where.startswith("claim:"):
        return "the statement of " + _breakable(p.where.removeprefix("claim:"))
    return _breakable(p.where.removeprefix("exactattn.learners."))


def _breakable(name: str) -> str:
    """A dotted name in typewriter, breakable after its dots and underscores."""
    return r"\texttt{" + _tex_text(name).replace(".", r".\allowbreak{}").replace(
        r"\_", r"\_\allowbreak{}") + "}"


def _case_steps(entry: CountEntry, case: CountCase) -> list[Step]:
    def value(p: Printed) -> sp.Expr:
        return _value(case, p)

    def shown(e: Any) -> Any:
        return sp.sympify(e).subs(dict(case.back)) if case.back else sp.sympify(e)

    steps: list[Step] = []
    parts = [value(p) for _, p in case.phases]
    # no printed total: the docstring's total is the sum of its printed per-phase terms
    printed = [value(p) for p in case.closed]
    closed = printed or [sp.Add(*parts, evaluate=False)]
    for p, v in zip(case.closed, printed, strict=True):
        bad = _printed_step(p, shown(v))
        if bad is not None:
            steps.append(bad)
    for p in case.context:
        bad = _printed_step(p, sp.Integer(0))
        if bad is not None:
            steps.append(bad)
    where = "(" + _tex_text(case.name).replace("<=", r"$\le$").replace(">=", r"$\ge$") + ")"
    for p, v in zip(case.closed[1:], printed[1:], strict=True):
        first = case.closed[0]
        steps.append(identity_step(shown(closed[0]), shown(v),
                                   f"the printed forms agree {where}: "
                                   f"\\texttt{{{_tex_text(first.text)}}} ({_where(first)}) "
                                   f"and \\texttt{{{_tex_text(p.text)}}} ({_where(p)})"))
    for (_, p), v in zip(case.phases, parts, strict=True):
        bad = _printed_step(p, shown(v))
        if bad is not None:
            steps.append(bad)
    if case.phases and case.closed:
        names = ", ".join(_tex_text(n) for n, _ in case.phases)
        steps.append(identity_step(shown(sp.Add(*parts, evaluate=False)), shown(closed[0]),
                                   f"the per-phase batches ({names}) sum to the closed form "
                                   f"{where}"))
    counter: Callable[..., Any] = _resolve(entry.counter)
    code = drop_integer_floors(counter(**case.kwargs))
    target = "the closed form" if case.closed else "the sum of the printed phase batches"
    steps.append(identity_step(shown(code), shown(closed[0]),
                               f"the code, \\texttt{{{_tex_text(entry.counter.rsplit('.', 1)[1])}}}"
                               f" called on symbols, returns {target} {where}"))
    return steps


@recorded
def count_derivation(key: str) -> CountDerivation:
    """Every step of the count of ``key`` (a key of :data:`COUNTS`), each case in turn."""
    entry = COUNTS[key]
    steps: list[Step] = []
    for case in entry.cases:
        try:
            steps += _case_steps(entry, case)
        except (TypeError, ValueError) as exc:  # a condition the symbols cannot decide
            x = sp.Symbol("x")
            steps.append(replace(identity_step(x, x, ""), verified=False,
                                 why=f"({_tex_text(case.name)}) the counter could not be "
                                     f"evaluated on "
                                     f"symbols: {_tex_text(str(exc))}"))
    return CountDerivation(key, entry.counter, tuple(steps))


# -- the counts -------------------------------------------------------------------------------
def _pos(name: str) -> sp.Symbol:
    return sp.Symbol(name, integer=True, positive=True)


def _nonneg(name: str) -> sp.Symbol:
    return sp.Symbol(name, integer=True, nonnegative=True)


d, r, H, f, P, e, n, m_ = (_pos(s) for s in "drHfPenm")
K_, R_, E_ = _nonneg("K"), _nonneg("R"), _nonneg("E")  # kinks, residual probes, extra
e0, n0 = _nonneg("e"), _nonneg("n")  # extra scales and polish queries may be 0
k, a, b = _nonneg("k"), _nonneg("a"), _nonneg("b")
#: the letters of the docstrings -> the symbols the counters are called with
_CANON = {"d": d, "r": r, "H": H, "f": f, "P": P, "e": e0, "n": n0}

_SH = "exactattn.learners.single_head"
_RF = "exactattn.learners.relu_ffn"
_BH = "exactattn.learners.biased_head"
_SK = "exactattn.learners.skip_head"
_OL = "exactattn.learners.one_layer"
_LR = "exactattn.learners.low_rank"
_BLR = "exactattn.learners.biased_low_rank"
_MH = "exactattn.learners.multihead"
_MF = "exactattn.learners.multihead_float"
_MB = "exactattn.learners.multihead_biased"


def _mh_cases() -> tuple[CountCase, ...]:
    """multihead.query_count: m = 1 or m >= 2 (m = k + 2), each plan; and m = H."""
    q = Printed("1 + 2 H d + [m >= 2] (d - 1) + (d - 1) K", _MH)
    claimed = Printed(r"1 + 2Hd + [m \ge 2](d-1) + (d-1)K",
                      "claim:multihead_canonical.exact_recovery")
    iso = Printed("K = m d + (m - 1)^2", _MH, "K = m d + (m - 1)^2   (isolating)")
    fam = Printed("K = d (2m - 1)", _MH, "K = d (2m - 1)   (families)")
    phases = (("v", Printed("1 + 2 H d", _MH, "1 + 2 H d queries.")),
              # the docstring prints the batch ("d - 1 queries") and its condition apart:
              # the batch here, the condition in each case's context
              ("match", Printed("[m >= 2] (d - 1)", _MH, "d - 1 queries. Now v_h and W_h b_1")),
              ("W", Printed("(d - 1) K", _MH)))
    only_if = Printed("[m >= 2]", _MH, "Phase ``match`` (only if m >= 2)")
    cases = []
    for plan, K in (("isolating", iso), ("families", fam)):
        kexpr = parse_count(K.text.split("=", 1)[1])
        for m_name, m_val, back in (("m = 1", 1, {}), ("m >= 2", k + 2, {k: sp.Symbol("m") - 2})):
            ksub = kexpr.subs(sp.Symbol("m"), m_val)
            cases.append(CountCase(
                f"{m_name}, plan {plan}", {"H": H, "d": d, "m": m_val, "plan": plan},
                (q, claimed), phases, subs={"K": ksub, "m": m_val}, back=back,
                context=(K, only_if)))
    per_base = Printed("m (d - m + 1) + (m - 1)(2m - 1)", _MH,
                       "Per base: m (d - m + 1) + (m - 1)(2m - 1) = m d + (m - 1)^2 queries.")
    # at m >= 2 (m = k + 2): at m = 1 both per-base forms are d, and would agree if one were wrong
    cases.append(CountCase("m >= 2, isolating plan, its two printed per-base counts", {
        "H": H, "d": d, "m": k + 2, "plan": "isolating"},
        # Q with K replaced by each printed per-base form: every piece is printed, the
        # composition is not (each is looked up where it is printed)
        tuple(Printed(q.text.removesuffix("K") + f"({form})", _MH, p.shown) for form, p in (
            (iso.text.split("=", 1)[1].strip(), iso), (per_base.text, per_base))),
        subs={"m": k + 2}, back={k: sp.Symbol("m") - 2}, context=(q,)))
    specialised = Printed("1 + 2Hd + [H >= 2](d - 1) + (d - 1)(Hd + (H - 1)^2)", _MH,
                          "For m = H <= d with independent v_h: Q = 1 + 2Hd + [H >= 2](d - 1) "
                          "+ (d - 1)(Hd + (H - 1)^2)")
    blueprint = Printed(r"$1 + 2Hd + [H \ge 2](d-1) + (d-1)(Hd + (H-1)^2)$",
                        "blueprint:multihead_canonical")
    cases.append(CountCase("m = H = 1", {"H": 1, "d": d, "plan": "isolating"},
                           (specialised, Printed("d^2 + d + 1", _MH, "H = 1 gives d^2 + d + 1"),
                            blueprint), subs={"H": 1}))
    cases.append(CountCase("m = H >= 2", {"H": k + 2, "d": d, "plan": "isolating"},
                           (specialised, blueprint), subs={"H": k + 2},
                           back={k: sp.Symbol("H") - 2}))
    return tuple(cases)


def _float_cases() -> tuple[CountCase, ...]:
    """multihead_float.float_query_count: m = 1 and m >= 2, e extra scales, n polish queries."""
    from ..learners.multihead_float import REFINE_SCALES

    terms = (("v", Printed("1 + 2H f d", _MF, "1 + 2H f d (phase v)")),
             ("match", Printed("[m >= 2](d - 1)", _MF, "[m >= 2](d - 1) (match)")),
             ("W", Printed("(d - 1) K_W", _MF, "(d - 1) K_W (phase W)")),
             ("refine", Printed("(|REFINE_SCALES| + (d - 1) e) K_W", _MF,
                                "(|REFINE_SCALES| + (d - 1) e) K_W (refine")),
             ("polish", Printed("(d - 1) n", _MF, "(d - 1) n (polish)")))
    kw_printed = Printed("m (d - m + 1) + 3 P m (m - 1) / 2", _MF,
                         "K_W = m (d - m + 1) + 3 P m (m - 1) / 2 queries per base.")
    kw = parse_count(kw_printed.text)
    cases = []
    for m_name, m_val, back in (("m = 1", 1, {}), ("m >= 2", k + 2, {k: sp.Symbol("m") - 2})):
        subs = {"m": m_val, "K_W": kw.subs(sp.Symbol("m"), m_val),
                "len_REFINE_SCALES": len(REFINE_SCALES)}
        cases.append(CountCase(
            m_name, {"H": H, "d": d, "m": m_val, "families_per_dimension": f,
                     "extra_scales": e0, "pair_directions": P, "polish_queries": n0},
            (), terms, subs=subs, back=back, context=(kw_printed,)))
        # the claim float_recovery prints the count of its runs: no extra scale, no polish
        cases.append(CountCase(
            f"{m_name}, e = n = 0", {"H": H, "d": d, "m": m_val, "families_per_dimension": f,
                                     "pair_directions": P},
            (Printed(r"1 + 2Hfd + [m \ge 2](d-1) + (d + 1) K_W",
                     "claim:multihead_canonical.float_recovery"),),
            terms, subs={**subs, "e": 0, "n": 0}, back=back))
    return tuple(cases)


def _biased_mh_cases() -> tuple[CountCase, ...]:
    """multihead_biased.biased_query_count: without a rank, and with 1 <= r <= d - m."""
    # the biased learner imports its scales from the float learner; were they ever its own,
    # the counter step below would fail (NOT VERIFIED), not pass silently
    from ..learners.multihead_float import REFINE_SCALES

    q = Printed("1 + (1 + 2 H f d) + [m >= 2] (d - 1) + (n_full + |REFINE_SCALES|) K_W "
                "+ n_low (r + 2) m", _MB)
    kw_where = Printed("K_W = m (d - m + 1) + 3 P m (m - 1) / 2", _MB)
    claimed = Printed(r"2 + 2Hfd + [m \ge 2](d-1) + (n_{\mathrm{full}} + 2) K_W + "
                      r"n_{\mathrm{low}}(r + 2) m",
                      "claim:multihead_canonical.float_biased_recovery")
    kw = parse_count(kw_where.text.split("=", 1)[1])
    cases = []
    for m_name, m_val, back in (("m = 1", 1, {}), ("m >= 2", k + 2, {k: sp.Symbol("m") - 2})):
        base = {"m": m_val, "K_W": kw.subs(sp.Symbol("m"), m_val),
                "len_REFINE_SCALES": len(REFINE_SCALES)}
        cases.append(CountCase(
            f"{m_name}, no rank: n_full = d, n_low = 0",
            {"H": H, "d": d, "m": m_val, "families_per_dimension": f, "pair_directions": P},
            (q, claimed), subs={**base, "n_full": d, "n_low": 0}, back=back,
            context=(kw_where, Printed("n_full = d, n_low = 0 without a rank", _MB))))
        # with a rank: r = a + 1 >= 1 and d = m + r + b >= m + r, so 1 <= r <= d - m
        rr, dd = a + 1, m_val + a + 1 + b
        back_r = {**back, a: sp.Symbol("r") - 1, b: sp.Symbol("d") - sp.Symbol("r") - (
            sp.Symbol("m") if m_val != 1 else 1)}
        cases.append(CountCase(
            f"{m_name}, rank r with 1 <= r <= d - m: n_full = r, n_low = d - r",
            {"H": H, "d": dd, "rank": rr, "m": m_val, "families_per_dimension": f,
             "pair_directions": P},
            (q, claimed), subs={**base, "d": dd, "r": rr, "n_full": rr, "n_low": dd - rr},
            back=back_r,
            context=(kw_where, Printed("n_full = r,\nn_low = d - r with it", _MB))))
    return tuple(cases)


COUNTS: dict[str, CountEntry] = {
    "single_head_exact": CountEntry("single_head_exact", f"{_SH}.query_count", (
        CountCase("all d", {"d": d},
                  (Printed("d + d^2", _SH, "Total: exactly d + d^2 queries"),
                   Printed("d + d^2", f"{_SH}.query_count",
                           "The exact query count of Thm 4.1: d + d^2."),
                   Printed("$d + d^2$", "blueprint:single_head_exact", "exactly $d + d^2$"),
                   Printed("d + d^2", "claim:single_head_exact.exact_recovery",
                           r"\text{ after exactly } d + d^2 \text{ value queries }")),
                  (("v", Printed("d", _SH, "(d queries of length 1)")),
                   ("W", Printed("d^2", _SH, "(d^2 queries of length 2)")))),)),
    "single_head_biased": CountEntry("single_head_biased", f"{_BH}.biased_query_count", (
        CountCase("all d", {"d": d},
                  (Printed("(d + 1)^2", _BH, "Total: exactly 1 + d + d + d^2 = (d + 1)^2 queries"),
                   Printed("d^2 + 2d + 1", f"{_BH}.biased_query_count",
                           "The exact (and optimal) query count: d^2 + 2d + 1 = (d + 1)^2."),
                   Printed("$(d + 1)^2$", "blueprint:single_head_biased"),
                   Printed("(d + 1)^2", "claim:single_head_exact.biased_exact_recovery",
                           r"\text{ after exactly } (d + 1)^2 \text{ queries")),
                  (("beta", Printed("1", _BH, '``{"beta": 1, "v": d, "c": d, "W": d^2}``')),
                   ("v", Printed("d", _BH, '``{"beta": 1, "v": d, "c": d, "W": d^2}``')),
                   ("c", Printed("d", _BH, '``{"beta": 1, "v": d, "c": d, "W": d^2}``')),
                   ("W", Printed("d^2", _BH, '``{"beta": 1, "v": d, "c": d, "W": d^2}``')))),)),
    "one_layer_reduction": CountEntry("one_layer_reduction", f"{_SK}.query_count", (
        CountCase("skip head, all d", {"d": d},
                  (Printed("d^2 + 2d", _SK, "Exactly d + d + d^2 = d^2 + 2d"),
                   Printed("d^2 + 2d", f"{_SK}.query_count",
                           "The exact query count of :func:`learn_skip_head`: d^2 + 2d"),
                   Printed("d^2 + 2d", "claim:one_layer_reduction.residual_recovery",
                           r"\text{skip head alone: } d^2 + 2d")),
                  (("v+u", Printed("d", _SK, "(d queries of length 1)")),
                   ("v", Printed("d", _SK, "(d queries of length 2)")),
                   ("W", Printed("d^2", _SK, "(d^2 queries of length 2)")))),)),
    "one_layer_attention": CountEntry("one_layer_reduction", f"{_OL}.attention_query_count", (
        CountCase("plain", {"d": d}, (Printed("2 (d + d^2)", _OL, "Q = Q_FFN + 2 (d + d^2)"),
                                      Printed("2(d + d^2)", "blueprint:one_layer_reduction",
                                              r"$Q_{\mathrm{FFN}}(d, m) + 2(d + d^2)$"),
                                      Printed("2(d + d^2)", "claim:one_layer_reduction."
                                              "exact_recovery", r"Q_{\mathrm{FFN}} + 2(d + d^2)"))),
        CountCase("residual", {"d": d, "residual": True},
                  (Printed("2 (2d + d^2)", _OL, "Q = Q_FFN + 2 (2d + d^2)"),
                   Printed("2(2d + d^2)", "claim:one_layer_reduction.residual_recovery",
                           r"Q = Q_{\mathrm{FFN}} + 2(2d + d^2)"))))),
    "low_rank_adaptive": CountEntry("low_rank_adaptive", f"{_LR}.adaptive_query_count", (
        CountCase("rank given", {"d": d, "r": r},
                  (Printed("r(2d - r) + d", _LR, "**Query count, rank given: exactly r(2d - r) "
                                                 "+ d**"),
                   Printed("d + 2rd - r^2", _LR, "= d + 2rd - r^2 = r(2d - r) + d, the floor"),
                   Printed("$r(2d - r) + d$", "blueprint:low_rank_adaptive"),
                   Printed("r(2d - r) + d", "claim:low_rank_adaptive.exact_recovery_at_floor",
                           r"\text{ after exactly } r(2d - r) + d \text{ value queries")),
                  (("v", Printed("d", _LR, "d (v) + r^2 (core)")),
                   ("core", Printed("r^2", _LR, "r^2 (core)")),
                   ("WB", Printed("r(d - r)", _LR, "r(d - r) (W B)")),
                   ("AW", Printed("r(d - r)", _LR, "r(d - r) (A^T W)")))),
        CountCase("rank not given, r < d (d = r + 1 + b)",
                  {"d": r + 1 + b, "r": r, "rank_given": False},
                  (Printed("r(2d - r) + d + 1", _LR, "**Rank not given: exactly r(2d - r) + d + 1 "
                                                     "queries if r < d"),
                   Printed("d + (r + 1)^2 + 2 r (d - r - 1)", _LR,
                           "total d + (r + 1)^2 + 2 r (d - r - 1) = r(2d - r) + d + 1"),
                   Printed("r(2d - r) + d + [r < d]", "claim:low_rank_adaptive.rank_discovery")),
                  subs={"d": r + 1 + b}, back={b: sp.Symbol("d") - r - 1}),
        CountCase("rank not given, r = d", {"d": d, "r": d, "rank_given": False},
                  (Printed("r(2d - r) + d", _LR, "r(2d - r) + d\nif r = d**"),
                   Printed("r(2d - r) + d + [r < d]", "claim:low_rank_adaptive.rank_discovery")),
                  subs={"r": d}))),
    "low_rank_biased": CountEntry("low_rank_adaptive", f"{_BLR}.biased_low_rank_query_count", (
        CountCase("bias general, rank given", {"d": d, "r": r},
                  (Printed("r(2d - r) + 2d + 1", _BLR,
                           "**Query count: exactly r(2d - r) + 2d + 1**"),
                   Printed("1 + d + d + r^2 + 2 r(d - r)", _BLR,
                           "1 (beta) + d (v) + d (c) +\nr^2 + 2 r(d - r)"),
                   Printed("r(2d - r) + 2d + 1",
                           "claim:low_rank_adaptive.biased_exact_recovery_at_floor")),
                  (("beta", Printed("1", _BLR, "1 (beta)")), ("v", Printed("d", _BLR, "d (v)")),
                   ("c", Printed("d", _BLR, "d (c)")), ("core", Printed("r^2", _BLR, "core (r^2)")),
                   ("WB", Printed("r(d - r)", _BLR, "the rest of Z W B (r(d - r))")),
                   ("AW", Printed("r(d - r)", _BLR, "of A^T W Y (r(d - r))")))),
        CountCase("bias column_space, rank given", {"d": d, "r": r, "bias": "column_space"},
                  (Printed("r(2d + 1 - r) + d + 1", _BLR, "**Query count: exactly\nr(2d + 1 - r) "
                                                          "+ d + 1**"),
                   Printed("r(2d - r) + r + d + 1", _BLR, "= r(2d - r) + r + d + 1"),
                   Printed("r(2d + 1 - r) + d + 1",
                           "claim:low_rank_adaptive.biased_exact_recovery_at_floor")),
                  (("beta", Printed("1", _BLR, "1 (beta)")), ("v", Printed("d", _BLR, "d (v)")),
                   ("core", Printed("r^2", _BLR, "core r^2")),
                   ("WB", Printed("r(d - r)", _BLR, "rest of Z K B\nr(d - r)")),
                   ("AW", Printed("r(d + 1 - r)", _BLR, "rest of A^T K T r(d + 1 - r)")))),
        CountCase("both routes at r = d", {"d": d, "r": d, "bias": "column_space"},
                  (Printed("(d + 1)^2", f"{_BLR}.biased_degrees_of_freedom",
                           "Both equal (d + 1)^2 at r = d."),), subs={"r": d}))),
    "low_rank_sensing": CountEntry("low_rank_sensing", f"{_LR}.sensing_query_count", (
        CountCase("all d, m", {"d": d, "m": m_},
                  (Printed("d + m", f"{_LR}.learn_low_rank", "(d + m queries, non-adaptive"),
                   Printed("$d + m$", "blueprint:low_rank_sensing", "$d + m$ with"),
                   Printed("d + m", "claim:low_rank_sensing.sensing_recovery",
                           r"\text{ exactly after } d + m \text{ queries")),
                  (("v", Printed("d", f"{_LR}.sensing_query_count", "d for v plus m")),
                   ("measurements", Printed("m", f"{_LR}.sensing_query_count",
                                            "plus m measurements"))),
                  subs={"m": m_}),)),
    "relu_ffn_exact": CountEntry("relu_ffn_exact", f"{_RF}.query_count", (
        CountCase("exact route, d = 1", {"d": 1, "K": K_, "residual_probes": R_, "extra": E_},
                  (Printed("8 + 5K + (K + 1)(max(d - 2, 0) + 1) + R + E", _RF,
                           "Q = 8 + 5K + (K + 1)(max(d - 2, 0) + 1) + R + E"),
                   Printed(r"8 + 5K + (K + 1)(\max(d - 2, 0) + 1) + R + E",
                           "claim:relu_ffn_exact.exact_recovery")),
                  subs={"d": 1, "K": K_, "R": R_, "E": E_}),
        CountCase("exact route, d >= 2", {"d": k + 2, "K": K_, "residual_probes": R_,
                                          "extra": E_},
                  (Printed("8 + 5K + (K + 1)(max(d - 2, 0) + 1) + R + E", _RF,
                           "Q = 8 + 5K + (K + 1)(max(d - 2, 0) + 1) + R + E"),
                   Printed("(K + 1)(d + 4) + 3 + R + E", _RF,
                           "= (K + 1)(d + 4) + 3 + R + E               for d >= 2"),
                   Printed("(K + 1)(d + 4) + 3 + R + E", f"{_RF}.query_count",
                           "For d >= 2 this is (K + 1)(d + 4) + 3 + R + E."),
                   Printed(r"(K + 1)(d + 4) + 3 + R + E", "claim:relu_ffn_exact.exact_recovery",
                           r"= (K + 1)(d + 4) + 3 + R + E \text{ for } d \ge 2")),
                  subs={"d": k + 2, "K": K_, "R": R_, "E": E_}, back={k: sp.Symbol("d") - 2}),
        CountCase("F64 route", {"d": d, "K": K_, "residual_probes": R_, "extra": E_,
                                "exact": False},
                  (Printed("8 + 7K + (K + 1)(d + 2) + R + E", f"{_RF}.query_count"),),
                  subs={"K": K_, "R": R_, "E": E_}))),
    "multihead_canonical": CountEntry("multihead_canonical", f"{_MH}.query_count", _mh_cases(),
                                      headline="m = H >= 2"),
    "multihead_float": CountEntry("multihead_canonical", f"{_MF}.float_query_count",
                                  _float_cases()),
    "multihead_biased": CountEntry("multihead_canonical", f"{_MB}.biased_query_count",
                                   _biased_mh_cases()),
}
