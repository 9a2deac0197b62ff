"""Performance benchmark behind `arrival bench`: ingest speed against a stock LangChain pipeline, search and
answer latency, peak memory, and vector-index scaling. A library: it measures and returns plain dicts; it
never prints (`eval/bench_cli.py` does the talking).

Every heavy phase runs in its own Python process (``python -m arrival.eval.bench PHASE SPEC.json OUT.json``), so that
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
               memory, single-query p50/p95 and recall@10 against exact search;
``embedders``  one process per embedding model (use-m3, e5-small): passages/s on the index's chunks and
               single-query latency, side by side whatever embedder the rest of the run uses.
``postgres``, ``postgres_scaled``, ``dask``  the PostgreSQL backend (cold ingest, search interleaved with the
               embedded index, and search at 100k synthetic passages) and the ingest on a 2-worker Dask
               LocalCluster against the local one (eval/bench_backends.py).
``pipeline_*`` per size in ``--pipeline`` (default 100k and 1M passages): a synthetic index built from the real
               corpus's passages through the store's writer, then, each in a fresh process, the retriever loaded as
               a server loads it and timed (hybrid p50/p95, with and without a language filter), and one real PDF
               added and removed; then the 20-user load test against that index (eval/bench_pipeline.py).

The phases live beside this module: eval/bench_ingest.py (ingest, langchain), eval/bench_serve.py (serve),
eval/bench_vectors.py (ann_real, scaling, and the synthetic vectors), eval/bench_embed.py (embedders),
eval/bench_pipeline.py (pipeline_build, pipeline_serve, pipeline_update);
eval/bench_common.py holds the shared helpers and eval/bench_report.py the summary and the Markdown report. This
module runs them, each in a child process, and puts the result together.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arrival.eval.bench_backends import phase_dask, phase_postgres, phase_postgres_scaled, run_backends
from arrival.eval.bench_common import (
    DEFAULT_PIPELINE,
    DEFAULT_SCALING,
    HNSW_MAX_DEFAULT,
    BenchError,
    Progress,
    maxrss_mb,
    mb,
    percentiles,
    recall_at_k,
)
from arrival.eval.bench_embed import EMBEDDERS, phase_embedders
from arrival.eval.bench_ingest import phase_ingest, phase_langchain
from arrival.eval.bench_pipeline import (
    phase_pipeline_build,
    phase_pipeline_serve,
    phase_pipeline_update,
    pipeline_row,
)
from arrival.eval.bench_report import markdown_table, recommend, summarize
from arrival.eval.bench_serve import phase_serve
from arrival.eval.bench_vectors import Mixture, choose_index, phase_ann_real, phase_scaling
from arrival.index.vectors import ivf_nlist

__all__ = ["DEFAULT_PIPELINE", "DEFAULT_SCALING", "HNSW_MAX_DEFAULT", "PHASES", "BenchError", "BenchOptions", "Mixture",
           "choose_index", "ivf_nlist", "markdown_table", "percentiles", "recall_at_k", "recommend", "run_bench",
           "run_phase", "summarize"]

PHASES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ingest": phase_ingest, "langchain": phase_langchain, "serve": phase_serve, "ann_real": phase_ann_real,
    "scaling": phase_scaling, "embedders": phase_embedders, "postgres": phase_postgres,
    "postgres_scaled": phase_postgres_scaled, "dask": phase_dask, "pipeline_build": phase_pipeline_build,
    "pipeline_serve": phase_pipeline_serve, "pipeline_update": phase_pipeline_update,
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
    result["peak_tree_rss_mb"] = mb(peak) if psutil is not None else None
    result["cpu_seconds"] = round(sum(cpu.values()), 2) if psutil is not None else None
    return result


def _child_main(argv: list[str]) -> int:
    name, spec_path, out_path = argv
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ["ARRIVAL_DATABASE_URL"] = ""  # phases name their database in their spec, never from the caller's env
    result = PHASES[name](json.loads(Path(spec_path).read_text()))
    result["self_peak_rss_mb"] = maxrss_mb(resource.RUSAGE_SELF)
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
    postgres: str = "auto"  # "auto": a throwaway embedded PostgreSQL when installed; "none"; or a server's URL
    postgres_passages: int = 100_000  # synthetic passages of the PostgreSQL run at scale (0 skips it)
    dask: bool = True  # the ingest on a 2-worker Dask LocalCluster
    pipeline: tuple[int, ...] = DEFAULT_PIPELINE  # synthetic index sizes for the whole-pipeline runs
    pipeline_pdf: Path | None = None  # the PDF added and removed (default: the bundled ~20-page GFMD paper)
    pipeline_users: int = 20  # load test against each synthetic index
    pipeline_seconds: float = 60.0
    pipeline_only: bool = False  # only the pipeline runs (after one cold ingest of the corpus as their source)
    pipeline_source: Path | None = None  # an existing index home (read only) as their source instead of that ingest


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


def run_pipeline(opts: BenchOptions, base: dict[str, Any], source: Path, n: int, work: Path) -> dict[str, Any]:
    """One size of the whole-pipeline benchmark (eval/bench_pipeline.py): build, load and search, add and remove a
    PDF, each in a process of its own, then the load test (its own server process) against the same home."""
    from arrival.eval.load import LoadOptions, run_load

    pdf = opts.pipeline_pdf or default_pdf()
    home = work / "home"
    env = {"ARRIVAL_GC_GRACE_SECONDS": "0"}  # a replaced generation is removed at once: disk is the live one's
    spec = {**base, "home": str(home)}
    build = run_phase("pipeline_build", {**spec, "n": n, "source": str(source), "docs": str(work / "docs")}, env)
    serve = run_phase("pipeline_serve", {**spec, "queries": opts.queries, "warmup": opts.warmup}, env)
    update = run_phase("pipeline_update", {**spec, "pdf": str(pdf), "work": str(work / "upload")}, env)
    load = None
    if opts.pipeline_users > 0 and opts.pipeline_seconds > 0:
        load = run_load(LoadOptions(users=opts.pipeline_users, seconds=opts.pipeline_seconds, home=home,
                                    model=opts.model, threads=opts.threads, cache=opts.cache))
    row = pipeline_row(build, serve, update, load)
    shutil.rmtree(work, ignore_errors=True)
    return row


def default_pdf() -> Path:
    """The bundled GFMD paper (18 pages): the ~20-page PDF the pipeline runs add and remove."""
    from arrival.assistant.server import bundled_corpus

    pdfs = sorted(bundled_corpus().glob("*.pdf"))
    if not pdfs:
        raise BenchError(f"{bundled_corpus()}: no bundled PDF; pass --pipeline-pdf")
    return pdfs[0]


def run_bench(opts: BenchOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Every phase, in order; returns the full result (see `summary_keys` for the headline numbers)."""

    check_requirements()
    if not opts.corpus.is_dir() and not opts.corpus.is_file():
        raise BenchError(f"{opts.corpus}: no such corpus folder")
    from arrival.eval.cli import default_questions

    questions = str(opts.questions or default_questions())
    sizes = tuple(n for n in opts.scaling if n > 0)
    pipeline = tuple(n for n in opts.pipeline if n > 0)
    rounds = range(1, max(1, opts.repeat) + 1)
    steps = [*[f"{p} {r}" for r in rounds for p in (("ingest", "langchain") if r % 2 else ("langchain", "ingest"))],
             "noop", "serve", "ann_real", *[f"embedders {m}" for m in EMBEDDERS],
             *(["postgres"] if opts.postgres != "none" else []),
             *([f"postgres {opts.postgres_passages:,}"] if opts.postgres != "none" and opts.postgres_passages else []),
             *(["dask"] if opts.dask else []), *[f"scaling {n:,}" for n in sizes],
             *[f"pipeline {n:,}" for n in pipeline]]
    started = time.time()
    load_start = os.getloadavg()
    if opts.pipeline_only:
        return _pipeline_only(opts, pipeline, questions, progress)
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
        embedders = []
        for model in EMBEDDERS:
            step(f"embedders {model}")
            embedders.append(run_phase("embedders", {**base, "home": str(home), "model": model,
                                                     "queries": opts.queries, "warmup": opts.warmup}))
        backends = run_backends(run_phase, {**base, "queries": opts.queries, "warmup": opts.warmup}, home,
                                float(ingest["seconds"]), Path(tmp), opts.postgres, opts.postgres_passages,
                                opts.dask, step)
        pipelines = []
        for n in pipeline:  # the source of the synthetic passages is the real index just built
            step(f"pipeline {n:,}")
            pipelines.append(run_pipeline(opts, base, home, n, Path(tmp) / f"pipeline-{n}"))
    scaling = []
    for n in sizes:
        step(f"scaling {n:,}")
        scaling.append(run_phase("scaling", {"n": n, "queries": opts.scaling_queries, "hnsw_max": opts.hnsw_max}))
    step("done")
    out["machine"] = _machine(load_start, started)
    out.update(summarize(ingest, lc, serve, ann_real, scaling, embedders))
    out.update(backends)
    out["pipeline"] = pipelines
    out["details"] = {"ingest": ingest, "langchain": lc, "serve": serve, "ann_real": ann_real}
    return out


