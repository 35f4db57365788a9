"""Export a dataset version: immutable files, published atomically.

The writer builds the files in a hidden temporary folder and renames it into
place; only then is the ``DatasetVersion`` row inserted. A failure before the
rename leaves no folder; a failure of the insert removes the folder; so a
version is either complete and visible or absent.
Writes: the version's folder under ``projects/<id>/datasets/`` and one ``DatasetVersion``.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from annotation.errors import ValidationFailed
from annotation.models import Annotation, AnnotatorProfile, Item, Project, Source
from annotation.services.projects import PROFILE_FIELDS
from curation.explanations.inputs import pair_ref
from curation.explanations.selectors import (
    explanation_job_check,
    feature_selection_check,
    feature_top_pairs,
)
from curation.exports.formats import FORMATS, ExportOptions
from curation.exports.writers import OUTPUTS, ExportCancelled, SplitPolicy, write_export
from curation.jobs.base import JobCancelled, JobKindSpec, Report
from curation.jobs.common import code_version
from curation.jobs.params import boolean, choice, default_of, integer, number, string, string_list
from curation.jobs.selection import SelectionParams
from curation.models import DatasetVersion, Job, JobKind, JobStatus, PairScore
from curation.pairs import (
    iter_pointwise_rows,
    iter_preference_pairs,
    iter_ranked_lists,
    pair_key,
    pseudonymous_annotator,
    selection_with_reliability_job,
)
from curation.params import MAX_NAME_LENGTH, SEED_MAX
from curation.storage import absolute
from curation.webhooks.events import dataset_version_published_publish

# Every profile field but the free-text description, which may identify the annotator.
PROFILE_EXPORT_FIELDS = tuple(f for f in PROFILE_FIELDS if f != "self_description")
PAIR_FORMATS = ("trl_preference", "reward_pairs", "trl_unpaired", "segment_preference")


@dataclass(frozen=True)
class ExportParams(SelectionParams):
    """Parameters of an export (a new dataset version)."""

    format: str = choice("trl_preference", FORMATS, help="The dataset's row format.")
    outputs: list[str] = string_list(
        list(OUTPUTS), options=OUTPUTS, help="Files to write (at least one)."
    )
    name: str = string(
        "", max_length=MAX_NAME_LENGTH, help="Name of the version (default: format and number)."
    )
    conversational: bool = boolean(
        default_of(ExportOptions, "conversational"),
        help="Write prompts and responses as lists of chat messages instead of text.",
    )
    include_margin: bool = boolean(
        True, help="trl_preference: add each pair's margin (reward_pairs always has one)."
    )
    test_fraction: float = number(
        default_of(SplitPolicy, "test_fraction"),
        low=0.0,
        high=1.0,
        high_open=True,
        help="Share of prompts in the test split (0: no split); all rows of a prompt "
        "land in one split.",
    )
    seed: int = integer(
        default_of(SplitPolicy, "seed"), low=0, high=SEED_MAX, help="Seeds the split."
    )
    fifa_job: int | None = integer(
        None,
        low=1,
        high=2**63 - 1,
        nullable=True,
        help="A succeeded FiFA or suspects job of this project: export only the pairs it kept.",
    )
    explanation_job: int | None = integer(
        None,
        low=1,
        high=2**63 - 1,
        nullable=True,
        help="A finished explain job of this project: leave out the pairs where its "
        "explanation_feature is most active (pair formats only).",
    )
    explanation_feature: int | None = integer(
        None,
        low=0,
        high=4095,
        nullable=True,
        help="The feature (its index) of explanation_job whose most active pairs are left out.",
    )
    explanation_top: int | None = integer(
        None,
        low=1,
        high=10_000,
        nullable=True,
        help="Leave out the N pairs where the feature is most active.",
    )
    explanation_threshold: float | None = number(
        None,
        low=0.0,
        high=1e9,
        nullable=True,
        help="Leave out every pair whose activation of the feature is at least this large "
        "(with explanation_top: the first N of those).",
    )
    include_annotators: bool = boolean(
        False, help="Add per-export pseudonyms of the annotators of each row."
    )
    profile_fields: list[str] = string_list(
        [],
        options=PROFILE_EXPORT_FIELDS,
        help="Annotator profile fields to add, keyed by pseudonym (needs include_annotators).",
    )

    @classmethod
    def check(cls, values: dict[str, Any], *, project: Project) -> None:
        if not values["outputs"]:
            raise ValidationFailed(
                f"outputs must be a non-empty subset of {', '.join(OUTPUTS)}.",
                field="params.outputs",
            )
        if values["fifa_job"] is not None:
            scoring = Job.objects.filter(
                pk=values["fifa_job"], project=project, kind__in=(JobKind.FIFA, JobKind.SUSPECTS)
            ).first()
            if scoring is None:
                raise ValidationFailed(
                    "fifa_job must be a FiFA job of this project.", field="params.fifa_job"
                )
            if scoring.status != JobStatus.SUCCEEDED:
                raise ValidationFailed(
                    f"FiFA job {scoring.id} has not succeeded ({scoring.status}).",
                    field="params.fifa_job",
                )
        _explanation_check(values, project=project)
        if values["profile_fields"] and not values["include_annotators"]:
            raise ValidationFailed(
                "profile_fields need include_annotators.", field="params.profile_fields"
            )
        super().check(values, project=project)


def _explanation_check(values: dict[str, Any], *, project: Project) -> None:
    """The explanation filter: a finished explain job, one of its features, top or threshold."""
    keys = ("explanation_feature", "explanation_top", "explanation_threshold")
    if values["explanation_job"] is None:
        given = next((key for key in keys if values[key] is not None), None)
        if given:
            raise ValidationFailed(
                f"{given} needs explanation_job (an explain job).", field="params.explanation_job"
            )
        return
    explanation = explanation_job_check(
        project=project, job_id=values["explanation_job"], field="params.explanation_job"
    )
    if values["format"] not in PAIR_FORMATS:
        raise ValidationFailed(
            f"explanation_job filters pairs; format {values['format']!r} has none.",
            field="params.explanation_job",
        )
    if values["explanation_feature"] is None:
        raise ValidationFailed(
            "explanation_feature is required with explanation_job.",
            field="params.explanation_feature",
        )
    if not explanation.features.filter(index=values["explanation_feature"]).exists():
        raise ValidationFailed(
            f"explanation_feature {values['explanation_feature']} is not a feature of "
            f"explain job {explanation.job_id}.",
            field="params.explanation_feature",
        )
    feature_selection_check(
        values["explanation_top"], values["explanation_threshold"], prefix="params.explanation_"
    )


def _excluded_refs(project: Project, params: ExportParams) -> set[str]:
    """The pairs (orientation-free refs) the explanation filter leaves out."""
    if params.explanation_job is None or params.explanation_feature is None:
        return set()
    explanation = explanation_job_check(
        project=project, job_id=params.explanation_job, field="params.explanation_job"
    )
    return {
        row["pair_ref"]
        for row in feature_top_pairs(
            explanation=explanation,
            feature=params.explanation_feature,
            top=params.explanation_top,
            threshold=params.explanation_threshold,
        )
    }


def _records(
    project: Project, params: ExportParams, progress: Report, reliability_job: int | None = None
) -> tuple[Iterator, int]:
    item_ids = None
    excluded = _excluded_refs(project, params)
    kept_keys: set[str] | None = None
    if params.fifa_job:
        kept = PairScore.objects.filter(job_id=params.fifa_job, kept=True)
        kept_keys = set(kept.values_list("pair_key", flat=True))
        item_ids = set(kept.values_list("item_id", flat=True))
    selection = dataclasses.replace(
        params.selection(item_ids=item_ids), reliability_job=reliability_job
    )
    fmt = params.format
    total_items = (
        Item.objects.filter(project=project, is_gold=False).count()
        if item_ids is None
        else len(item_ids)
    )
    if fmt == "ranked_list":
        source = iter_ranked_lists(project=project, selection=selection)
    elif fmt == "pointwise":
        source = iter_pointwise_rows(project=project, selection=selection)
    else:
        source = iter_preference_pairs(project=project, selection=selection)

    def stream():
        seen_items = 0
        last_item = None
        for record in source:
            if record.item_id != last_item:
                last_item = record.item_id
                seen_items += 1
                if seen_items % 500 == 0:
                    progress(
                        0.9 * seen_items / max(total_items, 1), f"{seen_items}/{total_items} items"
                    )
            if fmt in PAIR_FORMATS:
                if record.tie:
                    continue
                if fmt == "segment_preference" and record.kind != "correction":
                    continue
                if kept_keys is not None and pair_key(record) not in kept_keys:
                    continue
                if excluded and record.chosen_response_id is not None:
                    ref = pair_ref(
                        item_id=record.item_id,
                        question=record.question,
                        first=record.chosen_response_id,
                        second=record.rejected_response_id,
                    )
                    if ref in excluded:
                        continue
            yield record

    return stream(), total_items


def _profiles(project: Project, fields: list[str]) -> dict[str, dict]:
    salt = str(project.id)
    user_ids = (
        Annotation.objects.filter(project=project, source=Source.HUMAN)
        .values_list("annotator_id", flat=True)
        .distinct()
    )
    out: dict[str, dict] = {}
    for profile in AnnotatorProfile.objects.filter(user_id__in=user_ids):
        key = pseudonymous_annotator(
            Annotation(source=Source.HUMAN, annotator_id=profile.user_id), salt
        )
        out[key] = {f: getattr(profile, f) for f in fields}
    return out


def run(job: Job, report: Report) -> dict[str, Any]:
    """Write the export and publish it as the project's next DatasetVersion."""
    params = ExportParams.from_job(job)
    project = job.project
    # The fit the reliability policy reads, fixed here so the manifest names the one used.
    reliability_job = selection_with_reliability_job(
        project=project, selection=params.selection()
    ).reliability_job
    records, total = _records(project, params, report, reliability_job)
    aspects: tuple[str, ...] = ()
    if params.format == "pointwise":
        names: list[str] = []
        for question in project.questions.filter(kind="rating"):
            names.extend(a["name"] for a in question.config["aspects"] if a["name"] not in names)
        aspects = tuple(names)
    options = ExportOptions(
        conversational=params.conversational,
        include_margin=params.include_margin,
        aspects=aspects,
        annotator_secret=secrets.token_bytes(32) if params.include_annotators else None,
        annotator_profiles=_profiles(project, params.profile_fields)
        if params.profile_fields
        else None,
    )
    relative = f"projects/{project.id}/datasets/job-{job.id}"
    destination = absolute(relative)
    if destination.exists():
        # A previous attempt of this job published files but died before the row: start clean.
        shutil.rmtree(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    split = (
        SplitPolicy(test_fraction=params.test_fraction, seed=params.seed)
        if params.test_fraction > 0
        else None
    )
    filters: dict[str, Any] = params.selection_values()
    filters["fifa_job"] = params.fifa_job
    if params.explanation_job is not None:
        filters["explanation"] = {
            "job": params.explanation_job,
            "feature": params.explanation_feature,
            "top": params.explanation_top,
            "threshold": params.explanation_threshold,
        }
    try:
        result = write_export(
            records,
            destination=destination,
            format_name=params.format,
            code_version=code_version(),
            options=options,
            outputs=params.outputs,
            split=split,
            filters=filters,
            aggregation={
                "policy": params.aggregation,
                "source": params.source,
                **({"reliability_job": reliability_job} if reliability_job else {}),
            },
            is_cancelled=lambda: (
                not Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).exists()
            ),
        )
    except ExportCancelled:
        raise JobCancelled(f"export job {job.id} cancelled")
    report(0.97, "publishing")
    manifest = result.manifest
    try:
        version = dataset_version_publish(job=job, relative=relative, manifest=manifest)
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    return {
        "dataset_version": version.id,
        "version": version.version,
        "rows": manifest.get("rows_by_split", manifest.get("rows")),
        # The split files that exist (empty splits have none), as in the manifest.
        "splits": manifest.get("splits"),
        "path": relative,
        "items_considered": total,
    }


