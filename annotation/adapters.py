"""Adapters from public human-feedback datasets to Ballot's import shapes.

Each adapter reads the upstream files as published and yields JSONL rows for
``items_import``, plus the questions a project needs to hold their labels.
Used by ``manage.py import_dataset`` and by the tests on ``shared/datasets``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Adapted:
    fmt: str
    rows: list[dict]
    questions: list[dict] = field(default_factory=list)


def _jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def hh_rlhf(root: Path) -> Adapted:
    """Anthropic HH-RLHF ``{chosen, rejected}`` transcripts, as they are."""
    path = root / "harmless-base_test.jsonl" if root.is_dir() else root
    return Adapted("hh", list(_jsonl(path)))


def oasst2_ranked(root: Path) -> Adapted:
    """OpenAssistant trees: every group of ranked sibling assistant replies becomes one ranked item.

    The prompt is the conversation from the root to the parent; ``rank`` 0 is best.
    """
    path = root / "oasst2_filtered.jsonl" if root.is_dir() else root
    rows: list[dict] = []

    def walk(message: dict, history: list[dict]) -> None:
        role = "user" if message["role"] == "prompter" else "assistant"
        here = history + [{"role": role, "content": message["text"]}]
        replies = message.get("replies") or []
        ranked = [r for r in replies if r.get("rank") is not None]
        if len(ranked) >= 2 and all(r["role"] == "assistant" for r in ranked):
            rows.append(
                {
                    "external_id": f"oasst2-{message['message_id']}",
                    "prompt": here,
                    "responses": [
                        {"text": r["text"], "metadata": {"message_id": r["message_id"]}}
                        for r in ranked
                    ],
                    "ranks": [r["rank"] for r in ranked],
                    "metadata": {
                        "lang": message.get("lang"),
                        "tree": message.get("message_tree_id"),
                    },
                    "tags": ["oasst2", str(message.get("lang") or "")],
                }
            )
        for reply in replies:
            walk(reply, here)

    for tree in _jsonl(path):
        walk(tree["prompt"], [])
    return Adapted("ranked", rows)


TOPICAL_SCALES = {
    "understandability": [0, 1],
    "naturalness": [1, 3],
    "coherence": [1, 3],
    "engagingness": [1, 3],
    "groundedness": [0, 1],
    "overall": [1, 5],
}


def topical_chat_ratings(root: Path) -> Adapted:
    """USR Topical-Chat: one item per dialogue context with its six rated responses (means of 3 raters)."""
    path = root / "topical_chat.json" if root.is_dir() else root
    groups: dict[str, list[dict]] = {}
    for entry in json.loads(path.read_text(encoding="utf-8")):
        groups.setdefault(entry["source"], []).append(entry)
    rows = []
    for index, (source, entries) in enumerate(groups.items()):
        turns = [t.strip() for t in source.strip().split("\n") if t.strip()]
        # Turns alternate between the two speakers; the rated response answers the last one.
        messages = [
            {"role": "user" if (len(turns) - i) % 2 == 1 else "assistant", "content": turn}
            for i, turn in enumerate(turns)
        ]
        rows.append(
            {
                "external_id": f"topical-chat-{index:03d}",
                "prompt": messages,
                "responses": [
                    {"text": e["system_output"].strip(), "model": e["system_id"]} for e in entries
                ],
                "ratings": [e["scores"] for e in entries],
                "scale": TOPICAL_SCALES,
                "metadata": {"knowledge": entries[0].get("context", "")},
                "tags": ["topical-chat"],
            }
        )
    return Adapted("ratings", rows)


TULU_PREFERENCE = {
    "a-is-better": ("a", 2),
    "a-is-slightly-better": ("a", 1),
    "tie": ("tie", None),
    "b-is-slightly-better": ("b", 1),
    "b-is-better": ("b", 2),
}


def tulu1_pairwise(root: Path) -> Adapted:
    """Tülu 1 human evaluation: one item per comparison instance, one annotation per evaluator.

    A/B order was randomised per annotation upstream, so responses are stored in
    a fixed order (sorted by model name) and each label is re-oriented to it.
    """
    path = root / "eval_annotations_tulu_1.jsonl" if root.is_dir() else root
    items: dict[int, dict] = {}
    for row in _jsonl(path):
        by_model = {row["model_a"]: row["completion_a"], row["model_b"]: row["completion_b"]}
        models = sorted(by_model)
        item = items.setdefault(
            row["instance_index"],
            {
                "external_id": f"tulu1-{row['instance_index']}",
                "prompt": row["prompt"],
                "responses": [{"text": by_model[m], "model": m} for m in models],
                "metadata": {"instance_id": row["instance_id"]},
                "tags": ["tulu1"],
                "annotations": [],
            },
        )
        if any(a["annotator"] == row["evaluator"] for a in item["annotations"]):
            continue
        side, strength = TULU_PREFERENCE[row["preference"]]
        if side == "tie":
            answer = {"question": "preference", "chosen": 0, "rejected": 1, "tie": True}
        else:
            winner = row["model_a"] if side == "a" else row["model_b"]
            chosen = models.index(winner)
            answer = {
                "question": "preference",
                "chosen": chosen,
                "rejected": 1 - chosen,
                "strength": strength,
            }
        item["annotations"].append({"annotator": row["evaluator"], "answers": [answer]})
    questions = [
        {
            "kind": "pairwise",
            "name": "preference",
            "config": {"allow_tie": True, "strength_scale": {"min": 1, "max": 2}},
        }
    ]
    return Adapted("native", list(items.values()), questions)


SQUALITY_ASPECTS = ("correctness", "selection", "overall")


def squality(root: Path) -> Adapted:
    """SQuALITY human evaluation: per question, three summaries, each reviewer's ratings, ranking and span critiques."""
    path = root / "all-responses.jsonl"
    questions_text: dict[tuple[str, int], str] = {}
    story_file = root / "v1-3_txt_test.jsonl"
    if story_file.exists():
        for story in _jsonl(story_file):
            for question in story["questions"]:
                questions_text[
                    (str(story["metadata"]["passage_id"]), question["question_number"])
                ] = question["question_text"]
    rows = []
    for passage in _jsonl(path):
        pid = str(passage["passage-id"])
        for qkey, systems in passage["questions"].items():
            names = sorted(systems)
            prompt = questions_text.get(
                (pid, int(qkey) + 1), f"Question {int(qkey) + 1} about story {pid}"
            )
            by_worker: dict[str, dict] = {}
            for position, system in enumerate(names):
                text = systems[system]["response"]
                for review in systems[system]["reviews"]:
                    entry = by_worker.setdefault(
                        review["worker_id"], {"ratings": [], "ranks": {}, "corrections": []}
                    )
                    for aspect in SQUALITY_ASPECTS:
                        value = review.get(f"{aspect}-rating")
                        if value is not None:
                            entry["ratings"].append(
                                {"response": position, "aspect": aspect, "value": float(value)}
                            )
                    if review.get("overall-rank") is not None:
                        entry["ranks"][position] = review["overall-rank"]
                    taken: list[tuple[int, int]] = []
                    for note in review.get("annotations") or []:
                        selection = note.get("selection") or ""
                        start = text.find(selection) if selection else -1
                        end = start + len(selection)
                        if start < 0 or any(start < e and s < end for s, e in taken):
                            continue
                        taken.append((start, end))
                        entry["corrections"].append(
                            {
                                "response": position,
                                "start": start,
                                "end": end,
                                "original_text": selection,
                                "corrected_text": "",
                                "category": "critique",
                                "comment": " ".join(note.get("annotation") or []),
                            }
                        )
            annotations = []
            for worker, entry in sorted(by_worker.items()):
                answers = [{"question": "aspects", "ratings": entry["ratings"]}]
                if len(entry["ranks"]) == len(names):
                    ranks = entry["ranks"]
                    ranking = [
                        [p for p in ranks if ranks[p] == value]
                        for value in sorted(set(ranks.values()))
                    ]
                    answers.append({"question": "ranking", "ranking": ranking})
                answers.append({"question": "critiques", "corrections": entry["corrections"]})
                annotations.append({"annotator": worker, "answers": answers})
            rows.append(
                {
                    "external_id": f"squality-{pid}-{qkey}",
                    "prompt": prompt,
                    "responses": [{"text": systems[s]["response"], "model": s} for s in names],
                    "metadata": {"passage_id": pid},
                    "tags": ["squality"],
                    "annotations": annotations,
                }
            )
    questions = [
        {
            "kind": "rating",
            "name": "aspects",
            "config": {"aspects": list(SQUALITY_ASPECTS), "scale": {"min": 0, "max": 100}},
        },
        {"kind": "ranking", "name": "ranking"},
        {
            "kind": "correction",
            "name": "critiques",
            "required": False,
            "config": {"categories": ["critique"]},
        },
    ]
    return Adapted("native", rows, questions)


