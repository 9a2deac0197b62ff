"""The `arrival` command line: a thin dispatcher over the library. Errors become one line on stderr."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from arrival.errors import ArrivalError, SettingsError
from arrival.eval.bench_cli import register as register_bench  # light: argparse only
from arrival.eval.cli import register as register_eval
from arrival.eval.cli import register_ranker
from arrival.eval.load_cli import register as register_load
from arrival.settings import Settings, for_backend, load_settings

log = logging.getLogger("arrival")


def _line(text: str) -> str:
    """One printable line: control characters (a newline in a file name) shown escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def _settings(args: argparse.Namespace) -> Settings:
    return for_backend(load_settings(
        home=getattr(args, "home", None), model=getattr(args, "model", None), threads=getattr(args, "threads", None),
        k=getattr(args, "k", None), retriever=getattr(args, "retriever_default", None),
    ), getattr(args, "backend", None))


# -- commands -------------------------------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace) -> int:
    from arrival.index.build import Indexer

    s = _settings(args)
    bar = _progress_bar(args, "ingest", unit="file")
    report = Indexer.from_settings(s).ingest([Path(p) for p in args.paths], prune=args.prune, rebuild=args.rebuild,
                                         wait=args.wait, progress=bar, cluster=args.cluster)
    if args.json:
        _emit(report.to_json())
    else:
        for f in report.files:
            extra = f" ({f.reason})" if f.reason else ""
            counts = f" {f.pages} pages, {f.chunks} chunks" if f.status == "indexed" else ""
            sys.stdout.write(_line(f"{f.status:9} {f.path}{counts}{extra}") + "\n")
        data = report.to_json()
        n = {st: sum(1 for f in report.files if f.status == st) for st in ("indexed", "unchanged", "moved", "failed")}
        moved = f"{n['moved']} moved, " if n["moved"] else ""
        sys.stdout.write(f"{n['indexed']} indexed, {n['unchanged']} unchanged, {moved}{n['failed']} failed "
                         f"in {data['seconds']} s ({data['pages_per_s']} pages/s)\n")
    for f in report.failed:
        sys.stderr.write(_line(f"arrival: {f.path}: {f.reason}") + "\n")
    return 1 if report.failed else 0


def cmd_remove(args: argparse.Namespace) -> int:
    from arrival.index.build import Indexer

    s = _settings(args)
    report = Indexer.from_settings(s).remove(list(args.targets), wait=args.wait)
    if args.json:
        _emit(report.to_json())
    else:
        for f in report.files:
            if f.status == "removed":
                sys.stdout.write(_line(f"removed   {f.path} ({f.pages} pages, {f.chunks} chunks)") + "\n")
    for f in report.failed:
        sys.stderr.write(_line(f"arrival: {f.path}: {f.reason}") + "\n")
    return 1 if report.failed else 0


