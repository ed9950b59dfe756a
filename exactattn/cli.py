"""The command line: a thin shell over the public API.

Results go to stdout (text, or JSON with ``--json``), progress and logs to
stderr. Exit codes: 0 ok, 1 a check failed, 2 usage error or bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from . import __version__
from .errors import ExactattnError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

LEARNABLE = ("single_head_exact", "noisy_oracle", "relu_ffn_exact", "one_layer_reduction",
             "low_rank_adaptive", "multihead_canonical")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse exits 2 on usage errors; keep that
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _Progress:
    """A one-line progress indicator on stderr for long runs."""

    def __init__(self, what: str, enabled: bool) -> None:
        self.what, self.enabled, self.start = what, enabled, time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        tty = sys.stderr.isatty()
        if done < total and now - self.last < (0.5 if tty else 5.0):
            return
        self.last = now
        end = "\n" if done >= total or not tty else "\r"
        sys.stderr.write(f"{self.what}: {done}/{total} ({now - self.start:.1f} s){end}")
        sys.stderr.flush()


# -- verify -------------------------------------------------------------------------
def _cmd_verify(args: argparse.Namespace) -> int:
    from .claims import REGISTRY, run_claims
    from .report import claim_line, verify_report, verify_summary, write_json

    select = args.only or None
    if select is not None:
        known = {c.id for c in REGISTRY} | {c.label for c in REGISTRY}
        unknown = [s for s in select if s not in known]
        if unknown:
            _stderr(f"exactattn verify: error: unknown claim or label {', '.join(unknown)}; "
                    "see 'exactattn claims'")
            return EXIT_USAGE

    def progress(c: Any, k: int, n: int) -> None:
        if not args.quiet:
            _stderr(f"[{k + 1}/{n}] {c.id} ...")

    start = time.perf_counter()
    results = run_claims(select, progress=progress)
    seconds = time.perf_counter() - start
    for r in results:
        print(claim_line(r))
    print(verify_summary(results, seconds))
    if args.json:
        write_json(verify_report(results, seconds), args.json)
        _stderr(f"JSON report written to {args.json}")
    return EXIT_OK if all(r.holds for r in results) else EXIT_FAILED


def _cmd_claims(args: argparse.Namespace) -> int:
    from .claims import REGISTRY

    if args.json:
        print(json.dumps([{"id": c.id, "label": c.label, "paper_ref": c.paper_ref,
                           "title": c.title, "statement": c.statement, "route": c.route}
                          for c in REGISTRY], indent=2))
        return EXIT_OK
    for c in REGISTRY:
        print(f"{c.id:<45} [{c.paper_ref}]  {c.title}")
    return EXIT_OK


def _cmd_latex(args: argparse.Namespace) -> int:
    import shutil
    import subprocess
    from pathlib import Path

    from .claims import run_claims
    from .report.latex import not_verified, write_companion

    results = [] if args.no_check else run_claims(
        args.only or None,
        progress=lambda c, k, n: None if args.quiet else _stderr(f"[{k + 1}/{n}] {c.id} ..."))
    out = Path(args.out)
    written = write_companion(out, results)
    for path in written:
        print(path)
    failures = not_verified(results)
    for line in failures:
        _stderr(f"NOT VERIFIED: {line}")
    if args.pdf:
        if shutil.which("pdflatex") is None:
            _stderr("exactattn latex: error: --pdf needs pdflatex on the PATH")
            return EXIT_USAGE
        for _ in range(3):  # contents, references, the page count
            run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                                  "main.tex"], cwd=out, capture_output=True,
                                 text=True, errors="replace", check=False)
            if run.returncode != 0:
                _stderr(run.stdout[-2000:])
                _stderr("exactattn latex: pdflatex failed")
                return EXIT_FAILED
        print(out / "main.pdf")
    return EXIT_FAILED if failures else EXIT_OK


# -- learn ----------------------------------------------------------------------
def _learn_single_head(args: argparse.Namespace) -> int:
    from .certificates import verify
    from .fields import F64, QQ, field_by_name
    from .instances import single_head_instance
    from .learners import learn_single_head
    from .learners.single_head import query_count
    from .oracle import ValueOracle
    from .report import learn_summary

    field = field_by_name(args.field)
    if field is QQ:
        _stderr("exactattn learn: error: single_head_exact cannot run over QQ: softmax answers "
                "are not rational (e^q is irrational for rational q != 0). Use --field EXP "
                "(exact) or --field F64 (float64).")
        return EXIT_USAGE
    inst = single_head_instance(args.d, args.seed, field=field)
    oracle = ValueOracle(inst.model, keep_transcript=args.d <= 256 or field is not F64)
    progress = _Progress("measuring W, column", not args.no_progress and args.d >= 64)
    start = time.perf_counter()
    rec = learn_single_head(oracle, probes=args.probes, seed=args.seed, progress=progress)
    learn_seconds = time.perf_counter() - start
    oracle_seconds = oracle.seconds
    cstart = time.perf_counter()
    cert = verify(rec, oracle, probes=args.certificate_probes, seed=args.seed)
    cert_seconds = time.perf_counter() - cstart
    info: dict[str, Any] = {
        "label": rec.label, "paper_ref": rec.paper_ref, "instance": inst.name,
        "d": args.d, "seed": args.seed, "field": field.name, "probes": args.probes,
        "queries": rec.queries, "expected_queries": query_count(args.d),
        "queries_by_phase": dict(rec.queries_by_phase),
        "status": rec.status, "hypotheses": list(rec.hypotheses),
        "certificate": {**cert.to_json(), "text": str(cert)},
        "seconds": {"total": learn_seconds, "oracle": oracle_seconds,
                    "learner": learn_seconds - oracle_seconds, "certificate": cert_seconds},
    }
    if field.exact:
        same = bool((rec.W == inst.model.W).all() and (rec.v == inst.model.v).all())
        info["matches_truth"] = True if same else "DIFFERS from the hidden model"
    else:
        info["max_abs_error"] = {"W": float(np.abs(rec.W - inst.model.W).max()),
                                 "v": float(np.abs(rec.v - inst.model.v).max())}
        info["W_error_bound"] = float(rec.options["W_error_bound"])
    if args.save:
        with open(args.save, "w", encoding="utf-8") as fh:
            json.dump({"recovery": rec.to_json(),
                       "instance": {"kind": "single_head", "d": args.d, "seed": args.seed,
                                    "field": field.name},
                       "certificate": cert.to_json()}, fh)
        _stderr(f"recovery saved to {args.save}")
    print(json.dumps(info, indent=2) if args.json else learn_summary(info))
    ok = cert.holds and info.get("matches_truth", True) is True
    return EXIT_OK if ok else EXIT_FAILED


def _cmd_learn(args: argparse.Namespace) -> int:
    if args.d < 1:
        _stderr(f"exactattn learn: error: --d must be at least 1, got {args.d}")
        return EXIT_USAGE
    if args.certificate_probes < 0:
        _stderr("exactattn learn: error: --certificate-probes must be >= 0")
        return EXIT_USAGE
    if args.label == "noisy_oracle":
        return _learn_noisy(args)
    if args.label == "single_head_exact":
        return _learn_single_head(args)
    return _learn_other(args)


def _learn_other(args: argparse.Namespace) -> int:
    """The exact results on a seeded instance: learn, compare with the truth, certify."""
    from . import claims  # noqa: F401  (registers every result's certificate builder)
    from .certificates import verify
    from .checks.low_rank import low_rank_head
    from .checks.multihead import recovered_model
    from .checks.one_layer_reduction import one_layer_instance
    from .checks.relu_ffn_exact import relu_ffn_instance
    from .fields import EXP, QQ
    from .learners import learn_low_rank, learn_multihead, learn_one_layer, learn_relu_ffn
    from .learners.low_rank import adaptive_query_count
    from .models import ReluFFN, canonical, relu_equivalent
    from .models.multihead import random_multihead, same_heads
    from .oracle import ValueOracle

    if args.field != "EXP":
        _stderr(f"exactattn learn: error: {args.label} runs exactly; omit --field")
        return EXIT_USAGE
    d, seed, label = args.d, args.seed, args.label
    expected: int | None = None
    start = time.perf_counter()
    if label == "relu_ffn_exact":
        target: Any = relu_ffn_instance(d, args.m, seed, field=QQ)
        oracle = ValueOracle(target)
        rec = learn_relu_ffn(oracle, seed=seed)
        truth = relu_equivalent(ReluFFN(rec.params["A"], rec.params["w"], field=QQ), target)
    elif label == "one_layer_reduction":
        target = one_layer_instance(d, args.m, seed)
        oracle = ValueOracle(target)
        rec = learn_one_layer(oracle, seed=seed)
        truth = bool((rec.W == target.W).all())
    elif label == "low_rank_adaptive":
        target = low_rank_head(d, args.rank, seed, field=EXP)
        oracle = ValueOracle(target)
        rec = learn_low_rank(oracle, rank=args.rank, method="adaptive", seed=seed)
        expected = adaptive_query_count(d, args.rank)
        truth = bool((rec.W == target.W).all() and (rec.v == target.v).all())
    else:  # multihead_canonical
        target = random_multihead(args.heads, d, seed)
        oracle = ValueOracle(target)
        rec = learn_multihead(oracle, heads=args.heads, seed=seed)
        truth = same_heads(canonical(recovered_model(rec)), canonical(target))
    seconds = time.perf_counter() - start
    cert = verify(rec, oracle, probes=args.certificate_probes, seed=seed)
    info = {"label": label, "d": d, "seed": seed, "queries": rec.queries,
            "expected_queries": expected, "queries_by_phase": dict(rec.queries_by_phase),
            "status": rec.status, "hypotheses": list(rec.hypotheses),
            "matches_truth": bool(truth),
            "certificate": {**cert.to_json(), "text": str(cert)},
            "seconds": {"total": seconds, "oracle": oracle.seconds}}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"{label} on a seeded instance (d = {d}, seed = {seed})\n"
              f"  queries      {rec.queries}"
              + (f" (expected {expected})" if expected is not None else "")
              + f"  by phase {dict(rec.queries_by_phase)}\n"
              f"  status       {rec.status_text()}\n"
              f"  truth        {'recovered exactly' if truth else 'DIFFERS'}\n"
              f"  certificate  {cert}\n"
              f"  seconds      {seconds:.3f} total, {oracle.seconds:.3f} in the oracle")
    return EXIT_OK if cert.holds and truth else EXIT_FAILED


def _rational_arg(text: str) -> Fraction:
    try:
        q = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a rational such as 1/2") from None
    return q


def _learn_noisy(args: argparse.Namespace) -> int:
    from .certificates import verify
    from .fields import EXP
    from .instances import noisy_single_head_instance
    from .learners.noisy import learn_single_head_noisy
    from .oracle import NoisyOracle

    if args.field != "EXP":
        _stderr("exactattn learn: error: noisy_oracle runs on an exact hidden model; the "
                "answers are rationals within the tolerance (omit --field)")
        return EXIT_USAGE
    inst, margin = noisy_single_head_instance(args.d, args.seed)
    oracle = NoisyOracle(inst.model, tolerance=Fraction(1, 50), adversary=args.adversary,
                         seed=args.seed)
    progress = _Progress("measuring W, column", not args.no_progress and args.d >= 16)
    start = time.perf_counter()
    rec = learn_single_head_noisy(oracle, epsilon_W=args.epsilon_W, epsilon_v=args.epsilon_v,
                                  W_bound=2, margin=margin, progress=progress)
    seconds = time.perf_counter() - start
    cstart = time.perf_counter()
    cert = verify(rec, oracle, probes=args.certificate_probes, seed=args.seed)
    cert_seconds = time.perf_counter() - cstart
    to_q = EXP.to_rational
    errors = [abs(Fraction(str(rec.W[i, j])) - Fraction(str(to_q(inst.model.W[i, j]))))
              for i in range(args.d) for j in range(args.d)]
    bound = Fraction(rec.options["W_entry_bound"])
    info = {
        "label": rec.label, "paper_ref": rec.paper_ref, "instance": inst.name, "d": args.d,
        "adversary": args.adversary, "margin": str(margin), "W_bound": "2",
        "epsilon_W": str(args.epsilon_W), "epsilon_v": str(args.epsilon_v),
        "tolerances": {"tau_f": rec.options["bounds"]["tau_f"],
                       "tau_v": rec.options["bounds"]["tau_v"]},
        "queries": rec.queries, "expected_queries": args.d + args.d**2,
        "queries_by_phase": dict(rec.queries_by_phase),
        "status": rec.status, "hypotheses": list(rec.hypotheses),
        "max_entry_error": float(max(errors)), "entry_bound": float(bound),
        "within_bound": max(errors) <= bound, "clipped": rec.options["clipped"],
        "certificate": {**cert.to_json(), "text": str(cert)},
        "seconds": {"total": seconds, "oracle": oracle.seconds, "certificate": cert_seconds},
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"{rec.label} on {inst.name}, adversary {args.adversary}\n"
              f"  tolerances   tau_f = {info['tolerances']['tau_f']}, "
              f"tau_v = {info['tolerances']['tau_v']}\n"
              f"  queries      {rec.queries} (expected d + d^2 = {args.d + args.d**2})\n"
              f"  status       {rec.status_text()}\n"
              f"  max error    {info['max_entry_error']:.3e} <= bound {float(bound):.3e}: "
              f"{'yes' if info['within_bound'] else 'NO'} (exact comparison)\n"
              f"  certificate  {cert}\n"
              f"  seconds      {seconds:.3f} total, {oracle.seconds:.3f} in the oracle")
    return EXIT_OK if cert.holds and info["within_bound"] else EXIT_FAILED


# -- replay ---------------------------------------------------------------------
def _cmd_replay(args: argparse.Namespace) -> int:
    from .certificates import verify
    from .fields import field_by_name
    from .instances import single_head_instance
    from .learners.recovery import Recovery
    from .oracle import ValueOracle

    try:
        with open(args.file, encoding="utf-8") as fh:
            saved = json.load(fh)
        rec = Recovery.from_json(saved["recovery"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _stderr(f"exactattn replay: error: cannot read a saved recovery from {args.file}: {exc}")
        return EXIT_USAGE
    cert = verify(rec, None)
    print(f"transcript replay: {cert}")
    ok = cert.holds
    inst_info = saved.get("instance")
    if inst_info and inst_info.get("kind") == "single_head" and args.certificate_probes > 0:
        field = field_by_name(inst_info["field"])
        inst = single_head_instance(int(inst_info["d"]), int(inst_info["seed"]), field=field)
        fresh = verify(rec, ValueOracle(inst.model), probes=args.certificate_probes,
                       seed=args.seed)
        print(f"against the built-in instance {inst.name}: {fresh}")
        ok = ok and fresh.holds
    return EXIT_OK if ok else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="exactattn",
        description="Learn attention models from value queries; check the claims of "
                    "'Provably Learning Attention with Queries' in exact arithmetic.",
    )
    parser.add_argument("--version", action="version", version=f"exactattn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("verify", help="check every claim on the built-in instances",
                       description="Run every registered claim on the built-in seeded "
                                   "instances; one line per claim; exit 1 if any fails.")
    p.add_argument("--json", metavar="FILE", help="also write a JSON report to FILE")
    p.add_argument("--only", nargs="+", metavar="ID", help="only these claim ids or labels")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=_cmd_verify)

    p = sub.add_parser("claims", help="list the registered claims",
                       description="List the claims: id, paper reference, title.")
    p.add_argument("--json", action="store_true", help="as JSON, with the LaTeX statements")
    p.set_defaults(run=_cmd_claims)

    p = sub.add_parser("latex", help="write the LaTeX proof companion from the registry",
                       description="Run the claims and write one LaTeX section per result "
                                   "label, with statements, results and derivations.")
    p.add_argument("--out", default="proofs", metavar="DIR",
                   help="output folder for main.tex and the generated sections (default "
                        "proofs); works from any directory")
    p.add_argument("--no-check", action="store_true", help="statements only, run no check")
    p.add_argument("--only", nargs="+", metavar="LABEL",
                   help="run only these claim ids or labels (the others print as not run)")
    p.add_argument("--pdf", action="store_true", help="then build DIR/main.pdf with pdflatex")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=_cmd_latex)

    p = sub.add_parser("learn", help="learn a seeded random instance and certify it",
                       description="Build a seeded random instance, run the learner and the "
                                   "certificate, report queries, exactness and seconds.")
    p.add_argument("label", choices=LEARNABLE, help="the result to run")
    p.add_argument("--d", type=int, default=8, help="token dimension (default 8)")
    p.add_argument("--seed", type=int, default=0, help="instance and probe seed (default 0)")
    p.add_argument("--field", default="EXP", choices=["EXP", "QQ", "F64"],
                   help="number field (default EXP, exact)")
    p.add_argument("--probes", default="deterministic", choices=["deterministic", "gaussian"])
    p.add_argument("--certificate-probes", type=int, default=16, metavar="K",
                   help="fresh random queries for the certificate (default 16)")
    p.add_argument("--m", type=int, default=4, help="relu_ffn_exact, one_layer_reduction: "
                   "hidden width (default 4)")
    p.add_argument("--rank", type=int, default=2, help="low_rank_adaptive: rank (default 2)")
    p.add_argument("--heads", type=int, default=2, help="multihead_canonical: H (default 2)")
    p.add_argument("--adversary", default="worst",
                   choices=["uniform", "max", "min", "worst", "break_naive"],
                   help="noisy_oracle: how the oracle uses its tolerance (default worst)")
    p.add_argument("--epsilon-W", dest="epsilon_W", type=_rational_arg, default=Fraction(1, 2),
                   help="noisy_oracle: target Frobenius error of W (default 1/2)")
    p.add_argument("--epsilon-v", dest="epsilon_v", type=_rational_arg, default=Fraction(1, 4),
                   help="noisy_oracle: target 2-norm error of v (default 1/4)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--save", metavar="FILE", help="save the recovery (with transcript) as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    p.set_defaults(run=_cmd_learn)

    p = sub.add_parser("replay", help="re-check a recovery saved with 'learn --save'",
                       description="Replay the saved transcript against the saved model; for a "
                                   "built-in instance also ask fresh queries.")
    p.add_argument("file", help="the JSON file written by 'exactattn learn --save'")
    p.add_argument("--certificate-probes", type=int, default=16, metavar="K")
    p.add_argument("--seed", type=int, default=1, help="seed of the fresh probes (default 1)")
    p.set_defaults(run=_cmd_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.run(args)
    except ExactattnError as exc:
        _stderr(f"exactattn {args.command}: error: {exc}")
        return EXIT_USAGE
    return code
