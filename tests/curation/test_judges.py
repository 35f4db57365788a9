"""LM judges end to end in one process: configuration, outbound safety, the label-ai job.

The judge talks to a real stub OpenAI-compatible server on loopback through the one
outbound client (loopback is allowed for it by ``BALLOT_OUTBOUND_ALLOW_PRIVATE``).
"""

from __future__ import annotations

import logging

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import Annotation, PairwiseAnswer, Role, Source
from curation.judges import services
from curation.models import Job, JobKind, JobStatus, Judge, JudgeVerdict, JudgeVersion
from curation.services.jobs import job_create
from tests.api_mixins import ScopedEndpointTests
from tests.factories import ItemFactory, MembershipFactory, UserFactory, make_questions
from tests.judge_stub import JudgeStub

SECRET = "sk-test-0123456789abcdef-never-shown"


@pytest.fixture
def stub():
    server = JudgeStub().start()
    yield server
    server.stop()


@pytest.fixture
def connections_seen(monkeypatch):
    """Every address the outbound client connects to."""
    import socket

    real = socket.create_connection
    seen: list[str] = []

    def recording(address, *args, **kwargs):
        seen.append(address[0])
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", recording)
    return seen


@pytest.fixture(autouse=True)
def judge_settings(settings, monkeypatch):
    for name in ("BALLOT_WEBHOOK_ALLOW_PRIVATE", "BALLOT_OUTBOUND_ALLOW_PRIVATE"):
        monkeypatch.delenv(name, raising=False)
    settings.BALLOT_WEBHOOK_ALLOW_PRIVATE = False
    settings.BALLOT_OUTBOUND_ALLOW_PRIVATE = True
    settings.BALLOT_JUDGE_BACKOFF_SECONDS = 0.01
    settings.BALLOT_JOBS_IN_THREAD = False


@pytest.fixture
def pairwise_project(alice, bob):
    from tests.factories import ProjectFactory

    project = ProjectFactory(name="Judged", created_by=alice)
    MembershipFactory(user=alice, project=project, role=Role.ADMIN)
    MembershipFactory(user=bob, project=project, role=Role.CURATOR)
    make_questions(project, [{"kind": "pairwise", "name": "preference"}])
    return project


def _items(project, count=6):
    """Items whose GOOD response alternates between the first and second position."""
    out = []
    for i in range(count):
        texts = [f"GOOD answer {i}.", f"weak answer {i}."]
        out.append(ItemFactory(project=project, responses=texts if i % 2 == 0 else texts[::-1]))
    return out


def _judge(project, stub, **extra):
    data = {
        "name": "stub",
        "backend": "openai",
        "base_url": stub.base_url,
        "model": "stub-1",
        "api_key": SECRET,
        **extra,
    }
    return services.judge_create(project=project, user=None, data=data)


def _run(project, judge, **params):
    job = job_create(project=project, kind=JobKind.LABEL_AI, params={"judge": judge.id, **params})
    job.refresh_from_db()
    return job


def test_a_fair_judge_labels_every_item_in_both_orders(pairwise_project, stub):
    items = _items(pairwise_project)
    judge = _judge(pairwise_project, stub)

    job = _run(pairwise_project, judge)

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["labels"] == 6 and job.result["annotations"] == 6
    assert len(stub.requests) == 12  # two orders per pair
    for item in items:
        annotation = Annotation.objects.get(item=item, source=Source.AI)
        assert annotation.judge_name == "stub@v1" and annotation.annotator_id is None
        answer = PairwiseAnswer.objects.get(annotation=annotation)
        assert "GOOD" in answer.chosen.text and not answer.tie
        verdict = JudgeVerdict.objects.get(item=item)
        assert verdict.consistent is True and verdict.confidence == 1.0
        assert [order["raw"] for order in verdict.raw["orders"]] in (["A", "B"], ["B", "A"])
    assert job.progress == 1.0


