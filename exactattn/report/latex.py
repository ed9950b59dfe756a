"""The LaTeX proof companion: a blueprint generated from the registry and its checks.

``write_companion(out_dir, results)`` writes ``main.tex`` (the template,
shipped as package data), ``front.tex`` (coverage table, dependency graph,
definitions), ``all.tex`` (Part I, the paper; Part II, beyond the paper;
the appendix) and one ``<key>.tex`` per statement of
:mod:`exactattn.blueprint`. Each statement is a theorem environment with its
hypotheses, constants, query count and paper reference, the statements it
uses, its claims and the code that checks them; its proof prints the prose
(marked as not machine-checked) and, for every claim, the evidence its check
recorded (:mod:`exactattn.symbolic.recorder`): the very step objects that
were verified, each with its status. A step that did not verify is printed
NOT VERIFIED, and :func:`not_verified` lists it (``exactattn latex`` then
exits 1).
"""

from __future__ import annotations

import platform
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ..blueprint import PARTS, Statement, by_key, claims_of, coverage_problems, statement_of
from ..claims import REGISTRY, Claim, ClaimResult, run_claims

__all__ = ["write_companion", "label_section", "statement_section",
           "statement_status", "coverage_rows", "not_verified", "inline_math", "template",
           "title_tex"]

KIND_ENV = {"Theorem": "theorem", "Lemma": "lemma", "Proposition": "proposition",
            "Remark": "remark"}
#: statement status -> colour of its node in the dependency graph
STATUS_COLOUR = {"checked": "ForestGreen!35", "partly": "Goldenrod!45", "prose": "Gray!25",
                 "failed": "red!45", "not run": "white"}


#: characters outside what pdflatex's utf8 input and T1 fonts typeset, as LaTeX (maths
#: symbols and Greek letters that a claim title or detail may carry)
_UNICODE = {"≤": r"$\le$", "≥": r"$\ge$", "≠": r"$\ne$", "±": r"$\pm$", "×": r"$\times$",
            "·": r"$\cdot$", "→": r"$\to$", "←": r"$\leftarrow$", "⇒": r"$\Rightarrow$",
            "∈": r"$\in$", "∉": r"$\notin$", "∞": r"$\infty$", "√": r"$\surd$",
            "∑": r"$\sum$", "∏": r"$\prod$", "‖": r"$\|$", "≈": r"$\approx$",
            "−": r"$-$", "∘": r"$\circ$", "⊆": r"$\subseteq$", "∪": r"$\cup$",
            "∩": r"$\cap$", "∅": r"$\emptyset$", "ϵ": r"$\epsilon$", "ϕ": r"$\phi$",
            # U+03B5 and U+03C6 are the curly forms, TeX's \varepsilon and \varphi
            **{chr(0x3B1 + k): f"$\\{name}$" for k, name in enumerate(
                "alpha beta gamma delta varepsilon zeta eta theta iota kappa lambda mu nu xi o pi "
                "rho varsigma sigma tau upsilon varphi chi psi omega".split()) if name != "o"},
            **{c: f"$\\{name}$" for c, name in zip("ΓΔΘΛΞΠΣΦΨΩ", (
                "Gamma Delta Theta Lambda Xi Pi Sigma Phi Psi Omega".split()), strict=True)}}
#: non-ASCII characters the utf8 input of pdflatex sets in T1 (Latin-1 letters and signs,
#: typographic quotes and dashes); any other is printed as its code point, never passed raw
_TEXT_SAFE = frozenset(chr(c) for c in range(0xA1, 0x100) if c != 0xAD) | set("‘’“”–—…•€")


def _escape(text: str, *, unicode_maths: bool = True) -> str:
    r"""Plain text for LaTeX text mode.

    Every character is either typeset by pdflatex's utf8 input in T1 or replaced:
    the LaTeX specials are escaped, maths symbols and Greek letters become their
    commands, and any other character prints as its code point (a PDF build never
    fails on a title or a detail).

    >>> print(_escape("50% & #1 of {x_1} ~ 2^3 \\ a ≤ α, 中"))
    50\% \& \#1 of \{x\_1\} \~{} 2\^{}3 \textbackslash{} a $\le$ $\alpha$, \texttt{[U+4E2D]}
    """
    out = text.replace("\\", "\x00")
    for a, b in (("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"), ("_", r"\_"),
                 ("{", r"\{"), ("}", r"\}"), ("^", r"\^{}"), ("~", r"\~{}")):
        out = out.replace(a, b)
    out = out.replace("<=", r"$\le$").replace(">=", r"$\ge$").replace("\x00", r"\textbackslash{}")
    out = out.replace("–", "--")
    if not unicode_maths:
        return out
    return "".join(ch if ch.isascii() or ch in _TEXT_SAFE
                   else _UNICODE.get(ch, f"\\texttt{{[U+{ord(ch):04X}]}}") for ch in out)


def _plain(text: str) -> str:
    """Text for a PDF bookmark: escaped, no maths (hyperref writes its Unicode itself)."""
    return _escape(text.replace("<=", "≤").replace(">=", "≥"), unicode_maths=False)


