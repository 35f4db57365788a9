"""The migrated template that pytest-xdist workers copy their PostgreSQL test databases from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.template_db import database_url, migrations_digest


def test_the_digest_covers_every_migration_file(monkeypatch) -> None:
    first = migrations_digest()
    assert first == migrations_digest() and len(first) == 12
    # Any change to any migration's source gives another template.
    original = Path.read_bytes
    target = str(Path("annotation/migrations/0001_initial.py").resolve())

    def edited(self: Path) -> bytes:
        data = original(self)
        return data + b"\n# edited\n" if str(self.resolve()) == target else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert migrations_digest() != first


@pytest.mark.django_db
def test_a_workers_database_is_a_copy_of_a_template_nobody_can_connect_to() -> None:
    if connection.vendor != "postgresql" or "PYTEST_XDIST_WORKER" not in os.environ:
        pytest.skip("the template is used on PostgreSQL under pytest-xdist")
    template = settings.DATABASES["default"]["TEST"]["TEMPLATE"]
    assert template.endswith(f"_tpl_{migrations_digest()}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", [template])
        assert cursor.fetchone() == (False,)
        # Django's own migrate found nothing left to apply on the copy.
        cursor.execute("SELECT count(*) FROM django_migrations")
        assert cursor.fetchone()[0] > 0


def test_the_url_carries_a_password_with_reserved_characters_intact() -> None:
    import dj_database_url

    db = {"USER": "ballot", "PASSWORD": "p@ss:w/rd", "HOST": "db.local", "PORT": "5433"}
    parsed = dj_database_url.parse(database_url(db, "test_ballot_tpl_x"))
    assert (parsed["USER"], parsed["PASSWORD"], parsed["HOST"], parsed["PORT"]) == (
        "ballot",
        "p@ss:w/rd",
        "db.local",
        5433,
    )
    assert parsed["NAME"] == "test_ballot_tpl_x"
