"""Reads, always scoped to what the acting user may see.

Not yours and missing look the same: both raise ``NotFound`` (HTTP 404), so an
outsider learns nothing about which ids exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Count, Prefetch, Q, QuerySet, prefetch_related_objects
from django.utils import timezone

from annotation.errors import Forbidden, NotFound
from annotation.models import (
    Annotation,
    AnnotatorProfile,
    Assignment,
    AssignmentStatus,
    Item,
    Membership,
    Project,
    Question,
    Response,
    Role,
)

STAFF_ROLES = (Role.ADMIN, Role.CURATOR)
# Views and tasks import no models (an import-linter contract); they name roles through these.
ADMIN_ONLY = (Role.ADMIN,)


def project_list_for(*, user: AbstractBaseUser) -> QuerySet[Project]:
    """Projects the user belongs to (every project for a superuser)."""
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def membership_role(*, user: AbstractBaseUser, project: Project) -> str | None:
    if user.is_superuser:
        return Role.ADMIN
    return (
        Membership.objects.filter(user=user, project=project).values_list("role", flat=True).first()
    )


def membership_roles_for(*, user: AbstractBaseUser) -> dict[int, str]:
    """The user's role in each project they belong to, by project id."""
    return dict(Membership.objects.filter(user=user).values_list("project_id", "role"))


def membership_list_for(
    *, user: AbstractBaseUser, project: Project, role: str
) -> QuerySet[Membership]:
    """The project's memberships for staff; an annotator sees only their own."""
    memberships = Membership.objects.filter(project=project).select_related("user")
    if role not in STAFF_ROLES:
        # Annotators see their own membership, not who else labels the project.
        memberships = memberships.filter(user=user)
    return memberships


def membership_get(*, project: Project, membership_id: int | str) -> Membership:
    """One membership of ``project``; the caller has checked the user's role in it."""
    membership = (
        Membership.objects.filter(project=project, pk=_int(membership_id))
        .select_related("user", "project")
        .first()
    )
    if membership is None:
        raise NotFound("No such membership.")
    return membership


# Converters of each project column, as the ORM's compiler applies them (a datetime from
# SQLite's text, a JSON document from its text), per database alias.
_PROJECT_CONVERTERS: dict[str, list[tuple[object, list[Callable]]]] = {}


def project_columns(table_alias: str) -> str:
    """Every column of a project, for a hand-written SELECT whose row ``project_from_row``
    turns into the model; ``table_alias`` names the project table in that SELECT."""
    return ", ".join(f"{table_alias}.{f.column}" for f in Project._meta.concrete_fields)


def project_from_row(values: Sequence) -> Project:
    """The project read by ``project_columns``, with every field loaded, no queryset built."""
    converters = _PROJECT_CONVERTERS.get(connection.alias)
    if converters is None:
        converters = []
        for field in Project._meta.concrete_fields:
            column = field.get_col(Project._meta.db_table)
            converters.append(
                (
                    column,
                    connection.ops.get_db_converters(column) + field.get_db_converters(connection),
                )
            )
        _PROJECT_CONVERTERS[connection.alias] = converters
    loaded = []
    for value, (column, functions) in zip(values, converters, strict=True):
        for function in functions:
            value = function(value, column, connection)
        loaded.append(value)
    return Project.from_db(
        connection.alias, [f.attname for f in Project._meta.concrete_fields], loaded
    )


def project_get_for(
    *, user: AbstractBaseUser, project_id: int | str, roles: Iterable[str] | None = None
) -> tuple[Project, str]:
    """The project and the user's role in it.

    Raises ``NotFound`` when the user is no member (or the id does not exist) and
    ``Forbidden`` when they are a member without one of ``roles``. One statement; for a
    member a hand-written one (every request about a project starts here, so the ORM's
    query building would be paid on each).
    """
    try:
        pid = int(project_id)
    except (TypeError, ValueError):
        raise NotFound("No such project.")
    if not -(2**63) <= pid < 2**63:
        raise NotFound("No such project.")
    if user.is_superuser:
        project = Project.objects.filter(pk=pid).first()
        role = Role.ADMIN
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT m.role, {project_columns('p')} "
                f"FROM {Membership._meta.db_table} m "
                f"JOIN {Project._meta.db_table} p ON p.id = m.project_id "
                "WHERE m.user_id = %s AND m.project_id = %s",
                [user.pk, pid],
            )
            row = cursor.fetchone()
        project, role = (project_from_row(row[1:]), row[0]) if row else (None, None)
    if project is None:
        raise NotFound("No such project.")
    if roles is not None and role not in set(roles):
        raise Forbidden(f"This needs one of the roles: {', '.join(sorted(roles))}.")
    return project, role


def question_list(*, project: Project) -> list[Question]:
    return list(Question.objects.filter(project=project).order_by("position", "id"))


def question_get(*, project: Project, question_id: int | str) -> Question:
    """One question of ``project``; the caller got the project through ``project_get_for``."""
    question = Question.objects.filter(project=project, pk=_int(question_id)).first()
    if question is None:
        raise NotFound("No such question.")
    return question


def item_list_for(*, project: Project) -> QuerySet[Item]:
    return Item.objects.filter(project=project).prefetch_related(
        Prefetch("responses", queryset=Response.objects.order_by("position"))
    )


