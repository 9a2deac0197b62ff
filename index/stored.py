"""Readers of a generation's stored files that do not need the generation itself: vector rows by pread, the
per-row labels, SQLite's page check once per file, and the page-cache prefetch (used by `index.snapshot`)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

# SQLite files whose every page this process has checked, by (device, inode, size, mtime): a generation's files
# never change, and the next generation's base is a hard link to the same inode, so an ingest's new generation and
# the server that switches to it do not read the whole base again (PRAGMA quick_check reads every page: 1.9 GB at
# a million passages). A file written since (another inode or mtime) is checked again.
_CHECKED: set[tuple[int, int, int, int]] = set()
_CHECKED_LOCK = threading.Lock()


def _file_key(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def check_pages(db: sqlite3.Connection, path: Path) -> None:
    """PRAGMA quick_check on `db` (opened on `path`) unless this process checked this very file already;
    sqlite3.DatabaseError when a page is damaged."""
    key = _file_key(path)
    with _CHECKED_LOCK:
        if key in _CHECKED:
            return
    status = db.execute("PRAGMA quick_check").fetchone()[0]
    if status != "ok":
        raise sqlite3.DatabaseError(status)
    with _CHECKED_LOCK:
        _CHECKED.add(key)


LABELS = ("lang", "doc", "heading")  # per-row strings stored as codes into a table of their distinct values


def save_labels(folder: Path, lang: Sequence[str], doc: Sequence[str], heading: Sequence[str | None]) -> None:
    """Each row's language, document id and heading, as `<name>.codes.npy` (int32, one per row) and
    `<name>.table.json` (the distinct values): opening an index reads them instead of every row of SQLite (2.2 s
    and three columns of Python strings at a million passages)."""
    for name, values in zip(LABELS, (lang, doc, heading), strict=True):
        table: dict[str | None, int] = {}
        codes = np.fromiter((table.setdefault(v, len(table)) for v in values), dtype=np.int32, count=len(values))
        np.save(folder / f"{name}.codes.npy", codes, allow_pickle=False)
        (folder / f"{name}.table.json").write_text(json.dumps(list(table), ensure_ascii=False), encoding="utf-8")


class StoredLabels(NamedTuple):
    columns: dict[str, np.ndarray]  # LABELS -> one object per row, sharing one string per distinct value
    doc_codes: np.ndarray  # each row's document as an index into doc_table (int32)
    doc_table: np.ndarray  # the distinct document ids (object)

    def rows_of(self, docs: frozenset[str]) -> np.ndarray:
        """Which rows belong to one of `docs`, by integer membership over the codes (np.isin over the object
        column sorts a million strings)."""
        wanted = [i for i, d in enumerate(self.doc_table) if d in docs]
        return np.isin(self.doc_codes, np.asarray(wanted, dtype=np.int32))


def load_labels(folder: Path, rows: int) -> StoredLabels | None:
    """The labels `save_labels` wrote; None when the folder has none (an index written before they were
    stored)."""
    if not (folder / "lang.codes.npy").exists():
        return None
    out = {}
    tables = {}
    for name in LABELS:
        codes = np.load(folder / f"{name}.codes.npy", allow_pickle=False)
        table = json.loads((folder / f"{name}.table.json").read_text(encoding="utf-8"))
        if codes.ndim != 1 or len(codes) != rows or not isinstance(table, list):
            raise ValueError(f"{name}: {len(codes)} codes for {rows} rows")
        values = np.empty(len(table), dtype=object)
        values[:] = table
        out[name] = values[codes]  # IndexError on a code outside the table
        tables[name] = codes, values
    return StoredLabels(out, *tables["doc"])


def labels_of(rows: Iterable[tuple[str, str, str | None]]) -> dict[str, np.ndarray]:
    found = list(rows)
    columns = list(zip(*found, strict=True)) if found else [(), (), ()]
    return {name: np.array(values, dtype=object) for name, values in zip(LABELS, columns, strict=True)}


class RowFile:
    """The rows of a stored float32 matrix (.npy), read with pread, a run of consecutive rows per call.

    A question reads ~1,600 scattered rows per vector space (candidates, their neighbours, rescoring). Through a
    memory map each one mapped the kernel's fault-around window into the process: 100 questions at a million
    passages left 2.8 GB of the two vector files resident in the server. Read this way the rows cost the process
    only the copies it asked for (the file stays in the page cache, shared), and it is faster: 1.6 vs 2.5 ms for
    1,800 rows."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...]) -> None:
        self.path, self.offset, self.shape = path, int(offset), (int(shape[0]), int(shape[1]))
        self._row_bytes = self.shape[1] * 4
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, ids: Any) -> np.ndarray:
        if isinstance(ids, (int, np.integer)):
            return self[np.asarray([ids])][0]
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.shape[0]):
            raise IndexError(f"{self.path}: row out of range")
        wanted, back = np.unique(ids, return_inverse=True)
        out = np.empty((len(wanted), self.shape[1]), dtype=np.float32)
        if not len(wanted):
            return out
        buf = memoryview(out.data).cast("B")
        breaks = (np.flatnonzero(np.diff(wanted) != 1) + 1).tolist()
        for start, end in zip([0, *breaks], [*breaks, len(wanted)], strict=True):
            want = (end - start) * self._row_bytes
            got = os.preadv(self._fd, [buf[start * self._row_bytes:end * self._row_bytes]],
                            self.offset + int(wanted[start]) * self._row_bytes)
            if got != want:
                raise OSError(f"{self.path}: short read ({got} of {want} bytes)")
        return out if np.array_equal(wanted, ids) else out[back]


def prefetch(paths: Sequence[Path], name: str) -> threading.Thread:
    """Ask the kernel to read `paths` into its page cache (posix_fadvise WILLNEED) in a daemon thread `name`."""

    def run() -> None:
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue  # absent (no e5 index below the exact-search size) or collected meanwhile
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass  # a file system without read-ahead hints: the first questions read from disk
            finally:
                os.close(fd)

    thread = threading.Thread(target=run, name=name, daemon=True)
    if hasattr(os, "posix_fadvise"):
        thread.start()
    return thread
