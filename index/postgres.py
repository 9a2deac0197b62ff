"""The PostgreSQL + pgvector backend (ARRIVAL_DATABASE_URL=postgresql://...): the `Backend` contract on a database
that several `arrival serve` processes, on one machine or many, share (schema: `index.postgres_schema`).

- A `View` is one REPEATABLE READ, READ ONLY transaction: everything one request reads comes from one snapshot
  of the database, whatever commits meanwhile (`index.postgres_view`). `pinned()` holds it for the request and
  gives its connection back after; a View from `view()` gives it back when closed or dropped.
- The one `Writer` (`index.postgres_writer`) holds the session advisory lock LOCK_KEY, so two ingests on any
  machines are serialised by the database; everything it writes is one transaction, visible at `commit` or never
  (a killed ingest's transaction is rolled back by the server when its connection drops, and its lock released).

Connections are pooled per process and URL; what does not change between commits (documents, languages, the
lexicon) is cached per generation, which every commit increments. Passage vectors, which never change for the life
of a passage id (ids come from a sequence and are never reused), are cached per process across generations up to
VECTOR_CACHE_MB: the ranker reads a few hundred candidates' vectors per search, and fetching them from the
database was a third of a search's time. The per-passage columns and rows a search reads are cached per
generation (they change only at a commit: neighbours, translation partners, a moved document's path).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from arrival.errors import IndexOpenError, LockedError
from arrival.index.postgres_schema import LOCK_KEY, SCHEMA, register_vector, session_settings

if TYPE_CHECKING:
    from arrival.index.backend import Writer
    from arrival.index.embed import Embedder
    from arrival.index.postgres_view import PgView

MAX_IDLE = 8  # idle connections kept per process and database
VECTOR_CACHE_MB = 256  # passage vectors kept per process and database (a passage's vector never changes)
CONNECT_TIMEOUT = 10
_POOLS: dict[tuple[int, str], _Pool] = {}
_POOLS_LOCK = threading.Lock()


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", re.sub(r"(password=)[^&\s]*", r"\1***", url))


def _psycopg() -> Any:
    try:
        import pgvector.psycopg  # noqa: F401
        import psycopg
    except ImportError:
        raise IndexOpenError("ARRIVAL_DATABASE_URL needs psycopg and pgvector: pip install 'arrival[postgres]'"
                             ) from None
    return psycopg


def connect(url: str, application: str = "arrival", autocommit: bool = False) -> Any:
    """A new connection; a failure is one IndexOpenError line naming the database (without its password)."""
    psycopg = _psycopg()
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT,
                               application_name=application[:63], keepalives=1, keepalives_idle=30)
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IndexOpenError(f"{redact(url)}: cannot connect to PostgreSQL ({first})") from None
    return conn


class _Table:
    """The cached vectors of one vector space of one index: rows of a matrix, by passage id."""

    def __init__(self, dim: int) -> None:
        self.pos: dict[int, int] = {}
        self.mat = np.empty((1024, dim), dtype=np.float32)

    def add(self, vectors: dict[int, np.ndarray]) -> int:
        new = [(i, v) for i, v in vectors.items() if i not in self.pos]
        need = len(self.pos) + len(new)
        if need > len(self.mat):
            grown = np.empty((max(need, 2 * len(self.mat)), self.mat.shape[1]), dtype=np.float32)
            grown[: len(self.pos)] = self.mat[: len(self.pos)]
            self.mat = grown
        for i, v in new:
            self.mat[len(self.pos)] = v
            self.pos[i] = len(self.pos)
        return len(new) * self.mat.shape[1] * 4


class VectorCache:
    """Vectors by (index, vector space, passage id) up to `budget` bytes, then emptied and refilled (a server's
    working set is the passages its questions reach; emptying costs one fetch per vector); thread-safe."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self.lock = threading.Lock()
        self.tables: dict[tuple[Any, str], _Table] = {}

    def take(self, index: Any, space: str, ids: Sequence[int]) -> tuple[np.ndarray | None, list[int]]:
        """(the vectors of `ids`, row-aligned, and []) when all are cached, else (None, the ids missing)."""
        with self.lock:
            table = self.tables.get((index, space))
            if table is None:
                return None, list(ids)
            pos = [table.pos.get(i, -1) for i in ids]
            missing = [i for i, p in zip(ids, pos, strict=True) if p < 0]
            return (None, missing) if missing else (table.mat[pos], [])

    def put(self, index: Any, space: str, vectors: dict[int, np.ndarray]) -> None:
        if not vectors:
            return
        dim = len(next(iter(vectors.values())))
        with self.lock:
            if self.size + len(vectors) * dim * 4 > self.budget:
                self.tables, self.size = {}, 0
            table = self.tables.get((index, space))
            if table is None or table.mat.shape[1] != dim:
                table = self.tables[(index, space)] = _Table(dim)
            self.size += table.add(vectors)


