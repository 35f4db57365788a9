"""Export formats and writers: schemas, loaders, splits, atomicity, memory, and real trainers."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from curation.exports import (
    FORMATS,
    ExportCancelled,
    ExportOptions,
    SplitPolicy,
    build_rows,
    export_schema,
    prompt_split,
    prompt_text,
    pseudonymise,
    write_export,
)
from curation.records import PointwiseRow, PreferencePair, RankedList

datasets = pytest.importorskip(
    "datasets", reason="datasets is needed to check the exported files load"
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SECRET = b"per-export-secret-0123456789"
ASPECTS = ("helpfulness", "harmlessness")


# ---------------------------------------------------------------- synthetic records


def conversation(i: int) -> list[dict]:
    # 40 distinct prompts shared by many records, so grouping by prompt matters.
    topic = i % 40
    if topic % 5 == 0:
        return [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"Question {topic}: what is {topic} squared?"},
        ]
    return [{"role": "user", "content": f"Question {topic}: what is {topic} squared?"}]


def preference_pairs(n: int) -> Iterator[PreferencePair]:
    for i in range(n):
        topic = i % 40
        yield PreferencePair(
            item_id=i,
            external_id=f"item-{i}",
            prompt=conversation(i),
            chosen_text=f"It is {topic * topic}.",
            rejected_text=f"It is {topic * topic + 1}, I think.",
            chosen_response_id=None if i % 3 == 0 else 2 * i,
            rejected_response_id=2 * i + 1,
            kind="correction" if i % 3 == 0 else "pairwise",
            question="better",
            tie=i % 11 == 10,
            margin=None if i % 4 == 0 else float(i % 3),
            annotators=(f"worker-{i % 7}", f"worker-{(i + 1) % 7}"),
            segments=(
                (
                    {
                        "start": 6,
                        "end": 6 + len(str(topic * topic + 1)),
                        "original": str(topic * topic + 1),
                        "corrected": str(topic * topic),
                        "category": "factuality",
                        "comment": "arithmetic",
                    },
                )
                if i % 3 == 0
                else ()
            ),
        )


def ranked_lists(n: int) -> Iterator[RankedList]:
    for i in range(n):
        yield RankedList(
            item_id=i,
            external_id=f"item-{i}",
            prompt=conversation(i),
            responses=("best answer", "middle answer", "worst answer"),
            response_ids=(3 * i, 3 * i + 1, 3 * i + 2),
            scores=(2.0, 1.0, 0.0),
            question="rank",
            annotators=(f"worker-{i % 7}",),
        )


def pointwise_rows(n: int) -> Iterator[PointwiseRow]:
    for i in range(n):
        scores = {"helpfulness": 1.0 + i % 5}
        if i % 2:
            scores["harmlessness"] = 4.5
        yield PointwiseRow(
            item_id=i,
            external_id=f"item-{i}",
            prompt=conversation(i),
            response=f"answer {i}",
            response_id=i,
            scores=scores,
            question="rate",
            annotators=(f"worker-{i % 7}",),
        )


def records_for(format_name: str, n: int) -> Iterator[Any]:
    if format_name == "ranked_list":
        return ranked_lists(n)
    if format_name == "pointwise":
        return pointwise_rows(n)
    return preference_pairs(n)


PROFILES = {f"worker-{k}": {"age_band": "30-39", "languages": ["en", "fr"]} for k in range(6)}

# Every format in both shapes; pseudonymised annotators and profiles on in one of them.
CASES = [(name, conversational) for name in FORMATS for conversational in (False, True)]


def options_for(format_name: str, conversational: bool) -> ExportOptions:
    return ExportOptions(
        conversational=conversational,
        include_margin=conversational,
        aspects=ASPECTS if format_name == "pointwise" else (),
        annotator_secret=SECRET if conversational else None,
        annotator_profiles=PROFILES if conversational else None,
    )


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


# ---------------------------------------------------------------- formats and loaders


@pytest.mark.parametrize(("format_name", "conversational"), CASES)
def test_every_format_loads_with_datasets_with_exactly_the_documented_columns(
    tmp_path: Path, format_name: str, conversational: bool
) -> None:
    options = options_for(format_name, conversational)
    schema = export_schema(format_name, options)
    expected = datasets.Features.from_arrow_schema(schema)

    result = write_export(
        records_for(format_name, 120),
        destination=tmp_path / "export",
        format_name=format_name,
        options=options,
        split=SplitPolicy(test_fraction=0.25, seed=1),
        code_version="test",
    )

    root = result.path
    rows = result.manifest["rows"]
    assert set(rows) == {"train", "test"}
    assert rows["train"] > 0 and rows["test"] > 0
    for split, count in rows.items():
        parquet = datasets.load_dataset(
            "parquet", data_files=str(root / "parquet" / f"{split}.parquet"), split="train"
        )
        assert parquet.features == expected
        assert parquet.num_rows == count
        assert pq.read_schema(root / "parquet" / f"{split}.parquet").remove_metadata() == schema

        jsonl_path = str(root / "jsonl" / f"{split}.jsonl")
        inferred = datasets.load_dataset("json", data_files=jsonl_path, split="train")
        assert inferred.column_names == schema.names
        typed = datasets.load_dataset(
            "json", data_files=jsonl_path, features=expected, split="train"
        )
        assert typed.num_rows == count
        assert typed.to_list() == parquet.to_list()

    on_disk = datasets.load_from_disk(str(root / "hf"))
    assert set(on_disk) == {"train", "test"}
    for split, count in rows.items():
        assert on_disk[split].features == expected
        assert on_disk[split].num_rows == count


def load_parquet_as_documented(root: Path) -> Any:
    """The README's snippet: only the splits the manifest lists have files."""
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    data_files = {split: str(root / "parquet" / f"{split}.parquet") for split in manifest["splits"]}
    return datasets.load_dataset("parquet", data_files=data_files)


