"""Interface text in French and English.

Static labels go to the browser through `gr.I18n` (the browser's language picks the table). Text the server
renders itself (citation cards, upload results, error messages) is picked from the request's Accept-Language
header with `pick_lang`.
"""

from __future__ import annotations

LANGS = ("en", "fr")
DEFAULT = "en"

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "arrival",
        "subtitle": "Ask questions about the migration-policy documents. Every answer cites its sources: "
                    "document, page and the exact sentence.",
        "chat": "Conversation",
        "question": "Your question",
        "placeholder": "Ask a question in French or English…",
        "send": "Ask",
        "clear": "Clear",
        "export": "Export answer (Markdown)",
        "sources": "Sources",
        "options": "Search options",
        "languages": "Passage languages (none ticked = all)",
        "documents": "Only these documents (empty = all)",
        "k": "Passages shown",
        "add_docs": "Add documents",
        "upload": "PDF files to add",
        "upload_help": "Drop PDF files here. They are checked, stored and indexed, then searchable at once.",
        # server-rendered
        "no_sources": "Sources of the answer appear here.",
        "closest": "No answer found; the closest passages:",
        "page": "page",
        "open_pdf": "Open the PDF at page {page}",
        "lang_fr": "French",
        "lang_en": "English",
        "file": "File",
        "status": "Result",
        "detail": "Detail",
        "indexed": "indexed",
        "unchanged": "unchanged",
        "failed": "failed",
        "same_as": "same content as {name}, already indexed",
        "upload_done": "{ok} indexed, {same} unchanged, {bad} failed.",
        "ingesting": "Indexing",
        "empty_question": "Type a question first.",
        "no_index": "No documents are indexed yet: add PDF files under “Add documents”.",
        "model_error": "The embedding model is not available: {reason}",
        "error": "Something went wrong: {reason}",
        "not_pdf": "not a PDF file (it does not start with %PDF-)",
        "too_big": "larger than the {mb} MB limit",
        "unreadable": "the uploaded file could not be read",
        "no_files": "No file received.",
        "busy": "Another indexing run is in progress; try again in a moment.",
        "export_title": "Answer",
        "export_question": "Question",
        "export_sources": "Sources",
    },
    "fr": {
        "title": "arrival",
        "subtitle": "Posez vos questions sur les documents de politique migratoire. Chaque réponse cite ses "
                    "sources : document, page et phrase exacte.",
        "chat": "Conversation",
        "question": "Votre question",
        "placeholder": "Posez une question en français ou en anglais…",
        "send": "Demander",
        "clear": "Effacer",
        "export": "Exporter la réponse (Markdown)",
        "sources": "Sources",
        "options": "Options de recherche",
        "languages": "Langues des passages (aucune cochée = toutes)",
        "documents": "Seulement ces documents (vide = tous)",
        "k": "Passages affichés",
        "add_docs": "Ajouter des documents",
        "upload": "Fichiers PDF à ajouter",
        "upload_help": "Déposez des fichiers PDF ici. Ils sont vérifiés, enregistrés et indexés, puis "
                       "aussitôt interrogeables.",
        "no_sources": "Les sources de la réponse s'affichent ici.",
        "closest": "Pas de réponse trouvée ; les passages les plus proches :",
        "page": "page",
        "open_pdf": "Ouvrir le PDF à la page {page}",
        "lang_fr": "français",
        "lang_en": "anglais",
        "file": "Fichier",
        "status": "Résultat",
        "detail": "Détail",
        "indexed": "indexé",
        "unchanged": "inchangé",
        "failed": "échec",
        "same_as": "même contenu que {name}, déjà indexé",
        "upload_done": "{ok} indexé(s), {same} inchangé(s), {bad} en échec.",
        "ingesting": "Indexation",
        "empty_question": "Saisissez d'abord une question.",
        "no_index": "Aucun document n'est encore indexé : ajoutez des PDF dans « Ajouter des documents ».",
        "model_error": "Le modèle d'embeddings n'est pas disponible : {reason}",
        "error": "Une erreur s'est produite : {reason}",
        "not_pdf": "ce n'est pas un fichier PDF (il ne commence pas par %PDF-)",
        "too_big": "dépasse la limite de {mb} Mo",
        "unreadable": "le fichier envoyé n'a pas pu être lu",
        "no_files": "Aucun fichier reçu.",
        "busy": "Une autre indexation est en cours ; réessayez dans un instant.",
        "export_title": "Réponse",
        "export_question": "Question",
        "export_sources": "Sources",
    },
}

# Keys whose text the browser translates (component labels); the rest are rendered by the server.
STATIC_KEYS = ("title", "subtitle", "chat", "question", "placeholder", "send", "clear", "export", "sources",
               "options", "languages", "documents", "k", "add_docs", "upload", "upload_help", "no_sources")


def t(key: str, lang: str = DEFAULT, **fmt: object) -> str:
    """The text for `key` in `lang` (falling back to English), formatted with `fmt`."""
    table = TEXT.get(lang, TEXT[DEFAULT])
    text = table.get(key, TEXT[DEFAULT][key])
    return text.format(**fmt) if fmt else text


def pick_lang(accept_language: str | None) -> str:
    """The first of our languages named in an Accept-Language header, by preference weight; else English."""
    if not accept_language:
        return DEFAULT
    best: tuple[float, int, str] | None = None
    for i, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        base = tag.strip().lower().split("-")[0]
        if base not in LANGS:
            continue
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        cand = (-q, i, base)
        if best is None or cand < best:
            best = cand
    return best[2] if best else DEFAULT


def gradio_i18n():  # type: ignore[no-untyped-def]
    """A `gr.I18n` with the static keys of both languages (imported lazily: gradio is heavy)."""
    import gradio as gr

    return gr.I18n(**{lang: {k: TEXT[lang][k] for k in STATIC_KEYS} for lang in LANGS})
