"""The routing evaluation on stored projects: per project and judge, the budget curves of random,
the performance-prediction strategy (gain) and the judge-error strategy (error).

Used by ``manage.py routing_report``. For each project and each judge with AI labels in
it, the items carrying both a human and that judge's label are embedded once and
evaluated by :func:`models_gpu.routing.evaluate_routing` (cross-fitted: no item's human
label routes that item). Writes a Markdown table, a CSV and an HTML plot (Plotly, with
its script inlined so the file opens offline).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import models_gpu
from annotation.models import Project
from curation.routing import routing_inputs, routing_judges

STRATEGY_LABELS = {"random": "random", "gain": "(a) gain", "error": "(b) error"}


@dataclass
class ReportRow:
    dataset: str
    judge: str
    strategy: str
    budget: float
    items: int
    label_accuracy: float
    reward_accuracy: float | None


def routing_report_rows(
    *,
    projects: Sequence[Project],
    embedding: models_gpu.EmbeddingConfig,
    cache: models_gpu.EmbeddingCache | None,
    config: models_gpu.RoutingConfig,
    reward: bool = True,
    log: Callable[[str], None] = lambda message: None,
) -> list[ReportRow]:
    """Evaluate every (project, judge) pair; rows per strategy and budget."""
    from models_gpu import routing

    rows: list[ReportRow] = []
    for project in projects:
        judges = [j["judge"] for j in routing_judges(project=project)]
        tagger = routing.PrototypeTagger().fit(
            lambda texts: models_gpu.embed_texts(texts, config=embedding, cache=cache)
        )
        for judge in sorted(judges):
            inputs = routing_inputs(project=project, judge=judge)
            n = len(inputs.item_ids)
            emb = models_gpu.embed_texts(
                [*inputs.prompts, *inputs.responses_a, *inputs.responses_b],
                config=embedding,
                cache=cache,
            )
            pair = routing.PairEmbeddings(emb[:n], emb[n : 2 * n], emb[2 * n :])
            signals = routing.JudgeSignals(
                np.array(inputs.position_inconsistent),
                np.array(inputs.abstained),
                np.array(inputs.confidence, dtype=np.float64),
            )
            features = routing.instance_features(
                inputs.prompts,
                inputs.responses_a,
                inputs.responses_b,
                pair.prompt,
                pair.a,
                pair.b,
                tagger=tagger,
                signals=signals,
                config=config,
            )
            log(f"{project.name} / {judge}: {n} items, {len(features.names)} feature columns")
            for row in routing.evaluate_routing(
                features,
                np.array(inputs.human, dtype=np.float64),
                np.array(inputs.ai, dtype=np.float64),
                pair,
                config=config,
                reward=reward,
            ):
                rows.append(
                    ReportRow(
                        dataset=project.name,
                        judge=judge,
                        strategy=row["strategy"],
                        budget=row["budget"],
                        items=row["items"],
                        label_accuracy=row["label_accuracy"],
                        reward_accuracy=row["reward_accuracy"],
                    )
                )
    return rows


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def aim_at(rows: Sequence[ReportRow], budget: float = 0.25) -> dict:
    """The aim at ``budget``: the better strategy's mean label-accuracy gain over random
    across (dataset, judge) pairs, and its worst loss to random on any pair, in points."""
    by_key = {(r.dataset, r.judge, r.strategy): r for r in rows if r.budget == budget}
    pairs = sorted({(r.dataset, r.judge) for r in rows})
    out = {}
    for strategy in ("gain", "error"):
        deltas = [
            100
            * (by_key[(d, j, strategy)].label_accuracy - by_key[(d, j, "random")].label_accuracy)
            for d, j in pairs
            if (d, j, strategy) in by_key and (d, j, "random") in by_key
        ]
        if deltas:
            out[strategy] = {"mean_gain": float(np.mean(deltas)), "worst": float(min(deltas))}
    if not out:
        return {}
    best = max(out, key=lambda s: out[s]["mean_gain"])
    met = out[best]["mean_gain"] >= 3.0 and out[best]["worst"] >= -1.0
    return {"budget": budget, "strategies": out, "better": best, "met": met}


# A spreadsheet evaluates a cell that starts with one of these as a formula
# (OWASP "CSV injection"); a dataset or judge name is user text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """``value`` safe for a CSV a spreadsheet may open: text that starts like a formula is
    prefixed with a quote, so it shows as typed instead of being evaluated. Numbers
    (negative ones included) are written as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def routing_report_write(rows: Sequence[ReportRow], folder: Path) -> dict[str, Path]:
    """Write ``routing_report.md``, ``routing_report.csv`` and ``routing_report.html``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": folder / "routing_report.md",
        "csv": folder / "routing_report.csv",
        "plot": folder / "routing_report.html",
    }
    with paths["csv"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["dataset", "judge", "strategy", "budget", "items", "label_accuracy", "reward_accuracy"]
        )
        for r in rows:
            writer.writerow(
                [
                    csv_cell(r.dataset),
                    csv_cell(r.judge),
                    csv_cell(r.strategy),
                    r.budget,
                    r.items,
                    round(r.label_accuracy, 4),
                    "" if r.reward_accuracy is None else round(r.reward_accuracy, 4),
                ]
            )
    paths["markdown"].write_text(routing_report_markdown(rows), encoding="utf-8")
    _plot(rows, paths["plot"])
    return paths


def routing_report_markdown(rows: Sequence[ReportRow]) -> str:
    """The table: one line per (dataset, judge, strategy); label / reward-model accuracy per budget."""
    budgets = sorted({r.budget for r in rows})
    header = "| dataset | judge | items | strategy | " + " | ".join(
        f"{b:.0%} label / RM" for b in budgets
    )
    lines = [
        header + " |",
        "|" + "---|" * (4 + len(budgets)),
    ]
    keys = sorted({(r.dataset, r.judge) for r in rows})
    index = {(r.dataset, r.judge, r.strategy, r.budget): r for r in rows}
    for dataset, judge in keys:
        for strategy in ("random", "gain", "error"):
            cells = []
            items = ""
            for b in budgets:
                r = index.get((dataset, judge, strategy, b))
                if r is None:
                    cells.append("")
                    continue
                items = str(r.items)
                cells.append(f"{_pct(r.label_accuracy)} / {_pct(r.reward_accuracy)}")
            lines.append(
                f"| {dataset} | {judge} | {items} | {STRATEGY_LABELS[strategy]} | "
                + " | ".join(cells)
                + " |"
            )
    aim = aim_at(rows)
    if aim:
        lines.append("")
        for strategy, figures in aim["strategies"].items():
            lines.append(
                f"At 25%: {STRATEGY_LABELS[strategy]} beats random by "
                f"{figures['mean_gain']:+.1f} points of label accuracy on average over the "
                f"dataset–judge pairs; worst pair {figures['worst']:+.1f}."
            )
        lines.append(
            f"Aim (better strategy ≥ +3 points on average, no pair below −1): "
            f"{'met' if aim['met'] else 'not met'} ({STRATEGY_LABELS[aim['better']]})."
        )
    return "\n".join(lines) + "\n"


def _plot(rows: Sequence[ReportRow], path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    keys = sorted({(r.dataset, r.judge) for r in rows})
    cols = min(3, len(keys)) or 1
    grid_rows = -(-len(keys) // cols) or 1
    figure = make_subplots(
        rows=grid_rows, cols=cols, subplot_titles=[f"{d} · {j}" for d, j in keys]
    )
    colours = {"random": "#888888", "gain": "#1f77b4", "error": "#d62728"}
    for index, (dataset, judge) in enumerate(keys):
        for strategy in ("random", "gain", "error"):
            points = sorted(
                (r.budget, r.label_accuracy)
                for r in rows
                if (r.dataset, r.judge, r.strategy) == (dataset, judge, strategy)
            )
            if not points:
                continue
            figure.add_trace(
                go.Scatter(
                    x=[100 * b for b, _ in points],
                    y=[100 * a for _, a in points],
                    name=STRATEGY_LABELS[strategy],
                    line={"color": colours[strategy]},
                    legendgroup=strategy,
                    showlegend=index == 0,
                ),
                row=index // cols + 1,
                col=index % cols + 1,
            )
    figure.update_xaxes(title_text="human budget (%)")
    figure.update_yaxes(title_text="label accuracy (%)")
    figure.update_layout(
        title="Accuracy of the mixed labels against human labels, by human budget",
        height=320 * grid_rows,
    )
    figure.write_html(str(path), include_plotlyjs=True, full_html=True)
