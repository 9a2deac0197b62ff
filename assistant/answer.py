"""Answers with checkable citations.

Extractive mode (default, no language model): score the sentences of the top passages against the question,
drop near-duplicates, prefer covering several documents, and cite each chosen sentence with its document,
page and exact quote. A quote is shown only after it is found (normalised) in the cited page's text. When the
evidence is too weak, the answer says so in the question's language and shows the closest passages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from arrival.index.keyword import fold, stopwords
from arrival.index.retrieve import Filters, Retriever
from arrival.ingest.clean import normalize_for_match
from arrival.ingest.lang import detect_query
from arrival.ingest.sentences import split_sentences
from arrival.types import Answer, Citation, Hit

log = logging.getLogger(__name__)

REFUSAL = {
    "fr": "Je n'ai pas trouvé de réponse dans les documents.",
    "en": "I could not find this in the documents.",
}
INTRO = {"fr": "D'après les documents :", "en": "According to the documents:"}
OTHER_LANG = {"fr": {"en": " (en anglais)"}, "en": {"fr": " (in French)"}}


def question_lang(question: str) -> str:
    """The language answers are written in: the question's, when it is French or English."""
    lang = detect_query(question) if question else "en"
    return lang if lang in REFUSAL else "en"


def final_answer(parts: Iterable[str | Answer]) -> Answer:
    """Run a stream of answer pieces to its end and return the Answer it closes with."""
    answer = None
    for part in parts:
        if isinstance(part, Answer):
            answer = part
    if answer is None:
        raise RuntimeError("answer stream ended without an Answer")
    return answer


_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def named_terms(question: str) -> list[str]:
    """Capitalised words after the first word, acronyms and years: the names a question hinges on."""
    out = []
    for i, tok in enumerate(_TOKEN.findall(question)):
        if re.fullmatch(r"(?:19|20)\d\d", tok) or (i > 0 and tok[0].isupper() and len(tok) >= 3):
            folded = fold(tok)
            if folded not in stopwords("en") and folded not in stopwords("fr"):
                out.append(tok)
    return out


def answer_like(sentence: str) -> bool:
    """Sentences worth quoting as an answer: not questions (guiding-question lists are common in policy
    guidance), not headings or list lead-ins ending with a colon, at least eight words."""
    s = sentence.rstrip()
    return not s.endswith(("?", ":")) and "?" not in s[-3:] and len(s.split()) >= 8


@dataclass(frozen=True)
class AnswerSettings:
    passages: int = 8  # passages searched for sentences
    passages_per_doc: int = 4  # so that other documents get a look-in on broad questions
    max_sentences: int = 5
    min_score: float = 0.30  # dense similarity of the best passage below which we refuse (calibrated, README)
    sure_score: float = 0.45  # above this the named-term check is skipped
    relative_floor: float = 0.2  # keep sentences within this of the best sentence score
    duplicate_cos: float = 0.88
    same_doc_penalty: float = 0.06
    per_doc: int = 2  # sentences from one document before others get a turn


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
        return final_answer(self.stream(question, k, filters))

    def stream(self, question: str, k: int = 5, filters: Filters | None = None) -> Iterator[str | Answer]:
        """Yields pieces of the answer text as they are ready, then the complete Answer."""
        question = " ".join(question.split())
        lang = question_lang(question)
        hits = self.evidence(question, lang, max(k, self.settings.passages), filters)
        shown = tuple(hits[:k])
        if self.should_refuse(question, hits):
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

    def evidence(self, question: str, lang: str, n: int, filters: Filters | None = None) -> list[Hit]:
        """The passages an answer is drawn from: the top n, at most `passages_per_doc` from one document."""
        if not question:
            return []
        return self.retriever.search(question, k=n, filters=filters, query_lang=lang,
                                     per_doc=self.settings.passages_per_doc)

    def should_refuse(self, question: str, hits: list[Hit]) -> bool:
        """Too little evidence: the best passage is far from the question, or the question names something
        (a place, an organisation, a year) that occurs nowhere in the indexed documents."""
        best = max((h.scores.get("dense", h.score) for h in hits), default=0.0)
        if not hits or best < self.settings.min_score:
            return True
        if best >= self.settings.sure_score:  # strong evidence outweighs a name we cannot place ("Spanish")
            return False
        return any(not self.retriever.knows(name) for name in named_terms(question))

    # -- internals ------------------------------------------------------------------------------------
    def _select(self, question: str, hits: list[Hit]) -> list[Candidate]:
        s = self.settings
        embedder = self.retriever.embedder
        spans = [(h, a, b) for h in hits for a, b in split_sentences(h.text) if answer_like(h.text[a:b])]
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

        def fresh(i: int) -> bool:
            return not any(float(svecs[i] @ svecs[j]) > s.duplicate_cos
                           or normalize_for_match(texts[i]) == normalize_for_match(texts[j]) for j in chosen)

        deferred: list[int] = []
        for i in [int(x) for x in order]:
            doc = spans[i][0].doc_id
            if scores[i] - s.same_doc_penalty * docs.get(doc, 0) < best - s.relative_floor or not fresh(i):
                continue
            if docs.get(doc, 0) >= s.per_doc:  # let other documents have a turn first
                deferred.append(i)
                continue
            chosen.append(i)
            docs[doc] = docs.get(doc, 0) + 1
            if len(chosen) == s.max_sentences:
                break
        for i in deferred:  # then fill up from the best-covered documents
            if len(chosen) >= min(3, s.max_sentences):
                break
            if fresh(i):
                chosen.append(i)
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
