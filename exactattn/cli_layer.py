"""``exactattn learn layer FILE --layer L [--heads ...]``: every head of a checkpoint layer.

Reads layer L of a BERT-style ``.safetensors`` file
(:func:`exactattn.checkpoints.load_layer`; the head count from ``--num-heads``
or ``config.json`` beside the file), sums the chosen heads (default all) as
the layer does and reads the attention output at the last position out by a
vector rho, before the residual and the LayerNorm
(:func:`exactattn.checkpoint_layer.layer_oracle`). The learner holds that
float64 oracle only: :func:`~exactattn.learners.learn_multihead_saturated`
with H = the number of chosen heads and rank r = the head dimension returns
the canonical biased heads (W_h, c_h, v_h) and beta. The command then pairs
every head of the file with the recovered head nearest in W, compares it with
the merged parameters computed from the file (per head, the largest error
relative to the head's largest entry, as
:func:`exactattn.checks.multihead_biased.biased_recovery_errors` measures it),
checks every entry against its first-order error estimate (``W_error_bound``,
...: estimates, not rigorous bounds; the status is ``float``), and certifies
the recovery on fresh probes (:func:`exactattn.certificates.verify`,
``kind="tolerance"``).

The readout is chosen as ``learn checkpoint`` chooses it: ``--readout I`` reads
output coordinate I (rho = e_I, default I = 0); ``--readout-seed S`` draws
rho ~ N(0, I / d) from ``numpy.random.default_rng(S)`` instead (every head
then has a value vector v_h = W_v^hT W_o^hT rho mixing all its coordinates).

Results on stdout (text, or ``--json``: one object,
``docs/schemas/learn_layer.schema.json``; under ``--json`` an input error is
one object of ``docs/schemas/error.schema.json``), progress on stderr (a bar
over the bases while stderr is a terminal). Exit codes: 0 every head paired,
every entry within its estimate and the certificate holds; 1 otherwise,
including a learner that refuses after it has asked queries (an
ill-conditioned layer: the document names the refusal under ``refused``);
2 bad input, refused before any query (a missing, damaged or inconsistent
file, ``--heads`` or ``--readout`` out of range, an unwritable ``--save``).

``--save FILE`` writes the recovery with its transcript (over 10,000 entries
in a ``.npz`` sidecar beside it), the layer it came from and the certificate;
``exactattn replay FILE`` replays that transcript against the recovered model
and, while the checkpoint can still be read, asks fresh queries of the layer
(:func:`saved_layer_instance`).

Reached through :func:`exactattn.cli.main`, which hands ``learn layer`` over
to :func:`main` here.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .cli import (
    MAX_CERTIFICATE_PROBES,
    UsageError,
    _check_writable,
    _int_at_least,
    _one_line,
    _Parser,
    _save,
    print_json_error,
)
from .cli_checkpoint import parse_subcommand, positive_float
from .errors import ExactattnError, InvalidEntryError

__all__ = ["build_parser", "main", "parse_heads", "saved_layer_instance"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
COMMAND = "learn layer"


def parse_heads(text: str) -> tuple[int, ...] | None:
    """``--heads``: ``all`` (None: every head of the layer) or distinct indices ``0,2,5``.

    The range is checked once the layer's head count is known (before any query).

    >>> parse_heads("all") is None, parse_heads("2,0")
    (True, (2, 0))
    """
    if text.strip() == "all":
        return None
    out = []
    for part in text.split(","):
        try:
            j = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not 'all' or comma-separated head indices (e.g. 0,1,3)") from None
        if j < 0:
            raise argparse.ArgumentTypeError(f"head indices are >= 0, got {j}")
        out.append(j)
    if len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"head indices must be distinct, got {text!r}")
    return tuple(out)


def build_parser() -> argparse.ArgumentParser:
    from .learners.multihead_saturated import MAX_RELATIVE_BOUND

    p = _Parser(
        prog="exactattn learn layer",
        description="Learn every head (or the chosen heads) of one attention layer of a "
                    "BERT-style .safetensors checkpoint from float64 value queries of its "
                    "read-out, compare with the file's merged parameters, certify.")
    p.add_argument("file", help="the .safetensors file (BERT tensor names; prefix detected)")
    p.add_argument("--layer", type=_int_at_least(0), required=True, help="layer index (0-based)")
    p.add_argument("--heads", type=parse_heads, default=None, metavar="0,1,...|all",
                   help="the heads summed and learned, 0-based (default all)")
    p.add_argument("--num-heads", type=_int_at_least(1), default=None,
                   help="heads of the layer (default: num_attention_heads in config.json)")
    rho = p.add_mutually_exclusive_group()
    rho.add_argument("--readout", type=_int_at_least(0), default=None, metavar="I",
                     help="read out output coordinate I (rho = e_I; default 0)")
    rho.add_argument("--readout-seed", type=_int_at_least(0), default=None, metavar="S",
                     help="read out by rho ~ N(0, I/d) drawn with seed S")
    p.add_argument("--scale", type=positive_float, default=4.0,
                   help="norm of the bases' steps (default 4: a real layer's small W)")
    p.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="seed of the learner and of the certificate's probes (default 0)")
    p.add_argument("--certificate-probes", type=_int_at_least(0, MAX_CERTIFICATE_PROBES),
                   default=16, metavar="K", help="fresh queries for the certificate (default 16)")
    p.add_argument("--max-relative-bound", type=positive_float, default=None, metavar="X",
                   help="refuse when a head's relative error estimate exceeds X (default: "
                        f"the learner's, {MAX_RELATIVE_BOUND:g})")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--save", metavar="FILE",
                   help="save the recovery (with transcript) as JSON, for 'exactattn replay'")
    return p


def _rho(readout: dict[str, Any], d: int) -> Any:
    """rho from its JSON description (``readout`` in the document and the saved file)."""
    if readout["kind"] == "gaussian":
        return np.random.default_rng(readout["seed"]).standard_normal(d) / math.sqrt(d)
    i = readout["index"]
    if i >= d:
        raise InvalidEntryError(f"--readout {i} is not an output coordinate of a layer with "
                                f"d = {d} (0 <= I < {d})")
    rho = np.zeros(d)
    rho[i] = 1.0
    return rho


def _readout(args: argparse.Namespace, d: int) -> tuple[Any, dict[str, Any], str]:
    """(rho, its JSON description, its text)."""
    if args.readout_seed is not None:
        readout = {"kind": "gaussian", "seed": args.readout_seed}
        text = f"rho ~ N(0, I/d), seed {args.readout_seed}"
    else:
        i = 0 if args.readout is None else args.readout
        readout, text = {"kind": "coordinate", "index": i}, f"rho = e_{i}"
    return _rho(readout, d), readout, text


def _is_index(x: Any, low: int = 0) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= low


def saved_layer_instance(inst: dict[str, Any], rec: Any, path: str) -> tuple[str, Any] | None:
    """(name, the layer's read-out) of the instance block ``learn layer --save`` writes
    (``"kind": "checkpoint_layer"``), for the fresh queries of ``exactattn replay``.

    A block of the wrong shape raises :class:`~exactattn.cli.UsageError`; a
    checkpoint that cannot be read any more (moved, deleted, damaged, another d)
    returns None with a note on stderr: the replay then checks the transcript
    alone. Nothing records the file's content: a checkpoint changed in place
    that still loads is queried as it is now, so its fresh queries may reject
    a recovery that was right for the file it was learned from.
    """
    from .checkpoint_layer import LayerReadout
    from .checkpoints import load_layer

    ro: Any = inst.get("readout")
    heads, H = inst.get("heads"), inst.get("num_heads")
    good = (isinstance(inst.get("file"), str) and _is_index(inst.get("layer"))
            and _is_index(H, 1) and isinstance(heads, list) and heads
            and all(_is_index(j) and j < H for j in heads) and len(set(heads)) == len(heads)
            and isinstance(ro, dict)
            and ((ro.get("kind") == "coordinate" and _is_index(ro.get("index"))
                  and ro["index"] < rec.d)
                 or (ro.get("kind") == "gaussian" and _is_index(ro.get("seed")))))
    if not good:
        raise UsageError(f"{path}: the instance block {json.dumps(inst)[:160]} is not a "
                         "checkpoint layer (file, layer, num_heads, distinct heads below "
                         f"num_heads, readout with an index below d = {rec.d}) as "
                         "'learn layer --save' writes it")
    try:
        layer = load_layer(inst["file"], layer=inst["layer"], num_heads=inst["num_heads"])
        if layer.d != rec.d:
            raise InvalidEntryError(f"the layer has d = {layer.d}, the recovery d = {rec.d}")
        model = LayerReadout(layer, heads=heads, readout=_rho(ro, layer.d))
    except ExactattnError as exc:
        print(f"note: {path}: the checkpoint layer it was learned from cannot be rebuilt "
              f"({_one_line(str(exc))}); replaying the transcript only", file=sys.stderr,
              flush=True)
        return None
    return f"the checkpoint layer {model!r}", model


def _compare(rec: Any, merged: Any, heads: Sequence[int]) -> dict[str, Any]:
    """Per head of the file: relative errors of W, c, v (each over the head's largest entry
    of W, of max(c, W), of v), the head's relative estimate, every entry within its
    estimate; beta's absolute error and estimate."""
    from .checks.multihead_biased import head_errors, paired_heads

    P = rec.params
    truths = [np.asarray(x, dtype=np.float64) for x in merged.Ws]
    cs = [np.asarray(x, dtype=np.float64) for x in merged.cs]
    vs = [np.asarray(x, dtype=np.float64) for x in merged.vs]
    estimates = rec.options["conditioning"]["relative_bound_per_head"]
    pairs = paired_heads(P["W"], truths)
    rows: list[dict[str, Any]] = []
    if pairs is not None:
        for j, k, Wt, ct, vt in zip(heads, pairs, truths, cs, vs, strict=True):
            rel, within = head_errors(P, k, Wt, ct, vt)
            rows.append({"head": j, "recovered": k,
                         "relative_error": max((x for x in rel.values() if x is not None),
                                               default=0.0),
                         "relative_errors": rel, "estimate": float(estimates[k]),
                         "within_estimates": within})
    e_beta = abs(float(P["beta"]) - float(merged.beta))
    b_beta = float(P["beta_error_bound"])
    return {"paired": pairs is not None, "per_head": rows,
            "beta": {"abs_error": e_beta, "estimate": b_beta, "within": e_beta <= b_beta},
            "max_relative_error": max((r["relative_error"] for r in rows), default=None),
            "within_estimates": bool(pairs is not None and e_beta <= b_beta
                                     and all(r["within_estimates"] for r in rows))}


def _run(args: argparse.Namespace) -> dict[str, Any]:
    """The result document (``docs/schemas/learn_layer.schema.json``); input refused before
    any query raises (exit 2), a learner refusing after its first query is reported in the
    document (``refused``, exit 1)."""
    from . import claims  # noqa: F401  (registers the certificate builders)
    from .certificates import verify
    from .checkpoint_layer import layer_oracle
    from .checkpoints import load_layer
    from .learners import multihead_saturated as saturated
    from .progress import ProgressBar
    from .report.json import certificate_json

    if args.save:
        _check_writable(args.save, "--save")
    layer = load_layer(args.file, layer=args.layer, num_heads=args.num_heads)
    heads = tuple(range(layer.num_heads)) if args.heads is None else args.heads
    wrong = [j for j in heads if j >= layer.num_heads]
    if wrong:
        raise InvalidEntryError(
            f"--heads {','.join(map(str, wrong))}: layer {args.layer} of {args.file} has "
            f"{layer.num_heads} heads (indices 0 to {layer.num_heads - 1}); pass --heads "
            "with indices in that range, or --num-heads if the count is wrong")
    rho, readout, readout_text = _readout(args, layer.d)
    r = layer.head_dim
    bound = (saturated.MAX_RELATIVE_BOUND if args.max_relative_bound is None
             else args.max_relative_bound)
    oracle, merged = layer_oracle(layer, heads=heads, readout=rho,
                                  keep_transcript=bool(args.save))
    doc: dict[str, Any] = {
        "file": str(args.file), "layer": args.layer, "d": layer.d,
        "num_heads": layer.num_heads, "head_dim": r, "heads": list(heads), "rank": r,
        "readout": readout, "scale": args.scale, "seed": args.seed,
        "max_relative_bound": bound}
    print(f"learning {len(heads)} heads of {layer.source} (d = {layer.d}, rank {r}, "
          f"{readout_text}, scale {args.scale})", file=sys.stderr, flush=True)
    bar = ProgressBar(f"layer {args.layer}: bases")
    start = time.perf_counter()
    try:
        rec = saturated.learn_multihead_saturated(
            oracle, heads=len(heads), rank=r, seed=args.seed, scale=args.scale,
            max_relative_bound=bound, progress=bar)
    except ExactattnError as exc:
        if oracle.queries == 0:
            raise  # refused before any query: bad input
        doc.update({"status": None, "hypotheses": [], "queries": oracle.queries,
                    "queries_by_phase": dict(oracle.queries_by_phase),
                    "seconds": {"learn": round(time.perf_counter() - start, 3),
                                "certificate": 0.0},
                    "refused": f"{type(exc).__name__}: {_one_line(str(exc))}",
                    "recovered_heads": None, "paired": False, "per_head": [], "beta": None,
                    "max_relative_error": None, "within_estimates": False,
                    "certificate": None, "saved": None, "ok": False})
        return doc
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    t0 = time.perf_counter()
    cert = verify(rec, oracle, probes=args.certificate_probes, seed=args.seed)
    cert_seconds = time.perf_counter() - t0
    path, cond = rec.options["path"], rec.options["conditioning"]
    # the adaptive parts: the path, the isolate passes, and (when the learner re-asks rows
    # whose logit came out too large) the re-asked rows
    rescaled = {"rescaled": cond["rescaled_queries"]} if "rescaled_queries" in cond else {}
    closed = saturated.saturated_query_count(
        rec.options["m"], layer.d, rank=r, path=path["queries"],
        isolate_passes=path["isolate_passes"], **rescaled)
    doc.update({"status": rec.status, "hypotheses": list(rec.hypotheses),
                "queries": rec.queries, "queries_by_phase": dict(rec.queries_by_phase),
                "path_queries": path["queries"], "closed_form_queries": closed,
                "seconds": {"learn": round(seconds, 3), "certificate": round(cert_seconds, 3)},
                "refused": None, "recovered_heads": rec.options["m"]})
    doc.update(_compare(rec, merged, heads))
    doc["certificate"] = certificate_json(cert)
    doc["saved"] = args.save or None
    doc["ok"] = bool(doc["within_estimates"] and cert.holds)
    if args.save:
        _save(args, rec, cert, {"kind": "checkpoint_layer",
                                "file": str(Path(args.file).resolve()),
                                "layer": args.layer, "num_heads": layer.num_heads,
                                "heads": list(heads), "readout": readout})
    return doc


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2e}"


