"""Shared permission tests: every endpoint inherits the alice / bob / charlie matrix.

A test class sets ``method``, ``url(world)``, optionally ``payload(world)``,
which user counts as the member who may call it (``member``) and what status
that member gets. The mixin then checks anonymous (401/403), outsider (404)
and member.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from annotation.models import Assignment, Item
from annotation.services import assignment_claim_next


@dataclass
class World:
    project: object
    alice: object
    bob: object
    charlie: object
    item: Item
    assignment: Assignment
    api: object


@pytest.fixture
def world(project, items, alice, bob, charlie, api) -> World:
    assignment = assignment_claim_next(project=project, annotator=bob)
    return World(project, alice, bob, charlie, items[0], assignment, api)


class ScopedEndpointTests:
    method = "get"
    member = "alice"
    member_status = 200
    outsider_status = 404

    def url(self, world: World) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def payload(self, world: World) -> dict | None:
        return None

    def call(self, client: APIClient, world: World, **extra):
        kwargs = {"format": "json"}
        data = self.payload(world)
        if data is not None:
            kwargs["data"] = data
        return getattr(client, self.method)(self.url(world), **kwargs, **extra)

    def test_anonymous_is_refused(self, world):
        response = self.call(APIClient(), world)
        assert response.status_code in (401, 403), response.content

    def test_outsider_gets_404(self, world):
        response = self.call(world.api(world.charlie), world)
        assert response.status_code == self.outsider_status, response.content

    def test_member_succeeds(self, world):
        response = self.call(world.api(getattr(world, self.member)), world)
        assert response.status_code == self.member_status, response.content
