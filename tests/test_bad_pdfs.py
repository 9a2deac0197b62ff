"""Hostile and broken input: every bad file fails alone with a one-line reason naming it, the batch goes on,
and the command exits 1. Also the security properties of reading PDFs: no active content runs, nothing is
fetched from the network, no pickle in the index. Every specimen is generated at test time (tests/pdfgen.py)."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arrival.errors import IngestError
from arrival.index.build import Indexer
from arrival.index.embed import HashEmbedder
from arrival.index.retrieve import Filters, Retriever
from arrival.index.store import IndexStore
from arrival.ingest.pdf import NO_TEXT, PdfLoader
from arrival.settings import load_settings

from . import pdfgen
from .conftest import DEMO


def _ingest(settings, paths, **kw):  # type: ignore[no-untyped-def]
    return Indexer(settings, HashEmbedder(256)).ingest(paths, **kw)


def _index_text(home: Path) -> str:
    """Everything the live generation stores as text (pages and chunks), for 'is X in the index' checks."""
    snap = IndexStore(home).open()
    assert snap is not None
    pages = [r[0] for r in snap.db.execute("SELECT text FROM pages")]
    chunks = [r[0] for r in snap.db.execute("SELECT text FROM chunks")]
    snap.close()
    return "\n".join(pages + chunks)


@pytest.fixture
def bad(tmp_path: Path) -> dict[Path, str]:
    return pdfgen.bad_files(tmp_path / "bad", DEMO)


# -- each specimen on its own (in-process, fast) ----------------------------------------------------------
def test_each_bad_file_gets_a_one_line_reason_naming_it(bad: dict[Path, str]) -> None:
    loader = PdfLoader()
    for path, pattern in bad.items():
        t = time.perf_counter()
        with pytest.raises(IngestError) as info:
            loader.load(path)
        err = info.value
        assert err.path == str(path)
        assert re.search(pattern, err.reason), (path.name, err.reason)
        assert "\n" not in err.reason and str(err) == f"{path}: {err.reason}"
        assert time.perf_counter() - t < 30, f"{path.name} took too long to refuse"


def test_specimens_are_what_they_claim(bad: dict[Path, str], tmp_path: Path) -> None:
    """Guard the generator: each hostile feature is really in the file."""
    from pypdf import PdfReader

    by_name = {p.name: p for p in bad}
    assert by_name["empty.pdf"].stat().st_size == 0
    assert by_name["picture.pdf"].read_bytes().startswith(b"\x89PNG")
    locked: Any = PdfReader(by_name["locked.pdf"])
    assert locked.is_encrypted and not locked.decrypt("") and locked.decrypt("s3cret")
    scanned: Any = PdfReader(by_name["scanned.pdf"])
    assert "/Im1" in scanned.pages[0]["/Resources"]["/XObject"] and not scanned.pages[0].extract_text().strip()
    bomb = by_name["bomb.pdf"]
    assert bomb.stat().st_size < 4 << 20  # ~2 MB on disk ...
    import zlib

    raw = bomb.read_bytes()
    body = raw[raw.index(b"stream\n") + 7: raw.rindex(b"\nendstream")]
    d = zlib.decompressobj()
    assert len(d.decompress(body, 64 << 20)) == 64 << 20 and d.unconsumed_tail  # ... more than 64 MB inflated
    empty_pw = PdfReader(pdfgen.encrypted_pdf(tmp_path / "e.pdf", "", "owner", "Open text"))
    assert empty_pw.is_encrypted and empty_pw.decrypt("")
    js: Any = PdfReader(pdfgen.active_content_pdf(tmp_path / "js.pdf", "Visible text"))
    assert "payload.txt" in js.attachments and js.trailer["/Root"]["/OpenAction"]["/S"] == "/JavaScript"
    uri: Any = PdfReader(pdfgen.remote_links_pdf(tmp_path / "uri.pdf", "Linked text"))
    actions = {a.get_object()["/A"]["/S"] for a in uri.pages[0]["/Annots"]}
    assert actions == {"/URI", "/GoToR", "/Launch"}


def test_deflate_bomb_generator_is_a_valid_zlib_stream() -> None:
    import zlib

    data = pdfgen.deflate_bomb(3 << 20, b"BT ET\n")
    assert zlib.decompress(data) == b"BT ET\n" + bytes(3 << 20)  # checksum and all
    assert len(pdfgen.deflate_bomb(1 << 30, b"")) < 1.1e6  # ~1000:1


def test_encrypted_with_empty_user_password_opens_and_indexes(hash_settings, tmp_path: Path) -> None:
    path = pdfgen.encrypted_pdf(tmp_path / "owner-only.pdf", "", "0wner", "Quokka arrival desk opens at nine.")
    rep = _ingest(hash_settings, [path])
    assert [(f.status, f.reason) for f in rep.files] == [("indexed", "")]
    hits = Retriever.from_settings(hash_settings, HashEmbedder(256)).search("quokka arrival desk", k=3)
    assert hits and "Quokka" in hits[0].text


def test_whitespace_and_scanned_share_the_no_text_reason(bad: dict[Path, str]) -> None:
    by_name = {p.name: p for p in bad}
    for name in ("scanned.pdf", "blank.pdf"):
        with pytest.raises(IngestError) as info:
            PdfLoader().load(by_name[name])
        assert info.value.reason == NO_TEXT


def test_decompression_bomb_is_refused_past_the_limit_without_blowing_up(tmp_path: Path) -> None:
    """2 GiB of zeros behind 2 MB of FlateDecode: pypdf stops at its 75 MB output limit and arrival refuses the
    file (it used to report "no extractable text: scanned?"). The whole ingest process stays small."""
    bomb = pdfgen.bomb_pdf(tmp_path / "bomb.pdf")
    out = pdfgen.run_measured(["ingest", str(bomb), "--json"], tmp_path / "home")
    files = json.loads(str(out["stdout"]))["files"]
    print(f"\ndecompression bomb (2 GiB inflated, {bomb.stat().st_size / 1e6:.1f} MB on disk): "
          f"{files[0]['reason']!r}, peak RSS {out['peak_mb']:.0f} MB, {out['seconds']:.1f} s")
    assert out["rc"] == 1
    assert files[0]["status"] == "failed"
    assert re.fullmatch(r"refused: a compressed stream inflates past the \d+ MB decompression limit \(zip bomb\?\)",
                        files[0]["reason"])
    assert str(out["stderr"]).strip().splitlines()[-1] == f"arrival: {bomb}: {files[0]['reason']}"
    assert float(str(out["peak_mb"])) < 1024


@pytest.mark.slow
def test_worker_memory_cap_stops_a_bomb_when_pypdf_limits_are_lifted(tmp_path: Path) -> None:
    """Second line of defence: with pypdf's own limits switched off (sitecustomize), the RLIMIT_AS of the
    parsing worker turns the 2 GiB inflation into a MemoryError that fails that file only."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import pypdf\n"
        "pypdf.overwrite_configuration(zlib_maximum_output_length=1 << 40, "
        "stream_decoding_work_maximum_length=1 << 40)\n"
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    bomb = pdfgen.bomb_pdf(docs / "bomb.pdf")
    good = pdfgen.good_pdf(docs / "good.pdf")
    out = pdfgen.run_measured(["ingest", str(docs), "--json"], tmp_path / "home", PYTHONPATH=str(site),
                              ARRIVAL_WORKER_MEMORY_MB="1024", ARRIVAL_WORKERS="2")
    files = {Path(f["path"]).name: f for f in json.loads(str(out["stdout"]))["files"]}
    print(f"\nbomb with pypdf limits lifted, 1 GB worker cap: {files['bomb.pdf']['reason']!r}, "
          f"{out['seconds']:.1f} s, peak RSS {out['peak_mb']:.0f} MB")
    assert out["rc"] == 1
    assert files["bomb.pdf"]["status"] == "failed"
    assert files["bomb.pdf"]["reason"] in ("PDF needs too much memory to parse (over the worker limit)",
                                           "the PDF parser crashed on this file")
    assert files["good.pdf"]["status"] == "indexed"
    assert bomb.exists() and good.exists()


