"""Answer-level evaluation: what a reader sees in an answer, not only where the passages rank.

For each answerable question: was it refused (wrongly), does the first citation hold a gold quote (in its quote or
in the passage it was taken from), the share of its citations whose passage holds a gold quote (citation
precision), and how many citations it gives. For each unanswerable question: was it refused, by group
(`near-miss`: the documents' own places and programmes, asking for a fact no page gives; `off-topic`; other).
Everything per language pair (question→documents) as in the retrieval table.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from arrival.eval.metrics import PAIRS
from arrival.eval.relevance import Question, RelevanceJudge
from arrival.ingest.clean import normalize_for_match
from arrival.types import Answer, Citation

GROUPS = ("near-miss", "off-topic", "unanswerable")


@dataclass(frozen=True)
class AnswerJudgement:
    id: str
    pair: str | None  # language pair for answerable questions; None for unanswerable ones
    group: str  # "answerable" or one of GROUPS
    refused: bool
    citations: int
    first_ok: bool  # the first citation holds a gold quote (False when refused or nothing cited)
    any_ok: bool
    precision: float | None  # share of citations holding a gold quote (None when nothing cited)
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "pair": self.pair, "group": self.group, "refused": self.refused,
                "citations": self.citations, "first_ok": self.first_ok, "any_ok": self.any_ok,
                "precision": self.precision, "seconds": round(self.seconds, 4)}


def unanswerable_group(q: Question) -> str:
    return q.kind if q.kind in GROUPS else "unanswerable"


def citation_holds(q: Question, c: Citation, judge: RelevanceJudge) -> bool:
    """A citation answers when a gold quote is in its quote or in the passage it was taken from (whole, or cut by
    the passage boundary as `RelevanceJudge` allows)."""
    quotes = judge.quotes(q)
    text = normalize_for_match(c.quote) + "\n" + normalize_for_match(c.passage)
    if any(x in text for x in quotes):
        return True
    return judge.relevant(q, _as_hit(c))


def _as_hit(c: Citation) -> Any:
    from arrival.types import Hit

    return Hit(rank=c.n, score=0.0, chunk_id=c.chunk_id, text=c.passage, source=c.source, title=c.title,
               page=c.page, page_end=c.page_end or c.page, lang=c.lang, doc_id=c.doc_id)


def judge_answer(q: Question, answer: Answer, judge: RelevanceJudge, pair: str | None, seconds: float
                 ) -> AnswerJudgement:
    ok = [citation_holds(q, c, judge) for c in answer.citations] if q.answerable else []
    return AnswerJudgement(
        id=q.id, pair=pair if q.answerable else None,
        group="answerable" if q.answerable else unanswerable_group(q),
        refused=answer.refused, citations=len(answer.citations),
        first_ok=bool(ok) and ok[0] and not answer.refused, any_ok=any(ok) and not answer.refused,
        precision=(sum(ok) / len(ok)) if ok else None, seconds=seconds)


@dataclass
class AnswerResult:
    judgements: list[AnswerJudgement]

    def _answerable(self, pair: str | None = None) -> list[AnswerJudgement]:
        return [j for j in self.judgements if j.group == "answerable" and (pair is None or j.pair == pair)]

    @staticmethod
    def _summary(js: Sequence[AnswerJudgement]) -> dict[str, float | int | None]:
        if not js:
            return {"n": 0}
        answered = [j for j in js if not j.refused]
        precisions = [j.precision for j in answered if j.precision is not None]
        return {
            "n": len(js),
            "first_citation": sum(j.first_ok for j in js) / len(js),
            "any_citation": sum(j.any_ok for j in js) / len(js),
            "citation_precision": statistics.fmean(precisions) if precisions else None,
            "citations_per_answer": statistics.fmean(j.citations for j in answered) if answered else None,
            "wrongly_refused": sum(j.refused for j in js) / len(js),
        }

    def summary(self) -> dict[str, Any]:
        """Answerable questions overall and per pair; refusal rate per unanswerable group; refusal precision and
        recall (a refusal is right when the question is unanswerable)."""
        pairs = sorted({j.pair for j in self._answerable() if j.pair},
                       key=lambda p: PAIRS.index(p) if p in PAIRS else len(PAIRS))
        out: dict[str, Any] = {"answerable": self._summary(self._answerable()),
                               "by_pair": {p: self._summary(self._answerable(p)) for p in pairs}}
        groups: dict[str, dict[str, float | int]] = {}
        for g in GROUPS:
            js = [j for j in self.judgements if j.group == g]
            if js:
                groups[g] = {"n": len(js), "refused": sum(j.refused for j in js) / len(js)}
        out["unanswerable"] = groups
        refused = [j for j in self.judgements if j.refused]
        unans = [j for j in self.judgements if j.group != "answerable"]
        right = sum(j.group != "answerable" for j in refused)
        out["refusal"] = {
            "precision": right / len(refused) if refused else None,
            "recall": right / len(unans) if unans else None,
        }
        seconds = sorted(j.seconds for j in self.judgements)
        if seconds:
            out["ms_p50"] = round(1000 * seconds[len(seconds) // 2], 1)
            out["ms_p95"] = round(1000 * seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))], 1)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary(), "questions": [j.to_json() for j in self.judgements]}


def evaluate_answers(assistant: Any, questions: Sequence[Question], judge: RelevanceJudge,
                     pairs: dict[str, str | None], progress: Callable[[int, int], None] | None = None
                     ) -> AnswerResult:
    """Ask every question (answerable ones that the index can satisfy, and unanswerable ones) and judge."""
    out: list[AnswerJudgement] = []
    chosen = [q for q in questions if not q.answerable or pairs.get(q.id) is not None]
    if chosen:  # warm up outside the timings
        assistant.ask(chosen[0].question)
    for i, q in enumerate(chosen):
        t = time.perf_counter()
        answer = assistant.ask(q.question)
        out.append(judge_answer(q, answer, judge, pairs.get(q.id), time.perf_counter() - t))
        if progress:
            progress(i + 1, len(chosen))
    return AnswerResult(out)


def markdown_table(result: AnswerResult) -> str:
    """One row overall and one per language pair; then the unanswerable groups."""
    s = result.summary()
    head = ["questions", "first citation", "any citation", "citation precision", "citations/answer",
            "wrongly refused", "n"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]

    def cell(v: Any, pct: bool = False) -> str:
        return "–" if v is None else (f"{v:.3f}" if not pct else f"{v:.1%}")

    rows = [("answerable", s["answerable"]), *s["by_pair"].items()]
    for name, m in rows:
        if not m.get("n"):
            continue
        lines.append(f"| {name} | {cell(m['first_citation'])} | {cell(m['any_citation'])} | "
                     f"{cell(m['citation_precision'])} | "
                     f"{'–' if m['citations_per_answer'] is None else format(m['citations_per_answer'], '.2f')} | "
                     f"{cell(m['wrongly_refused'], True)} | {m['n']} |")
    for g, m in s["unanswerable"].items():
        lines.append(f"| {g} (refused) | | | | | {cell(m['refused'], True)} | {m['n']} |")
    return "\n".join(lines) + "\n"
