"""`arrival eval`: question files, the relevance rule, ranx metrics, the run file, the report and the CLI."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arrival.eval.metrics import mean_metrics, per_question
from arrival.eval.relevance import (
    Question,
    QuestionFileError,
    RelevanceJudge,
    load_questions,
    parse_questions,
    scan_coverage,
    source_matches,
    straddles,
)
from arrival.eval.report import markdown_table, write_report
from arrival.eval.runner import evaluate
from arrival.index.build import Indexer
from arrival.index.embed import HashEmbedder
from arrival.index.retrieve import Retriever
from arrival.ingest.clean import normalize_for_match
from arrival.settings import load_settings
from arrival.types import Hit

from .conftest import DEMO

EN_QUOTE = "The rapid population growth in Deir Alla entails infrastructural challenges"
SOURCE = "corpus/gfmd-2019-rt3.1-villes-arrivee-fr.pdf"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("eval") / "home"
    settings = load_settings(home=home, model="hash:256")
    report = Indexer(settings, HashEmbedder(256)).ingest([DEMO])
    assert not report.failed
    retriever = Retriever.from_settings(settings, HashEmbedder(256))
    return settings, retriever


def _hit(snap, row: int, rank: int = 1) -> Hit:  # type: ignore[no-untyped-def]
    c = snap.chunks([row])[0]
    return Hit(rank=rank, score=1.0, chunk_id=c.chunk_id, text=c.text, source=c.source, title=c.title,
               page=c.page, page_end=c.page_end, lang=c.lang, doc_id=c.doc_id)


def _q(qid: str = "q", **kw) -> Question:  # type: ignore[no-untyped-def]
    return Question(id=qid, question=kw.pop("question", "question?"), lang=kw.pop("lang", "fr"), **kw)


def _straddle_case(snap):  # type: ignore[no-untyped-def]
    """A quote cut by the boundary between two neighbouring chunks of one page: 70 chars before, 30 after."""
    rows = snap.db.execute("SELECT row, doc_id, page, page_end FROM chunks ORDER BY row").fetchall()
    all_norm = [normalize_for_match(t) for (t,) in snap.db.execute("SELECT text FROM chunks ORDER BY row")]
    for (r1, d1, p1, e1), (r2, d2, p2, _e2) in itertools.pairwise(rows):
        if not (d1 == d2 and p1 == e1 == p2):
            continue
        a, b = all_norm[r1], all_norm[r2]
        page = normalize_for_match(snap.page_text(d1, p1))
        end = page.find(a[-80:])
        if end < 0 or len(a) < 100 or len(b) < 100:
            continue
        end += 80
        quote = page[end - 70:end + 31].strip()
        if quote in a or quote in b or any(quote in t for t in all_norm):
            continue
        return r1, r2, quote
    raise AssertionError("no chunk boundary without overlap in the demo PDF")


# -- question files ------------------------------------------------------------------------------------------
def test_question_file_parsing(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text("\n".join([
        json.dumps({"id": "a", "question": "Q1?", "lang": "fr", "quote": "x y", "extra": 1}),
        "",
        json.dumps({"id": "b", "question": "Q2?", "lang": "en", "quote": "one", "quotes": ["two"]}),
        json.dumps({"id": "c", "question": "Q3?", "lang": "en", "source": "a/b.pdf", "page": 3}),
        json.dumps({"id": "d", "question": "Q4?", "lang": "fr", "quotes": []}),
        json.dumps({"id": "e", "question": "Q5?", "lang": "fr", "quote": "z", "answerable": False}),
    ]) + "\n")
    qs = {q.id: q for q in load_questions(f)}
    assert qs["a"].quotes == ("x y",) and qs["a"].answerable and qs["a"].line == 1
    assert qs["b"].quotes == ("one", "two")
    assert qs["c"].judged_by_page and qs["c"].answerable
    assert not qs["d"].answerable and not qs["e"].answerable


@pytest.mark.parametrize("line, reason", [
    ("{not json", "not valid JSON"),
    ('{"id": "b", "question": "Q?", "lang": "de", "quote": "x"}', "'lang' must be one of fr, en"),
    ('{"id": "b", "lang": "fr", "quote": "x"}', "'question' must be a non-empty string"),
    ('{"id": "a", "question": "Q?", "lang": "fr", "quote": "x"}', "duplicate id 'a' (first on line 1)"),
    ('{"id": "b", "question": "Q?", "lang": "fr", "page": 0, "source": "x.pdf"}', "'page' must be a positive"),
    ('{"id": "b", "question": "Q?", "lang": "fr", "answerable": true}', "needs 'quote'/'quotes'"),
    ('["a"]', "expected a JSON object"),
])
def test_bad_line_names_file_and_line(tmp_path, line, reason):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"id": "a", "question": "Q?", "lang": "fr", "quote": "x"}) + "\n" + line + "\n")
    with pytest.raises(QuestionFileError) as err:
        load_questions(f)
    assert str(err.value).startswith(f"{f}:2: ") and reason in str(err.value)
    assert err.value.line == 2


def test_missing_or_empty_question_file(tmp_path):
    with pytest.raises(QuestionFileError, match="not found"):
        load_questions(tmp_path / "nope.jsonl")
    with pytest.raises(QuestionFileError, match="no questions"):
        parse_questions(["", "  "], "empty.jsonl")


# -- relevance -----------------------------------------------------------------------------------------------
def test_source_suffix_match():
    assert source_matches("../shared/corpus/gfmd/x.pdf", "gfmd/x.pdf")
    assert source_matches("/abs/gfmd/x.pdf", "x.pdf")
    assert source_matches("corpus\\gfmd\\x.pdf", "gfmd/x.pdf")
    assert not source_matches("../shared/corpus/gfmd/bx.pdf", "x.pdf")
    assert not source_matches("other/x.pdf", "gfmd/x.pdf")
    assert not source_matches("x.pdf", "")


def test_straddles_rule():
    quote = "abcdefghij"  # 10 chars: 6 needed
    assert straddles("zzz abcdef", quote, "zzz abcdefghij yyy")
    assert straddles("efghij yyy", quote, "zzz abcdefghij yyy")
    assert not straddles("zzz abcde", quote, "zzz abcdefghij yyy")  # 50 % only
    assert not straddles("zzz abcdef", quote, "abcdef only")  # quote not on the page
    assert straddles("abcdefgh", quote, "abcdefghij")  # passage wholly inside the quote
    # The passage ends with the quote's last 60 % (a heading), but the quote itself sits further down the page.
    assert not straddles("intro efghij", quote, "intro efghij then text abcdefghij")
    # Passage not found verbatim in the pages: fall back to anchored ends.
    assert straddles("qqq abcdefg", quote, "zzz abcdefghij") and not straddles("abcdefg qqq", quote, "abcdefghij")


def test_quote_inside_and_normalisation(index):
    _settings, retriever = index
    snap = retriever.snapshot()
    judge = RelevanceJudge(snap)
    row = snap.db.execute("SELECT row FROM chunks WHERE text LIKE '%Deir Alla entails%' ORDER BY row").fetchone()[0]
    hit = _hit(snap, row)
    q = _q(lang="en", quotes=("THE RAPID   population growth\nin Deir Alla entails infrastructural challenges",))
    assert judge.kind(q, hit) == "quote"
    other = _hit(snap, 0)
    assert judge.kind(q, other) is None
    assert judge.kind(_q(quotes=(EN_QUOTE,), answerable=False), hit) is None


def test_straddling_quote(index):
    _settings, retriever = index
    snap = retriever.snapshot()
    r1, r2, quote = _straddle_case(snap)
    judge = RelevanceJudge(snap)
    q = _q(quotes=(quote,))
    assert judge.kind(q, _hit(snap, r1)) == "straddle"  # holds the quote's first 70 %
    assert judge.kind(q, _hit(snap, r2)) is None  # holds only its last 30 %
    assert RelevanceJudge().kind(q, _hit(snap, r1)) is None  # without pages, whole quotes only
    cov = scan_coverage(snap, [q]).coverage["q"]
    assert cov.chunks == 0 and cov.pages == 1 and cov.satisfiable and cov.doc_lang == "fr"


def test_source_page_fallback(index):
    _settings, retriever = index
    snap = retriever.snapshot()
    judge = RelevanceJudge(snap)
    rows = dict(snap.db.execute("SELECT page, row FROM chunks ORDER BY row DESC").fetchall())  # first row per page
    q = _q(lang="en", source="gfmd-2019-rt3.1-villes-arrivee-fr.pdf", page=16)
    assert judge.kind(q, _hit(snap, rows[16])) == "page"
    assert judge.kind(q, _hit(snap, rows[6])) is None
    wrong = _q(lang="en", source="elsewhere/gfmd-2019-rt3.1-villes-arrivee-fr.pdf", page=16)
    assert judge.kind(wrong, _hit(snap, rows[16])) is None
    scan = scan_coverage(snap, [q, _q("w", lang="en", source="nope.pdf", page=2)])
    assert scan.coverage["q"].doc_lang == "en" and scan.coverage["q"].chunks >= 1
    assert not scan.coverage["w"].satisfiable and any("nope.pdf p.2 not found" in w for w in scan.warnings)


def test_coverage_languages_and_missing(index):
    _settings, retriever = index
    snap = retriever.snapshot()
    qs = [_q("fr", quotes=("guichet unique",)), _q("en", lang="fr", quotes=(EN_QUOTE,)),
          _q("mix", lang="en", quotes=("guichet unique", EN_QUOTE)), _q("none", quotes=("pas dans ce document",))]
    scan = scan_coverage(snap, qs)
    assert scan.coverage["fr"].doc_lang == "fr" and scan.coverage["en"].doc_lang == "en"
    assert scan.coverage["mix"].doc_lang == "mixed"
    assert scan.coverage["none"].missing == ("pas dans ce document",) and not scan.coverage["none"].satisfiable
    assert any(w.startswith("none: ") and "not found" in w for w in scan.warnings)


# -- metrics -------------------------------------------------------------------------------------------------
def test_hand_computed_metrics():
    judged = {
        "q1": [("a", True), ("b", False), ("c", False)],  # first relevant at rank 1
        "q2": [("d", False), ("e", False), ("f", True)],  # rank 3
        "q3": [("g", False), ("h", False)],  # none
    }
    scores = per_question(judged)
    m = mean_metrics(scores)
    assert m["n"] == 3
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3 + 0) / 3)  # 0.4444
    assert m["recall@1"] == pytest.approx(1 / 3)
    assert m["recall@5"] == pytest.approx(2 / 3)
    assert m["recall@10"] == pytest.approx(2 / 3)
    assert scores["q2"]["ndcg@10"] == pytest.approx(0.5)  # 1 / log2(4)
    assert scores["q3"] == {k: 0.0 for k in scores["q3"]}
    assert mean_metrics(scores, ["q2"])["recall@1"] == 0.0 and mean_metrics(scores, [])["n"] == 0


def test_metrics_follow_ranks_not_scores():
    # Two hits: the relevant one second. Rank-derived run scores keep it second whatever the retriever said.
    s = per_question({"q": [("x", False), ("y", True)]})
    assert s["q"]["mrr@10"] == pytest.approx(0.5)
    assert per_question({"q": []})["q"]["recall@10"] == 0.0


# -- runner, run file, report -------------------------------------------------------------------------------
def _questions() -> list[Question]:
    return [
        _q("fr1", question="guichet unique Lisbonne", quotes=("guichet unique",)),
        _q("en1", lang="en", question="Deir Alla population growth waste disposal", quotes=(EN_QUOTE,)),
        _q("x1", question="croissance démographique Deir Alla", quotes=(EN_QUOTE,)),
        _q("p1", lang="en", question="Youth College Madrid mentoring", source=SOURCE, page=16),
        _q("u1", lang="en", question="What is the capital of Mongolia?", answerable=False),
        _q("m1", question="Tombouctou", quotes=("cette phrase n'existe nulle part",)),
    ]


def test_evaluate_and_run_file(index, tmp_path):
    _settings, retriever = index
    res = evaluate(retriever, _questions(), k=12, modes=("bm25", "hybrid"))
    assert res.k == 12 and res.modes == ("bm25", "hybrid")
    c = res.counts()
    assert c == {"questions": 6, "answerable": 5, "unanswerable": 1, "evaluated": 4, "unsatisfiable": 1,
                 "by_pair": {"fr→fr": 1, "en→en": 2, "fr→en": 1}}
    assert res.pairs["x1"] == "fr→en" and res.pairs["u1"] is None
    bm25 = res.results["bm25"]
    assert bm25.metrics["n"] == 4 and set(bm25.by_pair) == {"en→en", "fr→fr", "fr→en"}
    assert res.ranks("bm25")["fr1"] == 1 and "u1" not in res.ranks("bm25")
    assert 0 <= bm25.metrics["recall@1"] <= bm25.metrics["recall@5"] <= bm25.metrics["recall@10"] <= 1
    assert any("m1: cannot be satisfied" in w for w in res.warnings)

    out = res.write_run(tmp_path / "sub" / "run.jsonl")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 2 * 6
    assert [(x["retriever"], x["id"]) for x in lines[:2]] == [("bm25", "fr1"), ("bm25", "en1")]
    first = lines[0]
    assert set(first) >= {"id", "retriever", "hits", "top_score"}
    assert 1 <= len(first["hits"]) <= 12  # bm25 returns only passages sharing a term
    assert set(first["hits"][0]) >= {"rank", "score", "text", "source", "page"}
    hybrid = next(x for x in lines if x["retriever"] == "hybrid" and x["id"] == "fr1")
    assert [h["rank"] for h in hybrid["hits"]] == list(range(1, 13))
    assert hybrid["hits"][0]["relevant"] is True and hybrid["first_relevant_rank"] == 1
    unans = next(x for x in lines if x["id"] == "u1" and x["retriever"] == "hybrid")
    assert unans["answerable"] is False and isinstance(unans["top_score"], float)

    data = res.to_json()
    assert data["questions"] == 6 and set(data["retrievers"]) == {"bm25", "hybrid"}
    assert set(data["retrievers"]["hybrid"]) >= {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10",
                                                 "by_pair", "n"}
    assert data["retrievers"]["hybrid"]["top_score"]["unanswerable"]["n"] == 1
    json.dumps(data)


def test_report_files(index, tmp_path):
    _settings, retriever = index
    res = evaluate(retriever, _questions(), modes=("bm25", "dense", "hybrid"))
    table = markdown_table(res)
    head, _rule, *rows = table.strip().splitlines()
    assert head.startswith("| Retriever | R@1 | R@5 | R@10 | MRR@10 | nDCG@10 | en→fr R@5 | fr→en R@5 |")
    assert [r.split("|")[1].strip() for r in rows] == ["bm25", "dense", "hybrid"]
    assert rows[0].split("|")[7].strip() == "–"  # no en→fr question
    files = write_report(res, tmp_path / "report")
    assert files.markdown.suffix == ".md" and "| Retriever |" in files.markdown.read_text()
    assert files.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- command line --------------------------------------------------------------------------------------------
def _run(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARRIVAL_HOME": str(home), "ARRIVAL_MODEL": "hash:256"}
    return subprocess.run([sys.executable, "-m", "arrival.cli", "eval", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_eval_json_output_and_errors(index, tmp_path):
    settings, _retriever = index
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("\n".join(json.dumps({
        "id": q.id, "question": q.question, "lang": q.lang, "quotes": list(q.quotes), "source": q.source,
        "page": q.page, "answerable": q.answerable}) for q in _questions()) + "\n")
    strict = _run(["--questions", str(qfile), "--json"], settings.home)
    assert strict.returncode == 1 and strict.stdout == ""
    assert "1 question(s) cannot be satisfied in this index" in strict.stderr and "m1" in strict.stderr
    p = _run(["--questions", str(qfile), "--retriever", "all", "-k", "10", "--json", "--allow-unsatisfiable",
              "--output", str(tmp_path / "run.jsonl"), "--report", str(tmp_path / "rep")], settings.home)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["questions"] == 6 and set(out["retrievers"]) == {"bm25", "dense", "fusion", "hybrid"}
    assert isinstance(out["seconds"], float)
    hybrid = out["retrievers"]["hybrid"]
    assert hybrid["n"] == 4 and "fr→en" in hybrid["by_pair"] and 0 <= hybrid["mrr@10"] <= 1
    assert len((tmp_path / "run.jsonl").read_text().splitlines()) == 4 * 6
    answers = out["answers"]
    judged = answers["questions"]
    unanswerable = sum(not q.answerable for q in _questions())
    assert sum(j["group"] != "answerable" for j in judged) == unanswerable
    assert sum(j["group"] == "answerable" for j in judged) == hybrid["n"]
    summary = answers["summary"]
    assert summary["answerable"]["n"] == hybrid["n"]
    for j in judged:  # the first citation can only hold the answer when something was cited
        assert not j["first_ok"] or (j["citations"] >= 1 and not j["refused"])
    assert 0 <= summary["answerable"]["first_citation"] <= summary["answerable"]["any_citation"] <= 1
    assert "## Answers" in (tmp_path / "rep" / "eval.md").read_text()
    assert Path(out["plot"]).read_bytes()[:4] == b"\x89PNG"



def test_cli_eval_plain_and_bad_file(index, tmp_path, capsys):
    from arrival.cli import main

    settings, _retriever = index
    qfile = tmp_path / "q.jsonl"
    rows = [{"id": q.id, "question": q.question, "lang": q.lang, "quotes": list(q.quotes)} for q in _questions()[:3]]
    qfile.write_text("".join(json.dumps(r) + "\n" for r in rows))
    flags = ["--home", str(settings.home), "--model", "hash:256"]
    assert main(["eval", "--questions", str(qfile), "--retriever", "bm25", *flags]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("| Retriever |") and "| bm25 |" in out.out and "3 evaluated" in out.out

    bad = tmp_path / "bad.jsonl"
    bad.write_text(qfile.read_text() + '{"id": "zz", "question": "?", "lang": "xx"}\n')
    assert main(["eval", "--questions", str(bad), "--json", *flags]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.strip() == f"arrival: {bad}:4: 'lang' must be one of fr, en, got 'xx'"


def test_default_question_file_is_packaged():
    from arrival.eval.cli import default_questions

    path = default_questions()
    assert path.name == "questions.jsonl" and path.parent.name == "eval"
