"""The deployment check's own parts: the Dockerfile's user, pip-audit's answer read
honestly (an unreachable service is "not run", never a pass), a weak key refused."""

from __future__ import annotations

from checks import deployment
from checks.deployment import audit_summary, dockerfile_user, figure_pip_audit, refusal


def test_the_dockerfile_ends_as_a_non_root_user():
    user, problem = dockerfile_user((deployment.REPO_ROOT / "Dockerfile").read_text())
    assert (user, problem) == ("ballot", "")


def test_a_dockerfile_without_user_or_ending_as_root_is_a_problem():
    assert dockerfile_user("FROM python:3.11\nRUN true\n")[1].endswith("runs as root")
    two_stages = "FROM a AS build\nUSER app\nFROM b\nUSER app\nUSER root\nCMD x\n"
    assert dockerfile_user(two_stages) == ("root", "the final stage ends as USER root")
    assert dockerfile_user("FROM a\nUSER app\nFROM b\nCMD x\n")[1]  # only the build stage had it


def test_a_vulnerability_applies_unless_it_is_listed_with_a_reason(monkeypatch):
    payload = {
        "dependencies": [
            {"name": "ballot", "version": "1", "skip_reason": "not on PyPI"},
            {"name": "django", "version": "5.2", "vulns": []},
            {
                "name": "jinja2",
                "version": "3.0",
                "vulns": [{"id": "GHSA-1", "fix_versions": ["3.1"], "aliases": ["CVE-9"]}],
            },
        ]
    }
    summary = audit_summary(payload)
    assert (summary["audited"], summary["skipped"]) == (2, 1)
    assert summary["applying"] == ["jinja2 3.0: GHSA-1 (fixed in 3.1)"]
    monkeypatch.setitem(deployment.NOT_APPLICABLE, "CVE-9", "only the sandbox, unused")
    summary = audit_summary(payload)
    assert summary["applying"] == []
    assert summary["waived"] == ["jinja2 3.0: GHSA-1: only the sandbox, unused"]


def test_an_audit_that_reached_no_service_is_not_run_rather_than_passed(monkeypatch):
    skipped = {
        "dependencies": [
            {"name": n, "version": "1", "skip_reason": "not found"} for n in ("a", "b")
        ]
    }
    answers = {"pypi": skipped, "osv": {"dependencies": [], "error": "ConnectionError: nope"}}
    monkeypatch.setattr(deployment, "pip_audit", lambda service: answers[service])
    figure = figure_pip_audit()
    assert figure.status == "not run" and figure.tried == 0
    assert figure.detail.startswith("NOT RUN") and "pypi: 0 of 2 found" in figure.detail


def test_an_audit_that_finds_a_vulnerability_fails(monkeypatch):
    found = {
        "dependencies": [
            {"name": "x", "version": "1", "vulns": [{"id": "PYSEC-1", "fix_versions": []}]}
        ]
    }
    monkeypatch.setattr(deployment, "pip_audit", lambda service: found)
    figure = figure_pip_audit()
    assert figure.status == "FAIL" and figure.lost == 1
    assert figure.failures == ["x 1: PYSEC-1 (fixed in no fix yet)"]


def test_gunicorn_with_production_settings_refuses_a_placeholder_key_naming_it():
    env = deployment.production_env(
        type("Ctx", (), {"stack": None})()  # no running stack: a fresh production environment
    )
    assert refusal(env, {"DJANGO_SECRET_KEY": "change-me"}, "well-known placeholder") is None
    # The same check tells a refusal that names the wrong thing from the right one.
    why = refusal(env, {"DJANGO_SECRET_KEY": "change-me"}, "DJANGO_ALLOWED_HOSTS")
    assert why and why.startswith("exit ")
