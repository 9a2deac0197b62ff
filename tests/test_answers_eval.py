"""Answer-level evaluation (`arrival.eval.answers`): values computed by hand on a tiny set."""

from __future__ import annotations

import pytest

from arrival.eval.answers import AnswerResult, judge_answer, markdown_table
from arrival.eval.relevance import Question, RelevanceJudge
from arrival.types import Answer, Citation


def _cite(n: int, quote: str, passage: str) -> Citation:
    return Citation(n, "T", "t.pdf", 1, quote, passage, "en", f"c{n}", doc_id="d")


def _answer(q: Question, *cites: Citation, refused: bool = False) -> Answer:
    return Answer(q.question, "", q.lang, refused, tuple(cites), ())


Q1 = Question("a1", "Which city?", "en", quotes=("Malaga keeps services open",))
Q2 = Question("a2", "Quelle ville ?", "fr", quotes=("guichet unique de Lisbonne",))
Q3 = Question("a3", "What else?", "en", quotes=("the answer text",))
N1 = Question("n1", "Budget of X?", "en", answerable=False, kind="near-miss")
N2 = Question("n2", "Capital of Australia?", "en", answerable=False, kind="off-topic")


def _result() -> AnswerResult:
    judge = RelevanceJudge(None)
    return AnswerResult([
        # first citation right (in its passage), second wrong: first 1, any 1, precision 1/2, 2 citations
        judge_answer(Q1, _answer(Q1, _cite(1, "Quote.", "x Malaga keeps services open y"), _cite(2, "No.", "z")),
                     judge, "en→en", 0.010),
        # first wrong, second right (in its quote): first 0, any 1, precision 1/2
        judge_answer(Q2, _answer(Q2, _cite(1, "Non.", "w"), _cite(2, "le guichet unique de Lisbonne ouvre", "v")),
                     judge, "fr→fr", 0.020),
        # wrongly refused: first 0, any 0, no precision, no citations counted
        judge_answer(Q3, _answer(Q3, refused=True), judge, "en→en", 0.030),
        judge_answer(N1, _answer(N1, refused=True), judge, None, 0.040),
        judge_answer(N2, _answer(N2, _cite(1, "Canberra.", "q")), judge, None, 0.050),
    ])


def test_summary_values_by_hand():
    s = _result().summary()
    a = s["answerable"]
    assert a["n"] == 3
    assert a["first_citation"] == pytest.approx(1 / 3)
    assert a["any_citation"] == pytest.approx(2 / 3)
    assert a["citation_precision"] == pytest.approx(0.5)  # mean of 1/2 and 1/2 over the two answered questions
    assert a["citations_per_answer"] == pytest.approx(2.0)
    assert a["wrongly_refused"] == pytest.approx(1 / 3)
    assert s["by_pair"]["en→en"]["first_citation"] == pytest.approx(0.5)
    assert s["by_pair"]["fr→fr"]["first_citation"] == 0.0
    assert s["unanswerable"] == {"near-miss": {"n": 1, "refused": 1.0}, "off-topic": {"n": 1, "refused": 0.0}}
    # refusals: Q3 (answerable) and N1 (unanswerable) refused -> precision 1/2; 1 of 2 unanswerable refused
    assert s["refusal"] == {"precision": 0.5, "recall": 0.5}


def test_markdown_table_has_a_row_per_pair_and_group():
    table = markdown_table(_result())
    rows = [r for r in table.splitlines() if r.startswith("| ") and not r.startswith("| questions")]
    assert [r.split("|")[1].strip() for r in rows] == ["answerable", "en→en", "fr→fr", "near-miss (refused)",
                                                       "off-topic (refused)"]
    assert "| answerable | 0.333 | 0.667 | 0.500 | 2.00 | 33.3% | 3 |" in table
