"""Run a question set through one or more retrievers, judge the hits and compute the metrics."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arrival.eval.metrics import by_group, first_relevant_rank, mean_metrics, per_question, recall_curve
from arrival.eval.relevance import Coverage, Question, RelevanceJudge, language_pair, scan_coverage
from arrival.types import Hit

if TYPE_CHECKING:
    from arrival.eval.answers import AnswerResult
    from arrival.index.retrieve import Retriever

MODES = ("bm25", "dense", "fusion", "hybrid")
METRIC_K = 10

Progress = Callable[[int, int], None]


@dataclass
class QuestionResult:
    """One question through one retriever."""

    id: str
    mode: str
    lang: str
    answerable: bool
    pair: str | None
    hits: list[Hit]
    kinds: list[str | None]  # per hit: "quote" | "straddle" | "page" | None
    seconds: float

    @property
    def relevant(self) -> list[bool]:
        return [k is not None for k in self.kinds]

    @property
    def first_rank(self) -> int | None:
        return first_relevant_rank(self.relevant)

    @property
    def top_score(self) -> float | None:
        return self.hits[0].score if self.hits else None

    def to_json(self) -> dict[str, Any]:
        """One line of the --output run file."""
        return {
            "id": self.id,
            "retriever": self.mode,
            "lang": self.lang,
            "answerable": self.answerable,
            "pair": self.pair,
            "first_relevant_rank": self.first_rank,
            "top_score": None if self.top_score is None else round(self.top_score, 6),
            "seconds": round(self.seconds, 4),
            "hits": [
                {"rank": h.rank, "score": round(h.score, 6), "text": h.text, "source": h.source, "page": h.page,
                 "page_end": h.page_end, "lang": h.lang, "chunk_id": h.chunk_id, "relevant": kind is not None,
                 "match": kind}
                for h, kind in zip(self.hits, self.kinds, strict=True)
            ],
        }


@dataclass
class ModeResult:
    mode: str
    metrics: dict[str, float]  # mean over the evaluated questions, with "n"
    by_pair: dict[str, dict[str, float]]
    per_question: dict[str, dict[str, float]]
    seconds: float  # time spent in retrieval for all questions (answerable or not)
    queries: int

    @property
    def curve(self) -> list[float | None]:
        return recall_curve(self.metrics)

    def pair_curve(self, pair: str) -> list[float | None]:
        return recall_curve(self.by_pair.get(pair, {}))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: _round(v) for k, v in self.metrics.items()}
        out["by_pair"] = {p: {k: _round(v) for k, v in m.items()} for p, m in self.by_pair.items()}
        out["ms_per_query"] = round(1000 * self.seconds / self.queries, 2) if self.queries else None
        return out


@dataclass
class EvalResult:
    k: int
    modes: tuple[str, ...]
    questions: list[Question]
    coverage: dict[str, Coverage]
    pairs: dict[str, str | None]  # question id -> language pair (None: not evaluated)
    results: dict[str, ModeResult]
    runs: dict[str, list[QuestionResult]]  # mode -> results in question order (unanswerable included)
    evaluated: list[str]  # ids of the questions the metrics are computed on
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    answers: AnswerResult | None = None  # the extractive assistant's answers, judged (`eval.answers`)

    @property
    def default_mode(self) -> str:
        return "hybrid" if "hybrid" in self.modes else self.modes[0]

    def ranks(self, mode: str) -> dict[str, int | None]:
        """Rank of the first relevant hit per answerable question (None: not in the top k)."""
        return {r.id: r.first_rank for r in self.runs[mode] if r.answerable}

    def counts(self) -> dict[str, Any]:
        answerable = [q for q in self.questions if q.answerable]
        pairs: dict[str, int] = {}
        for qid in self.evaluated:
            p = self.pairs.get(qid)
            if p is not None:
                pairs[p] = pairs.get(p, 0) + 1
        return {
            "questions": len(self.questions),
            "answerable": len(answerable),
            "unanswerable": len(self.questions) - len(answerable),
            "evaluated": len(self.evaluated),
            "unsatisfiable": len(answerable) - len(self.evaluated),
            "by_pair": pairs,
        }

    def top_scores(self, mode: str) -> dict[str, dict[str, float]]:
        """Top-1 scores of answerable vs unanswerable questions: material for calibrating refusals."""
        out: dict[str, dict[str, float]] = {}
        for label, want in (("answerable", True), ("unanswerable", False)):
            s = [r.top_score for r in self.runs[mode] if r.answerable is want and r.top_score is not None]
            if s:
                out[label] = {"min": round(min(s), 6), "median": round(statistics.median(s), 6),
                              "max": round(max(s), 6), "n": len(s)}
        return out

    def to_json(self) -> dict[str, Any]:
        counts = self.counts()
        retrievers = {}
        for mode, res in self.results.items():
            data = res.to_json()
            data["top_score"] = self.top_scores(mode)
            retrievers[mode] = data
        return {
            "questions": counts["questions"],
            "counts": counts,
            "k": self.k,
            "retrievers": retrievers,
            "ranks": {mode: self.ranks(mode) for mode in self.modes},
            "answers": None if self.answers is None else self.answers.to_json(),
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
        }

    def run_lines(self) -> list[dict[str, Any]]:
        return [r.to_json() for mode in self.modes for r in self.runs[mode]]

    def write_run(self, path: str | Path) -> Path:
        """The --output file: one JSON line per question and retriever."""
        p = Path(path)
        if p.parent != Path():
            p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", encoding="utf-8") as fh:
            for line in self.run_lines():
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        return p


def _round(v: float) -> float | int:
    return v if isinstance(v, int) else round(v, 4)


def evaluate(retriever: Retriever, questions: Sequence[Question], k: int = METRIC_K,
             modes: Sequence[str] = ("hybrid",), progress: Progress | None = None,
             use_question_lang: bool = False) -> EvalResult:
    """Search every question with every mode (at least `METRIC_K` hits), judge, and compute the metrics.

    Unanswerable questions are searched too (their top scores feed refusal calibration) but left out of the
    metrics, as are answerable questions whose quotes this index does not contain (see `scan_coverage`) and
    none of whose hits is relevant. `use_question_lang` passes the file's language to the retriever instead
    of letting it detect the query language as `arrival search` does.
    """
    t0 = time.perf_counter()
    modes = tuple(dict.fromkeys(modes))
    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown retriever {m!r}: choose from {', '.join(MODES)}")
    if not modes:
        raise ValueError("no retriever to evaluate")
    depth = max(int(k), METRIC_K)
    snap = retriever.snapshot()
    scan = scan_coverage(snap, questions)
    judge = RelevanceJudge(snap)
    pairs = {q.id: language_pair(q, scan.coverage[q.id]) if q.answerable else None for q in questions}
    runs: dict[str, list[QuestionResult]] = {m: [] for m in modes}
    seconds = dict.fromkeys(modes, 0.0)
    total, done = len(questions) * len(modes), 0
    for mode in modes:
        if questions:  # warm up (model load, first-query costs) outside the timings
            retriever.search(questions[0].question, k=1, mode=mode)
        for q in questions:
            t = time.perf_counter()
            hits = retriever.search(q.question, k=depth, mode=mode,
                                    query_lang=q.lang if use_question_lang else None)
            dt = time.perf_counter() - t
            seconds[mode] += dt
            kinds = [judge.kind(q, h) for h in hits]
            runs[mode].append(QuestionResult(q.id, mode, q.lang, q.answerable, pairs[q.id], hits, kinds, dt))
            done += 1
            if progress:
                progress(done, total)
    found_any = {r.id for rs in runs.values() for r in rs if r.first_rank is not None}
    evaluated = [q.id for q in questions
                 if q.answerable and (scan.coverage[q.id].satisfiable or q.id in found_any)]
    warnings = list(scan.warnings)
    for q in questions:
        if q.answerable and pairs[q.id] is None and q.id in found_any:
            # Only straddling hits found it: take the language from those passages.
            langs = frozenset(h.lang for rs in runs.values() for r in rs if r.id == q.id
                              for h, rel in zip(r.hits, r.relevant, strict=True) if rel and h.lang)
            pairs[q.id] = language_pair(q, Coverage(langs))
            for r in (r for rs in runs.values() for r in rs if r.id == q.id):
                r.pair = pairs[q.id]
    chosen = set(evaluated)
    warnings.extend(f"{q.id}: cannot be satisfied in this index; left out of the metrics"
                    for q in questions if q.answerable and q.id not in chosen)
    groups = {qid: pairs[qid] for qid in evaluated}
    results: dict[str, ModeResult] = {}
    for mode in modes:
        judged = {r.id: [(h.chunk_id, rel) for h, rel in zip(r.hits[:METRIC_K], r.relevant, strict=False)]
                  for r in runs[mode] if r.id in chosen}
        scores = per_question(judged)
        results[mode] = ModeResult(mode, mean_metrics(scores), by_group(scores, groups), scores,
                                   seconds[mode], len(questions))
    return EvalResult(k=depth, modes=modes, questions=list(questions), coverage=scan.coverage, pairs=pairs,
                      results=results, runs=runs, evaluated=evaluated, warnings=warnings,
                      seconds=time.perf_counter() - t0)
