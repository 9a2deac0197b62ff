"""Ingest files into the index: discover PDFs, skip unchanged ones, parse, chunk, embed, write a generation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.embed import Embedder
from index.store import IndexStore, Snapshot
from ingest.chunk import Chunker, document_languages
from ingest.errors import IngestError
from ingest.pdf import PdfLoader, sha256_file
from ingest.settings import Settings
from ingest.types import Chunk, Document

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (path, done, total)


@dataclass
class FileReport:
    path: str
    status: str  # indexed | unchanged | failed | removed
    reason: str = ""
    pages: int = 0
    chunks: int = 0

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "status": self.status, "reason": self.reason, "pages": self.pages,
                "chunks": self.chunks}


@dataclass
class IngestReport:
    files: list[FileReport] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> list[FileReport]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def pages_indexed(self) -> int:
        return sum(f.pages for f in self.files if f.status == "indexed")

    def to_json(self) -> dict[str, object]:
        return {
            "files": [f.to_json() for f in self.files],
            "seconds": round(self.seconds, 3),
            "pages_per_s": round(self.pages_indexed / self.seconds, 2) if self.seconds > 0 else 0.0,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[FileReport]]:
    """PDF files under the given paths (folders recursively, sorted); missing paths become failures."""
    found: list[Path] = []
    missing: list[FileReport] = []
    for p in paths:
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() == ".pdf"))
        elif p.is_file():
            found.append(p)
        else:
            missing.append(FileReport(str(p), "failed", "no such file or folder"))
    seen: set[Path] = set()
    unique = []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, missing


def embedding_text(chunk: Chunk) -> str:
    """What the embedder sees for a chunk."""
    return chunk.text


class Indexer:
    """Owns the write path. One instance per ingest run."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = IndexStore(settings.home)
        self.loader = PdfLoader(settings.max_pdf_mb << 20, settings.max_pages, settings.max_page_chars)
        self.chunker = Chunker(settings.chunk_size, settings.chunk_overlap)

    def ingest(self, paths: list[Path], prune: bool = False, rebuild: bool = False, wait: float = 0.0,
               progress: Progress | None = None) -> IngestReport:
        t0 = time.perf_counter()
        report = IngestReport()
        timings = dict.fromkeys(("hash", "parse", "chunk", "embed", "write"), 0.0)
        files, missing = discover(paths)
        report.files.extend(missing)
        with self.store.lock(wait=wait):
            base = None if rebuild else self._open_base()
            known = {d.path: d for d in base.documents().values()} if base else {}
            by_sha = {d.sha256: d for d in base.documents().values()} if base else {}
            remove: set[str] = set()
            add: list[tuple[Document, tuple[str, ...], list[Chunk], np.ndarray]] = []
            for i, f in enumerate(files):
                name = str(f)
                if progress:
                    progress(name, i, len(files))
                t = time.perf_counter()
                try:
                    sha = sha256_file(f)
                except OSError as exc:
                    report.files.append(FileReport(name, "failed", f"cannot read file: {exc.strerror or exc}"))
                    continue
                timings["hash"] += time.perf_counter() - t
                old = known.get(name)
                if old is not None and old.sha256 == sha:
                    report.files.append(FileReport(name, "unchanged", "", old.page_count, old.chunks))
                    continue
                twin = by_sha.get(sha)
                if twin is not None and twin.doc_id not in remove and twin.path != name:
                    if Path(twin.abspath).exists():
                        report.files.append(FileReport(name, "unchanged", f"same content as {twin.path}"))
                        continue
                    remove.add(twin.doc_id)  # the file moved: index it under its new path
                try:
                    doc, langs, chunks, vecs, parts = self._process(f, sha)
                except IngestError as exc:
                    log.info("%s", exc)
                    report.files.append(FileReport(name, "failed", exc.reason))
                    continue
                for k, v in parts.items():
                    timings[k] += v
                if old is not None:
                    remove.add(old.doc_id)
                add.append((doc, langs, chunks, vecs))
                by_sha[sha] = _Pending(doc)  # type: ignore[assignment]
                report.files.append(FileReport(name, "indexed", "", doc.page_count, len(chunks)))
            if progress:
                progress("", len(files), len(files))
            if prune and base is not None:
                for d in base.documents().values():
                    if not Path(d.abspath).exists() and d.doc_id not in remove:
                        remove.add(d.doc_id)
                        report.files.append(FileReport(d.path, "removed", "file no longer exists",
                                                       d.page_count, d.chunks))
            if add or remove or rebuild or base is None:
                t = time.perf_counter()
                self.store.write_generation(base, remove, add, self.embedder.id, self.embedder.dim,
                                            self.settings.chunk_size, self.settings.chunk_overlap)
                timings["write"] += time.perf_counter() - t
            if base is not None:
                base.close()
        report.seconds = time.perf_counter() - t0
        report.timings = timings
        return report

    def _open_base(self) -> Snapshot | None:
        base = self.store.open(expected_embedder=self.embedder.id)
        if base is not None and (base.manifest.chunk_size, base.manifest.chunk_overlap) != (
            self.settings.chunk_size, self.settings.chunk_overlap
        ) and base.manifest.chunks:
            from ingest.errors import IndexOpenError

            raise IndexOpenError(
                f"{self.store.home}: index was built with chunk size {base.manifest.chunk_size}/overlap "
                f"{base.manifest.chunk_overlap}; rebuild with 'arrival ingest --rebuild PATH...' to change it"
            )
        return base

    def _process(self, f: Path, sha: str) -> tuple[Document, tuple[str, ...], list[Chunk], np.ndarray,
                                                    dict[str, float]]:
        t = time.perf_counter()
        doc = self.loader.load(f, sha)
        t_parse = time.perf_counter() - t
        t = time.perf_counter()
        chunks = self.chunker.split(doc)
        if not chunks:
            raise IngestError(str(f), "no extractable text: scanned? OCR is not enabled")
        t_chunk = time.perf_counter() - t
        t = time.perf_counter()
        vecs = self.embedder.embed_passages([embedding_text(c) for c in chunks])
        t_embed = time.perf_counter() - t
        return doc, document_languages(chunks), chunks, vecs, {"parse": t_parse, "chunk": t_chunk,
                                                                "embed": t_embed}


@dataclass
class _Pending:
    """A document added in this run, standing in for a DocInfo in the duplicate check."""

    doc: Document

    @property
    def doc_id(self) -> str:
        return self.doc.doc_id

    @property
    def path(self) -> str:
        return self.doc.path

    @property
    def abspath(self) -> str:
        return str(Path(self.doc.path).resolve())
