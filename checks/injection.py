"""Injection: stored scripts never run, spreadsheets never evaluate, SQL never bends.

1. **Stored XSS.** A project of its own (A's admin and annotator are its members) gets
   script payloads in every text a user or an import sets: project name and
   instructions, question prompts and labels, items (imported through the API, and
   the seeded ones: conversation, responses, model names, metadata, tags), profile
   fields, judge names, models and prompts, job messages and errors, webhook URLs
   and descriptions, review reasons, messages and explanation features. Then every
   page is opened in headless Chromium as the admin. *Lost*: a dialog opened, the
   payload's window flag set, or payload markup alive in the DOM (a ``<script>`` or
   an ``on*=`` handler carrying it), which counts even when the policy kept it from
   running: escaping must hold on its own.
2. **Content-Security-Policy.** Every page's HTML answer carries one whose
   ``script-src`` allows neither ``'unsafe-inline'`` nor ``'unsafe-eval'``, and no
   page's own scripts or charts trip it (a violation report counts as lost).
3. **Formula injection.** Every CSV Ballot writes (the routing report) neutralises
   cells that a spreadsheet would evaluate (OWASP: ``= + - @``, tab, carriage return).
4. **SQL injection.** Classic probes in every filter and search parameter of A's
   routes, as A's admin: no 5xx, no data of B, nothing written (fingerprint).
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from checks.core import Context, Figure
from checks.surface import Client, clients, fetch_schema, fill, markers, operations

SECTION = "injection"
# Debian's chromium-headless-shell (Chromium's old headless mode, the build Playwright
# itself runs headless) when installed: the same engine at half the CPU of the full
# browser in its new headless mode (13 s instead of 27 s over 14 browser tests). Else
# Debian's chromium. BALLOT_CHROMIUM picks another binary.
CHROMIUM_CANDIDATES = (Path("/usr/bin/chromium-headless-shell"), Path("/usr/bin/chromium"))
CHROMIUM = Path(
    os.environ.get("BALLOT_CHROMIUM")
    or next((str(p) for p in CHROMIUM_CANDIDATES if p.exists()), str(CHROMIUM_CANDIDATES[-1]))
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]
MARK = "xssBallot"
# Each calls the marker: a dialog and a window flag, so running shows either way.
RUN = f"window.{MARK}=1;alert('{MARK}')"
PAYLOADS = [
    f"<script>{RUN}</script>",
    f'<img src=x onerror="{RUN}">',
    f'"\'><svg onload="{RUN}">',
    f"</textarea></title></script><script>{RUN}</script>",
    f"[click](javascript:{RUN})",
    f'<a href="javascript:{RUN}">link</a>',
    f"';{RUN};//",
    f'<iframe srcdoc="<script>parent.{RUN}</script>"></iframe>',
]
ALL = " ".join(PAYLOADS)
SHORT = f"<img src=x onerror={MARK}()>"
SQL_PROBES = [
    "' OR '1'='1",
    "1 OR 1=1",
    "1; DROP TABLE annotation_item; --",
    "') OR ('1'='1",
    "%' OR 1=1 --",
    '" OR ""="',
    "1 UNION SELECT username, password FROM auth_user --",
    "1' AND pg_sleep(5) --",
    "\\'; DELETE FROM annotation_annotation; --",
]
# Payload markup as it would arrive unescaped in HTML.
ACTIVE = re.compile(
    r"<script>window\.xssBallot|<img src=x onerror|<svg onload|<iframe srcdoc|"
    r"href=[\"']?javascript:",
    re.IGNORECASE,
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

DOM_SCAN = """() => {
  const found = [];
  for (const el of document.querySelectorAll('*')) {
    if (el.tagName === 'SCRIPT' && !/json/.test(el.type || '') && el.textContent.includes('MARK')) {
      found.push('inline <script> with the payload');
    }
    for (const attr of el.attributes) {
      const value = attr.value || '';
      if (attr.name.startsWith('on') && value.includes('MARK')) {
        found.push(`${el.tagName.toLowerCase()} ${attr.name}=`);
      }
      if (['href', 'src', 'action', 'formaction'].includes(attr.name) && /^\\s*javascript:/i.test(value)) {
        found.push(`${el.tagName.toLowerCase()} ${attr.name}=javascript:`);
      }
      if (attr.name === 'srcdoc' && value.includes('MARK')) found.push('iframe srcdoc');
    }
  }
  return found;
}""".replace("MARK", MARK)
WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI || ''}`.trim());
});
"""


