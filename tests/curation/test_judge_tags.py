"""Instance tags for routing from an LM judge: the stub on loopback and a tiny local causal LM.

The route job asks the tag source's judge once per item (cached per judge version and
input), keeps the built-in tagger's tags where the judge abstains, and counts both.
"""

from __future__ import annotations

import json

import pytest

from annotation.models import Membership, Role
from annotation.services import items_import
from curation.judges import services
from curation.models import JobStatus, JudgeTagging, RoutingDecision
from curation.services.jobs import job_create
from models_gpu.routing import TAG_PROTOTYPES
from tests.factories import ProjectFactory, make_questions
from tests.judge_stub import JudgeStub

DOMAINS = ("math", "science", "business")


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.BALLOT_OUTBOUND_ALLOW_PRIVATE = True
    settings.BALLOT_JUDGE_BACKOFF_SECONDS = 0.01


@pytest.fixture
def routed_project(alice):
    """Nine items whose prompts name their domain and safety concern as ``tag=value``."""
    project = ProjectFactory(created_by=alice)
    Membership.objects.create(user=alice, project=project, role=Role.ADMIN)
    make_questions(project, [{"kind": "pairwise", "name": "preference"}])
    rows = [
        {
            "external_id": f"t{i}",
            "prompt": f"question {i} domain={DOMAINS[i % 3]} safety_concern="
            f"{'high' if i == 4 else 'none'} complexity=complex",
            "responses": [{"text": f"answer {i} one"}, {"text": f"answer {i} two words"}],
        }
        for i in range(9)
    ]
    items_import(project=project, lines=[json.dumps(r) for r in rows], fmt="native")
    return project


@pytest.fixture
def stub():
    server = JudgeStub().start()
    yield server
    server.stop()


def _judge(project, stub, **extra):
    return services.judge_create(
        project=project,
        user=None,
        data={
            "name": "stub",
            "backend": "openai",
            "base_url": stub.base_url,
            "model": "m",
            **extra,
        },
    )


def _route(project, **params):
    job = job_create(
        project=project,
        kind="route",
        params={"budget": 0.25, "strategy": "prior", "clusters": 2, **params},
    )
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job


def _features(job):
    return {
        d.item.external_id: d.features
        for d in RoutingDecision.objects.filter(job=job).select_related("item")
    }


def test_a_judge_tags_every_item_once_and_a_rerun_sends_no_request(
    routed_project, stub, tiny_embeddings
):
    judge = _judge(routed_project, stub, concurrency=3)
    job = _route(routed_project, tag_source=str(judge.id))
    tags = job.result["tags"]
    assert tags["source"] == "judge" and tags["version"] == "stub@v1"
    assert tags["from_judge"] == 9 and tags["built_in"] == 0 and tags["asked"] == 9
    assert tags["requests"] == 9 and len(stub.requests) == 9
    features = _features(job)
    for i in range(9):
        item = features[f"t{i}"]
        assert item["domain"] == DOMAINS[i % 3] and item["complexity"] == "complex"
        assert item["safety_concern"] == ("high" if i == 4 else "none")
        assert item["tag_source"] == "judge stub@v1"
    assert "domain=science" in job.result["features"]
    assert JudgeTagging.objects.filter(version__judge=judge, outcome="label").count() == 9

    again = _route(routed_project, tag_source="stub")  # by name this time
    assert again.result["tags"]["cached"] == 9 and again.result["tags"]["asked"] == 0
    assert again.result["tags"]["requests"] == 0 and len(stub.requests) == 9
    assert _features(again)["t4"]["safety_concern"] == "high"

    # An edited tagging template is another input: asked again, the judge version unchanged.
    template = "Tag this.\n{prompt}\n{tags}\nOne 'tag: letter' line per tag."
    services.judge_update(judge=judge, data={"prompts": {"tagging": template}})
    edited = _route(routed_project, tag_source="stub")
    assert edited.result["tags"]["asked"] == 9 and edited.result["tags"]["version"] == "stub@v1"
    assert stub.requests[-1]["body"].decode().count("Tag this.") == 1