def test_a_rerun_with_the_same_version_writes_nothing_and_a_new_prompt_makes_a_new_version(
    pairwise_project, stub
):
    _items(pairwise_project, 4)
    judge = _judge(pairwise_project, stub)
    _run(pairwise_project, judge)
    sent = len(stub.requests)

    again = _run(pairwise_project, judge)
    assert again.result["annotations"] == 0 and again.result["verdicts"] == 0
    assert len(stub.requests) == sent  # nothing asked again
    assert Annotation.objects.filter(source=Source.AI).count() == 4

    # Connection settings are not part of the version; the prompt is.
    services.judge_update(judge=judge, data={"timeout_seconds": 5, "concurrency": 2})
    assert _run(pairwise_project, judge).result["version"] == "stub@v1"
    template = "Conversation: {prompt}\n[Response A]\n{response_a}\n\n[Response B]\n{response_b}\n\nA or B? "
    services.judge_update(judge=judge, data={"prompts": {"pairwise": template}})
    third = _run(pairwise_project, judge)
    assert third.result["version"] == "stub@v2" and third.result["annotations"] == 4
    assert set(Annotation.objects.values_list("judge_name", flat=True)) == {"stub@v1", "stub@v2"}
    assert JudgeVersion.objects.filter(judge=judge).count() == 2


def test_both_orders_turn_an_order_biased_judge_into_ties_or_abstentions(pairwise_project):
    biased = JudgeStub(mode="first").start()
    try:
        _items(pairwise_project, 4)
        judge = _judge(pairwise_project, biased)
        job = _run(pairwise_project, judge)
        assert job.result["ties"] == 4 and job.result["labels"] == 0
        assert PairwiseAnswer.objects.filter(tie=True).count() == 4
        assert set(JudgeVerdict.objects.values_list("consistent", flat=True)) == {False}

        services.judge_update(judge=judge, data={"on_disagreement": "abstain"})
        job = _run(pairwise_project, judge)
        assert job.result["abstentions"] == 4 and job.result["annotations"] == 0
        reasons = JudgeVerdict.objects.filter(version__number=2).values_list("reason", flat=True)
        assert all("position bias" in reason for reason in reasons)
    finally:
        biased.stop()


def test_malformed_answers_are_abstentions_with_the_reason(pairwise_project):
    broken = JudgeStub(mode="malformed").start()
    try:
        _items(pairwise_project, 2)
        job = _run(pairwise_project, _judge(pairwise_project, broken))
        assert job.status == JobStatus.SUCCEEDED
        assert job.result["abstentions"] == 2 and job.result["annotations"] == 0
        verdict = JudgeVerdict.objects.first()
        assert verdict.outcome == "abstain" and "no single A or B verdict" in verdict.reason
    finally:
        broken.stop()


def test_the_request_cap_stops_the_job_and_a_later_run_finishes(pairwise_project, stub):
    _items(pairwise_project, 6)
    judge = _judge(pairwise_project, stub, max_requests_per_job=5)
    job = _run(pairwise_project, judge, batch_items=2)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result["capped"] is True
    assert len(stub.requests) <= 5 and job.result["requests"] <= 5
    assert job.result["annotations"] == 2  # two full pairs fit in five requests
    services.judge_update(judge=judge, data={"max_requests_per_job": None})
    rest = _run(pairwise_project, judge)
    assert rest.result["annotations"] == 4 and rest.result["capped"] is False


def test_the_job_judges_only_the_given_items(pairwise_project, stub):
    items = _items(pairwise_project, 4)
    judge = _judge(pairwise_project, stub)
    job = _run(pairwise_project, judge, item_ids=[items[1].id, items[3].id])
    assert job.result["annotations"] == 2
    assert set(Annotation.objects.values_list("item_id", flat=True)) == {items[1].id, items[3].id}