def load_jsonl_as_documented(root: Path, features: Any) -> Any:
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    data_files = {split: str(root / "jsonl" / f"{split}.jsonl") for split in manifest["splits"]}
    return datasets.load_dataset("json", data_files=data_files, features=features)


# shape -> (records written, test fraction)
SMALL_EXPORTS = {
    "empty test split": (3, 1e-12),
    "empty train split": (3, 1 - 1e-12),
    "one record": (1, 0.1),
    "empty dataset": (0, 0.1),
}


@pytest.mark.parametrize("shape", list(SMALL_EXPORTS))
@pytest.mark.parametrize("format_name", FORMATS)
def test_exports_with_an_empty_split_no_rows_or_one_row_load_with_every_documented_loader(
    tmp_path: Path, format_name: str, shape: str
) -> None:
    count, test_fraction = SMALL_EXPORTS[shape]
    options = options_for(format_name, conversational=False)
    expected = datasets.Features.from_arrow_schema(export_schema(format_name, options))
    result = write_export(
        records_for(format_name, count),
        destination=tmp_path / "export",
        format_name=format_name,
        options=options,
        split=SplitPolicy(test_fraction=test_fraction, seed=0),
        code_version="test",
    )
    root = result.path
    splits = result.manifest["splits"]
    files = {p.relative_to(root).as_posix() for p in root.rglob("*.*") if p.parent.name != "hf"}
    assert {f for f in files if f.startswith(("jsonl/", "parquet/"))} == {
        f"{kind}/{split}.{kind}" for split in splits for kind in ("jsonl", "parquet")
    }

    on_disk = datasets.load_from_disk(str(root / "hf"))
    assert dict(on_disk.num_rows) == splits
    assert all(on_disk[split].features == expected for split in splits)
    for split, rows in splits.items():
        assert pq.read_table(root / "parquet" / f"{split}.parquet").num_rows == rows

    if result.manifest["rows_total"] == 0:
        # datasets cannot build a zero-row split outside streaming; the empty export
        # keeps one typed empty shard that every other reader loads.
        assert splits == {"train": 0}
        assert on_disk["train"].num_rows == 0
        streamed = datasets.load_dataset(
            "parquet", data_files=str(root / "parquet" / "train.parquet"), streaming=True
        )
        assert list(streamed["train"]) == []
        assert (root / "jsonl" / "train.jsonl").read_text() == ""
        return
    assert all(rows > 0 for rows in splits.values())
    assert sum(splits.values()) == sum(result.manifest["rows_by_split"].values())
    parquet = load_parquet_as_documented(root)
    jsonl = load_jsonl_as_documented(root, expected)
    for split, rows in splits.items():
        assert parquet[split].features == expected
        assert parquet[split].num_rows == jsonl[split].num_rows == rows
        assert jsonl[split].to_list() == parquet[split].to_list() == on_disk[split].to_list()


