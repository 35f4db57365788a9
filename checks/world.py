"""The people and rows the checks aim at: two projects, a principal for every role.

Project A is the one attacked. Project B belongs to someone else: its ids go into
A's paths and filters (a cross-project leak shows as data from B), and its admin is
the "member of another project". Every path parameter of the API names a real row
in each project (``tests.security.world.world_rows``), so generated requests reach
the real branches, not the 404 for a missing id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("anonymous", "outsider", "other_member", "annotator", "curator", "admin")


@dataclass
class Principal:
    """``role``: one of ``ROLES``. ``token``: an API token ("" for anonymous);
    ``username``/``password`` sign in to the pages (Chromium, session cookie)."""

    role: str
    username: str = ""
    password: str = ""
    token: str = ""
    user_id: int | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"} if self.token else {}


@dataclass
class World:
    principals: dict[str, Principal]
    # {path parameter: value} for project A (attacked) and project B (someone else's).
    rows_a: dict[str, Any] = field(default_factory=dict)
    rows_b: dict[str, Any] = field(default_factory=dict)

    @property
    def project_a(self) -> int:
        return int(self.rows_a["project_id"])

    @property
    def project_b(self) -> int:
        return int(self.rows_b["project_id"])


PASSWORD = "check-Ballot-9f3e"


def seed_world(tag: str = "check") -> World:
    """Seed both projects in the database Django is set up against; returns the World.

    Needs ``django.setup()`` done by the caller (the orchestrator, or pytest-django).
    """
    from annotation.models import Membership, Role
    from annotation.services import token_create
    from tests.factories import ProjectFactory, UserFactory, make_questions
    from tests.security.world import world_rows

    def user(name: str):
        u = UserFactory(username=f"{name}-{tag}", password=PASSWORD)
        return u

    admin, curator, annotator = user("admin"), user("curator"), user("annotator")
    outsider, other = user("outsider"), user("other")
    project_a = ProjectFactory(name=f"Attacked {tag}", created_by=admin, overlap=2)
    project_b = ProjectFactory(name=f"Other {tag}", created_by=other, overlap=2)
    for project in (project_a, project_b):
        make_questions(project)
    Membership.objects.create(user=admin, project=project_a, role=Role.ADMIN)
    Membership.objects.create(user=curator, project=project_a, role=Role.CURATOR)
    Membership.objects.create(user=annotator, project=project_a, role=Role.ANNOTATOR)
    other_annotator = user("other-annotator")
    Membership.objects.create(user=other, project=project_b, role=Role.ADMIN)
    Membership.objects.create(user=other_annotator, project=project_b, role=Role.ANNOTATOR)
    rows_a = world_rows(project=project_a, admin=admin, annotator=annotator, tag=f"{tag}-a")
    rows_b = world_rows(project=project_b, admin=other, annotator=other_annotator, tag=f"{tag}-b")

    principals = {"anonymous": Principal(role="anonymous")}
    for role, u in (
        ("outsider", outsider),
        ("other_member", other),
        ("annotator", annotator),
        ("curator", curator),
        ("admin", admin),
    ):
        _, raw = token_create(user=u, name=f"check-{role}")
        principals[role] = Principal(
            role=role, username=u.username, password=PASSWORD, token=raw, user_id=u.id
        )
    return World(principals=principals, rows_a=rows_a, rows_b=rows_b)


def fingerprint() -> dict[str, Any]:
    """Every Ballot table's row count and an order-independent checksum of its rows,
    read through Django's connection (``{table: [count, checksum]}``).

    Compare two fingerprints taken around an attack: equal means nothing was written.
    Session, axes (login throttling) and token last-used bookkeeping are left out:
    they change on every request by design.
    """
    from django.apps import apps
    from django.db import connection

    skip_apps = {"sessions", "axes", "admin", "contenttypes", "auth"}
    out: dict[str, Any] = {}
    with connection.cursor() as cursor:
        for model in apps.get_models():
            if model._meta.app_label in skip_apps or not model._meta.managed:
                continue
            table = model._meta.db_table
            cursor.execute(f'SELECT COUNT(*) FROM "{table}"')  # noqa: S608 - table names from the app registry
            count = cursor.fetchone()[0]
            out[table] = [count, _checksum(cursor, model)]
    return out


def _checksum(cursor, model) -> str:
    from django.db import connection

    fields = [
        f.column
        for f in model._meta.concrete_fields
        if f.column not in ("last_used_at", "updated_at", "heartbeat_at")
    ]
    table = model._meta.db_table
    cols = ", ".join(f'"{c}"' for c in fields)
    if connection.vendor == "postgresql":
        cursor.execute(
            f"SELECT md5(string_agg(md5(ROW({cols})::text), '' ORDER BY md5(ROW({cols})::text))) FROM \"{table}\""  # noqa: S608
        )
        return cursor.fetchone()[0] or ""
    import hashlib

    cursor.execute(f'SELECT {cols} FROM "{table}"')  # noqa: S608
    digests = sorted(hashlib.md5(repr(row).encode()).hexdigest() for row in cursor.fetchall())  # noqa: S324
    return hashlib.md5("".join(digests).encode()).hexdigest()  # noqa: S324
