"""One migrated PostgreSQL template that every pytest-xdist worker's test database copies.

Each worker used to build its test database by running all migrations: about 4 s of
Python CPU and the server's own work, three times at once on a two-core machine. Now the
first worker to get here migrates a template database once (in a subprocess, under a file
lock); the others wait for it, and every worker's ``CREATE DATABASE`` copies it, after
which Django's own migrate finds nothing to apply.

The template's name carries a digest of every migration file the project loads (its own
and Django's and its dependencies'), so a changed or added migration builds a new
template, and a template of another digest is dropped when a new one is built.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parents[1]


def migrations_digest() -> str:
    """SHA-256 over the source of every migration on disk, in a stable order."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    digest = hashlib.sha256()
    for key in sorted(loader.disk_migrations):
        module = sys.modules[loader.disk_migrations[key].__module__]
        digest.update("/".join(key).encode())
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:12]


def database_url(settings_dict: dict, name: str) -> str:
    """A ``postgres://`` URL for database ``name`` on the server of ``settings_dict``."""
    # Quoted: dj_database_url unquotes them, and a password may hold "@", ":" or "/".
    user = quote(settings_dict.get("USER") or "", safe="")
    if settings_dict.get("PASSWORD"):
        user += f":{quote(settings_dict['PASSWORD'], safe='')}"
    host = settings_dict.get("HOST") or ""
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    at = "@" if user else ""
    if host.startswith("/"):  # a socket directory
        return f"postgres://{user}{at}/{name}?host={host}"
    return f"postgres://{user}{at}{host or '127.0.0.1'}{port}/{name}"


def ensure_template(settings_dict: dict, base_name: str) -> str:
    """Return the name of a migrated template database for ``base_name``, building it once."""
    from django.db import connections

    name = f"{base_name}_tpl_{migrations_digest()}"
    lock_path = Path(tempfile.gettempdir()) / f"ballot-{name}.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        creation = connections["default"].creation
        quoted = connections["default"].ops.quote_name
        with creation._nodb_cursor() as cursor:
            cursor.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{base_name}_tpl_%"]
            )
            existing = {row[0] for row in cursor.fetchall()}
            if name in existing:
                return name
            for stale in existing:
                # Another run may still copy an old one: then it stays, for its last user.
                with contextlib.suppress(Exception):
                    cursor.execute(f"DROP DATABASE {quoted(stale)}")
            cursor.execute(f"CREATE DATABASE {quoted(name)}")
        env = dict(os.environ, DATABASE_URL=database_url(settings_dict, name))
        env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        with creation._nodb_cursor() as cursor:
            if migrated.returncode != 0:
                cursor.execute(f"DROP DATABASE {quoted(name)}")
                raise RuntimeError(
                    f"migrating the test template {name} failed:\n{migrated.stdout}{migrated.stderr}"
                )
            # No session may connect to it: a connected session makes every copy fail.
            cursor.execute(f"ALTER DATABASE {quoted(name)} WITH ALLOW_CONNECTIONS false")
    return name