class _Pool:
    """Idle reader connections of one database, what is cached per generation of its index, and the vectors."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.Lock()
        self.idle: list[Any] = []
        self.cache: dict[str, Any] = {}  # key -> value, for generation `cache_generation`
        self.cache_generation: tuple[float, int] = (0.0, -1)
        self.vectors = VectorCache(VECTOR_CACHE_MB << 20)

    def get(self) -> Any:
        with self.lock:
            while self.idle:
                conn = self.idle.pop()
                if not conn.closed and not conn.broken:
                    return conn
        psycopg = _psycopg()
        conn = connect(self.url, f"arrival reader pid {os.getpid()}")
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        session_settings(conn)
        conn.commit()
        conn.info_vector = register_vector(conn)  # type: ignore[attr-defined]
        return conn

    def put(self, conn: Any) -> None:
        if conn.closed or conn.broken:
            return
        try:
            conn.rollback()
        except Exception:
            conn.close()
            return
        with self.lock:
            if len(self.idle) < MAX_IDLE:
                self.idle.append(conn)
                return
        conn.close()

    def cached(self, generation: tuple[float, int], key: str, make: Any) -> Any:
        """`make()` computed once per generation of the index (documents, languages, the lexicon, the rows read).
        `generation` is (the index's creation time, its generation number): a rebuilt index counts again from 0."""
        with self.lock:
            if self.cache_generation == generation and key in self.cache:
                return self.cache[key]
        value = make()
        with self.lock:
            same_index = generation[0] == self.cache_generation[0]
            if generation != self.cache_generation and not (same_index and generation[1] < self.cache_generation[1]):
                self.cache, self.cache_generation = {}, generation  # a newer state (or another index): start over
            if generation == self.cache_generation:
                self.cache.setdefault(key, value)
                return self.cache[key]
        return value  # an older state than the cached one: not kept

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()


def pool_for(url: str) -> _Pool:
    key = (os.getpid(), url)  # never share a connection with a forked child
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = _Pool(url)
        return pool


def close_pools(url: str | None = None) -> None:
    """Close the idle connections to `url` (every database when None), e.g. before the database is dropped."""
    with _POOLS_LOCK:
        keys = [k for k in _POOLS if url is None or k[1] == url]
        pools = [_POOLS.pop(k) for k in keys]
    for pool in pools:
        pool.close()


class PostgresBackend:
    """The `Backend` contract on PostgreSQL with pgvector (see the module doc)."""

    def __init__(self, url: str, expected_embedder: str | None = None) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise IndexOpenError(f"{redact(url)}: ARRIVAL_DATABASE_URL must be a postgresql:// URL")
        self.url = url
        self.expected_embedder = expected_embedder
        self.pool = pool_for(url)

    @property
    def location(self) -> str:
        return redact(self.url)

    def has_index(self) -> bool:
        conn = self.pool.get()
        try:
            row = conn.execute(f"SELECT to_regclass('{SCHEMA}.state') IS NOT NULL").fetchone()
            return bool(row[0]) and conn.execute(f"SELECT count(*) FROM {SCHEMA}.state").fetchone()[0] > 0
        finally:
            self.pool.put(conn)

    def view(self) -> PgView:
        """The current state, held until the View is closed (or dropped)."""
        from arrival.index.postgres_view import PgView

        conn = self.pool.get()
        try:
            return PgView(self, conn)
        except BaseException:
            self.pool.put(conn)
            raise

    @contextlib.contextmanager
    def pinned(self) -> Iterator[PgView]:
        view = self.view()
        try:
            yield view
        finally:
            view.close()

    @contextlib.contextmanager
    def writer(self, embedders: dict[str, Embedder], chunk_size: int, chunk_overlap: int, wait: float = 0.0,
               rebuild: bool = False) -> Iterator[Writer]:
        from arrival.index.postgres_writer import PgWriter

        conn = connect(self.url, f"arrival ingest pid {os.getpid()} on {os.uname().nodename}")
        try:
            self._lock(conn, wait)
            writer = PgWriter(self, conn, embedders, chunk_size, chunk_overlap, rebuild)
            yield writer
        finally:
            with contextlib.suppress(Exception):
                conn.rollback()  # whatever was not committed goes
            with contextlib.suppress(Exception):
                conn.close()  # ends the session: the advisory lock goes with it

    def _lock(self, conn: Any, wait: float) -> None:
        """The session advisory lock of the one writer, waiting up to `wait` seconds for another ingest."""
        deadline = time.monotonic() + wait
        while True:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]
            conn.commit()
            if got:
                return
            if time.monotonic() >= deadline:
                holder = conn.execute(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid = %s::oid "
                    "AND l.objid = %s::oid", ((LOCK_KEY >> 32) & 0xFFFFFFFF, LOCK_KEY & 0xFFFFFFFF)).fetchone()
                conn.commit()
                who = holder[0] if holder and holder[0] else "another process"
                raise LockedError(f"{self.location}: another ingest is running ({who}); wait for it or use --wait")
            time.sleep(0.2)