def test_standard_preference_rows_are_plain_strings_with_a_separated_prompt() -> None:
    pair = next(preference_pairs(2))  # i == 0: system + user prompt
    single_turn = list(preference_pairs(2))[1]

    (row,) = build_rows("trl_preference", single_turn, ExportOptions())
    (multi,) = build_rows("trl_preference", pair, ExportOptions())

    assert row == {
        "prompt": "Question 1: what is 1 squared?\n\n",
        "chosen": "It is 1.",
        "rejected": "It is 2, I think.",
        "external_id": "item-1",
    }
    assert multi["prompt"] == (
        "system: Be brief.\n\nuser: Question 0: what is 0 squared?\n\nassistant: "
    )


def test_conversational_rows_use_messages_and_unknown_margins_become_zero() -> None:
    pair = next(preference_pairs(1))  # margin None

    (row,) = build_rows("reward_pairs", pair, ExportOptions(conversational=True))

    assert row["prompt"] == pair.prompt
    assert row["chosen"] == [{"role": "assistant", "content": pair.chosen_text}]
    assert row["rejected"] == [{"role": "assistant", "content": pair.rejected_text}]
    assert row["margin"] == 0.0


def test_unpaired_rows_label_the_chosen_text_desirable_and_the_rejected_text_not() -> None:
    pair = list(preference_pairs(2))[1]

    rows = build_rows("trl_unpaired", pair, ExportOptions())

    assert [(r["completion"], r["label"]) for r in rows] == [
        (pair.chosen_text, True),
        (pair.rejected_text, False),
    ]


def test_ties_and_pairs_without_segments_are_skipped_and_counted(tmp_path: Path) -> None:
    pairs = list(preference_pairs(33))
    ties = sum(p.tie for p in pairs)
    with_segments = sum(bool(p.segments) and not p.tie for p in pairs)

    preference = write_export(
        pairs, destination=tmp_path / "pref", format_name="trl_preference", code_version="t"
    )
    segments = write_export(
        pairs, destination=tmp_path / "seg", format_name="segment_preference", code_version="t"
    )

    assert ties > 0
    assert preference.manifest["records_skipped"] == ties
    assert preference.manifest["rows_total"] == len(pairs) - ties
    assert segments.manifest["rows_total"] == with_segments
    (row,) = build_rows("segment_preference", pairs[0], ExportOptions())
    assert row["chosen"] == pairs[0].chosen_text
    assert row["segments"] == [
        {"start": 6, "end": 7, "original": "1", "corrected": "0", "category": "factuality"}
    ]


def test_annotators_are_pseudonymised_with_the_export_secret() -> None:
    pair = list(preference_pairs(2))[1]
    options = ExportOptions(annotator_secret=SECRET, annotator_profiles=PROFILES)

    (row,) = build_rows("trl_preference", pair, options)
    (other,) = build_rows(
        "trl_preference", pair, ExportOptions(annotator_secret=b"another-secret-of-16+")
    )

    assert row["annotators"] == [pseudonymise(a, SECRET) for a in pair.annotators]
    assert not set(row["annotators"]) & set(pair.annotators)
    assert not set(row["annotators"]) & set(other["annotators"])
    profiles = json.loads(row["annotator_profiles"])
    assert set(profiles) == set(row["annotators"])
    assert profiles[row["annotators"][0]] == PROFILES[pair.annotators[0]]
    assert "worker" not in row["annotator_profiles"]
    with pytest.raises(ValueError, match="annotator_secret"):
        ExportOptions(annotator_profiles=PROFILES)


