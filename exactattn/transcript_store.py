"""Compact, memory-bounded storage of F64 transcripts (issue 12, part 3).

A float64 transcript of q queries of N x d tokens kept densely costs
8 q N d bytes: 17 GB for the d + d^2 queries of a full-rank head at
d = 1024. :class:`F64QueryStore` keeps the same (query, answer) pairs

* **sparse where they are sparse**: each query is stored as the flat positions
  and values of its entries that are not +0.0 (``-0.0`` counts as nonzero, so
  decoding is bit-exact). The learners' queries are a few basis-like rows
  (u_l + e_j and e_j: three or four nonzeros out of 2d), so a query costs
  about 60 bytes instead of 16 KB;
* **dense where they are dense** (a Gaussian probe): values only, when that is
  smaller than positions and values;
* **as sums of shared rows** (:meth:`F64QueryStore.extend_sums`, the queries
  of :meth:`exactattn.oracle.ValueOracle.batch_sums`): a grid of probes p_i
  and tokens x_j, queries [(p_i + x_j)^T; x_j^T], keeps the rows [P; X] once
  (a *basis*) and each query as its N k row indices, about 80 bytes a query
  instead of 8 N d (32 KB at d = 2048); decoding recomputes the sums with
  :func:`exactattn.queries.row_sums`, elementwise correctly rounded additions,
  so the bits are those the hidden function was asked;
* **columnar, in chunks**: appended batches are vectorised numpy segments;
  every :data:`CHUNK_ENTRIES` entries (or :data:`CHUNK_BYTES`) a chunk is
  sealed, and once the sealed chunks in memory exceed ``memory_limit`` bytes
  they are **spilled to disk** as ``.npy`` files (one per column) in a
  private temporary directory (removed when the store is garbage-collected);
  bases past the limit are spilled too and read back memory-mapped.

Why ``.npz``: it is numpy's own documented format (``numpy.lib.format``),
needs no new dependency, stores each column with its dtype and shape exactly
(bit-exact float64), loads without pickle (``allow_pickle=False``), and is
read by any numpy since 1.0. HDF5 or zarr would add a dependency for
features (partial reads of one array, compression) that chunking already
gives here.

A whole transcript is saved as one ``.npz`` file (:meth:`F64QueryStore.save`)
with a ``format_version`` array; :meth:`F64QueryStore.load` refuses a newer
version with a message naming it, and reads version 1 (before the sums of
rows: every entry explicit) as well as version 2. Reading is streamed: :meth:`iter_blocks`
decodes at most ``max_bytes`` of dense queries at a time, so replaying a
million queries needs one block of memory, not the transcript.

>>> import numpy as np
>>> store = F64QueryStore(d=3)
>>> Xs = np.zeros((2, 2, 3)); Xs[0, 0, 1] = 1.5; Xs[1] = -0.0; Xs[1, 1, 2] = 2.0
>>> store.extend("W", Xs, np.array([0.25, -1.0]))
>>> len(store), store.phase(1), float(store.answer(1))
(2, 'W', -1.0)
>>> X = store.query(1)
>>> X.tolist(), bool(np.signbit(X[0, 0]))
([[-0.0, -0.0, -0.0], [-0.0, -0.0, 2.0]], True)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import InvalidEntryError
from .queries import row_sums

__all__ = ["F64QueryStore", "FORMAT_VERSION", "CHUNK_ENTRIES", "DEFAULT_MEMORY_LIMIT"]

#: version of the ``.npz`` layout written by :meth:`F64QueryStore.save`
FORMAT_VERSION = 2
#: entries per sealed chunk
CHUNK_ENTRIES = 1 << 16
#: at most this many bytes per sealed chunk (dense queries fill a chunk before its entries do)
CHUNK_BYTES = 64 * 2**20
#: a segment (one appended batch) of at least this many bytes is sealed alone, uncopied
SEGMENT_ALONE = 1 << 20
#: sealed chunks kept in memory up to this many bytes; older ones are spilled to disk
DEFAULT_MEMORY_LIMIT = 256 * 2**20
#: decoded dense queries per block of :meth:`F64QueryStore.iter_blocks`, in bytes
DEFAULT_BLOCK_BYTES = 32 * 2**20

#: the columns of a chunk: per entry (phase code, rows N, answer, start and length of its
#: values, start and length of its positions, no positions = dense; its basis id, -1 for
#: none) and the flat data. An entry with a basis has no values (vlen 0) and its
#: pstart / plen locate its N k row indices in ``terms`` (not positions in ``pos``).
_ENTRY_COLUMNS = ("phase", "rows", "answer", "vstart", "vlen", "pstart", "plen", "basis")
_DATA_COLUMNS = ("val", "pos", "terms")
#: the columns added by format version 2 (a version 1 chunk reads them as "no basis")
_V2_COLUMNS = ("basis", "terms")


@dataclass
class _Chunk:
    """Sealed columns of consecutive entries, in memory (``cols``) or on disk (``path``)."""

    start: int
    count: int
    nbytes: int
    cols: dict[str, np.ndarray] | None
    path: str | None = None
    prefix: str = ""  # the chunk's arrays in the file are named prefix + column


@dataclass
class _Basis:
    """Shared rows of sums-of-rows entries: in memory (``rows``) or in a file (``path``)."""

    nrows: int
    nbytes: int
    rows: np.ndarray | None
    path: str | None = None
    key: str = ""  # the array's name in a saved .npz (empty: a spilled .npy file)


class F64QueryStore:
    """Append-only columnar store of float64 queries (N x d) and answers.

    Parameters
    ----------
    d : the token width.
    memory_limit : bytes of sealed chunks kept in memory before the oldest are
        spilled to ``.npy`` files in a private temporary directory.
    """

    def __init__(self, d: int, *, memory_limit: int = DEFAULT_MEMORY_LIMIT) -> None:
        self.d = int(d)
        self.memory_limit = int(memory_limit)
        self._phases: list[str] = []
        self._codes: dict[str, int] = {}
        self._chunks: list[_Chunk] = []
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_count = 0
        self._pending_bytes = 0
        self._count = 0
        self._dir: str | None = None
        self._cache: tuple[int, dict[str, np.ndarray]] | None = None
        self._bases: list[_Basis] = []
        self._basis_cache: dict[int, np.ndarray] = {}
        self.disk_bytes = 0
        #: the transcript index of entry 0 (nonzero for a saved slice)
        self.first_index = 0

    # -- writing -------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    def _code(self, phase: str) -> int:
        code = self._codes.get(phase)
        if code is None:
            code = self._codes[phase] = len(self._phases)
            self._phases.append(phase)
        return code

    def extend(self, phase: str, Xs: np.ndarray, answers: np.ndarray) -> None:
        """Append B queries of one length (``Xs`` of shape (B, N, d)) and their answers."""
        B, N, d = Xs.shape
        if d != self.d or len(answers) != B:
            raise InvalidEntryError(f"the store holds width {self.d}; got queries {Xs.shape} "
                                    f"and {len(answers)} answers")
        if B == 0:
            return
        flat = np.ascontiguousarray(Xs, dtype=np.float64).reshape(B, N * d)
        nz = flat.view(np.uint64) != 0  # by the bits: -0.0 is kept, decoding is bit-exact
        counts = np.count_nonzero(nz, axis=1)
        dense = counts * 2 > N * d  # positions + values would cost more than the values
        vlen = np.where(dense, N * d, counts).astype(np.int64)
        plen = np.where(dense, 0, counts).astype(np.int64)
        sparse_rows = np.flatnonzero(~dense)
        dense_rows = np.flatnonzero(dense)
        # flat indices of the nonzeros of the sparse rows (one pass, no 2-D index pairs)
        hits = np.flatnonzero(nz if not dense_rows.size else nz[sparse_rows])
        b_idx, p_idx = np.divmod(hits, N * d)
        sparse_val = flat[sparse_rows[b_idx], p_idx]
        if not sparse_rows.size:
            values = flat.ravel().copy()  # all dense (random probes): one copy, no gather
        elif not dense_rows.size:
            values = sparse_val
        else:
            values = np.concatenate([sparse_val, flat[dense_rows].ravel()])
        # values: the sparse entries' values in row order, then the dense rows' values
        vstart = np.empty(B, dtype=np.int64)
        vstart[sparse_rows] = np.cumsum(counts[sparse_rows]) - counts[sparse_rows]
        vstart[dense_rows] = sparse_val.size + np.arange(dense_rows.size, dtype=np.int64) * N * d
        pstart = np.zeros(B, dtype=np.int64)
        pstart[sparse_rows] = vstart[sparse_rows]
        seg = {
            "phase": np.full(B, self._code(phase), dtype=np.uint32),
            "rows": np.full(B, N, dtype=np.int32),
            "answer": np.array(answers, dtype=np.float64),
            "vstart": vstart, "vlen": vlen, "pstart": pstart, "plen": plen,
            "val": values,
            "pos": p_idx.astype(np.int64),
            **_no_basis(B),
        }
        self._append_segment(seg, B)

    def extend_sums(self, phase: str, rows: np.ndarray, terms: np.ndarray,
                    answers: np.ndarray) -> None:
        """Append B queries given as sums of ``rows`` (``terms`` of shape (B, N, k)).

        The queries are :func:`exactattn.queries.row_sums` ``(rows, terms)``;
        ``terms`` must be valid (:func:`exactattn.queries.as_row_sums`). The
        rows are kept once (by reference when they are a read-only array that
        owns its data, as the oracle's copy is; copied otherwise). When the
        rows would cost more than the queries themselves (m > B N), the
        queries are stored explicitly instead.
        """
        B, N, k = terms.shape
        m = rows.shape[0]
        if rows.shape[1] != self.d or len(answers) != B:
            raise InvalidEntryError(f"the store holds width {self.d}; got rows {rows.shape} "
                                    f"and {len(answers)} answers for {B} queries")
        if B == 0:
            return
        if m > B * N or m >= 2**31:
            step = max(1, DEFAULT_BLOCK_BYTES // (N * self.d * 8))
            for s in range(0, B, step):
                self.extend(phase, row_sums(rows, terms[s:s + step]), answers[s:s + step])
            return
        if rows.dtype != np.float64 or rows.flags.writeable or not rows.flags.owndata:
            rows = np.array(rows, dtype=np.float64)
            rows.flags.writeable = False
        self._bases.append(_Basis(m, rows.nbytes, rows))
        seg = {
            "phase": np.full(B, self._code(phase), dtype=np.uint32),
            "rows": np.full(B, N, dtype=np.int32),
            "answer": np.array(answers, dtype=np.float64),
            "vstart": np.zeros(B, dtype=np.int64), "vlen": np.zeros(B, dtype=np.int64),
            "pstart": np.arange(B, dtype=np.int64) * (N * k),
            "plen": np.full(B, N * k, dtype=np.int64),
            "val": np.zeros(0, dtype=np.float64), "pos": np.zeros(0, dtype=np.int64),
            "basis": np.full(B, len(self._bases) - 1, dtype=np.int32),
            "terms": terms.astype(np.int32).ravel(),
        }
        self._append_segment(seg, B)

    def _append_segment(self, seg: dict[str, np.ndarray], B: int) -> None:
        nbytes = sum(a.nbytes for a in seg.values())
        if nbytes >= SEGMENT_ALONE:
            self._seal()  # a large segment is a chunk of its own: never copied again
        self._pending.append(seg)
        self._pending_count += B
        self._pending_bytes += nbytes
        self._count += B
        if (nbytes >= SEGMENT_ALONE or self._pending_count >= CHUNK_ENTRIES
                or self._pending_bytes >= self._chunk_bytes()):
            self._seal()

    def _chunk_bytes(self) -> int:
        """Pending bytes that seal a chunk: a quarter of the memory limit, at most 64 MB."""
        return max(1, min(self.memory_limit // 4, CHUNK_BYTES))

    def _seal(self) -> None:
        """Concatenate the pending segments into one chunk; spill old chunks past the limit."""
        if not self._pending:
            return
        cols = _concat(self._pending) if len(self._pending) > 1 else self._pending[0]
        count = self._pending_count
        self._pending, self._pending_count, self._pending_bytes = [], 0, 0
        nbytes = sum(a.nbytes for a in cols.values())
        self._chunks.append(_Chunk(self._count - count, count, nbytes, cols))
        in_memory = (sum(c.nbytes for c in self._chunks if c.cols is not None)
                     + sum(b.nbytes for b in self._bases if b.rows is not None))
        for c in self._chunks:
            if in_memory <= self.memory_limit:
                break
            if c.cols is not None:
                self._spill(c)
                in_memory -= c.nbytes
        for k, b in enumerate(self._bases):
            if in_memory <= self.memory_limit:
                break
            if b.rows is not None:
                path = os.path.join(self._spill_dir(), f"basis{k}.npy")
                np.save(path, b.rows, allow_pickle=False)
                self.disk_bytes += b.nbytes
                b.rows, b.path = None, path
                in_memory -= b.nbytes

    def _spill_dir(self) -> str:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="exactattn-transcript-")
            weakref.finalize(self, shutil.rmtree, self._dir, True)
        return self._dir

    def _spill(self, chunk: _Chunk) -> None:
        # a private spill is a directory of .npy files (numpy's format, no zip checksum
        # to compute); a saved transcript is one .npz file (see save)
        path = os.path.join(self._spill_dir(), f"chunk{chunk.start}")
        os.mkdir(path)
        assert chunk.cols is not None
        for name, A in chunk.cols.items():
            np.save(os.path.join(path, name + ".npy"), A, allow_pickle=False)
            self.disk_bytes += A.nbytes
        chunk.cols, chunk.path = None, path

    @property
    def memory_bytes(self) -> int:
        """Bytes held in memory (sealed chunks and bases not spilled, pending segments)."""
        sealed = sum(c.nbytes for c in self._chunks if c.cols is not None)
        bases = sum(b.nbytes for b in self._bases if b.rows is not None)
        return sealed + bases + sum(a.nbytes for seg in self._pending for a in seg.values())

    def _basis(self, k: int) -> np.ndarray:
        """The rows of basis k (memory-mapped when spilled, read once from a saved file)."""
        b = self._bases[k]
        if b.rows is not None:
            return b.rows
        if k not in self._basis_cache:
            assert b.path is not None
            try:
                if not b.key:
                    A = np.load(b.path, mmap_mode="r", allow_pickle=False)
                else:
                    with np.load(b.path, allow_pickle=False) as z:
                        A = z[b.key]
            except (OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
                raise InvalidEntryError(f"cannot read transcript basis {k} of {b.path}: "
                                        f"{exc}") from None
            if A.dtype != np.float64 or A.shape != (b.nrows, self.d):
                raise InvalidEntryError(f"the transcript file {b.path} is inconsistent: basis "
                                        f"{k} has shape {A.shape} and dtype {A.dtype}, "
                                        f"expected ({b.nrows}, {self.d}) float64")
            self._basis_cache[k] = A
        return self._basis_cache[k]

    # -- reading -------------------------------------------------------------
    def _columns(self, k: int) -> tuple[int, dict[str, np.ndarray]]:
        """(first index, columns) of the chunk holding entry k (pending entries are sealed)."""
        if k >= self._count - self._pending_count:
            self._seal()
        lo, hi = 0, len(self._chunks)
        while hi - lo > 1:  # the last chunk starting at or before k
            mid = (lo + hi) // 2
            if self._chunks[mid].start <= k:
                lo = mid
            else:
                hi = mid
        chunk = self._chunks[lo]
        if chunk.cols is not None:
            return chunk.start, chunk.cols
        if self._cache is None or self._cache[0] != chunk.start:
            assert chunk.path is not None
            names = (*_ENTRY_COLUMNS, *_DATA_COLUMNS)
            try:
                if os.path.isdir(chunk.path):  # a spilled chunk
                    cols = {c: np.load(os.path.join(chunk.path, c + ".npy"), allow_pickle=False)
                            for c in names}
                else:  # a chunk of a saved .npz file (version 1: no basis columns)
                    with np.load(chunk.path, allow_pickle=False) as z:
                        cols = {c: z[chunk.prefix + c] for c in names
                                if c not in _V2_COLUMNS or chunk.prefix + c in z.files}
                    if "basis" not in cols:
                        cols.update(_no_basis(chunk.count))
            except (OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
                raise InvalidEntryError(f"cannot read transcript chunk {chunk.prefix or 0} "
                                        f"of {chunk.path}: {exc}") from None
            _check_columns(cols, len(self._phases), chunk.count, self.d, chunk.path,
                           [b.nrows for b in self._bases])
            self._cache = (chunk.start, cols)
        return chunk.start, self._cache[1]

    def _check_index(self, k: int) -> int:
        if not -self._count <= k < self._count:
            raise IndexError(f"transcript index {k} out of range ({self._count} entries)")
        return k % self._count if self._count else k

    def phase(self, k: int) -> str:
        k = self._check_index(k)
        start, cols = self._columns(k)
        return self._phases[int(cols["phase"][k - start])]

    def answer(self, k: int) -> np.float64:
        k = self._check_index(k)
        start, cols = self._columns(k)
        return np.float64(cols["answer"][k - start])

    def query(self, k: int) -> np.ndarray:
        """Entry k's query as a new N x d float64 array (bit-exact)."""
        return self.entry(k)[1]

    def entry(self, k: int) -> tuple[str, np.ndarray, np.float64]:
        """Entry k as (phase, query, answer), with one lookup of its chunk."""
        k = self._check_index(k)
        start, cols = self._columns(k)
        i = k - start
        X = self._decode(cols, np.array([i]), int(cols["rows"][i]))[0]
        return self._phases[int(cols["phase"][i])], X, np.float64(cols["answer"][i])

    def iter_blocks(self, start: int = 0, stop: int | None = None, *,
                    max_bytes: int = DEFAULT_BLOCK_BYTES
                    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Blocks ``(indices, Xs, answers)`` of entries in [start, stop), one length per block.

        ``Xs`` has shape (b, N, d) and holds at most ``max_bytes`` (at least one
        query); blocks follow chunk order, and within a chunk go length by
        length, so indices are increasing within a block but not across them.
        """
        stop = self._count if stop is None else stop
        self._seal()
        for chunk in self._chunks:
            lo, hi = max(start, chunk.start), min(stop, chunk.start + chunk.count)
            if lo >= hi:
                continue
            _, cols = self._columns(chunk.start)
            sel = np.arange(lo - chunk.start, hi - chunk.start)
            rows = cols["rows"][sel]
            for N in np.unique(rows):
                mine = sel[rows == N]
                step = max(1, max_bytes // (int(N) * self.d * 8))
                for b in range(0, mine.size, step):
                    part = mine[b:b + step]
                    yield part + chunk.start, self._decode(cols, part, int(N)), \
                        cols["answer"][part]

    def _decode(self, cols: dict[str, np.ndarray], part: np.ndarray, N: int) -> np.ndarray:
        """The dense (len(part), N, d) queries of the chunk rows ``part`` (all of length N)."""
        size = N * self.d
        out = np.zeros((part.size, size), dtype=np.float64)
        basis = cols["basis"][part]
        if (basis >= 0).any():
            summed = np.flatnonzero(basis >= 0)
            plen = cols["plen"][part][summed]
            keys = np.stack([basis[summed], plen], axis=1)
            for b, n_terms in np.unique(keys, axis=0):
                mine = summed[(basis[summed] == b) & (plen == n_terms)]
                k = int(n_terms) // N
                terms = cols["terms"][_ranges(cols["pstart"][part][mine],
                                              np.full(mine.size, int(n_terms)))]
                out[mine] = row_sums(self._basis(int(b)),
                                     terms.astype(np.int64).reshape(-1, N, int(k))
                                     ).reshape(-1, size)
            part = part[basis < 0]
            rest = np.flatnonzero(basis < 0)
        else:
            rest = np.arange(part.size)
        plen, vlen = cols["plen"][part], cols["vlen"][part]
        dense = (plen == 0) & (vlen > 0)
        if dense.any():
            rows = np.flatnonzero(dense)
            out[rest[rows]] = cols["val"][_ranges(cols["vstart"][part][rows],
                                                  vlen[rows])].reshape(-1, size)
        sp = np.flatnonzero(~dense)
        if sp.size:
            lens = plen[sp]
            which = np.repeat(rest[sp], lens)
            pos = cols["pos"][_ranges(cols["pstart"][part][sp], lens)]
            val = cols["val"][_ranges(cols["vstart"][part][sp], lens)]
            out[which, pos] = val
        return out.reshape(-1, N, self.d)

    # -- files -------------------------------------------------------------
    def save(self, path: str, start: int = 0, stop: int | None = None) -> None:
        """Entries [start, stop) as one uncompressed ``.npz`` file (``format_version`` 2).

        Written chunk by chunk (one chunk in memory at a time): arrays
        ``c<k>.<column>`` per chunk k, ``b<k>`` per basis k (the shared rows of
        sums-of-rows entries; every basis, whether or not [start, stop) uses
        it), with ``format_version``, ``d``, ``first_index``, ``phases``,
        ``counts`` (entries per chunk) and ``bases`` (rows per basis).
        """
        stop = self._count if stop is None else stop
        self._seal()
        counts: list[int] = []
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for chunk in self._chunks:
                lo, hi = max(start, chunk.start), min(stop, chunk.start + chunk.count)
                if lo >= hi:
                    continue
                _, cols = self._columns(chunk.start)
                if (lo, hi) != (chunk.start, chunk.start + chunk.count):
                    cols = _slice(cols, lo - chunk.start, hi - chunk.start)
                for name, A in cols.items():
                    _write_npy(zf, f"c{len(counts)}.{name}", A)
                counts.append(hi - lo)
            for k in range(len(self._bases)):
                _write_npy(zf, f"b{k}", np.asarray(self._basis(k)))
            meta = {"format_version": np.array(FORMAT_VERSION), "d": np.array(self.d),
                    "first_index": np.array(self.first_index + start),
                    "phases": np.array(self._phases, dtype=str),
                    "counts": np.array(counts, dtype=np.int64),
                    "bases": np.array([b.nrows for b in self._bases], dtype=np.int64)}
            for name, A in meta.items():
                _write_npy(zf, name, A)

    @classmethod
    def load(cls, path: str, *, memory_limit: int = DEFAULT_MEMORY_LIMIT) -> F64QueryStore:
        """The store saved by :meth:`save`, read lazily (a chunk when it is needed).

        Reads format versions 1 (every entry explicit) and 2. A file of a
        newer ``format_version``, or one that is not a transcript, is an
        :class:`~exactattn.errors.InvalidEntryError` naming the file.
        """
        try:
            with np.load(path, allow_pickle=False) as z:
                files = set(z.files)
                missing = {"format_version", "d", "first_index", "phases", "counts"} - files
                if missing:
                    raise InvalidEntryError(f"{path} is not an exactattn transcript: no "
                                            f"{', '.join(sorted(missing))}")
                version = int(z["format_version"])
                if version > FORMAT_VERSION:
                    raise InvalidEntryError(
                        f"{path} has transcript format version {version}; this exactattn "
                        f"reads versions up to {FORMAT_VERSION}: upgrade exactattn")
                store = cls(int(z["d"]), memory_limit=memory_limit)
                store._phases = [str(p) for p in z["phases"]]
                store._codes = {p: i for i, p in enumerate(store._phases)}
                counts = [int(n) for n in z["counts"]]
                first = int(z["first_index"])
                if version >= 2 and "bases" not in files:
                    raise InvalidEntryError(f"{path} is not an exactattn transcript of version "
                                            f"{version}: no bases")
                nrows = [int(n) for n in z["bases"]] if version >= 2 else []
        except (OSError, ValueError, zipfile.BadZipFile, KeyError, TypeError) as exc:
            raise InvalidEntryError(f"cannot read the transcript file {path}: {exc}") from None
        columns = [c for c in (*_ENTRY_COLUMNS, *_DATA_COLUMNS)
                   if version >= 2 or c not in _V2_COLUMNS]
        if store.d < 1 or any(n < 1 for n in counts) or any(
                f"c{k}.{c}" not in files for k in range(len(counts)) for c in columns) or any(
                n < 1 or f"b{k}" not in files for k, n in enumerate(nrows)):
            raise InvalidEntryError(f"the transcript file {path} is inconsistent: its chunk "
                                    "counts and arrays do not match")
        store._bases = [_Basis(n, n * store.d * 8, None, path, f"b{k}")
                        for k, n in enumerate(nrows)]
        for k, n in enumerate(counts):
            store._chunks.append(_Chunk(store._count, n, 0, None, path, f"c{k}."))
            store._count += n
        store.first_index = first
        return store


def _write_npy(zf: zipfile.ZipFile, name: str, A: np.ndarray) -> None:
    """One array as ``name.npy`` in an open ``.npz`` (numpy's format, streamed to the file)."""
    with zf.open(name + ".npy", "w", force_zip64=True) as fh:
        np.lib.format.write_array(fh, A if A.flags.c_contiguous else A.copy(), allow_pickle=False)


def _no_basis(B: int) -> dict[str, np.ndarray]:
    """The basis columns of B explicit entries (no basis), and no terms."""
    return {"basis": np.full(B, -1, dtype=np.int32), "terms": np.zeros(0, dtype=np.int32)}


def _check_columns(cols: dict[str, np.ndarray], phases: int, count: int, d: int,
                   where: str, bases: list[int]) -> None:
    """Refuse columns that do not describe ``count`` entries of width d over bases of
    ``bases`` rows (a damaged or foreign file), so that decoding cannot index out of
    range."""
    n = count
    bad = any(cols[c].ndim != 1 or cols[c].size != n for c in _ENTRY_COLUMNS)
    if not bad and n:
        basis = cols["basis"].astype(np.int64)
        bad = int(basis.min()) < -1 or int(basis.max()) >= len(bases)
        summed = basis >= 0
        if not bad and summed.any():
            lens, N = cols["plen"][summed], cols["rows"][summed].astype(np.int64)
            tstart = cols["pstart"][summed]
            bad = (int(N.min()) < 1 or int(lens.min()) < 1 or bool(np.any(lens % N))
                   or int(tstart.min()) < 0 or int((tstart + lens).max()) > cols["terms"].size
                   or bool(np.any(cols["vlen"][summed])))
            if not bad:
                terms = cols["terms"][_ranges(tstart, lens)].astype(np.int64)
                limit = np.repeat(np.array(bases, dtype=np.int64)[basis[summed]], lens)
                bad = bool(np.any((terms < -1) | (terms >= limit)))
                if not bad:
                    _check_terms_first(terms, lens, N, np.flatnonzero(summed), where)
        if bad:
            raise InvalidEntryError(f"the transcript file {where} is inconsistent: its "
                                    "sums of rows do not match its bases")
        size = cols["rows"].astype(np.int64) * d            # entries of each query
        bad = int(cols["phase"].max()) >= phases or int(size.min()) < 1
        ex = ~summed                                         # the explicit entries
        if not bad and ex.any():
            size = size[ex]
            plen, vlen, pstart, vstart = (cols[c][ex] for c in ("plen", "vlen", "pstart",
                                                                 "vstart"))
            bad = (int((vstart + vlen).max()) > cols["val"].size
                   or int((pstart + plen).max()) > cols["pos"].size
                   or int(vstart.min()) < 0 or int(pstart.min()) < 0
                   # sparse: one value per position; dense (no positions): all or nothing
                   or bool(np.any(np.where(plen > 0, vlen != plen,
                                           (vlen != 0) & (vlen != size)))))
            if not bad:
                pos = cols["pos"][_ranges(pstart, plen)]
                bad = bool(np.any((pos < 0) | (pos >= np.repeat(size, plen))))
    if bad:
        raise InvalidEntryError(f"the transcript file {where} is inconsistent: its columns "
                                "do not describe the same entries")


def _check_terms_first(terms: np.ndarray, lens: np.ndarray, N: np.ndarray,
                       entries: np.ndarray, where: str) -> None:
    """Refuse a token whose terms have a -1 (no term) before a term.

    ``terms`` is the concatenation of the terms of the chunk's entries
    ``entries`` (``lens[i]`` terms for the i-th, its ``N[i]`` tokens of
    ``lens[i] // N[i]`` terms each), as the writer lays them out
    (:func:`exactattn.queries.as_row_sums`: the terms of a token first, then
    -1). :func:`exactattn.queries.row_sums` relies on that order and stops at
    the first position where no token has a term, so a damaged file with a gap
    would decode to a query with fewer terms than it holds: refused here,
    before any query is decoded.

    >>> one = (np.array([4]), np.array([2]), np.array([7]), "f")
    >>> _check_terms_first(np.array([0, 1, 2, -1]), *one)
    >>> _check_terms_first(np.array([0, -1, -1, 2]), *one)
    Traceback (most recent call last):
    ...
    exactattn.errors.InvalidEntryError: the transcript file f is inconsistent: entry 7 of its
    chunk, token 1 has a -1 (no term) before a term (terms [-1, 2]); the writer lists ...
    """
    k = np.repeat(lens // N, lens)                            # terms per token, per term
    offset = np.arange(terms.size) - np.repeat(np.cumsum(lens) - lens, lens)
    later = offset % k > 0                                    # not a token's first term
    gap = np.zeros(terms.size, dtype=bool)
    gap[1:] = later[1:] & (terms[1:] >= 0) & (terms[:-1] < 0)
    if gap.any():
        at = int(np.flatnonzero(gap)[0])
        entry = int(entries[np.searchsorted(np.cumsum(lens), at, side="right")])
        token = int(offset[at] // k[at])
        first = at - int(offset[at] % k[at])
        raise InvalidEntryError(
            f"the transcript file {where} is inconsistent: entry {entry} of its chunk, token "
            f"{token} has a -1 (no term) before a term (terms "
            f"{terms[first:first + int(k[at])].tolist()}); the writer lists a token's terms "
            "first")


def _ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The concatenation of arange(s, s + l) for each (s, l), vectorised."""
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.cumsum(lens) - lens
    return np.repeat(starts - offsets, lens) + np.arange(total, dtype=np.int64)


def _slice(cols: dict[str, np.ndarray], lo: int, hi: int) -> dict[str, np.ndarray]:
    """Entries [lo, hi) of a chunk as a self-contained set of columns."""
    out = {c: cols[c][lo:hi] for c in ("phase", "rows", "answer", "vlen", "plen", "basis")}
    summed = out["basis"] >= 0
    pstart = cols["pstart"][lo:hi]
    plen, tlen = np.where(summed, 0, out["plen"]), np.where(summed, out["plen"], 0)
    out["val"] = cols["val"][_ranges(cols["vstart"][lo:hi], out["vlen"])]
    out["pos"] = cols["pos"][_ranges(pstart, plen)]
    out["terms"] = cols["terms"][_ranges(pstart, tlen)]
    out["vstart"] = np.cumsum(out["vlen"]) - out["vlen"]
    # pstart: into pos for explicit entries, into terms for entries with a basis
    out["pstart"] = np.where(summed, np.cumsum(tlen) - tlen, np.cumsum(plen) - plen)
    return out


def _concat(segs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Segments (each self-contained) as one set of columns, offsets shifted."""
    vshift = np.cumsum([0] + [s["val"].size for s in segs[:-1]])
    pshift = np.cumsum([0] + [s["pos"].size for s in segs[:-1]])
    tshift = np.cumsum([0] + [s["terms"].size for s in segs[:-1]])
    out = {c: np.concatenate([s[c] for s in segs]) for c in
           ("phase", "rows", "answer", "vlen", "plen", "val", "pos", "basis", "terms")}
    out["vstart"] = np.concatenate([s["vstart"] + k for s, k in zip(segs, vshift, strict=True)])
    # pstart: into pos for explicit entries, into terms for entries with a basis
    out["pstart"] = np.concatenate([s["pstart"] + np.where(s["basis"] >= 0, t, p)
                                    for s, p, t in zip(segs, pshift, tshift, strict=True)])
    return out

