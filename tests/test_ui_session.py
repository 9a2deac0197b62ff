"""Gradio's per-session table of components does not grow with the questions a session asks.

Gradio keeps, per session, a table of the page's components; an update of a component that is also read (or
given a plain value) files one more entry that is never removed (assistant/ui.py says how). The chat streamed
updates into the question box and the sources: two entries per question in every session, the server's memory
growing for as long as a tab stays open. Here a real server (the app `arrival serve` runs, on a loopback port)
answers questions in one session, through the chat's own events, and the session's table is counted.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arrival.assistant.server import Backend, build_app
from arrival.eval.load_checks import ask, clear, client, no_telemetry

from .conftest import DEMO

QUESTION = "La ville de Malaga veille à ce qu'il ne soit pas nécessaire de disposer d'une pièce d'identité"


@contextlib.contextmanager
def _serving(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[Any]]]:
    """The app on a free loopback port, in a thread: (url, [the Gradio Blocks])."""
    import uvicorn

    import arrival.assistant.ui as ui

    built: list[Any] = []
    real = ui.build_blocks
    monkeypatch.setattr(ui, "build_blocks", lambda b: built.append(real(b)) or built[-1])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(build_app(backend.settings, backend=backend), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}/", built
    finally:
        server.should_exit = True
        thread.join(30)


def _table(blocks: Any) -> int:
    """Entries in the session tables (one session here)."""
    [session] = blocks.state_holder.session_data.values()
    return len(session.blocks_config.blocks) + len(session.config_values)


def test_the_session_table_does_not_grow_with_the_questions(hash_settings: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    backend = Backend(hash_settings)
    shutil.copy(DEMO, tmp_path / "gfmd.pdf")
    [res] = backend.ingest_uploads([("gfmd.pdf", tmp_path / "gfmd.pdf")])
    assert res.status == "indexed"
    with no_telemetry(), _serving(backend, monkeypatch) as (url, built):
        c = client(url, 60)
        try:
            sizes, history = [], []
            for i in range(6):
                if i == 3:
                    clear(c, 60)
                    history = []
                box, history, sources, _export = ask(c, QUESTION, history, 60)
                assert box == "" and "Malaga" in str(history[-1]) and "<mark>" in sources
                sizes.append(_table(built[0]))
        finally:
            c.close()
    assert sizes[1:] == sizes[:1] * 5, sizes