# -- the command line over a folder of bad files ------------------------------------------------------------
def test_cli_batch_names_every_bad_file_and_indexes_the_rest(bad: dict[Path, str], tmp_path: Path) -> None:
    folder = next(iter(bad)).parent
    good = pdfgen.good_pdf(folder / "good.pdf", tag="Wombat ")
    owner_only = pdfgen.encrypted_pdf(folder / "owner-only.pdf", "", "owner", "Numbat registration office.")
    p = pdfgen.run_arrival(["ingest", str(folder), "--json"], tmp_path / "home")
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    files = {f["path"]: f for f in json.loads(p.stdout)["files"]}
    assert set(files) == {str(x) for x in [*bad, good, owner_only]}
    for path, pattern in bad.items():
        f = files[str(path)]
        assert f["status"] == "failed" and re.search(pattern, f["reason"]), f
    assert files[str(good)]["status"] == files[str(owner_only)]["status"] == "indexed"
    # one line per failure on stderr, each naming the file and its reason
    expected = sorted(f"arrival: {path}: {files[str(path)]['reason']}" for path in bad)
    assert sorted(line for line in p.stderr.splitlines() if line.startswith("arrival: ")) == expected
    snap = IndexStore(tmp_path / "home").open()
    assert snap is not None and {d.path for d in snap.documents().values()} == {str(good), str(owner_only)}