def dataset_version_publish(*, job: Job, relative: str, manifest: dict) -> DatasetVersion:
    """Insert the version row with the project's next version number.

    Concurrent exports of one project serialise on the project row
    (``SELECT ... FOR UPDATE``), so each reads the maximum only after the previous
    one committed its row: without the lock they all read the same maximum and all
    but one hit the unique (project, version) constraint, five times over. The lock
    covers one aggregate and one insert, nothing slow. The IntegrityError retry in
    a savepoint remains for databases without row locks (SQLite serialises writers
    anyway) and for a version inserted by other means.
    """
    params = ExportParams.from_job(job)
    for _ in range(5):
        try:
            with transaction.atomic():
                Project.objects.select_for_update().filter(pk=job.project_id).first()
                existing = DatasetVersion.objects.filter(job=job).first()
                if existing is not None:
                    return existing
                latest = (
                    DatasetVersion.objects.filter(project=job.project).aggregate(m=Max("version"))[
                        "m"
                    ]
                    or 0
                )
                version = DatasetVersion.objects.create(
                    project=job.project,
                    version=latest + 1,
                    name=params.name or f"{params.format} v{latest + 1}",
                    format=params.format,
                    job=job,
                    path=relative,
                    row_counts=manifest.get("rows_by_split", manifest.get("rows", {})),
                    manifest=manifest,
                    filters=manifest.get("filters", {}),
                    aggregation=params.aggregation,
                    created_by=job.created_by,
                )
                dataset_version_published_publish(version=version)
                return version
        except IntegrityError:
            continue  # another writer took this number: read the maximum again
    raise RuntimeError("could not allocate a dataset version number")


SPEC = JobKindSpec(
    kind=JobKind.EXPORT.value,
    summary="Export the selected feedback as a new immutable dataset version.",
    params=ExportParams,
    queue="default",
    writes=("Files under projects/<id>/datasets/job-<id>/", "DatasetVersion"),
    run=run,
)
