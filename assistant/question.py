"""What a question asks for: its content terms (with their forms in the other language) and, when it asks for a
specific kind of value, which kind (an amount of money, a count, a share, a date, a duration, a person).

The kind of value drives two decisions in `assistant.answer`: the quote should contain such a value, and when no
passage on the question's topic contains one, the documents describe the topic but do not give the fact (a
"near miss"), which is said instead of quoting something else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from arrival.index.keyword import analyze, fold, stopwords

NUMBER = r"\d[\d\s.,]*\d|\d"
_NUM = re.compile(rf"(?<![\w/])(?:{NUMBER})(?![\w/])")
_YEAR = re.compile(r"(?<!\d)(?:1[89]\d\d|20\d\d)(?!\d)")
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre|novembre|décembre|decembre")
_MONTH = re.compile(rf"\b(?:{_MONTHS})\b", re.IGNORECASE)
_CURRENCY = re.compile(
    r"(?:USD|US\$|EUR|€|\$|£|CHF|GBP|dollars?|euros?|francs?|livres? sterling)\s*(?:" + NUMBER + r")"
    r"|(?:" + NUMBER + r")\s*(?:USD|EUR|€|\$|£|CHF|dollars?|euros?|francs?)"
    r"|(?:" + NUMBER + r")\s*(?:million|millions|billion|billions|milliards?|bn|m)\b\s*(?:of\s+|d['’]\s*|de\s+)?"
    r"(?:USD|EUR|dollars?|euros?|francs?)", re.IGNORECASE)
_PERCENT = re.compile(rf"(?:{NUMBER})\s*(?:%|per ?cent|pour ?cent)|\b(?:half|third|quarter|majority|minority|"
                      r"one in \w+|moitié|tiers|quart|majorité|minorité|un sur \w+)\b", re.IGNORECASE)
_NUMBER_WORDS = re.compile(
    r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|"
    r"hundreds|thousand|thousands|dozen|dozens|million|millions|deux|trois|quatre|cinq|sept|huit|neuf|dix|"
    r"onze|douze|vingt|trente|quarante|cinquante|cent|centaines|mille|milliers|douzaine|douzaines)\b",
    re.IGNORECASE)
_DURATION = re.compile(
    rf"(?:{NUMBER}|\b(?:one|two|three|four|five|six|ten|deux|trois|quatre|cinq|six|dix)\b)\s*"
    r"(?:years?|months?|weeks?|days?|hours?|ans?|années?|mois|semaines?|jours?|heures?)\b", re.IGNORECASE)
_ROLE = (r"mayor|minister|director|head|chair|chairman|chairwoman|chairperson|president|founder|author|leader|"
         r"coordinator|secretary|commissioner|spokesperson|governor|ceo|maire|ministre|directeur|directrice|"
         r"responsable|président|présidente|fondateur|fondatrice|auteur|autrice|coordinateur|coordinatrice|"
         r"secrétaire|commissaire|gouverneur|dirigeant|dirigeante")
_PERSON = re.compile(
    r"(?:\b(?:M\.|Mme|Mr\.?|Mrs\.?|Ms\.?|Dr\.?|Mayor|Maire|Minister|Ministre|Président|President)\s+"
    r"[A-ZÀ-Þ][a-zà-ÿ]+)"
    rf"|(?:\b(?i:{_ROLE})\b[^.;:]{{0,40}}?[A-ZÀ-Þ][a-zà-ÿ]+\s+[A-ZÀ-Þ][a-zà-ÿ]+)"
    rf"|(?:[A-ZÀ-Þ][a-zà-ÿ]+\s+[A-ZÀ-Þ][a-zà-ÿ]+,\s+(?:the\s+|le\s+|la\s+)?(?i:{_ROLE})\b)")

# question patterns -> the kind of value asked for (first match wins; order matters: money before count)
_ASKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # a change asked for ("by how much did the cost fall") is a number of any kind: percent, money or count
    ("count", re.compile(r"\bby how much\b|\bde combien\b", re.IGNORECASE)),
    ("money", re.compile(
        r"\bhow much (?:\w+ )?(?:money|funding|funds)\b|\bhow much (?:did|does|do|was|is|were|will|has|have)\b"
        r"|\bwhat (?:is|was|were|are) the (?:total |annual |overall )?"
        r"(?:cost|costs|budget|amount|price|funding|fees?)\b"
        r"|\b(?:what|which) (?:budget|amount|sum)\b|\bhow (?:large|big) (?:is|was) the (?:budget|fund|funding)\b"
        r"|\bcombien (?:d['’]argent|co[uû]te|a co[uû]t[ée]|ont co[uû]t[ée]|a-t-(?:il|elle) co[uû]t[ée])"
        r"|\bquel(?:le)? (?:est|était|a été) (?:le|la) (?:montant|co[uû]t|budget|prix|dotation|enveloppe)\b"
        r"|\bquel (?:budget|montant)\b|\bde quel (?:budget|montant)\b", re.IGNORECASE)),
    ("duration", re.compile(r"\bhow long\b|\bfor how many (?:years|months|weeks|days)\b|\bcombien de temps\b|"
                            r"\bpendant combien\b|\bquelle (?:est la )?durée\b", re.IGNORECASE)),
    ("percent", re.compile(r"\b(?:what|which) (?:percentage|percent|share|proportion|fraction)\b|"
                           r"\bhow much of\b|\bquel(?:le)? (?:pourcentage|part|proportion)\b|\bquel taux\b|"
                           r"\bwhat (?:is|was|are|were) the (?:[\w-]+ ){0,3}rates?\b|"
                           r"\bquel(?:le)? (?:est|était|a été) (?:le|la) (?:taux|pourcentage|proportion)\b",
                           re.IGNORECASE)),
    ("count", re.compile(r"\bhow many\b|\bwhat number of\b|\bcombien (?:de|d['’])|"
                         r"\bquel (?:est le )?nombre\b", re.IGNORECASE)),
    ("date", re.compile(r"^\s*when (?:did|was|were|will|is|does|do|has|had)\b|\b(?:what|which) year\b|"
                        r"\bwhat date\b|^\s*quand\b|\bquelle (?:année|date)\b|\bdepuis quand\b|"
                        r"\ben quelle année\b|\bà quelle date\b", re.IGNORECASE)),
    ("person", re.compile(
        rf"\b(?:who|whom|qui)\b[^?]*\b(?:{_ROLE})\b|\b(?:{_ROLE})\b[^?]*\b(?:who|whom|qui)\b|"
        rf"\b(?:name|nom|named|nommé|nommée)\b[^?]*\b(?:{_ROLE})\b|\bwho (?:is|was) (?:the )?(?:{_ROLE})\b|"
        rf"\b(?:which|what|quel|quelle) (?:{_ROLE})\b",
        re.IGNORECASE)),
)

_VALUE: dict[str, tuple[re.Pattern[str], ...]] = {
    "money": (_CURRENCY,),
    "duration": (_DURATION,),
    "percent": (_PERCENT,),
    "count": (_NUM, _NUMBER_WORDS),
    "date": (_YEAR, _MONTH),
    "person": (_PERSON,),
}

# words that say what kind of value is asked for, not what it is about
_FRAME = frozenset(fold(w) for w in (
    "how", "many", "much", "long", "what", "which", "when", "who", "whom", "year", "years", "date", "number",
    "share", "percentage", "percent", "proportion", "rate", "cost", "costs", "budget", "amount", "money", "name",
    "named", "combien", "quel", "quelle", "quels", "quelles", "quand", "qui", "année", "années", "nombre", "part",
    "pourcentage", "taux", "coût", "coûts", "montant", "nom", "nommé", "temps", "durée"))


def asked_value(question: str) -> str | None:
    """The kind of value the question asks for, or None for a question that asks for no specific value."""
    for kind, pattern in _ASKS:
        if pattern.search(question):
            return kind
    return None


def has_value(text: str, kind: str) -> bool:
    """Whether `text` states a value of that kind (a figure with a currency, a year, a person's name, ...). A count
    is a number that is not a year (the year a programme started does not say how many it served)."""
    if kind == "count":
        return bool(_NUMBER_WORDS.search(text)) or any(not _YEAR.fullmatch(m.group(0).strip())
                                                       for m in _NUM.finditer(text))
    return any(p.search(text) for p in _VALUE.get(kind, ()))


_WORD = re.compile(r"[^\W_]+(?:[-][^\W_]+)*", re.UNICODE)
_ELISION = re.compile(r"\b(?:[ldjmnstc]|qu|jusqu|lorsqu|puisqu)['’ʼ]", re.IGNORECASE)
_VERB_FRAGMENT = re.compile(r"-t-|-(?:il|elle|ils|elles|on|ce|je|tu|nous|vous)$", re.IGNORECASE)


@dataclass(frozen=True)
class Term:
    word: str  # as written in the question
    forms: frozenset[str]  # analysed (stemmed) forms in any language: its own, its lexicon translations
    weight: float  # inverse document frequency
    named: bool  # a capitalised name, an acronym or a number


@dataclass(frozen=True)
class QuestionTerms:
    terms: tuple[Term, ...]

    def coverage(self, analysed: set[str]) -> float:
        """Weighted share of the question's terms found among a text's analysed tokens."""
        total = sum(t.weight for t in self.terms)
        if total <= 0:
            return 0.0
        return sum(t.weight for t in self.terms if t.forms & analysed) / total

    def named_coverage(self, analysed: set[str]) -> float | None:
        named = [t for t in self.terms if t.named]
        if not named:
            return None
        return sum(t.weight for t in named if t.forms & analysed) / sum(t.weight for t in named)


_GLUED_NOTE = re.compile(r"(?<=\d)(?:[ivxlc]{1,6})\b")


def unglue_notes(text: str) -> str:
    """"2050i" -> "2050": a note marker glued to a figure hides the figure from word matching."""
    return _GLUED_NOTE.sub("", text)


def question_terms(question: str, lang: str, view: object) -> QuestionTerms:
    """Content words of the question with their forms in each language (the question's own stemmer, the other
    language's stemmer for names and cognates, and the corpus lexicon's translations), weighted by IDF in the
    question's language (`view` is an `index.view.View`)."""
    stop = stopwords(lang)
    words = [w for w in dict.fromkeys(_WORD.findall(_ELISION.sub(" ", question)))
             if fold(w) not in stop and fold(w) not in _FRAME and (len(w) > 2 or w.isdigit())
             and not _VERB_FRAGMENT.search(w)]
    lexicon = view.lexicon  # type: ignore[attr-defined]
    langs = tuple(lexicon.languages) or (lang,)
    idf = view.idf(words, lang) if words else {}  # type: ignore[attr-defined]
    out: list[Term] = []
    for i, w in enumerate(words):
        forms = set(analyze(w, lang))
        for other in langs:
            if other == lang:
                continue
            forms.update(analyze(w, other))
            for t in lexicon.translations(lang, other, w.lower()):
                forms.update(analyze(t, other))
        if not forms:
            continue
        named = w.isdigit() or w.isupper() or (w[:1].isupper() and i > 0)
        out.append(Term(w, frozenset(forms), idf.get(w) or 1.0, named))
    return QuestionTerms(tuple(out))
