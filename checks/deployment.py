"""Deployment (issue 15, point 7): the production settings, the image, the dependencies.

- ``manage.py check --deploy --fail-level WARNING`` passes with the production settings
  as deployed (the stack's, with HTTPS redirect and HSTS at their production defaults);
- gunicorn with production settings refuses to start on a weak secret key or hosts
  that are not named, with a message naming the variable;
- the Docker image runs as a non-root user (read from the Dockerfile: there is no
  Docker daemon on the check machines, so the image is not built here);
- pip-audit finds no known vulnerability in the installed dependencies, or each one is
  listed in ``NOT_APPLICABLE`` with why. When its vulnerability services cannot be
  reached the figure says "not run" (it does not fail the check, nor pass silently).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from checks.core import Context, Figure

REPO_ROOT = Path(__file__).resolve().parent.parent
SECTION = "deployment"
# Known vulnerabilities that do not apply to Ballot: {advisory id: why}. Empty today.
NOT_APPLICABLE: dict[str, str] = {}
# The services pip-audit can ask, in order; the first that audits anything wins.
AUDIT_SERVICES = ("pypi", "osv")


def run(ctx: Context) -> list[Figure]:
    env = production_env(ctx)
    with ThreadPoolExecutor(max_workers=2) as pool:
        audit = pool.submit(figure_pip_audit)
        figures = [figure_check_deploy(env), figure_refusals(env), figure_dockerfile_user()]
        figures.append(audit.result())
    return figures


def production_env(ctx: Context) -> dict[str, str]:
    """The stack's environment with the HTTPS settings at their production defaults
    (the stack switches the redirect off to be reached over plain HTTP)."""
    if ctx.stack is not None:
        env = dict(ctx.stack.env)
    else:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BALLOT_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings.production",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            PYTHONPATH=str(REPO_ROOT),
        )
    for key in ("DJANGO_SECURE_SSL_REDIRECT", "DJANGO_SECURE_HSTS_SECONDS"):
        env.pop(key, None)
    return env


def figure_check_deploy(env: dict[str, str]) -> Figure:
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    held = done.returncode == 0 and "no issues" in done.stdout
    issues = re.findall(r"\(([a-z_.]+\.[WE]\d+)\)", done.stdout + done.stderr)
    return Figure(
        SECTION,
        "check --deploy, production settings",
        1,
        int(held),
        detail="no issues" if held else f"exit {done.returncode}: {', '.join(issues) or '?'}",
        failures=[] if held else [(done.stdout + done.stderr)[-1500:]],
    )


def weak_settings() -> dict[str, tuple[dict[str, str | None], str]]:
    """{case: (environment changes, what the refusal must name)}; None unsets."""
    strong = secrets.token_urlsafe(50)
    return {
        "no secret key": ({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY is not set"),
        "placeholder key": ({"DJANGO_SECRET_KEY": "change-me"}, "well-known placeholder"),
        "django-insecure key": (
            {"DJANGO_SECRET_KEY": "django-insecure-" + secrets.token_urlsafe(50)},
            "well-known placeholder",
        ),
        "short key": ({"DJANGO_SECRET_KEY": secrets.token_urlsafe(20)}, "at least 50"),
        "repetitive key": ({"DJANGO_SECRET_KEY": "ab" * 40}, "low entropy"),
        "hosts not set": (
            {"DJANGO_SECRET_KEY": strong, "DJANGO_ALLOWED_HOSTS": None},
            "DJANGO_ALLOWED_HOSTS is not set",
        ),
        "hosts empty": (
            {"DJANGO_SECRET_KEY": strong, "DJANGO_ALLOWED_HOSTS": ""},
            "DJANGO_ALLOWED_HOSTS is not set",
        ),
        "any host (*)": (
            {"DJANGO_SECRET_KEY": strong, "DJANGO_ALLOWED_HOSTS": "example.org,*"},
            "DJANGO_ALLOWED_HOSTS contains '*'",
        ),
    }


def refusal(env: dict[str, str], changes: dict[str, str | None], must_say: str) -> str | None:
    """Start gunicorn with production settings changed by ``changes``; ``None`` when it
    refused to start and said ``must_say``, else why not."""
    env = {**env, "WEB_CONCURRENCY": "1", "GUNICORN_BIND": "127.0.0.1:0"}
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    try:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("gunicorn")), "-c", "config/gunicorn.py"]
            + ["config.wsgi"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return "gunicorn started and served"
    if done.returncode == 0:
        return "gunicorn exited 0"
    if must_say not in done.stderr:
        return f"exit {done.returncode} without saying {must_say!r}: {done.stderr[-300:]}"
    return None


def figure_refusals(env: dict[str, str]) -> Figure:
    cases = weak_settings()
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = dict(
            zip(
                cases,
                pool.map(lambda case: refusal(env, *cases[case]), cases),
                strict=True,
            )
        )
    failures = [f"{case}: {why}" for case, why in outcomes.items() if why]
    return Figure(
        SECTION,
        "production refuses weak key / unnamed hosts",
        len(cases),
        len(cases) - len(failures),
        detail=f"gunicorn refused {len(cases) - len(failures)} of {len(cases)} "
        "(missing/placeholder/short/repetitive key; hosts unset, empty, *)",
        failures=failures,
    )


def dockerfile_user(text: str) -> tuple[str | None, str]:
    """The user the final stage of ``text`` (a Dockerfile) runs as, and a problem or ""."""
    stages = re.split(r"(?im)^\s*FROM\s", text)
    final = stages[-1]
    users = re.findall(r"(?im)^\s*USER\s+(\S+)", final)
    if not users:
        return None, "the final stage has no USER: the image runs as root"
    user = users[-1].split(":")[0]
    if user in {"root", "0"}:
        return user, f"the final stage ends as USER {user}"
    return user, ""


def figure_dockerfile_user() -> Figure:
    user, problem = dockerfile_user((REPO_ROOT / "Dockerfile").read_text())
    return Figure(
        SECTION,
        "Docker image runs as non-root",
        1,
        int(not problem),
        detail=(problem or f"USER {user} (read from the Dockerfile; no Docker daemon here)"),
        failures=[problem] if problem else [],
    )


def pip_audit(service: str) -> dict[str, Any]:
    """pip-audit over this environment's installed packages, as its JSON."""
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("pip-audit")),
            *("--vulnerability-service", service, "--format", "json", "--local"),
            *("--progress-spinner", "off", "--timeout", "15"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    try:
        payload = json.loads(done.stdout)
    except json.JSONDecodeError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"dependencies": [], "error": last[:300]}
    return payload


