"""Performance benchmark behind `arrival bench`: ingest speed against a stock LangChain pipeline, search and
answer latency, peak memory, and vector-index scaling. A library: it measures and returns plain dicts; it
never prints (`eval/bench_cli.py` does the talking).

Every heavy phase runs in its own Python process (``python -m eval.bench PHASE SPEC.json OUT.json``), so that
one phase's imports, caches and memory do not leak into the next phase's timings, and peak memory is measured
per phase: the parent polls the whole process tree (psutil; the PDF parsing workers included) and the child
reports its own ``ru_maxrss``.

Phases, all on one machine with one embedder spec:

``ingest``     cold ingest of the corpus into an empty temporary index home, then a no-op re-ingest;
``langchain``  the same PDFs through PyPDFLoader -> RecursiveCharacterTextSplitter -> LangChain FAISS, with the
               same embedder wrapped as LangChain ``Embeddings`` (nothing is saved);
``serve``      a loaded server (retriever + extractive assistant + the web app object), then single-query
               latencies (after warm-up) for bm25 / dense / hybrid search and for ``ask``;
``ann_real``   recall@10 of the approximate indexes on the real chunk embeddings, queries = the real question
               embeddings of eval/questions.jsonl;
``scaling``    one process per size: synthetic 512-d vectors, exact flat search vs HNSW vs IVF: build time,
               memory, single-query p50/p95 and recall@10 against exact search.

Synthetic vectors are not uniform noise (on which approximate search is meaningless): they are a Gaussian
mixture with a decaying variance spectrum and a shared mean direction, normalised, calibrated on the real
use-m3 chunk embeddings of the shared corpus (top-50 principal components ~70 % of the variance, mean vector
norm ~0.45, nearest-neighbour cosine ~0.8 at 2k vectors). Queries come from the same mixture with more noise
and a weaker mean direction, so that, like real questions against passages, their best match has cosine
~0.5 rather than ~0.8 (the harder case for approximate search). No rotation is applied: flat, HNSW and IVF
over inner products are rotation-invariant, so an axis-aligned spectrum measures the same thing, cheaper.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arrival.errors import ArrivalError
from arrival.index.vectors import IVF_NPROBE, build_ivf, ivf_nlist

DIM = 512
K = 10  # recall@K and neighbours fetched in the scaling runs
CHUNK_ROWS = 65_536  # synthetic vectors generated (and added) this many at a time
DEFAULT_SCALING = (10_000, 100_000, 1_000_000)
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


def _mb(n_bytes: float) -> float:
    return round(n_bytes / 2**20, 1)


def _maxrss_mb(who: int) -> float:
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
    return _maxrss_mb(resource.RUSAGE_SELF)


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


# -- synthetic vectors -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mixture:
    """Gaussian mixture of unit vectors shaped like real sentence embeddings (see the module docstring)."""

    dim: int = DIM
    clusters: int = 1024
    decay: float = 0.5  # per-dimension standard deviation ~ (i + 1) ** -decay
    mean_weight: float = 0.55
    spread: float = 0.6  # within-cluster noise relative to the spread of the cluster centres
    query_mean_weight: float = 0.45
    query_noise: float = 3.5  # queries lie this much further from their cluster centre than passages
    seed: int = 0

    def _params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        scale = (np.arange(self.dim) + 1.0) ** -self.decay
        scale /= np.sqrt((scale**2).sum())
        mean = rng.standard_normal(self.dim)
        mean /= np.linalg.norm(mean)
        centers = rng.standard_normal((self.clusters, self.dim)) * scale
        return scale.astype(np.float32), mean.astype(np.float32), centers.astype(np.float32)

    def sample(self, n: int, seed: int, query: bool = False) -> np.ndarray:
        scale, mean, centers = self._params()
        rng = np.random.default_rng(seed)
        which = rng.integers(0, self.clusters, n)
        noise = rng.standard_normal((n, self.dim), dtype=np.float32) * scale
        weight = self.query_mean_weight if query else self.mean_weight
        x = weight * mean + centers[which] + (self.spread * (self.query_noise if query else 1.0)) * noise
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x, dtype=np.float32)

    def chunks(self, n: int, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
        """n passage vectors, `rows` at a time (deterministic: chunk i always has the same rows)."""
        for i, start in enumerate(range(0, n, rows)):
            yield self.sample(min(rows, n - start), seed=1_000_003 * (self.seed + 1) + i)

    def queries(self, n: int) -> np.ndarray:
        return self.sample(n, seed=7_777 + self.seed, query=True)


# -- vector indexes --------------------------------------------------------------------------------------
def build_hnsw(vectors: np.ndarray) -> Any:
    """HNSW with the parameters the product uses (index/vectors.py)."""
    import faiss

    from arrival.index import vectors as product

    index = faiss.IndexHNSWFlat(int(vectors.shape[1]), product.HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = product.HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = product.HNSW_EF_SEARCH
    for start in range(0, len(vectors), CHUNK_ROWS):
        index.add(np.ascontiguousarray(vectors[start:start + CHUNK_ROWS]))
    return index


def index_bytes(index: Any, kind: str) -> int:
    """Memory held by a FAISS index (vectors, lists, graph links), computed from its structures."""
    n, d = int(index.ntotal), int(index.d)
    if kind == "flat":
        return n * d * 4
    if kind == "ivf":
        return n * (d * 4 + 8) + int(index.nlist) * d * 4
    if kind == "hnsw":
        h = index.hnsw
        return n * d * 4 + int(h.neighbors.size()) * 4 + int(h.levels.size()) * 4 + int(h.offsets.size()) * 8
    raise ValueError(kind)


def _params_text(index: Any, kind: str) -> str:
    if kind == "ivf":
        return f"nlist={index.nlist} nprobe={index.nprobe}"
    if kind == "hnsw":
        h = index.hnsw
        return f"M={(h.nb_neighbors(1))} efC={h.efConstruction} efS={h.efSearch}"
    return "exact"


# -- phases (each runs in its own process) ---------------------------------------------------------------
def _settings(spec: dict[str, Any]) -> Any:
    from arrival.settings import load_settings

    return load_settings(home=spec.get("home"), model=spec.get("model"), threads=spec.get("threads"),
                         cache=spec.get("cache"))


def _embedder(settings: Any) -> Any:
    from arrival.index.embed import load_embedder

    return load_embedder(settings.model, settings.cache, settings.threads, settings.batch_size)


def _pdfs(corpus: str) -> list[Path]:
    from arrival.index.build import discover

    files, _ = discover([Path(corpus)])
    for f in files:  # same start for every pipeline: the files are in the page cache
        with contextlib.suppress(OSError):
            f.read_bytes()
    return files


def phase_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    """Cold ingest into an empty home, then a no-op re-ingest of the same paths (same process)."""
    from arrival.index.build import Indexer

    settings = _settings(spec)
    files = _pdfs(spec["corpus"])
    embedder = _embedder(settings)
    report = Indexer(settings, embedder).ingest([Path(spec["corpus"])])
    indexed = [f for f in report.files if f.status == "indexed"]
    cold_rss = _maxrss_mb(resource.RUSAGE_SELF)
    again = Indexer(settings, embedder).ingest([Path(spec["corpus"])])
    return {
        "files": len(files), "indexed": len(indexed), "failed": [f.to_json() for f in report.failed],
        "pages": sum(f.pages for f in indexed), "chunks": sum(f.chunks for f in indexed),
        "seconds": report.seconds, "timings": dict(report.timings),
        "noop_seconds": again.seconds, "noop_unchanged": sum(1 for f in again.files if f.status == "unchanged"),
        "main_rss_mb": cold_rss, "workers": settings.workers or (os.cpu_count() or 1),
        "embedder": embedder.id,
    }


def langchain_embeddings(embedder: Any) -> Any:
    """The arrival embedder as a LangChain `Embeddings` (lists of floats out, same vectors)."""
    from langchain_core.embeddings import Embeddings

    class ArrivalEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed_passages(list(texts)).tolist()  # type: ignore[no-any-return]

        def embed_query(self, text: str) -> list[float]:
            return embedder.embed_queries([text])[0].tolist()  # type: ignore[no-any-return]

    return ArrivalEmbeddings()


def phase_langchain(spec: dict[str, Any]) -> dict[str, Any]:
    """PyPDFLoader -> RecursiveCharacterTextSplitter -> FAISS.from_documents, one file after another."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # langchain-community announces its own deprecation on import
        from langchain_community.document_loaders import PyPDFLoader
        from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    settings = _settings(spec)
    files = _pdfs(spec["corpus"])
    embeddings = langchain_embeddings(_embedder(settings))
    t0 = time.perf_counter()
    pages: list[Any] = []
    failed = 0
    for f in files:
        try:
            pages.extend(PyPDFLoader(str(f)).load())
        except Exception:  # a file the stock loader cannot read is skipped, as a user script would
            failed += 1
    t_load = time.perf_counter() - t0
    t = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    docs = [d for d in splitter.split_documents(pages) if d.page_content.strip()]
    t_split = time.perf_counter() - t
    t = time.perf_counter()
    store = FAISS.from_documents(docs, embeddings)
    t_embed = time.perf_counter() - t
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "timings": {"load": t_load, "split": t_split, "embed_index": t_embed},
            "pages": len(pages), "chunks": len(docs), "vectors": int(store.index.ntotal), "failed": failed,
            "main_rss_mb": _maxrss_mb(resource.RUSAGE_SELF)}


