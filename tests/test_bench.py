"""`arrival bench` cannot rot: a smoke run on the demo PDF with the hash embedder, plus the pure helpers.

No timing threshold is asserted anywhere: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import DEMO, ROOT

HEADLINE = ("ingest_pages_per_s", "ingest_seconds", "langchain_ingest_seconds", "ingest_time_ratio_vs_langchain",
            "noop_reingest_seconds", "search_p50_ms", "search_p95_ms", "ask_p95_ms", "server_rss_mb")


def _positive(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and x > 0


@pytest.fixture(scope="module")
def smoke() -> dict:
    pytest.importorskip("langchain_community")
    env = {**os.environ, "ARRIVAL_MODEL": "hash:256", "GRADIO_ANALYTICS_ENABLED": "False"}
    p = subprocess.run(
        [sys.executable, "-m", "arrival.cli", "bench", "--corpus", str(DEMO.parent), "--scaling", "2000",
         "--pipeline", "3000", "--pipeline-users", "2", "--pipeline-seconds", "4", "--queries", "20",
         "--repeat", "1", "--model", "hash:256", "--postgres-passages", "3000", "--json", "-q"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=1200,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


def test_smoke_bench_reports_every_headline_number(smoke):
    for key in HEADLINE:
        assert key in smoke, key
        assert _positive(smoke[key]), (key, smoke[key])
    assert smoke["corpus_files"] == 1 and smoke["corpus_pages"] == 18 and smoke["corpus_chunks"] > 0
    assert set(smoke["ingest_timings_s"]) >= {"parse", "chunk", "embed", "write"}
    assert set(smoke["search_ms"]) >= {"bm25", "dense", "hybrid"}
    assert all(_positive(v["p95"]) for v in smoke["search_ms"].values())
    assert smoke["ask_p50_ms"] <= smoke["ask_p95_ms"]
    assert smoke["search_queries"] == 20
    assert smoke["machine"]["cpus"] >= 1 and len(smoke["machine"]["load_average_start"]) == 3


def test_smoke_bench_scaling_rows(smoke):
    rows = smoke["scaling"]
    assert {r["index"] for r in rows} == {"flat", "ivf", "hnsw"}
    for r in rows:
        assert r["n"] == 2000
        assert r["build_s"] >= 0 and _positive(r["memory_mb"])
        assert _positive(r["p50_ms"]) and _positive(r["p95_ms"])
        assert 0.0 <= r["recall_at_10"] <= 1.0
    assert next(r for r in rows if r["index"] == "flat")["recall_at_10"] == 1.0
    assert "2000" in smoke["scaling_chosen"]
    real = {r["index"]: r for r in smoke["ann_real"]}
    assert set(real) == {"flat", "hnsw", "ivf"} and real["flat"]["recall_at_10"] == 1.0
    assert smoke["ann_real_queries"] > 0 and smoke["ann_real_vectors"] >= smoke["corpus_chunks"]


def test_smoke_bench_postgres_and_dask(smoke):
    """The backend runs: a real (embedded) PostgreSQL with pgvector and a real 2-worker Dask LocalCluster."""
    pg = smoke["postgres"]
    assert "skipped" not in pg, pg
    assert pg["indexed"] == 1 and pg["chunks"] == smoke["corpus_chunks"] and _positive(pg["ingest_seconds"])
    for backend in ("embedded", "postgres"):
        assert all(_positive(pg["search"][backend][m]["p95_ms"]) for m in ("bm25", "dense", "hybrid"))
    assert pg["hybrid_top5_overlap"] >= 0.5  # the same index on two backends (the real model: test_postgres_real)
    scaled = smoke["postgres_scaled"][0]
    assert scaled["passages"] == 3000 and _positive(scaled["hybrid"]["p95_ms"])
    assert _positive(scaled["hybrid_filtered"]["p95_ms"])
    dask = smoke["dask"]
    assert dask["workers"] == 2 and dask["same_passages_as_local"] is True and _positive(dask["ratio_vs_local"])


def test_smoke_bench_pipeline_row(smoke):
    from arrival.eval.bench_pipeline import PIPELINE_KEYS

    rows = smoke["pipeline"]
    assert len(rows) == 1
    row = rows[0]
    for key in PIPELINE_KEYS:
        assert _positive(row[key]), (key, row[key])
    assert row["passages"] == 3000 and row["documents"] == 75
    assert row["pdf_pages"] == 18 and row["hybrid_p50_ms"] <= row["hybrid_p95_ms"]
    # the warm pass: questions of the other development sets, after the reader's prefetch finished
    assert row["hybrid_warm_queries"] == 20 and 0 < row["hybrid_warm_p50_ms"] <= row["hybrid_warm_p95_ms"]
    assert row["load_test"]["requests"] > 0 and row["load_test"]["errors"] == 0


def test_synthetic_documents_recombine_real_sentences(tmp_path: Path):
    from arrival.eval.bench_pipeline import synthetic_documents

    class Row:
        def __init__(self, i: int, lang: str) -> None:
            self.id, self.lang, self.heading = i, lang, f"H{i}"
            word = "alpha" if lang == "en" else "beta"
            self.text = " ".join(f"{word} sentence {i} number {j} ends here." for j in range(3))

    rows = [Row(i, "en" if i % 3 else "fr") for i in range(30)]
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((30, 16)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    docs = list(synthetic_documents(1000, rows, {"dense": dense}, tmp_path / "docs"))
    chunks = [c for d in docs for c in d.chunks]
    assert len(chunks) == 1000 and len(docs) == 25
    assert all(Path(d.doc.path).is_file() and len(d.langs) == 1 for d in docs)
    assert {c.lang for c in chunks} == {"en", "fr"}
    for d in docs:  # monolingual documents whose passages are real sentences of that language
        word = "alpha" if d.langs[0] == "en" else "beta"
        assert all(c.text.count(word) >= 4 and c.lang == d.langs[0] for c in d.chunks)
        for c in d.chunks:
            page = d.doc.pages[c.page - 1].text
            assert page[c.start:c.end] == c.text
        v = d.vectors["dense"]
        assert v.shape == (len(d.chunks), 16) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # clustered around the real vectors: each synthetic vector is close to one source vector
    v = np.concatenate([d.vectors["dense"] for d in docs])
    assert float((v @ dense.T).max(axis=1).mean()) > 0.8


def test_markdown_table_renders_the_result(smoke):
    from arrival.eval.bench import markdown_table

    md = markdown_table(smoke)
    assert "| Cold ingest |" in md and "| Ingest time arrival / LangChain |" in md
    assert "| 2,000 | ivf |" in md and "load average" in md
    assert "PostgreSQL backend" in md and "| hybrid p50 / p95 |" in md and "Dask ingest" in md
    assert "| 3,000 |" in md and "Whole pipeline" in md


def test_scaling_sizes_parse():
    import argparse

    from arrival.eval.bench_cli import _sizes

    assert _sizes("10k,100k,1m") == (10_000, 100_000, 1_000_000)
    assert _sizes("0") == (0,)
    assert _sizes("100k,1m") == (100_000, 1_000_000)
    with pytest.raises(argparse.ArgumentTypeError):
        _sizes("ten")


def test_synthetic_vectors_are_clustered_unit_vectors():
    from arrival.eval.bench import Mixture

    mix = Mixture()
    x = np.concatenate(list(mix.chunks(3000, rows=1000)))
    assert x.shape == (3000, 512) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    again = np.concatenate(list(mix.chunks(3000, rows=1000)))
    assert np.array_equal(x, again)  # deterministic, so a size can be regenerated chunk by chunk
    sims = x[:200] @ x.T
    np.fill_diagonal(sims[:, :200], -1)
    # uniform random unit vectors in 512-d have nearest-neighbour cosine ~0.2; these are structured
    assert float(np.sort(sims, axis=1)[:, -1].mean()) > 0.6
    q = mix.queries(50)
    assert float((q @ x.T).max(axis=1).mean()) < float(np.sort(sims, axis=1)[:, -1].mean())


def test_recall_and_percentiles_helpers():
    from arrival.eval.bench import ivf_nlist, percentiles, recall_at_k

    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[1, 2, 9, 4], [8, 7, 6, 5]])
    assert recall_at_k(found, truth, k=4) == pytest.approx((3 / 4 + 1) / 2)
    p = percentiles([0.001] * 19 + [0.1])
    assert p["p50_ms"] == pytest.approx(1.0) and p["p95_ms"] > 1.0 and p["n"] == 20
    assert ivf_nlist(50) == 1 and ivf_nlist(2000) <= 2000 // 39 and ivf_nlist(1_000_000) >= 1024


def test_bench_rejects_a_missing_corpus(tmp_path: Path):
    from arrival.eval.bench import BenchError, BenchOptions, run_bench

    with pytest.raises(BenchError, match="no such corpus"):
        run_bench(BenchOptions(corpus=tmp_path / "nowhere", model="hash:256", scaling=(0,)))
