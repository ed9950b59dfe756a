"""``exactattn learn LABEL --instance FILE`` and the replay of a saved instance file.

The instance-file format is in ``docs/instances.md`` (schema
``docs/instance.schema.json``); the work is done by
:mod:`exactattn.instance_files`. Reached through :func:`exactattn.cli.main`:
``_cmd_learn`` hands a run with ``--instance`` to :func:`learn_from_file`, and
``replay`` hands an instance block that holds a ``"model"`` key to
:func:`saved_instance`. Bad files raise an ``ExactattnError`` that the CLI
prints as one line and exit 2.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from .cli import EXIT_FAILED, EXIT_OK, _check_memory, _print_learned, _save
from .errors import InvalidEntryError


def learn_from_file(args: argparse.Namespace) -> int:
    """Learn and certify the instance in ``args.instance`` with the learner of ``args.label``."""
    from .instance_files import LABELS, learn_instance, load_instance
    from .report.json import certificate_json

    if args.field != "EXP":
        raise InvalidEntryError("--field cannot be combined with --instance: the field is the "
                                "instance file's \"field\" key")
    spec = load_instance(args.instance)
    if args.label not in LABELS[spec.model_kind]:
        raise InvalidEntryError(f"{args.instance} holds a {spec.model_kind} instance, learned "
                                f"by {' or '.join(LABELS[spec.model_kind])}, not {args.label}")
    model = spec.model  # the file's sizes, not --d, --m, --heads
    _check_memory(args.label, f"d = {model.d} ({args.instance})", model.d,
                  m=getattr(model, "m", 1), rank=spec.rank or 0, heads=getattr(model, "H", 1),
                  field=spec.field.name)
    start = time.perf_counter()
    result = learn_instance(spec, args.label, seed=args.seed,
                            certificate_probes=args.certificate_probes)
    seconds = time.perf_counter() - start
    rec, cert = result.recovery, result.certificate
    _save(args, rec, cert, dict(spec.source))
    info = {"label": rec.label, "instance": args.instance, "model": spec.model_kind,
            "field": spec.field.name, "d": rec.d, "seed": args.seed, "queries": rec.queries,
            "queries_by_phase": dict(rec.queries_by_phase), "status": rec.status,
            "hypotheses": list(rec.hypotheses), "matches_truth": result.matches_truth,
            "certificate": certificate_json(cert),
            "seconds": {"total": seconds}}
    _print_learned(args.json, info, f"{rec.label} on {args.instance} ({spec.model_kind} over "
                                    f"{spec.field.name}, d = {rec.d})", [
        ("queries", f"{rec.queries}  by phase {dict(rec.queries_by_phase)}"),
        ("status", rec.status_text()),
        ("truth", "DIFFERS" if not result.matches_truth else "recovered" if spec.field.exact
         else "within the recovery's first-order error estimates (F64, not proved)"),
        ("certificate", str(cert)),
        ("seconds", f"{seconds:.3f}")])
    return EXIT_OK if result.holds else EXIT_FAILED


def saved_instance(inst: dict[str, Any], rec: Any, path: str) -> tuple[str, Any]:
    """(name, hidden model) of an instance-file block saved beside a recovery."""
    from .instance_files import parse_instance

    try:
        spec = parse_instance(inst)
    except InvalidEntryError as exc:
        raise InvalidEntryError(f"{path}: the saved instance: {exc}") from None
    if spec.model.d != rec.d:
        raise InvalidEntryError(f"{path}: the saved instance has d = {spec.model.d}, the "
                                f"recovery d = {rec.d}")
    return f"the {spec.model_kind} instance saved in the file", spec.model