def _questions(path: str, limit: int | None = None) -> list[str]:
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


def _load_server(settings: Any, embedder: Any) -> tuple[Any, str]:
    """(retriever, what was loaded): the web app object when it can be built, else retriever + assistant."""
    from arrival.index.retrieve import Retriever

    try:
        from arrival.assistant.server import Backend, build_app

        backend = Backend(settings, embedder)
        app = build_app(settings, backend=backend)
        retriever = backend.retriever()
        return retriever, f"retriever + assistant + web app ({type(app).__name__} with the Gradio UI)"
    except Exception as exc:
        note = f"retriever + assistant only: the web app could not be built ({type(exc).__name__}: {exc})"
        return Retriever.from_settings(settings, embedder), note[:300]


def phase_serve(spec: dict[str, Any]) -> dict[str, Any]:
    """Load what a server holds, warm it up, then time single queries and answers."""
    from arrival.assistant.answer import Assistant

    t0 = time.perf_counter()
    settings = _settings(spec)
    embedder = _embedder(settings)
    retriever, loaded = _load_server(settings, embedder)
    assistant = Assistant(retriever)
    snap = retriever.snapshot()
    load_seconds = time.perf_counter() - t0
    n, warm, k = int(spec["queries"]), int(spec["warmup"]), int(settings.k)
    questions = _questions(spec["questions"], n + warm)
    warmup, timed = questions[:warm], questions[warm:]
    for q in warmup:
        for mode in SEARCH_MODES:
            retriever.search(q, k=k, mode=mode)
        assistant.ask(q, k=k)
    loaded_rss = current_rss_mb()
    times: dict[str, list[float]] = {m: [] for m in (*SEARCH_MODES, "hybrid_faiss_1_thread", "embed_query")}
    faiss_times: dict[str, list[float]] = {"1": [], "default": []}
    import faiss

    default_threads = faiss.omp_get_max_threads()
    variants = [(m, m, 0) for m in SEARCH_MODES] + [("hybrid_faiss_1_thread", "hybrid", 1)]
    for i, q in enumerate(timed):  # variants interleaved (order flipped every query): load drift hits them alike
        for label, mode, threads in (variants if i % 2 == 0 else variants[::-1]):
            with faiss_threads(threads):
                t = time.perf_counter()
                retriever.search(q, k=k, mode=mode)
                times[label].append(time.perf_counter() - t)
        t = time.perf_counter()
        qvec = embedder.embed_queries([q])
        times["embed_query"].append(time.perf_counter() - t)
        for label, threads in ((("1", 1), ("default", 0)) if i % 2 else (("default", 0), ("1", 1))):
            with faiss_threads(threads):
                t = time.perf_counter()
                snap.faiss.search(np.ascontiguousarray(qvec, dtype=np.float32), max(settings.candidates, k))
                faiss_times[label].append(time.perf_counter() - t)
    ask_times: list[float] = []
    refused = 0
    for q in timed:
        t = time.perf_counter()
        answer = assistant.ask(q, k=k)
        ask_times.append(time.perf_counter() - t)
        refused += bool(answer.refused)
    return {
        "loaded": loaded, "load_seconds": load_seconds, "queries": len(timed), "warmup": len(warmup),
        "chunks": int(snap.manifest.chunks), "vector_index": snap.manifest.vector_index,
        "search": {m: percentiles(v) for m, v in times.items()},
        "faiss_search": {"default_threads": default_threads, "1_thread": percentiles(faiss_times["1"]),
                         "default": percentiles(faiss_times["default"])},
        "ask": percentiles(ask_times), "ask_refused": refused,
        "loaded_rss_mb": loaded_rss, "rss_mb": current_rss_mb(), "peak_rss_mb": _maxrss_mb(resource.RUSAGE_SELF),
    }


