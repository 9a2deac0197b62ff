"""`arrival bench` pipeline phases: the whole pipeline on a synthetic index of N passages (100k and 1M by default).

``pipeline_build``   N passages written into an empty index home through the store's own writer
                     (`IndexStore.write_generation`, as `arrival ingest` writes a generation). Their text is the real
                     corpus's: each passage is the sentences of one real passage, shuffled, plus one sentence of
                     another passage of the same language, so BM25, the lexicon and the surface words see real
                     words. Their vectors, in every vector space of the source index, are the real encoders' vectors
                     of that source passage (and a little of the other one) plus Gaussian noise, normalised: clustered
                     around real embeddings, as the FAISS scaling's mixture is (eval/bench_vectors.py). Documents are
                     monolingual, 40 passages each, two per page. The lexicon's word vectors are taken from the
                     source index's lexicon (every word comes from its texts), embedded only when missing.
``pipeline_serve``   a fresh process opens the retriever as `arrival serve` does (both encoders, the ranker, the live
                     generation) and times single hybrid searches, with and without a language filter, query
                     embedding included.
``pipeline_update``  one real PDF added end to end (`Indexer.ingest`: parse, embed with the real encoders, write the
                     incremental generation) and removed again (`Indexer.remove`).

The 20-user load test (eval/load.py) runs against the same home from eval/bench.py, after these phases.
"""

from __future__ import annotations

import hashlib
import os
import random
import resource
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from arrival.eval.bench_common import (
    BenchError,
    current_rss_mb,
    maxrss_mb,
    mb,
    percentiles,
    phase_settings,
    read_questions,
)

PASSAGES_PER_DOC = 40
PASSAGES_PER_PAGE = 2
NOISE = 0.35  # norm of the Gaussian noise added to a source passage's unit vector (cosine to it ~0.94)
OTHER_WEIGHT = 0.15  # share of the extra sentence's passage vector mixed in
BLOCK_ROWS = 65_536
PIPELINE_KEYS = ("passages", "add_pdf_s", "remove_pdf_s", "load_s", "hybrid_p50_ms", "hybrid_p95_ms",
                 "hybrid_filtered_p95_ms", "server_rss_mb", "disk_mb")


