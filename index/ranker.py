"""The learned hybrid ranking: a LightGBM LambdaRank model over every signal the retriever has for a candidate.

Signals (`FEATURES`): the cosine of the question with the passage in each vector space (USE multilingual, e5),
alone and read in the context of its neighbours, and both standardised within the query's candidates (so a
question whose passages all look alike does not lean on one encoder); the three keyword channels (BM25 in the
question's language, translated through the corpus lexicon, untranslated across languages); whether the passage is
a list of questions, is in the question's language, how much of the question its heading covers, and its length.
Monotone constraints keep the similarity signals from ever counting against a passage.

The model is trained by `arrival ranker-train` (eval/ranker_train.py) on the development question sets, with
cross-validation by document, and ships with the package (`ranker.txt`, its recipe in `ranker.json`). The hand-set
fusion stays as the baseline (`--retriever fusion`).
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from arrival.index.keyword import analyze

if TYPE_CHECKING:
    from arrival.index.retrieve import Candidates
    from arrival.index.view import View

log = logging.getLogger(__name__)

FEATURES = ("dense", "in_context", "e5", "e5_in_context", "dense_z", "e5_z", "same", "translated", "cross",
            "question_list", "is_question_lang", "heading_coverage", "log_length")
MONOTONE = {"dense": 1, "in_context": 1, "e5": 1, "e5_in_context": 1, "dense_z": 1, "e5_z": 1, "same": 1,
            "translated": 1, "cross": 1, "heading_coverage": 1}
MODEL = Path(__file__).with_name("ranker.txt")


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-6) if len(x) else x


def features(view: View, query: str, cand: Candidates) -> np.ndarray:
    """(len(cand.ids), len(FEATURES)) float32 matrix for the candidates of one query."""
    ch = cand.channels
    n = len(cand.ids)
    if not n:
        return np.zeros((0, len(FEATURES)), dtype=np.float32)
    meta = view.meta(cand.ids)
    words = set(analyze(query, cand.qlang))
    heading_cov = np.zeros(n, dtype=np.float32)
    if words:
        for i, (heading, lang) in enumerate(zip(meta.heading, meta.lang, strict=True)):
            if heading:
                found = set(analyze(heading, str(lang))) | set(analyze(heading, cand.qlang))
                heading_cov[i] = len(words & found) / len(words)
    zero = np.zeros(n, dtype=np.float32)
    cols = {
        "dense": ch["dense"], "in_context": ch["in_context"], "e5": ch.get("e5", zero),
        "e5_in_context": ch.get("e5_in_context", zero), "dense_z": _z(ch["in_context"]),
        "e5_z": _z(ch.get("e5_in_context", zero)), "same": ch["same"], "translated": ch["translated"],
        "cross": ch["cross"], "question_list": ch["question_list"],
        "is_question_lang": (meta.lang == cand.qlang).astype(np.float32), "heading_coverage": heading_cov,
        "log_length": np.log1p(meta.length.astype(np.float32)),
    }
    return np.stack([np.asarray(cols[f], dtype=np.float32) for f in FEATURES], axis=1)


class Ranker:
    """A trained LightGBM booster over FEATURES; `score(X)` gives one number per candidate, higher is better."""

    needs_e5 = True

    def __init__(self, booster: Any, meta: dict[str, Any]) -> None:
        self.booster = booster
        self.meta = meta
        if tuple(meta.get("features", ())) != FEATURES:
            raise ValueError(f"ranker trained on features {meta.get('features')}, this arrival computes {FEATURES}")

    @classmethod
    def load(cls, path: Path) -> Ranker:
        import lightgbm as lgb

        meta = json.loads(path.with_suffix(".json").read_text())
        return cls(lgb.Booster(model_str=path.read_text()), meta)

    def score(self, x: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.booster.predict(x, num_threads=1), dtype=np.float32)


@lru_cache(maxsize=1)
def load_default_ranker() -> Ranker | None:
    """The ranker shipped with the package, or None (then hybrid is the hand-set fusion)."""
    if not MODEL.exists():
        return None
    try:
        return Ranker.load(MODEL)
    except (OSError, ValueError, ImportError) as exc:
        log.warning("learned ranker not loaded (%s): hybrid uses the hand-set fusion", exc)
        return None


def monotone_constraints() -> list[int]:
    return [MONOTONE.get(f, 0) for f in FEATURES]