def _measure_index(kind: str, build: Callable[[], Any], queries: np.ndarray, truth: np.ndarray | None,
                   nq: int) -> tuple[Any, dict[str, Any]]:
    t = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - t
    lat, ids = single_query_latency(index, queries, threads=1, limit=nq)
    row: dict[str, Any] = {"index": kind, "params": _params_text(index, kind), "build_s": round(build_s, 3),
                           "memory_mb": _mb(index_bytes(index, kind)), "p50_ms": lat["p50_ms"],
                           "p95_ms": lat["p95_ms"]}
    if truth is not None:
        row["recall_at_10"] = recall_at_k(ids, truth[: len(ids)])
    return index, row


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def _sentences(texts: list[str], limit: int) -> list[str]:
    """Distinct sentences (25-600 characters) of the chunk texts, evenly sampled down to `limit`."""
    seen: dict[str, None] = {}
    for text in texts:
        for sentence in _SENTENCE_END.split(" ".join(text.split())):
            if 25 <= len(sentence) <= 600:
                seen.setdefault(sentence, None)
    out = list(seen)
    if len(out) > limit > 0:
        step = len(out) / limit
        out = [out[int(i * step)] for i in range(limit)]
    return out[:limit] if limit > 0 else []


def _sweep(index: Any, kind: str, queries: np.ndarray, truth: np.ndarray) -> list[dict[str, Any]]:
    """Recall and latency at several search-time settings (nprobe for IVF, efSearch for HNSW)."""
    points = []
    if kind == "ivf":
        knob, values = "nprobe", sorted({v for v in (8, 16, 32, 64, 128) if v <= index.nlist}
                                        | {min(IVF_NPROBE, index.nlist)})
    else:
        knob, values = "efSearch", [32, 64, 96, 128, 256]
    before = index.nprobe if kind == "ivf" else index.hnsw.efSearch
    for v in values:
        if kind == "ivf":
            index.nprobe = v
        else:
            index.hnsw.efSearch = v
        lat, ids = single_query_latency(index, queries, threads=1, warmup=3)
        points.append({knob: v, "p50_ms": lat["p50_ms"], "p95_ms": lat["p95_ms"],
                       "recall_at_10": recall_at_k(ids, truth)})
    if kind == "ivf":
        index.nprobe = before
    else:
        index.hnsw.efSearch = before
    return points


