"""FAISS vector index over unit vectors (inner product = cosine), chosen by collection size.

Rows are positions 0..N-1 matching the SQLite `chunks.row` column. Removing a document rebuilds the index
from the stored vectors of the chunks that remain (no re-embedding), so any FAISS index type can be used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Measured with `arrival bench` (2 shared cores, one query at a time, one FAISS thread): exact search costs
# ~8-19 ms p95 per 100k vectors (x3 with the default 2 OpenMP threads), so it stays under ~10 ms up to here.
FLAT_MAX = 50_000
# recall@10 vs exact: efSearch 96 gave 0.951 at 100k clustered synthetic vectors, 128 gives 0.973 (0.999 on the
# real corpus embeddings) for +0.05 ms p95. Build at 100k: 10-60 s depending on load.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


def index_kind(n: int) -> str:
    return "flat" if n <= FLAT_MAX else "hnsw"


def build_vector_index(vectors: np.ndarray, kind: str = "auto"):  # type: ignore[no-untyped-def]
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = int(vectors.shape[1])
    kind = index_kind(len(vectors)) if kind == "auto" else kind
    index: Any
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        raise ValueError(f"unknown vector index kind {kind!r}")
    if len(vectors):
        index.add(vectors)
    return index


def search_vectors(index, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """(rows, scores) of the top-n for one query vector; rows of -1 (not enough vectors) are dropped."""
    if index.ntotal == 0 or n <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    scores, rows = index.search(np.ascontiguousarray(queries.reshape(1, -1), dtype=np.float32),
                                min(n, index.ntotal))
    keep = rows[0] >= 0
    return rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)