def cmd_search(args: argparse.Namespace) -> int:
    from arrival.index.retrieve import Filters, Retriever

    s = _settings(args)
    hits = Retriever.from_settings(s).search(
        args.query, k=s.k, mode=args.retriever or s.retriever,
        filters=Filters(tuple(args.lang or ()), tuple(args.doc or ())),
    )
    if args.json:
        _emit([h.to_json() for h in hits])
    else:
        for h in hits:
            text = " ".join(h.text.split())
            sys.stdout.write(_line(f"{h.rank:>2}. [{h.score:.3f}] {h.source} p.{h.page} ({h.lang})") + "\n")
            sys.stdout.write(f"    {text[:300]}\n")
            if h.also:
                sys.stdout.write(_line("    also in: " + "; ".join(f"{src} p.{page}" for src, page in h.also)) + "\n")
        if not hits:
            sys.stdout.write("no results\n")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from arrival.assistant.llm import make_assistant
    from arrival.index.retrieve import Filters, Retriever

    s = _settings(args)
    assistant = make_assistant(s, Retriever.from_settings(s), args.mode)
    filters = Filters(tuple(args.lang or ()), tuple(args.doc or ()))
    if args.json:
        _emit(assistant.ask(args.question, k=s.k, filters=filters).to_json())
        return 0
    from arrival.types import Answer

    answer = None
    for part in assistant.stream(args.question, k=s.k, filters=filters):
        if isinstance(part, Answer):
            answer = part
        else:
            sys.stdout.write(part)
            sys.stdout.flush()
    sys.stdout.write("\n")
    if answer is not None:
        if answer.mode == "llm":  # the checked text can differ from the stream (invented keys removed)
            sys.stdout.write(f"\n{answer.answer}\n")
        sys.stdout.write("\n")
        for c in answer.citations:
            sys.stdout.write(f"[{c.n}] {c.title} — {c.source}, p. {c.page}\n    « {c.quote} »\n")
        if answer.refused:
            sys.stdout.write("Closest passages:\n")
            for h in answer.passages:
                sys.stdout.write(f"  {h.source} p.{h.page}: {' '.join(h.text.split())[:160]}\n")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from arrival.index.backend import open_backend

    s = _settings(args)
    backend = open_backend(s)
    snap = backend.view() if backend.has_index() else None
    stats: dict[str, Any] = {"home": backend.location}
    if snap is None:
        stats.update(documents=0, pages=0, chunks=0, languages={}, embedder=None, index_bytes=0)
    else:
        stats.update(snap.stats())
        if args.documents:
            stats["document_list"] = [
                {"doc_id": d.doc_id, "path": d.path, "title": d.title, "pages": d.page_count,
                 "chunks": d.chunks, "languages": list(d.languages), "ingested_at": round(d.ingested_at, 3)}
                for d in snap.documents().values()
            ]
    if args.json:
        _emit(stats)
    else:
        for key, value in stats.items():
            if key != "document_list":
                sys.stdout.write(f"{key:14} {value}\n")
        for d in stats.get("document_list", []):
            sys.stdout.write(f"  {d['path']}  {d['pages']} p, {d['chunks']} chunks, {','.join(d['languages'])}\n")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from arrival.index.models import MODEL_NAMES, fetch_model, model_status

    s = _settings(args)
    names = [args.name] if args.name else list(MODEL_NAMES)
    failed = 0
    if args.action == "fetch":
        for name in names:
            before = model_status(s.cache, name)
            if (before["status"] != "ok" or args.force) and not args.quiet:
                sys.stderr.write(f"arrival: fetching {name} from {before['source']}…\n")
            try:
                fetch_model(name, s.cache, force=args.force)
            except ArrivalError as exc:  # the other model is still fetched
                failed += 1
                sys.stderr.write(_line(f"arrival: {name}: {exc}") + "\n")
    out = [model_status(s.cache, name) for name in names]
    if args.json:
        _emit(out)
    else:
        for m in out:
            reason = f"  ({m['reason']})" if m["reason"] else ""
            sys.stdout.write(_line(f"{m['model']:7} {m['status']:8} --model {m['spec']:9} {m['path']}{reason}") + "\n")
    return 1 if failed else 0


