"""A small, complete project to aim generated requests at: every path parameter names a real row.

Requests with random ids only ever reach the 404 branch; the attacks that found
500s needed a real project, item, question, job and assignment behind the URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from annotation.models import AnnotatorMessage, Membership, Project, Role
from annotation.services import assignment_claim_next, token_create
from curation.models import (
    Explanation,
    ExplanationFeature,
    Job,
    JobKind,
    JobStatus,
    Judge,
    ReviewEntry,
    ReviewSource,
    Webhook,
)
from tests.factories import ItemFactory, ProjectFactory, UserFactory, make_questions


@dataclass
class World:
    admin: AbstractBaseUser
    token: str
    path_values: dict[str, Any] = field(default_factory=dict)

    def fill(self, route: str, converters: dict[str, str] | None = None) -> str:
        """``route`` with each ``{name}`` or ``<conv:name>`` replaced by the seeded row's id."""
        path = route
        for name, value in self.path_values.items():
            path = path.replace(f"{{{name}}}", str(value))
            for conv in ("int", "str", "path", "slug", ""):
                path = path.replace(f"<{conv}:{name}>" if conv else f"<{name}>", str(value))
        return path


def seed_world(tag: str) -> World:
    """One project with questions of every kind and two members, then ``world_rows``: every
    path parameter the API names gets a real row. A path parameter not named here keeps
    its generated value."""
    admin = UserFactory(username=f"admin-{tag}", is_superuser=False)
    annotator = UserFactory(username=f"annotator-{tag}")
    project = ProjectFactory(name=f"Attacked {tag}", created_by=admin, overlap=2)
    Membership.objects.create(user=admin, project=project, role=Role.ADMIN)
    Membership.objects.create(user=annotator, project=project, role=Role.ANNOTATOR)
    make_questions(project)
    _, raw = token_create(user=admin)
    return World(
        admin=admin,
        token=raw,
        path_values=world_rows(project=project, admin=admin, annotator=annotator, tag=tag),
    )


def world_rows(
    *, project: Project, admin: AbstractBaseUser, annotator: AbstractBaseUser, tag: str
) -> dict[str, Any]:
    """A row behind every path parameter of the API, in ``project`` (which has questions,
    ``admin`` as its admin and ``annotator`` as a member): three items, the admin's lease, a
    finished job (with an explanation), a webhook, a judge, a review entry and a message to the
    admin. Returns ``{parameter: value}``.

    The one place a new route's parameter gets its row: the generated attacks
    (``test_hostile_json``, ``test_schemathesis``) and the schema walk of
    ``tests/annotation/test_input_limits.py`` all build on it.
    """
    items = [
        ItemFactory(project=project, responses=["First answer.", "Second answer.", "Third."])
        for _ in range(3)
    ]
    assignment = assignment_claim_next(project=project, annotator=admin)
    job = Job.objects.create(
        project=project, kind=JobKind.SUSPECTS, status=JobStatus.SUCCEEDED, created_by=admin
    )
    # .invalid never resolves: a test delivery fails at once, without the network.
    webhook = Webhook.objects.create(
        project=project,
        url="https://hooks.example.invalid/ballot",
        secret="whsec_" + "A" * 43 + "=",
        created_by=admin,
    )
    # A judge whose host never resolves and that does not retry: a test fails at once.
    judge = Judge.objects.create(
        project=project,
        name=f"judge-{tag}",
        backend="openai",
        base_url="https://judge.example.invalid/v1",
        model="m",
        max_retries=0,
        created_by=admin,
    )
    # The finished job also carries an explanation, so the explanation routes reach their
    # real branches (feature 0 exists) instead of the 404 for a job without one.
    explanation = Explanation.objects.create(job=job, project=project)
    ExplanationFeature.objects.create(
        explanation=explanation, index=0, rank=1, coef=0.5, ngrams_high=[{"ngram": "a", "z": 1}]
    )
    entry = ReviewEntry.objects.create(
        item=items[1], source=ReviewSource.AGREEMENT, reason="split", scores={"agreement": 0.5}
    )
    # Addressed to the admin, the user the attacks sign in as (only its reader may mark it).
    message = AnnotatorMessage.objects.create(
        project=project, item=items[1], annotator=admin, sender=admin, body="Look again."
    )
    return {
        "project_id": project.id,
        "item_id": items[0].id,
        "question_id": project.questions.order_by("position", "id").first().id,
        "membership_id": Membership.objects.get(project=project, user=annotator).id,
        "assignment_id": assignment.id if assignment else 0,
        "job_id": job.id,
        "version_id": 1,
        "file_path": "manifest.json",
        "webhook_id": webhook.id,
        "judge_id": judge.id,
        "entry_id": entry.id,
        "message_id": message.id,
        "index": 0,
    }
