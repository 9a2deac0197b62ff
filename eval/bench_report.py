"""The `arrival bench` result: the headline figures drawn from the phases' details (`summarize`), what they say
about FAISS threads and index parameters (`recommend`), and the Markdown report (`markdown_table`)."""

from __future__ import annotations

import json
from typing import Any

from arrival.eval.bench_backends import backends_markdown
from arrival.eval.bench_common import FLAT_BUDGET_MS, P95_TARGET_MS, RECALL_TARGET
from arrival.eval.bench_embed import embedder_rows


def summarize(ingest: dict[str, Any], lc: dict[str, Any], serve: dict[str, Any], ann_real: dict[str, Any],
              scaling: list[dict[str, Any]], embedders: list[dict[str, Any]] | None = None) -> dict[str, Any]:
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
        "ingest_embedders": ",".join(x for x in (ingest.get("embedder"), ingest.get("second_embedder")) if x),
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
        "embedders": embedders or [],
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
    if "ingest_seconds" not in r:  # --pipeline-only
        m = r["machine"]
        lines = [f"Machine: {m['cpus']} CPUs, load average {m['load_average_start'][0]:.2f} at start and "
                 f"{m['load_average_end'][0]:.2f} at end (1 min), faiss {m['faiss']}, Python {m['python']}; "
                 f"bench took {m['seconds']:.0f} s.", *pipeline_lines(r.get("pipeline") or [])]
        return "\n".join(lines) + "\n"
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
        f"| — embed (main process; {r.get('ingest_embedders') or 'primary embedder'}) | {_f(t.get('embed'))} s |",
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
    lines += embedder_rows(r.get("embedders", []))
    lines += backends_markdown(r)
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
    lines += pipeline_lines(r.get("pipeline") or [])
    rec = r["recommendations"]
    if rec:
        lines += ["", "Recommendations: " + json.dumps(rec)]
    return "\n".join(lines) + "\n"


def pipeline_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The whole-pipeline table: one line per synthetic index size."""
    if not rows:
        return []
    out = ["", "Whole pipeline on synthetic indexes (real corpus sentences, vectors around real embeddings; one query "
               "at a time, query embedding included; load test: 20 users against `arrival serve` on that index):", "",
           "| Passages | Add PDF s | Remove PDF s | Load s | Hybrid p50 / p95 ms | Filtered p95 ms "
           "| Warm hybrid p50 / p95 ms | Server RSS MB | Disk MB | Load test: requests, errors, p50 / p95 ms "
           "| Build s |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for row in rows:
        lt = row.get("load_test")
        load = (f"{lt['requests']}, {lt['errors']}, {_f(lt['p50_ms'], 0)} / {_f(lt['p95_ms'], 0)}" if lt else "–")
        out.append(f"| {row['passages']:,} | {_f(row['add_pdf_s'], 2)} | {_f(row['remove_pdf_s'], 2)} | "
                   f"{_f(row['load_s'], 2)} | {_f(row['hybrid_p50_ms'])} / {_f(row['hybrid_p95_ms'])} | "
                   f"{_f(row['hybrid_filtered_p95_ms'])} | "
                   f"{_f(row.get('hybrid_warm_p50_ms'))} / {_f(row.get('hybrid_warm_p95_ms'))} | "
                   f"{_f(row['server_rss_mb'], 0)} | {_f(row['disk_mb'], 0)} | "
                   f"{load} | {_f(row.get('build_s'))} |")
    return out
