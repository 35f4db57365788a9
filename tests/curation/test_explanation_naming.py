"""A judge names features: its requests go through the outbound client, its answers are parsed,
and a name is kept only when the judge's reading of it tracks the feature on held-out pairs."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from curation.explanations.naming import naming_callables, parse_name, parse_rating
from curation.judges import services
from curation.models import ExplanationFeature, Job, JobStatus, Judge
from tests.explanation_world import PHRASE, import_planted
from tests.judge_stub import JudgeStub
from tests.threads import one_thread

SECRET = "sk-naming-secret"


@dataclass
class Namer(JudgeStub):
    """Names every feature "a sincere closing wish" and rates by the planted phrase."""

    def answer_text(self, prompt: str) -> str:
        if prompt.rstrip().endswith("Property:"):
            return 'Property: "A sincere closing wish."'
        found = re.search(r"Response A: (.*)\nResponse B: (.*)\nHow much", prompt, re.S)
        if found is None:
            return "no idea"
        a, b = (PHRASE[:20] in side for side in found.groups())
        return "2" if a and not b else "-2" if b and not a else "0"


@pytest.fixture(autouse=True)
def judge_settings(settings, monkeypatch):
    monkeypatch.delenv("BALLOT_OUTBOUND_ALLOW_PRIVATE", raising=False)
    settings.BALLOT_OUTBOUND_ALLOW_PRIVATE = True
    settings.BALLOT_JUDGE_BACKOFF_SECONDS = 0.01
    settings.BALLOT_JOBS_IN_THREAD = False


@pytest.fixture
def namer():
    server = Namer().start()
    yield server
    server.stop()


def _judge(project, stub) -> Judge:
    return services.judge_create(
        project=project,
        user=None,
        data={
            "name": "namer",
            "backend": "openai",
            "base_url": stub.base_url,
            "model": "namer-1",
            "api_key": SECRET,
            "max_retries": 0,
        },
    )


@pytest.mark.parametrize(
    ("answer", "name"),
    [
        ('Property: "A sincere closing wish."', "A sincere closing wish"),
        ("\n\n  politeness\nmore text", "politeness"),
        ("Name: **code blocks**", "code blocks"),
    ],
)
def test_a_proposed_name_is_the_first_line_without_labels_or_quotes(answer, name):
    assert parse_name(answer) == name


@pytest.mark.parametrize(
    ("answer", "score"), [("2", 2.0), ("A has it: -1.5", -1.5), ("7", 2.0), ("none", 0.0)]
)
def test_a_rating_is_the_first_number_clipped_to_the_scale(answer, score):
    assert parse_rating(answer) == score


def test_the_callables_ask_the_judge_through_the_outbound_client(project, namer):
    propose, rate, budget = naming_callables(_judge(project, namer))

    assert propose([("I hope this helps.", "No.")]) == "A sincere closing wish"
    assert rate("closing wish", f"Yes. {PHRASE}", "No.") == 2.0
    assert rate("closing wish", "No.", f"Yes. {PHRASE}") == -2.0
    assert budget.used == 3 and len(namer.requests) == 3
    # The key travels in the Authorization header only.
    headers = namer.requests[0]["headers"]
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET.encode() not in namer.requests[0]["body"]


def test_a_refused_address_names_nothing_instead_of_failing(project, namer, settings):
    judge = _judge(project, namer)
    settings.BALLOT_OUTBOUND_ALLOW_PRIVATE = False
    propose, rate, _ = naming_callables(judge)

    assert propose([("a", "b")]) == ""
    assert rate("x", "a", "b") == 0.0
    assert namer.requests == []


def test_only_a_chat_judge_can_name_features(project, alice, api):
    local = Judge.objects.create(project=project, name="local", backend="local", model="m")
    response = api(alice).post(
        f"/api/v1/projects/{project.id}/jobs/",
        {"kind": "explain", "params": {"judge": local.id}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["field"] == "params.judge"
    assert "OpenAI-compatible" in response.json()["detail"]


def test_the_job_keeps_a_name_only_where_the_judges_reading_tracks_the_feature(
    project, alice, api, namer, tiny_embeddings
):
    import_planted(project, 90)
    judge = _judge(project, namer)
    with one_thread():
        response = api(alice).post(
            f"/api/v1/projects/{project.id}/jobs/",
            {
                "kind": "explain",
                "params": {"n_features": 8, "k_active": 2, "max_epochs": 6, "judge": judge.id},
            },
            format="json",
        )
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error

    features = ExplanationFeature.objects.filter(explanation__job=job)
    assert all(f.proposed_name == "A sincere closing wish" for f in features)
    assert job.result["naming"]["requests"] == len(namer.requests) > 0
    named = [f for f in features if f.name]
    # Kept names passed the fidelity test; rejected ones did not.
    assert all(f.fidelity_r > 0 and f.fidelity_p < 0.05 for f in named)
    assert all(
        f.fidelity_r is None or f.fidelity_r <= 0 or f.fidelity_p >= 0.05
        for f in features
        if not f.name
    )
