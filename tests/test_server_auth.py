"""The login in front of everything, the viewer's routes and PDF.js, and the chat without PDF.js (no browser)."""

from __future__ import annotations

import shutil

import pytest

from arrival.assistant.server import Backend, build_app
from arrival.assistant.viewer import pdfjs_dir

from .conftest import DEMO
from .test_server import _respond, _run


@pytest.fixture
def indexed(hash_settings, tmp_path):  # type: ignore[no-untyped-def]
    src = tmp_path / "incoming" / "gfmd.pdf"
    src.parent.mkdir()
    shutil.copy(DEMO, src)
    backend = Backend(hash_settings)
    [res] = backend.ingest_uploads([("gfmd.pdf", src)])
    assert res.status == "indexed"
    [doc_id] = backend.documents()
    return backend, doc_id


def _login(client, password: str):  # type: ignore[no-untyped-def]
    return client.post("/login", data={"password": password, "next": "/"}, follow_redirects=False)


def test_password_protects_chat_pdf_viewer_and_pdfjs(indexed, monkeypatch):
    """One login (a real middleware, not Gradio's internals) guards every path: the chat, Gradio's API, /pdf,
    the viewer and PDF.js's files."""
    from fastapi.testclient import TestClient

    from arrival.assistant import auth

    monkeypatch.setattr(auth, "FAIL_DELAY_S", 0.0)
    backend, doc_id = indexed
    settings = backend.settings.model_copy(update={"password": "s3cret pass"})
    app = build_app(settings, backend=Backend(settings))
    guarded = [f"/pdf/{doc_id}", "/gradio_api/info", "/config", f"/viewer/?doc={doc_id}&page=1",
               "/arrival-static/app.js", "/pdfjs/build/pdf.min.mjs"]
    with TestClient(app) as client:
        for path in guarded:
            r = client.get(path, follow_redirects=False)
            assert r.status_code == 401 and b"%PDF" not in r.content, path
        # a page asked for by a browser goes to the login form, in the browser's language
        r = client.get("/", headers={"accept": "text/html", "accept-language": "fr-FR"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
        form = client.get(r.headers["location"], headers={"accept-language": "fr-FR"})
        assert form.status_code == 200 and "Mot de passe" in form.text and 'type="password"' in form.text
        bad = _login(client, "wrong")
        assert bad.status_code == 401 and "Wrong password." in bad.text and "arrival_session" not in bad.headers.get(
            "set-cookie", "")
        # a forged or tampered cookie is not a login
        client.cookies.set("arrival_session", "9999999999.abc.forged")
        assert client.get(f"/pdf/{doc_id}").status_code == 401
        client.cookies.clear()
        r = _login(client, "s3cret pass")
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=" in cookie
        r = client.get(f"/pdf/{doc_id}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        assert client.get("/").status_code == 200
        assert client.get("/arrival-static/app.js").status_code == 200
        if pdfjs_dir() is not None:
            assert client.get(f"/viewer/?doc={doc_id}&page=1").status_code == 200
            assert client.get("/pdfjs/build/pdf.min.mjs").status_code == 200
        # logging out ends it
        client.get("/logout", follow_redirects=False)
        client.cookies.clear()
        assert client.get(f"/pdf/{doc_id}").status_code == 401
    # another client, not logged in
    with TestClient(app) as other:
        assert other.get(f"/pdf/{doc_id}").status_code == 401


def test_login_never_redirects_off_site_and_limits_attempts(hash_settings, monkeypatch):
    from fastapi.testclient import TestClient

    from arrival.assistant import auth

    monkeypatch.setattr(auth, "FAIL_DELAY_S", 0.0)
    settings = hash_settings.model_copy(update={"password": "pw"})
    with TestClient(build_app(settings)) as client:
        for target in ["//evil.example/", "https://evil.example/", "/\\evil.example"]:
            r = client.post("/login", data={"password": "pw", "next": target}, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/", target
        client.cookies.clear()
        codes = [_login(client, "nope").status_code for _ in range(auth.MAX_FAILS + 1)]
        assert codes[:-1] == [401] * auth.MAX_FAILS and codes[-1] == 429
        assert _login(client, "pw").status_code == 429  # even the right one, for a minute


def test_session_tokens_expire_and_are_signed():
    from arrival.assistant.auth import Sessions

    s = Sessions(key=b"k" * 32, lifetime_s=60)
    token = s.issue(now=1000.0)
    assert s.valid(token, now=1059.0) and not s.valid(token, now=1061.0)
    expiry, nonce, sig = token.split(".")
    assert not s.valid(f"{int(expiry) + 10_000}.{nonce}.{sig}", now=1000.0)  # a longer life is not signed
    assert not Sessions(key=b"x" * 32).valid(token, now=1000.0) and not s.valid("", now=0) and not s.valid(None)


def test_viewer_and_pdfjs_routes(indexed, monkeypatch):
    from fastapi.testclient import TestClient

    backend, doc_id = indexed
    with TestClient(build_app(backend.settings, backend=backend)) as client:
        assert client.get("/arrival-static/app.js").headers["content-type"].startswith(("application/javascript",
                                                                                        "text/javascript"))
        assert client.get("/arrival-static/../server.py").status_code == 404
        if pdfjs_dir() is None:
            pytest.skip("PDF.js is not installed (make pdfjs)")
        r = client.get(f"/viewer/?doc={doc_id}&page=2&q=x")
        assert r.status_code == 200 and "viewer.js" in r.text and r.headers["x-content-type-options"] == "nosniff"
        csp = r.headers["content-security-policy"]
        assert "script-src 'self' 'wasm-unsafe-eval'" in csp and "frame-ancestors 'self'" in csp and "eval'" in csp
        assert client.get("/viewer", follow_redirects=False).status_code == 307
        mjs = client.get("/pdfjs/build/pdf.worker.min.mjs")
        assert mjs.status_code == 200 and "javascript" in mjs.headers["content-type"]
        assert client.get("/pdfjs/cmaps/78-H.bcmap").status_code == 200
        # the PDF is served with ranges (PDF.js fetches big files in parts)
        part = client.get(f"/pdf/{doc_id}", headers={"range": "bytes=0-99"})
        assert part.status_code == 206 and len(part.content) == 100 and part.content.startswith(b"%PDF-")


def test_without_pdfjs_citations_open_the_pdf_and_say_why(indexed, monkeypatch):
    from fastapi.testclient import TestClient

    from arrival.assistant.ui import viewer_panel

    monkeypatch.setenv("ARRIVAL_PDFJS", "")
    assert pdfjs_dir() is None
    backend, doc_id = indexed
    with TestClient(build_app(backend.settings, backend=backend)) as client:
        assert client.get(f"/viewer/?doc={doc_id}&page=1").status_code == 404
        assert client.get("/pdfjs/build/pdf.min.mjs").status_code == 404
    note = viewer_panel("fr")
    assert "make setup" in note and "nouvel onglet" in note and "<iframe" not in note
    chat, _ = _run(_respond(backend), "La ville de Malaga veille à ce qu'il ne soit pas nécessaire de disposer "
                                      "d'une pièce d'identité")
    sources = chat.sources
    assert f'href="pdf/{doc_id}#page=' in sources and "viewer/?" not in sources and 'target="_blank"' in sources
