"""The proof companion (``exactattn latex``): printed steps are the checked objects.

* a mutated coefficient in a symbolic derivation is printed NOT VERIFIED and
  ``exactattn latex`` exits 1;
* the PDF builds with pdflatex with no overfull box over 1 pt, no undefined
  reference, no hyperref warning and no NOT VERIFIED step (skipped without
  pdflatex; CI installs it);
* it works from any directory (the template is package data), with ``--out``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
import sympy as sp

import exactattn.symbolic.single_head as single_head
from exactattn.blueprint import STATEMENTS, by_key, statement_of
from exactattn.claims import REGISTRY, ClaimResult, run_claims
from exactattn.cli import EXIT_FAILED, EXIT_OK, main
from exactattn.errors import InvalidEntryError
from exactattn.learners.recovery import STATUSES
from exactattn.report.latex import (
    coverage_rows,
    figures,
    not_verified,
    statement_section,
    template,
    write_companion,
)
from exactattn.symbolic.recorder import recorded
from exactattn.symbolic.steps import identity_step


def _mutated_derivation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace derivation(d) by one whose step 3 has the coefficient of u_1 W_11 changed to 2."""
    original = single_head.derivation

    @recorded
    def mutated(d: int = 3) -> list[single_head.Step]:
        steps = list(original.__wrapped__(d))  # type: ignore[attr-defined]
        u1, w11 = sp.Symbol("u_1", real=True), sp.Symbol("W_{11}", real=True)
        s = steps[2]
        steps[2] = identity_step(s.lhs, s.rhs + u1 * w11, s.why)
        return steps

    monkeypatch.setattr(single_head, "derivation", mutated)


def test_a_mutated_coefficient_is_printed_not_verified_and_latex_exits_1(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _mutated_derivation(monkeypatch)
    code = main(["latex", "--out", str(tmp_path), "--quiet",
                 "--only", "single_head_exact.symbolic_derivation"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert "NOT VERIFIED" in err and "single_head_exact.symbolic_derivation" in err
    tex = (tmp_path / "single_head_exact.tex").read_text(encoding="utf-8")
    assert tex.count(r"\notverified") >= 1
    # the printed right side is the mutated object: coefficient 2 of u_1 W_11
    assert r"2 W_{11} u_{1}" in tex


def test_the_unmutated_derivation_is_verified_and_printed_from_d_3(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["latex", "--out", str(tmp_path), "--quiet",
                 "--only", "single_head_exact.symbolic_derivation"])
    capsys.readouterr()
    assert code == EXIT_OK
    tex = (tmp_path / "single_head_exact.tex").read_text(encoding="utf-8")
    assert r"\notverified" not in tex
    assert "derivation(3)" in tex and "W_{33}" in tex  # the dimension the check ran


def test_latex_works_from_any_directory_with_out(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["latex", "--no-check", "--out", "companion", "--quiet"]) == EXIT_OK
    capsys.readouterr()
    main_tex = tmp_path / "companion" / "main.tex"
    assert main_tex.read_text(encoding="utf-8") == template()
    assert r"\usepackage{lmodern}" in template()


def test_every_claim_belongs_to_one_statement_and_uses_resolve() -> None:
    table = by_key()
    for c in REGISTRY:
        assert statement_of(c.id).key in table
    for s in table.values():
        assert s.part in {"paper", "ours"}
        assert set(s.uses) <= set(table), s.key
        if s.part == "ours":
            assert s.credit, f"{s.key}: Part II statements are credited"
    assert all(s.v2 is None or s.v1 for s in STATEMENTS)  # v2 only beside a v1 reference


def test_the_sections_state_hypotheses_references_and_code() -> None:
    s = by_key()["noisy_oracle"]
    tex = statement_section(s)
    assert r"\mu" in tex and r"\bar W" in tex  # the hypotheses the issue found missing
    assert "Thm 6.2 (v1); Thm 6.1 (v2, reported)" in tex
    assert r"\uses{" in tex and "checks.\\allowbreak{}noisy" in tex
    canonical = statement_section(by_key()["multihead_canonical"])
    assert "2608.03294" in canonical and "Credit" in canonical


def _figure_data(where: Path) -> list[Path]:
    """A noise curve and a low-rank grid in the benchmarks' JSON formats (small, literal)."""
    curve = {"label": "noisy_oracle", "dims": [{"d": 2, "points": [
        {"epsilon_W": "1/100", "max_entry_error": 0.001, "bound_entry": 0.004},
        {"epsilon_W": "1/10", "max_entry_error": 0.01, "bound_entry": 0.04}]}]}
    grid = {"points": [{"solver": "als", "d": 4, "r": 1, "C": c, "successes": k, "trials": 3}
                       for c, k in ((0.9, 0), (1.1, 2), (1.3, 3))]}
    paths = [where / "curve.json", where / "grid.json"]
    for path, obj in zip(paths, (curve, grid), strict=True):
        path.write_text(json.dumps(obj), encoding="utf-8")
    return paths


def test_figures_refuse_unknown_data_with_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"rows": []}), encoding="utf-8")
    with pytest.raises(InvalidEntryError, match="neither a noise curve"):
        figures([bad])


