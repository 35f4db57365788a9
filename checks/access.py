"""Access: every route, every method, as every kind of caller; nobody gets what is not theirs.

The routes are read from the running app (``checks.surface``): the API's operations
from its OpenAPI schema, the pages from the URL configuration. Each is called

- as anonymous (401/403, or the pages' redirect to the sign-in form), an outsider
  and a member of another project (404: not yours reads as missing), with project
  A's ids;
- as each role of A: roles an operation does not name get 403/404; the roles it
  names may read A, and nothing they read may carry B's data;
- as each role of A with B's ids in the path (B's object under A's project, then
  B's project), and as A's admin with B's ids and names in every query parameter.

Unsafe methods (POST, PUT, PATCH, DELETE) go out with a minimal body and only where
the caller must be refused, so the whole write pass must leave the database as it
was (fingerprint before and after). A *leak* (``lost``) is a 2xx where the caller
must be refused, a 5xx, or a 2xx carrying another project's names. An answer that
refuses in an unexpected way (a 400 for an outsider, say) is counted as not held.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from checks.core import Context, Figure, Tally
from checks.surface import UNSAFE, Client, Markers, Operation, clients, fetch_schema, fill
from checks.surface import markers as read_markers
from checks.surface import operations as read_operations

SECTION = "access"
MISSING = 2_000_000_000
MEMBERS = ("annotator", "curator", "admin")
STRANGERS = ("anonymous", "outsider", "other_member")


@dataclass(frozen=True)
class Probe:
    """One request to make and what must come back.

    ``refuse``: the caller must be turned away (``expect`` lists the acceptable
    statuses). Otherwise any status below 500 holds, as long as the answer carries
    no project the caller cannot see.
    """

    op: Operation
    role: str
    variant: str
    path: str
    refuse: bool
    expect: frozenset[int] = frozenset()
    query: dict | None = None
    # The same request for rows that do not exist: a refusal that answers like it
    # ("not yours reads as missing") holds even when its status is not in ``expect``.
    missing: str = ""


def _probes(op: Operation, world) -> Iterator[Probe]:
    a, b = world.rows_a, world.rows_b
    own_a = fill(op.path, a)
    # B's rows under A's project (an id from elsewhere in a path A may use), then B's project.
    b_under_a = fill(op.path, {**b, "project_id": a["project_id"]})
    b_whole = fill(op.path, b)
    differs = any(a.get(p) != b.get(p) for p in op.params if p != "project_id")
    unsafe = op.method in UNSAFE
    gone = {p: MISSING for p in op.params if p not in ("index", "file_path")}
    missing_project = fill(op.path, {**a, **gone})
    missing_in_a = fill(op.path, {**a, **gone, "project_id": a["project_id"]})
    anonymous_ok = frozenset({401, 403, 404, 405, 429} | ({302} if not op.is_api else set()))

    if not op.params:
        # Routes of one's own (my profile, my projects) and the public ones.
        if op.public or not op.is_api:
            # Public operations, and pages with nothing in the path (the sign-in form,
            # the health check, one's home): any answer below 500 that shows no
            # project's names holds.
            yield Probe(op, "anonymous", "no ids", own_a, refuse=False)
            if op.public:
                return
        else:
            yield Probe(op, "anonymous", "no ids", own_a, refuse=True, expect=anonymous_ok)
        if not unsafe:
            for role in ("outsider", "other_member", *MEMBERS):
                yield Probe(op, role, "own", own_a, refuse=False)
        return

    yield Probe(
        op, "anonymous", "A ids", own_a, refuse=True, expect=anonymous_ok, missing=missing_project
    )
    not_found = frozenset({404, 405})
    if op.scoped:
        for role in ("outsider", "other_member"):
            yield Probe(
                op, role, "A ids", own_a, refuse=True, expect=not_found, missing=missing_project
            )
        for role in MEMBERS:
            allowed = role in op.roles
            if not allowed:
                yield Probe(
                    op,
                    role,
                    "A ids",
                    own_a,
                    refuse=True,
                    expect=frozenset({403, 404, 405}),
                    missing=missing_in_a,
                )
            elif not unsafe:
                yield Probe(op, role, "A ids", own_a, refuse=False)
            # B's rows: missing for every member of A, whatever the role.
            refused = frozenset(not_found | ({403} if not allowed else set()))
            if differs:
                yield Probe(
                    op,
                    role,
                    "B ids in A",
                    b_under_a,
                    refuse=True,
                    expect=refused,
                    missing=missing_in_a,
                )
            yield Probe(
                op, role, "B project", b_whole, refuse=True, expect=refused, missing=missing_project
            )
        return

    # Rows of one's own without a project in the path (my assignment, my message):
    # A's belong to A's admin, B's to B's admin.
    for role in ("outsider", "other_member", "annotator", "curator"):
        yield Probe(
            op,
            role,
            "A's admin's ids",
            own_a,
            refuse=True,
            expect=not_found,
            missing=missing_project,
        )
    if not unsafe:
        yield Probe(op, "admin", "own ids", own_a, refuse=False)
    for role in ("outsider", *MEMBERS):
        yield Probe(
            op,
            role,
            "B's admin's ids",
            b_whole,
            refuse=True,
            expect=not_found,
            missing=missing_project,
        )


def _visible(role: str, world) -> set[int]:
    if role in MEMBERS:
        return {world.project_a}
    if role == "other_member":
        return {world.project_b}
    return set()


def _send(client: Client, probe: Probe):
    op = probe.op
    kwargs: dict = {"params": probe.query} if probe.query else {}
    if op.method in UNSAFE:
        if op.is_api:
            kwargs["json"] = {}
        else:
            kwargs["data"] = {}
    return client.request(op.method, probe.path, page=not op.is_api, **kwargs)


def _judge(probe: Probe, response, markers: Markers, world, tally: Tally, client: Client) -> None:
    """One probe's answer: a 5xx, another project's data, or an accepted refusal is a leak."""
    status = response.status_code
    case = f"{probe.role} {probe.op.method} {probe.path} ({probe.variant})"
    if status >= 500:
        tally.check(False, f"{case} -> {status}")
        return
    if 200 <= status < 300:
        text = response.text
        for project_id in (world.project_a, world.project_b):
            if project_id in _visible(probe.role, world):
                continue
            marker = markers.found(text, project_id)
            if marker:
                tally.check(False, f"{case} -> {status} with project {project_id}'s {marker!r}")
                return
    if not probe.refuse:
        tally.check(True, case)
        return
    if 200 <= status < 300:
        tally.check(False, f"{case} -> {status}: must be refused")
        return
    if status == 302 and not probe.op.is_api:
        location = response.headers.get("Location", "")
        if probe.role == "anonymous" and "/login/" in location:
            tally.check(True, case)
            return
        if probe.op.method in UNSAFE:
            # A form post that redirects was accepted.
            tally.check(False, f"{case} -> 302 to {location}: accepted")
            return
    if status in probe.expect:
        tally.check(True, case)
        return
    if probe.missing and 400 <= status < 500:
        twin = _send(client, Probe(probe.op, probe.role, "missing", probe.missing, refuse=True))
        if twin.status_code == status:
            tally.check(True, case)
            return
    tally.check(False, f"{case} -> {status}, expected {sorted(probe.expect)}", lost=False)


def _query_probes(ops: list[Operation], world) -> Iterator[Probe]:
    """A's routes, as A's admin, with B's ids and names in every query parameter."""
    from annotation.models import Item

    b = world.rows_b
    b_text = (
        Item.objects.filter(project_id=world.project_b)
        .values_list("external_id", flat=True)
        .first()
        or ""
    )
    page_names = sorted({name for op in ops if op.is_api for name in op.query})

    def value(name: str):
        for key in (name, f"{name}_id", f"{name.rstrip('s')}_id"):
            if key in b and key != "project_id":
                return b[key]
        if name in ("a", "b", "version"):
            return b["version_id"]
        if name in ("project", "project_id"):
            return b["project_id"]
        return b_text

    for op in ops:
        if op.method != "GET" or not op.scoped:
            continue
        names = op.query if op.is_api else page_names
        if not names:
            continue
        query = {name: value(name) for name in names if name not in ("cursor", "page_size")}
        if query:
            yield Probe(
                op, "admin", "B in query", fill(op.path, world.rows_a), refuse=False, query=query
            )


