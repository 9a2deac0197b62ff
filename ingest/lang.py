"""Language identification (py3langid, restricted to the languages this tool is used with)."""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Any

LANGUAGES = ("en", "fr", "es", "de", "it", "pt", "nl")

_lock = threading.Lock()
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ident.set_languages(list(LANGUAGES))
    return ident


def detect(text: str, default: str = "en") -> str:
    """ISO 639-1 code of the text's language; `default` when there are too few letters to tell."""
    if len(_LETTERS.findall(text[:2000])) < 12:
        return default
    with _lock:
        lang, _prob = _identifier().classify(text[:4000])
    return str(lang)


def detect_query(text: str, default: str = "en") -> str:
    """Queries are short: use a lower letter threshold and fall back to French/English cues."""
    if len(_LETTERS.findall(text)) < 3:
        return default
    with _lock:
        ranked = _identifier().rank(text)
    best = [lang for lang, _ in ranked if lang in ("en", "fr")]
    top = str(ranked[0][0])
    return top if top in ("en", "fr") else (best[0] if best else default)