def _tt(text: str) -> str:
    """Code in typewriter, breakable after dots and underscores."""
    return r"\texttt{" + _escape(text).replace(".", r".\allowbreak{}").replace(
        r"\_", r"\_\allowbreak{}") + "}"


# -- titles: one plain-text source, maths in the LaTeX --------------------------------------
_GREEK = frozenset({"alpha", "beta", "gamma", "delta", "epsilon", "eta", "theta", "kappa",
                    "lambda", "mu", "nu", "pi", "rho", "sigma", "tau", "phi", "omega"})
#: function names, maths only before "(" or an identifier ("rank W"); else English
_FUNCTIONS = {"rank": r"\operatorname{rank}", "logit": r"\operatorname{logit}",
              "clip": r"\operatorname{clip}", "softmax": r"\operatorname{softmax}",
              "min": r"\min", "max": r"\max", "det": r"\det", "exp": r"\exp", "log": r"\log",
              "sigma": r"\sigma", "ReLU": r"\mathrm{ReLU}"}
_OPERATORS = {"=": "=", "<=": r"\le", ">=": r"\ge", "!=": r"\ne", "+": "+", "-": "-",
              "*": r"\cdot", "/": "/", ".": r"\cdot", "||": r"\|", "|": "|", "<": "<", ">": ">",
              # a brace of the title is a visible brace, never a TeX group: a run of maths
              # may end between a "{" and its "}" ("b}" alone, "{a}" around a word)
              "{": r"\{", "}": r"\}"}
