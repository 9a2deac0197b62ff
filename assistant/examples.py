"""The first screen: what is indexed in one line, and four example questions taken from the documents themselves.

Examples are computed from the live index, not written by hand: the documents' own guiding questions (sentences
of 40–150 characters ending with "?", not addressed to the reader: no "your"/"votre") and their action headings
turned into questions ("ASSURER L'ACCÈS DES MIGRANTS AUX SERVICES DE BASE" → "Comment assurer l'accès des
migrants aux services de base ?", "PROVIDE ACCESS TO BASIC SERVICES" → "How can governments provide access to
basic services?"). A heading is an action when its first word is a verb: for French, an infinitive (-er, -ir,
-re); for English, a word the documents themselves use after "to" ("to provide") more often than after "the".
Capitals are kept only for acronyms (GCM, COVID-19: words in capitals inside lines of ordinary prose). Guiding
questions come first, then headings, each shuffled by a hash of the index generation (stable for one index,
varied across indexes); they are asked to the assistant until two per language are answered with a citation, so
no example leads to a refusal.
Computed once per index generation and cached on the Backend.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arrival.assistant.server import Backend
    from arrival.index.view import View as Snapshot

log = logging.getLogger(__name__)

PER_LANG = 2
MAX_TRIES = 12  # answers tried per language
_WORD = re.compile(r"[^\W\d_][\w'’-]*", re.UNICODE)
_LEAD = re.compile(r"^[\s■•▪●◦►›\-–—*·\d.)(]+")
_ASKS = re.compile(r"^(?:what|which|how|who|why|where|when|is|are|does|do|can|should|to what|quel|quelle|quels|"
                   r"quelles|comment|pourquoi|qui|où|quand|combien|dans quelle|en quoi|est-ce|qu')\b", re.IGNORECASE)
_REFERS_TO_READER = re.compile(r"\b(your|you|votre|vos|vous)\b", re.IGNORECASE)
_FR_NOT_VERBS = {"entre", "autre", "notre", "votre", "leur", "cadre", "titre", "centre", "membre", "nombre",
                 "premier", "dernier", "chapitre", "outre", "contre", "sur", "pour", "par", "plusieurs", "ordre",
                 "registre", "filière", "filières", "matière", "manière", "lumière", "frontière", "frontières",
                 "carrière", "nature", "structure", "procédure", "mesure", "culture", "lettre", "mettre"}


@dataclass(frozen=True)
class Example:
    text: str
    lang: str
    title: str  # the document it was drawn from


@dataclass(frozen=True)
class Overview:
    documents: int
    pages: int
    languages: tuple[tuple[str, int], ...]  # (language, documents), most documents first
    examples: tuple[Example, ...]
    generation: str


def _sentence_case(heading: str, acronyms: set[str]) -> str:
    """A heading in lower case except its acronyms ("GCM", "COVID-19")."""
    return " ".join(w if w.strip(",.;:()").replace("’", "'") in acronyms else w.lower() for w in heading.split())


def _clean_heading(h: str) -> str:
    h = " ".join(h.replace("’", "'").split()).strip(" :;,.")
    return re.sub(r"\d+$", "", h).strip()  # a footnote number glued to the end


def vocabulary(snap: Snapshot) -> tuple[set[str], set[str]]:
    """(acronyms: words in capitals inside lines of ordinary prose, such as GCM or COVID-19; English verbs: words
    found after a modal ("can provide", "should ensure") at least twice), learnt from the corpus."""
    from arrival.index.keyword import fold, stopwords

    small = stopwords("en") | stopwords("fr")
    acronyms: set[str] = set()
    after_modal: Counter[str] = Counter()
    for text, lang in ((c.text, c.lang) for c in snap.iter_chunks()):
        for line in text.replace("’", "'").splitlines():
            words = _WORD.findall(line)
            if sum(w.islower() for w in words) >= 4:
                acronyms.update(w for w in words if w.isupper() and len(w) > 1 and fold(w) not in small)
        if lang == "en":
            for m in re.finditer(r"\b(?:can|could|should|must|will|would|may|might|shall)\s+([a-z]+)", text.lower()):
                after_modal[m.group(1)] += 1
    verbs = {w for w, n in after_modal.items() if n >= 2 and w not in small}
    return acronyms, verbs


def heading_question(heading: str, lang: str, acronyms: set[str], verbs: set[str]) -> str | None:
    h = _clean_heading(heading)
    words = h.split()
    if not 3 <= len(words) <= 16 or any(ch.isdigit() for ch in h) or "?" in h:
        return None
    if h != h.upper() and sum(w[:1].isupper() for w in words[1:]) > 1:  # a diagram's labels, not a heading
        return None
    first = words[0].lower()
    from arrival.index.keyword import fold, stopwords

    if words[0] in acronyms or fold(words[-1]) in stopwords(lang if lang in ("fr", "en") else "en"):
        return None  # "GCM regional review reports", a heading cut short ("... implementation of the")
    if lang == "fr":
        if first in _FR_NOT_VERBS or not re.fullmatch(r"[a-zàâçéèêëîïôûùüÿœ]{3,}(?:er|ir|re)", first):
            return None
        return f"Comment {_sentence_case(h, acronyms)} ?"
    if lang == "en" and first in verbs and not words[1].lower().endswith("ing"):
        return f"How can governments {_sentence_case(h, acronyms)}?"
    return None


def candidates(snap: Snapshot) -> dict[str, list[tuple[str, str]]]:
    """(question, doc title) per language: guiding questions first, then headings turned into questions."""
    from arrival.ingest.sentences import split_sentences

    docs = snap.documents()
    acronyms, verbs = vocabulary(snap)
    found: dict[str, dict[str, str]] = {"fr": {}, "en": {}}
    heads: dict[str, dict[str, str]] = {"fr": {}, "en": {}}
    for doc_id, text, lang, heading in ((c.doc_id, c.text, c.lang, c.heading) for c in snap.iter_chunks()):
        if lang not in found:
            continue
        title = docs[doc_id].title if doc_id in docs else ""
        for s, e in split_sentences(text):
            sent = _LEAD.sub("", " ".join(text[s:e].split()))
            if (sent.endswith("?") and 40 <= len(sent) <= 150 and sent[:1].isupper() and _ASKS.match(sent)
                    and not _REFERS_TO_READER.search(sent) and not sent.startswith(("If ", "Si "))
                    and sent.count("?") == 1):
                found[lang].setdefault(sent, title)
        if heading:
            q = heading_question(heading, lang, acronyms, verbs)
            if q:
                heads[lang].setdefault(q, title)
    return {lang: [*found[lang].items(), *heads[lang].items()] for lang in found}


def _order(items: list[tuple[str, str]], generation: str) -> list[tuple[str, str]]:
    """Guiding questions first, then headings ("Comment ..."/"How can governments ..."), each shuffled."""
    def key(x: tuple[str, str]) -> tuple[bool, str]:
        made = x[0].startswith(("Comment ", "How can governments "))
        return made, hashlib.sha256(f"{generation}\x00{x[0]}".encode()).hexdigest()

    return sorted(items, key=key)


def pick_examples(backend: Backend, snap: Snapshot, generation: str) -> tuple[Example, ...]:
    cands = candidates(snap)
    try:
        assistant = backend.assistant()
    except Exception:  # no model, or an answer engine that cannot load: unverified examples, not none
        log.exception("examples are not checked: the assistant is not available")
        assistant = None
    chosen: list[Example] = []
    used_titles: set[str] = set()
    for lang in ("fr", "en"):
        picked = 0
        tries = 0
        for text, title in _order(cands.get(lang, []), generation):
            if picked >= PER_LANG or tries >= MAX_TRIES:
                break
            if title in used_titles:
                continue
            if assistant is not None:
                tries += 1
                try:
                    answer = assistant.ask(text)
                except Exception:  # an example is a nicety: a failing one is skipped
                    log.exception("example question %r failed", text)
                    continue
                if answer.refused or not answer.citations:
                    continue
            chosen.append(Example(text, lang, title))
            used_titles.add(title)
            picked += 1
    return tuple(chosen)


def summary(backend: Backend) -> Overview | None:
    """What is indexed, without the examples (quick: for the page's first paint); None without an index."""
    if not backend.has_index():
        return None
    snap = backend.retriever().snapshot()
    cached = backend.cache.get("overview")
    if isinstance(cached, Overview) and cached.generation == snap.generation:
        return cached
    return _summary(snap, ())


def _summary(snap: Snapshot, examples: tuple[Example, ...]) -> Overview:
    docs = snap.documents()
    langs: Counter[str] = Counter()
    for d in docs.values():
        for code in d.languages:
            langs[code] += 1
    return Overview(len(docs), sum(d.page_count for d in docs.values()),
                    tuple(sorted(langs.items(), key=lambda x: (-x[1], x[0]))), examples, snap.generation)


def overview(backend: Backend) -> Overview | None:
    """What is indexed and the example questions, for the live generation (cached); None without an index."""
    if not backend.has_index():
        return None
    snap = backend.retriever().snapshot()
    generation = snap.generation
    with backend.cache_lock:
        cached = backend.cache.get("overview")
        if isinstance(cached, Overview) and cached.generation == generation:
            return cached
        ov = _summary(snap, pick_examples(backend, snap, generation) if snap.documents() else ())
        backend.cache["overview"] = ov
        return ov


def warm_up(backend: Backend) -> None:
    """Load the model and compute the first screen before the first visitor asks for it (a server thread)."""
    try:
        overview(backend)
    except Exception:  # the page computes it again, and says what is wrong
        log.exception("warming up the first screen failed")
