"""Every answer carries a Content-Security-Policy that lets no inline script or eval run."""

from __future__ import annotations

import re

import pytest
from django.test import Client


def _directives(header: str) -> dict[str, list[str]]:
    parts = [part.split() for part in header.split(";") if part.strip()]
    return {words[0]: words[1:] for words in parts}


@pytest.mark.parametrize("path", ["/login/", "/healthz", "/api/v1/projects/", "/no-such-page/"])
def test_every_answer_allows_scripts_from_the_site_alone(db, path):
    policy = _directives(Client().get(path)["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]


def test_the_api_docs_start_swagger_ui_from_a_file_not_an_inline_script(db):
    html = Client().get("/api/docs/").content.decode()
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>\s*\S", html)
    assert inline == [], inline
    assert Client().get("/api/docs/?script=").status_code == 200


def test_a_page_the_site_may_frame_keeps_that_in_the_policy(admin_client):
    answer = admin_client.post("/projects/label-preview/", {"name": "P", "instructions": "Hi"})
    assert answer["X-Frame-Options"] == "SAMEORIGIN"
    assert _directives(answer["Content-Security-Policy"])["frame-ancestors"] == ["'self'"]
