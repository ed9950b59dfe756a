"""The command line: a thin shell over the public API.

Results go to stdout (text, or JSON with ``--json``), progress and logs to
stderr. Exit codes: 0 ok, 1 a check failed, 2 usage error or bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import ExactattnError
from .progress import ProgressBar

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

LEARNABLE = ("single_head_exact", "noisy_oracle", "relu_ffn_exact", "one_layer_reduction",
             "low_rank_adaptive", "multihead_canonical", "membership_queries")


#: the largest --certificate-probes accepted (each probe is one more oracle query)
MAX_CERTIFICATE_PROBES = 100_000
#: the largest exponent accepted in a number of a replayed file: Fraction("1e999999999")
#: would build a billion-digit integer (Python's own str -> int limit is 4300 digits)
MAX_EXPONENT_DIGITS = 4300
_EXPONENT = re.compile(r"[eE]\s*[+-]?\s*(\d+)")
_LONG_DIGITS = re.compile(r"\d{41,}")


class UsageError(Exception):
    """Bad input found by the CLI itself: one line on stderr, exit 2."""


class _UsageExit(SystemExit):
    """An argparse usage error (exit 2), with its line for a ``--json`` error object."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(EXIT_USAGE)
        self.command = prog.partition(" ")[2]  # "exactattn learn" -> "learn"
        self.message = message


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse exits 2 on usage errors; keep that
        # one line, no usage block: bad input gets exactly one clear line on stderr
        line = _one_line(message)
        self._print_message(f"{self.prog}: error: {line} (see '{self.prog} --help')\n",
                            sys.stderr)
        raise _UsageExit(self.prog, line)


def wants_json(argv: Sequence[str]) -> bool:
    """Does ``argv`` ask for the JSON document on stdout? Then an input error (exit 2) is
    also one JSON object on stdout (:func:`print_json_error`). ``--json`` does, except
    ``verify --json FILE``, which writes FILE and keeps the text on stdout.

    >>> wants_json(["learn", "x", "--json"]), wants_json(["verify", "--json", "r.json"])
    (True, False)
    >>> wants_json(["verify", "--json", "--quiet"]), wants_json(["verify", "--json=-"])
    (True, True)
    """
    for k, a in enumerate(argv):
        if a == "--json=-":
            return True
        if a == "--json":
            after = argv[k + 1] if k + 1 < len(argv) else "-"
            if "verify" not in argv[:k] or after.startswith("-"):
                return True
    return False


def print_json_error(command: str, message: str, exit_code: int = 2) -> None:
    """The ``--json`` form of an input error (exit code 2), or of answers no model gives
    (exit code 1, ``learn --oracle``): one object on stdout
    (``docs/schemas/error.schema.json``); the line on stderr is printed as well."""
    from .report.json import error_report

    print(json.dumps(error_report(command, message, exit_code)), flush=True)


def _command_in(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str:
    """The first sub-command named in ``argv``, or "" (for errors of the top-level parser)."""
    names = [a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return next((a for a in argv if names and a in names[0]), "")


def _one_line(msg: str) -> str:
    """The message on one line, with every run of more than 40 digits shortened."""
    return _LONG_DIGITS.sub(lambda m: f"{m.group()[:12]}...({len(m.group())} digits)",
                            " ".join(str(msg).split()))


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], checked before anything is built."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            span = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def _check_writable(path: str, flag: str) -> None:
    """Refuse an output file that cannot be written, before any work is done.

    The file is opened for appending (nothing is truncated) and removed again
    if this check created it.
    """
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} {path} is a directory; give a file name")
    existed = p.exists()
    try:
        with open(p, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write {flag} {path}: {exc.strerror or exc}") from None
    if not existed:
        p.unlink(missing_ok=True)


def _check_writable_dir(path: str, flag: str) -> None:
    """Create the output folder if needed and check that a file can be written in it."""
    import tempfile

    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write into {flag} {path}: {exc.strerror or exc}") from None


def _write_json_file(obj: Any, path: str, flag: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2)
            fh.write("\n")
    except OSError as exc:  # checked before the work; this is a race with the file system
        raise UsageError(f"cannot write {flag} {path}: {exc.strerror or exc}") from None


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux MemAvailable, else RAM size)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 2**63