@pytest.mark.slow
def test_real_corpus_plus_every_bad_file_in_one_run(shared_corpus: Path, bad: dict[Path, str], tmp_path: Path) -> None:
    folder = next(iter(bad)).parent
    for i, name in enumerate(pdfgen.ODD_NAMES):
        pdfgen.good_pdf(folder / name, seed=50 + i, tag=f"Odd{i} ")
    pdfgen.active_content_pdf(folder / "active.pdf", "Axolotl visible text.")
    pdfgen.remote_links_pdf(folder / "links.pdf", "Pangolin linked text.")
    pdfgen.encrypted_pdf(folder / "owner-only.pdf", "", "owner", "Numbat registration office.")
    corpus = sorted(p for p in shared_corpus.rglob("*") if p.is_file() and p.suffix.lower() == ".pdf")
    t = time.perf_counter()
    p = pdfgen.run_arrival(["ingest", str(shared_corpus), str(folder), "--json"], tmp_path / "home", timeout=1800)
    seconds = time.perf_counter() - t
    assert p.returncode == 1, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    files = {f["path"]: f for f in json.loads(p.stdout)["files"]}
    print(f"\nreal corpus ({len(corpus)} PDFs) + {len(bad)} bad files: {seconds:.0f} s")
    for path in corpus:
        assert files[str(path)]["status"] == "indexed", files[str(path)]
    good_extra = [folder / n for n in (*pdfgen.ODD_NAMES, "active.pdf", "links.pdf", "owner-only.pdf")]
    for path in good_extra:
        assert files[str(path)]["status"] == "indexed", files[str(path)]
    for path, pattern in bad.items():
        assert files[str(path)]["status"] == "failed" and re.search(pattern, files[str(path)]["reason"])
    assert len(files) == len(corpus) + len(good_extra) + len(bad)
    named = [line for line in p.stderr.splitlines() if line.startswith("arrival: ")]
    assert len(named) == len(bad)
    stats = json.loads(pdfgen.run_arrival(["stats", "--json"], tmp_path / "home").stdout)
    assert stats["documents"] == len(corpus) + len(good_extra)


# -- very large PDF -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_2000_page_pdf_ingests_with_bounded_memory(tmp_path: Path) -> None:
    t = time.perf_counter()
    big = pdfgen.large_pdf(tmp_path / "large.pdf", 2000)
    made = time.perf_counter() - t
    out = pdfgen.run_measured(["ingest", str(big), "--json"], tmp_path / "home")
    assert out["rc"] == 0, out["stderr"]
    report = json.loads(str(out["stdout"]))
    f = report["files"][0]
    print(f"\n2,000-page PDF ({big.stat().st_size / 1e6:.1f} MB, generated in {made:.2f} s): ingest "
          f"{out['seconds']:.1f} s, peak RSS {out['peak_mb']:.0f} MB, {f['chunks']} chunks, "
          f"timings {report['timings']}")
    assert f["status"] == "indexed" and f["pages"] == 2000
    assert f["chunks"] >= 2000 * 90 // 800  # ~100 characters a page, nothing dropped as a running header
    assert float(str(out["peak_mb"])) < 1536
    snap = IndexStore(tmp_path / "home").open()
    assert snap is not None
    assert snap.stats()["pages"] == 2000
    # the last page's words made it, on the right page
    last = snap.page_text(next(iter(snap.documents())), 2000)
    assert last and last.startswith("Large ") and "Item 2000-1." in last


