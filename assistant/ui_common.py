"""Helpers the chat's tabs share (assistant/ui.py, ui_search.py, ui_library.py): the person's language, toasts,
the documents dropdowns."""

from __future__ import annotations

import glob
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from arrival.assistant.i18n import pick_lang
from arrival.errors import ArrivalError

if TYPE_CHECKING:
    from arrival.assistant.server import Backend


def warn(message: str) -> None:
    """A toast for the person at the browser. Gradio renders its text as HTML: escape it (file names...)."""
    gr.Warning(html.escape(message))


def request_lang(request: gr.Request | None) -> str:
    if request is None:
        return "en"
    headers = getattr(request, "headers", None)
    return pick_lang(headers.get("accept-language") if headers is not None else None)


def document_choices(backend: Backend) -> list[tuple[str, str]]:
    """(label, filter value) for the documents dropdowns. The value is the path as an escaped glob."""
    try:
        docs = list(backend.documents().values())
    except ArrivalError:
        return []
    labels = [d.title.strip() or Path(d.path).name for d in docs]
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    out = []
    for d, label in zip(docs, labels, strict=True):
        if len(label) > 90:
            label = label[:88] + "…"
        if seen.get(label, 0) > 1:
            label = f"{label} ({Path(d.path).name})"
        out.append((label, glob.escape(d.path)))
    return sorted(out, key=lambda x: x[0].casefold())


def refresh_dropdown(backend: Backend, current: list[str] | None) -> Any:
    """An update of a documents dropdown: today's documents, the ones chosen kept if still indexed. (A dropdown
    updated this way and then read adds one entry to the session's table (assistant/ui.py): once per refresh,
    which only follows a page load or a change of the library.)"""
    choices = document_choices(backend)
    values = {v for _, v in choices}
    return gr.update(choices=choices, value=[v for v in (current or []) if v in values])
