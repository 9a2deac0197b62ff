"""Real PDFs on both backends (hash embedder, so it runs in seconds): the GFMD paper and three UN guidance PDFs of the
shared corpus indexed in the embedded folder and in a real PostgreSQL; the development questions about them asked
of both; and two processes on one database answering identically."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from arrival.assistant.answer import Assistant
from arrival.index.build import Indexer
from arrival.index.embed import HashEmbedder
from arrival.index.retrieve import Retriever
from arrival.ingest.clean import normalize_for_match
from arrival.settings import load_settings

from .conftest import ROOT, drop_database, new_database

EMB = HashEmbedder(256)
FILES = ["gfmd/gfmd-2019-rt3.1-villes-arrivee-fr.pdf", "gcm-guidance/en/objectives/1-DATA.pdf",
         "gcm-guidance/fr/objectifs/1 - DONNEES.pdf", "gcm-guidance/en/steps/Step 1 Kick-off/STEP 1 - KICK OFF.pdf"]


def _questions() -> list[dict[str, object]]:
    rows = [json.loads(line) for line in (ROOT / "eval" / "questions.jsonl").read_text().splitlines() if line.strip()]
    return [q for q in rows if q.get("answerable") and q.get("source") in FILES]


def _by_score(hits) -> tuple[list[float], set[str]]:  # type: ignore[no-untyped-def]
    """The scores in order, and the texts scoring above the last one. The same text twice (a box repeated on two
    pages of a UN PDF) has one vector; the two tie, and the retriever folds them under whichever comes first:
    FAISS and pgvector order equal distances differently."""
    scores = [round(h.score, 4) for h in hits]
    return scores, {h.text for h in hits if round(h.score, 4) > scores[-1]}


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, shared_corpus: Path, postgres_server):  # type: ignore[no-untyped-def]
    """(embedded settings, postgres settings), the same four PDFs indexed in each."""
    missing = [f for f in FILES if not (shared_corpus / f).is_file()]
    assert not missing, missing
    tmp = tmp_path_factory.mktemp("both")
    name = f"real_{uuid.uuid4().hex[:12]}"
    url = new_database(postgres_server, name)
    embedded = load_settings(home=tmp / "home", model="hash:256")
    pg = load_settings(home=tmp / "pg-home", model="hash:256", database_url=url)
    for s in (embedded, pg):
        report = Indexer(s, EMB).ingest([shared_corpus / f for f in FILES])
        assert [f.status for f in report.files] == ["indexed"] * len(FILES), [f.to_json() for f in report.files]
    yield embedded, pg
    drop_database(postgres_server, name)


def test_real_pdfs_give_the_same_top_results_on_both_backends(both):
    embedded, pg = (Retriever.from_settings(s, EMB) for s in both)
    with embedded.pinned() as a, pg.pinned() as b:
        assert [(c.chunk_id, c.text, c.page, c.lang) for c in a.iter_chunks()] == \
               [(c.chunk_id, c.text, c.page, c.lang) for c in b.iter_chunks()]
        assert a.languages == b.languages == ("en", "fr")
    questions = _questions()
    assert len(questions) >= 20
    top1 = overlap = found_a = found_b = 0
    for q in questions:
        text = str(q["question"])
        assert _by_score(embedded.search(text, k=10, mode="dense")) == _by_score(pg.search(text, k=10, mode="dense"))
        hits_a, hits_b = embedded.search(text, k=5), pg.search(text, k=5)  # the default (learned hybrid) ranker
        top1 += hits_a[0].chunk_id == hits_b[0].chunk_id
        overlap += len({h.chunk_id for h in hits_a} & {h.chunk_id for h in hits_b})
        quotes = [normalize_for_match(str(x)) for x in q["quotes"]]  # type: ignore[attr-defined]
        found_a += any(any(x in normalize_for_match(h.text) for x in quotes) for h in hits_a)
        found_b += any(any(x in normalize_for_match(h.text) for x in quotes) for h in hits_b)
    n = len(questions)
    # BM25 is analysed by PostgreSQL's Snowball configurations, not arrival's analyzer: the keyword channels differ
    # a little, the ranking on top of them hardly
    assert top1 >= 0.8 * n and overlap >= 0.8 * 5 * n, (top1, overlap, n)
    assert abs(found_a - found_b) <= 0.05 * n, (found_a, found_b, n)


def test_answers_work_unchanged_on_postgres(both):
    _, pg = both
    retriever = Retriever.from_settings(pg, EMB)
    assistant = Assistant(retriever)
    answered = 0
    for q in _questions()[:10]:
        a = assistant.ask(str(q["question"]))
        assert a.generation.startswith("pg-")
        with retriever.pinned() as view:
            docs = {d.path: d.doc_id for d in view.documents().values()}
            for c in a.citations:  # every quote is on its page
                pages = " ".join(view.page_text(docs[c.source], p) or "" for p in (c.page, c.page + 1))
                assert normalize_for_match(c.quote) in normalize_for_match(pages)
        answered += not a.refused
    assert answered >= 1


def _cli(pg, *args: str) -> object:  # type: ignore[no-untyped-def]
    env = {**os.environ, "ARRIVAL_DATABASE_URL": pg.database_url, "ARRIVAL_HOME": str(pg.home)}
    out = subprocess.run([sys.executable, "-m", "arrival.cli", *args, "--model", "hash:256", "--json", "-q"],
                         env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    return json.loads(out)


def test_two_processes_on_one_database_answer_identically(both):
    """Two servers share one database: another process (its own connections and caches) gives the same hits and
    the same answer, citations included, as this one."""
    _, pg = both
    retriever = Retriever.from_settings(pg, EMB)
    assistant = Assistant(retriever)
    for q in [str(q["question"]) for q in _questions()[:2]]:
        mine = [h.to_json() for h in retriever.search(q, k=pg.k, mode=pg.retriever)]
        assert _cli(pg, "search", q) == mine
        theirs = _cli(pg, "ask", q, "--mode", "extractive")
        here = assistant.ask(q, k=pg.k).to_json()
        assert theirs == here  # type: ignore[comparison-overlap]


def test_eval_runs_on_both_backends(both, tmp_path, monkeypatch, capsys):
    """`arrival eval --backend embedded|postgres` (answers judged too) on the questions about these PDFs."""
    from arrival.cli import main

    embedded, pg = both
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps(q) + "\n" for q in _questions()[:12]))
    monkeypatch.setenv("ARRIVAL_DATABASE_URL", pg.database_url)
    out = {}
    for backend, answers in (("embedded", ["--no-answers"]), ("postgres", [])):
        assert main(["eval", "--questions", str(qfile), "--backend", backend, "--json", "-q", "--model", "hash:256",
                     "--home", str(embedded.home), "--retriever", "all", "--allow-unsatisfiable", *answers]) == 0
        out[backend] = json.loads(capsys.readouterr().out)
    a, b = out["embedded"]["retrievers"], out["postgres"]["retrievers"]
    assert a["dense"]["n"] == b["dense"]["n"] >= 10
    for metric in ("recall@1", "recall@5", "recall@10", "mrr@10"):
        assert a["dense"][metric] == b["dense"][metric], metric
        assert abs(a["hybrid"][metric] - b["hybrid"][metric]) <= 0.1, (metric, a["hybrid"], b["hybrid"])
        assert abs(a["bm25"][metric] - b["bm25"][metric]) <= 0.2, (metric, a["bm25"], b["bm25"])
    assert out["postgres"]["answers"]["summary"]["answerable"]["n"] == b["hybrid"]["n"]
