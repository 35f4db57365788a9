"""Hostile JSON against every endpoint that reads a body, generated from the URL configuration.

The targets are not listed by hand. Every route in ``config.urls`` is walked; API
routes take their operations and request schemas from the OpenAPI schema that
drf-spectacular builds from the same views (an API route missing from it fails
``test_every_api_route_is_in_the_schema``), the page routes get the hostile body
as JSON too. A new endpoint is attacked the day it is added.

Four kinds of input, each put at the top of the body and into every property of
the operation's request schema (one at a time, the others filled with plain
valid-looking values): NUL bytes (PostgreSQL refuses them in text), nesting
10,000 deep, non-finite numbers (NaN, ±Infinity, 1e400) and huge integers (2^62,
400 and 5,000 digits). None may cause a 5xx. On the API every 4xx is in the one
error shape, and non-finite numbers and deep nesting are refused (4xx), never
stored. Runs on SQLite and on PostgreSQL (DATABASE_URL).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
from django.core.cache import cache
from django.http import HttpRequest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

from checks.bad_input import ERROR_SHAPE, HOSTILE, MUST_REFUSE
from tests.security.world import seed_world

# The payloads, what must be refused and the error shape are the ones `make check` sends
# (checks/bad_input.py) to the production shape: one list for both.
SKIPPED_ROUTE_PREFIXES = ("admin/", "api/schema/", "api/docs/", "static/")


@dataclass(frozen=True)
class Target:
    method: str
    route: str  # with {name} placeholders
    media_type: str
    properties: tuple[str, ...]
    base: str  # JSON text of a body with the required properties filled
    is_api: bool

    @property
    def label(self) -> str:
        return f"{self.method} /{self.route.lstrip('/')} ({self.media_type})"


def _walk(resolvers, prefix: str = ""):
    for entry in resolvers:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route


def _routes() -> list[str]:
    """Every concrete route in config.urls, with ``<conv:name>`` turned into ``{name}``."""
    import re

    routes = []
    for route in _walk(get_resolver().url_patterns):
        if route.startswith(SKIPPED_ROUTE_PREFIXES) or route.startswith("^"):
            continue
        routes.append(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return sorted(set(routes))


def _openapi() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _resolve(schema: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node or {}


def _plain_value(node: dict) -> Any:
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "string":
        return "x" * max(1, node.get("minLength", 1))
    if kind == "integer":
        return max(1, node.get("minimum", 1))
    if kind == "number":
        return node.get("minimum", 0)
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    return {}


def _targets() -> list[Target]:
    schema = _openapi()
    targets: list[Target] = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            for media_type in ("application/json", "application/x-ndjson"):
                if media_type not in content:
                    continue
                body_schema = _resolve(schema, content[media_type].get("schema", {}))
                properties = {
                    name: _resolve(schema, node)
                    for name, node in body_schema.get("properties", {}).items()
                }
                base = {
                    name: _plain_value(properties[name])
                    for name in body_schema.get("required", [])
                    if name in properties
                }
                targets.append(
                    Target(
                        method=method.upper(),
                        route=path.lstrip("/"),
                        media_type=media_type,
                        properties=tuple(properties),
                        base=json.dumps(base),
                        is_api=True,
                    )
                )
    known = sorted({name for target in targets for name in target.properties})
    for route in _routes():
        if route.startswith("api/"):
            continue
        # Pages and their JSON endpoints have no schema: every property name the
        # API knows is tried on them (answers, time_spent_ms, settings, ...).
        targets.append(
            Target(
                method="POST",
                route=route,
                media_type="application/json",
                properties=tuple(known),
                base="{}",
                is_api=False,
            )
        )
    return targets


TARGETS = _targets()


def _bodies(target: Target, hostile: str) -> list[tuple[str, str]]:
    """(where, raw body) pairs: the hostile text at the top and in each property."""
    if target.media_type == "application/x-ndjson":
        line = {"external_id": "hostile", "prompt": "P", "responses": ["A", "B"], "metadata": {}}
        bodies = []
        for name in ("prompt", "responses", "metadata", "external_id"):
            text = json.dumps({**line, name: "__HOSTILE__"})
            bodies.append((f"line.{name}", text.replace('"__HOSTILE__"', hostile) + "\n"))
        return bodies
    bodies = [("body", hostile)]
    for name in target.properties:
        base = json.loads(target.base)
        base[name] = "__HOSTILE__"
        bodies.append((name, json.dumps(base).replace('"__HOSTILE__"', hostile)))
    return bodies


def test_every_api_route_is_in_the_schema():
    documented = {path.lstrip("/") for path in _openapi()["paths"]}
    undocumented = [r for r in _routes() if r.startswith("api/v1/") and r not in documented]
    assert not undocumented, (
        f"API routes the schema (and so these tests) do not cover: {undocumented}"
    )


def test_the_world_has_a_row_behind_every_path_parameter_of_every_route(db):
    # A new route's parameter is added once, in tests/security/world.py::world_rows; every
    # hostile-input test (these, schemathesis, tests/annotation/test_input_limits.py)
    # then aims at a real row instead of the 404 branch.
    names = set(seed_world("names").path_values)
    missing = {
        route: sorted(set(re.findall(r"{(\w+)}", route)) - names)
        for route in _routes()
        if set(re.findall(r"{(\w+)}", route)) - names
    }
    assert not missing, f"path parameters with no row in world_rows: {missing}"


def test_the_targets_cover_every_json_endpoint_of_the_api():
    labels = {target.label for target in TARGETS if target.is_api}
    assert "POST /api/v1/projects/ (application/json)" in labels
    assert "POST /api/v1/projects/{project_id}/import/ (application/x-ndjson)" in labels
    assert any("/label/{assignment_id}/submit/" in t.route for t in TARGETS if not t.is_api)
    assert len(labels) >= 14


def test_pages_that_read_a_json_body_are_told_apart_from_form_pages(db):
    world = seed_world("probe")
    client = Client()
    client.force_login(world.admin)
    pages = {target.route: target for target in TARGETS if not target.is_api}

    def reads(route: str) -> bool:
        target = pages[route]
        return _reads_json(client, target, "/" + world.fill(route), '{"answers": NaN}')

    # The labeling page's submit reads JSON: every property is tried there one by one.
    assert reads("projects/{project_id}/label/{assignment_id}/submit/")
    # The settings form reads form fields only.
    assert not reads("projects/{project_id}/settings/")


@pytest.fixture(scope="module")
def hostile_world(django_db_setup, django_db_blocker):
    """One world for the module's 550 cases, committed once (seeding it per case was a third
    of the module's time). Each case runs in a transaction that is rolled back, so a DELETE
    or an update in one case is gone before the next; the world is deleted at the end."""
    from django.contrib.auth import get_user_model

    from annotation.models import Project

    with django_db_blocker.unblock():
        world = seed_world("hostile")
    yield world
    with django_db_blocker.unblock():
        Project.objects.filter(pk=world.path_values["project_id"]).delete()
        get_user_model().objects.filter(username__endswith="-hostile").delete()


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.label)
def test_hostile_json_never_breaks_an_endpoint(db, hostile_world, target: Target, kind: str):
    cache.clear()
    world = hostile_world
    client = Client()
    client.force_login(world.admin)
    path = "/" + world.fill(target.route)
    auth = {"HTTP_AUTHORIZATION": f"Token {world.token}"} if target.is_api else {}
    problems = []
    # Pages get every property name the API knows; two values per kind keep that affordable.
    values = HOSTILE[kind] if target.is_api else HOSTILE[kind][:2]
    for hostile in values:
        bodies = _bodies(target, hostile)
        if not target.is_api and not _reads_json(client, target, path, bodies[0][1]):
            # A page that never reads the body cannot read its properties: one body with
            # all of them hostile at once is enough (trying 98 properties one by one on
            # every page took most of this module's time).
            bodies = [bodies[0], ("every property", _all_at_once(target, hostile))]
        for where, body in bodies:
            response = client.generic(
                target.method,
                path,
                body.encode(),
                content_type=target.media_type,
                HTTP_IDEMPOTENCY_KEY=f"hostile-{kind}-{where}-{len(problems)}",
                **auth,
            )
            status = response.status_code
            shown = hostile if len(hostile) < 40 else f"{hostile[:20]}…({len(hostile)} chars)"
            case = f"{where}={shown} -> {status}"
            if status >= 500:
                problems.append(f"{case}: server error")
                continue
            if not target.is_api:
                continue
            if 400 <= status < 500 and status != 405:
                body_json = _json_or_none(response)
                if not isinstance(body_json, dict) or not set(body_json) >= ERROR_SHAPE:
                    problems.append(f"{case}: not the error shape: {response.content[:200]!r}")
            if kind in MUST_REFUSE and status < 400:
                problems.append(f"{case}: accepted")
    assert not problems, f"{target.label} with {kind}:\n" + "\n".join(problems[:20])


def _all_at_once(target: Target, hostile: str) -> str:
    body = {**json.loads(target.base), **dict.fromkeys(target.properties, "__HOSTILE__")}
    return json.dumps(body).replace('"__HOSTILE__"', hostile)


def _reads_json(client: Client, target: Target, path: str, hostile_body: str) -> bool:
    """Whether anything serving this page route reads the request body. With a JSON content
    type Django's form parsing leaves the body alone, so a form view never sees it."""
    reads: list[bool] = []
    body = HttpRequest.body

    def recorded(request):
        reads.append(True)
        return body.fget(request)

    with mock.patch.object(HttpRequest, "body", property(recorded)):
        client.generic(target.method, path, hostile_body.encode(), content_type=target.media_type)
    return bool(reads)


def _json_or_none(response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None