# -- file names ---------------------------------------------------------------------------------------------
def test_odd_file_names_are_indexed_and_found_by_their_exact_path(tmp_path: Path) -> None:
    docs = tmp_path / "docs ü"
    docs.mkdir()
    made = {}
    for i, name in enumerate(pdfgen.ODD_NAMES):
        made[pdfgen.good_pdf(docs / name, n_pages=1, lines_per_page=3, seed=70 + i, tag=f"Tag{i}x ")] = f"tag{i}x"
    # a name in another system's encoding (Latin-1 'é'): refused alone, the others are still indexed
    latin = os.path.join(os.fsencode(docs), b"caf\xe9.pdf")
    with open(latin, "wb") as fh:
        fh.write(pdfgen.text_pdf([["Latin-1 named file."]]))
    home = tmp_path / "home"
    p = pdfgen.run_arrival(["ingest", str(docs), "--json"], home)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    files = {f["path"]: f for f in json.loads(p.stdout)["files"]}
    for path in made:
        assert files[str(path)]["status"] == "indexed", files
    bad_name = str(docs / "caf\ufffd.pdf")
    assert files[bad_name] == {"path": bad_name, "status": "failed", "pages": 0, "chunks": 0,
                               "reason": "file name is not valid UTF-8: rename the file"}
    # the stored path round-trips exactly: found by search, unchanged on the next run
    settings = load_settings(home=home, model="hash:256")
    retriever = Retriever.from_settings(settings, HashEmbedder(256))
    for i, name in enumerate(pdfgen.ODD_NAMES):
        hits = retriever.search(f"tag{i}x", k=1, mode="bm25")
        assert hits and hits[0].source == str(docs / name)
    again = _ingest(settings, list(made))
    assert {f.status for f in again.files} == {"unchanged"}


def test_a_newline_in_a_bad_file_name_still_gives_one_stderr_line(tmp_path: Path) -> None:
    bad = tmp_path / "two\nlines.pdf"
    bad.write_text("not a pdf")
    p = pdfgen.run_arrival(["ingest", str(bad)], tmp_path / "home")
    assert p.returncode == 1
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


# -- active content ------------------------------------------------------------------------------------------
def _tree(*roots: Path) -> set[Path]:
    return {p for root in roots for p in root.rglob("*")}


def test_javascript_and_embedded_files_are_neither_run_nor_extracted(tmp_path: Path) -> None:
    docs, cwd, user_home = tmp_path / "docs", tmp_path / "cwd", tmp_path / "user"
    for d in (docs, cwd, user_home):
        d.mkdir()
    pdf = pdfgen.active_content_pdf(docs / "active.pdf", "Axolotl visible text about arrival cities.")
    other = pdfgen.good_pdf(docs / "other.pdf")  # two files: parsed in worker processes
    index_home = tmp_path / "index"
    before = _tree(docs, cwd, user_home)
    p = pdfgen.run_arrival(["ingest", str(docs), "--json"], index_home, cwd=cwd, HOME=str(user_home),
                           TMPDIR=str(cwd))
    assert p.returncode == 0, p.stderr
    assert {f["status"] for f in json.loads(p.stdout)["files"]} == {"indexed"}
    assert _tree(docs, cwd, user_home) == before, "ingest wrote files next to the PDF, in cwd or in HOME"
    assert not list(index_home.rglob("payload*"))
    text = _index_text(index_home)
    assert "Axolotl visible text" in text
    assert pdfgen.EMBEDDED_MARKER not in text and pdfgen.JS_MARKER not in text
    assert "exportDataObject" not in text and "198.51.100.7" not in text
    assert pdf.exists() and other.exists()