def _seed(world, tag: str) -> dict[str, Any]:
    """The project full of payloads; returns the rows behind its path parameters."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from annotation.models import (
        AnnotatorMessage,
        AnnotatorProfile,
        Item,
        Membership,
        Project,
        Question,
        Response,
        Role,
    )
    from curation.models import ExplanationFeature, Job, Judge, ReviewEntry, Webhook
    from tests.factories import make_questions
    from tests.security.world import world_rows

    users = get_user_model().objects
    admin = users.get(id=world.principals["admin"].user_id)
    annotator = users.get(id=world.principals["annotator"].user_id)
    project = Project.objects.create(
        name=f"{SHORT} {tag}"[:100], instructions=ALL, created_by=admin, overlap=2
    )
    Membership.objects.create(user=admin, project=project, role=Role.ADMIN)
    Membership.objects.create(user=annotator, project=project, role=Role.ANNOTATOR)
    make_questions(project)
    for question in Question.objects.filter(project=project):
        question.prompt = ALL[: Question._meta.get_field("prompt").max_length]
        config = dict(question.config or {})
        if "aspects" in config:
            config["aspects"] = [SHORT, *config["aspects"][1:]]
        if "categories" in config:
            config["categories"] = [SHORT, *config["categories"][1:]]
        question.config = config
        question.save()
    rows = world_rows(project=project, admin=admin, annotator=annotator, tag=tag)
    for item in Item.objects.filter(project=project):
        item.conversation = [
            {"role": "system", "content": ALL},
            {"role": "user", "content": ALL},
        ]
        item.metadata = {SHORT: ALL, "source": ALL}
        item.tags = [SHORT, "plain"]
        item.title = SHORT
        item.save()
    for response in Response.objects.filter(item__project=project):
        response.text = ALL
        response.model_name = SHORT[:100]
        response.metadata = {"note": ALL}
        response.save()
    profile, _ = AnnotatorProfile.objects.get_or_create(user=admin)
    profile.self_description = ALL
    profile.consented_at = profile.consented_at or timezone.now()
    profile.expertise = [SHORT]
    profile.languages = [{"language": SHORT, "proficiency": "native"}]
    profile.save()
    # Consented, so the labeling page shows the item instead of the onboarding form.
    theirs, _ = AnnotatorProfile.objects.get_or_create(user=annotator)
    theirs.consented_at = theirs.consented_at or timezone.now()
    theirs.save()
    Judge.objects.filter(project=project).update(
        name=SHORT, model=SHORT, prompts={"system": ALL, "user": ALL}
    )
    Webhook.objects.filter(project=project).update(
        description=ALL[:200], url=f"https://hooks.example.invalid/{SHORT}"
    )
    Job.objects.filter(project=project).update(message=ALL[:200], error=ALL, params={"note": ALL})
    ReviewEntry.objects.filter(item__project=project).update(reason=ALL[:200])
    AnnotatorMessage.objects.filter(project=project).update(body=ALL)
    ExplanationFeature.objects.filter(explanation__project=project).update(
        name=SHORT, proposed_name=SHORT, ngrams_high=[{"ngram": ALL, "z": 1}]
    )
    return rows


def _import(client: Client, project_id: int) -> int:
    """Items with payloads through the import API (the path an import takes); its status."""
    lines = [
        {
            "external_id": f"xss-{n}",
            "conversation": [{"role": "user", "content": payload}],
            "responses": [payload, f"plain {n}"],
            "metadata": {"note": payload},
            "tags": [SHORT],
        }
        for n, payload in enumerate(PAYLOADS)
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines)
    answer = client.request(
        "POST",
        f"/api/v1/projects/{project_id}/import/?format=native",
        data=body.encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    return answer.status_code


def _csp_problem(header: str | None) -> str | None:
    if not header:
        return "no Content-Security-Policy"
    directives = {
        part.strip().split(" ", 1)[0]: part.strip() for part in header.split(";") if part.strip()
    }
    script = directives.get("script-src") or directives.get("default-src")
    if not script:
        return "no script-src or default-src"
    allowed = script.split()[1:]
    for word in ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"):
        if word in allowed:
            return f"script-src allows {word}"
    return None


def _inspect(page) -> tuple[bool, list[str], list[str]]:
    """The window flag, payload markup in the DOM and CSP violations, once the page
    stopped navigating (some pages move on by themselves, as the labeling page does)."""
    for _ in range(3):
        try:
            return (
                page.evaluate(f"() => Boolean(window.{MARK})"),
                page.evaluate(DOM_SCAN),
                page.evaluate("() => window.__cspViolations || []"),
            )
        except Exception as exc:
            if "context was destroyed" not in str(exc):
                raise
            page.wait_for_load_state("load")
    raise RuntimeError(f"{page.url} kept navigating")


@contextmanager
def _chromium(ctx: Context) -> Iterator[Any]:
    """``ctx.options["browser"]`` when the caller runs one (a test process: Playwright's sync
    API allows one instance per thread), else a Chromium of our own."""
    if ctx.options.get("browser") is not None:
        yield ctx.options["browser"]
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def _browse(ctx: Context, visits: list[tuple[str, str]]) -> tuple[Figure, Figure]:
    """Open each (session cookie, path) in Chromium, one browser context per session."""
    xss_tried = xss_held = xss_lost = 0
    csp_tried = csp_held = csp_lost = 0
    xss_failures: list[str] = []
    csp_failures: list[str] = []
    dialogs: list[str] = []
    shown = 0
    with _chromium(ctx) as browser:
        pages: dict[str, Any] = {}
        for session_cookie, path in visits:
            if session_cookie not in pages:
                context = browser.new_context(base_url=ctx.base_url)
                context.add_cookies(
                    [{"name": "sessionid", "value": session_cookie, "url": ctx.base_url}]
                )
                context.add_init_script(WATCH)
                pages[session_cookie] = context.new_page()
                pages[session_cookie].set_default_timeout(15_000)
                pages[session_cookie].on(
                    "dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss())
                )
            page = pages[session_cookie]
            before = len(dialogs)
            try:
                response = page.goto(path, wait_until="load")
                page.wait_for_load_state("networkidle", timeout=5_000)
            except Exception as exc:  # a page that hangs is reported, the rest still run
                if "networkidle" not in str(exc) and "Timeout" not in str(exc):
                    xss_failures.append(f"{path}: {type(exc).__name__}: {str(exc)[:120]}")
                response = None
            status = response.status if response else 0
            flag, injected, violations = _inspect(page)
            # Evidence the payloads reached the page (as text, which is what must happen).
            with suppress(Exception):
                shown += bool(page.evaluate(f"() => document.body.innerText.includes('{MARK}')"))
            xss_tried += 1
            ran = len(dialogs) - before
            if ran or flag or injected:
                xss_lost += ran + int(flag) + len(injected)
                xss_failures.append(
                    f"{path} ({status}): {ran} dialogs, flag {flag}, markup {injected[:3]}"
                )
            else:
                xss_held += 1
            if response is not None and "text/html" in (response.headers.get("content-type") or ""):
                csp_tried += 1
                problem = _csp_problem(response.headers.get("content-security-policy"))
                if problem or violations:
                    csp_lost += len(violations)
                    csp_failures.append(f"{path}: {problem or ''} {violations[:3]}".strip())
                else:
                    csp_held += 1
        for page in pages.values():
            page.context.close()
    xss = Figure(
        SECTION,
        "stored XSS",
        tried=xss_tried,
        held=xss_held,
        lost=xss_lost,
        detail=f"{len(PAYLOADS)} payloads in every stored text, {xss_tried} pages in Chromium, "
        f"{shown} showing them as text",
        metrics={"dialogs": len(dialogs), "pages_showing_payloads": shown},
        failures=xss_failures[:8],
    )
    csp = Figure(
        SECTION,
        "Content-Security-Policy",
        tried=csp_tried,
        held=csp_held,
        lost=csp_lost,
        detail="every HTML page: script-src without unsafe-inline/eval, no violations",
        failures=csp_failures[:8],
    )
    return xss, csp


def _formulas() -> Figure:
    """Every CSV writer, fed cells that start like formulas."""
    from curation.routing_report import ReportRow, routing_report_write

    hostile = [f'{start}HYPERLINK("http://evil.invalid","x")' for start in FORMULA_STARTS]
    rows = [
        ReportRow(
            dataset=value,
            judge=value,
            strategy="gain",
            budget=0.25,
            items=10,
            label_accuracy=0.5,
            reward_accuracy=None,
        )
        for value in hostile
    ]
    tried = held = 0
    failures = []
    with tempfile.TemporaryDirectory() as folder:
        paths = routing_report_write(rows, Path(folder))
        with paths["csv"].open(newline="", encoding="utf-8") as handle:
            for record in list(csv.reader(handle))[1:]:
                for cell in record[:2]:
                    tried += 1
                    if cell.startswith(FORMULA_STARTS):
                        failures.append(f"routing_report.csv cell {cell[:30]!r}")
                    else:
                        held += 1
    return Figure(
        SECTION,
        "CSV formula injection",
        tried=tried,
        held=held,
        lost=tried - held,
        detail="routing_report.csv (the one CSV Ballot writes); cells starting = + - @ tab CR",
        failures=failures[:5],
    )


def _sql(ctx: Context) -> Figure:
    world = ctx.world
    ops = [op for op in operations(fetch_schema(ctx.base_url)) if op.method == "GET" and op.scoped]
    api_names = sorted({name for op in ops if op.is_api for name in op.query})
    probes = SQL_PROBES[:3] if ctx.quick else SQL_PROBES
    client = clients(ctx.base_url, world)["admin"]
    mark = markers(world)
    tried = held = lost = 0
    failures: list[str] = []
    before = ctx.fingerprint()
    targets = [op for op in ops if op.query or not op.is_api]
    if ctx.quick:
        targets = targets[:6]
    for op in targets:
        names = [n for n in (op.query if op.is_api else api_names) if n not in ("cursor",)]
        path = fill(op.path, world.rows_a)
        for probe in probes:
            tried += 1
            answer = client.request(
                "GET", path, page=not op.is_api, params=dict.fromkeys(names, probe)
            )
            leaked = answer.ok and mark.found(answer.text, world.project_b)
            if answer.status_code >= 500 or leaked:
                lost += 1
                failures.append(f"{path} {probe!r} -> {answer.status_code} {leaked or ''}")
            else:
                held += 1
    after = ctx.fingerprint()
    changed = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
    tried += 1
    if changed:
        lost += len(changed)
        failures.append(f"tables changed: {changed}")
    else:
        held += 1
    return Figure(
        SECTION,
        "SQL injection in filters",
        tried=tried,
        held=held,
        lost=lost,
        detail=f"{len(probes)} probes x {len(targets)} routes (every filter at once); "
        f"tables changed: {', '.join(changed) or 'none'}",
        failures=failures[:5],
    )


def run(ctx: Context) -> list[Figure]:
    started = time.monotonic()
    signed_in = clients(ctx.base_url, ctx.world)
    admin = signed_in["admin"]
    rows = _seed(ctx.world, tag=f"xss{int(time.time())}")
    imported = _import(admin, rows["project_id"])
    page_ops = [
        op
        for op in operations(fetch_schema(ctx.base_url))
        if not op.is_api and op.method == "GET" and op.name not in ("login", "healthz")
    ]
    # The pages that show something: a GET that answers HTML (POST-only routes answer 405).
    # Their HTML is also read as sent: payload markup in it is unescaped output even
    # where no browser would run it.
    pages, raw_problems = [], []
    for path in sorted({fill(op.path, rows) for op in page_ops}):
        answer = admin.request("GET", path, page=True)
        if answer.status_code == 200 and "text/html" in answer.headers.get("Content-Type", ""):
            pages.append(path)
            raw_problems += [f"{path} sends {m!r}" for m in ACTIVE.findall(answer.text)]
    project_id = rows["project_id"]
    for path, form in (
        ("/projects/instructions-preview/", {"instructions": ALL}),
        ("/projects/label-preview/", {"project": project_id, "name": SHORT, "instructions": ALL}),
    ):
        answer = admin.request("POST", path, page=True, data=form)
        text = answer.text
        if "json" in answer.headers.get("Content-Type", ""):
            text = json.dumps(answer.json(), ensure_ascii=False)
        raw_problems += [f"POST {path} sends {m!r}" for m in ACTIVE.findall(text)]
        if answer.status_code >= 500:
            raw_problems.append(f"POST {path} -> {answer.status_code}")
    if ctx.quick:
        keep = ("/label/", "/settings/", "/items/", "/judges/", "/profile/")
        pages = [p for p in pages if any(k in p for k in keep)][:6]
    if "max_pages" in ctx.options:  # a test of the check that needs no browsing
        pages = pages[: int(ctx.options["max_pages"])]
    # Imported items are shown too: their detail pages.
    from annotation.models import Item

    for item_id in Item.objects.filter(
        project_id=rows["project_id"], external_id__startswith="xss-"
    ).values_list("id", flat=True)[: 1 if ctx.quick else 3]:
        pages.append(f"/projects/{rows['project_id']}/items/{item_id}/")
    # The annotator's side too: the home page (instructions, messages) and the labeling page.
    annotator = signed_in["annotator"].cookies["sessionid"]
    visits = [(admin.cookies["sessionid"], path) for path in pages]
    visits += [(annotator, "/"), (annotator, f"/projects/{project_id}/label/")]
    xss, csp = _browse(ctx, visits)
    xss.metrics["import_status"] = imported
    xss.tried += len(pages) + 2
    xss.held += len(pages) + 2 - len({p.split(" sends ")[0] for p in raw_problems})
    xss.lost += len(raw_problems)
    xss.failures[:0] = raw_problems[:5]
    if imported >= 300:
        xss.failures.append(f"importing the payloads answered {imported}")
        xss.tried += 1
    xss.detail += f" ({time.monotonic() - started:.0f} s)"
    return [xss, csp, _formulas(), _sql(ctx)]
