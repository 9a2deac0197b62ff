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
        "export": "Export the conversation (Markdown)",
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
        "no_index": "No documents are indexed yet: add PDF files in the Library tab.",
        "model_error": "The embedding model is not available: {reason}",
        "error": "Something went wrong: {reason}",
        "not_pdf": "not a PDF file (it does not start with %PDF-)",
        "too_big": "larger than the {mb} MB limit",
        "unreadable": "the uploaded file could not be read",
        "no_files": "No file received.",
        "busy": "Another indexing run is in progress; try again in a moment.",
        "export_title": "Answer",
        "export_conversation": "Conversation",
        "export_question": "Question",
        "export_sources": "Sources",
        # tabs, first screen, search, library (static)
        "tab_chat": "Chat",
        "tab_search": "Search",
        "tab_library": "Library",
        "examples_title": "Ask one of these questions, taken from the documents:",
        "search_query": "Words or a question",
        "search_placeholder": "e.g. one-stop shop for migrants",
        "search_btn": "Search",
        "retriever": "Ranking",
        "results_k": "Passages listed",
        "export_csv": "Download CSV",
        "export_jsonl": "Download JSONL",
        "lib_filter": "Filter by title or file name",
        "lib_remove_pick": "Document to remove",
        "lib_remove": "Remove…",
        "lib_confirm": "Yes, remove it",
        "lib_cancel": "Cancel",
        "lib_upload": "Add PDF files",
        "lib_upload_help": "Drop PDF files here or click to choose them. Each file is checked, stored and indexed; "
                           "a bar shows where each one is.",
        "viewer_close": "Close the viewer",
        # server-rendered
        "show_in_pdf": "Show the quote in the PDF (page {page})",
        "show_page": "Show page {page} in the viewer",
        "source_n": "Source {n}",
        "viewer_missing": "The built-in PDF viewer is not installed (run “make setup”, which needs npm): citations "
                          "open the PDF at the page in a new tab, without the highlight.",
        "viewer_title": "Cited page",
        "viewer_frame": "PDF viewer: the cited page, with the quote highlighted",
        "understood_as": "Searched as:",
        "upload_indexed": "indexed: {pages} pages, {chunks} passages",
        "stage_queued": "waiting",
        "stage_checking": "checking the file",
        "stage_reading": "reading the pages",
        "stage_indexing": "computing the passages' vectors",
        "stage_writing": "writing the index",
        "stage_done": "done",
        "lib_title": "Title",
        "lib_lang": "Language",
        "lib_pages": "Pages",
        "lib_passages": "Passages",
        "lib_added": "Added",
        "lib_status": "Status",
        "lib_caption": "{n} indexed documents",
        "lib_empty": "No documents yet.",
        "lib_no_match": "No document matches “{q}”.",
        "lib_confirm_text": "Remove “{title}” from the index? Its passages will no longer be searched or cited "
                            "(the file itself is deleted only if it was uploaded here).",
        "lib_confirm_failed": "Dismiss the failed file “{title}” from the list?",
        "lib_removed": "“{title}” was removed from the index.",
        "lib_dismissed": "“{title}” was dismissed from the list.",
        "lib_pick_first": "Choose a document first.",
        "lib_gone": "That document is no longer in the index.",
        "overview": "{docs} documents, {pages} pages — {langs}",
        "overview_empty": "No documents are indexed yet: add PDF files in the Library tab.",
        "search_help": "Type words or a question: passages are ranked as the chat ranks them, with their scores.",
        "search_none": "No passage found.",
        "search_caption": "{n} passages for “{q}”",
        "res_rank": "Rank",
        "res_score": "Score",
        "res_lang": "Language",
        "res_doc": "Document",
        "res_passage": "Passage",
        "mode_hybrid": "hybrid (recommended)",
        "mode_bm25": "keywords (BM25)",
        "mode_dense": "meaning (dense vectors)",
        "login_title": "Log in",
        "login_help": "This chat is protected by a password.",
        "password": "Password",
        "login": "Log in",
        "wrong_password": "Wrong password.",
        "too_many_logins": "Too many attempts: wait a minute and try again.",
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
        "export": "Exporter la conversation (Markdown)",
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
        "no_index": "Aucun document n'est encore indexé : ajoutez des PDF dans l'onglet Bibliothèque.",
        "model_error": "Le modèle d'embeddings n'est pas disponible : {reason}",
        "error": "Une erreur s'est produite : {reason}",
        "not_pdf": "ce n'est pas un fichier PDF (il ne commence pas par %PDF-)",
        "too_big": "dépasse la limite de {mb} Mo",
        "unreadable": "le fichier envoyé n'a pas pu être lu",
        "no_files": "Aucun fichier reçu.",
        "busy": "Une autre indexation est en cours ; réessayez dans un instant.",
        "export_title": "Réponse",
        "export_conversation": "Conversation",
        "export_question": "Question",
        "export_sources": "Sources",
        "tab_chat": "Conversation",
        "tab_search": "Recherche",
        "tab_library": "Bibliothèque",
        "examples_title": "Posez l'une de ces questions, tirées des documents :",
        "search_query": "Mots ou question",
        "search_placeholder": "p. ex. guichet unique pour les migrants",
        "search_btn": "Rechercher",
        "retriever": "Classement",
        "results_k": "Passages listés",
        "export_csv": "Télécharger en CSV",
        "export_jsonl": "Télécharger en JSONL",
        "lib_filter": "Filtrer par titre ou nom de fichier",
        "lib_remove_pick": "Document à retirer",
        "lib_remove": "Retirer…",
        "lib_confirm": "Oui, le retirer",
        "lib_cancel": "Annuler",
        "lib_upload": "Ajouter des fichiers PDF",
        "lib_upload_help": "Déposez des fichiers PDF ici ou cliquez pour les choisir. Chaque fichier est vérifié, "
                           "enregistré et indexé ; une barre montre où en est chacun.",
        "viewer_close": "Fermer la visionneuse",
        "show_in_pdf": "Voir la citation dans le PDF (page {page})",
        "show_page": "Voir la page {page} dans la visionneuse",
        "source_n": "Source {n}",
        "viewer_missing": "La visionneuse PDF intégrée n'est pas installée (lancez « make setup », qui demande npm) : "
                          "les citations ouvrent le PDF à la page dans un nouvel onglet, sans surlignage.",
        "viewer_title": "Page citée",
        "viewer_frame": "Visionneuse PDF : la page citée, avec la citation surlignée",
        "understood_as": "Question comprise comme :",
        "upload_indexed": "indexé : {pages} pages, {chunks} passages",
        "stage_queued": "en attente",
        "stage_checking": "vérification du fichier",
        "stage_reading": "lecture des pages",
        "stage_indexing": "calcul des vecteurs des passages",
        "stage_writing": "écriture de l'index",
        "stage_done": "terminé",
        "lib_title": "Titre",
        "lib_lang": "Langue",
        "lib_pages": "Pages",
        "lib_passages": "Passages",
        "lib_added": "Ajouté le",
        "lib_status": "État",
        "lib_caption": "{n} documents indexés",
        "lib_empty": "Aucun document pour l'instant.",
        "lib_no_match": "Aucun document ne correspond à « {q} ».",
        "lib_confirm_text": "Retirer « {title} » de l'index ? Ses passages ne seront plus cherchés ni cités "
                            "(le fichier lui-même n'est supprimé que s'il a été envoyé ici).",
        "lib_confirm_failed": "Retirer le fichier en échec « {title} » de la liste ?",
        "lib_removed": "« {title} » a été retiré de l'index.",
        "lib_dismissed": "« {title} » a été retiré de la liste.",
        "lib_pick_first": "Choisissez d'abord un document.",
        "lib_gone": "Ce document n'est plus dans l'index.",
        "overview": "{docs} documents, {pages} pages — {langs}",
        "overview_empty": "Aucun document n'est encore indexé : ajoutez des PDF dans l'onglet Bibliothèque.",
        "search_help": "Saisissez des mots ou une question : les passages sont classés comme dans la conversation, "
                       "avec leurs scores.",
        "search_none": "Aucun passage trouvé.",
        "search_caption": "{n} passages pour « {q} »",
        "res_rank": "Rang",
        "res_score": "Score",
        "res_lang": "Langue",
        "res_doc": "Document",
        "res_passage": "Passage",
        "mode_hybrid": "hybride (recommandé)",
        "mode_bm25": "mots-clés (BM25)",
        "mode_dense": "sens (vecteurs denses)",
        "login_title": "Connexion",
        "login_help": "Cette conversation est protégée par un mot de passe.",
        "password": "Mot de passe",
        "login": "Se connecter",
        "wrong_password": "Mot de passe incorrect.",
        "too_many_logins": "Trop de tentatives : attendez une minute et réessayez.",
    },
}

# Keys whose text the browser translates (component labels); the rest are rendered by the server.
STATIC_KEYS = ("title", "subtitle", "chat", "question", "placeholder", "send", "clear", "export", "sources",
               "options", "languages", "documents", "k", "add_docs", "upload", "upload_help", "no_sources",
               "tab_chat", "tab_search", "tab_library", "examples_title", "search_query", "search_placeholder",
               "search_btn", "retriever", "results_k", "export_csv", "export_jsonl", "lib_filter", "lib_remove_pick",
               "lib_remove", "lib_confirm", "lib_cancel", "lib_upload", "lib_upload_help", "viewer_close",
               "mode_hybrid", "mode_bm25", "mode_dense")


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