def phase_ann_real(spec: dict[str, Any]) -> dict[str, Any]:
    """Approximate indexes on real embeddings: the corpus's chunk vectors plus the vectors of (a sample of) its
    sentences, so there are several thousand; queries are the real question embeddings."""
    import faiss

    from arrival.index.store import IndexStore

    settings = _settings(spec)
    snap = IndexStore(settings.home).open()
    if snap is None:
        raise BenchError(f"{settings.home}: no index to read vectors from")
    embedder = _embedder(settings)
    chunk_vectors = np.asarray(snap.vectors, dtype=np.float32)
    texts = [c.text for c in snap.chunks(list(range(len(chunk_vectors))))]
    sentences = _sentences(texts, int(spec.get("sentences", 8000)))
    t = time.perf_counter()
    parts = [chunk_vectors]
    if sentences:
        parts.append(np.asarray(embedder.embed_passages(sentences), dtype=np.float32))
    embed_s = time.perf_counter() - t
    vectors = np.ascontiguousarray(np.concatenate(parts))
    queries = np.ascontiguousarray(embedder.embed_queries(_questions(spec["questions"])), dtype=np.float32)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, K)
    nlist = ivf_nlist(len(vectors))
    rows = []
    for kind, build in (("flat", lambda: exact), ("hnsw", lambda: build_hnsw(vectors)),
                        ("ivf", lambda: build_ivf(vectors, nlist))):
        index, row = _measure_index(kind, build, queries, truth, len(queries))
        if kind != "flat":
            row["sweep"] = _sweep(index, kind, queries, truth)
        rows.append(row)
    return {"vectors": len(vectors), "chunk_vectors": len(chunk_vectors), "sentence_vectors": len(sentences),
            "sentence_embed_s": round(embed_s, 3), "queries": len(queries), "embedder": snap.manifest.embedder,
            "indexes": rows}


def phase_scaling(spec: dict[str, Any]) -> dict[str, Any]:
    """One size: flat (exact, also the ground truth), then IVF, then HNSW (when not too large)."""
    import faiss

    n, nq = int(spec["n"]), int(spec["queries"])
    mix = Mixture(dim=int(spec.get("dim", DIM)))
    queries = mix.queries(nq)
    flat = faiss.IndexFlatIP(mix.dim)
    build_flat = 0.0
    for chunk in mix.chunks(n):  # generation is not timed, only adding
        t = time.perf_counter()
        flat.add(chunk)
        build_flat += time.perf_counter() - t
    vectors = faiss.rev_swig_ptr(flat.get_xb(), n * mix.dim).reshape(n, mix.dim)  # a view, no copy
    t = time.perf_counter()
    _, truth = flat.search(queries, K)  # exact, batched, all threads
    truth_s = time.perf_counter() - t
    lat1, _ = single_query_latency(flat, queries, threads=1)
    latn, _ = single_query_latency(flat, queries, threads=0, limit=min(nq, int(spec.get("thread_queries", 50))))
    rows: list[dict[str, Any]] = [{
        "index": "flat", "params": "exact", "build_s": round(build_flat, 3),
        "memory_mb": _mb(index_bytes(flat, "flat")),
        "p50_ms": lat1["p50_ms"], "p95_ms": lat1["p95_ms"], "recall_at_10": 1.0,
        "p50_ms_default_threads": latn["p50_ms"], "p95_ms_default_threads": latn["p95_ms"],
    }]
    nlist = ivf_nlist(n)
    ivf, row = _measure_index("ivf", lambda: build_ivf(vectors, nlist), queries, truth, nq)
    sweep = _sweep(ivf, "ivf", queries, truth)
    row["sweep"] = sweep
    rows.append(row)
    del ivf
    hnsw_max = int(spec.get("hnsw_max", HNSW_MAX_DEFAULT))
    if n <= hnsw_max:
        hnsw, row = _measure_index("hnsw", lambda: build_hnsw(vectors), queries, truth, nq)
        sweep = _sweep(hnsw, "hnsw", queries, truth)
        row["sweep"] = sweep
        rows.append(row)
        del hnsw
    else:
        rows.append({"index": "hnsw", "skipped": f"not built above {hnsw_max:,} vectors (--hnsw-max)"})
    return {"n": n, "dim": mix.dim, "queries": nq, "truth_batch_s": round(truth_s, 3),
            "faiss_default_threads": faiss.omp_get_max_threads(), "indexes": rows,
            "chosen": choose_index(rows)}


def choose_index(rows: list[dict[str, Any]]) -> str:
    """Flat while its p95 is under budget; else the quickest-to-build approximate index meeting the targets."""
    flat = next((r for r in rows if r.get("index") == "flat"), None)
    if flat is not None and flat["p95_ms"] <= FLAT_BUDGET_MS:
        return "flat"
    ok = [r for r in rows if r.get("index") != "flat" and "skipped" not in r
          and r.get("recall_at_10", 0.0) >= RECALL_TARGET and r["p95_ms"] <= P95_TARGET_MS]
    if not ok:
        return "none meets the targets"
    best = min(ok, key=lambda r: r["build_s"])
    return f"{best['index']} ({best['params']})"


PHASES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ingest": phase_ingest, "langchain": phase_langchain, "serve": phase_serve, "ann_real": phase_ann_real,
    "scaling": phase_scaling,
}


