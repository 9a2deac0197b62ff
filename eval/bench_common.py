"""Shared by the `arrival bench` phases (eval/bench.py): the benchmark's constants and targets, its error, the
measurement helpers (percentiles, memory, recall, one-query-at-a-time FAISS latency) and what every phase reads
from its spec (settings, embedder, corpus files, questions)."""

from __future__ import annotations

import contextlib
import json
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from arrival.errors import ArrivalError

DIM = 512
K = 10  # recall@K and neighbours fetched in the scaling runs
CHUNK_ROWS = 65_536  # synthetic vectors generated (and added) this many at a time
DEFAULT_SCALING = (10_000, 100_000, 1_000_000)
DEFAULT_PIPELINE = (100_000, 1_000_000)  # passages of the synthetic indexes of the whole-pipeline runs
SEARCH_MODES = ("bm25", "dense", "hybrid")
RECALL_TARGET = 0.95
P95_TARGET_MS = 30.0  # single-query p95 an approximate index must meet at 1M vectors
FLAT_BUDGET_MS = 10.0  # exact search is "fast enough" while its single-query p95 stays under this


# HNSW builds cost minutes at 1M vectors on 2 cores; above this size it is measured only when asked.
HNSW_MAX_DEFAULT = 200_000

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class BenchError(ArrivalError):
    """A benchmark phase could not run; the message names the phase and the reason."""


# -- small measurement helpers --------------------------------------------------------------------------
def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / mean in milliseconds of a list of durations in seconds."""
    if not seconds:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "mean_ms": 0.0, "n": 0}
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3),
            "mean_ms": round(float(ms.mean()), 3), "n": len(ms)}


def mb(n_bytes: float) -> float:
    return round(n_bytes / 2**20, 1)


def maxrss_mb(who: int) -> float:
    """Peak RSS in MB from getrusage (Linux reports kilobytes)."""
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)


def current_rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return maxrss_mb(resource.RUSAGE_SELF)


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = K) -> float:
    """Mean share of the exact top-k found in the approximate top-k (rows of ids; -1 = empty)."""
    hits = []
    for f, t in zip(found, truth, strict=True):
        want = {int(x) for x in t[:k] if x >= 0}
        if want:
            hits.append(len(want & {int(x) for x in f[:k] if x >= 0}) / len(want))
    return round(float(np.mean(hits)), 4) if hits else 0.0


@contextlib.contextmanager
def faiss_threads(n: int) -> Iterator[None]:
    """Run FAISS with n OpenMP threads (0 = leave as is), restoring the previous count afterwards."""
    import faiss

    before = faiss.omp_get_max_threads()
    if n > 0:
        faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def single_query_latency(index: Any, queries: np.ndarray, k: int = K, threads: int = 1, warmup: int = 10,
                         limit: int | None = None) -> tuple[dict[str, float], np.ndarray]:
    """Search one query at a time: (p50/p95 ms, ids of every query's top-k)."""
    qs = np.ascontiguousarray(queries[:limit] if limit else queries, dtype=np.float32)
    times: list[float] = []
    ids = np.full((len(qs), k), -1, dtype=np.int64)
    with faiss_threads(threads):
        for q in qs[:warmup]:
            index.search(q[None, :], k)
        for i, q in enumerate(qs):
            t = time.perf_counter()
            _, row = index.search(q[None, :], k)
            times.append(time.perf_counter() - t)
            ids[i] = row[0]
    return percentiles(times), ids


def phase_settings(spec: dict[str, Any]) -> Any:
    from arrival.settings import load_settings

    return load_settings(home=spec.get("home"), model=spec.get("model"), threads=spec.get("threads"),
                         cache=spec.get("cache"))


def phase_embedder(settings: Any) -> Any:
    from arrival.index.embed import load_embedder

    return load_embedder(settings.model, settings.cache, settings.threads, settings.batch_size)


def corpus_pdfs(corpus: str) -> list[Path]:
    from arrival.index.build import discover

    files, _ = discover([Path(corpus)])
    for f in files:  # same start for every pipeline: the files are in the page cache
        with contextlib.suppress(OSError):
            f.read_bytes()
    return files


def read_questions(path: str, limit: int | None = None) -> list[str]:
    """The question texts of a JSON-lines question file; cycled up to `limit` when there are fewer."""
    out: list[str] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            q = json.loads(line).get("question", "")
            if isinstance(q, str) and q.strip():
                out.append(q)
    if not out:
        raise BenchError(f"{path}: no questions")
    if limit is None:
        return out
    while len(out) < limit:  # a tiny question file is cycled so the percentiles have samples
        out.extend(out[: limit - len(out)])
    return out[:limit]
