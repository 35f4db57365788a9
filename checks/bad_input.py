"""Bad input at scale: every body the API reads, broken every way we know, against the running app.

1. **Hostile JSON** (the strategies of ``tests/security/test_hostile_json.py``): NUL
   bytes, nesting 10,000 deep, non-finite numbers and huge integers, at the top of
   the body and in every property of every operation's request schema, as A's admin
   on A's rows.
2. **Broken encodings and framing**: invalid UTF-8, a JSON body under the wrong
   content type, a form where JSON is expected, and truncated multipart uploads to
   the imports (API and pages).
3. **Schemathesis** over the whole schema, positive and negative, bounded in time
   (``options["schemathesis_seconds"]``, default 60; 10 quick) with up to
   ``options["schemathesis_examples"]`` examples per operation and mode (default 25, four
   times the suite's quick pass; 6 quick), on a project of its own so its DELETEs cannot
   take A away.

Parts 1 and 2 must be refused with a 4xx (in the one JSON error shape on the API:
``error``, ``detail``, ``field``, ``errors``) and write nothing (fingerprint before
and after); no 5xx anywhere. Huge integers and NUL bytes only must not break the
server (a big number may be a valid value).
"""

from __future__ import annotations

import json
import time

import requests

from checks.core import Context, Figure, Tally
from checks.surface import Client, clients, fetch_schema, fill

SECTION = "bad input"
ERROR_SHAPE = {"error", "detail", "field", "errors"}
DEPTH = 10_000
# Raw JSON text: json.dumps cannot write most of these, which is the point. The suite's
# tests/security/test_hostile_json.py sends the same list through Django's test client.
HOSTILE: dict[str, list[str]] = {
    "nul": ['"a\\u0000b"', '{"k\\u0000": "\\u0000"}', '["\\u0000"]'],
    "deep": ["[" * DEPTH + "]" * DEPTH, '{"a":' * DEPTH + "1" + "}" * DEPTH],
    "nonfinite": ["NaN", "Infinity", "-Infinity", "1e400", '{"k": NaN}', "[Infinity]"],
    "hugeint": [str(2**62), "9" * 400, "-" + "9" * 5000, '{"k": ' + "9" * 5000 + "}"],
}
# Refused outright wherever the API parses JSON; the rest only must not break the server.
MUST_REFUSE = {"deep", "nonfinite"}


