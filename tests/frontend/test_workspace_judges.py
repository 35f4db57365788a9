"""The judges page without a browser: who may see and change what, forms, the test panel."""

from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import Role
from curation.judges import services
from curation.models import Job, JobKind, Judge
from tests.factories import ItemFactory, MembershipFactory, UserFactory
from tests.judge_stub import JudgeStub

pytestmark = pytest.mark.django_db

SECRET = "sk-page-secret-value-123"


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.BALLOT_OUTBOUND_ALLOW_PRIVATE = True
    settings.BALLOT_JUDGE_BACKOFF_SECONDS = 0.01
    settings.BALLOT_JOBS_IN_THREAD = False


@pytest.fixture
def stub():
    server = JudgeStub().start()
    yield server
    server.stop()


@pytest.fixture
def dana(project):
    user = UserFactory(username="dana")
    MembershipFactory(user=user, project=project, role=Role.CURATOR)
    return user


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(project, suffix=""):
    return f"/projects/{project.id}/judges/{suffix}"


def test_curators_see_the_page_annotators_and_outsiders_do_not(project, dana, bob, charlie):
    assert client_for(dana).get(url(project)).status_code == 200
    assert client_for(bob).get(url(project)).status_code == 403
    assert client_for(charlie).get(url(project)).status_code == 404
    assert (
        f'href="{url(project)}"'
        in client_for(dana).get(f"/projects/{project.id}/quality/").content.decode()
    )


def test_an_admin_creates_a_judge_and_the_key_never_comes_back(project, alice, stub):
    client = client_for(alice)
    response = client.post(
        url(project),
        {
            "name": "gpt",
            "backend": "openai",
            "base_url": stub.base_url,
            "model": "m",
            "api_key": SECRET,
            "on_disagreement": "tie",
            "concurrency": "2",
            "max_requests_per_job": "",
            "timeout_seconds": "5",
        },
    )
    assert response.status_code == 302
    judge = Judge.objects.get(name="gpt")
    assert judge.concurrency == 2 and judge.max_requests_per_job is None
    page = client.get(url(project)).content.decode()
    assert "stored (encrypted)" in page and SECRET not in page


def test_bad_settings_come_back_with_the_field_named(project, alice):
    response = client_for(alice).post(
        url(project), {"name": "x", "backend": "openai", "base_url": "", "model": "m"}
    )
    assert response.status_code == 400
    assert 'data-error-for="base_url"' in response.content.decode()


def test_curators_cannot_create_or_change_judges(project, dana, stub):
    judge = services.judge_create(
        project=project,
        user=None,
        data={"name": "j", "backend": "openai", "base_url": stub.base_url, "model": "m"},
    )
    assert (
        client_for(dana).post(url(project), {"name": "y", "backend": "reward"}).status_code == 403
    )
    edit = client_for(dana).post(url(project, f"{judge.id}/edit/"), {"model": "other"})
    assert edit.status_code == 403


def test_testing_a_judge_shows_both_orders_and_the_raw_output(project, dana, stub):
    item = ItemFactory(project=project, responses=["weak one.", "GOOD one."])
    judge = services.judge_create(
        project=project,
        user=None,
        data={"name": "j", "backend": "openai", "base_url": stub.base_url, "model": "m"},
    )
    response = client_for(dana).post(url(project, f"{judge.id}/test/"), {"item": item.id})
    page = response.content.decode()
    assert response.status_code == 200
    assert "as given" in page and "swapped" in page
    assert '<pre class="raw-output">B</pre>' in page and '<pre class="raw-output">A</pre>' in page
    missing = client_for(dana).post(url(project, f"{judge.id}/test/"), {"item": 999999})
    assert missing.status_code == 404 and 'data-error-for="item"' in missing.content.decode()


def test_label_every_item_enqueues_a_label_ai_job_and_judges_nothing_in_the_request(
    project, dana, stub, django_capture_on_commit_callbacks
):
    ItemFactory(project=project, responses=["weak one.", "GOOD one."])
    judge = services.judge_create(
        project=project,
        user=None,
        data={"name": "j", "backend": "openai", "base_url": stub.base_url, "model": "m"},
    )
    # Jobs run inline in tests (BALLOT_JOBS_IN_THREAD off); this form still only enqueues:
    # the job starts after the commit, in a thread (or on a worker with a broker).
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for(dana).post(url(project, f"{judge.id}/label/"))
    job = Job.objects.get(kind=JobKind.LABEL_AI)
    assert response.status_code == 302 and response["Location"].endswith(f"/jobs/{job.id}/")
    assert job.params["judge"] == judge.id
    assert job.status == "queued" and len(callbacks) == 1
    assert stub.requests == []


def test_an_admin_edits_the_prompt_and_the_default_text_means_the_default(project, alice, stub):
    judge = services.judge_create(
        project=project,
        user=None,
        data={"name": "j", "backend": "openai", "base_url": stub.base_url, "model": "m"},
    )
    from models_gpu.judges import DEFAULT_PROMPTS

    client = client_for(alice)
    base = {"model": "m", "base_url": stub.base_url, "on_disagreement": "tie", "concurrency": "4"}
    template = "{prompt}\n[Response A]\n{response_a}\n\n[Response B]\n{response_b}\n\nA or B?"
    assert (
        client.post(
            url(project, f"{judge.id}/edit/"), {**base, "pairwise_prompt": template}
        ).status_code
        == 302
    )
    judge.refresh_from_db()
    assert judge.prompts == {"pairwise": template}
    default = {**base, "pairwise_prompt": DEFAULT_PROMPTS["pairwise"]}
    assert client.post(url(project, f"{judge.id}/edit/"), default).status_code == 302
    judge.refresh_from_db()
    assert judge.prompts == {}
    bad = client.post(url(project, f"{judge.id}/edit/"), {**base, "pairwise_prompt": "{oops}"})
    assert bad.status_code == 400 and 'data-error-for="prompts.pairwise"' in bad.content.decode()
