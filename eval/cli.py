"""`arrival eval`: measure retrieval quality on a question file. The only eval module that writes to stdout."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

RETRIEVERS = ("bm25", "dense", "fusion", "hybrid")


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
    p.add_argument("--no-answers", action="store_true",
                   help="measure retrieval only (by default every question is also asked to the extractive "
                        "assistant and its answer judged: first citation, citation precision, refusals)")
    p.add_argument("--allow-unsatisfiable", action="store_true",
                   help="do not fail when a question's quotes occur nowhere in the index (by default that fails "
                        "the run: a cleaning regression must not raise recall by dropping questions)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)


def register_ranker(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the `ranker-train` subcommand."""
    p = sub.add_parser("ranker-train", parents=[common], help="train the learned hybrid ranker on question sets",
                       description="Train the LightGBM ranker of the hybrid retriever on development question sets, "
                                   "cross-validated by document; write the model and its recipe (JSON).")
    p.add_argument("--questions", type=Path, nargs="+", metavar="FILE", required=True)
    p.add_argument("--exclude", nargs="*", default=[], metavar="GLOB",
                   help="leave out questions on these documents (the test documents of a blind set)")
    p.add_argument("--output", type=Path, metavar="MODEL.txt", help="default: the packaged index/ranker.txt")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ranker_train)


def cmd_ranker_train(args: argparse.Namespace) -> int:
    from arrival.eval.ranker_train import train
    from arrival.eval.relevance import load_questions
    from arrival.index.ranker import MODEL
    from arrival.index.retrieve import Retriever
    from arrival.settings import load_settings

    settings = load_settings(home=getattr(args, "home", None), model=getattr(args, "model", None),
                             threads=getattr(args, "threads", None), ranker=False)
    retriever = Retriever.from_settings(settings)
    questions = [q for f in args.questions for q in load_questions(f)]
    bar = _progress(args, "ranker")
    try:
        report = train(retriever, questions, [str(f) for f in args.questions], args.exclude, args.output or MODEL,
                       args.folds, bar)
    finally:
        if bar is not None:
            bar(-1, -1)
    if args.json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    else:
        cv = report["cross_validation"]
        sys.stdout.write(f"{report['questions']} questions on {report['documents']} documents, "
                         f"{report['folds']}-fold cross-validation by document:\n")
        for name in ("fusion", "ranker"):
            m = cv[name]
            sys.stdout.write(f"  {name:7} R@1 {m['recall@1']:.3f}  R@5 {m['recall@5']:.3f}  "
                             f"MRR@10 {m['mrr@10']:.3f}  (n={m['n']})\n")
        sys.stdout.write(f"model: {args.output or MODEL}\n")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from arrival.assistant.answer import Assistant
    from arrival.errors import ArrivalError, SettingsError
    from arrival.eval.answers import evaluate_answers
    from arrival.eval.answers import markdown_table as answer_table
    from arrival.eval.relevance import RelevanceJudge, load_questions
    from arrival.eval.report import markdown_table, summary_lines, write_report
    from arrival.eval.runner import evaluate
    from arrival.index.retrieve import Retriever
    from arrival.settings import for_backend, load_settings

    if args.k is not None and args.k < 1:
        raise SettingsError("-k must be at least 1")
    settings = for_backend(load_settings(home=getattr(args, "home", None), model=getattr(args, "model", None),
                                         threads=getattr(args, "threads", None)), getattr(args, "backend", None))
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
    missing = [q.id for q in questions if q.answerable and q.id not in set(result.evaluated)]
    if missing and not args.allow_unsatisfiable:
        raise ArrivalError(f"{len(missing)} question(s) cannot be satisfied in this index (their quotes occur "
                           f"nowhere): {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}; "
                           "check the index, or pass --allow-unsatisfiable")
    if not args.no_answers:
        bar = _progress(args, "answers")
        try:
            result.answers = evaluate_answers(Assistant(retriever), questions,
                                              RelevanceJudge(retriever.snapshot()), result.pairs, progress=bar)
        finally:
            if bar is not None:
                bar(-1, -1)
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
        if result.answers is not None:
            sys.stdout.write("\nAnswers (extractive assistant):\n\n" + answer_table(result.answers))
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


def _progress(args: argparse.Namespace, desc: str = "eval") -> Any:
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
            bar = state["bar"] = tqdm(total=total, desc=desc, unit="query", file=sys.stderr, leave=False)
        bar.n = done
        bar.refresh()

    return update
