"""Answers with checkable citations.

Extractive mode (default, no language model): score the sentences of the top passages against the question,
drop near-duplicates, prefer covering several documents, and cite each chosen sentence with its document,
page and exact quote. A quote is shown only after it is found (normalised) in the cited page's text. When the
evidence is too weak, the answer says so in the question's language and shows the closest passages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from ingest.clean import normalize_for_match

from ingest.sentences import split_sentences
from index.retrieve import Filters, Retriever
from ingest.lang import detect_query
from ingest.types import Answer, Citation, Hit

log = logging.getLogger(__name__)

REFUSAL = {
    "fr": "Je n'ai pas trouvé de réponse dans les documents.",
    "en": "I could not find this in the documents.",
}
INTRO = {"fr": "D'après les documents :", "en": "According to the documents:"}
OTHER_LANG = {"fr": {"en": " (en anglais)"}, "en": {"fr": " (in French)"}}


@dataclass(frozen=True)
class AnswerSettings:
    passages: int = 8  # passages searched for sentences
    max_sentences: int = 4
    min_score: float = 0.30  # dense similarity of the best passage below which we refuse (calibrated by eval)
    relative_floor: float = 0.12  # keep sentences within this of the best sentence score
    duplicate_cos: float = 0.88
    same_doc_penalty: float = 0.03


@dataclass(frozen=True)
class Candidate:
    hit: Hit
    start: int
    end: int
    text: str
    score: float


class Assistant:
    def __init__(self, retriever: Retriever, settings: AnswerSettings | None = None) -> None:
        self.retriever = retriever
        self.settings = settings or AnswerSettings()

    # -- public ---------------------------------------------------------------------------------------
    def ask(self, question: str, k: int = 5, filters: Filters | None = None) -> Answer:
        answer = None
        for part in self.stream(question, k, filters):
            if isinstance(part, Answer):
                answer = part
        assert answer is not None
        return answer

    def stream(self, question: str, k: int = 5, filters: Filters | None = None) -> Iterator[str | Answer]:
        """Yields pieces of the answer text as they are ready, then the complete Answer."""
        question = " ".join(question.split())
        lang = detect_query(question) if question else "en"
        lang = lang if lang in REFUSAL else "en"
        hits = self.retriever.search(question, k=max(k, self.settings.passages), filters=filters,
                                     query_lang=lang) if question else []
        shown = tuple(hits[:k])
        best = max((h.scores.get("dense", h.score) for h in hits), default=0.0)
        if not hits or best < self.settings.min_score:
            yield REFUSAL[lang]
            yield Answer(question, REFUSAL[lang], lang, True, (), shown)
            return
        chosen = self._select(question, hits)
        citations: list[Citation] = []
        lines: list[str] = []
        yield INTRO[lang] + "\n\n"
        for cand in chosen:
            cite = self.cite(len(citations) + 1, cand)
            if cite is None:
                continue
            citations.append(cite)
            suffix = OTHER_LANG.get(lang, {}).get(cand.hit.lang, "")
            line = f"- {cand.text}{suffix} [{cite.n}]"
            lines.append(line)
            yield line + "\n"
        if not citations:
            yield REFUSAL[lang]
            yield Answer(question, REFUSAL[lang], lang, True, (), shown)
            return
        text = INTRO[lang] + "\n\n" + "\n".join(lines)
        yield Answer(question, text, lang, False, tuple(citations), shown)

    # -- internals ------------------------------------------------------------------------------------
    def _select(self, question: str, hits: list[Hit]) -> list[Candidate]:
        s = self.settings
        embedder = self.retriever.embedder
        spans = [(h, a, b) for h in hits for a, b in split_sentences(h.text)]
        if not spans:
            return []
        texts = [h.text[a:b] for h, a, b in spans]
        qvec = embedder.embed_queries([question])[0]
        svecs = embedder.embed_passages(texts)
        sims = svecs @ qvec
        top_dense = max(h.scores.get("dense", h.score) for h in hits) or 1.0
        scores = [0.7 * float(sims[i]) + 0.3 * h.scores.get("dense", h.score) / top_dense * float(sims.max())
                  for i, (h, _, _) in enumerate(spans)]
        order = np.argsort(-np.asarray(scores), kind="stable")
        best = scores[int(order[0])]
        chosen: list[int] = []
        docs: dict[str, int] = {}
        for i in order:
            i = int(i)
            h = spans[i][0]
            adjusted = scores[i] - s.same_doc_penalty * docs.get(h.doc_id, 0)
            if adjusted < best - s.relative_floor:
                continue
            if any(float(svecs[i] @ svecs[j]) > s.duplicate_cos for j in chosen):
                continue
            if any(normalize_for_match(texts[i]) == normalize_for_match(texts[j]) for j in chosen):
                continue
            chosen.append(i)
            docs[h.doc_id] = docs.get(h.doc_id, 0) + 1
            if len(chosen) == s.max_sentences:
                break
        return [Candidate(spans[i][0], spans[i][1], spans[i][2], texts[i], scores[i]) for i in chosen]

    def cite(self, n: int, cand: Candidate) -> Citation | None:
        """A citation whose quote is verified in the text of the page it names, or None."""
        page = self.page_of(cand.hit, cand.start)
        snap = self.retriever.snapshot()
        page_text = snap.page_text(cand.hit.doc_id, page) or ""
        if normalize_for_match(cand.text) not in normalize_for_match(page_text):
            joined = " ".join(snap.page_text(cand.hit.doc_id, p) or "" for p in (page, page + 1))
            if normalize_for_match(cand.text) not in normalize_for_match(joined):
                log.warning("quote not found on %s p.%d; citation dropped", cand.hit.source, page)
                return None
        return Citation(n, cand.hit.title, cand.hit.source, page, cand.text, cand.hit.text, cand.hit.lang,
                        cand.hit.chunk_id)

    def page_of(self, hit: Hit, offset: int) -> int:
        """The page on which character `offset` of a hit's text lies."""
        if hit.page == hit.page_end:
            return hit.page
        snap = self.retriever.snapshot()
        row = snap.db.execute("SELECT start FROM chunks WHERE chunk_id=?", (hit.chunk_id,)).fetchone()
        first = snap.page_text(hit.doc_id, hit.page) or ""
        remaining = len(first) - (int(row[0]) if row else 0)
        return hit.page if offset < remaining else hit.page_end
