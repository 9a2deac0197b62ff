"""`arrival bench` phase `embedders`: the embedding models side by side (use-m3, e5-small) on the same passages.

One process per embedder (eval/bench.py runs them): the passages are the corpus's own chunks read from the index
the ingest phase built, the queries are the question set's. Measured: load time (files, session, first text),
passages per second and per CPU-second (process CPU time; the machine is often shared, so the per-CPU figure is
the steadier one), each the fastest of ``repeat`` runs, and single-query latency p50 / p95 after warm-up. An
embedder whose model is not in the cache is reported as skipped with the reason, never fetched.
"""

from __future__ import annotations

import os
import time
from typing import Any

from arrival.errors import ModelError
from arrival.eval.bench_common import BenchError, current_rss_mb, percentiles, phase_settings, read_questions

EMBEDDERS = ("use-m3", "e5-small")  # compared in every bench run, whatever --model says
PASSAGES = 512  # chunks embedded per run (the first ones of the index)
REPEAT = 2


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def phase_embedders(spec: dict[str, Any]) -> dict[str, Any]:
    """One embedder (spec["model"]): load, passages/s over the index's chunks, single-query p50/p95."""
    from arrival.index.embed import load_embedder
    from arrival.index.store import IndexStore

    settings = phase_settings(spec)
    snap = IndexStore(settings.home).open()
    if snap is None:
        raise BenchError(f"{settings.home}: no index to read passages from")
    n = min(int(spec.get("passages", PASSAGES)), int(snap.manifest.chunks))
    passages = [c.text for c in snap.chunks(list(range(n)))]
    queries = read_questions(spec["questions"], int(spec["queries"]) + int(spec["warmup"]))
    warmup, timed = queries[: int(spec["warmup"])], queries[int(spec["warmup"]):]
    t0 = time.perf_counter()
    try:
        embedder = load_embedder(settings.model, settings.cache, settings.threads, settings.batch_size)
        embedder.embed_queries(["warm up"])
    except ModelError as exc:
        return {"model": settings.model, "skipped": str(exc)}
    load_s = time.perf_counter() - t0
    embedder.embed_passages(passages[:16])
    runs = []
    for _ in range(max(1, int(spec.get("repeat", REPEAT)))):
        c, t = _cpu(), time.perf_counter()
        embedder.embed_passages(passages)
        runs.append((time.perf_counter() - t, _cpu() - c))
    wall, cpu = min(runs)
    for q in warmup:
        embedder.embed_queries([q])
    times = []
    for q in timed:
        t = time.perf_counter()
        embedder.embed_queries([q])
        times.append(time.perf_counter() - t)
    return {
        "model": settings.model, "id": embedder.id, "dim": embedder.dim, "threads": settings.threads or os.cpu_count(),
        "load_seconds": round(load_s, 3), "passages": n,
        "passage_chars_mean": round(sum(map(len, passages)) / max(n, 1), 1),
        "passages_per_s": round(n / wall, 1), "passages_per_cpu_s": round(n / cpu, 1) if cpu > 0 else None,
        "runs_seconds": [round(w, 3) for w, _ in runs], "query": percentiles(times), "rss_mb": current_rss_mb(),
    }


def embedder_rows(results: list[dict[str, Any]]) -> list[str]:
    """The Markdown table of the embedders phase (empty when it did not run)."""
    done = [r for r in results if "skipped" not in r]
    if not results:
        return []
    lines = ["", "Embedders on the same passages (" + (f"{done[0]['passages']} chunks of the corpus, "
             f"{done[0]['passage_chars_mean']:.0f} characters on average" if done else "none available")
             + "), single queries from the question set:", "",
             "| Embedder | Dim | Passages/s | Passages per CPU-s | Query p50 / p95 | Load time | Load average |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['model']} | skipped: {r['skipped']} | | | | | |")
            continue
        load = r.get("load_average") or ["–", "–"]
        lines.append(f"| {r['id']} | {r['dim']} | {r['passages_per_s']:.1f} | {r['passages_per_cpu_s'] or 0:.1f} | "
                     f"{r['query']['p50_ms']:.1f} / {r['query']['p95_ms']:.1f} ms | {r['load_seconds']:.1f} s | "
                     f"{load[0]} → {load[1]} |")
    return lines
