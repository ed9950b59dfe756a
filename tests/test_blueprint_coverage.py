"""The blueprint's coverage words and the LaTeX of claim titles.

* ``coverage="checked"`` is earned, not typed: :func:`exactattn.blueprint.coverage_problems`
  names every "checked" statement without a registered claim that ran and holds, with a
  claim resting on prose or floats, or without recorded symbolic or interval evidence
  (the steps the companion prints are then not the objects a check compared). The
  audited statements that rest on instances or prose say so and print as "partly".
* ``title_tex`` turns any plain-text title into valid LaTeX: braces, carets,
  underscores, ``$``, ``%``, ``&``, ``#``, ``~``, backslashes and non-ASCII characters
  (a regression set that broke the PDF before, a property test of the token rules, and
  one small pdflatex build).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exactattn.blueprint import STATEMENTS, Statement, by_key, coverage_problems
from exactattn.claims import REGISTRY, ClaimResult, Outcome, run_claims
from exactattn.report.latex import coverage_rows, statement_status, title_tex


# -- coverage ---------------------------------------------------------------------------------
def _claim_ids(s: Statement, table: dict[str, Statement]) -> list[str]:
    from exactattn.blueprint import statement_of

    return [c.id for c in REGISTRY if statement_of(c.id, table).key == s.key]


def test_every_checked_statement_names_claims_that_run_and_record_their_steps() -> None:
    table = by_key()
    checked = [s for s in table.values() if s.coverage == "checked"]
    if not checked:
        # since the audit no statement says "checked" (each is "partly" or prose, with its
        # reason): nothing to run here, shown as a skip rather than a pass; the mechanism
        # is shown both ways on a fake "checked" statement below
        pytest.skip("no blueprint statement has coverage \"checked\"")
    ids = [cid for s in checked for cid in _claim_ids(s, table)]
    assert coverage_problems(run_claims(ids) if ids else [], table) == []


def _fake(**kw: object) -> dict[str, Statement]:
    """The blueprint with one more statement, coverage "checked", routed by ``include``."""
    table = by_key()
    fake = Statement("fake_checked", "ours", "Theorem", "A fake", coverage="checked",
                     **kw)  # type: ignore[arg-type]
    return {**table, "fake_checked": fake}


def test_checked_without_a_registered_claim_is_a_problem() -> None:
    problems = coverage_problems([], _fake(labels=("no_such_label",)))
    assert problems == ['fake_checked: coverage "checked" but no registered claim checks it']


def test_checked_with_symbolic_evidence_that_ran_has_no_problem() -> None:
    table = _fake(include=("single_head_exact.symbolic_derivation",))
    results = run_claims(["single_head_exact.symbolic_derivation"])
    assert results[0].evidence  # the derivation was recorded: the companion prints it
    assert coverage_problems(results, table) == []


def test_checked_with_a_claim_that_did_not_run_or_fails_is_a_problem() -> None:
    table = _fake(include=("single_head_exact.symbolic_derivation",))
    assert coverage_problems([], table) == [
        "fake_checked: claim single_head_exact.symbolic_derivation did not run",
        "fake_checked: no claim recorded symbolic or interval evidence (the printed steps "
        "would not be the checked objects)"]
    (ran,) = run_claims(["single_head_exact.symbolic_derivation"])
    failed = dataclasses.replace(ran, outcome=Outcome(False, 1, "broken"))
    assert coverage_problems([failed], table) == [
        "fake_checked: claim single_head_exact.symbolic_derivation fails"]


def test_checked_on_instances_only_or_on_floats_is_a_problem() -> None:
    # exact recovery on instances: it holds, but no step is printed from a checked object
    table = _fake(include=("single_head_exact.exact_recovery",))
    (c,) = [c for c in REGISTRY if c.id == "single_head_exact.exact_recovery"]
    held = ClaimResult(c, Outcome(True, 3), 0.0)
    assert coverage_problems([held], table) == [
        "fake_checked: no claim recorded symbolic or interval evidence (the printed steps "
        "would not be the checked objects)"]
    table = _fake(include=("multihead_canonical.float_recovery",))
    (c,) = [c for c in REGISTRY if c.id == "multihead_canonical.float_recovery"]
    problems = coverage_problems([ClaimResult(c, Outcome(True, 3), 0.0)], table)
    assert f"fake_checked: claim {c.id} rests on {c.route}" in problems


#: the statements that said "checked" before the audit, and why each is partly
AUDITED = {
    "single_head_exact": ("det Z = 1", "exact instances only"),
    "one_layer_reduction": ("two queries of $TF$", "prose"),
    "noisy_oracle": ("probe geometry", "exact instances only"),
    "noisy_oracle_adapted": ("K_d", "exact instances"),
}


def test_the_audited_statements_say_partly_and_why() -> None:
    """Regression: these four printed 'checked' although a step rests on exact instances
    (det Z = 1, the probe geometry, the adapted probes' norm bounds) or on prose (that each
    phase asks exactly its batch of queries)."""
    table = by_key()
    for key, words in AUDITED.items():
        s = table[key]
        assert s.coverage != "checked" and all(w in s.coverage for w in words), key
        held = [ClaimResult(c, Outcome(True, 1), 0.0) for c in REGISTRY
                if c.id in _claim_ids(s, table)]
        assert held and statement_status(s, held) == "partly"
    rows = dict((s.key, st) for s, st in coverage_rows(
        [ClaimResult(c, Outcome(True, 1), 0.0) for c in REGISTRY]))
    assert rows["single_head_exact"] == rows["noisy_oracle"] == "partly"


def test_every_statement_states_its_coverage() -> None:
    for s in STATEMENTS:
        assert s.coverage == "checked" or len(s.coverage) > 20, s.key


# -- title_tex -----------------------------------------------------------------------------
def _latex_problem(tex: str) -> str | None:
    """Why ``tex`` is not valid LaTeX text with inline maths, or None.

    Escaped characters are removed first; then the ``$`` must pair up, every maths and text
    segment must have balanced braces, and text must hold no bare ``_``, ``^`` or non-ASCII
    character outside Latin-1 (pdflatex's utf8 input would stop on it).
    """
    t = tex.replace(r"\textbackslash{}", "").replace(r"\^{}", "").replace(r"\~{}", "")
    t = re.sub(r"\\[${}%&#_]", "", t)
    segments = t.split("$")
    if len(segments) % 2 == 0:
        return f"unpaired $ in {tex!r}"
    for k, seg in enumerate(segments):
        depth = 0
        for ch in seg:
            depth += {"{": 1, "}": -1}.get(ch, 0)
            if depth < 0:
                return f"a closing brace opens nothing in {seg!r} of {tex!r}"
        if depth:
            return f"unbalanced braces in {seg!r} of {tex!r}"
        if k % 2 == 0 and re.search(r"[_^]", seg):
            return f"a bare _ or ^ in text {seg!r} of {tex!r}"
        if any(ord(ch) > 0xFF and ch not in "‘’“”–—…•€" for ch in seg):
            return f"a character pdflatex cannot set in {seg!r} of {tex!r}"
    return None


#: titles whose LaTeX was invalid or wrong before: ``{a}`` gave ``${$a$}$`` and ``b}``
#: ``$b}$`` (unbalanced), ``^{0`` ``$^{0$``; ``≤``, ``≠`` and ``α`` stopped pdflatex; the
#: braces of ``{x, y}`` became an invisible TeX group, and ``e^x}``, ``x^T}-b`` lost their "}"
BROKE_BEFORE = ["{a}", "b}", "a set {x, y} of tokens", "e^x}", "^{0", "x^T}-b",
                "a ≤ b", "α-level", "W_ij ≠ 0 for all i"]
#: titles that were already valid, kept valid
EDGE = ["rate 5% & cost #3 ~ 1", r"a \ b and \alpha", "$W_{ij}$ and $d + d^2$ queries",
        "under_score_name and snake_case_word", "W^T_{ij} and x_{12} and e_d^T x",
        "score gap a b W_ij in [-1/2, 1/2] (exact, EXP), 1% by 1e-6", "café, § 4.1 – “q”",
        "W = (W B)(A^T W B)^{-1}(A^T W) when det(A^T W B) != 0", "L-Lipschitz, rank-r"]


@pytest.mark.parametrize("title", BROKE_BEFORE + EDGE)
def test_title_tex_is_valid_latex(title: str) -> None:
    assert _latex_problem(title_tex(title)) is None


def test_title_tex_keeps_every_stray_brace_and_special_visible() -> None:
    assert title_tex("{a}") == r"$\{$a$\}$"
    assert title_tex("e^x}") == r"$e^x\}$"
    assert title_tex("a set {x, y} of tokens") == r"a set $\{x, y\}$ of tokens"
    assert title_tex("rate 5% & cost #3") == r"rate 5\% \& cost \#3"
    assert title_tex("$d$") == r"\$$d$\$"  # a title is plain text: $ is a dollar sign
    assert title_tex("x ≤ α, 中") == r"$x$ $\le$ $\alpha$, \texttt{[U+4E2D]}"



def test_greek_letters_print_as_their_own_shapes() -> None:
    # regression: the entry "ε" -> \varepsilon was overwritten by the generated \epsilon (the
    # lunate ϵ), and φ printed as \phi, the straight ϕ
    assert title_tex("ε ϵ φ ϕ") == r"$\varepsilon$ $\epsilon$ $\varphi$ $\phi$"

_PIECES = st.sampled_from(list("aAWxdbe_^{}()[]$%&#~\\ 01-+=<>!|/.,'≤α中") + [
    "tau", "alpha", " and ", "W_ij", "x^T", "rank", "squared", "1e-6", "1/2", "L-Lipschitz",
    "x_{12}", "^{-1}", "A^T", "det(", "<=", "!=", "||", "'s"])


@given(st.lists(_PIECES, min_size=1, max_size=14).map("".join))
def test_title_tex_of_any_title_is_valid_latex(title: str) -> None:
    assert _latex_problem(title_tex(title)) is None


def test_edge_titles_compile_with_pdflatex(tmp_path: Path) -> None:
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (CI installs it)")
    body = "\n".join(r"\par\noindent " + title_tex(t) + "." for t in BROKE_BEFORE + EDGE)
    (tmp_path / "t.tex").write_text(
        "\\documentclass{article}\\usepackage[T1]{fontenc}\\usepackage{lmodern}"
        "\\usepackage{amsmath,amssymb}\n\\begin{document}\n" + body + "\n\\end{document}\n",
        encoding="utf-8")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                         cwd=tmp_path, capture_output=True, text=True, errors="replace",
                         check=False)
    assert run.returncode == 0, run.stdout[-2000:]


def test_the_companion_prints_checked_only_when_earned(monkeypatch: pytest.MonkeyPatch) -> None:
    from exactattn import blueprint
    from exactattn.report.latex import statement_section

    def with_fake(include: str) -> Statement:
        fake = Statement("fake_checked", "ours", "Theorem", "A fake", include=(include,),
                         coverage="checked")
        monkeypatch.setattr(blueprint, "STATEMENTS", (*STATEMENTS, fake))
        return fake

    # instances only: every claim holds, but no step is printed from a checked object
    fake = with_fake("single_head_exact.exact_recovery")
    (c,) = [c for c in REGISTRY if c.id == "single_head_exact.exact_recovery"]
    held = [ClaimResult(c, Outcome(True, 3), 0.0)]
    assert statement_status(fake, held) == "partly"
    assert "no claim recorded symbolic or interval evidence" in statement_section(fake, held)
    # the symbolic derivation, run: checked, and no reason printed
    fake = with_fake("single_head_exact.symbolic_derivation")
    ran = run_claims(["single_head_exact.symbolic_derivation"])
    assert statement_status(fake, ran) == "checked"
    assert r"\textbf{Status:} checked." in statement_section(fake, ran)