# -- the network ---------------------------------------------------------------------------------------------
def test_remote_links_are_never_fetched_in_process(hash_settings, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest already refuses non-loopback connects; here every way out (DNS included) is also recorded."""
    attempts: list[str] = []

    def refuse(name: str):  # type: ignore[no-untyped-def]
        def blocked(*args, **kwargs):  # type: ignore[no-untyped-def]
            attempts.append(f"{name}{args[:2]!r}")
            raise OSError(f"network blocked in test: {name}")

        return blocked

    from arrival.ingest.pdf import PdfLoader

    pdf = pdfgen.remote_links_pdf(tmp_path / "links.pdf", "Pangolin linked text about welcome offices.")
    with monkeypatch.context() as m:
        m.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
        m.setattr(socket, "create_connection", refuse("create_connection"))
        m.setattr(socket.socket, "connect", refuse("connect"))
        m.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
        doc = PdfLoader().load(pdf)  # parsed in this process, under the patches
    assert attempts == [] and "Pangolin" in doc.pages[0].text
    rep = _ingest(hash_settings, [pdf])  # ingest parses in a worker process (loopback socket to the forkserver)
    assert [(f.status, f.reason) for f in rep.files] == [("indexed", "")]
    hits = Retriever.from_settings(hash_settings, HashEmbedder(256)).search("pangolin welcome", k=1)
    assert hits and "Pangolin" in hits[0].text


_NET_GUARD = """
import os, socket

_connect = socket.socket.connect
_getaddrinfo = socket.getaddrinfo
LOCAL = {{None, "localhost", "127.0.0.1", "::1", ""}}


def _log(what):
    with open({log!r}, "a") as fh:
        fh.write(f"{{os.getpid()}} {{what!r}}\\n")
    raise OSError("network blocked in test")


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOCAL:
        _log(address)
    return _connect(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host not in LOCAL:
        _log(host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.getaddrinfo = getaddrinfo
with open({log!r} + ".loaded", "a") as fh:
    fh.write(f"{{os.getpid()}}\\n")
"""


@pytest.mark.slow
def test_remote_links_are_never_fetched_by_worker_processes(tmp_path: Path) -> None:
    """The same through the CLI and its parsing workers (started by forkserver: they do not inherit pytest's
    patches, so a sitecustomize installs the guard in every process and logs any attempt)."""
    site, docs = tmp_path / "site", tmp_path / "docs"
    site.mkdir()
    docs.mkdir()
    log = tmp_path / "net.log"
    (site / "sitecustomize.py").write_text(_NET_GUARD.format(log=str(log)))
    pdfgen.remote_links_pdf(docs / "links.pdf", "Pangolin linked text about welcome offices.")
    pdfgen.good_pdf(docs / "good.pdf")
    p = pdfgen.run_arrival(["ingest", str(docs), "--json"], tmp_path / "home", PYTHONPATH=str(site),
                           ARRIVAL_WORKERS="2")
    assert p.returncode == 0, p.stderr
    assert {f["status"] for f in json.loads(p.stdout)["files"]} == {"indexed"}
    assert not log.exists(), log.read_text()
    loaded = set(Path(f"{log}.loaded").read_text().split())
    assert len(loaded) >= 2  # the guard was live in the command and in the forkserver its workers fork from


# -- the index holds no pickle ---------------------------------------------------------------------------------
def test_index_data_has_no_pickle(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        pdfgen.good_pdf(docs / f"d{i}.pdf", n_pages=4, seed=i, tag=f"Doc{i} ")
    settings = load_settings(home=tmp_path / "home", model="hash:256", workers=1)
    _ingest(settings, [docs])
    gen = IndexStore(settings.home).current()
    assert gen is not None
    files = [p for p in gen.rglob("*") if p.is_file()]
    npy = [p for p in files if p.suffix == ".npy"]
    assert any(p.name == "vectors.npy" for p in npy) and any(p.parent.parent.name == "keyword" for p in npy)
    for p in npy:
        arr = np.load(p, allow_pickle=False)
        assert arr.dtype != object, p
    for p in files:
        head = p.read_bytes()[:2]
        assert not head.startswith(b"\x80"), f"{p} starts like a pickle"
        if p.suffix == ".json":
            json.loads(p.read_text())
    assert {p.suffix for p in files} <= {".npy", ".json", ".sqlite", ".index"}, {p.name for p in files}
    db = sqlite3.connect(gen / "meta.sqlite")
    blobs = db.execute(
        "SELECT count(*) FROM chunks WHERE typeof(text) != 'text' OR typeof(heading) != 'text'").fetchone()[0]
    db.close()
    assert blobs == 0
    # and the retriever's reload path reads it back under allow_pickle=False
    assert Retriever.from_settings(settings, HashEmbedder(256)).search("doc1", k=1, filters=Filters())
