"""Import → export round trips on real human-feedback datasets, filters, atomicity, manifest, CLI, memory."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count

from annotation.adapters import (
    TULU_PREFERENCE,
    oasst2_ranked,
    squality,
    topical_chat_ratings,
    tulu1_pairwise,
)
from annotation.models import (
    Annotation,
    AnnotatorProfile,
    Item,
    PairwiseAnswer,
    Question,
    Response,
    Source,
)
from annotation.services import items_import, question_create
from curation.models import DatasetVersion, Job, JobKind, JobStatus, PairScore
from curation.pairs import iter_preference_pairs, pair_key
from curation.services import job_create
from curation.storage import absolute
from tests.datasets import dataset
from tests.factories import ProjectFactory

datasets = pytest.importorskip("datasets", reason="datasets loads the exported files")

TULU = "tulu1_human_eval"
OASST = "oasst2_openpaws_subset"
TOPICAL = "topical_chat_usr_unieval"
SQUALITY = "squality_human_eval"
ADAPTERS = {
    TULU: tulu1_pairwise,
    OASST: oasst2_ranked,
    TOPICAL: topical_chat_ratings,
    SQUALITY: squality,
}


@pytest.fixture(autouse=True)
def storage_root(settings, tmp_path):
    """A storage root per test: SQLite reuses ids after rollback, so shared folders would collide."""
    root = tmp_path / "storage"
    settings.BALLOT_STORAGE_ROOT = root
    settings.BALLOT_JOBS_IN_THREAD = False
    return root


def load(project, name: str):
    adapted = ADAPTERS[name](dataset(name))
    for spec in adapted.questions:
        question_create(project=project, **spec)
    items_import(project=project, lines=[json.dumps(row) for row in adapted.rows], fmt=adapted.fmt)
    return adapted


@pytest.fixture
def imported(alice):
    def make(name: str):
        project = ProjectFactory(created_by=alice)
        return project, load(project, name)

    return make


@pytest.fixture
def export(alice, django_capture_on_commit_callbacks):
    """Run an export job inline (as the worker would) and return (job, version or None)."""

    def run(project, **params):
        with django_capture_on_commit_callbacks(execute=True):
            job = job_create(project=project, kind=JobKind.EXPORT, params=params, user=alice)
        job.refresh_from_db()
        version = DatasetVersion.objects.filter(job=job).first()
        return job, version

    return run


def folder(version: DatasetVersion) -> Path:
    return absolute(version.path)


def jsonl_rows(version: DatasetVersion, split: str = "train") -> list[dict]:
    path = folder(version) / "jsonl" / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def all_rows(version: DatasetVersion) -> list[dict]:
    return [row for split in version.row_counts for row in jsonl_rows(version, split)]


def tulu_votes() -> dict[str, list[str | None]]:
    """external_id -> each evaluator's first vote (the winning model's name, None for a tie)."""
    votes: dict[str, dict[str, str | None]] = defaultdict(dict)
    path = dataset(TULU) / "eval_annotations_tulu_1.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        per_item = votes[f"tulu1-{row['instance_index']}"]
        if row["evaluator"] in per_item:
            continue
        side, _ = TULU_PREFERENCE[row["preference"]]
        per_item[row["evaluator"]] = (
            None if side == "tie" else (row["model_a"] if side == "a" else row["model_b"])
        )
    return {key: list(v.values()) for key, v in votes.items()}


def tulu_completions() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    path = dataset(TULU) / "eval_annotations_tulu_1.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.setdefault(
                f"tulu1-{row['instance_index']}",
                {row["model_a"]: row["completion_a"], row["model_b"]: row["completion_b"]},
            )
    return out


def majority(votes: list[str | None], min_agreement: float = 0.0) -> str | None:
    """The winning model, or None for a tie, a split vote or too little agreement."""
    ranked = Counter(votes).most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    if ranked[0][1] / len(votes) < min_agreement:
        return None
    return ranked[0][0]


# ------------------------------------------------------------------ round trips on real data


def test_tulu_majority_export_has_exactly_the_majority_pairs_computed_from_the_file(
    imported, export
):
    project, _ = imported(TULU)
    job, version = export(project, format="trl_preference", test_fraction=0, outputs=["jsonl"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    completions = tulu_completions()
    expected = {}
    for external_id, votes in tulu_votes().items():
        winner = majority(votes)
        if winner is not None:
            (loser,) = set(completions[external_id]) - {winner}
            expected[external_id] = (
                completions[external_id][winner],
                completions[external_id][loser],
            )
    rows = jsonl_rows(version)
    assert len(rows) == len(expected) == version.row_counts["train"]
    got = {row["external_id"]: (row["chosen"], row["rejected"]) for row in rows}
    assert got == expected


def test_tulu_all_aggregation_gives_one_pair_per_non_tie_vote(imported, export):
    project, _ = imported(TULU)
    _, version = export(
        project, format="trl_preference", aggregation="all", test_fraction=0, outputs=["jsonl"]
    )
    votes = tulu_votes()
    expected = Counter({key: sum(v is not None for v in values) for key, values in votes.items()})
    got = Counter(row["external_id"] for row in jsonl_rows(version))
    assert +expected == got
    assert any(count > 1 for count in got.values())  # multiply-annotated items give several rows


def test_tulu_min_agreement_keeps_only_pairs_with_enough_agreement(imported, export):
    project, _ = imported(TULU)
    _, version = export(
        project, format="trl_preference", min_agreement=0.7, test_fraction=0, outputs=["jsonl"]
    )
    expected = {
        key for key, votes in tulu_votes().items() if majority(votes, min_agreement=0.7) is not None
    }
    assert {row["external_id"] for row in jsonl_rows(version)} == expected
    _, loose = export(project, format="trl_preference", test_fraction=0, outputs=["jsonl"])
    assert len(jsonl_rows(version)) < len(jsonl_rows(loose))


def oasst_groups() -> dict[str, dict]:
    rows = oasst2_ranked(dataset(OASST)).rows
    first: dict[str, dict] = {}
    for row in rows:
        first.setdefault(row["external_id"], row)  # the importer keeps the first of duplicates
    return first


def test_oasst2_ranked_list_puts_responses_best_first_as_ranked(imported, export):
    project, _ = imported(OASST)
    job, version = export(project, format="ranked_list", test_fraction=0, outputs=["jsonl"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    groups = oasst_groups()
    rows = jsonl_rows(version)
    assert len(rows) == len(groups)
    for row in rows:
        group = groups[row["external_id"]]
        order = sorted(range(len(group["ranks"])), key=lambda i: (group["ranks"][i], i))
        assert row["responses"] == [group["responses"][i]["text"] for i in order]
        assert row["scores"] == sorted(row["scores"], reverse=True)


def test_oasst2_rankings_give_c_k_2_preference_pairs_per_group(imported, export):
    project, _ = imported(OASST)
    _, version = export(project, format="trl_preference", test_fraction=0, outputs=["jsonl"])
    groups = oasst_groups()
    expected = {
        key: sum(1 for a, b in combinations(g["ranks"], 2) if a != b) for key, g in groups.items()
    }
    assert all(
        count == len(g["ranks"]) * (len(g["ranks"]) - 1) // 2
        for count, g in zip(expected.values(), groups.values(), strict=True)
        if len(set(g["ranks"])) == len(g["ranks"])
    )
    got = Counter(row["external_id"] for row in jsonl_rows(version))
    assert got == +Counter(expected)
    for row in jsonl_rows(version):
        texts = [r["text"] for r in groups[row["external_id"]]["responses"]]
        ranks = groups[row["external_id"]]["ranks"]
        assert ranks[texts.index(row["chosen"])] < ranks[texts.index(row["rejected"])]


def test_topical_chat_pointwise_scores_equal_the_file(imported, export):
    project, _ = imported(TOPICAL)
    job, version = export(project, format="pointwise", test_fraction=0, outputs=["jsonl"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    entries = json.loads((dataset(TOPICAL) / "topical_chat.json").read_text(encoding="utf-8"))
    expected = {e["system_output"].strip(): e["scores"] for e in entries}
    rows = jsonl_rows(version)
    assert len(rows) == len(entries)
    for row in rows:
        for aspect, value in expected[row["response"]].items():
            assert row["scores"][aspect] == pytest.approx(value, abs=1e-9)


def squality_reviews() -> list[tuple[str, str, str, str, dict]]:
    out = []
    for line in (dataset(SQUALITY) / "all-responses.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        passage = json.loads(line)
        for qkey, systems in passage["questions"].items():
            for system, entry in systems.items():
                for review in entry["reviews"]:
                    out.append(
                        (str(passage["passage-id"]), qkey, system, entry["response"], review)
                    )
    return out


def test_squality_pointwise_scores_are_the_mean_over_workers(imported, export):
    project, _ = imported(SQUALITY)
    _, version = export(project, format="pointwise", test_fraction=0, outputs=["jsonl"])
    cells_by_key: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for pid, qkey, _system, text, review in squality_reviews():
        for aspect in ("correctness", "selection", "overall"):
            if review.get(f"{aspect}-rating") is not None:
                cells_by_key[(f"squality-{pid}-{qkey}", text)][aspect].append(
                    float(review[f"{aspect}-rating"])
                )
    rows = jsonl_rows(version)
    assert len(rows) == len(cells_by_key)
    for row in rows:
        expected = cells_by_key[(row["external_id"], row["response"])]
        for aspect, values in expected.items():
            assert row["scores"][aspect] == pytest.approx(sum(values) / len(values))
        assert (row["scale_min"], row["scale_max"]) == (0.0, 100.0)


def test_squality_segment_preference_removes_the_critiqued_spans(imported, export):
    project, _ = imported(SQUALITY)
    _, version = export(project, format="segment_preference", test_fraction=0, outputs=["jsonl"])
    rows = jsonl_rows(version)
    assert rows
    originals = {text for *_, text, _ in squality_reviews()}
    for row in rows:
        assert row["rejected"] in originals
        rebuilt, cursor = [], 0
        for segment in row["segments"]:
            assert row["rejected"][segment["start"] : segment["end"]] == segment["original"]
            rebuilt.append(row["rejected"][cursor : segment["start"]] + segment["corrected"])
            cursor = segment["end"]
        assert "".join(rebuilt) + row["rejected"][cursor:] == row["chosen"]


FORMAT_SOURCES = [
    ("trl_preference", TULU),
    ("reward_pairs", TULU),
    ("trl_unpaired", TULU),
    ("ranked_list", OASST),
    ("pointwise", TOPICAL),
    ("segment_preference", SQUALITY),
]


@pytest.mark.parametrize(("format_name", "source"), FORMAT_SOURCES)
def test_every_format_loads_from_jsonl_parquet_and_disk_with_no_prompt_in_both_splits(
    imported, export, tmp_path, format_name, source
):
    project, _ = imported(source)
    job, version = export(project, format=format_name, test_fraction=0.3, seed=1)
    assert job.status == JobStatus.SUCCEEDED, job.error
    root = folder(version)
    counts = version.row_counts
    assert counts["train"] > 0 and counts["test"] > 0
    cache = str(tmp_path / "hf-cache")
    for output, builder in (("jsonl", "json"), ("parquet", "parquet")):
        loaded = datasets.load_dataset(
            builder,
            data_files={s: str(root / output / f"{s}.{output}") for s in ("train", "test")},
            cache_dir=cache,
        )
        assert {s: loaded[s].num_rows for s in loaded} == counts
    on_disk = datasets.load_from_disk(str(root / "hf"))
    assert {s: on_disk[s].num_rows for s in on_disk} == counts
    train, test = (set(on_disk[s]["prompt"]) for s in ("train", "test"))
    assert not train & test


# ------------------------------------------------------------------ filters


def test_source_human_leaves_out_ai_labels_and_both_lets_them_outvote(imported, export):
    project, _ = imported(TULU)
    answer = (
        PairwiseAnswer.objects.filter(annotation__project=project, tie=False)
        .annotate(labels=Count("annotation__item__annotations"))
        .filter(labels=1)
        .select_related("annotation__item", "chosen", "rejected")
        .order_by("id")
        .first()
    )
    item = answer.annotation.item
    for judge in ("gpt-4", "claude"):
        ai = Annotation.objects.create(
            project=project, item=item, source=Source.AI, judge_name=judge
        )
        PairwiseAnswer.objects.create(
            annotation=ai, question=answer.question, chosen=answer.rejected, rejected=answer.chosen
        )
    params = {"format": "trl_preference", "test_fraction": 0, "outputs": ["jsonl"]}
    _, human_only = export(project, **params)
    _, both = export(project, source="both", **params)
    by_id = {row["external_id"]: row for row in jsonl_rows(human_only)}
    assert by_id[item.external_id]["chosen"] == answer.chosen.text
    by_id = {row["external_id"]: row for row in jsonl_rows(both)}
    assert by_id[item.external_id]["chosen"] == answer.rejected.text
    assert len(jsonl_rows(both)) == len(jsonl_rows(human_only))


def test_tags_filter_keeps_only_tagged_items(imported, export):
    project, _ = imported(OASST)
    langs = Counter(g["metadata"]["lang"] for g in oasst_groups().values())
    rare = min(langs, key=lambda lang: (langs[lang], lang))
    _, version = export(
        project, format="ranked_list", tags=[rare], test_fraction=0, outputs=["jsonl"]
    )
    expected = {k for k, g in oasst_groups().items() if g["metadata"]["lang"] == rare}
    assert {row["external_id"] for row in jsonl_rows(version)} == expected


def test_a_fifa_job_limits_the_export_to_its_kept_pairs(imported, export, alice):
    project, _ = imported(TULU)
    pairs = [p for p in iter_preference_pairs(project=project) if not p.tie]
    fifa = Job.objects.create(
        project=project, kind=JobKind.FIFA, status=JobStatus.SUCCEEDED, created_by=alice
    )
    PairScore.objects.bulk_create(
        PairScore(
            job=fifa,
            item_id=pair.item_id,
            pair_key=pair_key(pair),
            kind=pair.kind,
            question=pair.question,
            chosen_response_id=pair.chosen_response_id,
            rejected_response_id=pair.rejected_response_id,
            margin=0.0,
            prob_chosen=0.5,
            quality=0.0,
            diversity=0.0,
            importance=float(-index),
            kept=index % 3 == 0,
        )
        for index, pair in enumerate(pairs)
    )
    job, version = export(
        project, format="trl_preference", fifa_job=fifa.id, test_fraction=0, outputs=["jsonl"]
    )
    assert job.status == JobStatus.SUCCEEDED, job.error
    kept = {(p.external_id, p.chosen_text) for i, p in enumerate(pairs) if i % 3 == 0}
    assert {(r["external_id"], r["chosen"]) for r in jsonl_rows(version)} == kept
    assert version.manifest["filters"]["fifa_job"] == fifa.id


def test_annotator_filter_by_profile_field_and_optional_profile_columns(imported, export):
    project, _ = imported(TULU)
    by_user = Counter(
        Annotation.objects.filter(project=project).values_list("annotator_id", flat=True)
    )
    chosen_users = [user for user, _ in by_user.most_common(3)]
    for user_id in chosen_users:
        AnnotatorProfile.objects.update_or_create(
            user_id=user_id, defaults={"residence_country": "NZ"}
        )
    for user_id, _ in by_user.most_common()[3:6]:
        AnnotatorProfile.objects.update_or_create(
            user_id=user_id, defaults={"residence_country": "FR"}
        )
    job, version = export(
        project,
        format="trl_preference",
        aggregation="all",
        annotator_filter={"residence_country": "NZ"},
        include_annotators=True,
        profile_fields=["residence_country"],
        test_fraction=0,
        outputs=["jsonl"],
    )
    assert job.status == JobStatus.SUCCEEDED, job.error
    expected = PairwiseAnswer.objects.filter(
        annotation__project=project, annotation__annotator_id__in=chosen_users, tie=False
    ).count()
    rows = jsonl_rows(version)
    assert len(rows) == expected
    pseudonyms = {a for row in rows for a in row["annotators"]}
    assert len(pseudonyms) == 3
    for row in rows:
        profiles = json.loads(row["annotator_profiles"])
        assert profiles == {row["annotators"][0]: {"residence_country": "NZ"}}


def test_no_username_appears_in_any_exported_file(imported, export):
    project, _ = imported(TULU)
    usernames = set(
        Annotation.objects.filter(project=project).values_list("annotator__username", flat=True)
    )
    evaluators = {
        json.loads(line)["evaluator"]
        for line in (dataset(TULU) / "eval_annotations_tulu_1.jsonl").read_text().splitlines()
        if line.strip()
    }
    _, plain = export(project, format="trl_preference")
    _, with_ids = export(project, format="trl_unpaired", include_annotators=True, aggregation="all")
    assert "annotators" not in {f["name"] for f in plain.manifest["schema"]}
    assert "annotators" in {f["name"] for f in with_ids.manifest["schema"]}
    for version in (plain, with_ids):
        for path in folder(version).rglob("*"):
            if path.is_file():
                blob = path.read_bytes()
                for name in usernames | {f'"{e}"' for e in evaluators}:
                    assert name.encode() not in blob, (path, name)


# ------------------------------------------------------------------ atomicity, manifest, versions


def leftovers(root: Path) -> list[str]:
    return [
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.name.startswith(".")
    ]


@pytest.mark.parametrize("where", ["records", "hf-folder"])
def test_a_failed_export_leaves_no_version_and_no_files(
    imported, export, monkeypatch, storage_root, where
):
    project, _ = imported(TULU)
    if where == "records":
        import curation.jobs.kinds.export as service

        real = service.iter_preference_pairs

        def breaks_midway(**kwargs):
            for index, pair in enumerate(real(**kwargs)):
                if index == 300:
                    raise RuntimeError("database went away")
                yield pair

        monkeypatch.setattr(service, "iter_preference_pairs", breaks_midway)
    else:
        import curation.exports.writers as writers

        def broken(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(writers, "_build_hf_folder", broken)
    job, version = export(project, format="trl_preference")
    assert job.status == JobStatus.FAILED
    assert "database went away" in job.error or "disk full" in job.error
    assert version is None and not DatasetVersion.objects.filter(project=project).exists()
    datasets_dir = storage_root / "projects" / str(project.id) / "datasets"
    assert not datasets_dir.exists() or not any(datasets_dir.iterdir())


def test_a_cancelled_export_leaves_no_version_and_no_files(
    imported, export, monkeypatch, storage_root
):
    project, _ = imported(TULU)
    import curation.jobs.kinds.export as service

    real = service.iter_preference_pairs

    def cancelled_midway(*, project, selection):
        for index, pair in enumerate(real(project=project, selection=selection)):
            if index == 100:
                Job.objects.filter(project=project, kind=JobKind.EXPORT).update(
                    status=JobStatus.CANCELLED
                )
            yield pair

    monkeypatch.setattr(service, "iter_preference_pairs", cancelled_midway)
    job, version = export(project, format="trl_preference")
    assert job.status == JobStatus.CANCELLED
    assert version is None and not DatasetVersion.objects.filter(project=project).exists()
    datasets_dir = storage_root / "projects" / str(project.id) / "datasets"
    assert not datasets_dir.exists() or not any(datasets_dir.iterdir())


def test_the_manifest_counts_rows_per_split_and_hashes_every_file(imported, export):
    project, _ = imported(TULU)
    _, version = export(
        project, format="reward_pairs", min_agreement=0.5, aggregation="majority", seed=3
    )
    manifest = json.loads((folder(version) / "manifest.json").read_text())
    assert manifest == version.manifest
    counts = manifest["rows_by_split"]
    assert counts == version.row_counts and set(counts) == {"train", "test"}
    for split, count in counts.items():
        assert len(jsonl_rows(version, split)) == count
    paths = {f["path"] for f in manifest["files"]}
    on_disk = {
        p.relative_to(folder(version)).as_posix()
        for p in folder(version).rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert paths == on_disk
    for entry in manifest["files"]:
        blob = (folder(version) / entry["path"]).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"]
        assert len(blob) == entry["bytes"]
    assert manifest["filters"]["min_agreement"] == 0.5
    assert manifest["aggregation"] == {"policy": "majority", "source": "human"}
    assert manifest["code_version"].startswith("ballot ")
    assert manifest["split"]["seed"] == 3


def test_versions_number_one_two_three_per_project(imported, export, alice):
    project, _ = imported(OASST)
    numbers = [
        export(project, format="ranked_list", outputs=["jsonl"])[1].version for _ in range(3)
    ]
    assert numbers == [1, 2, 3]
    other = ProjectFactory(created_by=alice)
    Question.objects.create(project=other, kind="ranking", name="ranking")
    assert export(other, format="ranked_list", outputs=["jsonl"])[1].version == 1


# ------------------------------------------------------------------ the command


@pytest.mark.django_db(transaction=True)
def test_the_export_command_publishes_a_version(alice, capsys):
    project = ProjectFactory(created_by=alice)
    load(project, OASST)
    call_command("export", "--project", str(project.id), "--format", "ranked_list", "outputs=jsonl")
    version = DatasetVersion.objects.get(project=project)
    assert "published" in capsys.readouterr().out
    assert (folder(version) / "jsonl" / "train.jsonl").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "trl_preference", "min_agreement=2"], "min_agreement"),
        (["--format", "nope"], "invalid choice"),
        (["--format", "trl_preference", "colour=red"], "colour"),
        (["--format", "trl_preference", "noequals"], "key=value"),
    ],
)
def test_the_export_command_refuses_bad_parameters_with_a_clear_message(project, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("export", "--project", str(project.id), *args)
    assert not Job.objects.filter(project=project).exists()
    with pytest.raises(CommandError, match="No project"):
        call_command("export", "--project", "999999")


# ------------------------------------------------------------------ memory


def _bulk_annotations(project, question, users, *, items: range) -> None:
    for start in range(items.start, items.stop, 5000):
        batch = Item.objects.bulk_create(
            Item(
                project=project,
                external_id=f"bulk-{n}",
                conversation=[{"role": "user", "content": f"Prompt number {n}?"}],
            )
            for n in range(start, min(start + 5000, items.stop))
        )
        if batch[0].pk is None:  # backends without RETURNING
            batch = list(
                Item.objects.filter(project=project, external_id__in=[i.external_id for i in batch])
            )
        responses = Response.objects.bulk_create(
            Response(item=item, text=f"answer {position} to {item.external_id}", position=position)
            for item in batch
            for position in (0, 1)
        )
        annotations = Annotation.objects.bulk_create(
            Annotation(project=project, item=item, annotator=user)
            for item in batch
            for user in users
        )
        PairwiseAnswer.objects.bulk_create(
            PairwiseAnswer(
                annotation=annotation,
                question=question,
                chosen=responses[2 * (index // len(users)) + (index % 3 == 0)],
                rejected=responses[2 * (index // len(users)) + (index % 3 != 0)],
            )
            for index, annotation in enumerate(annotations)
        )


def _export_peak(project) -> tuple[int, dict]:
    """Run an export job inline; return its peak Python allocations and its result."""
    from curation.jobs.kinds.export import run as run_export

    job = Job.objects.create(
        project=project,
        kind=JobKind.EXPORT,
        status=JobStatus.RUNNING,
        params={
            "format": "trl_preference",
            "outputs": ["jsonl"],
            "test_fraction": 0.1,
            "seed": 0,
            "conversational": False,
            "include_margin": True,
            "fifa_job": None,
            "include_annotators": False,
            "profile_fields": [],
            "name": "",
        },
    )
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        result = run_export(job, lambda fraction, message: None)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    return peak, result


ANNOTATORS = 5
SMALL_ITEMS, LARGE_ITEMS = 1_000, 3_000


@pytest.mark.slow
def test_an_export_streams_its_annotations_in_bounded_memory(alice):
    # Measured at two sizes: what an export holds per annotation is the difference, free
    # of the fixed cost (pyarrow, the writer's buffers). Materialising the rows (a model
    # instance, a record and its texts per annotation) costs kilobytes per annotation;
    # streaming costs tens of bytes (the per-prompt split bookkeeping).
    from django.contrib.auth import get_user_model

    project = ProjectFactory(created_by=alice)
    question = Question.objects.create(project=project, kind="pairwise", name="preference")
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"bulk-{i}") for i in range(ANNOTATORS)
    )
    _bulk_annotations(project, question, users, items=range(SMALL_ITEMS))
    small_peak, small = _export_peak(project)
    _bulk_annotations(project, question, users, items=range(SMALL_ITEMS, LARGE_ITEMS))
    assert Annotation.objects.filter(project=project).count() == LARGE_ITEMS * ANNOTATORS
    large_peak, large = _export_peak(project)

    assert sum(small["rows"].values()) == SMALL_ITEMS
    assert sum(large["rows"].values()) == LARGE_ITEMS
    per_annotation = (large_peak - small_peak) / ((LARGE_ITEMS - SMALL_ITEMS) * ANNOTATORS)
    assert per_annotation < 400, (
        f"peak Python allocations grew by {per_annotation:.0f} bytes per annotation "
        f"({small_peak / 2**20:.1f} MiB, then {large_peak / 2**20:.1f} MiB)"
    )
    # The bound the export was held to at 200k annotations (300 MiB), scaled to this size.
    assert large_peak < 40 * 2**20, f"peak Python allocations grew by {large_peak / 2**20:.0f} MiB"
