"""One state of the index per answer: concurrent questions while ingests and removals switch generations."""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from arrival.assistant.answer import AnswerSettings, Assistant
from arrival.index.build import Indexer
from arrival.index.embed import HashEmbedder
from arrival.index.retrieve import Filters, Retriever
from arrival.index.store import IndexStore
from arrival.ingest.clean import normalize_for_match

from .conftest import DEMO
from .pdfgen import good_pdf

QUESTIONS = ["guichet unique Lisbonne services migrants", "Malaga pièce d'identité services",
             "réseaux de villes migration", "coordination villes États migrants"]


def test_50_concurrent_asks_while_generations_switch(hash_settings, tmp_path, monkeypatch):
    """50 questions from 8 threads while another thread adds and removes documents: no error, and every citation
    is verified in the page text of the generation its answer was read from (generations stay while read)."""
    monkeypatch.setenv("ARRIVAL_GC_GRACE_SECONDS", "600")  # keep every generation so the test can check them after
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(DEMO, docs / "gfmd.pdf")
    emb = HashEmbedder(256)
    Indexer(hash_settings, emb).ingest([docs])
    assistant = Assistant(Retriever.from_settings(hash_settings, emb), AnswerSettings(min_score=0.05,
                                                                                      min_sentence=0.05))
    stop = threading.Event()
    switches = []

    def churn() -> None:
        i = 0
        while not stop.is_set():
            extra = good_pdf(tmp_path / f"extra-{i}.pdf", tag=f"doc{i}")
            Indexer(hash_settings, emb).ingest([extra])
            Indexer(hash_settings, emb).remove([str(extra)])
            switches.append(i)
            i += 1

    answers = []
    lock = threading.Lock()
    deadline = time.monotonic() + 180

    def ask(worker: int) -> None:
        i = worker
        while time.monotonic() < deadline and (len(answers) < 50 or len(switches) < 3):
            a = assistant.ask(QUESTIONS[i % len(QUESTIONS)], filters=Filters(langs=("fr",)))
            with lock:
                answers.append(a)
            i += 8

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(ask, range(8)))
    finally:
        stop.set()
        writer.join()
    assert len(answers) >= 50
    assert len(switches) >= 3, "the generations must switch while the questions are asked"
    store = IndexStore(hash_settings.home)
    generations = {a.generation for a in answers}
    assert len(generations) >= 2 and "" not in generations
    checked = 0
    for a in answers:
        view = store.open_generation(a.generation)
        ids = {d.path: d.doc_id for d in view.documents().values()}
        for c in a.citations:
            pages = " ".join(view.page_text(ids[c.source], p) or "" for p in range(c.page, (c.page_end or c.page) + 1))
            assert normalize_for_match(c.quote) in normalize_for_match(pages)
            checked += 1
        view.close()
    assert checked >= 20


def test_an_old_generation_stays_while_a_request_reads_it(hash_settings, tmp_path, monkeypatch):
    """With no grace period, a generation that stopped being live is removed at the next write, unless a request of
    this process still holds it: then it is removed at a later write."""
    monkeypatch.setenv("ARRIVAL_GC_GRACE_SECONDS", "0")
    emb = HashEmbedder(256)
    first = good_pdf(tmp_path / "a.pdf", tag="alpha")
    Indexer(hash_settings, emb).ingest([first])
    retriever = Retriever.from_settings(hash_settings, emb)
    home = Path(hash_settings.home)
    with retriever.pinned() as view:
        held = view.generation
        Indexer(hash_settings, emb).ingest([good_pdf(tmp_path / "b.pdf", tag="bravo")])
        Indexer(hash_settings, emb).ingest([good_pdf(tmp_path / "c.pdf", tag="charlie")])
        assert (home / held).is_dir()
        assert view.documents() and view.page_text(next(iter(view.documents())), 1) is not None
    Indexer(hash_settings, emb).ingest([good_pdf(tmp_path / "d.pdf", tag="delta")])
    assert not (home / held).exists()


def test_a_process_answering_questions_runs_blas_on_one_thread(hash_settings) -> None:
    """Opening a retriever sets numpy's BLAS to one thread for the process, and it stays so while questions run
    in several threads (a question's products are small; two threads made them slower, vectors.one_blas_thread)."""
    import subprocess
    import sys

    code = """
import sys, threading
from pathlib import Path
from threadpoolctl import threadpool_info
from arrival.index.build import Indexer
from arrival.index.embed import HashEmbedder
from arrival.index.retrieve import Retriever
from arrival.settings import load_settings
settings = load_settings(home=Path(sys.argv[1]), model="hash:256")
Indexer(settings, HashEmbedder(256)).ingest([Path(sys.argv[2])])
def blas():
    return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]})
print(blas())
r = Retriever.from_settings(settings, HashEmbedder(256))
seen = []
threads = [threading.Thread(target=lambda: seen.append([len(r.search("villes", k=3)), *blas()])) for _ in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
print(blas(), seen)
"""
    p = subprocess.run([sys.executable, "-c", code, str(hash_settings.home), str(DEMO)], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "OPENBLAS_NUM_THREADS": "2"})
    assert p.returncode == 0, p.stderr
    before, after = p.stdout.strip().splitlines()
    assert before == "[2]" and after == "[1] [[3, 1], [3, 1], [3, 1], [3, 1]]"