def _text(doc: dict[str, Any]) -> str:
    lines = [f"{doc['file']}, layer {doc['layer']}: d = {doc['d']}, heads "
             f"{','.join(map(str, doc['heads']))} of {doc['num_heads']}, head dimension "
             f"{doc['head_dim']} (rank {doc['rank']}), scale {doc['scale']}"]
    if doc["refused"] is not None:
        lines.append(f"REFUSED after {doc['queries']} queries ({doc['seconds']['learn']} s): "
                     f"{doc['refused']}")
        return "\n".join(lines)
    lines.append(f"status: {doc['status']}"
                 + (f" (given: {'; '.join(doc['hypotheses'])})" if doc["hypotheses"] else ""))
    lines.append(f"queries: {doc['queries']} (path {doc['path_queries']}; closed form given "
                 f"the path: {doc['closed_form_queries']}), learned in "
                 f"{doc['seconds']['learn']} s, certificate {doc['seconds']['certificate']} s")
    if not doc["paired"]:
        lines.append(f"recovered {doc['recovered_heads']} heads for the {len(doc['heads'])} "
                     "of the file: NOT PAIRED one to one with the file's heads")
    else:
        lines.append("  head  relative error  estimate   within estimates")
        for row in doc["per_head"]:
            lines.append(f"  {row['head']:>4}  {_fmt(row['relative_error']):>14}  "
                         f"{_fmt(row['estimate']):>8}   "
                         f"{'yes' if row['within_estimates'] else 'NO'}")
    b = doc["beta"]
    lines.append(f"beta: absolute error {_fmt(b['abs_error'])} (estimate "
                 f"{_fmt(b['estimate'])}); every entry within its first-order estimate: "
                 f"{doc['within_estimates']}")
    lines.append(doc["certificate"]["text"])
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``exactattn learn layer ...``; returns the exit code."""
    given = list(sys.argv[1:] if argv is None else argv)
    args = parse_subcommand(build_parser(), given, COMMAND)
    if isinstance(args, int):
        return args
    try:
        doc = _run(args)
    except (ExactattnError, UsageError, ImportError) as exc:
        message = _one_line(str(exc))
        print(f"exactattn {COMMAND}: error: {message}", file=sys.stderr)
        if args.json:
            print_json_error(COMMAND, message)
        return EXIT_USAGE
    print(json.dumps(doc, indent=2) if args.json else _text(doc))
    return EXIT_OK if doc["ok"] else EXIT_FAILED
