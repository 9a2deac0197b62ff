"""Extractive answers built on the ranking, with checkable citations.

The passages come from the retriever's ranking (hybrid by default). The first evidence is the best passage,
unless a passage just below it holds a sentence that answers clearly better (the same lexical, cross-language
and semantic evidence the retriever uses, at sentence level). From that passage the answer quotes the part that
answers: one whole sentence, or two or three contiguous ones. Further citations are added only when they pass a
bar relative to the first and add something (another document, another fact); one to three citations is the
usual answer. A lead line in the question's language says where the answer was found.

Every quote is a whole sentence of the document, taken from the page text (not cut by the chunk boundary), and
verified (normalised) in the text of the page it cites before it is shown.

Refusals, in the question's language: when the best passage is far from the question or the question names
something the documents never mention ("I could not find this in the documents"); and when the question asks
for a specific value (an amount, a count, a date, a person) and no passage on its topic states one ("The
documents discuss … but do not give …"): the closest passages are then shown as related, not as the answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from arrival.assistant import quotes as q
from arrival.assistant.question import QuestionTerms, asked_value, has_value, question_terms, unglue_notes
from arrival.index.keyword import analyze, fold, stopwords
from arrival.index.retrieve import Filters, Retriever
from arrival.index.view import View
from arrival.ingest.clean import normalize_for_match
from arrival.ingest.lang import detect_query
from arrival.types import Answer, Citation, Hit

log = logging.getLogger(__name__)

REFUSAL = {
    "fr": "Je n'ai pas trouvé de réponse dans les documents.",
    "en": "I could not find this in the documents.",
}
NO_VALUE = {
    "fr": "Les documents traitent de {topic}, mais n'indiquent pas {what}.",
    "en": "The documents discuss {topic} but do not give {what}.",
}
VALUE_NAMES = {
    "money": {"en": "an amount or a budget", "fr": "de montant ni de budget"},
    "count": {"en": "a number", "fr": "de nombre"},
    "percent": {"en": "a percentage or a share", "fr": "de pourcentage"},
    "date": {"en": "a date", "fr": "de date"},
    "duration": {"en": "a duration", "fr": "de durée"},
    "person": {"en": "a person's name", "fr": "de nom de personne"},
}
LEAD = {
    "fr": "D'après « {title} », p. {page}{other}{more} :",
    "en": "From “{title}”, p. {page}{other}{more}:",
}
MORE = {"fr": " et {n} autre{s} passage{s}", "en": " and {n} other passage{s}"}
OTHER_LANG = {"fr": {"en": " (en anglais)"}, "en": {"fr": " (in French)"}}
RELATED = {"fr": "Passages proches :", "en": "Related passages:"}


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


def _verified(quote: str, pages: list[str]) -> bool:
    """The quote occurs in the text of its pages: verbatim within one page, or, for a quote that runs onto the next
    page, its parts at the end of one page and the start of the next (compared normalised)."""
    if any(quote in p for p in pages):
        return True
    joined = normalize_for_match(" ".join(pages))
    return bool(quote.strip()) and normalize_for_match(quote) in joined


def named_terms(question: str) -> list[str]:
    """Capitalised words after the first word, acronyms and years: the names a question hinges on."""
    out = []
    for i, tok in enumerate(_TOKEN.findall(question)):
        if re.fullmatch(r"(?:19|20)\d\d", tok) or (i > 0 and tok[0].isupper() and len(tok) >= 3):
            folded = fold(tok)
            if folded not in stopwords("en") and folded not in stopwords("fr"):
                out.append(tok)
    return out


@dataclass(frozen=True)
class AnswerSettings:
    passages: int = 6  # passages searched for the answer
    passages_per_doc: int = 4  # so that other documents get a look-in on broad questions
    max_citations: int = 3
    min_score: float = 0.22  # refuse when the best passage's cosine with the question is below this, ...
    min_sentence: float = 0.30  # ... and so is the best sentence's, ...
    min_e5: float = 0.82  # ... and so is the best passage's e5 cosine (when the index has e5; calibrated, README)
    sure_score: float = 0.45  # above these the named-term check is skipped
    sure_sentence: float = 0.55
    sentence_dense: float = 1.0  # weights of a sentence's evidence: cosine with the question ...
    sentence_lexical: float = 0.5  # ... share of the question's terms (IDF-weighted, across languages) ...
    sentence_value: float = 0.15  # ... holds the kind of value asked for
    rank_weight: float = 0.25  # a passage's answer score: best sentence + rank_weight x its relative hybrid score
    extra_bar: float = 0.85  # a further citation's answer score relative to the first
    topic_coverage: float = 0.34  # a sentence is on the question's topic from this share of its terms ...
    topic_dense: float = 0.45  # ... or this cosine with the question
    value_names: float = 0.5  # share of the question's names the passage of a quote giving the asked-for value holds
    duplicate_cos: float = 0.9


@dataclass
class Scored:
    """A quotable sentence of a passage with its evidence."""

    hit: Hit
    rank: int  # of the hit, 0-based
    sentence: q.Sentence
    dense: float = 0.0
    lexical: float = 0.0
    named: float | None = None  # share of the question's names in its passage (None: the question names none)
    value: bool = False
    score: float = 0.0
    vector: np.ndarray | None = None


@dataclass
class Evidence:
    view: View  # the one state of the index this answer reads
    hits: list[Hit]
    sentences: list[Scored] = field(default_factory=list)
    kind: str | None = None
    terms: QuestionTerms | None = None


class Assistant:
    def __init__(self, retriever: Retriever, settings: AnswerSettings | None = None) -> None:
        self.retriever = retriever
        self.settings = settings or AnswerSettings()

    # -- public ---------------------------------------------------------------------------------------
    def ask(self, question: str, k: int = 5, filters: Filters | None = None) -> Answer:
        return final_answer(self.stream(question, k, filters))

    def stream(self, question: str, k: int = 5, filters: Filters | None = None) -> Iterator[str | Answer]:
        """Yields pieces of the answer text as they are ready, then the complete Answer. The whole answer (search,
        refusal checks, quotes, page texts) reads one state of the index."""
        with self.retriever.pinned() as view:
            for part in self._stream(question, k, filters, view):
                yield replace(part, generation=view.generation) if isinstance(part, Answer) else part

    def _stream(self, question: str, k: int, filters: Filters | None, view: View) -> Iterator[str | Answer]:
        question = " ".join(question.split())
        lang = question_lang(question)
        hits = self.evidence(question, lang, max(k, self.settings.passages), filters, view)
        shown = tuple(hits[:k])
        ev = self.gather(question, lang, hits, view)
        reason = self.refusal(question, ev)
        if reason == "no-evidence":
            yield REFUSAL[lang]
            yield Answer(question, REFUSAL[lang], lang, True, (), shown, reason=reason)
            return
        if reason and ev.kind is not None:
            text = NO_VALUE[lang].format(topic=self.topic(question, hits, lang),
                                         what=VALUE_NAMES[ev.kind][lang])
            yield text
            yield Answer(question, text, lang, True, (), shown, reason=reason)
            return
        citations = self.choose(ev, lang)
        if not citations:
            yield REFUSAL[lang]
            yield Answer(question, REFUSAL[lang], lang, True, (), shown, reason="no-quote")
            return
        lead = self.lead(citations, lang)
        yield lead + "\n\n"
        lines = []
        for c in citations:
            line = f"- {' '.join(c.quote.split())}{OTHER_LANG.get(lang, {}).get(c.lang, '')} [{c.n}]"
            lines.append(line)
            yield line + "\n"
        yield Answer(question, lead + "\n\n" + "\n".join(lines), lang, False, tuple(citations), shown)

    def evidence(self, question: str, lang: str, n: int, filters: Filters | None = None,
                 view: View | None = None) -> list[Hit]:
        """The passages an answer is drawn from: the top n, at most `passages_per_doc` from one document."""
        if not question:
            return []
        return self.retriever.search(question, k=n, filters=filters, query_lang=lang,
                                     per_doc=self.settings.passages_per_doc, view=view)

    def features(self, question: str, ev: Evidence) -> dict[str, float]:
        """The evidence a refusal is decided on (also reported by `arrival eval` for calibration)."""
        hits, sents = ev.hits, ev.sentences
        names = named_terms(question)
        unknown = sum(1 for name in names if not self.retriever.knows(name, ev.view)) if names else 0
        on_topic_value = any(self.answers_value(x) for x in sents) if ev.kind is not None else True
        return {
            "passage_dense": max((h.scores.get("dense", h.score) for h in hits), default=0.0),
            "passage_e5": max((h.scores.get("e5", 0.0) for h in hits), default=0.0),
            "sentence_dense": max((x.dense for x in sents), default=0.0),
            "sentence_lexical": max((x.lexical for x in sents), default=0.0),
            "unknown_names": float(unknown),
            "typed": float(ev.kind is not None),
            "value_on_topic": float(on_topic_value),
        }

    def refusal(self, question: str, ev: Evidence) -> str:
        """"" to answer; "no-evidence" when nothing in the documents is close to the question (or it names
        something they never mention); "no-<kind>" when it asks for a kind of value that no passage on its
        topic states."""
        s = self.settings
        if not ev.hits:
            return "no-evidence"
        f = self.features(question, ev)
        close = (f["passage_dense"] >= s.min_score or f["sentence_dense"] >= s.min_sentence
                 or f["passage_e5"] >= s.min_e5)
        if not close:
            return "no-evidence"
        sure = f["passage_dense"] >= s.sure_score or f["sentence_dense"] >= s.sure_sentence
        if f["unknown_names"] and not sure:  # strong evidence outweighs a name we cannot place ("Spanish")
            return "no-evidence"
        if ev.kind is not None and not f["value_on_topic"]:
            return f"no-{ev.kind}"
        return ""

    def should_refuse(self, question: str, hits: list[Hit], view: View | None = None) -> bool:
        """Whether `stream` would refuse to answer from these passages."""
        lang = question_lang(question)
        return bool(self.refusal(question, self.gather(question, lang, hits, view or self.retriever.view())))

    # -- evidence -------------------------------------------------------------------------------------
    def gather(self, question: str, lang: str, hits: list[Hit], view: View) -> Evidence:
        """Score every quotable sentence of the top passages against the question."""
        s = self.settings
        kind = asked_value(question)
        if not hits:
            return Evidence(view, hits, [], kind)
        terms = question_terms(question, lang, view)
        found: list[Scored] = []
        for rank, hit in enumerate(hits[: s.passages]):
            ctx = q.context(hit, view.page_text)
            if ctx is None:
                continue
            for sent in q.sentences(ctx):
                if q.quotable(sent.text):
                    found.append(Scored(hit, rank, sent))
        if not found:
            return Evidence(view, hits, [], kind, terms)
        emb = self.retriever.embedder
        qvec = emb.embed_queries([question])[0]
        svecs = emb.embed_passages([x.sentence.text for x in found])
        named = {h.chunk_id: terms.named_coverage(set(analyze(unglue_notes(h.text), h.lang or lang)))
                 for h in hits[: s.passages]}
        for x, vec in zip(found, svecs, strict=True):
            x.dense = float(vec @ qvec)
            tokens = set(analyze(unglue_notes(x.sentence.text), x.hit.lang or lang))
            x.lexical = terms.coverage(tokens)
            x.named = named.get(x.hit.chunk_id)
            x.value = kind is not None and has_value(x.sentence.text, kind)
            x.vector = vec
        ev = Evidence(view, hits, found, kind, terms)
        self.score(ev)
        return ev

    def score(self, ev: Evidence) -> None:
        """A sentence's answer score: its own evidence plus its passage's place in the ranking."""
        s = self.settings
        top = max(ev.hits[0].score, 1e-9) if ev.hits else 1.0
        for x in ev.sentences:
            x.score = (s.sentence_dense * x.dense + s.sentence_lexical * x.lexical
                       + (s.sentence_value if x.value else 0.0) + s.rank_weight * max(x.hit.score, 0.0) / top)

    def on_topic(self, x: Scored) -> bool:
        return x.lexical >= self.settings.topic_coverage or x.dense >= self.settings.topic_dense

    def answers_value(self, x: Scored) -> bool:
        """The sentence states the kind of value asked for, on the question's topic, in a passage about what the
        question names (a year in a passage about another city does not date Amman's strategy)."""
        return x.value and self.on_topic(x) and (x.named is None or x.named >= self.settings.value_names)

    # -- choosing what to cite ------------------------------------------------------------------------
    def choose(self, ev: Evidence, lang: str) -> list[Citation]:
        s = self.settings
        pool = [x for x in ev.sentences if ev.kind is None or x.value or not self._has_value_sentence(ev, x.hit)]
        if not pool:
            return []
        ranked = sorted(pool, key=lambda x: (-x.score, x.rank, x.sentence.start))
        first = ranked[0]
        if ev.kind is not None:  # the quote must state the value asked for, on the question's topic
            typed = [x for x in ranked if self.answers_value(x)]
            first = typed[0] if typed else first
        chosen = [first]
        for x in ranked:
            if len(chosen) >= s.max_citations:
                break
            if x.score < s.extra_bar * first.score or any(x.hit.chunk_id == c.hit.chunk_id for c in chosen):
                continue
            if self._duplicate(x, chosen):
                continue
            chosen.append(x)
        citations: list[Citation] = []
        for x in chosen:
            cite = self.cite(len(citations) + 1, x, ev.view, self._window(ev, x))
            if cite is not None:
                citations.append(cite)
        return citations

    def _has_value_sentence(self, ev: Evidence, hit: Hit) -> bool:
        return any(x.value for x in ev.sentences if x.hit.chunk_id == hit.chunk_id)

    def _duplicate(self, x: Scored, chosen: list[Scored]) -> bool:
        vx = x.vector
        norm = normalize_for_match(x.sentence.text)
        for c in chosen:
            vc = c.vector
            if norm == normalize_for_match(c.sentence.text):
                return True
            if vx is not None and vc is not None and float(np.dot(vx, vc)) >= self.settings.duplicate_cos:
                return True
        return False

    def _window(self, ev: Evidence, x: Scored) -> list[Scored]:
        """The sentence, and the next one or two when they continue it: a lead-in ending with a colon, or a
        following sentence of the same passage that answers nearly as well."""
        same = [y for y in ev.sentences if y.hit.chunk_id == x.hit.chunk_id]
        i = next(i for i, y in enumerate(same) if y is x)
        out = [x]
        for y in same[i + 1: i + 3]:
            prev = out[-1]
            contiguous = not y.sentence.text.strip() or y.sentence.start - prev.sentence.end <= 3
            if not contiguous:
                break
            if prev.sentence.text.rstrip().endswith(":") or y.score >= 0.9 * x.score:
                out.append(y)
            else:
                break
        return out

    def cite(self, n: int, x: Scored, view: View, window: list[Scored] | None = None) -> Citation | None:
        """A citation whose quote (the sentence, or its window) is verified in the text of the pages it names."""
        window = window or [x]
        first, last = window[0].sentence, window[-1].sentence
        ctx = q.context(x.hit, view.page_text)
        if ctx is None:
            return None
        quote = ctx.text[first.start:last.end]
        pages = [view.page_text(x.hit.doc_id, p) or "" for p in range(first.page, last.page_end + 1)]
        if not _verified(quote, pages):
            log.warning("quote not found on %s p.%d; citation dropped", x.hit.source, first.page)
            return None
        return Citation(n, x.hit.title, x.hit.source, first.page, quote, x.hit.text, x.hit.lang, x.hit.chunk_id,
                        doc_id=x.hit.doc_id, page_end=last.page_end if last.page_end != first.page else 0,
                        also=x.hit.translations)

    # -- wording ----------------------------------------------------------------------------------------
    @staticmethod
    def lead(citations: list[Citation], lang: str) -> str:
        c = citations[0]
        n = len(citations) - 1
        more = MORE[lang].format(n=n, s="s" if n > 1 else "") if n else ""
        other = OTHER_LANG.get(lang, {}).get(c.lang, "")
        page = f"{c.page}–{c.page_end}" if c.page_end else str(c.page)
        return LEAD[lang].format(title=c.title or c.source, page=page, other=other, more=more)

    @staticmethod
    def topic(question: str, hits: list[Hit], lang: str) -> str:
        """What the documents do discuss: the names in the question, else the best passage's heading."""
        names = [t for t in named_terms(question) if not t.isdigit()]
        if names:
            return ", ".join(dict.fromkeys(names))
        heading = " ".join(hits[0].heading.split()) if hits and hits[0].heading else ""
        if heading:
            return f"« {heading} »" if lang == "fr" else f"“{heading}”"
        return "ce sujet" if lang == "fr" else "this topic"