def _tune_malloc() -> None:
    """A long-running server on glibc: at most two malloc arenas and large blocks returned to the system, set
    before any thread starts. Without it, freed memory of Gradio's short-lived worker threads stays in per-thread
    arenas and the server's RSS keeps growing (measured by the soak test, README)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(-8, 2)  # M_ARENA_MAX
        libc.mallopt(-3, 131072)  # M_MMAP_THRESHOLD: 128 KiB, fixed
    except (OSError, AttributeError):
        pass


def cmd_serve(args: argparse.Namespace) -> int:
    from arrival.assistant.server import (
        Backend,
        build_app,
        bundled_corpus,
        exposure_refusal,
        exposure_warning,
        index_is_empty,
    )

    _tune_malloc()

    s = _settings(args)
    refusal = exposure_refusal(s, args.host, args.public_without_password)
    if refusal:
        raise SettingsError(refusal)  # exit 2, one line
    warning = exposure_warning(s, args.host)
    if warning:
        sys.stderr.write(f"arrival: warning: {warning}\n")
    backend = Backend(s)
    if not args.no_ingest and index_is_empty(backend):
        corpus = bundled_corpus()
        if corpus.is_dir():

            sys.stderr.write(f"arrival: the index is empty; indexing {corpus} first\n")
            try:
                report = backend.indexer().ingest([corpus], wait=60.0)
            except ArrivalError as exc:
                sys.stderr.write(f"arrival: could not index {corpus}: {exc}\n")
            else:
                from arrival.assistant.failures import record_results

                for f in report.failed:
                    sys.stderr.write(f"arrival: {f.path}: {f.reason}\n")
                record_results(s.home, [(Path(f.path).name, f.status, f.reason) for f in report.files], "ingest")
                n = sum(1 for f in report.files if f.status == "indexed")
                sys.stderr.write(f"arrival: {n} document(s) indexed in {report.seconds:.1f} s\n")
        else:
            sys.stderr.write(f"arrival: no corpus folder at {corpus}; add documents from the page\n")
    import threading

    import uvicorn

    from arrival.assistant.examples import warm_up

    app = build_app(s, backend=backend)
    threading.Thread(target=warm_up, args=(backend,), name="arrival-warm-up", daemon=True).start()
    shown = f"[{args.host}]" if ":" in args.host else args.host
    sys.stderr.write(f"arrival: chat on http://{shown}:{args.port}/ (Ctrl+C to stop)\n")
    sys.stderr.flush()
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")
    return 0


# -- plumbing -------------------------------------------------------------------------------------------
def _progress_bar(args: argparse.Namespace, desc: str, unit: str) -> Callable[[str, int, int], None] | None:
    if getattr(args, "quiet", False) or (not sys.stderr.isatty() and not getattr(args, "progress", False)):
        return None
    from tqdm import tqdm

    state: dict[str, Any] = {}

    def update(path: str, done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)
        bar.n = done
        bar.set_postfix_str(Path(path).name[-40:] if path else "writing index", refresh=True)
        if done >= total and path == "":
            bar.close()

    return update


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="index folder (default: $ARRIVAL_HOME or ./.arrival)")
    common.add_argument("--model", help="embedder: use-m3 | st:<name-or-path> | hash:<dim>")
    common.add_argument("--threads", type=int, help="embedder threads (0 = all cores)")
    common.add_argument("--backend", choices=["embedded", "postgres"],
                        help="the index folder (embedded) or the PostgreSQL database of ARRIVAL_DATABASE_URL "
                             "(postgres); default: postgres when that URL is set")
    common.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    parser = argparse.ArgumentParser(prog="arrival", description="Multilingual search and cited answers over "
                                     "migration-policy PDFs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", parents=[common], help="index PDFs (files or folders)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--prune", action="store_true", help="remove documents whose files are gone")
    p.add_argument("--rebuild", action="store_true", help="start a fresh index from these paths")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait for another ingest's lock")
    p.add_argument("--json", action="store_true")
    p.add_argument("--progress", action="store_true", help="show the progress bar even when not on a terminal")
    p.add_argument("--cluster", default="", metavar="ADDRESS",
                   help="parse and embed on a Dask cluster: tcp://scheduler:8786, or 'local' for worker processes "
                        "on this machine")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("remove", parents=[common], help="remove documents from the index")
    p.add_argument("targets", nargs="+", metavar="DOC", help="a file path, the path as ingested, or a doc_id")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait for another ingest's lock")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("search", parents=[common], help="find passages")
    p.add_argument("query")
    p.add_argument("-k", type=int, help="number of passages (default 5)")
    p.add_argument("--retriever", choices=["bm25", "dense", "fusion", "hybrid"])
    p.add_argument("--lang", action="append", help="only passages in this language (repeatable)")
    p.add_argument("--doc", action="append", metavar="GLOB", help="only documents matching (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", parents=[common], help="answer a question with citations")
    p.add_argument("question")
    p.add_argument("-k", type=int, help="passages shown (default 5)")
    p.add_argument("--mode", choices=["extractive", "llm"], help="default: llm if ARRIVAL_LLM is set")
    p.add_argument("--lang", action="append", help="only passages in this language (repeatable)")
    p.add_argument("--doc", action="append", metavar="GLOB", help="only documents matching (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("stats", parents=[common], help="what the index holds")
    p.add_argument("--documents", action="store_true", help="list the documents")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("models", parents=[common], help="fetch or list embedding models (use-m3, e5)")
    p.add_argument("action", choices=["fetch", "list"], nargs="?", default="list")
    p.add_argument("name", choices=["use-m3", "e5"], nargs="?", help="one model (default: both)")
    p.add_argument("--force", action="store_true", help="download (and convert) again even if present and ok")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("serve", parents=[common], help="run the chat in the browser")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--no-ingest", action="store_true", help="do not index the bundled corpus when the index is empty")
    p.add_argument("--public-without-password", action="store_true",
                   help="allow a non-loopback --host without ARRIVAL_PASSWORD (anyone who can reach it gets in)")
    p.set_defaults(func=cmd_serve)

    for register in _EXTRA_COMMANDS:
        register(sub, common)
    return parser


_EXTRA_COMMANDS: list[Callable[[Any, argparse.ArgumentParser], None]] = [
    register_eval, register_ranker, register_bench, register_load]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except SettingsError as exc:
        sys.stderr.write(_line(f"arrival: {exc}") + "\n")
        return 2
    except ArrivalError as exc:
        sys.stderr.write(_line(f"arrival: {exc}") + "\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("arrival: interrupted\n")
        return 130
    except OSError as exc:  # a home that is a file, a folder we may not write: one line, not a traceback
        where = exc.filename if exc.filename is not None else getattr(args, "home", None) or "arrival"
        sys.stderr.write(_line(f"arrival: {where}: {exc.strerror or exc}") + "\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
