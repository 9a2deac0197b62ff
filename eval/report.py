"""A Markdown table and a recall@k plot of an `EvalResult`."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from arrival.eval.metrics import PAIRS, RECALL_KS
from arrival.eval.runner import EvalResult

COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("R@1", "recall@1", None),
    ("R@5", "recall@5", None),
    ("R@10", "recall@10", None),
    ("MRR@10", "mrr@10", None),
    ("nDCG@10", "ndcg@10", None),
    ("en→fr R@5", "recall@5", "en→fr"),
    ("fr→en R@5", "recall@5", "fr→en"),
    ("en→en R@5", "recall@5", "en→en"),
    ("fr→fr R@5", "recall@5", "fr→fr"),
)


class ReportFiles(NamedTuple):
    markdown: Path
    plot: Path


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown_table(result: EvalResult) -> str:
    """Rows: retrievers; columns: headline metrics, R@5 per language pair, n (questions evaluated)."""
    head = ["Retriever", *(c[0] for c in COLUMNS), "n"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for mode, res in result.results.items():
        cells = [mode]
        for _label, metric, pair in COLUMNS:
            source = res.metrics if pair is None else res.by_pair.get(pair, {})
            cells.append(_cell(source.get(metric)))
        cells.append(str(int(res.metrics.get("n", 0))))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary_lines(result: EvalResult) -> list[str]:
    c = result.counts()
    pairs = ", ".join(f"{p} {c['by_pair'].get(p, 0)}" for p in PAIRS)
    others = {p: n for p, n in c["by_pair"].items() if p not in PAIRS}
    if others:
        pairs += ", " + ", ".join(f"{p} {n}" for p, n in sorted(others.items()))
    out = [
        f"{c['questions']} questions: {c['evaluated']} evaluated, {c['unanswerable']} unanswerable (skipped), "
        f"{c['unsatisfiable']} not satisfiable in this index (skipped).",
        f"Questions per language pair (question→documents): {pairs}.",
        "R@k is the share of questions with a relevant passage in the top k (ranx hit_rate@k); "
        "MRR@10 and nDCG@10 use binary relevance.",
    ]
    for mode, res in result.results.items():
        if res.queries:
            out.append(f"{mode}: {1000 * res.seconds / res.queries:.1f} ms per query.")
    if result.answers is not None:
        sm = result.answers.summary()
        groups = "; ".join(f"{g} {m['refused']:.0%} of {m['n']}" for g, m in sm["unanswerable"].items())
        ref = sm["refusal"]
        out.append("Answers (extractive assistant): the first citation holds a gold quote for "
                   f"{sm['answerable'].get('first_citation', 0):.1%} of the answerable questions; refused: "
                   f"{groups or 'no unanswerable questions'}; refusal precision "
                   f"{'–' if ref['precision'] is None else format(ref['precision'], '.2f')}, recall "
                   f"{'–' if ref['recall'] is None else format(ref['recall'], '.2f')}.")
    return out


def markdown_report(result: EvalResult, plot_name: str | None = None) -> str:
    parts = ["# Retrieval evaluation", "", markdown_table(result)]
    if result.answers is not None:
        from arrival.eval.answers import markdown_table as answer_table

        parts += ["## Answers (extractive assistant)", "", answer_table(result.answers)]
    parts += [f"- {s}" for s in summary_lines(result)]
    if plot_name:
        parts += ["", f"![recall@k]({plot_name})"]
    if result.warnings:
        parts += ["", "## Warnings", "", *(f"- {w}" for w in result.warnings)]
    return "\n".join(parts) + "\n"


def plot(result: EvalResult, path: str | Path) -> Path:
    """Recall@1..10 per retriever (left) and per language pair for the default retriever (right)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    ks = list(RECALL_KS)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    try:
        for mode, res in result.results.items():
            ys = res.curve
            if all(y is not None for y in ys):
                left.plot(ks, ys, marker="o", label=f"{mode} (n={int(res.metrics['n'])})")
        left.set_title("Recall@k per retriever")
        default = result.results.get(result.default_mode)
        if default is not None:
            for pair, m in default.by_pair.items():
                ys = default.pair_curve(pair)
                if all(y is not None for y in ys):
                    right.plot(ks, ys, marker="o", label=f"{pair} (n={int(m['n'])})")
        right.set_title(f"Recall@k per language pair ({result.default_mode})")
        for ax in (left, right):
            ax.set_xlabel("k")
            ax.set_xticks(ks)
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="lower right", fontsize="small")
        left.set_ylabel("share of questions with a relevant passage in top k")
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out, dpi=110)
    finally:
        plt.close(fig)
    return out


def write_report(result: EvalResult, folder: str | Path) -> ReportFiles:
    """Write `eval.md` and `recall.png` into `folder` (created if needed)."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    png = plot(result, d / "recall.png")
    md = d / "eval.md"
    md.write_text(markdown_report(result, png.name), encoding="utf-8")
    return ReportFiles(md, png)