def test_pointwise_needs_declared_aspects_and_leaves_unrated_aspects_null() -> None:
    first, second = pointwise_rows(2)

    (row,) = build_rows("pointwise", first, ExportOptions(aspects=ASPECTS))

    assert row["scores"] == {"helpfulness": 1.0, "harmlessness": None}
    assert build_rows("pointwise", second, ExportOptions(aspects=ASPECTS))[0]["scores"] == {
        "helpfulness": 2.0,
        "harmlessness": 4.5,
    }
    with pytest.raises(ValueError, match="aspects"):
        export_schema("pointwise", ExportOptions())
    with pytest.raises(TypeError):
        build_rows("ranked_list", first, ExportOptions())
    with pytest.raises(ValueError, match="unknown export format"):
        export_schema("csv", ExportOptions())


# ---------------------------------------------------------------- splits


def test_no_prompt_appears_in_both_splits(tmp_path: Path) -> None:
    result = write_export(
        preference_pairs(2000),
        destination=tmp_path / "export",
        format_name="trl_preference",
        options=ExportOptions(conversational=True),
        outputs=("jsonl",),
        split=SplitPolicy(test_fraction=0.3, seed=5),
        code_version="t",
    )

    prompts: dict[str, set[str]] = {}
    for split in ("train", "test"):
        with (result.path / "jsonl" / f"{split}.jsonl").open(encoding="utf-8") as handle:
            prompts[split] = {prompt_text(json.loads(line)["prompt"]) for line in handle}
    assert prompts["train"] and prompts["test"]
    assert not prompts["train"] & prompts["test"]
    assert len(prompts["train"] | prompts["test"]) == 40


def test_prompt_split_is_deterministic_and_close_to_the_fraction() -> None:
    keys = [f"prompt number {i}" for i in range(20_000)]

    first = [prompt_split(k, test_fraction=0.1, seed=3) for k in keys]
    again = [prompt_split(k, test_fraction=0.1, seed=3) for k in keys]
    reseeded = [prompt_split(k, test_fraction=0.1, seed=4) for k in keys]

    assert first == again
    assert first != reseeded
    assert first.count("test") / len(keys) == pytest.approx(0.1, abs=0.01)
    assert {prompt_split(k, test_fraction=0.0, seed=0) for k in keys[:100]} == {"train"}


def test_column_mode_writes_one_shard_with_a_split_column(tmp_path: Path) -> None:
    result = write_export(
        preference_pairs(200),
        destination=tmp_path / "export",
        format_name="reward_pairs",
        outputs=("parquet", "hf"),
        split=SplitPolicy(test_fraction=0.3, seed=2, mode="column"),
        code_version="t",
    )

    table = pq.read_table(result.path / "parquet" / "all.parquet")
    assert table.column_names[-1] == "split"
    assert set(table.column("split").to_pylist()) == {"train", "test"}
    assert result.manifest["rows"] == {"all": table.num_rows}
    splits = table.column("split").to_pylist()
    assert result.manifest["rows_by_split"] == {
        "train": splits.count("train"),
        "test": splits.count("test"),
    }
    assert set(datasets.load_from_disk(str(result.path / "hf"))) == {"all"}
    assert not (result.path / "jsonl").exists()
    assert not (result.path / ".scratch").exists()


# ---------------------------------------------------------------- manifest, progress, atomicity


