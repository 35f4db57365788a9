from __future__ import annotations

import os

import pytest
from django.db import connection
from rest_framework.test import APIClient

from annotation.models import Role
from annotation.services import token_create
from checks.injection import CHROMIUM, CHROMIUM_ARGS  # one list for the tests and the checks
from tests.factories import (
    ItemFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
    make_questions,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One torch thread per process (set before torch is first imported; Celery workers and
# other subprocesses inherit it). The suite runs on three pytest-xdist workers, and the
# reward heads it trains are so small that a second thread only adds hand-offs: on a
# loaded two-core machine, two threads made out-of-fold training ten times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

if not os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql")):
    # On SQLite the test database is in memory and the live server shares the test's one
    # connection. A threaded server would run a page's parallel requests (the quality
    # page fetches six charts at once) on that connection at the same time, which Django
    # warns against and which hung a full run. One request at a time keeps it safe.
    from django.core.servers.basehttp import WSGIServer
    from django.test.testcases import LiveServerThread

    class SerialWSGIServer(WSGIServer):
        # The live server thread has already installed the shared connection for itself.
        def __init__(self, *args, connections_override=None, **kwargs):
            super().__init__(*args, **kwargs)

    LiveServerThread.server_class = SerialWSGIServer


def _delete_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
    """Empty the tables after a transactional test with DELETE, not TRUNCATE.

    Django's flush truncates every table: on PostgreSQL that is a new file per table,
    index and TOAST relation, 1.2-1.9 s for Ballot's 52 tables on a loaded two-core
    machine against 0.06-0.09 s for DELETE on the few rows a test leaves. Every
    transactional test (browser, live server, concurrency) pays it once. The foreign
    keys Django creates are DEFERRABLE INITIALLY DEFERRED and the flush runs in one
    transaction, so the order of the DELETEs does not matter. Sequences are reset (the
    rare ``reset_sequences`` test) by the backend's own statements.
    """
    if not tables:
        return []
    sql = [
        f"{style.SQL_KEYWORD('DELETE')} {style.SQL_KEYWORD('FROM')} "
        f"{style.SQL_FIELD(self.quote_name(table))};"
        for table in tables
    ]
    if reset_sequences:
        sql.extend(
            self.sequence_reset_by_name_sql(style, self.connection.introspection.sequence_list())
        )
    return sql


if os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql")):
    from django.db.backends.postgresql.operations import DatabaseOperations

    DatabaseOperations.sql_flush = _delete_flush


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix, django_db_blocker
) -> None:
    """On PostgreSQL under pytest-xdist, each worker's test database copies one template.

    The template is migrated once per set of migrations (tests/template_db.py) instead of
    once per worker; ``BALLOT_TEST_TEMPLATE=0`` migrates each test database as before.
    """
    from django.conf import settings

    db = settings.DATABASES["default"]
    if (
        db["ENGINE"] != "django.db.backends.postgresql"
        or "PYTEST_XDIST_WORKER" not in os.environ
        or os.environ.get("BALLOT_TEST_TEMPLATE", "1") == "0"
    ):
        return
    from tests.template_db import ensure_template

    test = db.setdefault("TEST", {})
    # The xdist suffix is already on the test name ("test_ballot_gw0"); the template is shared.
    base = f"test_{db['NAME']}"
    with django_db_blocker.unblock():
        test["TEMPLATE"] = ensure_template(db, base)


# Test modules that share an expensive session fixture run on one pytest-xdist worker,
# which builds it once per run instead of once per worker. Keyed by the fixture. A test
# module using it but missing here still passes, with a warning (the fixture is then
# built twice). xdist's own `--dist loadgroup` marks have no effect under pytest 9: it
# ignores the node ids xdist rewrites to carry the group.
ONE_WORKER: dict[str, tuple[str, ...]] = {
    # 3,000 HH-RLHF texts embedded with MiniLM (tests/models_gpu/conftest.py)
    "hh_pairs": (
        "tests/models_gpu/test_duplicates.py",
        "tests/models_gpu/test_explain.py",
        "tests/models_gpu/test_fifa.py",
        "tests/models_gpu/test_reward.py",
        "tests/models_gpu/test_suspects.py",
    ),
}


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """With ``-n``: one test per work unit (fine balance at the end), ONE_WORKER groups whole."""
    if config.getvalue("dist") != "load":
        return None  # an explicit --dist mode is honoured
    from xdist.scheduler import LoadScopeScheduling

    group_of = {module: fixture for fixture, modules in ONE_WORKER.items() for module in modules}

    class OneWorkerGroups(LoadScopeScheduling):
        # Larger work units are handed out first (xdist's loadscope reorder), so a group
        # starts early instead of becoming the tail of the run.
        def _split_scope(self, nodeid: str) -> str:
            return group_of.get(_module(nodeid), nodeid)

    return OneWorkerGroups(config, log)


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture, modules in ONE_WORKER.items():
            if fixture in getattr(item, "fixturenames", ()) and _module(item.nodeid) not in modules:
                item.warn(
                    pytest.PytestWarning(
                        f"uses {fixture}: list its module in ONE_WORKER (tests/conftest.py) "
                        "so that one xdist worker builds the fixture"
                    )
                )
    # Concurrency tests need real row locks: PostgreSQL. Under SQLite they skip, saying why.
    if os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql")):
        return
    locks = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL); SQLite has no row locks")
    shared = pytest.mark.skip(
        reason="needs PostgreSQL and Redis (set DATABASE_URL): Celery worker processes share the test database"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(shared if "integration" in item.keywords else locks)


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def alice(db):
    """The owner: admin of the project."""
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):
    """A member: annotator on the project."""
    return UserFactory(username="bob")


@pytest.fixture
def charlie(db):
    """An outsider: member of nothing."""
    return UserFactory(username="charlie")


@pytest.fixture
def project(alice, bob):
    project = ProjectFactory(name="Alice's project", created_by=alice)
    MembershipFactory(user=alice, project=project, role=Role.ADMIN)
    MembershipFactory(user=bob, project=project, role=Role.ANNOTATOR)
    make_questions(project)
    return project


@pytest.fixture
def items(project):
    return [
        ItemFactory(project=project, responses=["First answer.", "Second answer.", "Third answer."])
        for _ in range(5)
    ]


def _client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        _, raw = token_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    return client


@pytest.fixture
def api():
    """``api(user)`` returns a client authenticated with a fresh token; ``api(None)`` is anonymous."""
    return _client_for


from tests.api_mixins import world  # noqa: E402, F401  (shared fixture for the permission matrix)

# Playwright's sync API runs an event loop in this thread; Django's ORM calls made
# from the test body (fixtures, assertions on rows) are still plain sync code.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            f"Chromium is not installed at {CHROMIUM}; run `apt-get install -y chromium chromium-headless-shell` to run browser tests"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()
