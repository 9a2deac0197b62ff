"""`arrival bench` phase `serve`: what a server holds (retriever, extractive assistant, the web app), loaded and
warmed up, then single-query latencies of each search mode, of the query embedding and of FAISS alone, and of
`ask`. Runs in a process of its own (eval/bench.py)."""

from __future__ import annotations

import resource
import time
from typing import Any

import numpy as np

from arrival.eval.bench_common import (
    SEARCH_MODES,
    current_rss_mb,
    faiss_threads,
    maxrss_mb,
    percentiles,
    phase_embedder,
    phase_settings,
    read_questions,
)


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
    settings = phase_settings(spec)
    embedder = phase_embedder(settings)
    retriever, loaded = _load_server(settings, embedder)
    assistant = Assistant(retriever)
    snap = retriever.snapshot()
    load_seconds = time.perf_counter() - t0
    n, warm, k = int(spec["queries"]), int(spec["warmup"]), int(settings.k)
    questions = read_questions(spec["questions"], n + warm)
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
        "loaded_rss_mb": loaded_rss, "rss_mb": current_rss_mb(), "peak_rss_mb": maxrss_mb(resource.RUSAGE_SELF),
    }