def audit_summary(payload: dict[str, Any]) -> dict[str, Any]:
    """Counts from pip-audit's JSON: audited, skipped, vulnerabilities (applying or not)."""
    deps = payload.get("dependencies", [])
    audited = [d for d in deps if "skip_reason" not in d]
    applying: list[str] = []
    waived: list[str] = []
    for dep in audited:
        for vuln in dep.get("vulns", []):
            label = f"{dep['name']} {dep['version']}: {vuln['id']}"
            why = next(
                (
                    NOT_APPLICABLE[i]
                    for i in [vuln["id"], *vuln.get("aliases", [])]
                    if i in NOT_APPLICABLE
                ),
                None,
            )
            if why is None:
                fixed = ", ".join(vuln.get("fix_versions") or ["no fix yet"])
                applying.append(f"{label} (fixed in {fixed})")
            else:
                waived.append(f"{label}: {why}")
    return {
        "dependencies": len(deps),
        "audited": len(audited),
        "skipped": len(deps) - len(audited),
        "applying": applying,
        "waived": waived,
        "error": payload.get("error", ""),
    }


def _first_words(error: str) -> str:
    # "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.osv.dev', ...": the class.
    return error.split(":")[0].rsplit(".", 1)[-1]


def figure_pip_audit() -> Figure:
    name = "pip-audit: known vulnerabilities"
    tried_services: dict[str, dict[str, Any]] = {}
    for service in AUDIT_SERVICES:
        try:
            summary = audit_summary(pip_audit(service))
        except (OSError, subprocess.TimeoutExpired) as exc:
            summary = {"dependencies": 0, "audited": 0, "error": str(exc)[:300]}
        tried_services[service] = summary
        if summary["audited"]:
            applying = summary["applying"]
            return Figure(
                SECTION,
                name,
                summary["audited"],
                summary["audited"] - len(applying),
                lost=len(applying),
                detail=f"{summary['audited']} packages audited via {service}, "
                f"{len(applying)} vulnerable, {len(summary['waived'])} not applicable",
                metrics={"services": tried_services},
                failures=applying + [f"not applicable: {w}" for w in summary["waived"]],
            )
    why = "; ".join(
        f"{service}: "
        + (_first_words(s["error"]) if s.get("error") else f"0 of {s['dependencies']} found")
        for service, s in tried_services.items()
    )
    # Not run: zero tried, so it does not fail CI, and the table shows "not run".
    return Figure(
        SECTION,
        name,
        0,
        0,
        detail=f"NOT RUN: no vulnerability service reachable from here ({why})",
        metrics={"services": tried_services},
    )