def item_get_for(*, user: AbstractBaseUser, project_id: int | str, item_id: int | str) -> Item:
    """An item, for the project's admins and curators."""
    project, _ = project_get_for(user=user, project_id=project_id, roles=STAFF_ROLES)
    item = item_list_for(project=project).filter(pk=_int(item_id)).first()
    if item is None:
        raise NotFound("No such item.")
    return item


def item_list_with_annotation_counts(*, project: Project) -> QuerySet[Item]:
    """The project's items in id order, each with ``annotation_count``, for the curators' list."""
    return (
        Item.objects.filter(project=project)
        .annotate(annotation_count=Count("annotations", distinct=True))
        .order_by("id")
        .only("id", "external_id", "is_gold", "priority", "tags")
    )


def _annotations_with_answers(*, project: Project) -> QuerySet[Annotation]:
    return (
        Annotation.objects.filter(project=project)
        .select_related("annotator")
        .prefetch_related(
            "pairwise_answers", "ranking_answers", "rating_answers", "correction_answers"
        )
    )


def annotation_list_for(
    *, user: AbstractBaseUser, project: Project, role: str
) -> QuerySet[Annotation]:
    """Every annotation for staff; an annotator sees only their own."""
    qs = _annotations_with_answers(project=project)
    if role not in STAFF_ROLES:
        qs = qs.filter(annotator=user)
    return qs


def item_annotation_list(*, item: Item) -> QuerySet[Annotation]:
    """Every annotation on ``item``, answers prefetched.

    Only for staff: the caller got ``item`` through ``item_get_for``, which checks the role.
    """
    return _annotations_with_answers(project=item.project).filter(item=item)


def assignment_get_for(*, user: AbstractBaseUser, assignment_id: int | str) -> Assignment:
    """The user's own assignment (nobody else's, whatever their role)."""
    assignment = (
        Assignment.objects.select_related("item", "project")
        .filter(pk=_int(assignment_id), annotator=user)
        .first()
    )
    if assignment is None:
        raise NotFound("No such assignment.")
    return assignment


def assignment_responses_prefetch(*, assignment: Assignment) -> Assignment:
    """``assignment`` with its item's responses loaded in position order (one query).

    The item itself is already loaded by whoever returned the assignment
    (``assignment_get_for`` or the claim), so only the responses are fetched.
    """
    prefetch_related_objects(
        [assignment.item], Prefetch("responses", queryset=Response.objects.order_by("position"))
    )
    return assignment


def assignment_list_for(*, user: AbstractBaseUser) -> QuerySet[Assignment]:
    return Assignment.objects.filter(annotator=user).select_related("item")


def project_progress_for(*, user: AbstractBaseUser, projects: Iterable[Project]) -> dict[int, dict]:
    """Per project: the user's submitted and skipped counts and what they can still label.

    ``remaining`` counts the open regular items the user has not seen plus the
    items leased to them right now (the one on screen and the one leased ahead):
    those are theirs to label, even though a lease takes the item's slot.
    """
    project_list = list(projects)
    ids = [p.id for p in project_list]
    now = timezone.now()
    mine = (
        Assignment.objects.filter(annotator=user, project_id__in=ids)
        .values("project_id")
        .annotate(
            done=Count("id", filter=Q(status=AssignmentStatus.SUBMITTED)),
            skipped=Count("id", filter=Q(status=AssignmentStatus.SKIPPED)),
            leased=Count("id", filter=Q(status=AssignmentStatus.ACTIVE, leased_until__gt=now)),
        )
    )
    by_project = {row["project_id"]: row for row in mine}
    out: dict[int, dict] = {}
    for project in project_list:
        row = by_project.get(project.id, {"done": 0, "skipped": 0, "leased": 0})
        open_items = (
            Item.objects.filter(project=project, is_gold=False, is_full=False)
            .exclude(assignments__annotator=user)
            .count()
        )
        out[project.id] = {
            "done": row["done"],
            "skipped": row["skipped"],
            "remaining": open_items + row["leased"],
        }
    return out


def profile_is_complete(*, user: AbstractBaseUser) -> bool:
    """Whether the user consented and finished the profile survey."""
    return AnnotatorProfile.objects.filter(
        user=user, consented_at__isnull=False, completed_at__isnull=False
    ).exists()


def profile_list_for(*, project: Project) -> QuerySet[AnnotatorProfile]:
    """Profiles of the project's members and of anyone who annotated in it, by user id.

    Former members who left annotations stay listed: their labels are still in the data.
    The caller checks that the reader is staff and decides what of each profile to show.
    """
    user_ids = set(Membership.objects.filter(project=project).values_list("user_id", flat=True))
    user_ids |= set(
        Annotation.objects.filter(project=project, annotator__isnull=False)
        .values_list("annotator_id", flat=True)
        .distinct()
    )
    return (
        AnnotatorProfile.objects.filter(user_id__in=user_ids)
        .select_related("user")
        .order_by("user_id")
    )


def database_ping() -> None:
    """One round trip to the database, for the health check; raises if it is unreachable."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _int(value: int | str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NotFound("Not found.")