def test_unparseable_tags_fall_back_to_the_built_in_tagger_and_are_counted(
    routed_project, tiny_embeddings
):
    prose = JudgeStub(tag_mode="malformed").start()
    try:
        judge = _judge(routed_project, prose)
        job = _route(routed_project, tag_source=str(judge.id))
        again = _route(routed_project, tag_source=str(judge.id))
    finally:
        prose.stop()
    tags = job.result["tags"]
    assert tags["from_judge"] == 0 and tags["built_in"] == 9 and tags["abstained"] == 9
    assert len(tags["reasons"]) == 5 and "not a 'tag: letter' line" in tags["reasons"][0]
    builtin = {name: values for name, values in TAG_PROTOTYPES.items()}
    for item in _features(job).values():
        assert item["tag_source"] == "built-in tagger"
        assert item["domain"] in builtin["domain"]
    # The unparseable answers are cached too: the same inputs are not asked twice.
    assert again.result["tags"]["cached"] == 9 and len(prose.requests) == 9


def test_failed_requests_fall_back_and_are_asked_again_next_time(routed_project, tiny_embeddings):
    failing = JudgeStub(script=[500] * 9).start()
    try:
        judge = _judge(routed_project, failing, max_retries=0, concurrency=1)
        job = _route(routed_project, tag_source=str(judge.id))
        again = _route(routed_project, tag_source=str(judge.id))
    finally:
        failing.stop()
    assert job.result["tags"]["failed"] == 9 and job.result["tags"]["built_in"] == 9
    assert "The receiver answered 500" in job.result["tags"]["reasons"][0]
    assert again.result["tags"]["from_judge"] == 9 and again.result["tags"]["cached"] == 0


def test_the_request_cap_leaves_the_rest_to_the_built_in_tagger(routed_project, tiny_embeddings):
    stub = JudgeStub().start()
    try:
        judge = _judge(routed_project, stub, max_requests_per_job=4, concurrency=1)
        job = _route(routed_project, tag_source=str(judge.id))
    finally:
        stub.stop()
    tags = job.result["tags"]
    assert tags["from_judge"] == 4 and tags["capped"] == 5 and tags["built_in"] == 5
    sources = [f["tag_source"] for f in _features(job).values()]
    assert sources.count("judge stub@v1") == 4


def test_auto_tags_with_the_routing_judge_when_it_is_configured_else_built_in(
    routed_project, stub, tiny_embeddings
):
    builtin = _route(routed_project)
    assert builtin.result["tags"] == {"source": "built-in", "items": 9}
    judge = _judge(routed_project, stub)
    labelled = job_create(project=routed_project, kind="label-ai", params={"judge": judge.id})
    labelled.refresh_from_db()
    assert labelled.status == JobStatus.SUCCEEDED, labelled.error
    auto = _route(routed_project)  # the judge with most labels: stub@v1, a chat judge
    assert auto.result["judge"] == "stub@v1" and auto.result["tags"]["from_judge"] == 9
    forced = _route(routed_project, tag_source="builtin")
    assert forced.result["tags"]["source"] == "built-in"


def test_a_tag_source_that_is_no_tagging_judge_is_a_400_naming_the_param(
    routed_project, alice, api, stub
):
    client = api(alice)
    url = f"/api/v1/projects/{routed_project.id}/jobs/"
    for source in ("nobody", "99999"):
        response = client.post(
            url, {"kind": "route", "params": {"tag_source": source}}, format="json"
        )
        assert response.status_code == 400
        assert response.json()["field"] == "params.tag_source"


def test_a_local_causal_lm_judge_tags_from_a_model_root(
    routed_project, settings, tiny_embeddings, tmp_path
):
    from tests.tiny_models import build_tiny_causal_lm

    build_tiny_causal_lm(tmp_path / "lms" / "tiny-lm")
    settings.BALLOT_MODEL_ROOTS = [*settings.BALLOT_MODEL_ROOTS, str(tmp_path / "lms")]
    judge = services.judge_create(
        project=routed_project,
        user=None,
        data={"name": "lm", "backend": "local", "model": "tiny-lm", "batch_size": 4},
    )
    job = _route(routed_project, tag_source="lm")
    tags = job.result["tags"]
    assert tags["from_judge"] == 9 and tags["requests"] == 0
    rows = JudgeTagging.objects.filter(version__judge=judge)
    assert rows.count() == 9
    for row in rows:
        assert all(row.tags[tag] in values for tag, values in TAG_PROTOTYPES.items())
        assert row.raw.startswith("domain: ")
    again = _route(routed_project, tag_source="lm")
    assert again.result["tags"]["cached"] == 9
