"""``exactattn learn LABEL --oracle URL [--journal FILE]``: learn from a server, resumably.

Reached through :func:`exactattn.cli.main`: ``_cmd_learn`` hands a run with
``--oracle`` to :func:`learn_remote`. The learner holds an oracle on the
server (``exactattn serve``, :mod:`exactattn.remote`): a
:class:`~exactattn.remote.client.HttpOracle`, or with ``--journal`` the
journaled oracle of :func:`~exactattn.remote.resume.journaled_remote_oracle`,
which answers the queries already in the journal from it and commits every new
answer before the learner sees it, so that a killed run started again with the
same command continues where it stopped (docs/remote.md, "Journals and
resuming").

A server whose ``/info`` reports a ``biased_head`` is learned by
:func:`~exactattn.learners.biased_head.learn_biased_head` (label
``single_head_biased``), as ``learn single_head_exact --instance FILE`` learns a
biased head; over EXP or F64.

The hidden model is the server's: there is no truth to compare with, so the
certificate (replay of the transcript and fresh probes, asked of the server)
decides the exit code: 0 it holds, 1 it fails or the answers fit no model of
the learner's class, 2 bad input (a bad URL, a server that does not answer
after its retries, a journal of another run): one line on stderr.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .cli import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    _one_line,
    _print_learned,
    _save,
    _stderr,
    print_json_error,
)
from .errors import RecoveryFailedError

#: the labels learned from a server, with the model kinds (``/info``'s ``model``) they accept
REMOTE_LABELS = {"single_head_exact": ("single_head", "low_rank_head", "biased_head"),
                 "low_rank_adaptive": ("low_rank_head", "single_head")}


def _check_args(args: argparse.Namespace) -> None:
    """Every argument is checked before the server is asked anything."""
    if args.label not in REMOTE_LABELS:
        raise UsageError(f"--oracle learns {' or '.join(REMOTE_LABELS)}, not {args.label}")
    if args.instance:
        raise UsageError("--oracle and --instance exclude each other: the server holds the "
                         "instance")
    if args.journal:
        p = Path(args.journal)
        if p.is_dir():
            raise UsageError(f"--journal {args.journal} is a directory; give a file name")
        if not p.parent.is_dir():
            raise UsageError(f"--journal {args.journal}: the folder {p.parent} does not exist")


def learn_remote(args: argparse.Namespace) -> int:
    """Learn ``args.label`` from the server at ``args.oracle`` and certify it there."""
    from .certificates import verify
    from .fields import F64, field_by_name
    from .instance_files import MODELS
    from .learners import learn_low_rank, learn_single_head
    from .learners.low_rank import adaptive_query_count
    from .learners.single_head import query_count
    from .oracle import ValueOracle
    from .progress import ProgressBar
    from .remote.client import HttpOracle, RemoteTarget
    from .remote.resume import journaled_remote_oracle
    from .report.json import certificate_json

    _check_args(args)
    field = field_by_name(args.field)
    label = args.label
    options: dict[str, Any] = {"probes": args.probes,
                               "certificate_probes": args.certificate_probes}
    if label == "low_rank_adaptive":
        options["rank"] = args.rank
    keep = args.d <= 256 or field is not F64
    journal = None
    oracle: ValueOracle
    remote: RemoteTarget
    if args.journal:
        oracle, journal = journaled_remote_oracle(
            args.oracle, args.journal, label=label, seed=args.seed, options=options,
            field=field, d=args.d, keep_transcript=keep, batch_size=args.batch_size)
        assert isinstance(oracle.journaled.inner, RemoteTarget)
        remote = oracle.journaled.inner
    else:
        http = HttpOracle(args.oracle, field=field, d=args.d, keep_transcript=keep,
                          batch_size=args.batch_size)
        oracle, remote = http, http.remote
    info_server = dict(remote.info)
    try:
        kind = info_server.get("model")
        if kind in MODELS and kind not in REMOTE_LABELS[label]:
            raise UsageError(f"{args.oracle} serves a {kind} model; {label} learns "
                             f"{' or '.join(REMOTE_LABELS[label])}")
        start = time.perf_counter()
        try:
            if label == "low_rank_adaptive":
                rec = learn_low_rank(oracle, rank=args.rank, method="adaptive", seed=args.seed)
                expected = adaptive_query_count(args.d, args.rank)
            else:
                progress = ProgressBar("measuring W, column",
                                       not args.no_progress and args.d >= 64)
                if kind == "biased_head":  # as learn --instance learns a biased head
                    from . import claims  # noqa: F401  (registers the biased head's certificate)
                    from .learners.biased_head import biased_query_count, learn_biased_head

                    rec = learn_biased_head(oracle, probes=args.probes, seed=args.seed,
                                            progress=progress)
                    expected = biased_query_count(args.d)
                else:
                    rec = learn_single_head(oracle, probes=args.probes, seed=args.seed,
                                            progress=progress)
                    expected = query_count(args.d)
        except RecoveryFailedError as exc:
            # the answers fit no model of the learner's class: a check that failed
            learner = "single_head_biased" if kind == "biased_head" else label
            line = (f"{args.oracle}: the learner found answers that no {learner} model "
                    f"gives: {exc}")
            _stderr(f"exactattn learn: {line}")
            if args.json:   # no recovery to document: the error object, with exit code 1
                print_json_error("learn", _one_line(line), EXIT_FAILED)
            return EXIT_FAILED
        learn_seconds = time.perf_counter() - start
        cstart = time.perf_counter()
        cert = verify(rec, oracle, probes=args.certificate_probes, seed=args.seed)
        cert_seconds = time.perf_counter() - cstart
    finally:
        if journal is not None:
            journal.close()
    info: dict[str, Any] = {
        "label": rec.label, "paper_ref": rec.paper_ref, "oracle": remote.url,
        "model": info_server.get("model"), "instance_sha256": info_server.get("instance_sha256"),
        "field": field.name, "d": args.d, "seed": args.seed, "probes": args.probes,
        "queries": rec.queries, "expected_queries": expected,
        "queries_by_phase": dict(rec.queries_by_phase),
        "status": rec.status, "hypotheses": list(rec.hypotheses),
        "certificate": certificate_json(cert),
        "requests": remote.requests,
        "seconds": {"total": learn_seconds + cert_seconds, "learn": learn_seconds,
                    "oracle": oracle.seconds, "certificate": cert_seconds},
    }
    if journal is not None:
        info["journal"] = {"path": args.journal, "streams": journal.streams(),
                           "replayed": journal.replayed, "written": journal.written}
    _save(args, rec, cert, {"kind": "remote", "url": remote.url, "model": info["model"],
                            "instance_sha256": info["instance_sha256"], "field": field.name,
                            "d": args.d, "seed": args.seed})
    rows = [("queries", f"{rec.queries} (expected {expected})  by phase "
                        f"{dict(rec.queries_by_phase)}"),
            ("status", rec.status_text()),
            ("certificate", str(cert)),
            ("requests", f"{remote.requests} HTTP requests to {remote.url}")]
    if journal is not None:
        j = info["journal"]
        rows.append(("journal", f"{args.journal}: {j['replayed']} answers from the journal, "
                                f"{j['written']} asked of the server and written"))
    rows.append(("seconds", f"{learn_seconds + cert_seconds:.3f} total, "
                            f"{oracle.seconds:.3f} in the oracle"))
    _print_learned(args.json, info, f"{rec.label} from {remote.url} ({info['model']} over "
                                    f"{field.name}, d = {args.d})", rows)
    return EXIT_OK if cert.holds else EXIT_FAILED
