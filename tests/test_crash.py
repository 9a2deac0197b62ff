"""Crashes and concurrency: kill -9 at any moment leaves the previous index usable and the next ingest cleans
up; one writer at a time (clear refusal, or --wait); a dead lock holder never blocks; a reader keeps answering
while an ingest lands; damaged index files give one clear line that names the file and says how to rebuild."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from arrival.errors import IndexOpenError
from arrival.index.build import Indexer, embedding_text
from arrival.index.embed import HashEmbedder
from arrival.index.retrieve import Filters, Retriever
from arrival.index.store import IndexStore
from arrival.settings import load_settings
from arrival.types import Chunk

from . import pdfgen
from .conftest import DEMO

QUERY = "guichet unique Lisbonne"  # answered by page 6 of the demo paper


# -- helpers ------------------------------------------------------------------------------------------------
def _settings(home: Path, **kw):  # type: ignore[no-untyped-def]
    return load_settings(home=home, model="hash:256", **kw)


def poll(pred: Callable[[], bool], timeout: float, what: str, interval: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def start_ingest(args: list[str], home: Path, **extra: str) -> subprocess.Popen[str]:
    """`arrival ingest ARGS --json` in its own session (so its process group can be checked after a kill)."""
    return subprocess.Popen(pdfgen.arrival_argv("ingest", *args, "--json"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=pdfgen.arrival_env(home, **extra),
                            cwd=pdfgen.ROOT, start_new_session=True)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_group(proc: subprocess.Popen[str], timeout: float = 30) -> None:
    """After the leader is gone, every process it started (parsing workers, forkserver) must exit by itself."""
    try:
        poll(lambda: not group_alive(proc.pid), timeout, "the killed ingest's worker processes to exit", 0.1)
    finally:
        if group_alive(proc.pid):  # do not leak them into the rest of the session
            os.killpg(proc.pid, signal.SIGKILL)


def assert_usable(home: Path, paths: set[str]) -> str:
    """Open the live generation and check every part agrees; search it. Returns the generation's name."""
    snap = IndexStore(home).open(expected_embedder="hash:256")  # raises IndexOpenError on any inconsistency
    assert snap is not None
    try:
        n = snap.db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        vectors = snap.vectors("dense", np.arange(n))
        # an incremental generation holds its rows in two parts, the base and the delta (index.delta)
        delta = snap.delta
        in_faiss = snap.faiss.ntotal + (delta.faiss.ntotal if delta is not None else 0)
        in_bm25 = snap.bm25.size + (delta.bm25.size if delta is not None else 0)
        assert n == snap.manifest.chunks == in_faiss == len(vectors) == in_bm25 > 0
        assert snap.db.execute("SELECT min(row), max(row) FROM chunks").fetchone() == (0, n - 1)
        assert snap.db.execute("SELECT count(*) FROM chunks WHERE doc_id NOT IN "
                               "(SELECT doc_id FROM documents)").fetchone()[0] == 0
        assert {d.path for d in snap.documents().values()} == paths
        stats = snap.stats()
        assert stats["documents"] == len(paths) == snap.manifest.documents and stats["chunks"] == n
        assert stats["pages"] == snap.db.execute("SELECT count(*) FROM pages").fetchone()[0]
        # SQLite rows, vectors.npy and FAISS line up: re-embedding a row's chunk gives that row's vector
        emb = HashEmbedder(256)
        sample = sorted({0, n // 3, n // 2, n - 1})
        for r in snap.chunks(sample):
            chunk = Chunk(r.doc_id, r.source, r.title, r.text, r.page, r.page_end, r.start, r.end, r.heading, r.lang)
            assert chunk.chunk_id == r.chunk_id
            assert np.allclose(vectors[r.id], emb.embed_passages([embedding_text(chunk)])[0], atol=1e-5)
        b = snap.faiss.ntotal
        assert np.allclose(snap.faiss.reconstruct_n(0, b), vectors[:b], atol=1e-6)
        if delta is not None:
            assert np.allclose(delta.faiss.reconstruct_n(0, n - b), vectors[b:], atol=1e-6)
        gen = snap.gen_dir.name
    finally:
        snap.close()
    assert_answers(Retriever(home, HashEmbedder(256)))
    return gen


def assert_answers(reader: Retriever) -> None:
    """The demo paper's Lisbon one-stop shop is found (other documents may outrank it without a filter)."""
    hits = reader.search(QUERY, k=3, filters=Filters(docs=("*gfmd.pdf",)))
    assert hits and any(h.page == 6 and "Lisbonne" in h.text for h in hits), hits


def leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir() if p.name.endswith(".tmp"))


def generations(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir() if p.name.startswith("gen-"))


@pytest.fixture(scope="module")
def base_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """An index of the demo paper, copied by each test that needs a previous index."""
    root = tmp_path_factory.mktemp("base")
    docs = root / "docs"
    docs.mkdir()
    shutil.copy(DEMO, docs / "gfmd.pdf")
    home = root / "home"
    rep = Indexer(_settings(home, workers=1), HashEmbedder(256)).ingest([docs / "gfmd.pdf"])
    assert [f.status for f in rep.files] == ["indexed"]
    return home, {str(docs / "gfmd.pdf")}


@pytest.fixture
def base(base_template: tuple[Path, set[str]], tmp_path: Path) -> tuple[Path, set[str]]:
    template, paths = base_template
    home = tmp_path / "home"
    shutil.copytree(template, home)
    (home / "ingest.lock").unlink(missing_ok=True)
    return home, paths


# -- kill -9 ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~8 s of ingest on an idle 2-core machine, ~0.5 s of it writing the generation."""
    d = tmp_path_factory.mktemp("big") / "docs"
    d.mkdir()
    (d / "big.pdf").write_bytes(pdfgen.text_pdf(pdfgen.varied_pages(3000, 8, seed=7, tag="Big ")))
    for i in range(6):
        pdfgen.good_pdf(d / f"g{i}.pdf", n_pages=30, lines_per_page=10, seed=100 + i, tag=f"G{i} ")
    return d


def _tmp_has(home: Path, name: str) -> bool:
    return any((p / name).exists() for p in home.glob(".gen-*.tmp"))


KILL_MOMENTS: dict[str, Callable[[Path, float], bool]] = {
    "after-0.5s": lambda home, t: t >= 0.5,
    "after-2s": lambda home, t: t >= 2.0,
    "after-5s": lambda home, t: t >= 5.0,
    "write-started": lambda home, t: any(home.glob(".gen-*.tmp")),
    "faiss-written": lambda home, t: _tmp_has(home, "faiss.index"),
    "manifest-written": lambda home, t: _tmp_has(home, "manifest.json"),
}


@pytest.mark.slow
@pytest.mark.parametrize("moment", list(KILL_MOMENTS))
def test_kill_9_leaves_the_previous_index_usable(moment: str, base_template, big_folder: Path, tmp_path: Path
                                                 ) -> None:
    template, base_paths = base_template
    new_paths = base_paths | {str(p) for p in big_folder.glob("*.pdf")}
    trigger = KILL_MOMENTS[moment]
    for attempt in range(3):  # retried only if the ingest finished before the moment came
        home = tmp_path / f"home{attempt}"
        shutil.copytree(template, home)
        base_gen = IndexStore(home).pointer()
        proc = start_ingest([str(big_folder)], home)
        t0 = time.monotonic()
        while proc.poll() is None and not trigger(home, time.monotonic() - t0):
            time.sleep(0.001)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            break
        proc.communicate()
    else:
        if moment.startswith("after-"):
            pytest.skip(f"this machine ingests the folder in less than {moment[6:]}")
        pytest.fail(f"the ingest always finished before {moment}")
    killed_at = time.monotonic() - t0
    assert proc.wait(timeout=60) == -signal.SIGKILL
    left = leftovers(home)
    reap_group(proc)  # no orphaned parsing workers
    proc.communicate(timeout=60)
    # the index is the old one (or, if the kill came after the switch, the complete new one)
    switched = IndexStore(home).pointer() != base_gen
    gen = assert_usable(home, new_paths if switched else base_paths)
    print(f"\nkill -9 {moment} at {killed_at:.2f} s: live index {'new' if switched else 'previous'} ({gen}) "
          f"usable, leftovers {left}")
    if moment in ("write-started", "faiss-written"):
        assert left and not switched, "the kill was meant to land while the generation was being written"
    # the next ingest completes, indexes everything and removes what the killed one left
    again = pdfgen.run_arrival(["ingest", str(big_folder), "--json"], home)
    assert again.returncode == 0, again.stderr
    assert leftovers(home) == []
    assert len(generations(home)) == 1
    assert_usable(home, new_paths)


def test_a_no_op_ingest_removes_a_killed_writers_leftovers(base, tmp_path: Path) -> None:
    home, paths = base
    half = home / ".gen-000007.tmp"
    half.mkdir()
    (half / "meta.sqlite").write_bytes(b"half written")
    (home / ".CURRENT.tmp").write_text("gen-000007")
    rep = Indexer(_settings(home, workers=1), HashEmbedder(256)).ingest([Path(p) for p in paths])
    assert [f.status for f in rep.files] == ["unchanged"]  # nothing to write ...
    assert leftovers(home) == []  # ... and still cleaned
    assert_usable(home, paths)


# -- one writer at a time -------------------------------------------------------------------------------------
HOLDER = """
import sys
from pathlib import Path
from arrival.index.store import IndexStore
with IndexStore(Path(sys.argv[1])).lock():
    print("locked", flush=True)
    sys.stdin.read()
"""


def lock_pid(home: Path) -> str:
    """The pid the lock file names ('' before any ingest made it)."""
    try:
        return (home / "ingest.lock").read_text().strip()
    except FileNotFoundError:
        return ""


def waits_on_lock(proc: subprocess.Popen[str], home: Path) -> bool:
    """True once `proc` has the lock file open (it then loops on flock until the lock is free)."""
    lock = str(home / "ingest.lock")
    try:
        return any(os.readlink(f) == lock for f in Path(f"/proc/{proc.pid}/fd").iterdir())
    except OSError:  # an fd closed between listing and reading
        return False


def hold_lock(home: Path) -> subprocess.Popen[str]:
    """Another process holding the ingest lock (through the same code an ingest uses) until its stdin closes."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(home)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, env=pdfgen.arrival_env(home), cwd=pdfgen.ROOT)
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


def test_second_ingest_is_refused_while_one_runs(base, tmp_path: Path) -> None:
    home, paths = base
    extra = pdfgen.good_pdf(tmp_path / "extra.pdf", tag="Extra ")
    holder = hold_lock(home)
    try:
        p = pdfgen.run_arrival(["ingest", str(extra), "--json"], home)
        assert p.returncode == 1
        assert p.stderr.strip() == (f"arrival: {home}: another ingest is running (pid {holder.pid}); "
                                    "wait for it or use --wait")
        assert_usable(home, paths)  # untouched
    finally:
        holder.communicate("")
    assert holder.returncode == 0


def test_wait_flag_waits_for_the_running_ingest(base, tmp_path: Path) -> None:
    home, paths = base
    extra = pdfgen.good_pdf(tmp_path / "extra.pdf", tag="Extra ")
    holder = hold_lock(home)
    try:
        waiting = start_ingest([str(extra), "--wait", "300"], home)
        poll(lambda: waits_on_lock(waiting, home) or waiting.poll() is not None, 120, "the lock attempt")
        time.sleep(0.5)  # a few rounds of its flock loop
        assert waiting.poll() is None, waiting.communicate()
    finally:
        released = time.monotonic()
        holder.communicate("")
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    assert time.monotonic() >= released
    assert [f["status"] for f in json.loads(out)["files"]] == ["indexed"]
    assert_usable(home, paths | {str(extra)})


def test_a_dead_lock_holder_does_not_block(base, tmp_path: Path) -> None:
    home, paths = base
    holder = hold_lock(home)
    holder.kill()  # SIGKILL: no cleanup; the lock file stays behind with its pid
    holder.communicate()
    assert lock_pid(home) == str(holder.pid)
    extra = pdfgen.good_pdf(tmp_path / "extra.pdf", tag="Extra ")
    p = pdfgen.run_arrival(["ingest", str(extra), "--json"], home)
    assert p.returncode == 0, p.stderr
    assert_usable(home, paths | {str(extra)})


@pytest.mark.slow
def test_two_real_ingests_at_once(base, big_folder: Path, tmp_path: Path) -> None:
    """Two `arrival ingest` processes: the first is frozen (SIGSTOP) once it holds the lock, so the overlap is
    certain; the second is refused, a third with --wait completes after the first resumes."""
    home, paths = base
    big = big_folder / "big.pdf"
    extra = pdfgen.good_pdf(tmp_path / "extra.pdf", tag="Extra ")
    first = start_ingest([str(big)], home)
    try:
        poll(lambda: lock_pid(home) == str(first.pid), 120, "the first ingest's lock")
        os.kill(first.pid, signal.SIGSTOP)
        second = pdfgen.run_arrival(["ingest", str(extra), "--json"], home)
        assert second.returncode == 1
        assert f"another ingest is running (pid {first.pid})" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        third = start_ingest([str(extra), "--wait", "600"], home)
        poll(lambda: waits_on_lock(third, home) or third.poll() is not None, 120, "the lock attempt")
        assert third.poll() is None, third.communicate()
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err1 = first.communicate(timeout=600)
    _, err3 = third.communicate(timeout=600)
    assert first.returncode == 0, err1
    assert third.returncode == 0, err3
    assert_usable(home, paths | {str(big), str(extra)})


# -- readers during a write -----------------------------------------------------------------------------------
def test_reader_keeps_answering_during_an_ingest_and_sees_it_after(base, tmp_path: Path) -> None:
    home, paths = base
    docs = tmp_path / "new"
    docs.mkdir()
    (docs / "new-big.pdf").write_bytes(pdfgen.text_pdf(pdfgen.varied_pages(300, 8, seed=5, tag="Fresh ")))
    reader = Retriever(home, HashEmbedder(256))
    before = reader.snapshot()
    old_gen = before.gen_dir
    proc = start_ingest([str(docs)], home)
    searches = during_write = 0
    while proc.poll() is None:
        writing = any(home.glob(".gen-*.tmp"))
        assert_answers(reader)  # never raises, always the full answer
        searches += 1
        during_write += writing and any(home.glob(".gen-*.tmp"))
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    print(f"\n{searches} searches while the ingest ran, {during_write} of them while it wrote the generation")
    assert searches > 10 and during_write >= 1
    # the old generation is gone from disk, yet the snapshot the reader held still answers
    assert not old_gen.exists()
    assert before.chunks([0]) and before.page_text(next(iter(before.documents())), 6)
    # the next search sees the new documents
    hits = reader.search("fresh", k=5, mode="bm25", filters=Filters(docs=("*new-big.pdf",)))
    assert hits and all(h.source.endswith("new-big.pdf") for h in hits)
    assert reader.snapshot().gen_dir != old_gen
    assert_usable(home, paths | {str(p) for p in docs.glob("*.pdf")})


# -- damaged index files ----------------------------------------------------------------------------------------
def _corrupt(path: Path, mode: str) -> None:
    data = path.read_bytes()
    if mode == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif mode == "empty":
        path.write_bytes(b"")
    elif mode == "garbage":
        path.write_bytes(bytes((i * 37 + 11) % 256 for i in range(max(len(data), 64))))
    elif mode == "deleted":
        path.unlink()


@pytest.mark.parametrize("mode", ["truncated", "empty", pytest.param("garbage", marks=pytest.mark.slow),
                                  pytest.param("deleted", marks=pytest.mark.slow)])
def test_every_damaged_index_file_is_a_clear_error(base, mode: str) -> None:
    """Each file of the generation in turn: IndexOpenError naming it (or its folder) with the rebuild hint;
    never another exception. Deleting an optional part may also leave a working index."""
    home, _ = base
    gen = IndexStore(home).current()
    assert gen is not None
    template = home.parent / "pristine"
    shutil.copytree(home, template)
    files = sorted(p.relative_to(home) for p in gen.rglob("*") if p.is_file())
    assert len(files) >= 5
    for rel in files:
        shutil.rmtree(home)
        shutil.copytree(template, home)
        _corrupt(home / rel, mode)
        try:
            hits = Retriever(home, HashEmbedder(256)).search(QUERY, k=3)
        except IndexOpenError as exc:
            msg = str(exc)
            assert rel.name in msg or f"{rel.parent.name}:" in msg, (rel, msg)
            assert "arrival ingest --rebuild" in msg and "\n" not in msg
            continue
        assert mode == "deleted", f"{rel} {mode} went unnoticed"
        assert hits


def _damage(home: Path, victim: str) -> str:
    """Damage one part of the live index; return the file name the error has to mention."""
    gen = IndexStore(home).current()
    assert gen is not None
    if victim == "faiss-truncated":
        _corrupt(gen / "faiss.index", "truncated")
        return str(gen / "faiss.index")
    if victim == "sqlite-damaged":  # one page in the middle overwritten
        db = gen / "meta.sqlite"
        data = bytearray(db.read_bytes())
        mid = (len(data) // 2) // 4096 * 4096
        data[mid: mid + 4096] = b"\xff" * 4096
        db.write_bytes(bytes(data))
        return str(db)
    if victim == "sqlite-header":
        db = gen / "meta.sqlite"
        db.write_bytes(b"not a database at all" * 8 + db.read_bytes()[168:])
        return str(db)
    if victim == "current-text":
        (home / "CURRENT").write_text("hello world\n")
        return str(home / "CURRENT")
    if victim == "current-binary":
        (home / "CURRENT").write_bytes(b"\xff\xfe\x00\x9c garbage \x00")
        return str(home / "CURRENT")
    if victim == "current-missing-gen":
        (home / "CURRENT").write_text("gen-000042")
        return str(home / "gen-000042")
    raise AssertionError(victim)


VICTIMS = ["faiss-truncated", "sqlite-damaged", "sqlite-header", "current-text", "current-binary",
           "current-missing-gen"]


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The command line in this process (same code path as the subprocess; an exception here = a traceback)."""
    from arrival.cli import main

    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("victim", VICTIMS)
@pytest.mark.parametrize("command", ["search", "ingest"])
def test_damaged_index_gives_one_line_naming_the_file_and_rebuild_recovers(
        base, victim: str, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    home, paths = base
    named = _damage(home, victim)
    flags = ["--home", str(home), "--model", "hash:256", "-q"]
    argv = {"search": ["search", QUERY, *flags], "ingest": ["ingest", *sorted(paths), "--json", *flags]}[command]
    commands = [argv] if command == "search" else [["stats", "--json", *flags], argv]
    for args in commands:
        rc, _out, err = _cli(args, capsys)
        assert rc == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith(f"arrival: {named}") and "arrival ingest --rebuild" in lines[0], lines[0]
    if command == "search":
        return
    rc, out, err = _cli(["ingest", "--rebuild", *sorted(paths), "--json", *flags], capsys)
    assert rc == 0, err
    assert [f["status"] for f in json.loads(out)["files"]] == ["indexed"]
    assert leftovers(home) == [] and len(generations(home)) == 1
    assert_usable(home, paths)


def test_damaged_index_real_process_exit_code_and_no_traceback(base) -> None:
    home, paths = base
    named = _damage(home, "faiss-truncated")
    for args in (["search", QUERY], ["ingest", *sorted(paths)]):
        p = pdfgen.run_arrival(args, home)
        assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
        assert p.stderr.startswith(f"arrival: {named}: corrupt FAISS index") and "--rebuild" in p.stderr
    p = pdfgen.run_arrival(["ingest", "--rebuild", *sorted(paths)], home)
    assert p.returncode == 0, p.stderr
    assert_usable(home, paths)
