"""The Library tab: every indexed document (title, language, pages, passages, when it was added, status) and the
uploads that failed (with why); a filter by title; removing a document after a confirmation; adding documents by
upload with a progress bar per file (assistant/library.py does the work).

The removal dropdown gets updates (its choices follow the filter and the index), so it is read only to remove
a document; the table, the upload box and the progress get plain values only (assistant/ui.py says why).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from arrival.assistant.i18n import t
from arrival.assistant.library import dismiss_failure, library_rows, remove_document, upload_with_progress
from arrival.assistant.render import friendly_error, render_library, render_upload_progress
from arrival.errors import ArrivalError

if TYPE_CHECKING:
    from arrival.assistant.server import Backend

log = logging.getLogger(__name__)
FAILED = "failed:"  # prefix of a failed file's value in the removal dropdown


def removal_choices(backend: Backend, query: str = "") -> list[tuple[str, str]]:
    out = []
    for r in library_rows(backend, query):
        if r.status == "indexed":
            out.append((f"{r.title} ({r.name})" if r.title != r.name else r.name, r.doc_id))
        else:
            out.append((f"{r.name} — {t('failed')}", FAILED + r.name))
    return out


@dataclass
class LibraryTab:
    backend: Backend
    filter: gr.Textbox
    table: gr.HTML
    pick: gr.Dropdown
    remove: gr.Button
    confirm_box: gr.Group
    confirm_text: gr.HTML
    confirm: gr.Button
    cancel: gr.Button
    status: gr.HTML
    upload: gr.File
    progress: gr.HTML

    def connect(self, demo: gr.Blocks, tab: gr.Tab, dropdowns: tuple[gr.Dropdown, gr.Dropdown],
                first_screen: tuple[gr.HTML, Sequence[Any]], load_overview: Callable[..., Any],
                load_examples: Callable[..., Any]) -> None:
        """Events, including those that refresh the other tabs after the index changed: `dropdowns` are the chat's
        and the search's document filters; `first_screen` is the chat's overview and what `load_examples` sets."""
        from arrival.assistant.ui_common import refresh_dropdown, request_lang, warn

        backend = self.backend

        def show(query: str, request: gr.Request) -> tuple[Any, ...]:
            """The table and the removal choices for the filter (the choice made, if any, is kept)."""
            lang = request_lang(request)
            return (render_library(library_rows(backend, query or ""), lang, query or ""),
                    gr.update(choices=removal_choices(backend, query or "")))

        def refreshed(query: str, chat_docs: list[str] | None, search_docs: list[str] | None,
                      request: gr.Request) -> tuple[Any, ...]:
            """After a removal or an upload: the table, the removal choices (none chosen) and the documents
            dropdowns of the other tabs."""
            lang, q = request_lang(request), query or ""
            return (render_library(library_rows(backend, q), lang, q),
                    gr.update(choices=removal_choices(backend, q), value=None),
                    *(refresh_dropdown(backend, c) for c in (chat_docs, search_docs)))

        def ask_confirm(choice: str | None, request: gr.Request) -> tuple[Any, ...]:
            lang = request_lang(request)
            if not choice:
                warn(t("lib_pick_first", lang))
                return gr.update(visible=False), ""
            if choice.startswith(FAILED):
                text = t("lib_confirm_failed", lang, title=choice[len(FAILED):])
            else:
                info = backend.documents().get(choice)
                if info is None:
                    warn(t("lib_gone", lang))
                    return gr.update(visible=False), ""
                text = t("lib_confirm_text", lang, title=info.title.strip() or Path(info.path).name)
            return gr.update(visible=True), f'<p class="lib-confirm" role="alert">{html.escape(text)}</p>'

        def do_remove(choice: str | None, request: gr.Request) -> tuple[Any, ...]:
            lang = request_lang(request)
            message = ""
            try:
                if choice and choice.startswith(FAILED):
                    name = choice[len(FAILED):]
                    dismiss_failure(backend.settings.home, name)
                    message = t("lib_dismissed", lang, title=name)
                elif choice:
                    done, title = remove_document(backend, choice)
                    message = t("lib_removed", lang, title=title) if done else t("lib_gone", lang)
            except Exception as exc:
                if not isinstance(exc, ArrivalError):
                    log.exception("removing %r failed", choice)
                message = friendly_error(exc, lang)
                warn(message)
            return gr.update(visible=False), f'<p class="lib-status-line" role="status">{html.escape(message)}</p>'

        def on_upload(files: list[str] | str | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
            """The progress of each file, streamed into the progress panel (the upload box is emptied at once, its
            files being on the server); the table and the dropdowns are refreshed after (`refreshed`)."""
            lang = request_lang(request)
            paths = [files] if isinstance(files, str) else list(files or [])
            if not paths:
                yield "", None
                return
            try:
                for progress, results in upload_with_progress(backend, [(Path(p).name, Path(p)) for p in paths]):
                    bad = [r for r in results or [] if r.status == "failed"]
                    if bad:
                        warn(", ".join(f"{r.name}: {t(r.reason, lang) if r.reason else r.reason}" for r in bad))
                    yield render_upload_progress(progress, lang), None
            except Exception as exc:
                if not isinstance(exc, ArrivalError):
                    log.exception("upload failed")
                msg = friendly_error(exc, lang)
                warn(msg)
                yield f'<p class="upload-note error" role="alert">{html.escape(msg)}</p>', None

        overview_html, examples = first_screen
        self.filter.change(show, [self.filter], [self.table, self.pick], queue=False, show_progress="hidden")
        tab.select(show, [self.filter], [self.table, self.pick], queue=False, show_progress="hidden")
        demo.load(show, [self.filter], [self.table, self.pick], queue=False)
        self.remove.click(ask_confirm, [self.pick], [self.confirm_box, self.confirm_text], queue=False)
        self.cancel.click(lambda: (gr.update(visible=False), ""), None, [self.confirm_box, self.confirm_text],
                          queue=False)
        after = (refreshed, [self.filter, *dropdowns], [self.table, self.pick, *dropdowns])
        for changed in (self.confirm.click(do_remove, [self.pick], [self.confirm_box, self.status],
                                           concurrency_limit=1),
                        self.upload.upload(on_upload, [self.upload], [self.progress, self.upload], concurrency_limit=1,
                                           show_progress="hidden")):
            changed.then(*after, queue=False, show_progress="hidden").then(
                load_overview, None, overview_html, queue=False).then(
                load_examples, None, list(examples), show_progress="hidden")


def build_library_tab(backend: Backend, i18n: Any) -> LibraryTab:
    filter_box = gr.Textbox(label=i18n("lib_filter"), lines=1, max_lines=1, elem_id="library-filter")
    table = gr.HTML("", elem_id="library-table", js_on_load=None, max_height=560)
    with gr.Row(elem_id="library-remove-row"):
        pick = gr.Dropdown(choices=[], value=None, label=i18n("lib_remove_pick"), elem_id="library-pick", scale=4,
                           min_width=220, filterable=True)
        remove = gr.Button(i18n("lib_remove"), variant="stop", scale=1, min_width=110, elem_id="library-remove")
    with gr.Group(visible=False, elem_id="library-confirm") as confirm_box:
        confirm_text = gr.HTML("", elem_id="library-confirm-text", js_on_load=None)
        with gr.Row():
            confirm = gr.Button(i18n("lib_confirm"), variant="stop", elem_id="library-confirm-yes", min_width=140)
            cancel = gr.Button(i18n("lib_cancel"), variant="secondary", elem_id="library-confirm-no", min_width=140)
    status = gr.HTML("", elem_id="library-status", js_on_load=None)
    gr.Markdown(f"### {i18n('lib_upload')}", elem_id="library-upload-title")
    gr.Markdown(i18n("lib_upload_help"))
    upload = gr.File(label=i18n("lib_upload"), file_count="multiple", file_types=[".pdf"], type="filepath",
                     elem_id="library-upload", height=130)
    progress = gr.HTML("", elem_id="library-progress", js_on_load=None)
    return LibraryTab(backend, filter_box, table, pick, remove, confirm_box, confirm_text, confirm, cancel, status,
                      upload, progress)
