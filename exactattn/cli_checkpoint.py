"""``exactattn learn checkpoint FILE --layer L --head H [--rank r]``: one head of a checkpoint.

Reads layer L of a BERT-style ``.safetensors`` file
(:func:`exactattn.checkpoints.load_layer`; the head count from ``--num-heads``
or ``config.json`` beside the file), wraps head H as a float64 oracle
evaluated from its factors, learns it with
:func:`~exactattn.learners.biased_low_rank.learn_biased_low_rank` (default
``bias="column_space"`` with r = the head dimension, which every real head
satisfies), compares with the merged parameters computed from the file and
certifies the recovery on fresh probes. Results on stdout (text, or
``--json``: one object, ``docs/schemas/learn_checkpoint.schema.json``; under
``--json`` an input error is also one object on stdout,
``docs/schemas/error.schema.json``), progress on stderr. Exit codes: 0 every error within the
recovery's first-order error estimates (``W_error_bound``, ... in its options:
estimates, not rigorous bounds) and the certificate holds, 1 otherwise, 2 bad
input. ``proved_queries`` (the key keeps its name) is the closed-form count of the
learner (:func:`~exactattn.learners.biased_low_rank.biased_low_rank_query_count`),
derived in prose, its sum checked symbolically
(``low_rank_adaptive.query_count_closed_form``).

Reached through :func:`exactattn.cli.main`, which hands ``learn checkpoint``
over to :func:`main` here.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .cli import (
    MAX_CERTIFICATE_PROBES,
    _int_at_least,
    _Parser,
    _UsageExit,
    print_json_error,
    wants_json,
)
from .errors import ExactattnError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def positive_float(text: str) -> float:
    """A positive finite float option (``--scale``; ``learn layer``'s too)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="exactattn learn checkpoint",
        description="Learn one attention head of a BERT-style .safetensors checkpoint from "
                    "value queries, compare with its merged parameters, certify.")
    p.add_argument("file", help="the .safetensors file (BERT tensor names; prefix detected)")
    p.add_argument("--layer", type=_int_at_least(0), required=True, help="layer index (0-based)")
    p.add_argument("--head", type=_int_at_least(0), required=True, help="head index (0-based)")
    p.add_argument("--rank", type=_int_at_least(0), default=None,
                   help="rank bound r (default: the head dimension)")
    p.add_argument("--num-heads", type=_int_at_least(1), default=None,
                   help="heads of the layer (default: num_attention_heads in config.json)")
    p.add_argument("--bias", choices=["column_space", "general"], default="column_space",
                   help="column_space: rank [W | c] <= r (real heads); general: rank W <= r")
    p.add_argument("--readout", type=_int_at_least(0), default=0, metavar="I",
                   help="read out output coordinate I (rho = e_I; default 0)")
    p.add_argument("--scale", type=positive_float, default=4.0,
                   help="probe scale (default 4, see docs/real_heads.md)")
    p.add_argument("--seed", type=_int_at_least(0), default=0)
    p.add_argument("--certificate-probes", type=_int_at_least(0, MAX_CERTIFICATE_PROBES),
                   default=16, metavar="K")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from . import claims  # noqa: F401  (registers the certificate builders)
    from .certificates import verify
    from .checkpoints import load_layer
    from .cli_layer import _rho
    from .learners.biased_low_rank import biased_low_rank_query_count, learn_biased_low_rank

    layer = load_layer(args.file, layer=args.layer, num_heads=args.num_heads)
    rho = _rho({"kind": "coordinate", "index": args.readout}, layer.d)
    head = layer.head(args.head, readout=rho)
    r = layer.head_dim if args.rank is None else args.rank
    if r > layer.d:
        raise ExactattnError(f"--rank {r} exceeds d = {layer.d}")
    truth = head.merged()
    oracle = head.oracle(keep_transcript=False)
    print(f"learning {head!r} with rank {r} ({args.bias})", file=sys.stderr, flush=True)
    start = time.perf_counter()
    rec = learn_biased_low_rank(oracle, rank=r, bias=args.bias, scale=args.scale,
                                seed=args.seed)
    seconds = time.perf_counter() - start
    cert = verify(rec, oracle, probes=args.certificate_probes, seed=args.seed)
    errors: dict[str, Any] = {}
    within = True
    for name, t, bound in (("W", truth.W, "W_error_bound"), ("c", truth.c, "c_error_bound"),
                           ("v", truth.v, "v_error_bound")):
        err = float(np.linalg.norm(rec.params[name] - t))
        norm = float(np.linalg.norm(t))
        errors[name] = {"error": err, "relative": err / norm if norm else None,
                        "bound": float(rec.options[bound])}
        within = within and err <= float(rec.options[bound])
    return {
        "file": str(args.file), "layer": args.layer, "head": args.head, "d": layer.d,
        "head_dim": layer.head_dim, "rank": r, "bias": args.bias, "status": rec.status_text(),
        "queries": rec.queries,
        "proved_queries": biased_low_rank_query_count(layer.d, r, bias=args.bias),
        "full_biased_queries": (layer.d + 1) ** 2, "seconds": round(seconds, 3),
        "errors": errors, "abs_error_beta": abs(float(rec.params["beta"]) - truth.beta),
        "within_bounds": within, "certificate": cert.to_json(),
        "ok": bool(within and cert.holds),
    }


def _relative(e: dict[str, Any]) -> str:
    """A relative error for the text output; a zero truth (e.g. c = 0 when b_q = 0) has none."""
    if e["relative"] is None:
        return f"(absolute {e['error']:.2e}, the truth is 0)"
    return f"{e['relative']:.2e}"


def parse_subcommand(parser: argparse.ArgumentParser, given: list[str], command: str
                     ) -> argparse.Namespace | int:
    """The arguments of a ``learn`` sub-command, or the exit code of --help or of a usage
    error (already printed on stderr; under --json also the error object on stdout)."""
    try:
        return parser.parse_args(given)
    except SystemExit as exc:
        if isinstance(exc, _UsageExit) and wants_json(given):
            print_json_error(command, exc.message)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """``exactattn learn checkpoint ...``; returns the exit code."""
    given = list(sys.argv[1:] if argv is None else argv)
    args = parse_subcommand(build_parser(), given, "learn checkpoint")
    if isinstance(args, int):
        return args
    try:
        out = _run(args)
    except (ExactattnError, ImportError) as exc:
        message = " ".join(str(exc).split())
        print(f"exactattn learn checkpoint: error: {message}", file=sys.stderr)
        if args.json:
            print_json_error("learn checkpoint", message)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        e = out["errors"]
        print(f"{out['file']}, layer {out['layer']}, head {out['head']}: d = {out['d']}, "
              f"head dimension {out['head_dim']}, rank {out['rank']} ({out['bias']})")
        print(f"queries: {out['queries']} (closed form {out['proved_queries']}; the full "
              f"biased learner: {out['full_biased_queries']}), {out['seconds']} s")
        print(f"status: {out['status']}")
        print("relative errors vs the merged parameters of the file: "
              + ", ".join(f"{k} {_relative(e[k])}" for k in ("W", "c", "v"))
              + f"; within the first-order error estimates: {out['within_bounds']}")
        c = out["certificate"]
        print(f"certificate ({c['kind']}): {'holds' if c['holds'] else 'FAILS'}, "
              f"{c['checked']} queries checked")
    return EXIT_OK if out["ok"] else EXIT_FAILED
