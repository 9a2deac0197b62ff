"""`arrival bench` phases `ingest` and `langchain`: a cold ingest into an empty home and a no-op re-ingest, and the
same PDFs through a stock LangChain pipeline (PyPDFLoader -> RecursiveCharacterTextSplitter -> FAISS) with the
same embedder. Each runs in a process of its own (eval/bench.py)."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

from arrival.eval.bench_common import corpus_pdfs, maxrss_mb, phase_embedder, phase_settings


def phase_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    """Cold ingest into an empty home, then a no-op re-ingest of the same paths (same process)."""
    from arrival.index.build import Indexer

    settings = phase_settings(spec)
    files = corpus_pdfs(spec["corpus"])
    embedder = phase_embedder(settings)
    indexer = Indexer.from_settings(settings, embedder)  # what `arrival ingest` runs: the second encoder too
    report = indexer.ingest([Path(spec["corpus"])])
    indexed = [f for f in report.files if f.status == "indexed"]
    cold_rss = maxrss_mb(resource.RUSAGE_SELF)
    again = indexer.ingest([Path(spec["corpus"])])
    return {
        "files": len(files), "indexed": len(indexed), "failed": [f.to_json() for f in report.failed],
        "pages": sum(f.pages for f in indexed), "chunks": sum(f.chunks for f in indexed),
        "seconds": report.seconds, "timings": dict(report.timings),
        "noop_seconds": again.seconds, "noop_unchanged": sum(1 for f in again.files if f.status == "unchanged"),
        "main_rss_mb": cold_rss, "workers": settings.workers or (os.cpu_count() or 1),
        "embedder": embedder.id,
        "second_embedder": ",".join(e.id for e in indexer.embedders.values() if e is not embedder),
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

    settings = phase_settings(spec)
    files = corpus_pdfs(spec["corpus"])
    embeddings = langchain_embeddings(phase_embedder(settings))
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
            "main_rss_mb": maxrss_mb(resource.RUSAGE_SELF)}