LLMBAR_SUBSETS = (
    "Natural",
    "Adversarial/Neighbor",
    "Adversarial/GPTInst",
    "Adversarial/GPTOut",
    "Adversarial/Manual",
)
PREFERENCE_WITH_TIES = {"kind": "pairwise", "name": "preference", "config": {"allow_tie": True}}


def _order_verdict(run: dict | None) -> int | None:
    """A judge's winner in one presentation order (1 or 2, mapped back to the original
    numbering upstream); None when the run gave no usable verdict."""
    winner = str((run or {}).get("winner", "")).strip()
    return int(winner) if winner in ("1", "2") else None


def _judged_items(folder: Path, *, prefix: str, tag: str, annotator: str) -> list[dict]:
    """Items of one LLMBar-layout folder: the gold label as a human annotation, each
    evaluator's verdict as an AI annotation.

    Every judge ran in both orders. Agreeing orders give its label; disagreeing ones a
    tie (position inconsistency); no usable verdict in either order, no AI label (an
    abstention). Both verdicts are kept in ``metadata.judge_orders`` so routing can use
    position inconsistency as a feature.
    """
    data = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    rows = []
    for index, entry in enumerate(data):
        gold = int(entry["label"]) - 1
        rows.append(
            {
                "external_id": f"{prefix}-{index}",
                "prompt": entry["input"],
                "responses": [{"text": entry["output_1"]}, {"text": entry["output_2"]}],
                "metadata": {"subset": tag, "judge_orders": {}},
                "tags": [prefix.split("-")[0], tag],
                "annotations": [
                    {
                        "annotator": annotator,
                        "answers": [
                            {"question": "preference", "chosen": gold, "rejected": 1 - gold}
                        ],
                    }
                ],
            }
        )
    evaluators = folder / "evaluators"
    for result_path in sorted(evaluators.glob("*/*/result.json")) if evaluators.exists() else []:
        judge = result_path.parent.parent.name
        results = json.loads(result_path.read_text(encoding="utf-8"))
        if len(results) != len(rows):
            raise ValueError(f"{result_path} has {len(results)} items, the dataset {len(rows)}")
        for row, judged in zip(rows, results, strict=True):
            runs = (judged.get("results") or [{}])[0]
            original = _order_verdict(runs.get("swap = False"))
            swapped = _order_verdict(runs.get("swap = True"))
            row["metadata"]["judge_orders"][judge] = {"original": original, "swapped": swapped}
            verdicts = {v for v in (original, swapped) if v is not None}
            if not verdicts:
                continue
            if len(verdicts) == 1:
                # Both orders agree, or only one gave a verdict.
                winner = verdicts.pop() - 1
                answer = {"question": "preference", "chosen": winner, "rejected": 1 - winner}
            else:
                answer = {"question": "preference", "chosen": 0, "rejected": 1, "tie": True}
            row["annotations"].append({"source": "ai", "judge": judge, "answers": [answer]})
    return rows