def memory_estimate(label: str, d: int, *, m: int = 1, rank: int = 0, heads: int = 1,
                    field: str = "EXP") -> int:
    """A lower estimate of the bytes a ``learn`` run holds at once.

    Counts only what the run cannot avoid: the learner's d x d matrices (3 of
    them: probes, logits, W; per head for multi-head; d x m for the ReLU
    layer) and the transcript it keeps (every query of its closed-form count,
    2d entries each), at 8 bytes per float64 entry and 8 + 32 bytes per exact
    entry (a pointer and an fmpq) for matrices, 8 (a pointer) per transcript
    entry. The true peak is larger (measured: about 3.5x for F64 at d = 256).
    """
    exact = field != "F64"
    per_param = 40 if exact else 8
    if label in ("single_head_exact", "noisy_oracle", "membership_queries"):
        params, queries = 3 * d * d, d + d * d  # membership: d^2 L(2M) >= d^2 labels
        keep = exact or d <= 256
    elif label == "low_rank_adaptive":
        params, queries, keep = 3 * d * d, rank * (2 * d - rank) + d, True
    elif label == "one_layer_reduction":
        params, queries, keep = 3 * d * d + 2 * d * m, 2 * (d + d * d), True
    elif label == "relu_ffn_exact":
        params, queries, keep = 3 * d * m, d * m, True
    elif label == "multihead_canonical":
        params, queries, keep = 3 * heads * d * d, heads * d * d, True
    else:  # a label without its own estimate: every learner here holds a d x d matrix
        params, queries, keep = d * d, 0, False
    return per_param * params + (8 * 2 * d * queries if keep else 0)


def _check_memory(label: str, size: str, d: int, *, m: int, rank: int, heads: int,
                  field: str) -> None:
    """Refuse, with the estimate, a run that needs more memory than is available."""
    need = memory_estimate(label, d, m=m, rank=rank, heads=heads, field=field)
    have = available_memory()
    if need > have:
        raise UsageError(
            f"{label} at {size} needs at least {_human(need)} of memory (lower estimate: "
            f"matrices and transcript), more than the {_human(have)} available; choose a "
            "smaller size")


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.3g} EB"


def _claims_progress(quiet: bool) -> tuple[Callable[[Any, int, int], None], ProgressBar]:
    """The claims' progress: a bar on a terminal, else one log line per claim on stderr."""
    bar = ProgressBar("claims", not quiet)

    def progress(c: Any, k: int, n: int) -> None:
        if bar.active:
            bar(k, n, c.id)
        elif not quiet:
            _stderr(f"[{k + 1}/{n}] {c.id} ...")

    return progress, bar


# -- verify -------------------------------------------------------------------------
def _cmd_verify(args: argparse.Namespace) -> int:
    from .claims import REGISTRY, run_claims
    from .report import claim_line, verify_report, verify_summary

    select = args.only or None
    if select is not None:
        known = {c.id for c in REGISTRY} | {c.label for c in REGISTRY}
        unknown = [s for s in select if s not in known]
        if unknown:
            raise UsageError(f"unknown claim or label {', '.join(unknown)}; see "
                             "'exactattn claims'")
    to_stdout = args.json == "-"  # --json alone: the report on stdout, and nothing else
    if args.json and not to_stdout:
        _check_writable(args.json, "--json")

    progress, bar = _claims_progress(args.quiet)
    start = time.perf_counter()
    with bar:
        results = run_claims(select, progress=progress)
    seconds = time.perf_counter() - start
    if to_stdout:
        print(json.dumps(verify_report(results, seconds), indent=2))
        return EXIT_OK if all(r.holds for r in results) else EXIT_FAILED
    for r in results:
        print(claim_line(r))
    print(verify_summary(results, seconds))
    if args.json:
        _write_json_file(verify_report(results, seconds), args.json, "--json")
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

    from .claims import run_claims
    from .report.json import latex_report
    from .report.latex import not_verified, write_companion

    _check_writable_dir(args.out, "--out")  # before the claims run, not after
    if args.pdf and shutil.which("pdflatex") is None:
        raise UsageError("--pdf needs pdflatex on the PATH")
    progress, bar = _claims_progress(args.quiet)
    with bar:
        results = [] if args.no_check else run_claims(args.only or None, progress=progress)
    out = Path(args.out)
    written = write_companion(out, results, args.figures or ())
    for path in written if not args.json else ():
        print(path)
    failures = not_verified(results)
    for line in failures:
        _stderr(f"NOT VERIFIED: {line}")
    pdf, pdf_failed = None, False
    if args.pdf:
        for _ in range(3):  # contents, references, the page count
            run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                                  "main.tex"], cwd=out, capture_output=True,
                                 text=True, errors="replace", check=False)
            if run.returncode != 0:
                _stderr(run.stdout[-2000:])
                _stderr("exactattn latex: pdflatex failed")
                pdf_failed = True
                break
        else:
            pdf = out / "main.pdf"
            if not args.json:
                print(pdf)
    if args.json:
        print(json.dumps(latex_report(out, written, results, failures, pdf, pdf_failed),
                         indent=2))
    return EXIT_FAILED if failures or pdf_failed else EXIT_OK


