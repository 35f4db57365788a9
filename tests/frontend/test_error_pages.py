"""Error pages: styled for people, JSON under /api/, and no debug page unless the developer asks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db

SITE_CHROME = '<a class="brand" href="/">'


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_unknown_page_is_a_styled_404_without_the_url_list(bob):
    response = signed_in(bob).get("/no/such/page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert SITE_CHROME in page and "Page not found" in page
    assert "/static/frontend/app.css" in page
    assert "URLconf" not in page and "api/v1/" not in page


def test_a_page_for_curators_is_a_styled_403_saying_why(project, items, bob):
    response = signed_in(bob).get(f"/projects/{project.id}/items/")
    assert response.status_code == 403
    page = response.content.decode()
    assert SITE_CHROME in page and "You cannot open this page" in page
    assert "This page is for the project&#x27;s admins and curators." in page


def test_api_404_and_403_stay_json_in_the_error_shape(api, project, bob):
    missing = api(bob).get("/api/v1/no-such-endpoint/")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "not_found",
        "detail": "Nothing at /api/v1/no-such-endpoint/.",
        "field": None,
        "errors": [],
    }
    forbidden = api(bob).get(f"/api/v1/projects/{project.id}/quality/")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == "forbidden" and forbidden.json()["field"] is None


def test_a_server_error_is_a_styled_500_page_and_json_under_the_api(rf):
    from frontend.views import server_error

    page = server_error(rf.get("/projects/1/label/"))
    assert page.status_code == 500 and SITE_CHROME in page.content.decode()
    api = server_error(rf.get("/api/v1/projects/"))
    assert api.status_code == 500 and json.loads(api.content)["error"] == "server_error"


# The embedded default (`make run`) uses config.settings.local; run it in a fresh
# process so DEBUG and the static-file set-up are what a developer gets.
LOCAL_PROBE = """
import json, django
from django.conf import settings
from django.test import Client
django.setup()
client = Client(HTTP_HOST="127.0.0.1")  # an allowed host, as `make run` serves it
missing = client.get("/no/such/page/")
css = client.get("/static/frontend/app.css")
print(json.dumps({
    "debug": settings.DEBUG,
    "status": missing.status_code,
    "page": missing.content.decode(),
    "css_status": css.status_code,
    "css": b"".join(css.streaming_content).decode() if css.status_code == 200 else "",
}))
"""


def _local(tmp_path: Path, **env_extra: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_DEBUG", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DATABASE_URL": "sqlite:///:memory:",
            "BALLOT_STORAGE_ROOT": str(tmp_path / "storage"),
            **env_extra,
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", LOCAL_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_local_settings_show_a_styled_404_and_still_serve_static_files_with_debug_unset(
    tmp_path,
):
    probe = _local(tmp_path)
    assert probe["debug"] is False
    assert probe["status"] == 404
    assert SITE_CHROME in probe["page"] and "Page not found" in probe["page"]
    assert "URLconf" not in probe["page"] and "api/v1/" not in probe["page"]
    assert probe["css_status"] == 200 and ".topbar" in probe["css"]


def test_local_settings_show_the_debug_page_only_when_asked(tmp_path):
    probe = _local(tmp_path, DJANGO_DEBUG="1")
    assert probe["debug"] is True
    assert probe["status"] == 404 and "URLconf" in probe["page"]


def test_a_form_sent_without_its_csrf_token_gets_the_styled_403_with_advice(bob):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": "bob", "password": "pw"})
    assert response.status_code == 403
    page = response.content.decode()
    assert SITE_CHROME in page and "Reload the page and try again" in page