def _resolve(schema: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node or {}


def _json_targets(schema: dict) -> list[tuple[str, str, list[str]]]:
    """(method, path, properties) of every operation that reads a JSON body."""
    out = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            body = _resolve(schema, content["application/json"].get("schema", {}))
            props = list(body.get("properties", {}))
            out.append((method.upper(), path, props))
    return out


def _error_shaped(response: requests.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and set(body) >= ERROR_SHAPE


class AnswerTally(Tally):
    """A tally that also judges an answer: a 5xx or an accepted bad request is lost."""

    def judge(self, response: requests.Response, case: str, *, refuse: bool, api: bool) -> None:
        status = response.status_code
        if status >= 500:
            self.check(False, f"{case} -> {status}", lost=True)
        elif refuse and not 400 <= status < 500:
            self.check(False, f"{case} -> {status}: accepted", lost=True)
        elif api and 400 <= status < 500 and status != 405 and not _error_shaped(response):
            self.check(
                False, f"{case} -> {status}: not the error shape {response.text[:80]!r}", lost=False
            )
        else:
            self.check(True, case)


def _short(text: str) -> str:
    return text if len(text) < 30 else f"{text[:12]}…({len(text)} chars)"


def _hostile_json(ctx: Context, admin: Client, schema: dict, kinds: set[str]) -> AnswerTally:
    tally = AnswerTally(SECTION)
    rows = ctx.world.rows_a
    for method, path, props in _json_targets(schema):
        url = fill(path, rows)
        for kind, values in HOSTILE.items():
            if kind not in kinds:
                continue
            values = values[:1] if ctx.quick else values
            places = ["body"] + ([] if ctx.quick else props)
            for value in values:
                for where in places:
                    body = (
                        value
                        if where == "body"
                        else json.dumps({where: "__H__"}).replace('"__H__"', value)
                    )
                    answer = admin.request(
                        method,
                        url,
                        data=body.encode(),
                        headers={"Content-Type": "application/json"},
                    )
                    case = f"{method} {url} {where}={_short(value)}"
                    tally.judge(answer, case, refuse=kind in MUST_REFUSE, api=True)
        if ctx.quick and tally.tried > 20:
            break
    return tally


def _multipart(boundary: str, cut: int | None) -> bytes:
    line = json.dumps({"external_id": "mp-1", "prompt": "P", "responses": ["A", "B"]})
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="items.jsonl"\r\n'
        "Content-Type: application/x-ndjson\r\n\r\n"
        f"{line}\n{line.replace('mp-1', 'mp-2')}\n\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    return body if cut is None else body[:cut]


def _framing(ctx: Context, admin: Client, schema: dict) -> AnswerTally:
    """Invalid UTF-8, wrong content types and truncated multipart uploads."""
    tally = AnswerTally(SECTION)
    rows = ctx.world.rows_a
    targets = _json_targets(schema)
    if ctx.quick:
        targets = targets[:4]
    bodies: list[tuple[str, bytes, str]] = [
        ("invalid UTF-8", b'{"name": "\xff\xfe\xc3\x28"}', "application/json"),
        ("overlong UTF-8", b'{"name": "\xc0\xaf"}', "application/json"),
        ("lone surrogate", b'{"name": "\xed\xa0\x80"}', "application/json"),
        ("JSON as text/plain", b'{"name": "x"}', "text/plain"),
        ("JSON as XML", b'{"name": "x"}', "application/xml"),
        (
            "XML",
            b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>",
            "application/xml",
        ),
        ("multipart, no boundary", b"--x\r\n\r\n", "multipart/form-data"),
        ("JSON, charset latin-1", b'{"name": "\xe9"}', "application/json; charset=latin-1"),
        ("truncated JSON", b'{"name": "x', "application/json"),
    ]
    for method, path, _props in targets:
        url = fill(path, rows)
        for label, body, content_type in bodies:
            answer = admin.request(method, url, data=body, headers={"Content-Type": content_type})
            tally.judge(answer, f"{method} {url} {label}", refuse=True, api=True)
    # Imports: multipart cut at several places, on the API and the page forms.
    boundary = "ballotcheckboundary"
    full = _multipart(boundary, None)
    # Inside the headers, mid-line, at a line's end (a clean-looking partial file), and
    # just before the closing boundary: the file part never ends, so nothing is read.
    # (A body that loses only the closing "--" still has the whole file and may pass.)
    first_line_end = full.index(b"\n", full.index(b"mp-1")) + 1
    cuts = [len(full) // 4, len(full) // 2, first_line_end, full.rindex(b"\r\n--")]
    project = rows["project_id"]
    for cut in cuts[:2] if ctx.quick else cuts:
        body = _multipart(boundary, cut)
        for url, api in (
            (f"/api/v1/projects/{project}/import/", True),
            (f"/projects/{project}/import/preview/", False),
            (f"/projects/{project}/import/run/", False),
        ):
            answer = admin.request(
                "POST",
                url,
                page=not api,
                data=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            status = answer.status_code
            ok = status < 500 and (
                (400 <= status < 500 and (not api or _error_shaped(answer)))
                or (not api and status == 200 and "mp-1" not in _stored_ids(project))
            )
            tally.check(
                ok, f"POST {url} multipart cut at {cut}/{len(full)} -> {status}", lost=status >= 500
            )
    return tally


def _stored_ids(project_id: int) -> set[str]:
    from annotation.models import Item

    return set(Item.objects.filter(project_id=project_id).values_list("external_id", flat=True))


def _schemathesis(ctx: Context, seconds: float) -> Figure:
    """Generated requests for every operation on a project of its own, until ``seconds``."""
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

    from checks import fuzz
    from tests.security.world import seed_world

    world = seed_world(f"st{int(time.time())}")
    headers = {"Authorization": f"Token {world.token}", "Connection": "close"}
    schema = schemathesis.openapi.from_url(
        f"{ctx.base_url}/api/schema/",
        headers={"Accept": "application/vnd.oai.openapi+json"},
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    # Deletes last: a deleted project would turn the rest into 404s.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    session = requests.Session()
    # Up to ``most`` examples per mode (25 here, four times the suite's quick pass in
    # tests/security/test_schemathesis.py) while the budget allows.
    most = int(ctx.options.get("schemathesis_examples", 6 if ctx.quick else 25))
    started = time.monotonic()
    sent = 0
    failures: list[str] = []
    failing_ops: set[str] = set()
    done = 0

    def count() -> None:
        nonlocal sent
        sent += 1

    for index, operation in enumerate(operations):
        elapsed = time.monotonic() - started
        if elapsed > seconds:
            break
        examples = fuzz.examples_within_budget(
            budget=seconds, elapsed=elapsed, done=index, left=len(operations) - index, most=most
        )
        pinned = {k: v for k, v in world.path_values.items() if f"{{{k}}}" in operation.path}
        label = f"{operation.method.upper()} {operation.path}"

        def failed(mode, case, exc: BaseException, label=label) -> None:
            failing_ops.add(label)
            if len(failures) < 8:
                reason = " | ".join(str(exc).strip().splitlines()[:3])[:200]
                failures.append(f"{mode.value} {case.method} {case.formatted_path}: {reason}")

        fuzz.drive(
            operation,
            examples=examples,
            pinned=pinned,
            headers=headers,
            base_url=ctx.base_url,
            session=session,
            checks=checks,
            on_failure=failed,
            on_request=count,
        )
        done += 1
    elapsed = time.monotonic() - started
    return Figure(
        SECTION,
        "schemathesis",
        tried=done,
        held=done - len(failing_ops),
        lost=0,
        detail=f"{done}/{len(operations)} operations, {sent} requests in {elapsed:.0f} s "
        "(no 5xx, documented status and content type)",
        metrics={"operations": len(operations), "requests": sent},
        failures=failures,
    )


def run(ctx: Context) -> list[Figure]:
    started = time.monotonic()
    schema = fetch_schema(ctx.base_url)
    admin = clients(ctx.base_url, ctx.world)["admin"]
    # Everything in this pass must be refused: nothing may be written.
    before = ctx.fingerprint()
    refused = _hostile_json(ctx, admin, schema, MUST_REFUSE)
    framing = _framing(ctx, admin, schema)
    after = ctx.fingerprint()
    # A huge integer or a NUL may be a value some field takes (then it is stored).
    survived = _hostile_json(ctx, admin, schema, set(HOSTILE) - MUST_REFUSE)
    changed = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
    framing.check(not changed, f"tables written by refused bodies: {changed}", lost=True)
    hostile_seconds = time.monotonic() - started
    seconds = float(ctx.options.get("schemathesis_seconds", 10 if ctx.quick else 60))
    figures = [
        refused.figure("deep nesting, non-finite numbers", "refused, in the error shape"),
        survived.figure("NUL bytes, huge integers", "no 5xx; 4xx in the error shape"),
        framing.figure(
            "encodings, content types, truncated uploads",
            f"refused; tables changed: {', '.join(changed) or 'none'} "
            f"({hostile_seconds:.0f} s with the JSON above)",
        ),
        _schemathesis(ctx, seconds),
    ]
    return figures
