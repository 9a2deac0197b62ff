"""`arrival bench` phases `ann_real` and `scaling`: exact vs approximate vector search (flat, IVF, HNSW) on the
real corpus embeddings and on synthetic 512-d vectors of growing size: build time, memory, single-query
latency, recall@10 against exact search, and which index each size calls for.

Synthetic vectors are not uniform noise (on which approximate search is meaningless): they are a Gaussian
mixture with a decaying variance spectrum and a shared mean direction, normalised, calibrated on the real
use-m3 chunk embeddings of the shared corpus (top-50 principal components ~70 % of the variance, mean vector
norm ~0.45, nearest-neighbour cosine ~0.8 at 2k vectors). Queries come from the same mixture with more noise
and a weaker mean direction, so that, like real questions against passages, their best match has cosine
~0.5 rather than ~0.8 (the harder case for approximate search). No rotation is applied: flat, HNSW and IVF
over inner products are rotation-invariant, so an axis-aligned spectrum measures the same thing, cheaper.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from arrival.eval.bench_common import (
    CHUNK_ROWS,
    DIM,
    FLAT_BUDGET_MS,
    HNSW_MAX_DEFAULT,
    P95_TARGET_MS,
    RECALL_TARGET,
    BenchError,
    K,
    mb,
    phase_embedder,
    phase_settings,
    read_questions,
    recall_at_k,
    single_query_latency,
)
from arrival.index.vectors import IVF_NPROBE, build_ivf, ivf_nlist


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


def _measure_index(kind: str, build: Callable[[], Any], queries: np.ndarray, truth: np.ndarray | None,
                   nq: int) -> tuple[Any, dict[str, Any]]:
    t = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - t
    lat, ids = single_query_latency(index, queries, threads=1, limit=nq)
    row: dict[str, Any] = {"index": kind, "params": _params_text(index, kind), "build_s": round(build_s, 3),
                           "memory_mb": mb(index_bytes(index, kind)), "p50_ms": lat["p50_ms"],
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

    settings = phase_settings(spec)
    snap = IndexStore(settings.home).open()
    if snap is None:
        raise BenchError(f"{settings.home}: no index to read vectors from")
    embedder = phase_embedder(settings)
    chunk_vectors = snap.vectors("dense", np.arange(snap.count()))
    texts = [c.text for c in snap.chunks(list(range(len(chunk_vectors))))]
    sentences = _sentences(texts, int(spec.get("sentences", 8000)))
    t = time.perf_counter()
    parts = [chunk_vectors]
    if sentences:
        parts.append(np.asarray(embedder.embed_passages(sentences), dtype=np.float32))
    embed_s = time.perf_counter() - t
    vectors = np.ascontiguousarray(np.concatenate(parts))
    queries = np.ascontiguousarray(embedder.embed_queries(read_questions(spec["questions"])), dtype=np.float32)
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
        "memory_mb": mb(index_bytes(flat, "flat")),
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
