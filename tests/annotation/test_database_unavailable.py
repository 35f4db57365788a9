"""PostgreSQL restarting or out of reach: the API answers a JSON 503 with Retry-After, so
clients retry (with their Idempotency-Key), never an HTML 500. ``make check`` restarts
the real database under a burst of submissions; these pin the mapping itself."""

from __future__ import annotations

import pytest
from django.db import InterfaceError, OperationalError

from annotation import selectors

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("server closed the connection unexpectedly"),
        InterfaceError("connection already closed"),
    ],
    ids=["operational", "interface"],
)
def test_a_database_out_of_reach_in_an_api_view_is_a_json_503_to_retry(
    api, alice, monkeypatch, error
):
    def down(**kwargs):
        raise error

    monkeypatch.setattr(selectors, "project_list_for", down)
    response = api(alice).get("/api/v1/projects/")
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "unavailable"


def test_a_database_out_of_reach_outside_the_api_views_is_a_503_too(client, alice, monkeypatch):
    from frontend import views

    def down(**kwargs):
        raise OperationalError("the database system is shutting down")

    monkeypatch.setattr(views.selectors, "project_list_for", down)
    client.raise_request_exception = False
    client.force_login(alice)
    response = client.get("/")
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
