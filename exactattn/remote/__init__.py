"""Remote oracles: a hidden model served over HTTP, and the oracle that queries it.

* :mod:`exactattn.remote.protocol`: the wire format (queries and answers as
  JSON in each field's own exact form; :func:`~exactattn.remote.protocol.query_key`).
* :mod:`exactattn.remote.server`: ``exactattn serve INSTANCE_FILE`` (the standard
  library's ``http.server``, threaded), with rate limit, budget, injected faults,
  noise and a JSON-lines log; :func:`~exactattn.remote.server.serve_in_thread`.
* :mod:`exactattn.remote.client`: :class:`~exactattn.remote.client.HttpOracle`,
  a :class:`~exactattn.oracle.ValueOracle` whose target is the server, and
  :class:`~exactattn.remote.client.HttpNoisyOracle` (approximate value queries to a
  server started with ``--noise``).

See docs/remote.md.
"""

from __future__ import annotations

from .client import HttpNoisyOracle, HttpOracle, RemoteTarget

__all__ = ["HttpOracle", "HttpNoisyOracle", "RemoteTarget"]
