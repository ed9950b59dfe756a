"""Benchmark: queries per second through the loopback HTTP API (issue 16), with and without
a journal, against the in-process oracle.

Prints one JSON object per line to stdout (progress on stderr). Exit code 0
when every row ran and its answers equal the in-process oracle's (``==`` over
EXP, the same float64 bits over F64), 1 otherwise, 2 for a usage error.

    python benchmarks/remote.py [--quick] [--fields F64,EXP] [--batches 1,64,1024]

The server is ``exactattn serve`` on an instance file, in its own process on
127.0.0.1 (so that client and server do not share one interpreter); the
client is :class:`~exactattn.remote.client.HttpOracle` (``journal: false``) or
the journaled oracle of ``exactattn learn --oracle URL --journal FILE``
(:func:`~exactattn.remote.resume.journaled_remote_oracle`, ``journal: true``:
SQLite in WAL mode, ``synchronous=FULL``, one commit per request). Rows: F64
d = 64 and EXP d = 16 (a seeded single head), batch sizes 1, 64, 1024; the
queries are seeded random two-token queries (as the learner's W phase asks),
fresh ones for every row, so that no request is answered from the server's
memory of answered requests.

Every F64 row is measured twice in the same run, over JSON and over the binary
encoding (``encoding``: "json" or "f64le", docs/remote.md "The binary F64
encoding"), on fresh queries each; a binary row also has json_seconds (the
JSON row just before it: same field, batch size, journal and number of
queries) and speedup_over_json = json_seconds / seconds.

Keys: field, d, batch_size, journal, encoding, queries, requests (POST requests sent),
seconds (the client's ``oracle.batch`` calls, one per batch), qps,
inprocess_seconds / inprocess_qps (the same queries, the same batches, on a
:class:`~exactattn.oracle.ValueOracle` of the model in this process),
overhead_ratio = seconds / inprocess_seconds, answers_equal; with a journal
also journal_mb (the database after the run) and resume_seconds / resume_qps
(the same queries asked again by a resumed run: every answer read from the
journal, the server not asked: ``resume_requests`` is 0).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

try:
    import exactattn  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exactattn.fields import EXP, F64, Field
from exactattn.instance_files import instance_to_json
from exactattn.instances import single_head_instance
from exactattn.oracle import ValueOracle
from exactattn.remote import HttpOracle
from exactattn.remote.resume import journaled_remote_oracle

FIELDS = {"F64": F64, "EXP": EXP}
#: (d, queries per row for batch size 1, queries per row otherwise)
FULL = {"F64": (64, 512, 8192), "EXP": (16, 128, 1024)}
QUICK = {"F64": (8, 16, 64), "EXP": (3, 8, 16)}
FULL_BATCHES = (1, 64, 1024)
#: the request encodings measured per field: JSON, and over F64 the binary "f64le" too
ENCODINGS = {"F64": ("json", "f64le"), "EXP": ("json",)}
QUICK_BATCHES = (1, 4, 16)


def _queries(field: Field, d: int, n: int, seed: int) -> list[Any]:
    """n seeded two-token queries over ``field`` (rationals of denominator 1024 over EXP)."""
    rng = np.random.default_rng(seed)
    if field == F64:
        return list(rng.standard_normal((n, 2, d)))
    return [field.gaussian(rng, (2, d)) for _ in range(n)]


def _ask(oracle: Any, Xs: list[Any], batch: int) -> tuple[list[Any], float]:
    """Ask ``Xs`` in batches of ``batch`` (one ``oracle.batch`` call each); answers, seconds."""
    answers: list[Any] = []
    start = time.perf_counter()
    for lo in range(0, len(Xs), batch):
        chunk = Xs[lo:lo + batch]
        part = np.stack(chunk) if oracle.field == F64 else chunk
        answers.extend(oracle.batch(part, phase="bench"))
    return answers, time.perf_counter() - start


def _equal(field: Field, a: list[Any], b: list[Any]) -> bool:
    if len(a) != len(b):
        return False
    if field == F64:
        return bool(np.array_equal(np.asarray(a, dtype=np.float64).view(np.int64),
                                   np.asarray(b, dtype=np.float64).view(np.int64)))
    return all(x == y for x, y in zip(a, b, strict=True))


def _serve(instance: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "exactattn", "serve", str(instance),
                             "--port", "0", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"exactattn serve did not start: {proc.communicate()[1]}")
    return proc, str(json.loads(line)["url"])


def _measure(url: str, model: Any, field: Field, d: int, batch: int, journaled: bool,
             encoding: str, n: int, seed: int, workdir: Path) -> dict[str, Any]:
    """One row: n fresh seeded queries in batches of ``batch``, through the server (with a
    journal, and a resume, if ``journaled``) in ``encoding``, and in process."""
    name = field.name
    Xs = _queries(field, d, n, seed)
    print(f"{name} d={d} batch={batch} journal={journaled} encoding={encoding}: {n} queries",
          file=sys.stderr, flush=True)
    local = ValueOracle(model, keep_transcript=False)
    expected, local_seconds = _ask(local, Xs, batch)
    row: dict[str, Any] = {"field": name, "d": d, "batch_size": batch, "journal": journaled,
                           "encoding": encoding, "queries": n}
    if journaled:
        path = workdir / f"{name}-{batch}-{encoding}.journal"
        oracle, journal = journaled_remote_oracle(
            url, str(path), label="benchmark", seed=seed, options={},
            keep_transcript=False, batch_size=batch, encoding=encoding)
        remote = oracle.journaled.inner
        try:
            answers, seconds = _ask(oracle, Xs, batch)
        finally:
            journal.close()
        requests = remote.requests - 1  # without GET /info
        again, journal = journaled_remote_oracle(
            url, str(path), label="benchmark", seed=seed, options={},
            keep_transcript=False, batch_size=batch, encoding=encoding)
        try:
            before = again.journaled.inner.requests
            replayed, resume_seconds = _ask(again, Xs, batch)
            row.update(resume_seconds=resume_seconds, resume_qps=n / resume_seconds,
                       resume_requests=again.journaled.inner.requests - before)
        finally:
            journal.close()
        answers_ok = _equal(field, answers, expected) and _equal(field, replayed, expected)
        row["journal_mb"] = path.stat().st_size / 2**20
    else:
        http = HttpOracle(url, batch_size=batch, keep_transcript=False, encoding=encoding)
        answers, seconds = _ask(http, Xs, batch)
        requests = http.remote.requests - 1  # without GET /info
        answers_ok = _equal(field, answers, expected)
    row.update(requests=requests, seconds=seconds, qps=n / seconds,
               inprocess_seconds=local_seconds, inprocess_qps=n / local_seconds,
               overhead_ratio=seconds / local_seconds, answers_equal=answers_ok)
    return row


def run_field(name: str, batches: tuple[int, ...], sizes: dict[str, tuple[int, int, int]],
              workdir: Path) -> list[dict[str, Any]]:
    field = FIELDS[name]
    d, n_single, n_batch = sizes[name]
    model = single_head_instance(d, 0, field=field).model
    instance = workdir / f"{name}.json"
    instance.write_text(json.dumps(instance_to_json(model)))
    proc, url = _serve(instance)
    rows = []
    try:
        seed = 0
        for batch in batches:
            for journaled in (False, True):
                json_row: dict[str, Any] = {}
                for encoding in ENCODINGS[name]:
                    seed += 1
                    n = n_single if batch == 1 else max(n_batch, batch)
                    row = _measure(url, model, field, d, batch, journaled, encoding, n, seed,
                                   workdir)
                    if encoding == "json":
                        json_row = row
                    else:  # the binary row against the JSON row of the same run
                        row.update(json_seconds=json_row["seconds"],
                                   speedup_over_json=json_row["seconds"] / row["seconds"])
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return rows


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                         "integers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes are integers >= 1, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--fields", default="F64,EXP", help="comma-separated: F64, EXP")
    parser.add_argument("--batches", type=_int_list, default=None,
                        help="comma-separated batch sizes (default 1,64,1024; quick 1,4,16)")
    args = parser.parse_args(argv)
    names = [f for f in args.fields.split(",") if f]
    unknown = [f for f in names if f not in FIELDS]
    if unknown or not names:
        parser.error(f"--fields takes F64 and/or EXP, got {args.fields!r}")
    batches = args.batches or (QUICK_BATCHES if args.quick else FULL_BATCHES)
    sizes = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for name in names for row in run_field(name, batches, sizes, Path(tmp))]
    return 0 if rows and all(r["answers_equal"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
