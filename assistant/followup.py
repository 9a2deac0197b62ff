"""Follow-up questions rewritten from the conversation, without a language model.

"and in Lisbon?" after "What is the one-stop shop for immigrants in Porto?" is searched as "What is the one-stop
shop for immigrants in Lisbon?"; "Et pour les enfants ?" after "Quels services sont offerts aux migrants ?" as
"Quels services sont offerts aux migrants pour les enfants ?".

A question is a follow-up when it starts with a connector ("and", "et", "what about", "et pour", "qu'en est-il
de", "same for"...) or, without one, when it is a short phrase that starts with a preposition ("In Lisbon?",
"Pour les enfants ?") or is a lone name ("Lisbonne ?"); and when what is left is short and is not itself a
question (no interrogative word: "and how is it funded?" is left alone). The rest of it, the *topic*, then
takes the place of the matching part of the previous question, or is added to it:

- a place ("in Lisbon", "à Lyon", "Lisbon") replaces the previous question's place ("in Porto", "à Malaga") or
  its last proper name; with neither, it is added at the end;
- a beneficiary ("for children", "pour les enfants") replaces the previous "for ..."/"pour ..." phrase, or is
  added;
- another subject ("housing", "le logement") replaces what followed "about"/"sur"/"concernant"/"en matière
  de", or is added after a comma ("..., and housing?").

The previous question is the one actually searched the turn before, so follow-ups chain. A preposition is put
in the previous question's language ("Et à Lisbonne ?" after an English question gives "... in Lisbonne?").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_TOPIC_WORDS = 8

# Connectors, longest first (matched case-insensitively at the start, on a whole-word boundary).
_CONNECTORS = (
    "and what about", "and how about", "and what of", "what about", "how about", "what of", "same question for",
    "same for", "and also", "and", "also", "et qu'en est-il des", "et qu'en est-il du", "et qu'en est-il de la",
    "et qu'en est-il de", "et qu'en est-il d'", "qu'en est-il des", "qu'en est-il du", "qu'en est-il de la",
    "qu'en est-il de", "qu'en est-il d'", "même question pour", "pareil pour", "idem pour", "et aussi", "et", "aussi",
)
# Connectors that swallow the preposition the topic needs ("qu'en est-il des enfants" -> "des enfants").
_KEEP_ARTICLE = {"et qu'en est-il des": "des", "et qu'en est-il du": "du", "et qu'en est-il de la": "de la",
                 "qu'en est-il des": "des", "qu'en est-il du": "du", "qu'en est-il de la": "de la",
                 "même question pour": "pour", "pareil pour": "pour", "idem pour": "pour", "same question for": "for",
                 "same for": "for"}

_PLACE_PREPS = {"in", "at", "à", "a", "en", "au", "aux", "dans", "chez"}
_FOR_PREPS = {"for", "pour"}
_ABOUT = {"en": ("about", "regarding", "concerning", "on"), "fr": ("en matière de", "concernant", "sur", "quant à")}
_INTERROGATIVES = {
    "what", "which", "who", "whom", "whose", "how", "why", "where", "when", "is", "are", "does", "do", "did", "can",
    "could", "should", "would", "will", "quel", "quelle", "quels", "quelles", "qui", "comment", "pourquoi", "où",
    "quand", "combien", "que", "qu'est-ce", "quoi", "est-ce", "lequel", "laquelle", "lesquels", "lesquelles",
}
_FR_WORDS = {"le", "la", "les", "des", "du", "de", "une", "un", "et", "est", "sont", "pour", "dans", "quels",
             "quelles", "quel", "quelle", "comment", "pourquoi", "aux", "au", "qui", "que", "sur", "avec", "en",
             "ont", "ville", "villes", "d'une", "qu'est-ce", "l'", "d'"}
_EN_WORDS = {"the", "a", "an", "and", "is", "are", "for", "in", "what", "which", "how", "why", "who", "does", "do",
             "of", "to", "with", "on", "city", "cities", "can", "their", "its"}
_DEMONYM = re.compile(r"(?:ish|ese|ian|ean|ais|aise|aises|ien|ienne|iens|iennes|ois|oise|ain|aine|ains|aines)$")
_WORD = re.compile(r"[^\W\d_][\w'’-]*", re.UNICODE)
_END = re.compile(r"[\s?？!.…]+$")


@dataclass(frozen=True)
class Rewrite:
    query: str  # what is searched
    rewritten: bool  # True when `query` differs from what was typed
    previous: str = ""  # the question it was built from


def _clean(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text or "").replace("’", "'").split())


def question_language(text: str) -> str:
    """'fr' or 'en', from function words (enough for a whole question; no model)."""
    words = [w.lower() for w in _WORD.findall(text.replace("’", "'"))]
    fr = sum(w in _FR_WORDS or w.startswith(("l'", "d'", "qu'")) for w in words)
    en = sum(w in _EN_WORDS for w in words)
    if fr == en:
        return "fr" if re.search(r"[éèêàçùœ]| \?$", text) else "en"
    return "fr" if fr > en else "en"


def _strip_connector(text: str) -> tuple[str, str]:
    low = text.lower()
    for c in _CONNECTORS:
        if low.startswith(c) and (len(low) == len(c) or not (low[len(c)].isalnum() or low[len(c)] == "'")
                                  or c.endswith("'")):
            rest = text[len(c):].lstrip(" ,:;-–—")
            keep = _KEEP_ARTICLE.get(c)
            if keep in {"des", "du", "de la"}:  # "qu'en est-il des enfants" -> the subject "les enfants"
                keep = {"des": "les", "du": "le", "de la": "la"}[keep]
            return c, f"{keep} {rest}".strip() if keep and rest else rest
    return "", text


def _first_word(text: str) -> str:
    m = _WORD.match(text)
    return m.group(0).lower() if m else ""


def _is_name(word: str) -> bool:
    return len(word) >= 2 and word[0].isupper() and not word.isupper() and not _DEMONYM.search(word.lower())


def follow_up_topic(question: str) -> str | None:
    """The topic of a follow-up ("in Lisbon", "pour les enfants", "housing"), or None for a full question."""
    q = _END.sub("", _clean(question))
    if not q:
        return None
    connector, rest = _strip_connector(q)
    if not rest or len(rest.split()) > MAX_TOPIC_WORDS:
        return None
    first = _first_word(rest)
    if first in _INTERROGATIVES or first.startswith(("qu'", "est-ce")) or "-t-" in rest or re.search(
            r"\w-(?:il|elle|ils|elles|on)\b", rest):
        return None
    if connector:
        return rest
    words = rest.split()
    if first in _PLACE_PREPS | _FOR_PREPS and len(words) <= 5:
        return rest
    if len(words) <= 3 and all(_is_name(w) or w.lower() in {"de", "da", "do", "del", "la", "le"} for w in words):
        return rest
    return None


def _translate_prep(prep: str, lang: str) -> str:
    low = prep = prep.lower()
    if lang == "en":
        if low in {"à", "a", "en", "au", "aux", "dans", "chez"}:
            return "in"
        if low == "pour":
            return "for"
    elif lang == "fr":
        if low in {"in", "at"}:
            return "à"
        if low == "for":
            return "pour"
    return prep


def _ending(lang: str) -> str:
    return " ?" if lang == "fr" else "?"


def _replace_place(core: str, topic_words: list[str], lang: str) -> str | None:
    """`core` with its place ("in Porto", "à Malaga") or its last proper name replaced; None when it has none."""
    prep, name = topic_words[0], " ".join(topic_words[1:])
    names = r"(?:[A-ZÀ-ÖØ-Þ][\w'’.-]*)(?:\s+(?:de|da|do|del|la|le|[A-ZÀ-ÖØ-Þ][\w'’.-]*))*"
    places = list(re.finditer(rf"\b(in|at|à|en|au|aux|dans|chez)\s+({names})", core))
    places = [m for m in places if _is_name(m.group(2).split()[0])]
    if places:
        m = places[-1]
        return f"{core[:m.start()]}{_translate_prep(prep, lang)} {name}{core[m.end():]}"
    skip = len(core.split(" ", 1)[0])  # the question's first word is capitalised anyway
    spans = [m for m in re.finditer(names, core[skip:]) if _is_name(m.group(0).split()[0])]
    if spans:
        m = spans[-1]
        return f"{core[:skip + m.start()]}{name}{core[skip + m.end():]}"
    return None


def _replace_after(core: str, words: tuple[str, ...], topic: str) -> str | None:
    """`core` with what follows the last of `words` replaced by `topic` (up to a comma, a place or the end); the
    word itself is kept."""
    best = None
    for w in words:
        for m in re.finditer(rf"\b{re.escape(w)}\s+", core, flags=re.IGNORECASE):
            if best is None or m.start() > best.start():
                best = m
    if best is None:
        return None
    stop = re.compile(r",|\s(?:in|at|à|dans|en)\s").search(core, best.end())  # a place after it stays
    tail = core[stop.start():] if stop else ""
    return f"{core[:best.end()]}{topic}{tail}"


def rewrite(question: str, previous: str) -> Rewrite:
    """The query to search for `question`, given the previous question searched in the conversation."""
    typed = _clean(question)
    prev = _clean(previous)
    topic = follow_up_topic(typed) if prev else None
    if topic is None:
        return Rewrite(typed, False)
    lang = question_language(prev)
    core = _END.sub("", prev)
    words = topic.split()
    head = words[0].lower()
    out: str | None = None
    if head in _PLACE_PREPS and len(words) > 1 and _is_name(words[1]):
        out = _replace_place(core, words, lang)
        if out is None:
            out = f"{core} {_translate_prep(words[0], lang)} {' '.join(words[1:])}"
    elif all(_is_name(w) or w.lower() in {"de", "da", "do", "del", "la", "le"} for w in words):
        out = _replace_place(core, ["in", *words], lang)
        if out is None:
            out = f"{core} {'à' if lang == 'fr' else 'in'} {topic}"
    elif head in _FOR_PREPS:
        rest = " ".join(words[1:])
        out = (_replace_after(core, ("for",) if lang == "en" else ("pour",), rest)
               or f"{core} {_translate_prep(words[0], lang)} {rest}")
    elif head in _PLACE_PREPS:  # "aux enfants", "in practice": added as it is
        out = f"{core} {_translate_prep(words[0], lang)} {' '.join(words[1:])}"
    else:
        about = _replace_after(core, _ABOUT[lang], topic)
        out = about or f"{core}, {'et' if lang == 'fr' else 'and'} {topic}"
    query = " ".join(out.split()) + _ending(lang)
    return Rewrite(query, query != typed, prev)