def disk_bytes(folder: Path) -> int:
    """Bytes of the files under `folder`, each hard-linked file counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


# -- the synthetic corpus --------------------------------------------------------------------------------
class _WordVectors:
    """An `Embedder` for the lexicon's words: the source index's word vectors, the real encoder only for a word it
    lacks (loaded then). Same id and dimension as the real primary encoder."""

    def __init__(self, id_: str, dim: int, lexicon: Any, settings: Any) -> None:
        self._id, self._dim, self._settings = id_, dim, settings
        self._known: dict[str, np.ndarray] = {}
        for lang in lexicon.languages:
            for w, v in zip(lexicon.words[lang], lexicon.vectors[lang], strict=True):
                self._known.setdefault(w, v)
        self._real: Any = None
        self.embedded = 0

    @property
    def id(self) -> str:
        return self._id

    @property
    def dim(self) -> int:
        return self._dim

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        missing = [i for i, t in enumerate(texts) if t not in self._known]
        for i, t in enumerate(texts):
            if t in self._known:
                out[i] = self._known[t]
        if missing:
            if self._real is None:
                from arrival.eval.bench_common import phase_embedder

                self._real = phase_embedder(self._settings)
            out[missing] = self._real.embed_passages([texts[i] for i in missing])
            self.embedded += len(missing)
        return out

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.embed_passages(texts)


class _SpaceOnly:
    """An `Embedder` standing for a vector space whose vectors are given (the writer reads its id and dim only)."""

    def __init__(self, id_: str, dim: int) -> None:
        self.id, self.dim = id_, dim

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        raise BenchError("the synthetic index's vectors are given, not embedded")

    embed_queries = embed_passages


def _source(home: str) -> tuple[Any, list[Any], dict[str, np.ndarray]]:
    from arrival.index.store import IndexStore

    snap = IndexStore(Path(home)).open()
    if snap is None or not snap.count():
        raise BenchError(f"{home}: no index to take passages from")
    rows = list(snap.iter_chunks())
    ids = np.asarray([r.id for r in rows], dtype=np.int64)
    vectors = {space: snap.vectors(space, ids) for space in snap.embedders}
    return snap, rows, vectors


def _noisy(base: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = base + OTHER_WEIGHT * other
    x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(NOISE / np.sqrt(x.shape[1]))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def synthetic_documents(n: int, rows: list[Any], vectors: dict[str, np.ndarray], folder: Path, seed: int = 0
                        ) -> Iterator[Any]:
    """NewDocuments holding n passages in all (see the module docstring). Each document's path is an empty file
    under `folder` (the writer records its size)."""
    from arrival.index.store import NewDocument
    from arrival.ingest.sentences import split_sentences
    from arrival.types import Chunk, Document, Page

    rng = np.random.default_rng(seed)
    shuffle = random.Random(seed).shuffle
    sentences = []
    for r in rows:
        spans = split_sentences(r.text, min_chars=15)
        sentences.append([r.text[a:b] for a, b in spans] or [r.text])
    langs = np.asarray([r.lang for r in rows], dtype=object)
    pools = {lang: np.flatnonzero(langs == lang) for lang in sorted(set(langs.tolist()))}
    names = list(pools)
    share = np.asarray([len(pools[x]) for x in names], dtype=np.float64)
    share /= share.sum()
    n_docs = -(-n // PASSAGES_PER_DOC)
    doc_lang = rng.choice(len(names), size=n_docs, p=share)
    src = np.empty(n, dtype=np.int64)
    extra = np.empty(n, dtype=np.int64)
    for d in range(n_docs):
        a, b = d * PASSAGES_PER_DOC, min(n, (d + 1) * PASSAGES_PER_DOC)
        pool = pools[names[doc_lang[d]]]
        src[a:b] = pool[rng.integers(0, len(pool), b - a)]
        extra[a:b] = pool[rng.integers(0, len(pool), b - a)]
    synth: dict[str, np.ndarray] = {}
    for space, v in vectors.items():
        out = np.empty((n, v.shape[1]), dtype=np.float32)
        for start in range(0, n, BLOCK_ROWS):
            end = min(n, start + BLOCK_ROWS)
            out[start:end] = _noisy(v[src[start:end]], v[extra[start:end]], rng)
        synth[space] = out
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(n_docs):
        a, b = d * PASSAGES_PER_DOC, min(n, (d + 1) * PASSAGES_PER_DOC)
        lang = names[doc_lang[d]]
        path = folder / f"synthetic-{d:07d}.pdf"
        path.touch()
        sha = hashlib.sha256(f"arrival synthetic {seed} {d}".encode()).hexdigest()
        title = f"Synthetic document {d + 1} ({lang})"
        texts = []
        for i in range(a, b):
            parts = list(sentences[src[i]])
            shuffle(parts)
            more = sentences[extra[i]]
            parts.insert(int(rng.integers(0, len(parts) + 1)), more[int(rng.integers(0, len(more)))])
            texts.append(" ".join(parts))
        pages = []
        chunks = []
        for p, first in enumerate(range(0, len(texts), PASSAGES_PER_PAGE)):
            body = texts[first:first + PASSAGES_PER_PAGE]
            offset = 0
            for j, t in enumerate(body):
                chunks.append(Chunk(sha[:16], str(path), title, t, p + 1, p + 1, offset, offset + len(t),
                                    rows[src[a + first + j]].heading, lang))
                offset += len(t) + 2
            pages.append(Page(p + 1, "", "\n\n".join(body)))
        doc = Document(str(path), sha, title, tuple(pages), len(pages), (lang,))
        yield NewDocument(doc, (lang,), chunks, {space: v[a:b] for space, v in synth.items()})


def synthetic_source(spec: dict[str, Any], settings: Any) -> tuple[Any, int, dict[str, Any], Iterator[Any]]:
    """(the source index at spec["source"], its passage count, the embedders a writer of the synthetic index needs,
    the spec["n"] synthetic NewDocuments, made as they are read). Close the source once they are written."""
    from arrival.index.view import DENSE, E5

    snap, rows, vectors = _source(spec["source"])
    m = snap.manifest
    embedders: dict[str, Any] = {DENSE: _WordVectors(m.embedder, m.dim, snap.lexicon, settings)}
    if E5 in snap.embedders:
        embedders[E5] = _SpaceOnly(m.e5_embedder, m.e5_dim)
    docs = synthetic_documents(int(spec["n"]), rows, vectors, Path(spec["docs"]), int(spec.get("seed", 0)))
    return snap, len(rows), embedders, docs


def time_hybrid(retriever: Any, questions: list[str], warm: int, k: int, langs: list[str]
                ) -> tuple[dict[str, float], dict[str, float]]:
    """Percentiles of single hybrid searches without and with a language filter (en and fr in turn), after
    `warm` warm-up questions; the two interleaved, so load drift hits both alike."""
    from arrival.index.retrieve import Filters

    for i, q in enumerate(questions[:warm]):
        retriever.search(q, k=k, mode="hybrid")
        retriever.search(q, k=k, mode="hybrid", filters=Filters(langs=(langs[i % len(langs)],)))
    plain: list[float] = []
    filtered: list[float] = []
    for i, q in enumerate(questions[warm:]):
        lang_filter = Filters(langs=(langs[i % len(langs)],))
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            t = time.perf_counter()
            retriever.search(q, k=k, mode="hybrid", filters=lang_filter if which else None)
            (filtered if which else plain).append(time.perf_counter() - t)
    return percentiles(plain), percentiles(filtered)


def phase_pipeline_build(spec: dict[str, Any]) -> dict[str, Any]:
    """Write the synthetic index of spec["n"] passages into spec["home"] (a new home)."""
    from arrival.index.store import IndexStore
    from arrival.index.view import DENSE

    home = Path(spec["home"])
    if (home / "CURRENT").exists():
        raise BenchError(f"{home}: already holds an index")
    settings = phase_settings({**spec, "home": str(home)})
    t0 = time.perf_counter()
    snap, source_passages, embedders, made = synthetic_source(spec, settings)
    m = snap.manifest
    docs = list(made)
    snap.close()
    synth_s = time.perf_counter() - t0
    t = time.perf_counter()
    store = IndexStore(home)
    with store.lock():
        store.write_generation(None, set(), docs, embedders, m.chunk_size, m.chunk_overlap)
    write_s = time.perf_counter() - t
    del docs
    written = store.open()
    assert written is not None
    try:
        kind, chunks, documents = written.manifest.vector_index, written.count(), written.manifest.documents
    finally:
        written.close()
    return {"passages": chunks, "documents": documents, "source_passages": source_passages, "vector_index": kind,
            "synth_s": round(synth_s, 2), "write_s": round(write_s, 2), "build_s": round(synth_s + write_s, 2),
            "words_embedded": embedders[DENSE].embedded, "disk_mb": mb(disk_bytes(home)),
            "peak_rss_mb": maxrss_mb(resource.RUSAGE_SELF), "settings_home": str(settings.home)}


# -- measurements on the synthetic index -----------------------------------------------------------------
def phase_pipeline_serve(spec: dict[str, Any]) -> dict[str, Any]:
    """Open the retriever as `arrival serve` does, run the first query, then time single hybrid searches."""
    from arrival.index.retrieve import Retriever

    t0 = time.perf_counter()
    settings = phase_settings(spec)
    from arrival.eval.bench_common import phase_embedder

    embedder = phase_embedder(settings)
    models_s = time.perf_counter() - t0
    t = time.perf_counter()
    retriever = Retriever.from_settings(settings, embedder)
    view = retriever.view()
    open_s = time.perf_counter() - t
    n, warm, k = int(spec["queries"]), int(spec["warmup"]), int(settings.k)
    questions = read_questions(spec["questions"], n + warm)
    t = time.perf_counter()
    retriever.search(questions[0], k=k, mode="hybrid")
    first_s = time.perf_counter() - t
    load_s = time.perf_counter() - t0
    langs = sorted(view.languages)
    p, f = time_hybrid(retriever, questions, warm, k, langs)
    # a second pass as a server that has run a while answers: once the kernel has cached the index files (the
    # reader's prefetch has finished), on questions this process has not seen (the other development sets)
    t = time.perf_counter()
    for thread in threading.enumerate():
        if thread.name.startswith("prefetch-"):
            thread.join()
    prefetch_s = time.perf_counter() - t
    seen = set(questions)
    fresh = [q for other in sorted(Path(spec["questions"]).parent.glob("questions-*.jsonl"))
             for q in read_questions(str(other)) if q not in seen]
    pw, fw = time_hybrid(retriever, list(dict.fromkeys(fresh))[:n], 0, k, langs) if fresh else ({}, {})
    loaded_rss = current_rss_mb()
    return {"load_s": round(load_s, 3), "models_s": round(models_s, 3), "open_s": round(open_s, 3),
            "first_query_s": round(first_s, 3), "passages": int(view.count()), "languages": langs,
            "ranker": retriever.ranker is not None and retriever._ranker_fits(view),
            "hybrid": p, "hybrid_filtered": f, "hybrid_warm": pw, "hybrid_warm_filtered": fw,
            "prefetch_wait_s": round(prefetch_s, 3), "loaded_rss_mb": loaded_rss,
            "peak_rss_mb": maxrss_mb(resource.RUSAGE_SELF)}


def phase_pipeline_update(spec: dict[str, Any]) -> dict[str, Any]:
    """Add one real PDF end to end, then remove it (the encoders are loaded first, as in a running server)."""
    from arrival.index.build import Indexer
    from arrival.index.store import IndexStore

    settings = phase_settings(spec)
    t = time.perf_counter()
    indexer = Indexer.from_settings(settings)
    for embedder in indexer.embedders.values():  # encoders load lazily: a running server has them loaded
        embedder.embed_passages(["warm-up"])
    IndexStore(settings.home).open()  # and has the index open: its SQLite pages checked, once per process
    models_s = time.perf_counter() - t
    work = Path(spec["work"])
    work.mkdir(parents=True, exist_ok=True)
    pdf = work / Path(spec["pdf"]).name  # a copy: the document's identity is its path
    shutil.copyfile(spec["pdf"], pdf)
    t = time.perf_counter()
    added = indexer.ingest([pdf])
    add_s = time.perf_counter() - t
    if [f.status for f in added.files] != ["indexed"]:
        raise BenchError(f"{pdf}: not indexed ({[f.to_json() for f in added.files]})")
    t = time.perf_counter()
    removed = indexer.remove([str(pdf.resolve())])
    remove_s = time.perf_counter() - t
    if [f.status for f in removed.files] != ["removed"]:
        raise BenchError(f"{pdf}: not removed ({[f.to_json() for f in removed.files]})")
    return {"pdf": Path(spec["pdf"]).name, "pages": added.files[0].pages, "chunks": added.files[0].chunks,
            "add_pdf_s": round(add_s, 3), "add_timings_s": {k: round(v, 3) for k, v in added.timings.items()},
            "remove_pdf_s": round(remove_s, 3), "models_s": round(models_s, 3),
            "peak_rss_mb": maxrss_mb(resource.RUSAGE_SELF)}


def pipeline_row(build: dict[str, Any], serve: dict[str, Any], update: dict[str, Any],
                 load: dict[str, Any] | None) -> dict[str, Any]:
    """One size's figures: the issue's keys first, then the details."""
    rss = [x for x in (serve.get("peak_rss_mb"), serve.get("peak_tree_rss_mb"),
                       (load or {}).get("server_peak_rss_mb")) if x]
    row: dict[str, Any] = {
        "passages": build["passages"], "add_pdf_s": update["add_pdf_s"], "remove_pdf_s": update["remove_pdf_s"],
        "load_s": serve["load_s"], "hybrid_p50_ms": serve["hybrid"]["p50_ms"],
        "hybrid_p95_ms": serve["hybrid"]["p95_ms"], "hybrid_filtered_p95_ms": serve["hybrid_filtered"]["p95_ms"],
        "server_rss_mb": max(rss) if rss else None, "disk_mb": build["disk_mb"],
        "hybrid_filtered_p50_ms": serve["hybrid_filtered"]["p50_ms"],
        "hybrid_warm_p50_ms": serve["hybrid_warm"].get("p50_ms"),
        "hybrid_warm_p95_ms": serve["hybrid_warm"].get("p95_ms"),
        "hybrid_warm_filtered_p95_ms": serve["hybrid_warm_filtered"].get("p95_ms"),
        "hybrid_warm_queries": serve["hybrid_warm"].get("n"), "prefetch_wait_s": serve["prefetch_wait_s"],
        "documents": build["documents"],
        "vector_index": build["vector_index"], "build_s": build["build_s"], "build_write_s": build["write_s"],
        "build_peak_rss_mb": build.get("peak_tree_rss_mb") or build["peak_rss_mb"],
        "index_open_s": serve["open_s"], "models_load_s": serve["models_s"], "first_query_s": serve["first_query_s"],
        "queries": serve["hybrid"]["n"], "ranker": serve["ranker"], "serve_peak_rss_mb": serve["peak_rss_mb"],
        "pdf": update["pdf"], "pdf_pages": update["pages"], "add_pdf_timings_s": update["add_timings_s"],
        "load_averages": {"build": build.get("load_average"), "serve": serve.get("load_average"),
                          "update": update.get("load_average")},
    }
    if load is not None:
        row["load_test"] = {k: load.get(k) for k in ("users", "seconds", "requests", "ok", "errors", "error_kinds",
                                                      "p50_ms", "p95_ms", "throughput_rps", "server_peak_rss_mb",
                                                      "loadavg_1m_before", "loadavg_1m_after", "error_samples")}
    return row
