"""FAISS vector index over unit vectors (inner product = cosine), chosen by collection size.

Rows are positions 0..N-1 matching the SQLite `chunks.row` column of the part of the index they belong to (the
base or the delta, see `index.store`). A merge rebuilds the index from the stored vectors of the chunks that
remain (no re-embedding), so any FAISS index type can be used. Filters (language, removed passages) are pushed
into the search as an ID selector.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

# Measured with `arrival bench` (2 shared cores, one query at a time, one FAISS thread): exact search costs
# ~8-19 ms p95 per 100k vectors (x3 with the default 2 OpenMP threads), so it stays under ~10 ms up to here.
FLAT_MAX = 50_000
# recall@10 vs exact: efSearch 96 gave 0.951 at 100k clustered synthetic vectors, 128 gives 0.973 (0.999 on the
# real corpus embeddings) for +0.05 ms p95. Build at 100k: 10-60 s depending on load.
# Above FLAT_MAX: IVF with 8-bit scalar-quantised codes. nlist = max(1024, sqrt(n) as a power of two), at least
# 39 training points per list; the search fetches RESCORE_FETCH times the wanted candidates (nprobe 32), which are
# then rescored with the stored float32 vectors. At 1M synthetic passages (the 200 development questions, one
# thread): recall@100 vs exact 0.992 (as IVF-Flat's; 0.980 without the extra candidates), recall@10 0.993; search
# p50/p95 1.6/2.2 ms vs IVF-Flat's 3.7/12.4 ms; 0.5 GB of codes instead of 2.0 GB for the 512-d space. HNSW at 1M
# took 355 s to build and fell to recall 0.63, so it is not chosen. Indexes written as IVF-Flat ("ivf") still read.
RESCORE_FETCH = 2
IVF_NLIST_MIN = 1024
IVF_NPROBE = 32
IVF_MIN_TRAIN_PER_LIST = 39
IVF_TRAIN_PER_LIST = 50
ADD_ROWS = 65_536
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


_threads = threading.local()
_blas_lock = threading.Lock()
_blas_single = False


def one_blas_thread() -> None:
    """Run numpy's BLAS on one thread in this process from now on (a process that answers questions calls it).
    A question's products are small (a question against a few thousand rows), and a second BLAS thread costs
    more than it gives, most of all on a busy machine: a question against the 4,915 French words of the shared
    corpus's lexicon took 16 ms on two threads with the other core busy, 1.3 ms on one. The limit is
    process-wide and set once; it is not lifted after each question, because OpenBLAS does not reliably take a
    limit raised again from another thread (seen here with 0.3.31)."""
    global _blas_single
    with _blas_lock:
        if not _blas_single:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=1, user_api="blas")
            _blas_single = True


def index_kind(n: int) -> str:
    return "flat" if n <= FLAT_MAX else "ivf-sq8"


def approximate(kind: str) -> bool:
    """Whether an index of this kind returns approximate scores (to be rescored with the stored vectors)."""
    return kind == "ivf-sq8"


def ivf_nlist(n: int) -> int:
    """Inverted lists for n vectors: 1024 (or sqrt(n) as a power of two, when larger), with at least
    IVF_MIN_TRAIN_PER_LIST training points per list."""
    if n < 2 * IVF_MIN_TRAIN_PER_LIST:
        return 1
    want = max(IVF_NLIST_MIN, 2 ** round(math.log2(math.sqrt(n))))
    return int(max(1, min(want, n // IVF_MIN_TRAIN_PER_LIST)))


def build_ivf(vectors: np.ndarray, nlist: int, nprobe: int = IVF_NPROBE, sq8: bool = False) -> Any:
    """IVF over inner products, with float codes (IVF-Flat) or 8-bit scalar-quantised ones (`sq8`); k-means
    trained on an evenly spaced sample, vectors added in blocks."""
    import faiss

    dim = int(vectors.shape[1])
    index: Any
    if sq8:
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    n_train = min(len(vectors), nlist * IVF_TRAIN_PER_LIST)
    step = max(1, len(vectors) // n_train)
    index.train(np.ascontiguousarray(vectors[::step][:n_train]))
    for start in range(0, len(vectors), ADD_ROWS):
        index.add(np.ascontiguousarray(vectors[start:start + ADD_ROWS]))
    index.nprobe = min(nprobe, nlist)
    return index


def build_vector_index(vectors: np.ndarray, kind: str = "auto"):  # type: ignore[no-untyped-def]
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = int(vectors.shape[1])
    kind = index_kind(len(vectors)) if kind == "auto" else kind
    index: Any
    if kind in ("ivf", "ivf-sq8"):
        return build_ivf(vectors, ivf_nlist(len(vectors)), sq8=kind == "ivf-sq8")
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


def read_vector_index(path: str) -> Any:
    """A stored index, memory-mapped read-only: opening it reads nothing, and a search pages in only the lists
    (or rows) it visits, shared between the processes that map the same generation. A reader never adds to it."""
    import faiss

    return faiss.read_index(path, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)


def search_vectors(index, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """(rows, scores) of the top-n for one query vector; rows of -1 (not enough vectors) are dropped."""
    if not getattr(_threads, "single", False):  # OpenMP threads are per OS thread (Gradio's workers too)
        import faiss

        faiss.omp_set_num_threads(1)  # one thread is faster for one query (measured: 87 vs 354 ms p95 at 1M)
        _threads.single = True
    if index.ntotal == 0 or n <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    scores, rows = index.search(np.ascontiguousarray(queries.reshape(1, -1), dtype=np.float32),
                                min(n, index.ntotal))
    keep = rows[0] >= 0
    return rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)


def bitmap_selector(allowed: np.ndarray) -> Any:
    """A FAISS ID selector admitting the rows where `allowed` (bool, one per row) is True: the filter is applied
    inside the search (flat or IVF), not after it. The packed bitmap is kept alive with the selector."""
    import faiss

    bits = np.packbits(np.asarray(allowed, dtype=bool), bitorder="little")
    sel: Any = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
    sel.keep_alive = bits  # SWIG does not own it
    return sel


def search_selected(index: Any, query: np.ndarray, n: int, sel: Any | None) -> tuple[np.ndarray, np.ndarray]:
    """Like `search_vectors`, restricted to the rows `sel` admits (no restriction when None)."""
    if sel is None:
        return search_vectors(index, query, n)
    faiss: Any = __import__("faiss")  # its stubs lack the selector parameters

    if index.ntotal == 0 or n <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    search_vectors(index, query, 0)  # one OpenMP thread in this OS thread
    if hasattr(index, "nprobe"):
        params: Any = faiss.SearchParametersIVF(sel=sel, nprobe=index.nprobe)
    elif hasattr(index, "hnsw"):
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=index.hnsw.efSearch)
    else:
        params = faiss.SearchParameters(sel=sel)
    scores, rows = index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32),
                                min(n, index.ntotal), params=params)
    keep = rows[0] >= 0
    return rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)