# -- learn ----------------------------------------------------------------------
def _learn_single_head(args: argparse.Namespace) -> int:
    from .certificates import verify
    from .fields import F64, QQ, field_by_name
    from .instances import single_head_instance
    from .learners import learn_single_head
    from .learners.single_head import query_count
    from .oracle import ValueOracle
    from .report import learn_summary
    from .report.json import certificate_json

    field = field_by_name(args.field)
    if field is QQ:
        raise UsageError("single_head_exact cannot run over QQ: softmax answers are not "
                         "rational (e^q is irrational for rational q != 0). Use --field EXP "
                         "(exact) or --field F64 (float64).")
    inst = single_head_instance(args.d, args.seed, field=field)
    oracle = ValueOracle(inst.model, keep_transcript=args.d <= 256 or field is not F64)
    progress = ProgressBar("measuring W, column", not args.no_progress and args.d >= 64)
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
        "certificate": certificate_json(cert),
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
    _save(args, rec, cert, {"kind": "single_head", "d": args.d, "seed": args.seed,
                            "field": field.name}, inst.model)
    print(json.dumps(info, indent=2) if args.json else learn_summary(info))
    ok = cert.holds and info.get("matches_truth", True) is True
    return EXIT_OK if ok else EXIT_FAILED


def _cmd_learn(args: argparse.Namespace) -> int:
    # every argument is checked before anything is built (argparse checked the signs)
    if args.d < 1:
        raise UsageError(f"--d must be at least 1, got {args.d}")
    if args.label == "low_rank_adaptive" and args.rank > args.d:
        raise UsageError(f"--rank {args.rank} exceeds --d {args.d}: a d x d matrix W has "
                         "rank(W) <= d")
    if args.save:
        _check_writable(args.save, "--save")
    if args.oracle or args.journal:  # a model behind an HTTP server, resumable (issue 16)
        if not args.oracle:
            raise UsageError("--journal needs --oracle URL: it journals a remote run")
        from .cli_remote import learn_remote

        return learn_remote(args)
    if args.instance:  # a user's own instance file (docs/instances.md): its own sizes
        from .cli_instance import learn_from_file

        return learn_from_file(args)
    size = f"--d {args.d}" + (
        f" --m {args.m}" if args.label in ("relu_ffn_exact", "one_layer_reduction")
        else f" --heads {args.heads}" if args.label == "multihead_canonical" else "")
    _check_memory(args.label, size, args.d, m=args.m, rank=args.rank, heads=args.heads,
                  field=args.field)
    if args.label == "noisy_oracle":
        return _learn_noisy(args)
    if args.label == "single_head_exact":
        return _learn_single_head(args)
    return _learn_other(args)


#: --save writes the hidden model as an instance file ("hidden") up to this many numbers,
#: every parameter counted (instance_files.instance_size: H d^2 + H d for H heads)
MAX_SAVED_HIDDEN_ENTRIES = 100_000