def test_manifest_records_hashes_counts_policies_and_code_version(tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    filters = {"project": 7, "source": ["human"], "min_agreement": 0.6}
    aggregation = {"pairs": "majority", "ties": "drop"}

    result = write_export(
        preference_pairs(500),
        destination=tmp_path / "export",
        format_name="trl_preference",
        options=ExportOptions(annotator_secret=SECRET),
        split=SplitPolicy(test_fraction=0.2),
        filters=filters,
        aggregation=aggregation,
        code_version="abc1234",
        batch_rows=64,
        total_records=500,
        progress=lambda done, total: calls.append((done, total)),
    )

    manifest = json.loads((result.path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest == result.manifest
    assert manifest["filters"] == filters
    assert manifest["aggregation"] == aggregation
    assert manifest["code_version"] == "abc1234"
    assert (
        manifest["rows_total"]
        == sum(manifest["rows"].values())
        == 500 - manifest["records_skipped"]
    )
    assert manifest["rows_by_split"] == manifest["rows"]
    assert SECRET.decode() not in json.dumps(manifest)
    listed = {f["path"] for f in manifest["files"]}
    on_disk = {
        p.relative_to(result.path).as_posix()
        for p in result.path.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert listed == on_disk
    for entry in manifest["files"]:
        path = result.path / entry["path"]
        assert path.stat().st_size == entry["bytes"]
        assert len(entry["sha256"]) == 64
    assert len(calls) > 5
    assert calls[-1] == (500, 500)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_an_exception_mid_write_leaves_nothing_behind(tmp_path: Path) -> None:
    def failing() -> Iterator[PreferencePair]:
        yield from preference_pairs(1000)
        raise RuntimeError("database connection lost")

    with pytest.raises(RuntimeError, match="connection lost"):
        write_export(
            failing(),
            destination=tmp_path / "export",
            format_name="trl_preference",
            split=SplitPolicy(),
            code_version="t",
            batch_rows=100,
        )

    assert leftovers(tmp_path) == []


def test_a_failure_while_building_the_hf_folder_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_save(self: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(datasets.DatasetDict, "save_to_disk", broken_save)

    with pytest.raises(OSError, match="disk full"):
        write_export(
            preference_pairs(100),
            destination=tmp_path / "export",
            format_name="trl_preference",
            code_version="t",
        )

    assert leftovers(tmp_path) == []


def test_cancelling_between_batches_leaves_nothing_behind(tmp_path: Path) -> None:
    polls: list[int] = []

    def cancelled() -> bool:
        polls.append(1)
        return len(polls) >= 3

    with pytest.raises(ExportCancelled):
        write_export(
            preference_pairs(5000),
            destination=tmp_path / "export",
            format_name="trl_unpaired",
            code_version="t",
            batch_rows=100,
            is_cancelled=cancelled,
        )

    assert len(polls) == 3
    assert leftovers(tmp_path) == []


def test_an_existing_destination_is_never_overwritten(tmp_path: Path) -> None:
    destination = tmp_path / "export"
    destination.mkdir()
    (destination / "keep.txt").write_text("published", encoding="utf-8")

    with pytest.raises(FileExistsError):
        write_export(
            preference_pairs(10),
            destination=destination,
            format_name="trl_preference",
            code_version="t",
        )

    assert leftovers(tmp_path) == ["export"]
    assert leftovers(destination) == ["keep.txt"]


def test_the_same_records_give_byte_identical_data_files(tmp_path: Path) -> None:
    manifests = [
        write_export(
            preference_pairs(300),
            destination=tmp_path / name,
            format_name="trl_preference",
            outputs=("jsonl", "parquet"),
            split=SplitPolicy(seed=9),
            code_version="t",
        ).manifest
        for name in ("first", "second")
    ]

    assert manifests[0]["files"] == manifests[1]["files"]


MEMORY_PROBE = textwrap.dedent(
    """
    import resource, sys, tempfile
    from pathlib import Path
    from curation.exports import SplitPolicy, write_export
    from curation.records import PreferencePair

    def pairs(n):
        for i in range(n):
            yield PreferencePair(
                item_id=i, external_id=f"item-{i}",
                prompt=[{"role": "user", "content": f"Prompt {i} " + "context " * 20}],
                chosen_text=f"Chosen answer {i} " + "detail " * 30,
                rejected_text=f"Rejected answer {i} " + "detail " * 30,
                chosen_response_id=2 * i, rejected_response_id=2 * i + 1,
                kind="pairwise", question="q", margin=1.0, annotators=("a", "b"),
            )

    def export(n, name):
        write_export(pairs(n), destination=Path(root) / name, format_name="trl_preference",
                     outputs=("jsonl", "parquet"), split=SplitPolicy(test_fraction=0.1),
                     code_version="probe")

    root = tempfile.mkdtemp()
    export(2_000, "warm-up")  # load pyarrow's writer machinery before the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    export(int(sys.argv[1]), "big")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) / 1024)
    """
)


@pytest.mark.slow
def test_streaming_200k_pairs_keeps_memory_growth_bounded(tmp_path: Path) -> None:
    # A fresh interpreter, so the peak RSS measured is this export's alone.
    completed = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, "200000"],
        cwd=REPOSITORY_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY_ROOT), "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )

    growth_mib = float(completed.stdout.strip().splitlines()[-1])
    assert growth_mib < 150, f"peak RSS grew by {growth_mib:.0f} MiB"


# ---------------------------------------------------------------- real trainers on the exported files


def tiny_tokenizer(texts: list[str], directory: Path) -> Any:
    """A word-level tokenizer trained in memory on the export's own text, saved offline."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    model = tokenizers.models.WordLevel(unk_token="<unk>")
    tokenizer = tokenizers.Tokenizer(model)
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    trainer = tokenizers.trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "<eos>"])
    tokenizer.train_from_iterator(texts, trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>"
    )
    # A minimal chat template for the conversational exports.
    fast.chat_template = (
        "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    fast.save_pretrained(directory)
    return transformers.AutoTokenizer.from_pretrained(directory)


def tiny_llama_config(vocab_size: int, tokenizer: Any) -> Any:
    transformers = pytest.importorskip("transformers")
    return transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        num_labels=1,
    )


def export_texts(path: Path) -> list[str]:
    texts = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            for value in json.loads(line).values():
                if isinstance(value, str):
                    texts.append(value)
                elif isinstance(value, list):
                    texts.extend(m["content"] for m in value if isinstance(m, dict))
    texts.extend(["system", "user", "assistant", ":"])
    return texts


@pytest.mark.slow
def test_one_dpo_step_and_one_reward_model_step_run_on_the_exported_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Everything is built locally; make any attempt to reach the Hub fail fast.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    trl = pytest.importorskip("trl", reason="trl is not installed")
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)

    preference = write_export(
        preference_pairs(48),
        destination=tmp_path / "dpo",
        format_name="trl_preference",
        options=ExportOptions(include_margin=True, annotator_secret=SECRET),
        outputs=("jsonl", "parquet"),
        code_version="t",
    )
    reward = write_export(
        preference_pairs(48),
        destination=tmp_path / "reward",
        format_name="reward_pairs",
        options=ExportOptions(conversational=True),
        outputs=("hf",),
        code_version="t",
    )
    texts = export_texts(preference.path / "jsonl" / "train.jsonl")
    tokenizer = tiny_tokenizer(texts, tmp_path / "tokenizer")
    config = tiny_llama_config(len(tokenizer), tokenizer)
    common = {
        "max_steps": 1,
        "per_device_train_batch_size": 4,
        "report_to": [],
        "save_strategy": "no",
        "logging_steps": 1,
        "use_cpu": True,
        "dataloader_num_workers": 0,
    }

    dpo_data = datasets.load_dataset(
        "parquet", data_files=str(preference.path / "parquet" / "train.parquet"), split="train"
    )
    reward_data = datasets.load_from_disk(str(reward.path / "hf"))["train"]
    policy = transformers.LlamaForCausalLM(config)
    before = [p.detach().clone() for p in policy.parameters()]
    scorer = transformers.LlamaForSequenceClassification(config)
    try:
        # Only construction is guarded: an unknown argument means an incompatible
        # trl API (skip); anything failing while training is a real failure.
        dpo = trl.DPOTrainer(
            model=policy,
            # An explicit reference copy: otherwise trl reloads one by name from the Hub.
            ref_model=copy.deepcopy(policy),
            args=trl.DPOConfig(output_dir=str(tmp_path / "dpo-out"), max_length=64, **common),
            train_dataset=dpo_data,
            processing_class=tokenizer,
        )
        reward_trainer = trl.RewardTrainer(
            model=scorer,
            args=trl.RewardConfig(output_dir=str(tmp_path / "rm-out"), max_length=64, **common),
            train_dataset=reward_data,
            processing_class=tokenizer,
        )
    except (AttributeError, TypeError) as error:
        pytest.skip(f"trl {trl.__version__} has an incompatible trainer API: {error}")
    dpo_result = dpo.train()
    reward_result = reward_trainer.train()

    assert dpo_result.global_step == 1
    assert reward_result.global_step == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))
    assert torch.isfinite(torch.tensor(dpo_result.training_loss))
    assert torch.isfinite(torch.tensor(reward_result.training_loss))
