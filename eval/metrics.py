"""Ranking metrics with ranx: Recall@k (= success@k), MRR@10 and nDCG@10, overall and per language pair.

* **Recall@k** is ranx ``hit_rate@k``: 1 for a question when at least one relevant passage is among its first
  k results, else 0, averaged over questions. All the relevant chunks of a question cannot be enumerated
  (a quote may straddle chunks; page-judged questions), so this success rate is what "recall" means here.
* Relevance is binary. The qrels of a question are the relevant chunk ids among what the retriever returned
  (judged by `eval.relevance`), so nDCG@10 rewards placing the found relevant passages early; it does not
  penalise relevant passages the retriever never returned.
* The ranx run scores are derived from ranks (``len - rank + 1``) so ties in retriever scores cannot reorder
  the list ranx sees.
* Questions without any relevant passage get a placeholder qrel (``__none__``) so they count as zero.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence

RECALL_KS = tuple(range(1, 11))
HEADLINE = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
PAIRS = ("en→en", "en→fr", "fr→fr", "fr→en")
NO_RELEVANT = "__none__"
NO_HIT = "__no_hit__"

# our name -> ranx name
RANX_NAMES: dict[str, str] = {**{f"recall@{k}": f"hit_rate@{k}" for k in RECALL_KS},
                              "mrr@10": "mrr@10", "ndcg@10": "ndcg@10"}

Judged = Sequence[tuple[str, bool]]  # ranked (chunk_id, relevant) pairs, best first


def per_question(judged: Mapping[str, Judged]) -> dict[str, dict[str, float]]:
    """Every metric in RANX_NAMES for every question: {question id: {metric: value}}."""
    if not judged:
        return {}
    from ranx import Qrels, Run, evaluate

    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for qid, ranked in judged.items():
        seen: dict[str, bool] = {}
        for cid, rel in ranked:
            if cid not in seen:
                seen[cid] = rel
        n = len(seen)
        run[qid] = {cid: float(n - i) for i, cid in enumerate(seen)} or {NO_HIT: 0.0}
        qrels[qid] = {cid: 1 for cid, rel in seen.items() if rel} or {NO_RELEVANT: 1}
    ranx_run = Run(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluate(Qrels(qrels), ranx_run, list(RANX_NAMES.values()), save_results_in_run=True)
    return {qid: {ours: float(ranx_run.scores[theirs][qid]) for ours, theirs in RANX_NAMES.items()}
            for qid in judged}


def mean_metrics(scores: Mapping[str, Mapping[str, float]], qids: Iterable[str] | None = None
                 ) -> dict[str, float]:
    """Average of each metric over `qids` (default: all), plus "n". Empty selection: only {"n": 0}."""
    ids = [q for q in (scores if qids is None else qids) if q in scores]
    out: dict[str, float] = {"n": len(ids)}
    if ids:
        for name in RANX_NAMES:
            out[name] = sum(scores[q][name] for q in ids) / len(ids)
    return out


def by_group(scores: Mapping[str, Mapping[str, float]], groups: Mapping[str, str | None]
             ) -> dict[str, dict[str, float]]:
    """Mean metrics per group label (e.g. language pair); questions whose label is None are left out."""
    members: dict[str, list[str]] = {}
    for qid, label in groups.items():
        if label is not None and qid in scores:
            members.setdefault(label, []).append(qid)
    order = [p for p in PAIRS if p in members] + sorted(set(members) - set(PAIRS))
    return {label: mean_metrics(scores, members[label]) for label in order}


def recall_curve(means: Mapping[str, float]) -> list[float | None]:
    """Recall@1..10 from a `mean_metrics` result (None when it has no questions)."""
    return [means.get(f"recall@{k}") for k in RECALL_KS]


def first_relevant_rank(relevant: Sequence[bool]) -> int | None:
    return next((i + 1 for i, r in enumerate(relevant) if r), None)