@pytest.fixture(scope="module")
def all_results() -> list[ClaimResult]:
    return run_claims()


def test_every_claim_holds_and_no_recorded_step_is_not_verified(
        all_results: list[ClaimResult]) -> None:
    """(Was test_registry's test_every_claim_holds; shares the one run of all claims.)"""
    assert not_verified(all_results) == []
    assert all(r.outcome.instances > 0 for r in all_results)
    assert any(r.evidence for r in all_results)  # the derivations were recorded


def test_the_companion_builds_without_overfull_boxes_or_warnings(
        tmp_path: Path, all_results: list[ClaimResult]) -> None:
    if shutil.which("pdflatex") is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex is missing in CI: .ci/run installs it")
        pytest.skip("pdflatex is not installed (CI installs it)")
    figure_data = _figure_data(tmp_path)
    write_companion(tmp_path, all_results, figure_data)
    for _ in range(3):
        run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                              "main.tex"], cwd=tmp_path, capture_output=True, text=True,
                             errors="replace", check=False)
        assert run.returncode == 0, run.stdout[-3000:]
    log = (tmp_path / "main.log").read_text(encoding="latin-1")
    overfull = [float(x) for x in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide", log)]
    assert [x for x in overfull if x > 1.0] == []
    assert "undefined" not in log.lower()
    assert "hyperref Warning" not in log
    assert "pdfTeX warning" not in log  # e.g. a duplicate destination page.1 (title page)
    # the closing note's page count: every page shipped, the title page and the numbered ones
    aux = (tmp_path / "main.aux").read_text(encoding="latin-1")
    total = int(re.findall(r"\\gdef \\shippedpagetotal\{(\d+)\}", aux)[-1])
    numbered = int(re.findall(r"\\newlabel\{LastPage\}\{\{[^}]*\}\{(\d+)\}", aux)[-1])
    assert total == numbered + 1 > 40
    tex = "".join(p.read_text(encoding="utf-8") for p in tmp_path.glob("*.tex"))
    assert r"\part{The paper}" in tex and r"\part{Beyond the paper}" in tex
    assert "Coverage of the paper" in tex and r"\begin{tikzpicture}" in tex
    assert r"\begin{loglogaxis}" in tex and "C = m / (2rd)" in tex
    for word in STATUSES:
        assert word.replace("_", r"\_") in tex
    statuses = {st for _, st in coverage_rows(all_results)}
    assert statuses <= {"checked", "partly", "prose"}
    assert r"\notverified" not in tex.replace(r"\newcommand{\notverified}", "")
    assert not_verified(all_results) == []


def test_a_printed_step_changes_with_the_checked_object() -> None:
    """Regression (issue 11): one-layer steps printed a hand-written display string, so a
    wrong right side still printed the old formula under 'checked'."""
    import dataclasses

    from exactattn.symbolic.one_layer import derivation

    delta = sp.Symbol("delta", real=True)
    for step in derivation(2, 2):
        changed = dataclasses.replace(step, rhs=step.rhs + delta)
        assert changed.latex() != step.latex(), step.why
        from exactattn.symbolic.steps import step_rows

        assert step_rows(changed) != step_rows(step), step.why
        assert any("delta" in row for row in step_rows(changed)), step.why
    for step in single_head.derivation(2):  # named steps too: the names cannot hide a change
        changed = dataclasses.replace(step, rhs=step.rhs + delta)
        assert any("delta" in row for row in step_rows(changed)), step.why


def test_no_statement_is_checked_by_default(all_results: list[ClaimResult]) -> None:
    """coverage is required: a statement checked on exact instances only, or with a prose
    step, says so and is 'partly' although all its claims hold."""
    from exactattn.blueprint import Statement

    with pytest.raises(TypeError, match="coverage"):
        Statement("x", "paper", "Theorem", "x")  # type: ignore[call-arg]
    status = {s.key: st for s, st in coverage_rows(all_results)}
    assert status["orthogonal_heads"] == status["output_bound"] == "partly"
    # audited: a step of each rests on exact instances or prose (tests/test_blueprint_coverage.py)
    assert status["single_head_exact"] == status["noisy_oracle"] == "partly"


def test_the_single_head_steps_start_from_the_head_itself(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps 1 and 2 print a named softmax average; it must be attention() written out."""
    assert all(s.verified for s in single_head.derivation(2))
    original = single_head.attention
    delta = sp.Symbol("delta", real=True)
    monkeypatch.setattr(single_head, "attention",
                        lambda tokens, W, v: original(tokens, W, v) + delta)
    assert [s.verified for s in single_head.derivation(2)][:3] == [False, False, True]


def test_a_claim_badge_names_every_route_it_rests_on() -> None:
    """output_bound: symbolic identities, but the bound itself on exact instances."""
    from exactattn.claims import Outcome

    (c,) = [c for c in REGISTRY if c.id == "noisy_oracle.output_bound"]
    tex = statement_section(by_key()["output_bound"], [ClaimResult(c, Outcome(True, 1), 0.0)])
    assert r"\stepstatus{symbolic + exact instances}" in tex
    assert r"\stepstatus{symbolic}" not in tex


def test_a_checked_statement_has_no_claim_resting_on_prose_or_floats() -> None:
    from exactattn.report.latex import claims_of

    for s in by_key().values():
        if s.coverage == "checked":
            for c in claims_of(s):
                assert "prose" not in c.route and "float" not in c.route, (s.key, c.id)


#: a v2 number printed as fact: "v2" not followed by the qualifier (paper.md: the v2 numbers
#: come from secondary summaries)
_V2_AS_FACT = re.compile(r"\bv2\b(?!, reported| appendix \(reported\))")


def test_v2_numbers_are_printed_as_reported_everywhere(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        all_results: list[ClaimResult]) -> None:
    """Regression (issue 11): verify, claims and their JSON printed 'Thm 5.1 (v2)' as fact."""
    from exactattn.report import claim_line, verify_report

    printed = ["\n".join(claim_line(r) for r in all_results),
               json.dumps(verify_report(all_results, 0.0))]
    for argv in (["claims"], ["claims", "--json"]):
        assert main(argv) == EXIT_OK
        printed.append(capsys.readouterr().out)
    write_companion(tmp_path, all_results)
    printed += [p.read_text(encoding="utf-8") for p in tmp_path.glob("*.tex")]
    text = "\n".join(printed)
    assert "Thm 5.1 (v2, reported)" in text and "Thm 5.2 (v1)" in text
    assert [m.string[max(0, m.start() - 40):m.end() + 12]
            for m in _V2_AS_FACT.finditer(text)] == []


def test_claim_titles_have_their_maths_typeset_from_the_one_plain_title(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Regression (issue 11): the companion printed claim titles as ASCII ('d + d squared')."""
    from exactattn.report.latex import title_tex

    (c,) = [c for c in REGISTRY if c.id == "single_head_exact.exact_recovery"]
    assert c.title == "Exact recovery of (W, v) with exactly d + d squared queries"
    tex = statement_section(by_key()["single_head_exact"])
    assert "Exact recovery of $(W, v)$ with exactly $d + d^2$ queries." in tex
    assert "d squared" not in tex
    # verify and claims keep the plain title: the registry holds the one source
    assert main(["claims"]) == EXIT_OK
    assert c.title in capsys.readouterr().out
    for c in REGISTRY:
        tex = title_tex(c.title)
        assert tex.count("$") % 2 == 0, c.id
        text = "".join(tex.split("$")[::2]).replace(r"\_", "")  # outside the maths
        leftovers = re.findall(r"[=<>^|]|\b[A-Za-z]_[A-Za-z0-9]|\bsquared\b", text)
        assert leftovers == [], (c.id, tex)


# -- figures drawn from the data the checks measure (issue 11, item 7) ------------------------
def test_the_default_companion_draws_the_phase_transition_and_the_noise_curve(
        all_results: list[ClaimResult]) -> None:
    """No --figures needed: the claims record their curves, the companion draws them."""
    sensing = statement_section(by_key()["low_rank_sensing"], all_results)
    assert r"\begin{axis}" in sensing and r"\rho = m / (r(2d - r))" in sensing
    assert "C = m / (2rd)" in sensing and "ALS, $r = 1$" in sensing
    noisy = statement_section(by_key()["noisy_oracle"], all_results)
    assert r"\begin{loglogaxis}" in noisy and "the learner's entry bound, $d = 4$" in noisy


def test_a_noise_curve_above_its_bound_is_not_verified(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The curve's check can fail: a learner one unit off in W_11 breaks the entry bound,
    and the figure is printed under NOT VERIFIED."""
    import dataclasses

    import exactattn.checks.noisy_curve as noisy_curve

    original = noisy_curve.learn_single_head_noisy

    def off_by_one(*args: object, **kwargs: object) -> object:
        rec = original(*args, **kwargs)  # type: ignore[arg-type]
        W = rec.W.copy()
        W[0, 0] = W[0, 0] + 1
        return dataclasses.replace(rec, params={"W": W, "v": rec.v})

    monkeypatch.setattr(noisy_curve, "learn_single_head_noisy", off_by_one)
    monkeypatch.setattr(noisy_curve, "CURVE_DIMS", (2,))
    monkeypatch.setattr(noisy_curve, "CURVE_EPSILONS", (noisy_curve.CURVE_EPSILONS[0],))
    (result,) = run_claims(["noisy_oracle.noise_curve"])
    assert not result.holds and "entry error" in result.outcome.detail
    assert result.unverified and "noise_curve" in result.unverified[0]
    tex = statement_section(by_key()["noisy_oracle"], [result])
    assert r"\notverified" in tex and r"\begin{loglogaxis}" in tex


def test_the_noise_curve_draws_the_widest_bound_over_the_adversaries(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound drawn beside the worst error (a max over adversaries) is the largest of the
    adversaries' bounds, not the last adversary's."""
    import dataclasses

    import exactattn.checks.noisy_curve as noisy_curve
    from exactattn.oracle import ADVERSARIES

    original, calls = noisy_curve.learn_single_head_noisy, []

    def widest_first(*args: object, **kwargs: object) -> object:
        rec = original(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(rec)
        if len(calls) == 1:  # the first adversary reports the widest bound allowed, eps / d
            options = {**rec.options, "W_entry_bound": str(Fraction(1, 2) / 2)}
            return dataclasses.replace(rec, options=options)
        return rec

    monkeypatch.setattr(noisy_curve, "learn_single_head_noisy", widest_first)
    curve = noisy_curve.noise_curve((2,), (Fraction(1, 2),))
    assert curve.holds and len(calls) == len(ADVERSARIES) > 1, curve.detail
    (bound,) = [s for s in curve.series if s.bound]
    assert bound.points == ((0.5, 0.25),)
    assert "largest of the learner's entry bounds over them (dashed)" in curve.caption


def test_a_phase_transition_below_its_measured_ratio_is_not_verified(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import exactattn.checks.low_rank as low_rank

    monkeypatch.setattr(low_rank, "sensing_solver", lambda: (None, "cvxpy skipped"))
    monkeypatch.setattr(low_rank, "SENSING_RATIO_ALS", Fraction(1, 2))  # claimed far too low
    monkeypatch.setattr(low_rank, "PHASE_RANKS", (1,))
    monkeypatch.setattr(low_rank, "PHASE_RATIOS", (Fraction(1, 2),))
    (result,) = run_claims(["low_rank_sensing.phase_transition"])
    assert not result.holds and "0 of 2 trials" in result.outcome.detail
    assert result.unverified and "phase_transition" in result.unverified[0]