# -- running phases in child processes -------------------------------------------------------------------
def _sample_tree(proc: Any, cpu: dict[int, float]) -> int:
    """RSS of a process and all its descendants now; records each one's CPU seconds so far into `cpu`."""
    total = 0
    with contextlib.suppress(Exception):
        procs = [proc, *proc.children(recursive=True)]
        for p in procs:
            with contextlib.suppress(Exception):
                total += p.memory_info().rss
                t = p.cpu_times()
                cpu[p.pid] = float(t.user + t.system)
    return total


def run_phase(name: str, spec: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one phase in a fresh Python process. Adds `wall_seconds`, the 1-minute load average at start and
    end, and, when psutil is installed, `peak_tree_rss_mb` and `cpu_seconds` of the whole process tree (the PDF
    parsing workers included; sampled every 50 ms, so a process's last 50 ms can be missed)."""
    try:
        import psutil
    except ImportError:  # the child's own ru_maxrss is still reported
        psutil = None
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="arrival-bench-") as tmp:
        spec_path, out_path, err_path = Path(tmp) / "spec.json", Path(tmp) / "out.json", Path(tmp) / "stderr"
        spec_path.write_text(json.dumps(spec))
        t0 = time.perf_counter()
        cpu: dict[int, float] = {}
        with err_path.open("wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "arrival.eval.bench", name, str(spec_path), str(out_path)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    env={**os.environ, **(env or {})})
            watched = psutil.Process(proc.pid) if psutil is not None else None
            peak = 0
            while proc.poll() is None:
                if watched is not None:
                    peak = max(peak, _sample_tree(watched, cpu))
                time.sleep(0.05)
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out_path.is_file():
            tail = err_path.read_text(errors="replace").strip().splitlines()
            reason = tail[-1] if tail else f"exit code {proc.returncode}"
            raise BenchError(f"bench phase {name!r} failed: {reason}")
        result: dict[str, Any] = json.loads(out_path.read_text())
    result["wall_seconds"] = round(wall, 3)
    result["load_average"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    result["peak_tree_rss_mb"] = _mb(peak) if psutil is not None else None
    result["cpu_seconds"] = round(sum(cpu.values()), 2) if psutil is not None else None
    return result


def _child_main(argv: list[str]) -> int:
    name, spec_path, out_path = argv
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    result = PHASES[name](json.loads(Path(spec_path).read_text()))
    result["self_peak_rss_mb"] = _maxrss_mb(resource.RUSAGE_SELF)
    Path(out_path).write_text(json.dumps(result))
    return 0


# -- the whole benchmark ---------------------------------------------------------------------------------
@dataclass
class BenchOptions:
    corpus: Path
    model: str | None = None
    threads: int | None = None
    cache: Path | None = None
    scaling: tuple[int, ...] = DEFAULT_SCALING
    queries: int = 200  # timed single queries per search mode, and timed answers
    warmup: int = 10
    scaling_queries: int = 200
    repeat: int = 2  # runs of each ingest pipeline (alternating); the fastest counts
    hnsw_max: int = HNSW_MAX_DEFAULT
    questions: Path | None = None
    skip: tuple[str, ...] = field(default_factory=tuple)


def check_requirements() -> None:
    missing = [m for m in ("langchain_community", "langchain_text_splitters", "faiss") if
               importlib.util.find_spec(m) is None]
    if missing:
        raise BenchError(f"bench needs {', '.join(missing)}: pip install -e '.[bench]'")


def _noop_cli(opts: BenchOptions, home: Path) -> float:
    """Wall time of a fresh `arrival ingest` process over an unchanged corpus (start-up and imports included)."""
    cmd = [sys.executable, "-m", "arrival.cli", "ingest", str(opts.corpus), "--home", str(home), "--json", "-q"]
    if opts.model:
        cmd += ["--model", opts.model]
    if opts.threads is not None:
        cmd += ["--threads", str(opts.threads)]
    env = {**os.environ, **({"ARRIVAL_CACHE": str(opts.cache)} if opts.cache else {})}
    t = time.perf_counter()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t
    if p.returncode not in (0, 1):
        raise BenchError(f"no-op re-ingest failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
    return wall


def run_bench(opts: BenchOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Every phase, in order; returns the full result (see `summary_keys` for the headline numbers)."""
    import faiss

    check_requirements()
    if not opts.corpus.is_dir() and not opts.corpus.is_file():
        raise BenchError(f"{opts.corpus}: no such corpus folder")
    from arrival.eval.cli import default_questions

    questions = str(opts.questions or default_questions())
    sizes = tuple(n for n in opts.scaling if n > 0)
    rounds = range(1, max(1, opts.repeat) + 1)
    steps = [*[f"{p} {r}" for r in rounds for p in (("ingest", "langchain") if r % 2 else ("langchain", "ingest"))],
             "noop", "serve", "ann_real", *[f"scaling {n:,}" for n in sizes]]
    started = time.time()
    load_start = os.getloadavg()
    out: dict[str, Any] = {}

    def step(name: str) -> None:
        if progress:
            progress(name, steps.index(name) if name in steps else len(steps), len(steps))

    with tempfile.TemporaryDirectory(prefix="arrival-bench-home-") as tmp:
        home = Path(tmp) / "home"
        base = {"model": opts.model, "threads": opts.threads, "cache": str(opts.cache) if opts.cache else None,
                "corpus": str(opts.corpus), "questions": questions}
        # arrival (A) and LangChain (B) alternate A B B A ..., each run in a fresh process and a fresh index
        # home; the fastest run of each counts, which is the least disturbed by other load on the machine
        ingests: list[dict[str, Any]] = []
        lcs: list[dict[str, Any]] = []
        for r in range(max(1, opts.repeat)):
            for which in ("ab" if r % 2 == 0 else "ba"):
                if which == "a":
                    step(f"ingest {r + 1}")
                    run = run_phase("ingest", {**base, "home": str(Path(tmp) / f"home{len(ingests)}")})
                    if not run["indexed"]:
                        raise BenchError(f"{opts.corpus}: no PDF could be indexed")
                    ingests.append(run)
                else:
                    step(f"langchain {r + 1}")
                    lcs.append(run_phase("langchain", {**base, "home": str(Path(tmp) / "unused")}))
        home = Path(tmp) / "home0"
        ingest = min(ingests, key=lambda x: float(x["seconds"]))
        lc = min(lcs, key=lambda x: float(x["seconds"]))
        ingest["runs_seconds"] = [round(float(x["seconds"]), 3) for x in ingests]
        ingest["runs_cpu_seconds"] = [x.get("cpu_seconds") for x in ingests]
        ingest["peak_tree_rss_mb"] = max((x["peak_tree_rss_mb"] or 0.0) for x in ingests) or None
        ingest["self_peak_rss_mb"] = max(x["self_peak_rss_mb"] for x in ingests)
        lc["runs_seconds"] = [round(float(x["seconds"]), 3) for x in lcs]
        lc["runs_cpu_seconds"] = [x.get("cpu_seconds") for x in lcs]
        step("noop")
        ingest["noop_cli_seconds"] = round(_noop_cli(opts, home), 3)
        step("serve")
        serve = run_phase("serve", {**base, "home": str(home), "queries": opts.queries, "warmup": opts.warmup})
        step("ann_real")
        ann_real = run_phase("ann_real", {**base, "home": str(home)})
    scaling = []
    for n in sizes:
        step(f"scaling {n:,}")
        scaling.append(run_phase("scaling", {"n": n, "queries": opts.scaling_queries, "hnsw_max": opts.hnsw_max}))
    step("done")
    out["machine"] = {
        "cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
        "faiss": getattr(faiss, "__version__", "?"), "faiss_default_threads": faiss.omp_get_max_threads(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
    }
    out.update(summarize(ingest, lc, serve, ann_real, scaling))
    out["details"] = {"ingest": ingest, "langchain": lc, "serve": serve, "ann_real": ann_real}
    return out


def summarize(ingest: dict[str, Any], lc: dict[str, Any], serve: dict[str, Any], ann_real: dict[str, Any],
              scaling: list[dict[str, Any]]) -> dict[str, Any]:
    secs = float(ingest["seconds"])
    t = ingest["timings"]
    search = serve["search"]
    # the tree is polled every 50 ms and can miss a short spike that the process's own ru_maxrss saw
    server_rss = max(serve["peak_tree_rss_mb"] or 0.0, serve["self_peak_rss_mb"])
    ingest_rss = max(ingest["peak_tree_rss_mb"] or 0.0, ingest["self_peak_rss_mb"])
    rows = []
    for s in scaling:
        for r in s["indexes"]:
            rows.append({"n": s["n"], **{k: v for k, v in r.items() if k != "sweep"},
                         **({"sweep": r["sweep"]} if "sweep" in r else {})})
    return {
        "corpus_files": ingest["files"], "corpus_pages": ingest["pages"], "corpus_chunks": ingest["chunks"],
        "ingest_seconds": round(secs, 3),
        "ingest_pages_per_s": round(ingest["pages"] / secs, 2) if secs > 0 else 0.0,
        "ingest_chunks_per_s": round(ingest["chunks"] / secs, 2) if secs > 0 else 0.0,
        "ingest_timings_s": {k: round(float(v), 3) for k, v in t.items()},
        "ingest_parse_workers": ingest["workers"],
        "langchain_ingest_seconds": round(float(lc["seconds"]), 3),
        "langchain_timings_s": {k: round(float(v), 3) for k, v in lc["timings"].items()},
        "langchain_chunks": lc["chunks"],
        "ingest_time_ratio_vs_langchain": round(secs / float(lc["seconds"]), 3) if lc["seconds"] else 0.0,
        "ingest_runs_seconds": ingest.get("runs_seconds", [round(secs, 3)]),
        "langchain_runs_seconds": lc.get("runs_seconds", [round(float(lc["seconds"]), 3)]),
        "ingest_cpu_seconds": ingest.get("cpu_seconds"), "langchain_cpu_seconds": lc.get("cpu_seconds"),
        "ingest_cpu_ratio_vs_langchain": (round(ingest["cpu_seconds"] / lc["cpu_seconds"], 3)
                                          if ingest.get("cpu_seconds") and lc.get("cpu_seconds") else None),
        "ingest_load_average": ingest.get("load_average"), "langchain_load_average": lc.get("load_average"),
        "noop_reingest_seconds": round(float(ingest["noop_seconds"]), 3),
        "noop_reingest_cli_seconds": ingest["noop_cli_seconds"],
        "search_p50_ms": search["hybrid"]["p50_ms"], "search_p95_ms": search["hybrid"]["p95_ms"],
        "search_ms": {m: {"p50": v["p50_ms"], "p95": v["p95_ms"]} for m, v in search.items()},
        "faiss_search_ms": {"1_thread": serve["faiss_search"]["1_thread"],
                            "default_threads": serve["faiss_search"]["default"]},
        "ask_p50_ms": serve["ask"]["p50_ms"], "ask_p95_ms": serve["ask"]["p95_ms"],
        "search_queries": serve["queries"],
        "ingest_rss_mb": ingest_rss, "ingest_main_rss_mb": ingest["self_peak_rss_mb"],
        "langchain_rss_mb": max(lc["peak_tree_rss_mb"] or 0.0, lc["self_peak_rss_mb"]),
        "server_rss_mb": server_rss, "server_loaded": serve["loaded"],
        "ann_real": ann_real["indexes"], "ann_real_vectors": ann_real["vectors"],
        "ann_real_queries": ann_real["queries"],
        "scaling": rows,
        "scaling_chosen": {str(s["n"]): s["chosen"] for s in scaling},
        "recommendations": recommend(serve, scaling, ann_real),
    }


def recommend(serve: dict[str, Any], scaling: list[dict[str, Any]], ann_real: dict[str, Any] | None = None
              ) -> dict[str, Any]:
    """What the measurements say about FAISS threads, FLAT_MAX and the approximate index parameters."""
    rec: dict[str, Any] = {}
    flat_rows = [(s["n"], r) for s in scaling for r in s["indexes"] if r["index"] == "flat"]
    # one query at a time on 1 FAISS thread vs the default count: the scaling runs (>= 10k vectors) decide; the
    # real index of a small corpus is searched in microseconds either way
    pairs = [(r["p95_ms"], r["p95_ms_default_threads"]) for n, r in flat_rows
             if n >= 10_000 and "p95_ms_default_threads" in r]
    if not pairs:
        pairs = [(serve["faiss_search"]["1_thread"]["p95_ms"], serve["faiss_search"]["default"]["p95_ms"])]
    rec["faiss_threads_for_queries"] = 1 if all(one <= default for one, default in pairs) else "default"
    per_vector = [r["p95_ms"] / n for n, r in flat_rows if n >= 10_000]
    if per_vector:
        cost = max(per_vector)  # the worst measured ms per vector: flat search is linear in n
        rec["flat_p95_ms_per_100k"] = round(cost * 100_000, 2)
        rec["flat_max"] = int(max(10_000, (FLAT_BUDGET_MS / cost) // 10_000 * 10_000))
    # the smallest search-time setting reaching recall@10 >= 0.95 within the p95 target, per data set
    sets = [(f"{s['n']}", s["indexes"]) for s in scaling] + ([("real", ann_real["indexes"])] if ann_real else [])
    for name, rows in sets:
        for r in rows:
            for point in r.get("sweep", []):
                knob = "nprobe" if "nprobe" in point else "efSearch"
                if point["recall_at_10"] >= RECALL_TARGET and point["p95_ms"] <= P95_TARGET_MS:
                    rec.setdefault(f"{r['index']}_min_{knob}_for_recall", {})[name] = point[knob]
                    break
    return rec


# -- the report ------------------------------------------------------------------------------------------
def _f(x: Any, nd: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _sweep_lines(rows: list[dict[str, Any]], size_key: str) -> list[str]:
    """One line per approximate index: recall@10 and p95 at each search-time setting."""
    out = []
    for row in rows:
        if row.get("sweep"):
            knob = "nprobe" if "nprobe" in row["sweep"][0] else "efSearch"
            where = f" at {row[size_key]:,}" if size_key else ""
            pts = ", ".join(f"{p[knob]}: {p['recall_at_10']:.3f} / {p['p95_ms']:.2f} ms" for p in row["sweep"])
            out.append(f"- {row['index']}{where}, {knob} → recall@10 / p95: {pts}")
    return ["", *out] if out else []


def markdown_table(r: dict[str, Any]) -> str:
    t = r["ingest_timings_s"]
    lt = r["langchain_timings_s"]
    s = r["search_ms"]
    m = r["machine"]
    lines = [
        f"Machine: {m['cpus']} CPUs, load average {m['load_average_start'][0]:.2f} at start and "
        f"{m['load_average_end'][0]:.2f} at end (1 min), faiss {m['faiss']}, Python {m['python']}; "
        f"bench took {m['seconds']:.0f} s.",
        "",
        "| Measure | Value |",
        "|---|---|",
        f"| Corpus | {r['corpus_files']} PDFs, {r['corpus_pages']:,} pages, {r['corpus_chunks']:,} chunks |",
        f"| Cold ingest | {_f(r['ingest_seconds'])} s ({_f(r['ingest_pages_per_s'])} pages/s, "
        f"{_f(r['ingest_chunks_per_s'])} chunks/s) |",
        f"| — parse + clean (pypdf, {r['ingest_parse_workers']} worker processes, summed) | {_f(t.get('parse'))} s |",
        f"| — chunk (summed over workers) | {_f(t.get('chunk'), 2)} s |",
        f"| — embed (main process) | {_f(t.get('embed'))} s |",
        f"| — write index (SQLite, vectors, FAISS, BM25) | {_f(t.get('write'), 2)} s |",
        f"| — hash files | {_f(t.get('hash'), 2)} s |",
        f"| No-op re-ingest | {_f(r['noop_reingest_seconds'], 2)} s (fresh `arrival ingest` process: "
        f"{_f(r['noop_reingest_cli_seconds'], 2)} s) |",
        f"| LangChain pipeline (PyPDFLoader → RecursiveCharacterTextSplitter → FAISS) | "
        f"{_f(r['langchain_ingest_seconds'])} s (load {_f(lt['load'])} s, split {_f(lt['split'], 2)} s, "
        f"embed + index {_f(lt['embed_index'])} s; {r['langchain_chunks']:,} chunks) |",
        f"| Ingest time arrival / LangChain | {_f(r['ingest_time_ratio_vs_langchain'], 2)} (fastest of "
        f"{len(r['ingest_runs_seconds'])} alternating runs each; all runs: arrival "
        f"{', '.join(_f(x) for x in r['ingest_runs_seconds'])} s, LangChain "
        f"{', '.join(_f(x) for x in r['langchain_runs_seconds'])} s) |",
        f"| CPU time arrival / LangChain (whole process trees, load-independent) | "
        f"{_f(r['ingest_cpu_seconds'])} s / {_f(r['langchain_cpu_seconds'])} s = "
        f"{_f(r['ingest_cpu_ratio_vs_langchain'], 2)} |",
        f"| Search p50 / p95, BM25 | {_f(s['bm25']['p50'])} / {_f(s['bm25']['p95'])} ms |",
        f"| Search p50 / p95, dense | {_f(s['dense']['p50'])} / {_f(s['dense']['p95'])} ms |",
        f"| Search p50 / p95, hybrid | {_f(s['hybrid']['p50'])} / {_f(s['hybrid']['p95'])} ms |",
        f"| — hybrid with FAISS on 1 thread | {_f(s['hybrid_faiss_1_thread']['p50'])} / "
        f"{_f(s['hybrid_faiss_1_thread']['p95'])} ms |",
        f"| — query embedding alone | {_f(s['embed_query']['p50'])} / {_f(s['embed_query']['p95'])} ms |",
        f"| — FAISS search alone, 1 thread / default threads (p95) | "
        f"{_f(r['faiss_search_ms']['1_thread']['p95_ms'], 3)} / "
        f"{_f(r['faiss_search_ms']['default_threads']['p95_ms'], 3)} ms |",
        f"| Ask (extractive) p50 / p95 | {_f(r['ask_p50_ms'])} / {_f(r['ask_p95_ms'])} ms |",
        f"| Peak RSS, ingest (all processes) | {_f(r['ingest_rss_mb'], 0)} MB (main process "
        f"{_f(r['ingest_main_rss_mb'], 0)} MB) |",
        f"| Peak RSS, LangChain pipeline | {_f(r['langchain_rss_mb'], 0)} MB |",
        f"| Peak RSS, loaded server | {_f(r['server_rss_mb'], 0)} MB ({r['server_loaded']}) |",
        "",
        f"Search: {r['search_queries']} single queries per mode after warm-up, modes interleaved.",
    ]
    if r["ann_real"]:
        lines += ["", f"Approximate search on real embeddings: {r['ann_real_vectors']:,} vectors "
                      f"({r['corpus_chunks']:,} chunks + sentences of them), queried with "
                      f"{r['ann_real_queries']} question embeddings:", "",
                  "| Index | Parameters | Build s | p50 ms | p95 ms | Recall@10 |", "|---|---|---|---|---|---|"]
        for row in r["ann_real"]:
            lines.append(f"| {row['index']} | {row['params']} | {_f(row['build_s'], 3)} | {_f(row['p50_ms'], 3)} | "
                         f"{_f(row['p95_ms'], 3)} | {_f(row.get('recall_at_10'), 3)} |")
        lines += _sweep_lines(r["ann_real"], "")
    if r["scaling"]:
        lines += ["", "Scaling, synthetic 512-d vectors (clustered, not uniform), single queries on 1 FAISS thread:",
                  "", "| Vectors | Index | Parameters | Build s | Memory MB | p50 ms | p95 ms | Recall@10 |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in r["scaling"]:
            if "skipped" in row:
                lines.append(f"| {row['n']:,} | {row['index']} | {row['skipped']} | | | | | |")
                continue
            lines.append(f"| {row['n']:,} | {row['index']} | {row['params']} | {_f(row['build_s'])} | "
                         f"{_f(row['memory_mb'], 0)} | {_f(row['p50_ms'], 2)} | {_f(row['p95_ms'], 2)} | "
                         f"{_f(row.get('recall_at_10'), 3)} |")
            if "p95_ms_default_threads" in row:
                lines.append(f"| {row['n']:,} | flat, default FAISS threads | exact | | | "
                             f"{_f(row['p50_ms_default_threads'], 2)} | {_f(row['p95_ms_default_threads'], 2)} | |")
        lines += _sweep_lines(r["scaling"], "n")
        lines += ["", "Chosen index by size: " + ", ".join(f"{int(n):,} → {c}" for n, c in
                                                          r["scaling_chosen"].items())]
    rec = r["recommendations"]
    if rec:
        lines += ["", "Recommendations: " + json.dumps(rec)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
