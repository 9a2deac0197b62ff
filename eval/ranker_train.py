"""Train the learned hybrid ranker (`index.ranker`) on development question sets, with cross-validation by
document: `arrival ranker-train`.

For every answerable question whose source is not a test document, the retriever's candidates (every channel's
top n) get their features and a label (the passage holds one of the question's quotes, `eval.relevance`). Folds
split the questions by the document that answers them (the full guide is one document), so a fold's questions are
scored by a model that saw none of their documents. The report compares, on the same candidates, the hand-set
fusion and the ranker (Recall@1/5, MRR@10 of the candidate ordering, before duplicate and translation folding).
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arrival.eval.relevance import Question, RelevanceJudge
from arrival.index.ranker import FEATURES, MODEL, monotone_constraints
from arrival.index.ranker import features as candidate_features
from arrival.index.retrieve import Retriever
from arrival.ingest.lang import detect_query
from arrival.types import Hit

PARAMS: dict[str, Any] = {
    "objective": "lambdarank", "n_estimators": 200, "learning_rate": 0.05, "num_leaves": 7,
    "min_child_samples": 50, "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8,
    "lambdarank_truncation_level": 20, "reg_lambda": 5.0, "random_state": 0, "verbose": -1,
}


@dataclass
class Query:
    id: str
    group: str  # the document that answers it
    x: np.ndarray
    y: np.ndarray
    fusion: np.ndarray


def document_group(source: str) -> str:
    name = Path(source).name
    return "guide" if "guide-implementing" in name else name


def build(retriever: Retriever, questions: Sequence[Question], exclude: Sequence[str] = (),
          progress: Callable[[int, int], None] | None = None) -> list[Query]:
    """Features and labels of every candidate of every answerable question not on an excluded document."""
    view = retriever.view()
    judge = RelevanceJudge(view)
    chosen = [q for q in questions if q.answerable and not any(fnmatch.fnmatch(q.source, g) for g in exclude)]
    out: list[Query] = []
    for i, q in enumerate(chosen):
        qlang = detect_query(q.question)
        qvec = retriever.embedder.embed_queries([q.question])[0]
        cand = retriever.candidates_for(view, q.question, qlang, qvec, retriever.candidates)
        if len(cand.ids):
            chunks = {c.id: c for c in view.chunks(cand.ids)}
            y = np.array([int(judge.relevant(q, _hit(chunks[int(r)]))) for r in cand.ids], dtype=np.int32)
            out.append(Query(q.id, document_group(q.source), candidate_features(view, q.question, cand), y,
                             cand.channels["fusion"]))
        if progress:
            progress(i + 1, len(chosen))
    return out


def _hit(c: Any) -> Hit:
    return Hit(rank=0, score=0.0, chunk_id=c.chunk_id, text=c.text, source=c.source, title=c.title, page=c.page,
               page_end=c.page_end, lang=c.lang, doc_id=c.doc_id)


def ordering_metrics(queries: Sequence[Query], scores: dict[str, np.ndarray]) -> dict[str, float]:
    """Recall@1, Recall@5 and MRR@10 of each query's candidates ordered by `scores`."""
    r1, r5, mrr = [], [], []
    for q in queries:
        y = q.y[np.argsort(-scores[q.id], kind="stable")]
        first = int(np.argmax(y)) if y.any() else None
        r1.append(first == 0)
        r5.append(first is not None and first < 5)
        mrr.append(1.0 / (first + 1) if first is not None and first < 10 else 0.0)
    n = max(1, len(queries))
    return {"n": len(queries), "recall@1": sum(r1) / n, "recall@5": sum(r5) / n, "mrr@10": sum(mrr) / n}


def fit(queries: Sequence[Query], params: dict[str, Any] | None = None) -> Any:
    import lightgbm as lgb

    usable = [q for q in queries if q.y.any()]
    model = lgb.LGBMRanker(monotone_constraints=monotone_constraints(), **(params or PARAMS))
    model.fit(np.vstack([q.x for q in usable]), np.concatenate([q.y for q in usable]),
              group=[len(q.y) for q in usable])
    return model


def cross_validate(queries: Sequence[Query], folds: int = 5, params: dict[str, Any] | None = None
                   ) -> dict[str, dict[str, float]]:
    """Fusion vs ranker on held-out folds (questions split by the document that answers them)."""
    groups = sorted({q.group for q in queries})
    rng = np.random.default_rng(0)
    rng.shuffle(groups)
    fold_of = {g: i % folds for i, g in enumerate(groups)}
    predicted: dict[str, np.ndarray] = {}
    for k in range(folds):
        train = [q for q in queries if fold_of[q.group] != k]
        test = [q for q in queries if fold_of[q.group] == k]
        if not test or not train:
            continue
        model = fit(train, params)
        for q in test:
            predicted[q.id] = np.asarray(model.predict(q.x), dtype=np.float32)
    held = [q for q in queries if q.id in predicted]
    return {"fusion": ordering_metrics(held, {q.id: q.fusion for q in held}),
            "ranker": ordering_metrics(held, predicted)}


def save(model: Any, path: Path, meta: dict[str, Any]) -> None:
    path.write_text(model.booster_.model_to_string())
    path.with_suffix(".json").write_text(json.dumps({**meta, "features": list(FEATURES)}, indent=2,
                                                    ensure_ascii=False) + "\n")


def train(retriever: Retriever, questions: Sequence[Question], sets: Sequence[str], exclude: Sequence[str],
          output: Path = MODEL, folds: int = 5, progress: Callable[[int, int], None] | None = None
          ) -> dict[str, Any]:
    """Build the data, cross-validate, fit on everything, write the model and its recipe; returns the report."""
    t = time.perf_counter()
    queries = build(retriever, questions, exclude, progress)
    cv = cross_validate(queries, folds)
    model = fit(queries)
    view = retriever.view()
    report = {
        "trained": time.strftime("%Y-%m-%d"), "question_sets": list(sets), "excluded_documents": list(exclude),
        "questions": len(queries), "documents": len({q.group for q in queries}), "folds": folds,
        "candidates": int(sum(len(q.y) for q in queries)), "cross_validation": cv, "params": PARAMS,
        "embedders": view.embedders, "seconds": round(time.perf_counter() - t, 1),
    }
    save(model, output, report)
    return report
