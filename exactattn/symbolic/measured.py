"""Measured curves that a check computes and the proof companion draws as a figure.

A :class:`MeasuredCurve` is evidence of a claim like a proof step (see
:mod:`exactattn.symbolic.recorder`): a check builds it from its own runs
inside a :func:`~exactattn.symbolic.recorder.recorded` function, decides
``holds`` on the exact figures it measured, and ``exactattn latex`` draws the
very points it holds as a pgfplots figure, with its status. The points are
printed as floats (a drawing); the decision ``holds`` was taken before, on the
exact values, and a curve that does not hold is NOT VERIFIED.
"""

from __future__ import annotations

from dataclasses import dataclass

from .recorder import NOT_VERIFIED

__all__ = ["MeasuredCurve", "Series"]

#: line colours (xcolor dvipsnames, loaded by the template), one per measured series
_PALETTE = ("NavyBlue", "BrickRed", "ForestGreen", "DarkOrchid", "Bittersweet", "Black")


@dataclass(frozen=True)
class Series:
    """One line of a figure: a legend, its points (x, y) and whether it is a bound."""

    legend: str  # LaTeX text
    points: tuple[tuple[float, float], ...]
    bound: bool = False  # drawn dashed, without marks: a theorem's bound, not a measurement


@dataclass(frozen=True)
class MeasuredCurve:
    """The figures a check measured, what it decided about them, and how to draw them.

    Attributes
    ----------
    caption : LaTeX; says what was measured and on which instances.
    xlabel, ylabel : LaTeX axis labels.
    series : the lines.
    holds : the check's decision on the exact figures (see ``detail``).
    detail : what was decided, and on how many runs.
    instances : the number of runs behind the points.
    log_x, log_y : logarithmic axes.
    """

    caption: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    holds: bool
    detail: str
    instances: int
    log_x: bool = False
    log_y: bool = False

    @property
    def status(self) -> str:
        """'exact instances' (decided with == or exact comparisons on the runs), or
        NOT VERIFIED when the decision failed."""
        return "exact instances" if self.holds else NOT_VERIFIED

    def pgfplots(self) -> str:
        """The figure, drawn with pgfplots from the points (no external data file).

        >>> c = MeasuredCurve("c", "x", "y", (Series("s", ((1.0, 0.5), (2.0, 1.0))),),
        ...                   True, "ok", 2)
        >>> "[NavyBlue,mark=*] coordinates {(1,0.5) (2,1)}" in c.pgfplots()
        True
        """
        axis = {(False, False): "axis", (True, False): "semilogxaxis",
                (False, True): "semilogyaxis", (True, True): "loglogaxis"}[
            (self.log_x, self.log_y)]
        plots, k = [], -1
        for s in self.series:
            coords = " ".join(f"({x:.6g},{y:.6g})" for x, y in s.points)
            k += 0 if s.bound and k >= 0 else 1  # a bound takes its measurement's colour
            colour = _PALETTE[k % len(_PALETTE)]
            style = f"[{colour},dashed,mark=none]" if s.bound else f"[{colour},mark=*]"
            plots.append(f"\\addplot{style} coordinates {{{coords}}};\n"
                         f"\\addlegendentry{{{s.legend}}}")
        return "\n".join([
            r"\begin{figure}[ht]\centering",
            rf"\begin{{tikzpicture}}\begin{{{axis}}}[width=0.72\linewidth,height=6cm,"
            rf"xlabel={{{self.xlabel}}},ylabel={{{self.ylabel}}},"
            r"legend style={at={(0.5,-0.28)},anchor=north,font=\scriptsize},"
            r"legend columns=2]",
            *plots, rf"\end{{{axis}}}\end{{tikzpicture}}",
            rf"\caption{{{self.caption}}}", r"\end{figure}"])