def _save(args: argparse.Namespace, rec: Any, cert: Any, instance: dict[str, Any],
          model: Any = None) -> None:
    """``--save``: the recovery with its transcript (a large F64 one in a ``.npz`` beside
    the file, :meth:`~exactattn.learners.Recovery.sidecar_for`), the instance (how it was
    drawn), the hidden model in the instance-file format (docs/instances.md) and the
    certificate."""
    if args.save:
        sidecar = rec.sidecar_for(args.save)
        try:
            saved = {"recovery": rec.to_json(transcript_file=sidecar), "instance": instance,
                     "certificate": cert.to_json()}
        except OSError as exc:
            raise UsageError(f"cannot write --save {sidecar}: {exc.strerror or exc}") from None
        if model is not None:
            from .instance_files import instance_size, instance_to_json

            size, how = instance_size(model)
            if size <= MAX_SAVED_HIDDEN_ENTRIES:
                saved["hidden"] = instance_to_json(model)
            else:
                _stderr(f"--save {args.save}: the hidden model is not written under "
                        f"\"hidden\": it holds {how} numbers, more than the "
                        f"{MAX_SAVED_HIDDEN_ENTRIES} --save writes; \"instance\" still says "
                        "how it was drawn")
        _write_json_file(saved, args.save, "--save")
        _stderr(f"recovery saved to {args.save}"
                + (f" (transcript in {sidecar})" if sidecar else ""))


def _print_learned(as_json: bool, info: dict[str, Any], header: str,
                   rows: Sequence[tuple[str, str]]) -> None:
    """A learn result on stdout: ``info`` as JSON (``--json``), else the header and one
    aligned line per (name, text) row."""
    print(json.dumps(info, indent=2) if as_json
          else "\n".join([header, *(f"  {name:<12} {text}" for name, text in rows)]))


def _seeded_instance(label: str, d: int, seed: int, *, m: int, rank: int,
                     heads: int) -> tuple[str, Any]:
    """(name, hidden model) of the seeded instance ``learn LABEL`` draws and replay rebuilds
    (relu_ffn_exact, one_layer_reduction, low_rank_adaptive, multihead_canonical)."""
    if label == "relu_ffn_exact":
        from .checks.relu_ffn_exact import relu_ffn_instance

        return f"{label}(d={d}, m={m}, seed={seed})", relu_ffn_instance(d, m, seed)
    if label == "one_layer_reduction":
        from .checks.one_layer_reduction import one_layer_instance

        return f"{label}(d={d}, m={m}, seed={seed})", one_layer_instance(d, m, seed)
    if label == "low_rank_adaptive":
        from .checks.low_rank import low_rank_head

        return f"{label}(d={d}, rank={rank}, seed={seed})", low_rank_head(d, rank, seed)
    from .models.multihead import random_multihead

    return f"{label}(d={d}, heads={heads}, seed={seed})", random_multihead(heads, d, seed)


