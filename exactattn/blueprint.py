"""The blueprint: every statement of the proof companion, as the paper states it.

A :class:`Statement` is one node of the dependency graph of the proof
companion (``exactattn latex``): its part (I, the paper; II, beyond the
paper, credited), its theorem environment (hypotheses, constants, query
count, paper reference: v1 numbers as the reference, v2 numbers as
"v2, reported", see paper.md), what it uses, the prose steps of its proof
and which registered claims check it. The claims themselves (and their
checks) live in ``exactattn/checks/<label>.py``; this module imports nothing
from them, so the registry loads without a cycle.

>>> [s.key for s in STATEMENTS if s.part == "paper"][:2]
['single_head_exact', 'one_layer_reduction']
>>> statement_of("single_head_exact.biased_length_one").key
'single_head_biased'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Statement", "STATEMENTS", "statement_of", "by_key", "PARTS", "coverage_problems",
           "claims_of"]

#: the two parts of the companion
PARTS = {"paper": "The paper", "ours": "Beyond the paper"}


@dataclass(frozen=True)
class Statement:
    """One statement of the blueprint.

    Attributes
    ----------
    key : the LaTeX label (the stable result label where there is one).
    part : ``"paper"`` (Part I) or ``"ours"`` (Part II).
    kind : Theorem, Lemma, Proposition, Remark.
    title : LaTeX (maths allowed).
    plain : the title for PDF bookmarks, only where dropping the ``$`` of ``title`` is
        not plain text (see :attr:`bookmark`).
    v1, v2 : the paper's numbers (v2 only as reported by secondary summaries).
    credit : who the result is due to (Part II: ours, or the work it comes from).
    hypotheses, constants, queries : as the statement has them (LaTeX).
    statement : the statement itself (LaTeX text).
    uses : keys of the statements it uses.
    labels : registry labels whose claims check it; ``include`` claim-id
        prefixes (taken even from other labels), ``exclude`` prefixes left out.
    proof : the prose of the proof (LaTeX paragraphs, shown as not machine-checked).
    coverage : ``"checked"`` when every step of the proof has a machine check (symbolic in
        the dimension printed with it, interval, or exact), else why not (shown as partly):
        required, so that no statement is "checked" by default.
    conclusion : prose printed after the checked steps (how they combine).
    """

    key: str
    part: str
    kind: str
    title: str
    plain: str = ""
    v1: str | None = None
    v2: str | None = None
    credit: str = ""
    hypotheses: tuple[str, ...] = ()
    constants: tuple[str, ...] = ()
    queries: str = ""
    statement: str = ""
    uses: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    proof: tuple[str, ...] = ()
    coverage: str = field(kw_only=True)
    conclusion: str = ""

    @property
    def bookmark(self) -> str:
        """The title for PDF bookmarks: ``plain``, else ``title`` without its ``$``.

        >>> by_key()["single_head_exact"].bookmark
        'Exact recovery of a single head with d + d^2 queries'
        """
        return self.plain or self.title.replace("$", "")

    @property
    def paper_ref(self) -> str:
        """'Thm 4.1 (v1); Thm 4.1 (v2, reported)', or the credit for Part II."""
        refs = []
        if self.v1:
            refs.append(f"{self.v1} (v1)")
        if self.v2:
            refs.append(f"{self.v2} (v2, reported)")
        return "; ".join(refs)


_NORMS = (r"$\|W\|_F \le \bar W$ with $\bar W \ge 2$ known; $\|v\|_2 \le 1$; every query "
          r"token has $\|x_i\|_2 \le 1$")

STATEMENTS: tuple[Statement, ...] = (
    # -- Part I: the paper ---------------------------------------------------------------
    Statement(
        "single_head_exact", "paper", "Theorem",
        r"Exact recovery of a single head with $d + d^2$ queries",
        v1="Thm 4.1", v2="Thm 4.1",
        hypotheses=(r"$W \in \mathbb{R}^{d \times d}$, $v \in \mathbb{R}^d$, $v \ne 0$",
                    r"exact value queries $\mathrm{VQ}(X) = f_{W,v}(X)$"),
        queries=r"exactly $d + d^2$: $d$ of length 1, $d^2$ of length 2, adaptive",
        statement=r"An adaptive learner recovers $(W, v)$ exactly from $d + d^2$ value "
                  r"queries. If $v = 0$ then $f_{W,0} \equiv 0$ and $W$ is not identifiable.",
        labels=("single_head_exact",), exclude=("single_head_exact.biased_",),
        proof=(r"A length-1 query $[e_i^\top]$ returns $v_i$ (one weight, equal to 1). For "
               r"column $j$ and a probe $u$ with $u^\top v \ne 0$, the query "
               r"$[(u + e_j)^\top; e_j^\top]$ returns $y = v_j + \sigma(u^\top w_j)\,u^\top v$, "
               r"so $u^\top w_j = \operatorname{logit}((y - v_j)/u^\top v)$. Probes "
               r"$u_1, \dots, u_d$ with $\det Z \ne 0$ (rows $u_l$) give $w_j = Z^{-1} t_j$. "
               r"Each of these steps is checked below.",),
        coverage=r"the identities of the proof are symbolic ($d = 3$) and the count's sum is "
                 r"symbolic for every $d$; that the learner asks exactly $d$ and $d^2$ queries "
                 r"(prose), and $\det Z = 1$ for its probes, are checked on exact instances only",
    ),
    Statement(
        "one_layer_reduction", "paper", "Theorem",
        r"A one-layer Transformer: an FFN learner plus the single-head learner",
        v1=r"\S4.1", v2=r"\S4.1",
        hypotheses=(r"$TF(X) = w_o^\top \mathrm{ReLU}(\alpha(X, W)^\top X A)$, no biases, "
                    r"no residual, read-out at the last position", r"$A w_o \ne 0$",
                    r"an FFN learner that returns a function-equivalent network on "
                    r"$\mathbb{R}^d$ (the paper cites one; exactattn ships "
                    r"\hyperref[relu_ffn_exact]{its own})"),
        queries=r"$Q_{\mathrm{FFN}}(d, m) + 2(d + d^2)$",
        statement=r"Length-1 queries are the FFN $g(x) = w_o^\top\mathrm{ReLU}(A^\top x)$, and "
                  r"$TF(X) - TF(-X) = \alpha(X, W)^\top X (A w_o)$ is an exact single-head "
                  r"oracle with $v = A w_o$; the single-head learner on it gives $W$ exactly.",
        uses=("single_head_exact", "relu_ffn_exact"), labels=("one_layer_reduction",),
        proof=(r"Negating every token leaves the scores, hence the weights, unchanged; "
               r"$\mathrm{ReLU}(z) - \mathrm{ReLU}(-z) = z$ then makes the antisymmetrised "
               r"query linear in the averaged token. Checked symbolically below for "
               r"$d = m = 2$, ReLU by sign cases, and on exact instances.",),
        coverage=r"the identities are symbolic ($d = m = 2$) and the count's sum for every "
                 r"$d$; that each antisymmetrised query costs two queries of $TF$ and each "
                 r"phase asks its batch is prose, checked on exact instances; it uses the "
                 r"single-head learner (partly)",
    ),
    Statement(
        "low_rank_sensing", "paper", "Theorem",
        r"Low-rank $W$ from $d + C r (2d)$ rank-one measurements",
        v1="Thm 5.2", v2="Thm 5.1",
        hypotheses=(r"$v \ne 0$, $\operatorname{rank} W \le r$",
                    r"Gaussian $a_k, b_k \sim N(0, I_d)$"),
        constants=(r"$C$: not given by the paper; measured here and printed in the paper's "
                   r"normalisation $C = m / (2rd)$ beside ours, $m / (r(2d - r))$",),
        queries=r"$d + m$ with $m \ge C r (2d)$",
        statement=r"With the measurements $\langle a_k b_k^\top, W\rangle$ read off the "
                  r"queries $[(a_k + b_k)^\top; b_k^\top]$, nuclear-norm minimisation recovers "
                  r"every rank-$\le r$ matrix with probability $\ge 1 - e^{-\Omega(m)}$.",
        uses=("single_head_exact",), labels=("low_rank_sensing",),
        proof=(r"The rank-one identity (checked below) turns each query into a measurement. "
               r"The recovery guarantee is the theorem of Cai and Zhang (Ann.\ Statist.\ "
               r"43(1), 2015) on rank-one projections: cited, not machine-checked. The "
               r"recovery claim runs the paper's nuclear-norm program with cvxpy when the "
               r"\texttt{sensing} extra is installed (its result names the solver that ran, or "
               r"says that cvxpy is absent) and alternating least squares always; an exact "
               r"polish then turns the float estimate into a rational matrix checked against "
               r"every measurement, and $\hat W = W$ is decided in EXP.",),
        coverage=r"the probability bound is the cited theorem of Cai and Zhang (prose); the "
                 r"identity, the recovery on instances and the polish are checked",
    ),
    Statement(
        "low_rank_floor", "paper", "Proposition",
        r"The degrees-of-freedom floor $r(2d - r) + d$",
        v1=r"\S5 (with Thm 5.2)",
        hypotheses=(r"$\operatorname{rank} W \le r$, $v \ne 0$",
                    r"model of computation: a learner whose queries depend continuously on "
                    r"the previous answers on an open set of parameters"),
        queries=r"at least $r(2d - r) + d$; for $r = d$ this is $d + d^2$",
        statement=r"No such learner identifies every $(W, v)$ with $\operatorname{rank} W \le r$ "
                  r"from fewer than $r(2d - r) + d$ value queries.",
        uses=("single_head_exact",), include=("low_rank_adaptive.floor_dimension",),
        proof=(r"The pairs $(W, v)$ with $\operatorname{rank} W = r$ form a manifold of "
               r"dimension $r(2d - r) + d$. A learner of the stated kind defines, on an open "
               r"set, a continuous map from parameters to answers in $\mathbb{R}^q$; if it "
               r"identifies the parameters the map is injective, and by invariance of domain a "
               r"continuous injection of an open set of $\mathbb{R}^n$ into $\mathbb{R}^q$ "
               r"needs $q \ge n$ (prose, not machine-checked). The dimension count is checked "
               r"below: the differential of $(U, V) \mapsto UV^\top$ has rank $r(2d - r)$.",),
        coverage=r"the dimension count is checked exactly; invariance of domain is prose",
    ),
    Statement(
        "clipped_inverse", "paper", "Lemma",
        r"The clipped inverse sigmoid is $L$-Lipschitz, $L = 2 + 2\cosh\tfrac12 \le 5$",
        "The clipped inverse sigmoid is L-Lipschitz, L = 2 + 2 cosh(1/2) <= 5",
        v1="Lemma 6.1", v2="Lemma A.1",
        constants=(r"$\tau_c = \sigma(-\tfrac12) = 1/(1 + \sqrt e)$",
                   r"$L = 1/(\tau_c(1 - \tau_c)) = 2 + 2\cosh\tfrac12 \approx 4.2552519$"),
        statement=r"With $\operatorname{clip}(p) = \min(\max(p, \tau_c), 1 - \tau_c)$: if "
                  r"$\alpha^* \in [\tau_c, 1 - \tau_c]$ then "
                  r"$|\operatorname{logit}(\operatorname{clip}(a)) - "
                  r"\operatorname{logit}(\alpha^*)| \le L\,|a - \alpha^*|$ for every real $a$.",
        labels=("clipped_inverse",),
        proof=(r"(i) clip is nondecreasing, 1-Lipschitz and maps into $[\tau_c, 1 - \tau_c]$; "
               r"(ii) $\operatorname{logit}' = 1/(p(1-p)) \le L$ there; (iii) the mean value "
               r"theorem (prose) combines them. A line ending in $\geq 0$ is an identity whose "
               r"right side is a quotient of polynomials with nonnegative coefficients in "
               r"nonnegative slack variables.",),
        coverage=r"every step symbolic or interval; the mean value theorem itself is prose",
        conclusion=r"Let $\alpha \in [\tau_c, 1 - \tau_c]$ and $a \in \mathbb{R}$. By (i), "
                   r"$\operatorname{clip}(a)$ and $\alpha = \operatorname{clip}(\alpha)$ lie in "
                   r"$[\tau_c, 1 - \tau_c]$ and $|\operatorname{clip}(a) - \alpha| \le "
                   r"|a - \alpha|$. By (ii) $0 < \operatorname{logit}' \le L$ there; by (iii), "
                   r"the mean value theorem, $|\operatorname{logit}(\operatorname{clip}(a)) - "
                   r"\operatorname{logit}(\alpha)| \le L\,|\operatorname{clip}(a) - \alpha| "
                   r"\le L\,|a - \alpha|$. The interval step gives $L < 5$.",
    ),
    Statement(
        "output_bound", "paper", "Proposition",
        r"Under the norm hypotheses, $|f(X)| \le 1$",
        "Under the norm hypotheses, |f(X)| <= 1", v1=r"\S6 (hypotheses of Thm 6.2)",
        hypotheses=(r"$\|v\|_2 \le 1$; every token $\|x_i\|_2 \le 1$",),
        statement=r"$|f_{W,v}(X)| \le 1$ for every $W$ and every query $X$.",
        include=("noisy_oracle.output_bound",),
        proof=(r"$f(X) = \sum_i \alpha_i\, v^\top x_i$ is a convex combination "
               r"($\alpha_i > 0$, $\sum_i \alpha_i = 1$) of numbers with "
               r"$|v^\top x_i| \le \|v\|_2 \|x_i\|_2 \le 1$ (Cauchy--Schwarz): the two "
               r"averages and Lagrange's identity below are checked symbolically, the bound "
               r"on exact instances, where it is attained.",),
        coverage=r"the identities are symbolic and the bound holds on exact instances; that "
                 r"an average with positive weights of numbers in $[-1, 1]$ lies in $[-1, 1]$ "
                 r"is prose",
    ),
    Statement(
        "noisy_oracle", "paper", "Theorem",
        r"Learning from approximate value queries with the clipped inverse",
        v1="Thm 6.2", v2="Thm 6.1",
        hypotheses=(_NORMS, r"margin: $\min_i |v_i| \ge \mu > 0$",
                    r"$\mathrm{AVQ}(X; \tau)$ returns any value in $[f(X) - \tau, f(X) + \tau]$, "
                    r"chosen adversarially and deterministically"),
        constants=(r"$\tau_f \le \mu \varepsilon_W / (80 \bar W^2 d)$",
                   r"$\tau_v \le \min(\mu/2,\ \mu\varepsilon_W / (80 \bar W^2 d),\ "
                   r"\varepsilon_v / \sqrt d)$", r"probe scales $a = \tfrac12$, $b = 1/\bar W$"),
        queries=r"$d + d^2$, deterministic",
        statement=r"The learner returns $(\hat W, \hat v)$ with "
                  r"$\|\hat W - W\|_F \le \varepsilon_W$ and $\|\hat v - v\|_2 \le \varepsilon_v$.",
        uses=("clipped_inverse", "output_bound", "single_head_exact"),
        labels=("noisy_oracle",), exclude=("noisy_oracle.adapted_",),
        proof=(r"Each probe's logit is $ab\,W_{ij} \in [-\tfrac12, \tfrac12]$, so the true "
               r"weight lies in $[\tau_c, 1 - \tau_c]$ and the clipped inverse applies. The "
               r"error chain: $|\hat\alpha - \alpha^*| \le (2\bar W/\mu)\tau_f + "
               r"((\bar W + 2)/\mu)\tau_v \le \varepsilon_W/(10 \bar W d)$, then "
               r"$|W_{ij}\text{ error}| \le \varepsilon_W / d$, then the Frobenius and "
               r"$v$ bounds; each link is rendered below from the checked objects.",),
        coverage=r"the error chain is symbolic (nonnegative-coefficient certificates); the "
                 r"probe geometry (tokens in the unit ball, score gap $ab\,W_{ij} \in "
                 r"[-\tfrac12, \tfrac12]$) is checked on exact instances only, and that the "
                 r"learner asks $d + d^2$ queries is prose, checked on exact instances",
    ),
    Statement(
        "multihead_nonidentifiable", "paper", "Proposition",
        r"Multi-head attention is not identifiable",
        v1="Prop 7.1", v2="Prop 7.1",
        hypotheses=(r"$H \ge 2$ heads, $f^H(X) = \sum_h \alpha(X, W_h)^\top X v_h$",),
        statement=r"Distinct parameters give the same function: heads sharing $W_h = A$ with "
                  r"$v_h = \lambda_h b$, $\sum_h \lambda_h = 1$; head permutations; a head with "
                  r"$v_h = 0$ and any $W_h$.",
        labels=("multihead_nonidentifiable",),
        exclude=("multihead_nonidentifiable.orthogonal_heads",),
        proof=(r"Each family is an identity in symbolic tokens and parameters (below). For "
               r"$H = 2$, $d \le 2$ the derivation shows these are all the symmetries; its "
               r"one prose step is the linear independence of distinct exponentials "
               r"(Lindemann--Weierstrass).",),
        coverage=r"families symbolic; completeness for $H = 2$, $d \le 2$ rests on the "
                 r"Lindemann--Weierstrass theorem (prose)",
    ),
    Statement(
        "orthogonal_heads", "paper", "Remark",
        r"Heads in orthogonal subspaces are identifiable up to permutation",
        v1=r"\S7 (remark)",
        hypotheses=(r"heads act on mutually orthogonal subspaces with known bases",),
        queries=r"$\sum_h (d_h + d_h^2)$",
        statement=r"The single-head learner runs head by head and recovers every head.",
        uses=("single_head_exact", "multihead_nonidentifiable"),
        include=("multihead_nonidentifiable.orthogonal_heads",),
        coverage=r"exact instances only (three layouts of the head subspaces); no proof for "
                 r"every layout",
    ),
    # -- Part II: beyond the paper --------------------------------------------------------
    Statement(
        "single_head_biased", "ours", "Theorem",
        r"A head with biases, and real attention modules",
        credit="exactattn (extends Thm 4.1 to biased heads)",
        hypotheses=(r"scores $x_i^\top W x_N + c^\top x_i$ and values $v^\top x_i + \beta$, "
                    r"$v \ne 0$",),
        queries=r"$(d + 1)^2$",
        statement=r"The biased head's parameters $(W, c, v, \beta)$ are recovered exactly.",
        uses=("single_head_exact",), include=("single_head_exact.biased_",),
        coverage=r"exact instances only, but for the count's sum (symbolic); no symbolic "
                 r"derivation of the biased identities",
    ),
    Statement(
        "relu_ffn_exact", "ours", "Theorem",
        r"Exact learning of a bias-free two-layer ReLU network",
        credit=r"exactattn; the paper cites Milli et al.\ (2019) and Daniely \& Granot (2023), "
               r"whose hypotheses (independent columns, biases) do not fit",
        hypotheses=(r"$g(x) = w_o^\top \mathrm{ReLU}(A^\top x)$, no biases, rational answers",
                    r"assumption H (no hidden cancellation): no nonempty set $S$ of canonical "
                    r"terms and signs $s_k = \pm 1$ with $\sum_{k \in S} s_k \beta_k n_k = 0$",
                    r"resolution: on the learner's lines, kinks lie at least $2^{-R}(1 + |t|)$ "
                    r"apart, and the lines are generic (no two cone gradients differ by a "
                    r"vector orthogonal to $p$ and $q$; no kinks cancel in a straightness test; "
                    r"no gradient check's direction is orthogonal to a wrong gradient's error)",
                    r"random probes: a set of directions of angular measure $\ge 1/100$ on "
                    r"which $g$ differs from the result is missed with probability at most "
                    r"$L (1 - 1/100)^{P}$ ($P$ probes per round, $L$ rounds), over a seed "
                    r"chosen independently of $g$, the draws idealised as exact Gaussians"),
        statement=r"The learner returns a network with the same canonical form (hence the same "
                  r"function on $\mathbb{R}^d$); canonical forms decide equivalence exactly.",
        labels=("relu_ffn_exact",),
        coverage=r"exact on instances; genericity hypotheses named, not confirmable by queries",
    ),
    Statement(
        "low_rank_adaptive", "ours", "Theorem",
        r"Low-rank $W$ exactly at the floor $r(2d - r) + d$",
        credit="exactattn",
        hypotheses=(r"$v \ne 0$, $\operatorname{rank} W \le r$",),
        queries=r"$r(2d - r) + d$ (rank discovery: $+1$)",
        statement=r"Adaptive queries recover a rank-$r$ $W$ exactly with the floor number of "
                  r"queries.",
        uses=("low_rank_floor", "single_head_exact"), labels=("low_rank_adaptive",),
        coverage=r"exact instances only (and two float64 scale checks); no symbolic derivation "
                 r"but for the count's sum",
    ),
    Statement(
        "noisy_oracle_adapted", "ours", "Theorem",
        r"Approximate queries without the margin hypothesis",
        credit="exactattn",
        hypotheses=(_NORMS, r"no margin: adapted probes along $\hat v$"),
        statement=r"Adapted probes replace the margin $\mu$ by $\|\hat v\|$; the error bounds "
                  r"hold with the tolerances of the variant.",
        uses=("noisy_oracle", "clipped_inverse"), include=("noisy_oracle.adapted_",),
        coverage=r"the identities ($d = 3$) and inequalities are symbolic; the probes' bounds "
                 r"($\|u_l\| \le \tfrac23$, rows of $Z^{-1}$ of norm $\le \tfrac92$, "
                 r"$\|Z^{-1}\|_2 < K_d$) are checked on exact instances ($d \le 5$) only, and "
                 r"the standard norm inequalities used are prose",
    ),
    Statement(
        "relu_hidden_cancellation", "ours", "Proposition",
        r"No learner sees a hidden ReLU cancellation",
        credit="exactattn",
        hypotheses=(r"bias-free two-layer ReLU networks $g_\theta(x) = \sum_k w_k "
                    r"\mathrm{ReLU}(a_k^\top x)$",
                    r"model of computation: any learner, adaptive or not, that sees only "
                    r"answers $g(X)$"),
        statement=r"Two parameter sets that differ by cancelling units (a unit and its negated "
                  r"copy; a pair $\pm a$ split into pairs $\pm b$, $\pm(a - b)$) give the same "
                  r"answer to every query, so no learner recovers more than the function, i.e. "
                  r"its canonical form.",
        uses=("relu_ffn_exact",), include=("relu_ffn_exact.hidden_cancellation",),
        proof=(r"Equal functions give equal transcripts for every learner, whatever it "
               r"queries (prose); the function identities are checked below by sign cases. "
               r"Nearly hidden cancellations are as bad: $g = 0$ and $g_\varepsilon = "
               r"|n^\top x| + |(n + \varepsilon u)^\top x| - |(2n + \varepsilon u)^\top x|$ "
               r"differ only on a wedge that shrinks to the empty set as "
               r"$\varepsilon \to 0$, so finitely many queries miss it with probability "
               r"$\to 1$: hence assumption H of the FFN learner.",),
        coverage=r"the function identities are symbolic; that equal functions give every "
                 r"learner equal transcripts, and the nearly hidden case, are prose",
    ),
    Statement(
        "membership_queries", "ours", "Theorem",
        r"A single head from membership (label) queries",
        credit=r"exactattn; cf.\ the v2 appendix (reported) on membership queries, whose "
               r"statements are unknown to us",
        hypotheses=(r"label queries return only the sign of $f(X)$", r"$v \ne 0$",
                    r"exact route: every $W_{ij}$ and every ratio $v_i / v_p$ is a rational "
                    r"with $|\cdot| \le M$ and denominator at most $Q$ (named; no label can "
                    r"confirm it)",
                    r"interval route: only $|W_{ij}|, |v_i / v_p| \le M$"),
        queries=r"exactly $d + (n_v - 1) L(M) + d^2 L(2M)$ with $L(w) = \lfloor \log_2(512 w "
                r"Q^2 / 511) \rfloor + 1$; any learner needs $\lceil (d^2 + d - 1) \log_3 "
                r"F(M, Q) \rceil$",
        statement=r"$W$ is recovered exactly and $v$ up to a positive scale (as $v / |v_p|$); "
                  r"labels are invariant under positive scaling of $v$, so nothing more is "
                  r"identifiable. Without a height bound every entry lies in a returned "
                  r"interval of width at most $\varepsilon$ (over EXP labels an enclosure; "
                  r"over float64 labels given a first-order model of the float error).",
        uses=("single_head_exact",), labels=("membership_queries",),
        proof=(r"$f_{W,\lambda v} = \lambda f_{W,v}$, so labels cannot see a positive scale; "
               r"length-1 labels $\operatorname{sign}(v^\top x)$ fix the ray of $v$ (the "
               r"witness $x = (v^\top v')v - |v|^2 v'$ separates two rays). For two tokens, "
               r"$(1 + e^g) f = x^\top v + e^g y^\top v$ with $g = (y - x)^\top W x$: when "
               r"$x^\top v > 0 > y^\top v$ the label says whether "
               r"$g < \log(-x^\top v / y^\top v)$, and the learner chooses that ratio, so "
               r"every score gap, hence $W$, is determined when $v \ne 0$. The learner "
               r"bisects each entry with cuts within $\eta = 1/(1024 Q^2)$ of the middle; an "
               r"interval narrower than $1/Q^2$ holds at most one rational of denominator "
               r"$\le Q$, found by continued fractions. The lower bound counts "
               r"$F(M,Q)^{d^2 + d - 1}$ heads with distinct labels against $3^q$ leaves.",),
        coverage=r"the denominator bound is a named hypothesis; the lower bound's count of "
                 r"decision-tree leaves is prose",
    ),
    Statement(
        "multihead_canonical", "ours", "Theorem",
        r"Exact canonical multi-head attention",
        credit=r"canonical form and copy-count queries: arXiv 2608.03294 (Kim, Kim and Guo, "
               r"2026); the learner with fewer queries than their $4Hd^2 - 2H + 1$: exactattn",
        hypotheses=(r"$H$ known (an upper bound)", r"rational parameters"),
        queries=r"$1 + 2Hd + [H \ge 2](d-1) + (d-1)(Hd + (H-1)^2)$",
        statement=r"The learner returns the canonical form of the heads; equivalence of two "
                  r"parameter sets is decided exactly, with witnesses.",
        uses=("multihead_nonidentifiable", "single_head_exact"),
        labels=("multihead_canonical",),
        coverage=r"exact instances only, but for the counts' sums (symbolic); the float "
                 r"learner's claims are float64 with tolerances",
    ),
)


def by_key() -> dict[str, Statement]:
    """The statements by key (registry labels without a statement get one, in Part II)."""
    from .claims import RESULTS, labels

    table = {s.key: s for s in STATEMENTS}
    covered = {lab for s in STATEMENTS for lab in s.labels}
    for label in labels():
        if label not in covered and label not in table:
            r = RESULTS[label]
            table[label] = Statement(label, "ours", "Theorem", r.title, plain=label,
                                     credit=f"see the registry ({r.paper_ref})",
                                     labels=(label,),
                                     coverage="no blueprint statement yet: claims only")
    return table


def statement_of(claim_id: str, table: dict[str, Statement] | None = None) -> Statement:
    """The statement a claim id belongs to: the longest ``include`` prefix, else its label.

    ``table``: :func:`by_key`, when the caller already built it (one per claim otherwise).
    """
    table = by_key() if table is None else table
    best: tuple[int, Statement] | None = None
    for s in table.values():
        for prefix in s.include:
            if claim_id.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), s)
    if best is not None:
        return best[1]
    label = claim_id.split(".", 1)[0]
    for s in table.values():
        if label in s.labels and not any(claim_id.startswith(p) for p in s.exclude):
            return s
    raise KeyError(f"claim {claim_id}: no statement of the blueprint covers it")


def claims_of(statement: Statement, table: dict[str, Statement] | None = None) -> list[Any]:
    """The registered claims that check ``statement`` (routed by :func:`statement_of` in
    ``table``, default :func:`by_key`; a claim no statement of the table covers is skipped)."""
    from .claims import REGISTRY

    table = by_key() if table is None else table
    out = []
    for c in REGISTRY:
        try:
            if statement_of(c.id, table).key == statement.key:
                out.append(c)
        except KeyError:  # a claim of no statement of this table
            continue
    return out


#: the step statuses of recorded evidence that are machine checks for every value (in the
#: dimension printed with them): what a "checked" statement's evidence must consist of
_FOR_ALL = frozenset({"symbolic", "interval"})


def coverage_problems(results: Sequence[Any], table: dict[str, Statement] | None = None
                      ) -> list[str]:
    """Why a statement with ``coverage="checked"`` is not, one line each (empty: none).

    ``results``: the :class:`~exactattn.claims.ClaimResult` of a run (``run_claims``).
    A "checked" statement needs registered claims routed to it, every one of them run
    and holding, none resting on prose or floats (its route), and at least one that
    recorded evidence (:mod:`exactattn.symbolic.recorder`: the companion prints the
    objects the check compared, not a copy typed beside them) whose every step is
    symbolic or interval.

    >>> fake = Statement("fake", "paper", "Theorem", "t", labels=("no_such_label",),
    ...                  coverage="checked")
    >>> coverage_problems([], {"fake": fake})
    ['fake: coverage "checked" but no registered claim checks it']
    """
    from .symbolic.recorder import status_of_step, steps_of

    table = by_key() if table is None else table
    by_id = {r.claim.id: r for r in results}
    out = []
    for s in table.values():
        if s.coverage != "checked":
            continue
        claims = claims_of(s, table)
        if not claims:
            out.append(f'{s.key}: coverage "checked" but no registered claim checks it')
            continue
        for c in claims:
            if c.id not in by_id:
                out.append(f"{s.key}: claim {c.id} did not run")
            elif not by_id[c.id].holds:
                out.append(f"{s.key}: claim {c.id} fails")
            if "prose" in c.route or "float" in c.route:
                out.append(f"{s.key}: claim {c.id} rests on {c.route}")
        evidence = [e for c in claims if c.id in by_id for e in by_id[c.id].evidence]
        if not any(all(status_of_step(st) in _FOR_ALL for st in steps_of(e.value))
                   for e in evidence):
            out.append(f"{s.key}: no claim recorded symbolic or interval evidence (the "
                       "printed steps would not be the checked objects)")
    return out
