"""The PDF viewer beside the answer: PDF.js (npm's `pdfjs-dist`, installed by `make setup` into build/pdfjs, never
from a CDN) and the app's own viewer page, served by this app behind the same login as everything else.

- /viewer/?doc=ID&page=N&q=QUOTE  the viewer page (static/viewer.html + viewer.js): renders the cited page,
  finds the quote in the page's text layer (and on the next page when it runs on) and highlights it;
- /pdfjs/...                      PDF.js's build, cmaps and standard fonts, from the installed package;
- /arrival-static/...          the chat's own script and styles (static/).

When PDF.js is missing, `pdfjs_dir()` is None: citations open the PDF at the page in a new tab instead, and the
chat says why (see `render.viewer_note`).

`fold_text` is the quote normalisation the viewer applies (static/quote-match.mjs), in Python for the tests:
only letters and digits count, lower-cased, without accents, ligatures and œ/æ/ß spelt out, so whitespace, line
ends, hyphenation, quote and apostrophe styles never decide whether a quote matches.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

STATIC = Path(__file__).with_name("static")
PDFJS_VERSION = "5.4.624"  # the version the Makefile installs (npm install pdfjs-dist@...)
_FOLD = {"œ": "oe", "æ": "ae", "ß": "ss", "ø": "o", "ł": "l", "đ": "d", "ı": "i", "ŀ": "l"}
_CACHE = "public, max-age=86400"
# The viewer runs only this app's scripts (PDF.js's WebAssembly decoders need 'wasm-unsafe-eval'; no eval), and
# only inside the chat's own pages.
VIEWER_CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
              "img-src 'self' data: blob:; font-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; "
              "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


def pdfjs_dir() -> Path | None:
    """The installed pdfjs-dist package (ARRIVAL_PDFJS, else build/pdfjs/node_modules/pdfjs-dist in the source
    tree), or None when it is not there."""
    env = os.environ.get("ARRIVAL_PDFJS")
    if env is not None:
        base = Path(env)
        candidates = [base, base / "node_modules" / "pdfjs-dist"] if env else []
    else:
        root = Path(__file__).resolve().parents[1]
        candidates = [root / "build" / "pdfjs" / "node_modules" / "pdfjs-dist"]
    for c in candidates:
        if (c / "build" / "pdf.min.mjs").is_file() and (c / "build" / "pdf.worker.min.mjs").is_file():
            return c
    return None


def fold_char(ch: str) -> str:
    out: list[str] = []
    for c in unicodedata.normalize("NFKD", ch):
        if unicodedata.category(c).startswith("M"):
            continue
        c = c.lower()
        c = _FOLD.get(c, c)
        out.extend(x for x in c if x.isalnum())
    return "".join(out)


def fold_text(text: str) -> str:
    """Letters and digits only, lower case, accents and ligatures folded (see the module's doc)."""
    return "".join(fold_char(ch) for ch in text)


def viewer_href(doc_id: str, page: int, quote: str = "", lang: str = "") -> str:
    """Relative to the chat page, so it works under any mount path."""
    from urllib.parse import urlencode

    params = {"doc": doc_id, "page": str(int(page))}
    if quote:
        params["q"] = " ".join(quote.split())
    if lang:
        params["lang"] = lang
    return "viewer/?" + urlencode(params)


def add_routes(app: FastAPI) -> None:
    """/viewer/, /pdfjs/ and /arrival-static/ on `app` (mounted before the chat at /)."""
    from starlette.requests import Request
    from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.staticfiles import StaticFiles

    def viewer(request: Request) -> Response:
        if not request.url.path.endswith("/"):
            return RedirectResponse(request.url.replace(path=request.url.path + "/"), status_code=307)
        if pdfjs_dir() is None:
            return PlainTextResponse("the PDF viewer is not installed: run 'make setup' (it needs npm)",
                                     status_code=404)
        return FileResponse(STATIC / "viewer.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                                     "Content-Security-Policy": VIEWER_CSP})

    app.add_route("/viewer/", viewer, methods=["GET", "HEAD"])
    app.add_route("/viewer", viewer, methods=["GET", "HEAD"])

    class _Static(StaticFiles):
        def file_response(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            response = super().file_response(*args, **kwargs)
            response.headers.setdefault("Cache-Control", _CACHE)
            response.headers["X-Content-Type-Options"] = "nosniff"
            return response

    app.mount("/arrival-static", _Static(directory=STATIC, check_dir=True), name="arrival-assets")
    pdfjs = pdfjs_dir()
    if pdfjs is not None:
        app.mount("/pdfjs", _Static(directory=pdfjs, check_dir=True), name="pdfjs")
