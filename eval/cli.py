"""`arrival eval`: measure retrieval quality on a question file. The only eval module that writes to stdout."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

RETRIEVERS = ("bm25", "dense", "hybrid")


def default_questions() -> Path:
    from importlib.resources import files

    return Path(str(files("arrival.eval") / "questions.jsonl"))


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the `eval` subcommand to the `arrival` parser."""
    p = sub.add_parser("eval", parents=[common], help="measure retrieval quality on a question set",
                       description="Search every question of a JSON-lines question file and report Recall@1/5/10 "
                                   "(share of questions with a relevant passage in the top k), MRR@10 and "
                                   "nDCG@10, overall and per language pair.")
    p.add_argument("--questions", type=Path, metavar="FILE",
                   help="JSON-lines question file (default: the packaged eval/questions.jsonl)")
    p.add_argument("-k", type=int, default=10, metavar="N",
                   help="passages retrieved per question and written to --output (at least 10; the metrics "
                        "use the top 10)")
    p.add_argument("--retriever", choices=[*RETRIEVERS, "all"], default="hybrid",
                   help="retriever to evaluate; 'all' = bm25, dense, hybrid (default: hybrid)")
    p.add_argument("--output", type=Path, metavar="RUN.jsonl",
                   help="write the retrieved passages: one JSON line per question and retriever")
    p.add_argument("--report", type=Path, metavar="DIR", help="write eval.md and recall.png into DIR")
    p.add_argument("--query-lang", choices=["detect", "given"], default="detect",
                   help="query language for the retriever: detected like 'arrival search' (default) or "
                        "taken from the question file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from arrival.assistant.answer import Assistant
    from arrival.errors import SettingsError
    from arrival.eval.relevance import load_questions
    from arrival.eval.report import markdown_table, summary_lines, write_report
    from arrival.eval.runner import check_refusals, evaluate
    from arrival.index.retrieve import Retriever
    from arrival.settings import load_settings

    if args.k is not None and args.k < 1:
        raise SettingsError("-k must be at least 1")
    settings = load_settings(home=getattr(args, "home", None), model=getattr(args, "model", None),
                             threads=getattr(args, "threads", None))
    questions = load_questions(args.questions or default_questions())
    modes = RETRIEVERS if args.retriever == "all" else (args.retriever,)
    retriever = Retriever.from_settings(settings)
    bar = _progress(args)
    try:
        result = evaluate(retriever, questions, k=args.k, modes=modes, progress=bar,
                          use_question_lang=args.query_lang == "given")
    finally:
        if bar is not None:
            bar(-1, -1)
    result.refusals = check_refusals(Assistant(retriever), result)
    written: dict[str, str] = {}
    if args.output:
        written["output"] = str(_writing(args.output, result.write_run))
    if args.report:
        files = _writing(args.report, lambda d: write_report(result, d))
        written.update(markdown=str(files.markdown), plot=str(files.plot))
    if args.json:
        data = result.to_json()
        data.update(written)
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(markdown_table(result))
        sys.stdout.write("\n" + "\n".join(summary_lines(result)) + "\n")
        for name, path in written.items():
            sys.stdout.write(f"{name}: {path}\n")
        for w in result.warnings:
            sys.stderr.write(f"arrival: warning: {w}\n")
    return 0


def _writing(path: Path, write: Any) -> Any:
    from arrival.errors import ArrivalError

    try:
        return write(path)
    except OSError as exc:
        raise ArrivalError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _progress(args: argparse.Namespace) -> Any:
    if getattr(args, "quiet", False) or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        bar = state.get("bar")
        if done < 0:
            if bar is not None:
                bar.close()
            return
        if bar is None:
            bar = state["bar"] = tqdm(total=total, desc="eval", unit="query", file=sys.stderr, leave=False)
        bar.n = done
        bar.refresh()

    return update
