"""Resumable remote runs: a journaled oracle on a server, whose requests can be sent again.

:func:`journaled_remote_oracle` builds the oracle that ``exactattn learn LABEL
--oracle URL --journal FILE`` holds::

    JournaledOracle(JournaledTarget(ResumableRemoteTarget(url), Journal(FILE, fingerprint)))

* :class:`~exactattn.remote.journal.Journal` and
  :class:`~exactattn.remote.journal.JournaledTarget`: every answer is on disk
  before the learner sees it; a resumed run takes the journaled answers
  without asking the server (:mod:`exactattn.remote.journal`).
* :class:`ResumableRemoteTarget`: a :class:`~exactattn.remote.client.RemoteTarget`
  whose ``request_id`` is a hash of the request's queries, not a random id.
  A run killed after the server evaluated a request but before the answer
  reached the journal sends the *same* request again when it resumes (the
  journal ends at a chunk boundary, so the chunk is the same), with the same
  id: the server answers it from its memory of answered requests
  (:data:`~exactattn.remote.server.REMEMBERED_REQUESTS`) without evaluating
  or logging it again. So the server evaluates each query once in total,
  kills included, provided the same server process still remembers the
  request (one of its last REMEMBERED_REQUESTS); a restarted server, or one
  that answered that many other requests meanwhile, evaluates it again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidEntryError
from ..fields import F64, Array, Field
from ..fields.base import describe
from . import protocol
from .client import RemoteTarget
from .journal import Journal, JournaledOracle, JournaledTarget, journal_fingerprint

__all__ = ["ResumableRemoteTarget", "journaled_remote_oracle", "remote_fingerprint"]


class ResumableRemoteTarget(RemoteTarget):
    """A :class:`~exactattn.remote.client.RemoteTarget` with content-addressed request ids.

    The ``request_id`` of a request is the first 32 hex digits of the sha256
    of its field and queries (over EXP and QQ of the canonical JSON the server
    reads; over F64 of the queries' shapes and float64 bits,
    :func:`~exactattn.remote.protocol.batch_digest`, whatever the encoding), so the
    same chunk of queries is the same request in every process: resent after
    a kill, it is answered from the server's memory, not evaluated again.
    Two equal requests in one run get the same id too, and the same answers
    (a server's answers are a function of the query). The id does not depend on
    the encoding (JSON or the binary F64 one), and the server recognises an F64
    request by its decoded queries (the same digest),
    so a run killed over one encoding and resumed over the other is answered from
    the server's memory too.
    """

    def _send(self, chunk: list[Array] | Array) -> Array:
        if self.field == F64:  # the batch's shapes and bits: the same id in both encodings
            request_id = protocol.batch_digest(self.field, chunk)[:32]
            if self.encoding == "f64le":
                return self._post_f64(chunk, request_id)
        name = protocol.dumps(self.field.name)
        queries = protocol.dumps(protocol.encode_queries(self.field, chunk))
        if self.field != F64:  # exact entries: the canonical JSON the server reads
            request_id = hashlib.sha256(f"{name}:{queries}".encode()).hexdigest()[:32]
        # the body protocol.dumps would write (sorted keys, compact), without encoding twice
        body = f'{{"field":{name},"queries":{queries},"request_id":"{request_id}"}}'
        return self._post_queries(body, len(chunk), request_id)


def remote_fingerprint(info: Mapping[str, Any], *, label: str, seed: int,
                       options: Mapping[str, Any]) -> dict[str, Any]:
    """The journal fingerprint of a run on the server that reported ``info`` (``GET /info``).

    The instance's sha256, field and d come from the server; a server that
    answers with noise adds its tolerance and noise seed to the options (its
    answers, hence the run, depend on them).
    """
    sha = info.get("instance_sha256")
    if not isinstance(sha, str) or not sha:
        raise InvalidEntryError(f"the server's /info has no instance_sha256 (got "
                                f"{describe(sha)}): a journal needs it to refuse a journal "
                                "of another instance; serve an instance file")
    opts = dict(options)
    if info.get("noise") is not None:
        opts["server_noise"] = info.get("noise")
        opts["server_noise_seed"] = info.get("noise_seed")
    return journal_fingerprint(instance_sha256=sha, field=str(info.get("field")),
                               d=int(info.get("d", 0)), label=label, seed=seed, options=opts)


def journaled_remote_oracle(url: str, journal_path: str, *, label: str, seed: int,
                            options: Mapping[str, Any], field: Field | None = None,
                            d: int | None = None, budget: int | None = None,
                            keep_transcript: bool = True, batch_size: int = 256,
                            timeout: float = 10.0, retries: int = 8, backoff: float = 0.05,
                            encoding: str | None = None) -> tuple[JournaledOracle, Journal]:
    """A journaled oracle on the server at ``url`` and its open journal (close it when done).

    ``field`` and ``d``, when given, must be the server's; ``label``,
    ``seed`` and ``options`` (the learner's options that change its queries)
    go into the fingerprint with the server's instance hash, so a journal of
    another run is refused (:class:`~exactattn.errors.JournalMismatchError`).
    A batch is committed to the journal per request of ``batch_size``
    queries; ``timeout``, ``retries`` and ``backoff`` are the
    :class:`~exactattn.remote.client.RemoteTarget`'s, and so is ``encoding`` (None: the
    binary F64 one when the server offers it). The encoding is not part of the
    fingerprint: the journal holds the answers' bits, the same in both.
    """
    remote = ResumableRemoteTarget(url, batch_size=batch_size, timeout=timeout,
                                   retries=retries, backoff=backoff, encoding=encoding)
    remote.check(field, d)
    fp = remote_fingerprint(remote.info, label=label, seed=seed, options=options)
    journal = Journal(journal_path, fp)
    try:
        target = JournaledTarget(remote, journal, chunk_size=batch_size)
        oracle = JournaledOracle(target, budget=budget, keep_transcript=keep_transcript,
                                 name=f"Journaled(Http({remote.url}))")
    except BaseException:
        journal.close()
        raise
    return oracle, journal

