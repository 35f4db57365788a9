"""Writes. Keyword-only, typed, named ``entity_action``; multi-row writes are atomic."""

from __future__ import annotations

from annotation.services.agreement import item_agreement_refresh
from annotation.services.assignments import (
    assignment_claim_next,
    assignment_skip,
    leases_release_expired,
)
from annotation.services.imports import ImportResult, items_import
from annotation.services.overlap import request_more_votes
from annotation.services.projects import (
    membership_add,
    membership_remove,
    membership_update,
    profile_get_or_create,
    profile_update,
    project_create,
    project_delete,
    project_update,
    question_config_validate,
    question_create,
    question_delete,
    question_update,
    token_create,
)
from annotation.services.quality import item_quality_record, quality_summaries_rebuild
from annotation.services.submissions import (
    annotation_ai_store,
    annotation_submit,
    annotation_submit_and_claim_next,
    answers_validate,
)

__all__ = [
    "ImportResult",
    "annotation_ai_store",
    "annotation_submit",
    "annotation_submit_and_claim_next",
    "answers_validate",
    "assignment_claim_next",
    "assignment_skip",
    "item_agreement_refresh",
    "item_quality_record",
    "items_import",
    "leases_release_expired",
    "membership_add",
    "membership_remove",
    "membership_update",
    "profile_get_or_create",
    "profile_update",
    "project_create",
    "project_delete",
    "project_update",
    "question_config_validate",
    "question_create",
    "question_delete",
    "quality_summaries_rebuild",
    "question_update",
    "request_more_votes",
    "token_create",
]
