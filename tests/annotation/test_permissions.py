"""The alice / bob / charlie matrix, for every endpoint (inherited from ScopedEndpointTests)."""

from __future__ import annotations

from tests.api_mixins import ScopedEndpointTests


class TestProjectDetail(ScopedEndpointTests):
    member = "bob"

    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/"


class TestProjectPatch(ScopedEndpointTests):
    method = "patch"

    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/"

    def payload(self, w):
        return {"instructions": "Be careful."}


class TestProjectDelete(ScopedEndpointTests):
    method = "delete"
    member_status = 204

    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/"


class TestQuestionList(ScopedEndpointTests):
    member = "bob"

    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/questions/"


class TestQuestionCreate(ScopedEndpointTests):
    method = "post"
    member_status = 201

    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/questions/"

    def payload(self, w):
        return {
            "kind": "rating",
            "name": "clarity",
            "config": {"aspects": ["clarity"], "scale": {"min": 1, "max": 7}},
        }


class TestQuestionDetail(ScopedEndpointTests):
    member = "bob"

    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/questions/{w.project.questions.first().id}/"


class TestQuestionPatch(ScopedEndpointTests):
    method = "patch"

    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/questions/{w.project.questions.first().id}/"

    def payload(self, w):
        return {"prompt": "Which is better?"}


class TestItemList(ScopedEndpointTests):
    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/items/"


class TestItemCreate(ScopedEndpointTests):
    method = "post"
    member_status = 201

    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/items/"

    def payload(self, w):
        return {"external_id": "new-1", "prompt": "Hi", "responses": ["Hello", "Hey"]}


class TestItemDetail(ScopedEndpointTests):
    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/items/{w.item.id}/"


class TestItemAnnotations(ScopedEndpointTests):
    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/items/{w.item.id}/annotations/"


class TestImport(ScopedEndpointTests):
    method = "post"
    member_status = 201

    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/import/?format=trl"

    def call(self, client, w, **extra):
        body = b'{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}\n'
        return client.post(self.url(w), data=body, content_type="application/x-ndjson")


class TestAnnotationList(ScopedEndpointTests):
    member = "bob"

    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/annotations/"


class TestNext(ScopedEndpointTests):
    member = "bob"

    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/next/"


class TestMembershipList(ScopedEndpointTests):
    member = "bob"

    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/memberships/"


class TestMembershipCreate(ScopedEndpointTests):
    method = "post"
    member_status = 201

    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/memberships/"

    def payload(self, w):
        from tests.factories import UserFactory

        UserFactory(username="dora")
        return {"username": "dora", "role": "curator"}


class TestMembershipPatch(ScopedEndpointTests):
    method = "patch"

    def url(self, w):
        membership = w.project.memberships.get(user=w.bob)
        return f"/api/v1/projects/{w.project.id}/memberships/{membership.id}/"

    def payload(self, w):
        return {"role": "curator"}


class TestProjectProfiles(ScopedEndpointTests):
    def url(self, w):
        return f"/api/v1/projects/{w.project.id}/profiles/"


class TestAssignmentDetail(ScopedEndpointTests):
    member = "bob"

    def url(self, w):
        return f"/api/v1/assignments/{w.assignment.id}/"


class TestAssignmentSkip(ScopedEndpointTests):
    method = "post"
    member = "bob"

    def url(self, w):
        return f"/api/v1/assignments/{w.assignment.id}/skip/"


class TestAssignmentSubmit(ScopedEndpointTests):
    method = "post"
    member = "bob"
    member_status = 201

    def url(self, w):
        return f"/api/v1/assignments/{w.assignment.id}/submit/"

    def payload(self, w):
        r = list(w.assignment.item.responses.values_list("id", flat=True))
        return {
            "answers": [
                {
                    "question": "preference",
                    "chosen": r[0],
                    "rejected": r[1],
                    "tie": False,
                    "strength": 1,
                },
                {"question": "ranking", "ranking": r},
                {
                    "question": "aspects",
                    "ratings": [
                        {"response": x, "aspect": a, "value": 3}
                        for x in r
                        for a in ("helpfulness", "harmlessness", "honesty")
                    ],
                },
            ]
        }


def test_project_list_shows_only_my_projects(world):
    mine = world.api(world.bob).get("/api/v1/projects/").json()["results"]
    assert [p["id"] for p in mine] == [world.project.id]
    assert world.api(world.charlie).get("/api/v1/projects/").json()["results"] == []


def test_an_annotator_cannot_administer_the_project(world):
    response = world.api(world.bob).patch(
        f"/api/v1/projects/{world.project.id}/", {"name": "mine now"}, format="json"
    )
    assert response.status_code == 403
    assert (
        world.api(world.bob).get(f"/api/v1/projects/{world.project.id}/items/").status_code == 403
    )


def test_an_annotator_sees_only_their_own_annotations(world, project):
    from annotation.models import Annotation, Source

    Annotation.objects.create(
        project=project, item=world.item, annotator=world.alice, source=Source.HUMAN
    )
    response = world.api(world.bob).get(f"/api/v1/projects/{project.id}/annotations/")
    assert response.json()["results"] == []
    assert (
        len(
            world.api(world.alice)
            .get(f"/api/v1/projects/{project.id}/annotations/")
            .json()["results"]
        )
        == 1
    )


def test_tokens_are_stored_hashed_and_work(world, alice):
    from annotation.models import ApiToken

    alice.set_password("secret-pw-123")
    alice.save()
    from rest_framework.test import APIClient

    response = APIClient().post(
        "/api/v1/auth/token/", {"username": "alice", "password": "secret-pw-123"}, format="json"
    )
    assert response.status_code == 201
    raw = response.json()["token"]
    assert not ApiToken.objects.filter(key_hash=raw).exists()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    assert client.get("/api/v1/projects/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token wrong")
    assert client.get("/api/v1/projects/").status_code == 401


def test_session_auth_requires_csrf(world, alice):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get("/api/v1/projects/").status_code == 200
    response = client.post("/api/v1/projects/", {"name": "x"}, content_type="application/json")
    assert response.status_code == 403


def test_the_openapi_schema_and_docs_are_served(db):
    from django.test import Client

    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert b"/api/v1/assignments/{assignment_id}/submit/" in schema.content
    assert Client().get("/api/docs/").status_code == 200
