"""The LaTeX proof companion, generated from the claims registry.

One file per result label, ``<label>.tex``, holding a section with
``\\label{<label>}``: the statement of every claim of that label, its paper
reference, the route to exactness and, when the checks were run, what they
found; plus the symbolic derivations where a result has them. ``proofs/main.tex``
inputs ``generated/all.tex``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..claims import REGISTRY, RESULTS, Claim, ClaimResult, labels

__all__ = ["write_companion", "label_section", "derivation_block"]


def _escape(text: str) -> str:
    """Plain text for LaTeX text mode."""
    out = text.replace("\\", "\x00")
    for a, b in (("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"), ("_", r"\_"),
                 ("{", r"\{"), ("}", r"\}"), ("^", r"\^{}"), ("~", r"\~{}")):
        out = out.replace(a, b)
    return out.replace("\x00", r"\textbackslash{}")


def derivation_block(title: str, steps: Sequence[Any]) -> str:
    """An ``align*`` of verified steps (objects with ``latex()``, ``why``, ``verified``)."""
    lines = [f"\\paragraph{{{title}.}} Each line below was checked by SymPy: the "
             r"difference of its two sides simplifies to $0$.", r"\begin{align*}"]
    for k, s in enumerate(steps):
        mark = "" if s.verified else r"\quad\text{(NOT VERIFIED)}"
        end = r" \\" if k < len(steps) - 1 else ""
        lines.append(f"{s.latex()} && \\text{{{s.why}}}{mark}{end}")
    lines.append(r"\end{align*}")
    return "\n".join(lines)


def _claim_block(c: Claim, result: ClaimResult | None) -> str:
    status = ""
    if result is not None:
        verdict = "verified" if result.holds else "FAILED"
        status = (f"\n\\emph{{Checked by \\texttt{{exactattn verify}}: {verdict} on "
                  f"{result.outcome.instances} cases; {_escape(result.outcome.detail)}.}}")
    return (
        f"\\begin{{claimbox}}[\\texttt{{{_escape(c.id)}}}]\\label{{{c.id}}}\n"
        f"{_escape(c.title)} ({_escape(c.paper_ref)}; route: {_escape(c.route)}).\n"
        f"\\[ {c.statement} \\]{status}\n"
        f"\\end{{claimbox}}\n"
    )


def label_section(label: str, results: Sequence[ClaimResult] = ()) -> str:
    """The LaTeX section of one result label."""
    by_id = {r.claim.id: r for r in results}
    claims = [c for c in REGISTRY if c.label == label]
    if not claims:
        raise KeyError(f"no claims registered under {label!r}")
    result = RESULTS[label]
    parts = [f"\\section{{{result.title}}}\\label{{{label}}}",
             f"Stable label \\texttt{{{_escape(label)}}}; paper: {_escape(result.paper_ref)}.\n"]
    parts += [_claim_block(c, by_id.get(c.id)) for c in claims]
    if result.derivation is not None:
        parts.append(result.derivation())
    return "\n".join(parts) + "\n"


def write_companion(out_dir: str | Path, results: Sequence[ClaimResult] = ()) -> list[Path]:
    """Write ``<label>.tex`` for every label and ``all.tex`` inputting them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for label in labels():
        path = out / f"{label}.tex"
        path.write_text(label_section(label, results), encoding="utf-8")
        written.append(path)
    index = out / "all.tex"
    index.write_text("".join(f"\\input{{generated/{p.stem}}}\n" for p in written),
                     encoding="utf-8")
    return [*written, index]