def _learn_other(args: argparse.Namespace) -> int:
    """The exact results on a seeded instance: learn, compare with the truth, certify.

    Every label but membership_queries is learned as an instance file would be
    (:func:`exactattn.instance_files.learn_instance`, the same learner, comparison
    with the truth and certificate).
    """
    from .certificates import verify
    from .instance_files import instance_spec, learn_instance
    from .learners.low_rank import adaptive_query_count
    from .report.json import certificate_json

    if args.field != "EXP":
        raise UsageError(f"{args.label} runs exactly; omit --field")
    d, seed, label = args.d, args.seed, args.label
    expected: int | None = None
    start = time.perf_counter()
    if label == "membership_queries":  # labels sign(f(X)); W exact, v up to scale
        from .checks.membership_queries import membership_instance
        from .learners import learn_single_head_membership
        from .learners.membership import query_count
        from .oracle import SignOracle

        inst = membership_instance(d, seed, zeros_in_v=d // 4)
        target, oracle = inst.model, SignOracle(inst.model)
        rec = learn_single_head_membership(oracle, max_abs=inst.max_abs,
                                           max_denominator=inst.max_denominator)
        expected = query_count(d, sum(1 for x in target.v if x != 0), inst.max_abs,
                               inst.max_denominator)
        truth = bool((rec.W == target.W).all()
                     and (rec.v == target.v / abs(target.v[inst.pivot])).all())
        cert = verify(rec, oracle, probes=args.certificate_probes, seed=seed)
    else:
        _, target = _seeded_instance(label, d, seed, m=args.m, rank=args.rank, heads=args.heads)
        rank = args.rank if label == "low_rank_adaptive" else None
        result = learn_instance(instance_spec(target, rank=rank), label, seed=seed,
                                certificate_probes=args.certificate_probes)
        rec, cert, truth, oracle = (result.recovery, result.certificate,
                                    result.matches_truth, result.oracle)
        if rank is not None:
            expected = adaptive_query_count(d, rank)
    seconds = time.perf_counter() - start
    _save(args, rec, cert, {"kind": label, "d": d, "seed": seed, "m": args.m,
                            "rank": args.rank, "heads": args.heads}, target)
    info = {"label": label, "d": d, "seed": seed, "queries": rec.queries,
            "expected_queries": expected, "queries_by_phase": dict(rec.queries_by_phase),
            "status": rec.status, "hypotheses": list(rec.hypotheses),
            "matches_truth": bool(truth),
            "certificate": certificate_json(cert),
            "seconds": {"total": seconds, "oracle": oracle.seconds}}
    _print_learned(args.json, info, f"{label} on a seeded instance (d = {d}, seed = {seed})", [
        ("queries", f"{rec.queries}" + (f" (expected {expected})" if expected is not None
                                        else "") + f"  by phase {dict(rec.queries_by_phase)}"),
        ("status", rec.status_text()),
        ("truth", "recovered exactly" if truth else "DIFFERS"),
        ("certificate", str(cert)),
        ("seconds", f"{seconds:.3f} total, {oracle.seconds:.3f} in the oracle")])
    return EXIT_OK if cert.holds and truth else EXIT_FAILED


def _huge_exponent(text: str) -> bool:
    """Does ``text`` hold a decimal exponent beyond MAX_EXPONENT_DIGITS? (Fraction("1e999999999")
    would build a billion-digit integer: such text is refused at once.)"""
    return any(len(m.group(1)) > 4 or int(m.group(1)) > MAX_EXPONENT_DIGITS
               for m in _EXPONENT.finditer(text))


def _rational_arg(text: str) -> Fraction:
    if _huge_exponent(text):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} has a decimal exponent beyond "
                                         f"{MAX_EXPONENT_DIGITS}")
    if len(text) > MAX_EXPONENT_DIGITS:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}... is longer than "
                                         f"{MAX_EXPONENT_DIGITS} characters")
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
    from .report.json import certificate_json

    if args.field != "EXP":
        raise UsageError("noisy_oracle runs on an exact hidden model; the answers are "
                         "rationals within the tolerance (omit --field)")
    inst, margin = noisy_single_head_instance(args.d, args.seed)
    oracle = NoisyOracle(inst.model, tolerance=Fraction(1, 50), adversary=args.adversary,
                         seed=args.seed)
    progress = ProgressBar("measuring W, column", not args.no_progress and args.d >= 16)
    start = time.perf_counter()
    rec = learn_single_head_noisy(oracle, epsilon_W=args.epsilon_W, epsilon_v=args.epsilon_v,
                                  W_bound=2, margin=margin, progress=progress)
    seconds = time.perf_counter() - start
    cstart = time.perf_counter()
    cert = verify(rec, oracle, probes=args.certificate_probes, seed=args.seed)
    cert_seconds = time.perf_counter() - cstart
    _save(args, rec, cert, {"kind": "noisy_single_head", "d": args.d, "seed": args.seed,
                            "adversary": args.adversary}, inst.model)
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
        "certificate": certificate_json(cert),
        "seconds": {"total": seconds, "oracle": oracle.seconds, "certificate": cert_seconds},
    }
    _print_learned(args.json, info, f"{rec.label} on {inst.name}, adversary {args.adversary}", [
        ("tolerances", f"tau_f = {info['tolerances']['tau_f']}, "
                       f"tau_v = {info['tolerances']['tau_v']}"),
        ("queries", f"{rec.queries} (expected d + d^2 = {args.d + args.d**2})"),
        ("status", rec.status_text()),
        ("max error", f"{info['max_entry_error']:.3e} <= bound {float(bound):.3e}: "
                      f"{'yes' if info['within_bound'] else 'NO'} (exact comparison)"),
        ("certificate", str(cert)),
        ("seconds", f"{seconds:.3f} total, {oracle.seconds:.3f} in the oracle")])
    return EXIT_OK if cert.holds and info["within_bound"] else EXIT_FAILED


# -- replay ---------------------------------------------------------------------
#: the characters of a string that Fraction could read as a number (a decimal, an exponent,
#: a ratio): only such strings are checked for huge exponents (a sha256 digest is not one)
_NUMBER_CHARS = frozenset("0123456789+-./eE_ \t")


