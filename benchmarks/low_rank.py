"""Benchmark of the low-rank learners (labels ``low_rank_adaptive``, ``low_rank_sensing``).

Three modes; rows are JSON objects, one per line, on stdout; progress on stderr.

    python benchmarks/low_rank.py [--quick] [--only adaptive,f64,sensing]
    python benchmarks/low_rank.py --grid docs/low_rank_success.json [--trials 10]
    python benchmarks/low_rank.py --plot docs/low_rank_success.json docs/low_rank_success.png

Rows (default mode)
-------------------
Every row has: ``d``, ``r``, ``method``, ``field``, ``queries`` (the
oracle's own counter), ``floor`` = r(2d - r) + d, ``queries_over_floor``,
``queries_over_d2_plus_d`` (against the full single-head learner),
``seconds``, ``exact`` (the recovered W equals the hidden W under ``==``;
never true over F64), ``error`` (relative Frobenius error of W; 0.0 when
exact), ``certificate_holds``; sensing rows add ``measurements``, ``ratio``,
``solver``, ``solver_seconds``. A row whose learner raised has ``failure``.

* ``adaptive`` (EXP, exact): (d, r) = (16, 2), (32, 4), (64, 8), rank given
  (``adaptive``) and discovered (``adaptive-discover``); (16, 2) also with
  the linear algebra in QQ.
* ``f64`` (float64 oracle, batched): (256, 8) and (1024, 16), adaptive, no
  transcript; ``error`` against the hidden W and the learner's first-order
  bound ``W_error_bound``.
* ``sensing`` (EXP oracle, float solver + exact polish): d = 10, 20, 40 with
  r = 2, m at the measured ratio of each solver; solvers ``als`` and, when
  cvxpy is installed, ``nuclear`` (SCS, Clarabel as fallback) and, as
  ``"comparison": true`` rows, ``nuclear`` pinned to SCS and pinned to
  Clarabel (solver seconds at equal input; a pinned solver's failure is
  reported in ``failure`` and does not change the exit code).

``--quick``: adaptive (8, 2) exact, f64 (64, 4), sensing ALS (8, 1) and, if
cvxpy is installed, nuclear (8, 1). Exit code 0 when every row ran, every
exact route recovered W exactly and every certificate held; 1 otherwise.

Success-rate grid (``--grid PATH``)
-----------------------------------
For d in {10, 20, 40}, r in {1, 2, 4} and each solver, the success rate of
``learn_low_rank(method="sensing")`` against rho = m / (r(2d - r)), with
``--trials`` seeded trials per point (instance seed = learner seed =
trial). Success = the exact polish accepted and W == hidden W. Ratios are
tried in increasing order, and a (solver, d, r) series stops after two
consecutive ratios at 100 % (success is assumed monotone above). Written to
PATH as JSON with the derived numbers (smallest ratio with >= 9/10, its
empirical C = m / (2dr), the ratio from which every trial succeeded).
``--plot JSON PNG`` draws the plot from that file only (matplotlib, extra
``plot``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

try:
    import exactattn
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import exactattn

from exactattn.certificates import verify
from exactattn.checks.low_rank import (
    SENSING_RATIO_ALS,
    SENSING_RATIO_NUCLEAR,
    low_rank_head,
    sensing_measurements,
)
from exactattn.errors import ExactattnError, RecoveryFailedError
from exactattn.fields import EXP, F64, QQ, Field
from exactattn.learners.low_rank import (
    SDP_SOLVERS,
    InexactRecoveryError,
    degrees_of_freedom,
    learn_low_rank,
    over_field,
    query_floor,
)
from exactattn.oracle import ValueOracle

ADAPTIVE_SIZES = ((16, 2), (32, 4), (64, 8))
F64_SIZES = ((256, 8), (1024, 16))
SENSING_SIZES = ((10, 2), (20, 2), (40, 2))
QUICK = {"adaptive": ((8, 2),), "f64": ((64, 4),), "sensing": ((8, 1),)}
CERT_PROBES = 8

GRID_DS = (10, 20, 40)
GRID_RS = (1, 2, 4)
GRID_RATIOS = {
    "als": ("1", "11/10", "5/4", "3/2", "7/4", "2", "5/2", "3"),
    "nuclear": ("1", "5/4", "3/2", "7/4", "2", "9/4", "5/2", "11/4", "3", "13/4", "7/2", "4",
                "9/2", "5", "6"),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def have_cvxpy() -> bool:
    try:
        importlib.import_module("cvxpy")
    except ImportError:
        return False
    return True


def same(A: Any, B: Any) -> bool:
    return bool(A.shape == B.shape and all(a == b for a, b in zip(A.flat, B.flat, strict=True)))


# -- rows -------------------------------------------------------------------------------
def base_row(d: int, r: int, method: str, field: Field, oracle: ValueOracle,
             seconds: float) -> dict[str, Any]:
    q = oracle.queries
    return {"d": d, "r": r, "method": method, "field": field.name, "queries": q,
            "floor": query_floor(d, r), "queries_over_floor": q - query_floor(d, r),
            "queries_over_d2_plus_d": round(q / (d * d + d), 6),
            "seconds": round(seconds, 4), "oracle_seconds": round(oracle.seconds, 4)}


def run_adaptive(d: int, r: int, *, discover: bool = False, field: Field = EXP) -> dict[str, Any]:
    head = low_rank_head(d, r, seed=d)
    oracle = ValueOracle(head)
    start = time.perf_counter()
    rec = learn_low_rank(oracle, rank=None if discover else r, field=field, seed=d)
    seconds = time.perf_counter() - start
    method = "adaptive-discover" if discover else "adaptive"
    row = base_row(d, r, method, field, oracle, seconds)
    hidden = head.W if field == EXP else QQ.array(
        [[EXP.to_rational(x) for x in row] for row in head.W])
    row["exact"] = same(rec.W, hidden) and rec.field.exact
    row["status"] = rec.status
    row["error"] = 0.0 if row["exact"] else None
    row["rank_found"] = rec.options["rank"]
    row["queries_by_phase"] = dict(rec.queries_by_phase)
    start = time.perf_counter()
    row["certificate_holds"] = verify(over_field(rec, EXP), oracle, probes=CERT_PROBES).holds
    row["certificate_seconds"] = round(time.perf_counter() - start, 4)
    return row


def run_f64(d: int, r: int) -> dict[str, Any]:
    head = low_rank_head(d, r, seed=d, field=F64)
    oracle = ValueOracle(head, keep_transcript=False)
    start = time.perf_counter()
    rec = learn_low_rank(oracle, rank=r, seed=d)
    seconds = time.perf_counter() - start
    row = base_row(d, r, "adaptive", F64, oracle, seconds)
    err = float(np.linalg.norm(rec.W - head.W))
    row["exact"] = False
    row["error"] = err / float(np.linalg.norm(head.W))
    row["frobenius_error"] = err
    row["W_error_bound"] = float(rec.options["W_error_bound"])
    row["within_bound"] = err <= row["W_error_bound"]
    row["single_head_queries"] = d * d + d
    start = time.perf_counter()
    row["certificate_holds"] = verify(rec, oracle, probes=CERT_PROBES).holds
    row["certificate_seconds"] = round(time.perf_counter() - start, 4)
    return row


def run_sensing(d: int, r: int, solver: str, ratio: Fraction,
                sdp: str | None = None) -> dict[str, Any]:
    """One sensing row; ``sdp`` pins the cvxpy solver (to compare SCS with Clarabel)."""
    head = low_rank_head(d, r, seed=d)
    m = sensing_measurements(d, r, ratio)
    oracle = ValueOracle(head)
    method = "sensing-" + solver + (f"-{sdp}" if sdp else "")
    start = time.perf_counter()
    try:
        rec = learn_low_rank(oracle, rank=r, method="sensing", measurements=m,
                             solver=solver, seed=d,  # type: ignore[arg-type]
                             sdp_solvers=(sdp,) if sdp else SDP_SOLVERS)
    except InexactRecoveryError as exc:
        row = base_row(d, r, method, EXP, oracle, time.perf_counter() - start)
        row.update({"measurements": m, "ratio": str(ratio), "exact": False,
                    "error": None, "float_relative_residual": exc.estimate.relative_residual,
                    "solver_seconds": round(exc.estimate.seconds, 4),
                    "certificate_holds": False, "failure": str(exc)})
        return row
    except RecoveryFailedError as exc:  # e.g. the pinned SDP solver failed numerically
        row = base_row(d, r, method, EXP, oracle, time.perf_counter() - start)
        row.update({"measurements": m, "ratio": str(ratio), "exact": False, "error": None,
                    "certificate_holds": False, "failure": f"{type(exc).__name__}: {exc}"})
        return row
    row = base_row(d, r, method, EXP, oracle, time.perf_counter() - start)
    row["measurements"] = m
    row["ratio"] = str(ratio)
    row["C"] = round(m / (2 * d * r), 4)
    row["solver"] = rec.options["solver"]
    row["solver_seconds"] = rec.options["solver_seconds"]
    row["exact"] = same(rec.W, head.W)
    row["error"] = 0.0 if row["exact"] else None
    row["certificate_holds"] = verify(rec, oracle, probes=CERT_PROBES).holds
    return row


def rows(quick: bool, only: list[str]) -> list[tuple[str, Any]]:
    jobs: list[tuple[str, Any]] = []
    if "adaptive" in only:
        for d, r in QUICK["adaptive"] if quick else ADAPTIVE_SIZES:
            jobs.append((f"adaptive EXP d={d} r={r}", lambda d=d, r=r: run_adaptive(d, r)))
            jobs.append((f"adaptive-discover EXP d={d} r={r}",
                         lambda d=d, r=r: run_adaptive(d, r, discover=True)))
        d, r = (QUICK["adaptive"] if quick else ADAPTIVE_SIZES)[0]
        jobs.append((f"adaptive QQ d={d} r={r}", lambda d=d, r=r: run_adaptive(d, r, field=QQ)))
    if "f64" in only:
        for d, r in QUICK["f64"] if quick else F64_SIZES:
            jobs.append((f"adaptive F64 d={d} r={r}", lambda d=d, r=r: run_f64(d, r)))
    if "sensing" in only:
        cvx = have_cvxpy()
        if not cvx:
            log("cvxpy is not installed: nuclear-norm rows skipped "
                "(pip install 'exactattn[sensing]')")
        for d, r in QUICK["sensing"] if quick else SENSING_SIZES:
            jobs.append((f"sensing als d={d} r={r}",
                         lambda d=d, r=r: run_sensing(d, r, "als", SENSING_RATIO_ALS)))
            if cvx:
                jobs.append((f"sensing nuclear d={d} r={r}",
                             lambda d=d, r=r: run_sensing(d, r, "nuclear",
                                                          SENSING_RATIO_NUCLEAR)))
                if not quick:
                    for sdp in ("SCS", "CLARABEL"):
                        jobs.append((f"sensing nuclear {sdp} d={d} r={r} (comparison)",
                                     lambda d=d, r=r, sdp=sdp: run_sensing(
                                         d, r, "nuclear", SENSING_RATIO_NUCLEAR, sdp)))
    return jobs


def machine() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "loadavg_1min": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "numpy": np.__version__,
            "exactattn": exactattn.__version__}


def run_rows(quick: bool, only: list[str]) -> int:
    ok = True
    for name, job in rows(quick, only):
        log(f"{name} ...")
        load = os.getloadavg()[0]
        try:
            row = job()
        except ExactattnError as exc:
            row = {"job": name, "failure": f"{type(exc).__name__}: {exc}", "exact": False,
                   "certificate_holds": False}
        row["loadavg_1min_before"] = round(load, 2)
        if name.endswith("(comparison)"):
            # one pinned SDP solver, for timing: its failure is data, not a learner failure
            row["comparison"] = True
        else:
            exact_route = row.get("field") in ("EXP", "QQ")
            if "failure" in row or not row.get("certificate_holds") or (
                    exact_route and not row.get("exact")):
                ok = False
        print(json.dumps(row), flush=True)
    return 0 if ok else 1


# -- the success-rate grid ----------------------------------------------------------------
def grid_trial(d: int, r: int, ratio: Fraction, trial: int, solver: str) -> dict[str, Any]:
    head = low_rank_head(d, r, seed=trial)
    m = sensing_measurements(d, r, ratio)
    oracle = ValueOracle(head)
    start = time.perf_counter()
    try:
        rec = learn_low_rank(oracle, rank=r, method="sensing", measurements=m,
                             solver=solver, seed=trial)  # type: ignore[arg-type]
    except InexactRecoveryError as exc:
        return {"success": False, "accepted": False, "seconds": time.perf_counter() - start,
                "solver_seconds": exc.estimate.seconds,
                "float_relative_residual": exc.estimate.relative_residual}
    return {"success": same(rec.W, head.W), "accepted": True,
            "seconds": time.perf_counter() - start,
            "solver_seconds": float(rec.options["solver_seconds"]),
            "float_relative_residual": float(rec.options["float_relative_residual"])}


def run_grid(path: Path, trials: int, solvers: list[str], ds: list[int], rs: list[int]) -> int:
    points: list[dict[str, Any]] = []
    started = time.time()
    meta = machine()
    for solver in solvers:
        for d in ds:
            for r in rs:
                full_in_a_row = 0
                for text in GRID_RATIOS[solver]:
                    ratio = Fraction(text)
                    m = sensing_measurements(d, r, ratio)
                    results = [grid_trial(d, r, ratio, t, solver) for t in range(trials)]
                    wins = sum(x["success"] for x in results)
                    point = {
                        "solver": solver, "d": d, "r": r, "ratio": text,
                        "ratio_float": float(ratio), "m": m, "dof": degrees_of_freedom(d, r),
                        "C": m / (2 * d * r), "trials": trials, "successes": wins,
                        "accepted_but_wrong": sum(x["accepted"] and not x["success"]
                                                  for x in results),
                        "mean_seconds": sum(x["seconds"] for x in results) / trials,
                        "mean_solver_seconds": sum(x["solver_seconds"] for x in results) / trials,
                        "max_solver_seconds": max(x["solver_seconds"] for x in results),
                    }
                    points.append(point)
                    log(f"[{time.time() - started:7.1f} s] {solver} d={d} r={r} ratio={text} "
                        f"m={m}: {wins}/{trials} ({point['mean_seconds']:.2f} s/trial)")
                    full_in_a_row = full_in_a_row + 1 if wins == trials else 0
                    if full_in_a_row == 2:
                        break
                    _write(path, points, trials, solvers, ds, rs, meta, started, done=False)
    _write(path, points, trials, solvers, ds, rs, meta, started, done=True)
    log(f"wrote {path}")
    return 0


def summarise(points: list[dict[str, Any]], trials: int) -> dict[str, Any]:
    """Per (solver, d, r): the smallest ratio with >= 9/10 successes and its C; overall."""
    need = math.ceil(0.9 * trials)
    series: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for p in points:
        series.setdefault((p["solver"], p["d"], p["r"]), []).append(p)
    per: list[dict[str, Any]] = []
    for (solver, d, r), ps in series.items():
        ps = sorted(ps, key=lambda p: p["ratio_float"])
        nine = next((p for k, p in enumerate(ps)
                     if all(q["successes"] >= need for q in ps[k:])), None)
        every = next((p for k, p in enumerate(ps)
                      if all(q["successes"] == q["trials"] for q in ps[k:])), None)
        per.append({"solver": solver, "d": d, "r": r,
                    "ratio_9_of_10": None if nine is None else nine["ratio"],
                    "C_9_of_10": None if nine is None else round(nine["C"], 4),
                    "m_9_of_10": None if nine is None else nine["m"],
                    "all_succeed_from": None if every is None else every["ratio"]})
    overall: dict[str, Any] = {}
    for solver in sorted({p["solver"] for p in points}):
        mine = [x for x in per if x["solver"] == solver]
        if any(x["ratio_9_of_10"] is None for x in mine):
            overall[solver] = {"complete": False}
            continue
        overall[solver] = {
            "complete": True,
            "ratio_9_of_10_every_point": max((Fraction(x["ratio_9_of_10"]) for x in mine),
                                             default=None).__str__(),
            "C_9_of_10_max": max(x["C_9_of_10"] for x in mine),
            "C_9_of_10_min": min(x["C_9_of_10"] for x in mine),
            "all_succeed_from": max((Fraction(x["all_succeed_from"]) for x in mine
                                     if x["all_succeed_from"] is not None),
                                    default=None).__str__(),
        }
    return {"per_point": per, "overall": overall}


def _write(path: Path, points: list[dict[str, Any]], trials: int, solvers: list[str],
           ds: list[int], rs: list[int], meta: dict[str, Any], started: float,
           *, done: bool) -> None:
    obj = {
        "description": (
            "Success rate of learn_low_rank(method='sensing') (label low_rank_sensing): "
            "success = the exact polish accepted and W == hidden W (EXP). ratio = m / "
            "(r(2d - r)); C = m / (2 d r) (the paper's m = C r 2d). Instances: "
            "exactattn.checks.low_rank.low_rank_head(d, r, seed=trial), learner seed = "
            "trial. A (solver, d, r) series stops after two consecutive ratios at 100 %."),
        "complete": done,
        "trials_per_point": trials, "solvers": solvers, "d": ds, "r": rs,
        "ratios_tried": {s: list(GRID_RATIOS[s]) for s in solvers},
        "machine": meta, "wall_seconds": round(time.time() - started, 1),
        "points": points,
        "summary": summarise(points, trials),
    }
    path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")


# -- the plot -------------------------------------------------------------------------------
def plot(json_path: Path, png_path: Path) -> int:
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        log("matplotlib is not installed: pip install 'exactattn[plot]'")
        return 2
    matplotlib.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")
    data = json.loads(json_path.read_text(encoding="utf-8"))
    solvers = data["solvers"]
    fig, axes = plt.subplots(1, len(solvers), figsize=(6 * len(solvers), 4.2), sharey=True,
                             squeeze=False)
    colors = {10: "tab:blue", 20: "tab:orange", 40: "tab:green"}
    styles = {1: "-", 2: "--", 4: ":"}
    names = {"als": "alternating least squares (numpy)",
             "nuclear": "nuclear-norm minimisation (cvxpy, SCS)"}
    for ax, solver in zip(axes[0], solvers, strict=True):
        for d in data["d"]:
            for r in data["r"]:
                ps = sorted((p for p in data["points"]
                             if p["solver"] == solver and p["d"] == d and p["r"] == r),
                            key=lambda p: p["ratio_float"])
                if not ps:
                    continue
                ax.plot([p["ratio_float"] for p in ps],
                        [p["successes"] / p["trials"] for p in ps],
                        color=colors.get(d, "black"), linestyle=styles.get(r, "-"),
                        marker="o", markersize=3, label=f"d={d}, r={r}")
        ax.axvline(1.0, color="grey", linewidth=0.8)
        ax.axhline(0.9, color="grey", linewidth=0.5, linestyle=":")
        overall = data["summary"]["overall"].get(solver, {})
        if overall.get("complete"):
            ax.set_title(f"{names.get(solver, solver)}\n9/10 at every point from ratio "
                         f"{overall['ratio_9_of_10_every_point']} "
                         f"(C <= {overall['C_9_of_10_max']:.2f})", fontsize=9)
        else:
            ax.set_title(names.get(solver, solver), fontsize=9)
        ax.set_xlabel("m / (r(2d - r))  (1 = degrees-of-freedom floor)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"exact recoveries / {data['trials_per_point']} trials")
    axes[0][-1].legend(fontsize=7, ncol=3, loc="lower right")
    fig.suptitle("low_rank_sensing: rank-one measurements + exact polish", fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    log(f"wrote {png_path}")
    return 0


# -- CLI ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes only: a smoke test")
    p.add_argument("--only", default="adaptive,f64,sensing",
                   help="comma-separated subset of adaptive,f64,sensing")
    p.add_argument("--grid", type=Path, help="run the success-rate grid, write JSON here")
    p.add_argument("--trials", type=int, default=10, help="trials per grid point")
    p.add_argument("--solvers", default=None, help="grid solvers (default als[,nuclear])")
    p.add_argument("--grid-d", default="10,20,40")
    p.add_argument("--grid-r", default="1,2,4")
    p.add_argument("--plot", nargs=2, type=Path, metavar=("JSON", "PNG"),
                   help="plot a grid JSON file into a PNG")
    args = p.parse_args(argv)
    if args.plot:
        return plot(*args.plot)
    if args.grid:
        solvers = (args.solvers.split(",") if args.solvers
                   else ["als"] + (["nuclear"] if have_cvxpy() else []))
        if any(s not in GRID_RATIOS for s in solvers) or args.trials < 1:
            p.error("--solvers takes als and/or nuclear; --trials >= 1")
        return run_grid(args.grid, args.trials, solvers,
                        [int(x) for x in args.grid_d.split(",")],
                        [int(x) for x in args.grid_r.split(",")])
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    if not only or any(x not in ("adaptive", "f64", "sensing") for x in only):
        p.error(f"--only takes adaptive, f64 and/or sensing, got {args.only!r}")
    log(f"exactattn {exactattn.__version__}, python {platform.python_version()}, "
        f"numpy {np.__version__}, cvxpy {'yes' if have_cvxpy() else 'no'}")
    return run_rows(args.quick, only)


if __name__ == "__main__":
    sys.exit(main())