def test_label_ai_params_are_checked(pairwise_project, stub, alice, api):
    other = UserFactory(username="dora")
    from tests.factories import ProjectFactory

    elsewhere = ProjectFactory(created_by=other)
    foreign = ItemFactory(project=elsewhere)
    judge = _judge(pairwise_project, stub)
    url = f"/api/v1/projects/{pairwise_project.id}/jobs/"
    client = api(alice)
    response = client.post(url, {"kind": "label-ai", "params": {}}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "params.judge"
    response = client.post(
        url,
        {"kind": "label-ai", "params": {"judge": judge.id, "item_ids": [foreign.id]}},
        format="json",
    )
    assert response.status_code == 400 and response.json()["field"] == "params.item_ids"
    response = client.post(
        url, {"kind": "label-ai", "params": {"judge": judge.id, "item_ids": ["x"]}}, format="json"
    )
    assert response.status_code == 400 and response.json()["field"] == "params.item_ids"


def test_every_question_kind_is_judged_through_the_human_checks(project, stub):
    item = ItemFactory(project=project, responses=["GOOD one.", "weak one.", "meh one."])
    judge = _judge(project, stub)
    job = _run(project, judge)
    assert job.status == JobStatus.SUCCEEDED, job.error
    annotation = Annotation.objects.get(item=item, source=Source.AI)
    kinds = dict(JudgeVerdict.objects.filter(item=item).values_list("question__kind", "outcome"))
    assert kinds == {"pairwise": "label", "ranking": "label", "rating": "label"}
    ranking = (
        annotation.rankinganswer_set.get() if hasattr(annotation, "rankinganswer_set") else None
    )
    from annotation.models import RankingAnswer, RatingAnswer

    ranking = RankingAnswer.objects.get(annotation=annotation)
    good = item.responses.get(position=0).id
    assert ranking.ranking[0] == [good]
    ratings = RatingAnswer.objects.filter(annotation=annotation)
    assert ratings.count() == 9  # three responses x three aspects
    assert {r.value for r in ratings if r.response_id == good} == {4.0}


# --- configuration, secrets and outbound safety ---------------------------------------------


def test_the_api_key_is_never_returned_nor_logged(pairwise_project, stub, alice, api, caplog):
    client = api(alice)
    url = f"/api/v1/projects/{pairwise_project.id}/judges/"
    caplog.set_level(logging.DEBUG)
    response = client.post(
        url,
        {
            "name": "gpt",
            "backend": "openai",
            "base_url": stub.base_url,
            "model": "m",
            "api_key": SECRET,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["api_key_set"] is True and "api_key" not in body
    judge = Judge.objects.get(pk=body["id"])
    assert SECRET not in judge.api_key_encrypted
    item = _items(pairwise_project, 1)[0]
    test = client.post(f"{url}{judge.id}/test/", {"item": item.id}, format="json")
    assert test.status_code == 200, test.content
    # The key did reach the judge server, as a bearer token, and nowhere else.
    assert stub.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    for text in (
        response.content.decode(),
        test.content.decode(),
        client.get(url).content.decode(),
        client.get(f"{url}{judge.id}/").content.decode(),
        caplog.text,
    ):
        assert SECRET not in text
    assert "sk-test" not in repr(judge.versions.get().settings)


def test_the_api_key_may_come_from_an_environment_variable(pairwise_project, stub, monkeypatch):
    monkeypatch.setenv("STUB_JUDGE_KEY", "from-the-environment")
    judge = _judge(pairwise_project, stub, api_key="", api_key_env="STUB_JUDGE_KEY")
    _items(pairwise_project, 1)
    _run(pairwise_project, judge)
    assert stub.requests[0]["headers"]["Authorization"] == "Bearer from-the-environment"
    monkeypatch.delenv("STUB_JUDGE_KEY")
    job = _run(pairwise_project, Judge.objects.get(pk=judge.pk), item_ids=[])
    # Nothing left to judge, so the missing variable is not needed.
    assert job.status == JobStatus.SUCCEEDED


def test_a_private_judge_url_is_refused_unless_allowed(
    pairwise_project, stub, settings, alice, api
):
    settings.BALLOT_OUTBOUND_ALLOW_PRIVATE = False
    url = f"/api/v1/projects/{pairwise_project.id}/judges/"
    response = api(alice).post(
        url,
        {"name": "x", "backend": "openai", "base_url": stub.base_url, "model": "m"},
        format="json",
    )
    assert response.status_code == 400 and response.json()["field"] == "base_url"
    assert "loopback" in response.json()["detail"]
    for address in ("http://169.254.169.254/v1", "http://10.0.0.7/v1"):
        response = api(alice).post(
            url,
            {"name": "y", "backend": "openai", "base_url": address, "model": "m"},
            format="json",
        )
        assert response.status_code == 400 and response.json()["field"] == "base_url"
    # A judge saved while allowed is refused at connection time once the policy closes.
    settings.BALLOT_OUTBOUND_ALLOW_PRIVATE = True
    judge = _judge(pairwise_project, stub)
    settings.BALLOT_OUTBOUND_ALLOW_PRIVATE = False
    _items(pairwise_project, 1)
    job = _run(pairwise_project, judge)
    verdict = JudgeVerdict.objects.get(version__judge=judge)
    assert verdict.outcome == "abstain" and "loopback" in verdict.reason
    assert stub.requests == [] and job.result["annotations"] == 0


def test_bad_judge_settings_are_400s_naming_the_field(pairwise_project, alice, api, stub):
    url = f"/api/v1/projects/{pairwise_project.id}/judges/"
    client = api(alice)
    base = {"name": "j", "backend": "openai", "base_url": stub.base_url, "model": "m"}
    cases = [
        ({**base, "backend": "magic"}, "backend"),
        ({**base, "concurrency": 0}, "concurrency"),
        ({**base, "timeout_seconds": "soon"}, "timeout_seconds"),
        ({**base, "prompts": {"pairwise": "no placeholders"}}, "prompts.pairwise"),
        (
            {**base, "prompts": {"pairwise": "{response_a} {response_b} {secret}"}},
            "prompts.pairwise",
        ),
        ({**base, "prompts": {"essay": "{prompt}"}}, "prompts.essay"),
        ({**base, "api_key_env": "not a name"}, "api_key_env"),
        ({**base, "base_url": "ftp://example.org"}, "base_url"),
        ({**base, "base_url": "https://example.org/v1 x"}, "base_url"),
        ({**base, "prompts": {"tagging": "{prompt} only"}}, "prompts.tagging"),
        ({**base, "colour": "red"}, "colour"),
        ({"name": "l", "backend": "local", "model": "../../etc"}, "model"),
    ]
    for payload, field in cases:
        response = client.post(url, payload, format="json")
        assert response.status_code == 400, (payload, response.content)
        assert response.json()["field"] == field, (payload, response.json())
    assert client.post(url, base, format="json").status_code == 201
    taken = client.post(url, base, format="json")
    assert taken.status_code == 409 and taken.json()["field"] == "name"
    judge = Judge.objects.get(name="j")
    renamed = client.patch(f"{url}{judge.id}/", {"name": "k"}, format="json")
    assert renamed.status_code == 400 and renamed.json()["field"] == "name"


def test_stats_give_agreement_with_humans_and_position_consistency(
    pairwise_project, stub, bob, api
):
    items = _items(pairwise_project, 4)
    question = pairwise_project.questions.get()
    human = UserFactory(username="hana")
    for index, item in enumerate(items):
        good = item.responses.get(text__startswith="GOOD")
        weak = item.responses.exclude(pk=good.pk).get()
        # The human agrees with the GOOD response on three items of four.
        chosen, rejected = (good, weak) if index < 3 else (weak, good)
        annotation = Annotation.objects.create(
            project=pairwise_project, item=item, annotator=human, source=Source.HUMAN
        )
        PairwiseAnswer.objects.create(
            annotation=annotation, question=question, chosen=chosen, rejected=rejected
        )
    judge = _judge(pairwise_project, stub)
    _run(pairwise_project, judge)
    response = api(bob).get(f"/api/v1/projects/{pairwise_project.id}/judges/{judge.id}/stats/")
    assert response.status_code == 200
    (version,) = response.json()["versions"]
    assert version["human_agreement"] == 0.75 and version["compared_with_humans"] == 4
    assert version["position_consistency"] == 1.0 and version["labels"] == 4


def test_the_judge_command_creates_lists_and_tests(pairwise_project, stub, capsys):
    item = _items(pairwise_project, 1)[0]
    call_command(
        "judge",
        "create",
        "--project",
        str(pairwise_project.id),
        "name=cli",
        "backend=openai",
        f"base_url={stub.base_url}",
        "model=m",
        f"api_key={SECRET}",
    )
    out = capsys.readouterr().out
    assert "judge" in out and SECRET not in out
    call_command("judge", "list", "--project", str(pairwise_project.id))
    assert "cli\topenai" in capsys.readouterr().out
    judge = Judge.objects.get(name="cli")
    call_command(
        "judge",
        "test",
        "--project",
        str(pairwise_project.id),
        "--judge",
        str(judge.id),
        "--item",
        str(item.id),
    )
    out = capsys.readouterr().out
    assert '"outcome": "label"' in out and SECRET not in out
    with pytest.raises(CommandError, match="concurrency"):
        call_command(
            "judge",
            "create",
            "--project",
            str(pairwise_project.id),
            "name=bad",
            "backend=openai",
            f"base_url={stub.base_url}",
            "model=m",
            "concurrency=0",
        )


class TestJudgeListPermissions(ScopedEndpointTests):
    def url(self, world):
        return f"/api/v1/projects/{world.project.id}/judges/"

    def test_annotators_cannot_read_judges(self, world):
        assert world.api(world.bob).get(self.url(world)).status_code == 403


class TestJudgeCreatePermissions(ScopedEndpointTests):
    method = "post"
    member_status = 201

    def url(self, world):
        return f"/api/v1/projects/{world.project.id}/judges/"

    def payload(self, world):
        return {"name": "perm", "backend": "reward"}


def test_a_failed_job_names_a_reward_judge_without_a_reward_model(pairwise_project):
    judge = services.judge_create(
        project=pairwise_project, user=None, data={"name": "rm", "backend": "reward"}
    )
    _items(pairwise_project, 1)
    job = _run(pairwise_project, judge)
    assert job.status == JobStatus.FAILED and "reward job" in job.error
    assert Job.objects.filter(kind=JobKind.LABEL_AI).count() == 1


def test_the_outbound_transport_passes_on_retry_after_and_retryability():
    from curation.judges.runner import outbound_transport
    from models_gpu.judges import TransportFailure

    server = JudgeStub(script=[429, 400], retry_after="7").start()
    try:
        payload = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        with pytest.raises(TransportFailure) as limited:
            outbound_transport(server.base_url + "/chat/completions", payload, {}, 5)
        assert limited.value.retryable and limited.value.retry_after == 7.0
        with pytest.raises(TransportFailure) as refused:
            outbound_transport(server.base_url + "/chat/completions", payload, {}, 5)
        assert not refused.value.retryable
    finally:
        server.stop()
    junk = JudgeStub(mode="not_json").start()
    try:
        with pytest.raises(TransportFailure, match="not JSON"):
            outbound_transport(junk.base_url + "/chat/completions", payload, {}, 5)
    finally:
        junk.stop()


def test_progress_is_reported_per_batch(pairwise_project, stub):
    from curation.jobs.kinds import label_ai

    _items(pairwise_project, 5)
    judge = _judge(pairwise_project, stub)
    job = Job.objects.create(
        project=pairwise_project,
        kind=JobKind.LABEL_AI,
        params={"judge": judge.id, "item_ids": [], "batch_items": 2},
    )
    reports: list[tuple[float, str]] = []
    result = label_ai.run(job, lambda fraction, message: reports.append((fraction, message)))
    assert result["items_judged"] == 5
    assert [round(f, 2) for f, _ in reports] == [0.0, 0.4, 0.8, 1.0]
    assert reports[-1][1] == "5/5 items judged, 10 requests"


def test_the_reward_model_judge_labels_with_the_projects_reward_model(
    pairwise_project, tiny_embeddings
):
    """Both orders come from one reward per response: consistent by construction."""
    import json as json_module

    from annotation.services import items_import

    lines = [
        json_module.dumps(
            {
                "external_id": f"rm-{i}",
                "prompt": f"question number {i}",
                "chosen": f"helpful detailed answer {i}",
                "rejected": f"no {i}",
            }
        )
        for i in range(16)
    ]
    items_import(project=pairwise_project, lines=lines, fmt="trl")
    reward = job_create(
        project=pairwise_project, kind=JobKind.REWARD, params={"folds": 2, "epochs": 3}
    )
    reward.refresh_from_db()
    assert reward.status == JobStatus.SUCCEEDED, reward.error
    judge = services.judge_create(
        project=pairwise_project, user=None, data={"name": "rm", "backend": "reward"}
    )
    job = _run(pairwise_project, judge)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["verdicts"] == 16 and job.result["annotations"] == 16
    version = JudgeVersion.objects.get(judge=judge)
    assert version.settings["reward_job"] == reward.id and version.settings["reward_sha256"]
    for verdict in JudgeVerdict.objects.filter(version=version):
        assert verdict.outcome == "label" and verdict.consistent is True
        assert 0.5 <= verdict.confidence <= 1.0
        assert [o["choice"] for o in verdict.raw["orders"]] in (["A", "B"], ["B", "A"])


def test_a_local_causal_lm_judge_runs_as_a_job_from_a_model_root(
    pairwise_project, settings, tmp_path
):
    from tests.tiny_models import build_tiny_causal_lm

    build_tiny_causal_lm(tmp_path / "models" / "tiny-lm")
    settings.BALLOT_MODEL_ROOTS = [str(tmp_path / "models")]
    _items(pairwise_project, 3)
    with pytest.raises(Exception, match="model roots"):
        services.judge_create(
            project=pairwise_project,
            user=None,
            data={"name": "x", "backend": "local", "model": str(tmp_path / "models" / "tiny-lm")},
        )
    judge = services.judge_create(
        project=pairwise_project,
        user=None,
        data={"name": "lm", "backend": "local", "model": "tiny-lm", "batch_size": 4},
    )
    job = _run(pairwise_project, judge)
    assert job.status == JobStatus.SUCCEEDED, job.error
    # An untrained model answers by position: both orders disagree on every pair.
    assert job.result["ties"] == 3 and job.result["annotations"] == 3
    verdict = JudgeVerdict.objects.filter(version__judge=judge).first()
    probabilities = [order["probabilities"] for order in verdict.raw["orders"]]
    assert all(abs(p["A"] + p["B"] - 1) < 1e-6 for p in probabilities)
    assert verdict.confidence is not None and verdict.consistent is False


def test_item_ids_may_come_as_a_comma_list_or_digit_strings(pairwise_project, stub):
    from curation.jobs.kinds.label_ai import LabelAIParams

    items = _items(pairwise_project, 3)
    judge = _judge(pairwise_project, stub)
    for given in (f"{items[0].id},{items[2].id}", [str(items[0].id), items[2].id]):
        params = LabelAIParams.validate(
            {"judge": judge.id, "item_ids": given}, kind="label-ai", project=pairwise_project
        )
        assert params["item_ids"] == [items[0].id, items[2].id]


def test_a_redirect_to_a_metadata_address_is_refused_before_anything_is_sent(
    pairwise_project, connections_seen
):
    server = JudgeStub(script=[307] * 4, redirect_to="http://169.254.169.254/latest/").start()
    try:
        _items(pairwise_project, 1)
        judge = _judge(pairwise_project, server, max_retries=0)
        _run(pairwise_project, judge)
        verdict = JudgeVerdict.objects.get()
        assert verdict.outcome == "abstain" and "metadata" in verdict.reason
        assert len(server.requests) == 2  # one per order; the redirect was never followed
        assert all(host == "127.0.0.1" for host in connections_seen)
    finally:
        server.stop()


def test_transient_failures_in_a_job_are_retried_and_slow_answers_time_out(pairwise_project):
    flaky = JudgeStub(script=[503, 429, 500], retry_after="0").start()
    try:
        _items(pairwise_project, 2)
        job = _run(pairwise_project, _judge(pairwise_project, flaky, concurrency=1))
        assert job.result["labels"] == 2
        assert job.result["requests"] == 4 and job.result["attempts"] == 7
        assert flaky.statuses[:4] == [503, 429, 500, 200]
    finally:
        flaky.stop()
    slow = JudgeStub(delay=1.0).start()
    try:
        judge = _judge(pairwise_project, slow, name="slow", timeout_seconds=0.2, max_retries=0)
        job = _run(pairwise_project, judge)
        reasons = JudgeVerdict.objects.filter(version__judge=judge).values_list("reason", flat=True)
        assert job.result["abstentions"] == 2 and all("Timed out" in r for r in reasons)
    finally:
        slow.stop()


def test_the_admin_form_keeps_the_key_write_only_and_encrypted(
    pairwise_project, stub, admin_client
):
    judge = _judge(pairwise_project, stub)
    page = admin_client.get(f"/admin/curation/judge/{judge.id}/change/").content.decode()
    assert 'type="password"' in page and judge.api_key_encrypted not in page
    assert SECRET not in page
    from curation.admin import JudgeAdminForm
    from curation.judges.secrets import api_key_decrypt

    data = {
        field: getattr(judge, field)
        for field in JudgeAdminForm.Meta.fields
        if field not in ("project", "reward_job", "prompts", "max_requests_per_job")
    }
    data.update(project=pairwise_project.id, prompts="{}", api_key="sk-from-the-admin")
    form = JudgeAdminForm(instance=judge, data=data)
    assert form.is_valid(), form.errors
    saved = form.save()
    assert api_key_decrypt(saved.api_key_encrypted) == "sk-from-the-admin"
    bad = JudgeAdminForm(instance=judge, data={**data, "prompts": '{"pairwise": "no slots"}'})
    assert not bad.is_valid() and "prompts" in bad.errors


def test_a_local_judge_answers_rankings_by_round_robin_and_rates_by_digit_tokens(
    project, settings, tmp_path
):
    from annotation.models import RankingAnswer, RatingAnswer
    from tests.tiny_models import build_tiny_causal_lm

    build_tiny_causal_lm(tmp_path / "models" / "tiny-lm")
    settings.BALLOT_MODEL_ROOTS = [str(tmp_path / "models")]
    item = ItemFactory(project=project, responses=["one.", "two.", "three."])
    judge = services.judge_create(
        project=project, user=None, data={"name": "lm", "backend": "local", "model": "tiny-lm"}
    )
    job = _run(project, judge)
    assert job.status == JobStatus.SUCCEEDED, job.error
    outcomes = dict(JudgeVerdict.objects.filter(item=item).values_list("question__kind", "outcome"))
    # A position-biased model: every pair ties, so the ranking is one tie group.
    assert outcomes == {"pairwise": "tie", "ranking": "tie", "rating": "label"}
    annotation = Annotation.objects.get(item=item, source=Source.AI)
    ranking = RankingAnswer.objects.get(annotation=annotation).ranking
    assert len(ranking) == 1 and sorted(ranking[0]) == sorted(
        item.responses.values_list("id", flat=True)
    )
    values = set(RatingAnswer.objects.filter(annotation=annotation).values_list("value", flat=True))
    assert (
        values <= {1.0, 2.0, 3.0, 4.0, 5.0}
        and RatingAnswer.objects.filter(annotation=annotation).count() == 9
    )


def test_testing_a_judge_keeps_to_the_interactive_limits_whatever_its_own_settings(
    pairwise_project,
):
    """A judge with a 600 s timeout and 10 retries, tested on one item: each request
    waits at most the test's per-request timeout, is retried at most once, and the
    answer comes back with the reason instead of waiting for the endpoint."""
    from curation.judges.runner import Interactive, outbound_transport

    item = _items(pairwise_project, 1)[0]
    timeouts: list[float] = []

    def recording(url, payload, headers, timeout):
        timeouts.append(timeout)
        return outbound_transport(url, payload, headers, timeout)

    slow = JudgeStub(delay=3.0).start()
    try:
        judge = _judge(pairwise_project, slow, timeout_seconds=600, max_retries=10, concurrency=1)
        tested = services.judge_test(
            judge=judge,
            item=item,
            transport=recording,
            limits=Interactive(deadline=60, request_timeout=0.3, max_retries=1, max_backoff=0),
        )
    finally:
        slow.stop()
    assert timeouts and max(timeouts) <= 0.3
    # Two orders, each tried at most twice (one retry), not eleven times.
    assert tested["requests"] <= 4 and len(slow.requests) <= 4
    assert tested["questions"][0]["outcome"] == "abstain"
    assert tested["error"].startswith("the judge did not answer (preference): ")
    assert "request failed: Timed out after 0.3 s" in tested["error"]
    assert tested["limits"] == {
        "deadline_seconds": 60,
        "request_timeout_seconds": 0.3,
        "max_retries": 1,
    }


def test_a_dead_endpoint_cannot_hold_a_judge_test_past_its_deadline(pairwise_project):
    """An endpoint that takes the connection and never answers: the test gives up at its
    deadline even though each request's own timeout is longer."""
    import socket

    from curation.judges.runner import Interactive

    item = _items(pairwise_project, 1)[0]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # connections wait in the backlog; nothing ever reads them
    try:
        judge = services.judge_create(
            project=pairwise_project,
            user=None,
            data={
                "name": "dead",
                "backend": "openai",
                "base_url": f"http://127.0.0.1:{listener.getsockname()[1]}/v1",
                "model": "m",
                "timeout_seconds": 600,
                "max_retries": 10,
            },
        )
        tested = services.judge_test(
            judge=judge, item=item, limits=Interactive(deadline=0.5, request_timeout=30)
        )
    finally:
        listener.close()
    assert "timed out" in tested["error"] and "0.5 s budget" in tested["error"]
    assert tested["questions"][0]["outcome"] == "abstain"


def test_an_http_error_and_an_unparseable_answer_are_named_in_a_tests_error(pairwise_project):
    item = _items(pairwise_project, 1)[0]
    failing = JudgeStub(script=[500, 500, 500, 500]).start()
    try:
        judge = _judge(pairwise_project, failing, max_retries=10, concurrency=1)
        tested = services.judge_test(judge=judge, item=item)
    finally:
        failing.stop()
    assert "The receiver answered 500" in tested["error"]
    assert len(failing.requests) == 4  # two orders, one retry each
    malformed = JudgeStub(mode="malformed").start()
    try:
        judge = _judge(pairwise_project, malformed, name="chatty")
        tested = services.judge_test(judge=judge, item=item)
    finally:
        malformed.stop()
    assert tested["error"].startswith("the judge's answer was not usable (preference):")
    assert "no single A or B verdict" in tested["error"]


def test_a_pairwise_question_on_three_responses_judges_every_pair_in_both_orders(
    pairwise_project, stub
):
    """The GOOD response is third: the judge meets it in every pair it is in, both orders,
    and the AI annotation chooses it over the worst, through the human checks."""
    item = ItemFactory(
        project=pairwise_project, responses=["weak answer.", "meh answer.", "GOOD answer."]
    )
    judge = _judge(pairwise_project, stub)
    job = _run(pairwise_project, judge)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["requests"] == 6 and len(stub.requests) == 6
    verdict = JudgeVerdict.objects.get(version__judge=judge, item=item)
    responses = sorted(item.responses.all(), key=lambda r: r.position)
    assert [pair["positions"] for pair in verdict.raw["pairs"]] == [[0, 1], [0, 2], [1, 2]]
    assert all(len(pair["orders"]) == 2 for pair in verdict.raw["pairs"])
    # weak vs meh has no GOOD: the stub answers B in both orders, a position-biased tie.
    assert verdict.raw["pairs"][0]["outcome"] == "tie"
    assert verdict.raw["scores"] == [0.5, 0.5, 2.0]
    assert verdict.outcome == "label" and verdict.consistent is False
    assert "responses 0 and 1 tied" in verdict.reason
    answer = PairwiseAnswer.objects.get(annotation__source=Source.AI, annotation__item=item)
    assert answer.chosen_id == responses[2].id and answer.rejected_id == responses[1].id
    assert not answer.tie


def test_an_order_biased_judge_on_three_responses_gives_a_tie(pairwise_project):
    biased = JudgeStub(mode="first").start()
    try:
        item = ItemFactory(project=pairwise_project, responses=["one.", "two.", "GOOD three."])
        judge = _judge(pairwise_project, biased)
        _run(pairwise_project, judge)
    finally:
        biased.stop()
    verdict = JudgeVerdict.objects.get(version__judge=judge, item=item)
    assert verdict.outcome == "tie" and verdict.raw["scores"] == [1.0, 1.0, 1.0]
    answer = PairwiseAnswer.objects.get(annotation__source=Source.AI, annotation__item=item)
    assert answer.tie


def test_a_judge_whose_url_cannot_be_sent_gives_a_tests_error_not_a_500(
    pairwise_project, alice, api, stub
):
    item = _items(pairwise_project, 1)[0]
    judge = _judge(pairwise_project, stub, base_url=stub.base_url + "/caf\u00e9")
    response = api(alice).post(
        f"/api/v1/projects/{pairwise_project.id}/judges/{judge.id}/test/",
        {"item": item.id},
        format="json",
    )
    assert response.status_code == 200
    assert "cannot be sent: UnicodeEncodeError" in response.json()["error"]
    assert stub.requests == []


def test_stats_on_three_responses_compare_the_pair_the_humans_compared(pairwise_project, stub):
    """Humans compare responses A and B; the judge's answer names its best and worst of
    three, so agreement reads the judge's own verdict on the humans' pair, and position
    consistency counts every judged pair."""
    item = ItemFactory(project=pairwise_project, responses=["weak.", "GOOD one.", "GOOD two."])
    weak, _, good_two = sorted(item.responses.all(), key=lambda r: r.position)
    annotation = Annotation.objects.create(
        project=pairwise_project, item=item, annotator=UserFactory(), source=Source.HUMAN
    )
    PairwiseAnswer.objects.create(
        annotation=annotation,
        question=pairwise_project.questions.get(),
        chosen=good_two,
        rejected=weak,
    )
    judge = _judge(pairwise_project, stub)
    _run(pairwise_project, judge)
    verdict = JudgeVerdict.objects.get(version__judge=judge)
    # Both GOOD responses tie (the stub answers A in both orders); the earlier one is named best.
    assert verdict.answer["chosen"] != good_two.id
    (version,) = services_stats(judge)["versions"]
    assert version["compared_with_humans"] == 1 and version["human_agreement"] == 1.0
    assert version["pairs_in_both_orders"] == 3
    assert version["position_consistency"] == round(2 / 3, 4)


def services_stats(judge):
    from curation.judges.selectors import judge_stats

    return judge_stats(judge=judge)