def _machine(load_start: tuple[float, float, float], started: float) -> dict[str, Any]:
    import faiss

    return {
        "cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
        "faiss": getattr(faiss, "__version__", "?"), "faiss_default_threads": faiss.omp_get_max_threads(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
    }


def _pipeline_only(opts: BenchOptions, sizes: tuple[int, ...], questions: str, progress: Progress | None
                   ) -> dict[str, Any]:
    """`--pipeline-only`: the pipeline runs alone, their passages taken from `--pipeline-source` or from one cold
    ingest of the corpus."""
    started, load_start = time.time(), os.getloadavg()
    steps = [*([] if opts.pipeline_source else ["ingest"]), *[f"pipeline {n:,}" for n in sizes]]
    out: dict[str, Any] = {"pipeline": []}
    with tempfile.TemporaryDirectory(prefix="arrival-bench-home-") as tmp:
        base = {"model": opts.model, "threads": opts.threads, "cache": str(opts.cache) if opts.cache else None,
                "corpus": str(opts.corpus), "questions": questions}
        source = opts.pipeline_source
        if source is None:
            if progress:
                progress("ingest", 0, len(steps))
            source = Path(tmp) / "home"
            run_phase("ingest", {**base, "home": str(source)})
        elif not (source / "CURRENT").is_file():
            raise BenchError(f"{source}: no index there (--pipeline-source)")
        out["pipeline_source"] = str(source)
        for n in sizes:
            if progress:
                progress(f"pipeline {n:,}", steps.index(f"pipeline {n:,}"), len(steps))
            out["pipeline"].append(run_pipeline(opts, base, source, n, Path(tmp) / f"pipeline-{n}"))
    if progress:
        progress("done", len(steps), len(steps))
    out["machine"] = _machine(load_start, started)
    return out


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