def _check_numbers(obj: Any, where: str = "file") -> None:
    """Refuse a number-like string with a huge decimal exponent anywhere in a saved file
    (iteratively); strings with any other character (digests, names, paths) are not
    numbers and are left alone."""
    stack: list[tuple[Any, str]] = [(obj, where)]
    while stack:
        x, at = stack.pop()
        if isinstance(x, dict):
            stack.extend((v, f"{at}.{k}") for k, v in x.items())
        elif isinstance(x, list):
            stack.extend((v, f"{at}[{k}]") for k, v in enumerate(x))
        elif isinstance(x, str) and _NUMBER_CHARS.issuperset(x) and _huge_exponent(x):
            raise UsageError(f"{at} = {x[:40]!r} has a decimal exponent beyond "
                             f"{MAX_EXPONENT_DIGITS}; not a number a recovery holds")


#: the keys of a saved recovery and the JSON types they must have
def _load_saved(path: str) -> tuple[Any, dict[str, Any] | None]:
    """The Recovery and the instance block of a file written by ``learn --save``.

    Every way a file can be wrong (missing, not JSON, a missing key, a value of
    the wrong type, a zero denominator, an unknown field, ...) is a
    :class:`UsageError` naming the file and the problem.
    """
    from .learners.recovery import Recovery

    def bad(problem: str) -> UsageError:
        return UsageError(f"cannot read a saved recovery from {path}: {_one_line(problem)}")

    try:
        with open(path, encoding="utf-8") as fh:
            saved = json.load(fh)
    except OSError as exc:
        raise bad(exc.strerror or str(exc)) from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, too deep, bad int literal
        raise bad(f"not valid JSON ({exc})") from None
    if isinstance(saved, dict) and "recovery" not in saved and "params" in saved:
        saved = {"recovery": saved}  # the file Recovery.save / Recovery.to_json writes
    if not isinstance(saved, dict) or not isinstance(saved.get("recovery"), dict):
        raise bad("expected an object with a 'recovery' object (written by 'exactattn learn "
                  "--save')")
    _check_numbers(saved, path)
    try:
        rec = Recovery.from_json(saved["recovery"],
                                 base=os.path.dirname(os.path.abspath(path)))
    except ExactattnError as exc:  # Recovery.from_json names every malformation
        raise bad(str(exc) or type(exc).__name__) from None
    inst = saved.get("instance")
    if inst is not None and not isinstance(inst, dict):
        raise bad("'instance' is not an object")
    return rec, inst


#: saved instance kinds (besides single_head) that replay rebuilds for fresh queries
_REBUILT_KINDS = ("relu_ffn_exact", "one_layer_reduction", "low_rank_adaptive",
                  "multihead_canonical")


def _builtin_instance(inst: dict[str, Any], rec: Any, path: str) -> tuple[str, Any] | None:
    """("the built-in instance NAME", hidden model) of the instance a saved recovery names
    (or of the instance file saved beside it), or None.

    Every value of the instance block is checked (types, sizes, the recovery's d and
    label, the memory the model needs) before the model is built.
    """
    from .fields import F64, field_by_name
    from .instances import single_head_instance

    if inst.get("kind") == "remote":  # learn --oracle URL: the hidden model is the server's
        return None
    if "model" in inst:  # an instance file (docs/instances.md), saved by learn --instance
        from .cli_instance import saved_instance

        return saved_instance(inst, rec, path)
    if inst.get("kind") == "checkpoint_layer":  # learn layer --save: the layer's read-out
        from .cli_layer import saved_layer_instance

        return saved_layer_instance(inst, rec, path)
    kind = inst.get("kind")
    if kind == "single_head":
        d, seed, name = inst.get("d"), inst.get("seed"), inst.get("field")
        if (isinstance(d, bool) or not isinstance(d, int) or d != rec.d
                or isinstance(seed, bool) or not isinstance(seed, int) or seed < 0
                or name not in ("EXP", "F64")):
            raise UsageError(f"{path}: the instance block {json.dumps(inst)[:120]} is not a "
                             f"built-in single-head instance with d = {rec.d} (the "
                             "recovery's), a seed >= 0 and field EXP or F64")
        field = field_by_name(name)
        if (field is F64) != (rec.field is F64):
            raise UsageError(f"{path}: the instance is over {name}, the recovery over "
                             f"{rec.field.name}")
        single = single_head_instance(d, seed, field=field)
        return f"the built-in instance {single.name}", single.model
    if kind not in _REBUILT_KINDS:
        return None
    if kind != rec.label:
        raise UsageError(f"{path}: the instance is a {kind} instance, the recovery a "
                         f"{rec.label} recovery")
    sizes = {k: inst.get(k) for k in ("d", "seed", "m", "rank", "heads")}
    wrong = [k for k, x in sizes.items()
             if isinstance(x, bool) or not isinstance(x, int) or x < 0]
    if wrong or sizes["d"] != rec.d:
        raise UsageError(f"{path}: the instance block {json.dumps(inst)[:120]} needs integers "
                         f">= 0 for d, seed, m, rank, heads and d = {rec.d} (the recovery's)")
    d, seed, m, r, heads = (x for x in sizes.values() if isinstance(x, int))  # checked above
    need, have = memory_estimate(kind, d, m=m, rank=r, heads=heads), available_memory()
    if need > have:
        raise UsageError(f"{path}: rebuilding the instance needs at least {_human(need)}, "
                         f"more than the {_human(have)} available")
    name, model = _seeded_instance(kind, d, seed, m=m, rank=r, heads=heads)
    return f"the built-in instance {name}", model


