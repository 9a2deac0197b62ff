"""The Search tab: the ranked passages for a query, with their scores, language and document; filters by language
and document; the results downloaded as CSV or JSON lines (assistant/exports.py)."""

from __future__ import annotations

import html
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from arrival.assistant.exports import search_csv, search_jsonl, write_export
from arrival.assistant.render import friendly_error, render_search_results
from arrival.assistant.viewer import pdfjs_dir
from arrival.errors import ArrivalError, IndexOpenError

if TYPE_CHECKING:
    from arrival.assistant.server import Backend

log = logging.getLogger(__name__)

MODES = ("hybrid", "bm25", "dense")


def build_search_tab(backend: Backend, i18n: Any, exports: Path) -> gr.Dropdown:
    """The tab's components and events. Returns its documents dropdown (refreshed with the chat's)."""
    from arrival.assistant.ui_common import request_lang, warn
    from arrival.index.retrieve import Filters

    settings = backend.settings
    with gr.Row(elem_id="search-row"):
        query = gr.Textbox(label=i18n("search_query"), placeholder=i18n("search_placeholder"), lines=1, max_lines=2,
                           scale=5, elem_id="search-query", min_width=200, submit_btn=False)
        go = gr.Button(i18n("search_btn"), variant="primary", scale=1, min_width=110, elem_id="search-go")
    with gr.Row(elem_id="search-options"):
        langs = gr.CheckboxGroup(choices=[("FR", "fr"), ("EN", "en")], value=[], label=i18n("languages"),
                                 elem_id="search-langs", scale=1, min_width=200)
        docs = gr.Dropdown(choices=[], value=[], multiselect=True, label=i18n("documents"), elem_id="search-docs",
                           scale=3, allow_custom_value=False, min_width=240)
        mode = gr.Radio(choices=[(i18n(f"mode_{m}"), m) for m in MODES], value=settings.retriever,
                        label=i18n("retriever"), elem_id="search-mode", scale=2, min_width=240)
        k = gr.Slider(1, 100, value=20, step=1, label=i18n("results_k"), elem_id="search-k", scale=1, min_width=200)
    with gr.Row(elem_id="search-exports"):
        csv_button = gr.DownloadButton(i18n("export_csv"), value=None, interactive=False, size="sm",
                                       variant="secondary", elem_id="search-csv")
        jsonl_button = gr.DownloadButton(i18n("export_jsonl"), value=None, interactive=False, size="sm",
                                         variant="secondary", elem_id="search-jsonl")
    results = gr.HTML("", elem_id="search-results", js_on_load=None)

    def run(q: str, lang_filter: list[str] | None, doc_filter: list[str] | None, mode_value: str, k_value: float,
            request: gr.Request) -> tuple[Any, ...]:
        lang = request_lang(request)
        q = " ".join((q or "").split())
        off = gr.update(value=None, interactive=False)
        if not q:
            return render_search_results("", [], lang), off, off
        try:
            if not backend.has_index():
                raise IndexOpenError("no index yet")
            t0 = time.perf_counter()
            hits = backend.retriever().search(q, k=int(k_value), mode=mode_value if mode_value in MODES else "hybrid",
                                              filters=Filters(tuple(lang_filter or ()), tuple(doc_filter or ())))
            seconds = time.perf_counter() - t0
        except Exception as exc:
            if not isinstance(exc, ArrivalError):
                log.exception("search %r failed", q)
            msg = friendly_error(exc, lang)
            warn(msg)
            return f'<p class="search-note error">{html.escape(msg)}</p>', off, off
        html_out = render_search_results(q, hits, lang, viewer=pdfjs_dir() is not None, seconds=seconds)
        if not hits:
            return html_out, off, off
        try:
            csv_path = write_export(exports, "arrival-search", ".csv", search_csv(hits))
            jsonl_path = write_export(exports, "arrival-search", ".jsonl", search_jsonl(q, hits))
        except OSError:
            log.exception("could not write the search exports")
            return html_out, off, off
        return (html_out, gr.update(value=str(csv_path), interactive=True),
                gr.update(value=str(jsonl_path), interactive=True))

    inputs = [query, langs, docs, mode, k]
    outputs = [results, csv_button, jsonl_button]
    go.click(run, inputs, outputs, concurrency_limit=4, show_progress="minimal")
    query.submit(run, inputs, outputs, concurrency_limit=4, show_progress="minimal")
    return docs
