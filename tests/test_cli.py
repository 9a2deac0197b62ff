"""The command line's contract: JSON shapes, exit codes, one-line errors (run as a real subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DEMO


def run(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "ARRIVAL_HOME": str(home), "ARRIVAL_MODEL": "hash:256", **env}
    return subprocess.run([sys.executable, "-m", "arrival.cli", *args], capture_output=True, text=True, env=e,
                          timeout=300)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    d = tmp_path / "my docs"
    d.mkdir()
    shutil.copy(DEMO, d / "gfmd.pdf")
    (d / "notes.pdf").write_text("this is not a pdf")
    return d


def test_ingest_search_stats_json(tmp_path, docs):
    home = tmp_path / "home"
    p = run(["ingest", str(docs), "--json"], home)
    assert p.returncode == 1, p.stderr  # notes.pdf failed, gfmd.pdf still indexed
    out = json.loads(p.stdout)
    by_name = {Path(f["path"]).name: f for f in out["files"]}
    assert by_name["gfmd.pdf"]["status"] == "indexed" and by_name["gfmd.pdf"]["pages"] == 18
    assert by_name["notes.pdf"]["status"] == "failed" and "not a PDF" in by_name["notes.pdf"]["reason"]
    assert set(out) >= {"files", "seconds", "pages_per_s"}
    assert p.stderr.strip().splitlines() == [f"arrival: {docs / 'notes.pdf'}: {by_name['notes.pdf']['reason']}"]

    p = run(["search", "guichet unique Lisbonne", "-k", "3", "--json"], home)
    assert p.returncode == 0, p.stderr
    hits = json.loads(p.stdout)
    assert len(hits) == 3
    assert set(hits[0]) >= {"rank", "score", "text", "source", "title", "page", "page_end", "lang", "chunk_id"}
    assert hits[0]["rank"] == 1 and hits[0]["page"] == 6 and hits[0]["source"] == str(docs / "gfmd.pdf")

    p = run(["stats", "--json", "--home", str(home)], tmp_path / "elsewhere")
    stats = json.loads(p.stdout)
    assert stats["documents"] == 1 and stats["pages"] == 18 and stats["chunks"] > 20
    assert stats["embedder"] == "hash:256" and stats["index_bytes"] > 0 and "fr" in stats["languages"]

    p = run(["ingest", str(docs / "gfmd.pdf"), "--json"], home)
    assert p.returncode == 0 and json.loads(p.stdout)["files"][0]["status"] == "unchanged"

    # the hash embedder has no meaning across wordings: ask with a sentence of page 6 itself
    question = "La ville de Malaga veille à ce qu'il ne soit pas nécessaire de disposer d'une pièce d'identité"
    p = run(["ask", question, "--json"], home)
    assert p.returncode == 0, p.stderr
    ans = json.loads(p.stdout)
    assert set(ans) >= {"answer", "lang", "refused", "citations", "passages"} and ans["lang"] == "fr"
    assert ans["refused"] is False and ans["citations"]
    first = ans["citations"][0]
    assert set(first) >= {"n", "title", "source", "page", "quote"} and first["n"] == 1
    assert first["source"] == str(docs / "gfmd.pdf") and first["page"] == 6 and "Malaga" in first["quote"]
    assert f"[{first['n']}]" in ans["answer"] and ans["passages"][0]["page"] == 6
    p = run(["ask", "What is the capital of Australia?", "--doc", "nothing*", "--json"], home)  # no passage
    ans = json.loads(p.stdout)
    assert p.returncode == 0 and ans["refused"] is True and ans["lang"] == "en" and ans["citations"] == []


def test_usage_and_user_errors_are_one_line(tmp_path):
    p = run(["search"], tmp_path)
    assert p.returncode == 2
    p = run(["search", "x"], tmp_path / "empty")
    assert p.returncode == 1 and "no index yet" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = run(["search", "x"], tmp_path, ARRIVAL_CHUNK_SIZE="5")
    assert p.returncode == 2 and "chunk_size" in p.stderr
    p = run(["ingest", str(tmp_path / "missing.pdf"), "--json"], tmp_path / "h")
    assert p.returncode == 1 and json.loads(p.stdout)["files"][0]["reason"] == "no such file or folder"
    p = run(["search", "x", "--model", "bogus"], tmp_path)
    assert p.returncode == 1 and "unknown embedder" in p.stderr
    (tmp_path / "a file").write_text("")
    for args in (["ingest", str(tmp_path / "missing.pdf")], ["search", "x"], ["stats"]):
        p = run([*args, "--home", str(tmp_path / "a file")], tmp_path)
        assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
        assert p.stderr.strip() == f"arrival: {tmp_path / 'a file'}: not a folder; the index home (--home, " \
                                   "ARRIVAL_HOME) must be a folder"