def replay_saved(path: str, *, certificate_probes: int = 16, seed: int = 1
                 ) -> tuple[Any, list[tuple[str, Any]]]:
    """Re-check a file written by ``learn --save`` or ``Recovery.save``.

    Returns the recovery and its certificates, each with what it checked: the
    transcript replayed offline, then (when the file names its hidden instance
    and ``certificate_probes > 0``) ``certificate_probes`` fresh queries of that
    instance. A bad file raises :class:`UsageError` or an ``ExactattnError``.
    The replay holds when :func:`replay_holds` says so.
    """
    from .certificates import verify
    from .oracle import ValueOracle

    rec, inst_info = _load_saved(path)
    inst = _builtin_instance(inst_info, rec, path) if inst_info else None
    certs = [("transcript replay", verify(rec, None))]
    if inst is not None and certificate_probes > 0:
        name, model = inst
        certs.append((f"against {name}", verify(rec, ValueOracle(model),
                                                 probes=certificate_probes, seed=seed)))
    return rec, certs


def replay_holds(certs: Sequence[Any]) -> bool:
    """Something was checked, and every certificate that checked something holds."""
    checked = [c for c in certs if c.checked > 0]
    return bool(checked) and all(c.holds for c in checked)


def _cmd_replay(args: argparse.Namespace) -> int:
    rec, certs = replay_saved(args.file, certificate_probes=args.certificate_probes,
                              seed=args.seed)
    holds = replay_holds([c for _, c in certs])
    if args.json:
        from .report.json import replay_report

        print(json.dumps(replay_report(args.file, rec, certs, holds), indent=2))
        return EXIT_OK if holds else EXIT_FAILED
    for k, (what, cert) in enumerate(certs):
        print(f"{what}: {cert}")
        if k == 0 and len(rec.transcript) < rec.queries:
            print(f"  note: the transcript holds {len(rec.transcript)} of the {rec.queries} "
                  "queries the learner spent")
    if not any(c.checked for _, c in certs):
        print("nothing was checked: the replay does not hold")
    return EXIT_OK if holds else EXIT_FAILED


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
    p.add_argument("--json", metavar="FILE", nargs="?", const="-",
                   help="the JSON report on stdout instead of the text lines; with FILE, "
                        "the text on stdout and the report written to FILE")
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
    p.add_argument("--figures", nargs="+", metavar="JSON",
                   help="benchmark output drawn as figures: benchmarks/noisy.py --curve-out, "
                        "benchmarks/low_rank.py --grid")
    p.add_argument("--pdf", action="store_true", help="then build DIR/main.pdf with pdflatex")
    p.add_argument("--json", action="store_true",
                   help="print the files written, the claims run and the PDF as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=_cmd_latex)

    p = sub.add_parser("learn", help="learn a seeded random instance and certify it",
                       description="Build a seeded random instance, run the learner and the "
                                   "certificate, report queries, exactness and seconds.")
    p.add_argument("label", choices=LEARNABLE, help="the result to run")
    p.add_argument("--d", type=_int_at_least(1), default=8, help="token dimension (default 8)")
    p.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="instance and probe seed, >= 0 (default 0)")
    p.add_argument("--field", default="EXP", choices=["EXP", "QQ", "F64"],
                   help="number field (default EXP, exact)")
    p.add_argument("--probes", default="deterministic", choices=["deterministic", "gaussian"])
    p.add_argument("--certificate-probes", type=_int_at_least(0, MAX_CERTIFICATE_PROBES),
                   default=16, metavar="K",
                   help="fresh random queries for the certificate (default 16)")
    p.add_argument("--m", type=_int_at_least(1), default=4,
                   help="relu_ffn_exact, one_layer_reduction: hidden width >= 1 (default 4)")
    p.add_argument("--rank", type=_int_at_least(0), default=2,
                   help="low_rank_adaptive: rank, 0 <= rank <= d (default 2)")
    p.add_argument("--heads", type=_int_at_least(1), default=2,
                   help="multihead_canonical: H >= 1 (default 2)")
    p.add_argument("--adversary", default="worst",
                   choices=["uniform", "max", "min", "worst", "break_naive"],
                   help="noisy_oracle: how the oracle uses its tolerance (default worst)")
    p.add_argument("--epsilon-W", dest="epsilon_W", type=_rational_arg, default=Fraction(1, 2),
                   help="noisy_oracle: target Frobenius error of W (default 1/2)")
    p.add_argument("--epsilon-v", dest="epsilon_v", type=_rational_arg, default=Fraction(1, 4),
                   help="noisy_oracle: target 2-norm error of v (default 1/4)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--save", metavar="FILE", help="save the recovery (with transcript) as JSON")
    p.add_argument("--instance", metavar="FILE",
                   help="learn this instance file instead of a seeded one (docs/instances.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    p.add_argument("--oracle", metavar="URL",
                   help="learn from the server at URL ('exactattn serve'; single_head_exact, "
                        "low_rank_adaptive); --field and --d must be the server's")
    p.add_argument("--journal", metavar="FILE",
                   help="with --oracle: journal every answer to FILE (SQLite) and resume from "
                        "it (docs/remote.md)")
    p.add_argument("--batch-size", type=_int_at_least(1, 65_536), default=256, metavar="B",
                   help="with --oracle: queries per HTTP request (default 256)")
    p.set_defaults(run=_cmd_learn)

    p = sub.add_parser("replay", help="re-check a recovery saved with 'learn --save'",
                       description="Replay the saved transcript against the saved model; for a "
                                   "built-in instance also ask fresh queries.")
    p.add_argument("file", help="the JSON file written by 'exactattn learn --save'")
    p.add_argument("--certificate-probes", type=_int_at_least(0, MAX_CERTIFICATE_PROBES),
                   default=16, metavar="K")
    p.add_argument("--seed", type=_int_at_least(0), default=1,
                   help="seed of the fresh probes, >= 0 (default 1)")
    p.add_argument("--json", action="store_true", help="print the certificates as JSON")
    p.set_defaults(run=_cmd_replay)

    from .remote.server import add_parser as add_serve_parser  # issue 16: exactattn serve
    add_serve_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 a check failed, 2 bad input)."""
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:2] == ["learn", "checkpoint"]:  # one head of a .safetensors file (issue 12)
        from .cli_checkpoint import main as learn_checkpoint
        return learn_checkpoint(given[2:])
    if given[:2] == ["learn", "layer"]:  # every head of a checkpoint layer (issue 15 §3)
        from .cli_layer import main as learn_layer
        return learn_layer(given[2:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        if isinstance(exc, _UsageExit) and wants_json(given):
            # unrecognized arguments are found by the top-level parser: name the command
            print_json_error(exc.command or _command_in(parser, given), exc.message)
        return exc.code if isinstance(exc.code, int) else EXIT_OK if exc.code is None \
            else EXIT_USAGE
    if getattr(args, "run", None) is None:
        _stderr("exactattn: error: a command is required: verify, claims, learn, replay, "
                "latex or serve (see 'exactattn --help')")
        return EXIT_USAGE
    try:
        code: int = args.run(args)
    except (ExactattnError, UsageError) as exc:
        _stderr(f"exactattn {args.command}: error: {_one_line(str(exc))}")
        if getattr(args, "json", None) in (True, "-"):  # the JSON document goes to stdout
            print_json_error(args.command, _one_line(str(exc)))
        return EXIT_USAGE
    return code