def _sample(ops: list[Operation]) -> list[Operation]:
    """One operation per kind (API or page, method, how deep its path), for the quick run."""
    seen: set[tuple] = set()
    out = []
    for op in ops:
        key = (op.is_api, op.method in UNSAFE, op.scoped, len(op.params) > 1, bool(op.query))
        if key not in seen:
            seen.add(key)
            out.append(op)
    return out


def run(ctx: Context) -> list[Figure]:
    started = time.monotonic()
    world = ctx.world
    ops = read_operations(fetch_schema(ctx.base_url))
    if ctx.quick:
        ops = _sample(ops)
    signed_in = clients(ctx.base_url, world)
    markers = read_markers(world)

    writes, reads, cross, query = (Tally(SECTION) for _ in range(4))
    # Writes first, all of them by callers that must be refused: nothing may change.
    before = ctx.fingerprint()
    for op in ops:
        if op.method not in UNSAFE:
            continue
        for probe in _probes(op, world):
            tally = cross if probe.variant.startswith("B") else writes
            _judge(
                probe,
                _send(signed_in[probe.role], probe),
                markers,
                world,
                tally,
                signed_in[probe.role],
            )
    after = ctx.fingerprint()
    changed = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))

    for op in ops:
        if op.method in UNSAFE:
            continue
        for probe in _probes(op, world):
            tally = cross if probe.variant.startswith("B") else reads
            _judge(
                probe,
                _send(signed_in[probe.role], probe),
                markers,
                world,
                tally,
                signed_in[probe.role],
            )
    for probe in _query_probes(ops, world):
        _judge(
            probe, _send(signed_in[probe.role], probe), markers, world, query, signed_in[probe.role]
        )

    api = sum(op.is_api for op in ops)
    routes = f"{api} API operations, {len(ops) - api} page route-methods"
    write_figure = writes.figure(
        "refused writes",
        f"minimal bodies; tables changed: {', '.join(changed) or 'none'}",
        tables_changed=changed,
    )
    write_figure.tried += 1
    if changed:
        write_figure.lost += len(changed)
        write_figure.failures.append(f"tables written by refused requests: {changed}")
    else:
        write_figure.held += 1
    elapsed = time.monotonic() - started
    requests_sent = writes.tried + reads.tried + cross.tried + query.tried
    return [
        reads.figure(
            "reads by role",
            f"{routes}; {requests_sent} requests in {elapsed:.0f} s",
            seconds=round(elapsed, 1),
            requests=requests_sent,
        ),
        write_figure,
        cross.figure("B's ids in A's paths", "every member role; B's object, then B's project"),
        query.figure("B in query parameters", "B's ids and names in every filter of A's routes"),
    ]