#: a subscript and a superscript: braces only in pairs (a stray brace is a character)
_SUB = r"_(?:\{[A-Za-z0-9]+\}|[A-Za-z0-9]+)"
_SUP = r"\^(?:\{-?[A-Za-z0-9]+\}|-?[A-Za-z0-9]+)"
_TITLE_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<op><=|>=|!=|\|\|)
  | (?P<sci>\d+e-\d+)
  | (?P<frac>\d+/\d+)
  | (?P<hyph>[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+)
  | (?P<num>\d+(?:\.\d+)?[A-Za-z]?(?![A-Za-z0-9]))
  | (?P<word>[A-Za-z][A-Za-z0-9]*(?:{sub}|{sup})*)
  | (?P<sup>{sup})
  | (?P<char>.)
""".replace("{sub}", _SUB).replace("{sup}", _SUP), re.VERBOSE)


def _identifier(word: str) -> str | None:
    """LaTeX of a maths identifier (W, W_ij, A^T, tau_c, e_d^T), or None for an English word."""
    m = re.fullmatch(rf"([A-Za-z][A-Za-z0-9]*)((?:{_SUB}|{_SUP})*)", word)
    if m is None:
        return None
    base, rest = m.groups()
    if base in _GREEK:
        base = "\\" + {"epsilon": "varepsilon"}.get(base, base)
    elif len(base) != 1:
        return None
    out = base
    for mark, body in re.findall(r"([_^])\{?(-?[A-Za-z0-9]+)\}?", rest):
        body = r"\top" if (mark, body) == ("^", "T") else body
        out += f"{mark}{{{body}}}" if len(body) > 1 and not body.startswith("\\") else mark + body
    return out


def title_tex(title: str) -> str:
    r"""A plain-text claim title with its maths typeset: the one source is the plain title.

    ``exactattn verify`` and ``exactattn claims`` print the title as registered; the
    companion prints this conversion. Maths is recognised conservatively: identifiers
    (one letter or a Greek name, with ``_ij``, ``^T``), numbers and operators next to them,
    brackets whose content is all maths, functions before an argument, ``x squared``;
    a leading "A" and an "a" before an English word are articles. Everything else is
    text, escaped.

    >>> title_tex("Exact recovery of (W, v) with exactly d + d squared queries")
    'Exact recovery of $(W, v)$ with exactly $d + d^2$ queries'
    >>> title_tex("A W of rank larger than r is detected")
    'A $W$ of rank larger than $r$ is detected'
    >>> print(title_tex("W = (W B)(A^T W B)^{-1}(A^T W) when det(A^T W B) != 0"))
    $W = (W B)(A^\top W B)^{-1}(A^\top W)$ when $\det(A^\top W B) \ne 0$
    >>> print(title_tex("score gap a b W_ij in [-1/2, 1/2] (exact, EXP), 1% by 1e-6"))
    score gap $a b W_{ij}$ in $[-1/2, 1/2]$ (exact, EXP), 1\% by $10^{-6}$
    """
    toks = [(m.lastgroup or "char", m.group()) for m in _TITLE_TOKEN.finditer(title)]
    n = len(toks)
    kind: list[str] = []  # per token: "m" (maths), "t" (text), "s" (space), "?" (undecided)
    for k, (g, text) in enumerate(toks):
        if g == "space":
            kind.append("s")
        elif g in ("sup", "sci", "frac"):
            kind.append("m")
        elif g == "word" and k and toks[k - 1][1] == "'":
            kind.append("t")  # the s of "paper's"
        elif g == "word":
            if text in _FUNCTIONS or text == "squared" or text in ("a", "A"):
                kind.append("?")
            else:
                kind.append("m" if _identifier(text) is not None else "t")
        elif g in ("op", "num") or text in _OPERATORS or text in "([{}])":
            kind.append("?")
        else:
            kind.append("t")

    def nxt(k: int, step: int = 1) -> int:
        j = k + step
        while 0 <= j < n and kind[j] == "s":
            j += step
        return j

    # brackets: a pair is maths when everything between is maths-like (no English word)
    stack: list[int] = []
    pairs: dict[int, int] = {}
    for k, (_, text) in enumerate(toks):
        if text in "([{":
            stack.append(k)
        elif text in ")]}" and stack:
            pairs[stack.pop()] = k
    for a, b in sorted(pairs.items(), key=lambda ab: ab[0] - ab[1]):  # innermost first
        inner = range(a + 1, b)
        maths = b > a + 1 and all(kind[j] != "t" or toks[j][1] == "," for j in inner)
        for j in (a, b, *[j for j in inner if toks[j][1] == ","]):
            kind[j] = "m" if maths else "t"
    for k, (g, text) in enumerate(toks):  # words that are maths only in context
        if kind[k] != "?" or g != "word":
            continue
        j = nxt(k)
        after = kind[j] if j < n else "t"
        if text in ("a", "A"):  # an article unless an identifier follows ("a b W_ij")
            ident = after == "m" and toks[j][0] == "word" and toks[j][1] not in ("a", "A")
            kind[k] = "m" if k and ident else "t"
        elif text == "squared":
            kind[k] = "m" if k and kind[nxt(k, -1)] == "m" else "t"
        elif j < n and (toks[k + 1][1] == "(" or (after == "m" and toks[j][0] == "word")):
            kind[k] = "m"
        else:
            kind[k] = "t"
    for _ in range(2):  # numbers and operators join the maths beside them
        for k in range(n):
            if kind[k] == "?":
                left, right = nxt(k, -1), nxt(k)
                near = (left >= 0 and kind[left] == "m") or (right < n and kind[right] == "m")
                if toks[k][1] == "." and not (left == k - 2 and right == k + 2):
                    near = False  # a full stop, not a product
                kind[k] = "m" if near else kind[k]
    for k in range(n - 2):  # "<= 1": a relation and a number, without an identifier
        if toks[k][1] in ("=", "<=", ">=", "!=") and kind[k] == "?" \
                and kind[k + 1] == "s" and toks[k + 2][0] == "num":
            kind[k] = kind[k + 2] = "m"
    kind = ["t" if c == "?" else c for c in kind]

    out: list[str] = []
    run: list[str] = []
    pending = ""  # spaces after a maths token, placed once the next token is known
    for k, (g, text) in enumerate(toks):
        if kind[k] == "s":
            if run:
                pending += " "
            else:
                out.append(" ")
            continue
        if kind[k] == "m":
            if g == "word" and text == "squared":
                run.append("^2")
            elif g == "word" and text in _FUNCTIONS:
                run.append(pending + _FUNCTIONS[text])
            elif g == "word":
                run.append(pending + (_identifier(text) or text))
            elif g == "sup":  # rebuilt, so that a brace the title left open is not copied
                body = text.lstrip("^").strip("{}")
                body = r"\top" if body == "T" else body
                run.append(pending + (f"^{{{body}}}" if len(body) > 1 else "^" + body))
            elif g == "sci":
                mant, exp = text.split("e")
                run.append(pending + ("" if mant == "1" else f"{mant} \\cdot ") + f"10^{{{exp}}}")
            else:
                run.append(pending + _OPERATORS.get(text, text))
            pending = ""
            continue
        if run:
            out.append("$" + "".join(run) + "$" + pending)
            run, pending = [], ""
        if g == "hyph":  # rank-r, L-Lipschitz: one-letter parts are maths
            out.append("-".join(f"${p}$" if len(p) == 1 and p.isalpha() and p not in "aA"
                                else _escape(p)
                                for p in text.split("-")))
        else:
            out.append(_escape(text))
    if run:
        out.append("$" + "".join(run) + "$" + pending)
    return "".join(out)


def template() -> str:
    """The text of ``main.tex``, read from the package data."""
    return (resources.files("exactattn.report") / "templates" / "main.tex").read_text("utf-8")


def inline_math(statement: str) -> str:
    """A LaTeX maths statement as inline text: top-level ``\\text{...}`` become text.

    Inline maths breaks at relations and operators, and the text parts break
    between words, so a long statement wraps instead of running off the page.

    >>> print(inline_math(r"v = 0 \\implies \\text{the learner raises } E"))
    $v = 0 \\implies$ the learner raises $ E$
    """
    out, k, depth, left = ["$"], 0, 0, 0
    while k < len(statement):
        if statement.startswith(r"\left", k) and not statement[k + 5:k + 6].isalpha():
            left += 1
        elif statement.startswith(r"\right", k) and not statement[k + 6:k + 7].isalpha():
            left -= 1
        if statement.startswith(r"\text{", k) and depth == 0 and left == 0:
            j, level = k + 6, 1
            while j < len(statement) and level:
                level += {"{": 1, "}": -1}.get(statement[j], 0)
                j += 1
            spaced = bool(out) and out[-1] == " "
            while out and out[-1] == " ":
                out.pop()
            out.append("$" + (" " if spaced else "") + statement[k + 6:j - 1] + "$")
            k = j
            continue
        ch = statement[k]
        if ch == "\\" and k + 1 < len(statement):
            out.append(statement[k:k + 2])
            k += 2
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        out.append(ch)
        k += 1
    out.append("$")
    text = "".join(out)
    text = re.sub(r"\$(\s*(\\[ ,;:!]|\\quad|\\qquad)?\s*)\$", r"\1", text)
    return re.sub(r"\$\s*([,.;:]?)\s*\$", r"\1", text).replace("$ ", "$ ").strip()


# -- steps ------------------------------------------------------------------------------
def _badge(status: str) -> str:
    from ..symbolic.steps import NOT_VERIFIED

    if status == NOT_VERIFIED:
        return r"\notverified"
    if status == "prose":
        return r"\prosestatus"
    return rf"\stepstatus{{{_escape(status)}}}"


def _align(rows: Sequence[str]) -> str:
    return "\\begin{align*}\n" + " \\\\\n".join(rows) + "\n\\end{align*}"


def _render_step(k: int, step: Any) -> str:
    from ..symbolic.steps import status_of_step, step_rows

    status = status_of_step(step)
    extra = ""
    grid = getattr(step, "grid_points", 0)
    if status == "exact instances" and grid:
        extra = f" ({grid} exact rational points, no certificate)"
    head = f"\\par\\noindent {_badge(status)} Step {k}{extra}: {getattr(step, 'why', '')}"
    if hasattr(step, "latex") and not hasattr(step, "lhs"):
        return head + "\n" + _align([step.latex()])
    return head + "\n" + _align(step_rows(step))


def render_evidence(evidence: Sequence[Any]) -> str:
    """The recorded evidence of one claim: each derivation's steps, from the checked objects.

    Badges follow :func:`~exactattn.symbolic.recorder.status_of_step`, the rule
    by which :attr:`~exactattn.claims.ClaimResult.unverified` fails a claim.
    """
    from ..symbolic.recorder import status_of_step, steps_of

    parts = []
    for rec in evidence:
        value = rec.value
        call = _tt(f"{rec.function.removeprefix('exactattn.')}({rec.arguments})")
        steps = steps_of(value)
        if hasattr(value, "pgfplots"):  # a measured curve (symbolic.measured): a figure
            parts.append(f"\\par\\noindent {_badge(status_of_step(value))} Evidence from "
                         f"{call}, {value.instances} runs, drawn in the figure.\n"
                         f"{value.pgfplots()}")
        elif hasattr(value, "cases"):  # a case derivation (multihead): its own table
            parts.append(f"\\par\\noindent {_badge(status_of_step(value))} Evidence from "
                         f"{call}:\n{value.latex()}")
        elif steps[0] is not value:
            parts.append(f"\\par\\noindent Evidence from {call}, {len(steps)} steps:")
            parts += [_render_step(k + 1, s) for k, s in enumerate(steps)]
        else:  # a finding without steps
            detail = _escape(str(getattr(value, "detail", "")))
            parts.append(f"\\par\\noindent {_badge(status_of_step(value))} Evidence from "
                         f"{call}: {detail}.")
    return "\n".join(parts)


# -- claims and statements -------------------------------------------------------------------
#: the words of a claim's route -> the step statuses they name
_ROUTE_STATUS = (("symbolic", "symbolic"), ("interval", "interval"), ("exact", "exact instances"),
                 ("float", "float"), ("prose", "prose"))


def _claim_status(c: Claim, result: ClaimResult | None) -> str:
    """Every status the claim's route names ('symbolic + exact instances'), not only the
    strongest: a symbolic identity with the inequality checked on instances says both."""
    from ..symbolic.steps import NOT_VERIFIED

    if result is None:
        return "not run"
    if not result.holds:
        return NOT_VERIFIED
    route = c.route.lower()
    return " + ".join(st for word, st in _ROUTE_STATUS if word in route) or "exact instances"


def _claim_block(c: Claim, result: ClaimResult | None) -> str:
    badge = _badge(_claim_status(c, result))
    code = f"{c.check.__module__}.{c.check.__qualname__}"
    lines = [f"\\par\\medskip\\noindent\\textbf{{Claim {_tt(c.id)}.}}\\label{{{c.id}}} {badge} "
             f"{title_tex(c.title)}.\\\\\n{inline_math(c.statement)}",
             f"\\par\\noindent\\emph{{Route:}} {_escape(c.route)}; \\emph{{check:}} {_tt(code)}."]
    if result is not None:
        o = result.outcome
        verdict = "holds" if result.holds else "FAILS"
        lines.append(f"\\par\\noindent\\emph{{Result:}} {verdict} on {o.instances} cases; "
                     f"{_escape(o.detail)}.")
        for line in result.unverified:
            lines.append(f"\\par\\noindent\\notverified\\ {_escape(line)}")
        if result.evidence:
            lines.append(render_evidence(result.evidence))
    return "\n".join(lines) + "\n"


def statement_status(statement: Statement, results: Sequence[ClaimResult]) -> str:
    """checked / partly / prose / failed / not run, from the claims' results."""
    claims = claims_of(statement)
    if not claims:
        return "prose"
    by_id = {r.claim.id: r for r in results}
    if any(c.id in by_id and not by_id[c.id].holds for c in claims):
        return "failed"
    if any(c.id not in by_id for c in claims):
        return "not run"
    return "partly" if statement.coverage != "checked" or _problems(statement, results) \
        else "checked"


def _problems(statement: Statement, results: Sequence[ClaimResult]) -> list[str]:
    """Why a statement whose coverage says "checked" is not (:func:`coverage_problems`)."""
    table = by_key()
    table[statement.key] = statement
    prefix = f"{statement.key}: "
    return [p.removeprefix(prefix) for p in coverage_problems(results, table)
            if p.startswith(prefix)]


def _why(statement: Statement, status: str, results: Sequence[ClaimResult]) -> str:
    """The coverage column and the status note: the statement's own reason, or, for a
    "checked" that its claims do not earn, what :func:`coverage_problems` found."""
    if statement.coverage != "checked":
        return statement.coverage
    if status == "partly":
        return "; ".join(_escape(p) for p in _problems(statement, results))
    return ""


def _ref(key: str) -> str:
    return f"\\hyperref[{key}]{{\\ref*{{{key}}}~{_tt(key)}}}"


def statement_section(statement: Statement, results: Sequence[ClaimResult] = ()) -> str:
    """The chapter of one statement: theorem environment, uses, claims, proof with evidence."""
    by_id = {r.claim.id: r for r in results}
    env = KIND_ENV.get(statement.kind, "theorem")
    ref = f"paper: {statement.paper_ref}" if statement.paper_ref else "exactattn"
    claims = claims_of(statement)
    status = statement_status(statement, results)
    out = [f"\\chapter{{\\texorpdfstring{{{statement.title}}}{{{_plain(statement.bookmark)}}}}}"
           f"\\label{{{statement.key}}}",
           f"\\begin{{{env}}}[{ref}]\\label{{thm:{statement.key}}}"]
    if statement.hypotheses:
        out.append(r"\textbf{Hypotheses.}\begin{itemize}\setlength{\itemsep}{0pt}"
                   + "".join(f"\n\\item {h}" for h in statement.hypotheses)
                   + "\n\\end{itemize}")
    if statement.constants:
        out.append(r"\par\textbf{Constants.} " + "; ".join(statement.constants) + ".")
    if statement.queries:
        out.append(r"\par\textbf{Queries.} " + statement.queries + ".")
    out.append(r"\par " + (statement.statement or r"See the claims below."))
    out.append(f"\\end{{{env}}}")
    if statement.credit:
        out.append(r"\par\noindent\textbf{Credit:} " + statement.credit + ".")
    out.append(r"\uses{" + (", ".join(_ref(u) for u in statement.uses) or "nothing else")
               + ".}")
    codes = sorted({c.check.__module__ for c in claims})
    out.append(r"\checkedby{" + (", ".join(_tt(c.id) for c in claims) or "no claim (prose)")
               + (f" in {', '.join(_tt(m) for m in codes)}" if codes else "") + ".}")
    why = _why(statement, status, results)
    out.append(f"\\par\\noindent\\textbf{{Status:}} {status}" + (f" ({why})" if why else "") + ".")
    out.append(r"\begin{proof}[Proof, step by step]\leavevmode")
    out += [f"\\par\\noindent\\prosestatus\\ {p}" for p in statement.proof]
    for c in claims:
        out.append(_claim_block(c, by_id.get(c.id)))
    if statement.conclusion:
        out.append(f"\\par\\medskip\\noindent\\prosestatus\\ \\textbf{{Conclusion.}} "
                   f"{statement.conclusion}")
    if not claims and not statement.proof:
        out.append(r"No step is machine-checked yet.")
    out.append(r"\end{proof}")
    return "\n".join(out) + "\n"


def label_section(label: str, results: Sequence[ClaimResult] | None = None) -> str:
    """The sections of every statement that a registry label's claims check.

    Without ``results``, the claims of ``label`` are run here, so the
    printed evidence is what the checks built.
    """
    claims = [c for c in REGISTRY if c.label == label]
    if not claims:
        raise KeyError(f"no claims registered under {label!r}")
    if results is None:
        results = run_claims([label])
    keys = list(dict.fromkeys(statement_of(c.id).key for c in claims))
    table = by_key()
    return "\n".join(statement_section(table[k], results) for k in keys)


# -- front matter: coverage, graph, definitions --------------------------------------------
def coverage_rows(results: Sequence[ClaimResult]) -> list[tuple[Statement, str]]:
    """(statement, status) for every statement of Part I (the paper)."""
    return [(s, statement_status(s, results)) for s in by_key().values() if s.part == "paper"]


def _coverage_table(results: Sequence[ClaimResult]) -> str:
    rows = coverage_rows(results)
    lines = [r"\section*{Coverage of the paper}\addcontentsline{toc}{section}{Coverage}",
             r"Every checkable statement of the paper is a node of the blueprint. "
             r"\emph{checked}: every claim holds and every step of the proof has a machine "
             r"check (a symbolic step in the dimension printed with it); \emph{partly}: the "
             r"claims hold but a step is prose or the statement is checked on exact instances "
             r"only (said why); \emph{prose}: no machine check yet.",
             r"\begin{longtable}{@{}p{0.34\linewidth}p{0.16\linewidth}p{0.1\linewidth}"
             r"p{0.32\linewidth}@{}}", r"\toprule statement & paper & status & why \\ \midrule"]
    for s, status in rows:
        why = _why(s, status, results) if status != "prose" else s.coverage
        if status == "prose" and s.coverage == "checked":
            why = "no claim registered"
        lines.append(f"{_ref(s.key)} & {s.paper_ref} & {status} & {why} \\\\")
    lines += [r"\bottomrule", r"\end{longtable}", f"Totals: {_totals(rows)} "
              f"(of {len(rows)} statements of the paper)."]
    return "\n".join(lines)


def _totals(rows: Sequence[tuple[Statement, str]]) -> str:
    """'2 checked, 7 partly': how many statements have each status (of STATUS_COLOUR)."""
    counts = {k: sum(1 for _, st in rows if st == k) for k in STATUS_COLOUR}
    return ", ".join(f"{v} {k}" for k, v in counts.items() if v)


def _depths(table: dict[str, Statement]) -> dict[str, int]:
    depth: dict[str, int] = {}

    def of(key: str, seen: tuple[str, ...] = ()) -> int:
        if key in depth:
            return depth[key]
        if key in seen:
            raise ValueError(f"the uses of {key} form a cycle: {' -> '.join(seen)}")
        uses = [u for u in table[key].uses if u in table]
        depth[key] = 0 if not uses else 1 + max(of(u, (*seen, key)) for u in uses)
        return depth[key]

    for key in table:
        of(key)
    return depth


def dependency_graph(results: Sequence[ClaimResult]) -> str:
    """A TikZ figure: one node per statement, coloured by status, linked to its chapter."""
    table = by_key()
    depth = _depths(table)
    per_row = 4
    rows: list[list[str]] = []
    x_of: dict[str, float] = {}
    for level in range(max(depth.values()) + 1):
        keys = [k for k in table if depth[k] == level]
        if level:  # under the statements they use (barycentre), to keep arrows short
            keys.sort(key=lambda k: sum(x_of[u] for u in table[k].uses if u in x_of)
                      / max(1, sum(1 for u in table[k].uses if u in x_of)))
        for i in range(0, len(keys), per_row):
            row = keys[i:i + per_row]
            for x, key in enumerate(row):
                x_of[key] = x + (per_row - len(row)) / 2
            rows.append(row)
    lines = [r"\begin{figure}[ht]\centering",
             r"\begin{tikzpicture}[x=4cm,y=1.5cm,every node/.style={draw,rounded corners,"
             r"fill=white,font=\scriptsize,align=center,text width=3.4cm,minimum height=0.8cm}]"]
    for y, keys in enumerate(rows):
        for key in keys:
            s = table[key]
            colour = STATUS_COLOUR[statement_status(s, results)]
            part = "I" if s.part == "paper" else "II"
            name = _escape(key).replace(r"\_", r"\_\allowbreak{}")
            lines.append(f"\\node[fill={colour}] ({key}) at ({x_of[key]:.2f},{-y:.2f}) "
                         f"{{\\hyperref[{key}]{{{part}.\\ref*{{{key}}} {name}}}}};")
    lines.append(r"\begin{pgfonlayer}{background}")  # arrows pass behind the boxes
    for key, s in table.items():
        for u in s.uses:
            if u in table:
                lines.append(f"\\draw[-{{Stealth}},gray] ({u}) -- ({key});")
    lines.append(r"\end{pgfonlayer}")
    legend = ", ".join(f"\\fcolorbox{{black}}{{{c}}}{{\\strut}}~{k}"
                       for k, c in STATUS_COLOUR.items())
    lines += [r"\end{tikzpicture}",
              r"\caption{The statements and what they use (arrow: used by), coloured by "
              f"status: {legend}. Each node links to its chapter; I = the paper, II = beyond "
              r"the paper.}\label{fig:dependencies}", r"\end{figure}"]
    return "\n".join(lines)


def _definitions() -> str:
    from ..learners.recovery import STATUSES
    from ..symbolic.steps import STEP_STATUSES

    statuses = "\n".join(f"\\item[{_tt(k)}] {_escape(v)}." for k, v in STATUSES.items())
    steps = "\n".join(f"\\item[{_escape(k)}] {_escape(v)}." for k, v in STEP_STATUSES.items())
    return "\n".join([
        r"\chapter{Definitions and notation}\label{definitions}",
        r"\paragraph{Model.} A query is $X \in \mathbb{R}^{N \times d}$ with rows "
        r"$x_1, \dots, x_N$; the last token $x_N$ is the query position and attends to all "
        r"$N$ tokens. Scores $s_i = x_i^\top W x_N$, weights $\alpha = \operatorname{softmax}(s)$, "
        r"output $f_{W,v}(X) = \sum_i \alpha_i\, v^\top x_i$ with merged parameters "
        r"$W = K^\top Q$, $v = V^\top w_o$ (only these are identifiable). "
        r"$\sigma(z) = 1/(1 + e^{-z})$, $\operatorname{logit}(p) = \log(p/(1-p))$.",
        r"\paragraph{Oracles.} A value query returns $\mathrm{VQ}(X) = f(X)$ exactly; an "
        r"approximate value query $\mathrm{AVQ}(X; \tau)$ returns a value within $\tau$ of "
        r"$f(X)$, chosen adversarially and deterministically. A learner holds only the oracle.",
        r"\paragraph{Fields.} EXP: quotients of sums $\sum_k c_k e^{q_k}$ with rational $c_k, q_k$;"
        r" equality is coefficient comparison, valid by the Lindemann--Weierstrass theorem. "
        r"QQ: rationals. BALL($p$): rigorous balls (arb). F64: float64, never called exact.",
        r"\paragraph{Status of a recovery} (the same words in the API, JSON, CLI and here):",
        r"\begin{description}", statuses, r"\end{description}",
        r"\paragraph{Status of a proof step} (printed before every step):",
        r"\begin{description}", steps, r"\item[NOT VERIFIED] the step's check failed; "
        r"\texttt{exactattn latex} then exits 1.", r"\end{description}",
    ])


def _appendix(results: Sequence[ClaimResult]) -> str:
    import flint
    import mpmath
    import numpy
    import sympy

    from .. import __version__

    versions = [("exactattn", __version__), ("Python", platform.python_version()),
                ("python-flint", flint.__version__), ("SymPy", sympy.__version__),
                ("mpmath", mpmath.__version__), ("NumPy", numpy.__version__)]
    seconds = sum(r.seconds for r in results)
    return "\n".join([
        r"\appendix", r"\chapter{Instances, versions, rerunning}\label{appendix}",
        r"\paragraph{Instances.} Every claim runs on built-in seeded instances (rational "
        r"parameters, including zero coordinates and near misses); the number of cases is "
        f"printed with each claim. This build ran {len(results)} claims in {seconds:.1f} s.",
        r"\paragraph{Versions.} " + "; ".join(f"{n} {_escape(str(v))}" for n, v in versions)
        + ".",
        r"\paragraph{Rerun.} \texttt{pip install exactattn}, then "
        r"\texttt{exactattn latex -{}-out DIR -{}-pdf} (writes and builds this document; exits 1 "
        r"if a step is NOT VERIFIED) or \texttt{exactattn verify}.",
        r"\paragraph{Closing note.} This document has \shippedpagetotal{} pages (a title page "
        r"and \pageref*{LastPage} numbered pages); coverage of the paper: "
        + _totals(coverage_rows(results)) + ".",
    ])


# -- figures from benchmark data ------------------------------------------------------------
def _float(x: Any) -> float:
    from fractions import Fraction

    return float(Fraction(str(x)))


def _noise_curve(obj: dict[str, Any], name: str) -> str:
    plots = []
    for k, dim in enumerate(obj["dims"]):
        pts = [(_float(p["epsilon_W"]), p["max_entry_error"], p["bound_entry"])
               for p in dim["points"]]
        err = " ".join(f"({e:.6g},{max(v, 1e-300):.6g})" for e, v, _ in pts)
        bound = " ".join(f"({e:.6g},{b:.6g})" for e, _, b in pts)
        plots.append(f"\\addplot+[mark=*] coordinates {{{err}}};\n"
                     f"\\addlegendentry{{worst entry error, $d = {dim['d']}$}}\n"
                     f"\\addplot+[dashed,mark=none] coordinates {{{bound}}};\n"
                     f"\\addlegendentry{{the learner's entry bound, $d = {dim['d']}$}}")
        if k == 2:
            break
    return "\n".join([
        r"\begin{figure}[ht]\centering",
        r"\begin{tikzpicture}\begin{loglogaxis}[width=0.7\linewidth,height=6cm,"
        r"xlabel={$\varepsilon_W$},ylabel={entry error},"
        r"legend style={at={(0.5,-0.3)},anchor=north,font=\scriptsize}]",
        *plots, r"\end{loglogaxis}\end{tikzpicture}",
        rf"\caption{{\hyperref[noisy_oracle]{{\texttt{{noisy\_oracle}}}}: the worst entry "
        r"error over the adversaries against the theorem's bound, from "
        rf"{_tt(name)} (\texttt{{benchmarks/noisy.py}}; exact errors printed as floats; "
        r"measured, not a proof).}", r"\end{figure}"])


def _phase_transition(obj: dict[str, Any], name: str) -> str:
    series: dict[tuple[str, int, int], list[tuple[float, float]]] = {}
    for p in obj["points"]:
        series.setdefault((p["solver"], p["d"], p["r"]), []).append(
            (p["C"], p["successes"] / p["trials"]))
    plots = []
    for (solver, d, r), pts in sorted(series.items())[:6]:
        coords = " ".join(f"({c:.4g},{rate:.4g})" for c, rate in sorted(pts))
        plots.append(f"\\addplot+[mark=*] coordinates {{{coords}}};\n"
                     f"\\addlegendentry{{{_escape(solver)}, $d = {d}$, $r = {r}$}}")
    return "\n".join([
        r"\begin{figure}[ht]\centering",
        r"\begin{tikzpicture}\begin{axis}[width=0.7\linewidth,height=6cm,"
        r"xlabel={$C = m / (2rd)$ (the paper's normalisation)},ylabel={success rate},"
        r"ymin=0,ymax=1.05,legend style={at={(0.5,-0.3)},anchor=north,font=\scriptsize}]",
        *plots, r"\end{axis}\end{tikzpicture}",
        rf"\caption{{\hyperref[low_rank_sensing]{{\texttt{{low\_rank\_sensing}}}}: the "
        r"fraction of trials recovered exactly (the exact polish accepted and $W$ equal in "
        rf"EXP) against $C$, from {_tt(name)} (\texttt{{benchmarks/low\_rank.py --grid}}; "
        r"measured, not a proof).}", r"\end{figure}"])


def figures(paths: Sequence[str | Path]) -> str:
    """pgfplots figures from benchmark JSON (the noise curve, the low-rank success grid).

    Raises
    ------
    InvalidEntryError
        a file that is neither kind, naming the file and what it lacks.
    """
    import json

    from ..errors import InvalidEntryError

    out = [r"\chapter{Measured figures}\label{figures}",
           r"Measurements from the benchmark scripts, drawn from their JSON output: evidence "
           r"about constants and margins, not part of any proof."]
    for path in paths:
        p = Path(path)
        obj = json.loads(p.read_text(encoding="utf-8"))
        if isinstance(obj, dict) and obj.get("label") == "noisy_oracle" and "dims" in obj:
            out.append(_noise_curve(obj, p.name))
        elif isinstance(obj, dict) and obj.get("points") and "solver" in obj["points"][0]:
            out.append(_phase_transition(obj, p.name))
        else:
            raise InvalidEntryError(
                f"exactattn latex --figures: {p} is neither a noise curve (benchmarks/noisy.py "
                "--curve-out: 'label': 'noisy_oracle' and 'dims') nor a low-rank grid "
                "(benchmarks/low_rank.py --grid: 'points' with 'solver'); pass one of those")
    return "\n".join(out)


def not_verified(results: Sequence[ClaimResult]) -> list[str]:
    """Every failing claim and every NOT VERIFIED step, one line each."""
    out = []
    for r in results:
        if not r.outcome.holds:
            out.append(f"{r.claim.id}: {r.outcome.detail}")
        out += [f"{r.claim.id}: {line}" for line in r.unverified]
    return out


def write_companion(out_dir: str | Path, results: Sequence[ClaimResult] = (),
                    figure_data: Sequence[str | Path] = ()) -> list[Path]:
    """Write ``main.tex``, ``front.tex``, ``all.tex`` and one ``<key>.tex`` per statement.

    ``figure_data``: benchmark JSON files drawn as pgfplots figures (:func:`figures`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = by_key()
    written = []
    (out / "main.tex").write_text(template(), encoding="utf-8")
    written.append(out / "main.tex")
    front = "\n".join([_coverage_table(results), dependency_graph(results)])
    (out / "front.tex").write_text(front + "\n", encoding="utf-8")
    written.append(out / "front.tex")
    body = []
    for part, name in PARTS.items():
        body.append(f"\\part{{{name}}}")
        if part == "paper":
            body.append(r"\input{definitions}")
            (out / "definitions.tex").write_text(_definitions() + "\n", encoding="utf-8")
            written.append(out / "definitions.tex")
        for key, s in table.items():
            if s.part != part:
                continue
            path = out / f"{key}.tex"
            path.write_text(statement_section(s, results), encoding="utf-8")
            written.append(path)
            body.append(f"\\input{{{key}}}")
    if figure_data:
        (out / "figures.tex").write_text(figures(figure_data) + "\n", encoding="utf-8")
        written.append(out / "figures.tex")
        body.append(r"\input{figures}")
    (out / "appendix.tex").write_text(_appendix(results) + "\n", encoding="utf-8")
    written.append(out / "appendix.tex")
    body.append(r"\input{appendix}")
    (out / "all.tex").write_text("\n".join(body) + "\n", encoding="utf-8")
    written.append(out / "all.tex")
    return written
