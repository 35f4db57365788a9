"""Dataset versions: immutable exports, published atomically.

The writer builds the files in a hidden temporary folder and renames it into
place; only then is the ``DatasetVersion`` row inserted. A failure before the
rename leaves no folder; a failure of the insert removes the folder; so a
version is either complete and visible or absent.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator

from django.db import IntegrityError, transaction
from django.db.models import Max

from annotation.errors import ValidationFailed
from annotation.models import AnnotatorProfile, Item, Project, Source
from annotation.services.projects import PROFILE_FIELDS
from curation import params as check
from curation.exports.formats import FORMATS, ExportOptions
from curation.exports.writers import OUTPUTS, ExportCancelled, SplitPolicy, write_export
from curation.models import DatasetVersion, Job, JobKind, JobStatus, PairScore
from curation.pairs import (
    SELECTION_FIELDS,
    iter_pointwise_rows,
    iter_preference_pairs,
    iter_ranked_lists,
    pair_key,
    pseudonymous_annotator,
    selection_from_params,
)
from curation.storage import absolute

# Every profile field but the free-text description, which may identify the annotator.
PROFILE_EXPORT_FIELDS = tuple(f for f in PROFILE_FIELDS if f != "self_description")
EXPORT_KEYS = {
    "format",
    "outputs",
    "name",
    "conversational",
    "include_margin",
    "test_fraction",
    "seed",
    "fifa_job",
    "include_annotators",
    "profile_fields",
} | set(SELECTION_FIELDS)


def validate_export_params(*, project: Project, params: dict) -> dict:
    """Check an export's parameters strictly and fill in defaults.

    Every key is checked for type and range (400 naming ``params.<key>``); an
    unknown key is refused rather than ignored.
    """
    if not isinstance(params, dict):
        raise ValidationFailed("params must be an object.", field="params")
    check.reject_unknown(params, EXPORT_KEYS, "export")
    clean = {
        "format": "trl_preference",
        "outputs": list(OUTPUTS),
        "name": "",
        "conversational": False,
        "include_margin": True,
        "test_fraction": 0.1,
        "seed": 0,
        "fifa_job": None,
        "include_annotators": False,
        "profile_fields": [],
        **params,
    }
    check.choice(clean, "format", FORMATS)
    clean["outputs"] = check.string_list(clean, "outputs", options=OUTPUTS)
    if not clean["outputs"]:
        raise ValidationFailed(
            f"outputs must be a non-empty subset of {', '.join(OUTPUTS)}.", field="params.outputs"
        )
    clean["name"] = check.string(clean, "name", max_length=check.MAX_NAME_LENGTH)
    for key in ("conversational", "include_margin", "include_annotators"):
        check.boolean(clean, key)
    clean["test_fraction"] = check.number(clean, "test_fraction", low=0.0, high=1.0, high_open=True)
    clean["seed"] = check.number(clean, "seed", low=0, high=check.SEED_MAX, integer=True)
    clean["fifa_job"] = check.number(
        clean, "fifa_job", low=1, high=2**63 - 1, integer=True, nullable=True
    )
    if clean["fifa_job"] is not None:
        fifa = Job.objects.filter(
            pk=clean["fifa_job"], project=project, kind__in=(JobKind.FIFA, JobKind.SUSPECTS)
        ).first()
        if fifa is None:
            raise ValidationFailed(
                "fifa_job must be a FiFA job of this project.", field="params.fifa_job"
            )
        if fifa.status != JobStatus.SUCCEEDED:
            raise ValidationFailed(
                f"FiFA job {fifa.id} has not succeeded ({fifa.status}).", field="params.fifa_job"
            )
    clean["profile_fields"] = check.string_list(
        clean, "profile_fields", options=PROFILE_EXPORT_FIELDS
    )
    if clean["profile_fields"] and not clean["include_annotators"]:
        raise ValidationFailed(
            "profile_fields need include_annotators.", field="params.profile_fields"
        )
    selection_from_params({k: v for k, v in clean.items() if k in SELECTION_FIELDS})
    return clean


def _records(project: Project, params: dict, progress) -> tuple[Iterator, int]:
    item_ids = None
    kept_keys: set[str] | None = None
    if params.get("fifa_job"):
        kept = PairScore.objects.filter(job_id=params["fifa_job"], kept=True)
        kept_keys = set(kept.values_list("pair_key", flat=True))
        item_ids = set(kept.values_list("item_id", flat=True))
    selection = selection_from_params(
        {k: v for k, v in params.items() if k in SELECTION_FIELDS}, item_ids=item_ids
    )
    fmt = params["format"]
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
            if fmt in ("trl_preference", "reward_pairs", "trl_unpaired", "segment_preference"):
                if record.tie:
                    continue
                if fmt == "segment_preference" and record.kind != "correction":
                    continue
                if kept_keys is not None and pair_key(record) not in kept_keys:
                    continue
            yield record

    return stream(), total_items


def _profiles(project: Project, fields: list[str]) -> dict[str, dict]:
    from annotation.models import Annotation

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


def run_export(job: Job, report) -> dict:
    """Write the export and publish it as the project's next DatasetVersion."""
    params = job.params
    project = job.project
    records, total = _records(project, params, report)
    aspects: tuple[str, ...] = ()
    if params["format"] == "pointwise":
        names: list[str] = []
        for question in project.questions.filter(kind="rating"):
            names.extend(a["name"] for a in question.config["aspects"] if a["name"] not in names)
        aspects = tuple(names)
    options = ExportOptions(
        conversational=bool(params["conversational"]),
        include_margin=bool(params["include_margin"]),
        aspects=aspects,
        annotator_secret=secrets.token_bytes(32) if params["include_annotators"] else None,
        annotator_profiles=_profiles(project, params["profile_fields"])
        if params["profile_fields"]
        else None,
    )
    relative = f"projects/{project.id}/datasets/job-{job.id}"
    destination = absolute(relative)
    if destination.exists():
        # A previous attempt of this job published files but died before the row: start clean.
        shutil.rmtree(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    from curation.handlers import code_version

    split = (
        SplitPolicy(test_fraction=params["test_fraction"], seed=params["seed"])
        if params["test_fraction"] > 0
        else None
    )
    filters = {k: params.get(k) for k in sorted(SELECTION_FIELDS) if k in params}
    filters["fifa_job"] = params.get("fifa_job")
    try:
        result = write_export(
            records,
            destination=destination,
            format_name=params["format"],
            code_version=code_version(),
            options=options,
            outputs=params["outputs"],
            split=split,
            filters=filters,
            aggregation={
                "policy": params.get("aggregation", "majority"),
                "source": params.get("source", "human"),
            },
            is_cancelled=lambda: (
                not Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).exists()
            ),
        )
    except ExportCancelled:
        from curation.services.jobs import JobCancelled

        raise JobCancelled(f"export job {job.id} cancelled")
    report(0.97, "publishing")
    manifest = result.manifest
    try:
        version = _publish(job, relative, manifest, params)
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


def _publish(job: Job, relative: str, manifest: dict, params: dict) -> DatasetVersion:
    """Insert the version row with the project's next version number.

    Concurrent exports of one project serialise on the project row
    (``SELECT ... FOR UPDATE``), so each reads the maximum only after the previous
    one committed its row: without the lock they all read the same maximum and all
    but one hit the unique (project, version) constraint, five times over. The lock
    covers one aggregate and one insert, nothing slow. The IntegrityError retry in
    a savepoint remains for databases without row locks (SQLite serialises writers
    anyway) and for a version inserted by other means.
    """
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
                return DatasetVersion.objects.create(
                    project=job.project,
                    version=latest + 1,
                    name=params.get("name") or f"{params['format']} v{latest + 1}",
                    format=params["format"],
                    job=job,
                    path=relative,
                    row_counts=manifest.get("rows_by_split", manifest.get("rows", {})),
                    manifest=manifest,
                    filters=manifest.get("filters", {}),
                    aggregation=params.get("aggregation", "majority"),
                    created_by=job.created_by,
                )
        except IntegrityError:
            continue  # another writer took this number: read the maximum again
    raise RuntimeError("could not allocate a dataset version number")
