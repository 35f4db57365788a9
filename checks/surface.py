"""The attack surface, read from the app itself: routes, who may reach them, signed-in clients.

Routes come from the URL configuration (every page and API route) and the OpenAPI
schema (the API's methods, query parameters and which roles an operation names in
its summary, "(admin)" or "(admin, curator)"). A page's roles are the ones its view
passes to the project selector (``roles=ADMIN_ONLY`` / ``STAFF_ROLES``), read from the
view's source. Nothing here is a hand list: a new route is attacked the day it exists.

Clients sign in the way people and scripts do: a token header for the API, the login
form (session and CSRF cookies) for the pages. Production cookies are ``Secure`` and the
checks speak plain HTTP to the app, so cookies are kept by hand and sent as a header.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any

import requests

from checks.world import Principal, World

ROLE_NAMES = ("admin", "curator", "annotator")
MEMBER_ROLES = frozenset(ROLE_NAMES)
SKIPPED_PREFIXES = ("admin/", "static/", "api/schema/", "api/docs/")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
TIMEOUT = 60


@dataclass(frozen=True)
class Operation:
    """One method on one route. ``path`` has ``{name}`` placeholders.

    ``roles``: the project roles that may use it (all three when nothing narrower is
    declared). ``public``: anonymous callers are allowed (the schema's empty security
    requirement; for pages, a route without parameters that answers anonymous 2xx).
    """

    method: str
    path: str
    is_api: bool
    roles: frozenset[str] = MEMBER_ROLES
    public: bool = False
    query: tuple[str, ...] = ()
    name: str = ""

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def scoped(self) -> bool:
        return "project_id" in self.params

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def declared_roles(text: str) -> frozenset[str] | None:
    """The roles an API summary names in parentheses, e.g. "Create a judge (admin)"."""
    for group in re.findall(r"\(([^()]*)\)", text):
        words = [w.strip() for w in re.split(r",|\band\b", group) if w.strip()]
        if words and all(w in ROLE_NAMES for w in words):
            return frozenset(words)
    return None


def _walk(patterns, prefix: str = ""):
    from django.urls import URLPattern, URLResolver

    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, entry


def _page_roles(callback: Any) -> frozenset[str]:
    """The roles a page's view hands to the project selector; all members when it names none."""
    func = inspect.unwrap(callback)
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return MEMBER_ROLES
    named: set[str] = set()
    if "STAFF_ROLES" in source:
        named |= {"admin", "curator"}
    if "ADMIN_ONLY" in source:
        named |= {"admin"}
    for role in ROLE_NAMES:
        if f"Role.{role.upper()}" in source and "roles=" in source:
            named.add(role)
    return frozenset(named) or MEMBER_ROLES


def operations(schema: dict) -> list[Operation]:
    """Every operation: the schema's for the API, GET and POST for every page route."""
    from django.urls import get_resolver

    ops: list[Operation] = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            if method.upper() not in ("GET", *UNSAFE):
                continue
            text = f"{op.get('summary', '')} {op.get('description', '')}"
            security = op.get("security") or []
            ops.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    is_api=True,
                    roles=declared_roles(text) or MEMBER_ROLES,
                    public={} in security,
                    query=tuple(p["name"] for p in op.get("parameters", []) if p["in"] == "query"),
                    name=op.get("operationId", ""),
                )
            )
    for route, pattern in _walk(get_resolver().url_patterns):
        if route.startswith(SKIPPED_PREFIXES) or route.startswith("^") or route.startswith("api/"):
            continue
        if pattern.name == "logout":
            # Signing out ends the session the rest of the run signs in with; it reads
            # nothing and writes only the session.
            continue
        path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        roles = _page_roles(pattern.callback)
        for method in ("GET", "POST"):
            ops.append(
                Operation(method=method, path=path, is_api=False, roles=roles, name=pattern.name)
            )
    return ops


def fill(path: str, values: dict[str, Any]) -> str:
    for name, value in values.items():
        path = path.replace(f"{{{name}}}", str(value))
    return path


@dataclass
class Client:
    """One principal's HTTP client: token for the API, session cookies for the pages."""

    base_url: str
    principal: Principal
    cookies: dict[str, str] = field(default_factory=dict)
    http: requests.Session = field(default_factory=requests.Session)

    def sign_in(self) -> None:
        if not self.principal.username:
            return
        page = self.http.get(f"{self.base_url}/login/", timeout=TIMEOUT, allow_redirects=False)
        self._keep(page)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        answer = self.request(
            "POST",
            "/login/",
            data={
                "username": self.principal.username,
                "password": self.principal.password,
                "csrfmiddlewaretoken": token.group(1) if token else "",
            },
            page=True,
        )
        if "sessionid" not in self.cookies:
            raise RuntimeError(
                f"{self.principal.role} could not sign in: {answer.status_code} "
                f"{answer.text[:200]!r}"
            )

    def _keep(self, response: requests.Response) -> None:
        for cookie in response.cookies:
            self.cookies[cookie.name] = cookie.value or ""
        self.http.cookies.clear()

    def request(
        self, method: str, path: str, *, page: bool = False, **kwargs: Any
    ) -> requests.Response:
        """``page``: send the session cookie and CSRF token; else the API token."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if page:
            if self.cookies:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            if "csrftoken" in self.cookies:
                headers["X-CSRFToken"] = self.cookies["csrftoken"]
            headers.setdefault("Referer", f"{self.base_url}/")
        else:
            headers.update(self.principal.headers())
        kwargs.setdefault("timeout", TIMEOUT)
        response = self.http.request(
            method, f"{self.base_url}{path}", headers=headers, allow_redirects=False, **kwargs
        )
        self._keep(response)
        return response


def clients(base_url: str, world: World) -> dict[str, Client]:
    out = {}
    for role, principal in world.principals.items():
        client = Client(base_url=base_url, principal=principal)
        client.sign_in()
        out[role] = client
    return out


def fetch_schema(base_url: str) -> dict:
    response = requests.get(
        f"{base_url}/api/schema/",
        headers={"Accept": "application/vnd.oai.openapi+json"},
        timeout=TIMEOUT,
    )
    response.raise_for_status()
    return response.json()


@dataclass
class Markers:
    """Strings that only one project's data carries, to spot it in any answer."""

    by_project: dict[int, list[re.Pattern[str]]]

    def found(self, text: str, project_id: int) -> str | None:
        for pattern in self.by_project.get(project_id, []):
            match = pattern.search(text)
            if match:
                return match.group(0)
        return None


def markers(world: World) -> Markers:
    """Project name, member usernames, item external ids and judge names of A and B,
    read from the app's database (the checks run with Django set up)."""
    from annotation.models import Item, Membership, Project
    from curation.models import Judge

    def bounded(text: str) -> re.Pattern[str]:
        return re.compile(r"(?<![\w-])" + re.escape(text) + r"(?![\w-])")

    out: dict[int, list[re.Pattern[str]]] = {}
    for project_id in (world.project_a, world.project_b):
        texts = [Project.objects.get(id=project_id).name]
        texts += list(
            Membership.objects.filter(project_id=project_id).values_list(
                "user__username", flat=True
            )
        )
        texts += list(
            Item.objects.filter(project_id=project_id).values_list("external_id", flat=True)
        )
        texts += list(Judge.objects.filter(project_id=project_id).values_list("name", flat=True))
        out[project_id] = [bounded(t) for t in texts if t]
    return Markers(by_project=out)