def llmbar(root: Path) -> Adapted:
    """LLMBar (Natural + the four Adversarial sets): gold labels and GPT-4 / ChatGPT verdicts."""
    rows: list[dict] = []
    for subset in LLMBAR_SUBSETS:
        folder = root / subset
        if (folder / "dataset.json").exists():
            name = subset.replace("/", "-")
            rows += _judged_items(
                folder, prefix=f"llmbar-{name}", tag=name, annotator="llmbar-gold"
            )
    return Adapted("native", rows, [PREFERENCE_WITH_TIES])


def llmbar_mtbench(root: Path) -> Adapted:
    """MT-Bench pairs from LLMBar: the human expert majority and four LLM judges' verdicts."""
    rows = _judged_items(root, prefix="mtbench", tag="mtbench", annotator="mtbench-experts")
    return Adapted("native", rows, [PREFERENCE_WITH_TIES])


ADAPTERS = {
    "hh_rlhf_harmless": hh_rlhf,
    "oasst2_openpaws_subset": oasst2_ranked,
    "topical_chat_usr_unieval": topical_chat_ratings,
    "tulu1_human_eval": tulu1_pairwise,
    "squality_human_eval": squality,
    "llmbar": llmbar,
    "llmbar_mtbench_human_vs_llm": llmbar_mtbench,
}
