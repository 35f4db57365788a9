"""Routing on stored rows: importers of judged datasets, the route job, decisions, queue, API."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from django.core.management import CommandError, call_command

from annotation.adapters import llmbar, llmbar_mtbench
from annotation.models import Annotation, Item, Membership, PairwiseAnswer, Role
from annotation.services import items_import
from annotation.services.assignments import assignment_claim_next
from curation.models import JobStatus, RoutingDecision
from curation.routing import HUMAN_PRIORITY_BASE, routing_inputs
from tests.datasets import dataset
from tests.factories import ProjectFactory, UserFactory, make_questions

FAST = {"folds": 3, "clusters": 4, "min_labelled": 10}


def _import(project, adapted) -> None:
    items_import(project=project, lines=[json.dumps(r) for r in adapted.rows], fmt=adapted.fmt)


@pytest.fixture
def mtbench_project(project):
    _import(project, llmbar_mtbench(dataset("llmbar_mtbench_human_vs_llm")))
    return project


def test_the_llmbar_importer_keeps_gold_labels_and_both_orders_of_each_judge(project):
    adapted = llmbar(dataset("llmbar"))
    assert len(adapted.rows) == 419
    _import(project, adapted)
    assert Item.objects.filter(project=project).count() == 419
    human = Annotation.objects.filter(project=project, source="human")
    assert human.count() == 419
    assert set(
        Annotation.objects.filter(project=project, source="ai").values_list("judge_name", flat=True)
    ) == {"GPT-4", "ChatGPT"}
    # SOURCE.md: GPT-4 agrees with gold in both orders on 93 of the 100 Natural items.
    natural = Item.objects.filter(project=project, external_id__startswith="llmbar-Natural-")
    agreeing = 0
    for item in natural:
        orders = item.metadata["judge_orders"]["GPT-4"]
        gold = PairwiseAnswer.objects.get(annotation__item=item, annotation__source="human")
        gold_winner = gold.chosen.position + 1
        agreeing += orders["original"] == orders["swapped"] == gold_winner
    assert agreeing == 93
    # Orders that disagree became a tie on the judge's label.
    inconsistent = [
        i for i in natural if len(set(i.metadata["judge_orders"]["ChatGPT"].values())) == 2
    ]
    assert inconsistent
    for item in inconsistent:
        answer = PairwiseAnswer.objects.get(annotation__item=item, annotation__judge_name="ChatGPT")
        assert answer.tie


def test_the_mtbench_importer_reads_four_judges_and_the_expert_majority(mtbench_project):
    inputs = routing_inputs(project=mtbench_project, judge="GPT-4")
    assert len(inputs.item_ids) == 200
    human = [h for h in inputs.human if not math.isnan(h)]
    assert len(human) == 200 and human.count(1.0) == 101
    both_right = sum(
        1
        for h, a, inc in zip(inputs.human, inputs.ai, inputs.position_inconsistent, strict=True)
        if a == h and not inc
    )
    assert both_right == 149  # SOURCE.md: GPT-4 agrees with the majority in both orders
    judges = set(
        Annotation.objects.filter(project=mtbench_project, source="ai").values_list(
            "judge_name", flat=True
        )
    )
    assert judges == {"GPT-4", "ChatGPT", "LLaMA2", "PaLM2"}


@pytest.mark.slow
def test_a_route_job_from_the_api_routes_the_budget_and_serves_human_items_first(
    mtbench_project, alice, api, tiny_embeddings
):
    client = api(alice)
    response = client.post(
        f"/api/v1/projects/{mtbench_project.id}/jobs/",
        {
            "kind": "route",
            "params": {**FAST, "budget": 0.2, "strategy": "error", "judge": "ChatGPT"},
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    job = client.get(f"/api/v1/projects/{mtbench_project.id}/jobs/{response.json()['id']}/").json()
    assert job["status"] == JobStatus.SUCCEEDED, job["error"]
    result = job["result"]
    assert result["used"] == "error" and result["fallback"] is None
    assert result["routed_human"] == 40 and result["routed_ai"] == 160
    assert "position_inconsistent" in result["features"]
    assert any(name.startswith("domain=") for name in result["features"])
    decisions = RoutingDecision.objects.filter(job_id=job["id"])
    assert decisions.count() == 200
    human = decisions.filter(route="human")
    # The judge-error model ranks the items whose two orders disagree first: ChatGPT's
    # inconsistent verdicts are never right.
    inconsistent = decisions.filter(features__position_inconsistent=True)
    assert inconsistent.count() > 40
    assert human.filter(features__position_inconsistent=True).count() == 40
    assert set(
        Item.objects.filter(priority__gte=HUMAN_PRIORITY_BASE).values_list("id", flat=True)
    ) == set(human.values_list("item_id", flat=True))
    # Curve: the strategy beats random at 25% on these (cross-fitted) labels.
    curve = {(p["strategy"], p["budget"]): p["label_accuracy"] for p in result["curve"]}
    assert curve[("error", 0.25)] > curve[("random", 0.25)]

    summary = client.get(f"/api/v1/projects/{mtbench_project.id}/routing/").json()
    assert summary["job"]["id"] == job["id"] and summary["counts"] == {"human": 40, "ai": 160}
    page = client.get(
        f"/api/v1/projects/{mtbench_project.id}/routing/decisions/?route=human"
    ).json()
    assert [d["rank"] for d in page["results"]] == list(range(1, 41))
    assert page["results"][0]["reason"].startswith("To the human: predicted judge error")

    # A fresh annotator is served the human-routed items first, in rank order.
    annotator = UserFactory(username="dora")
    Membership.objects.create(user=annotator, project=mtbench_project, role=Role.ANNOTATOR)
    served = assignment_claim_next(project=mtbench_project, annotator=annotator)
    assert served.item_id == page["results"][0]["item"]


def test_without_doubly_labelled_items_the_route_job_uses_the_prior_and_says_so(
    alice, api, tiny_embeddings
):
    project = ProjectFactory(created_by=alice)
    Membership.objects.create(user=alice, project=project, role=Role.ADMIN)
    make_questions(project)
    rows = []
    for i in range(12):
        verdict = (
            {"question": "preference", "chosen": 0, "rejected": 1, "tie": True}
            if i % 3 == 0
            else {"question": "preference", "chosen": 0, "rejected": 1}
        )
        rows.append(
            {
                "external_id": f"x{i}",
                "prompt": f"question number {i} about cooking pasta",
                "responses": [{"text": f"answer {i} one"}, {"text": f"answer {i} two words"}],
                "annotations": [{"source": "ai", "judge": "stub", "answers": [verdict]}],
            }
        )
    items_import(project=project, lines=[json.dumps(r) for r in rows], fmt="native")
    client = api(alice)
    response = client.post(
        f"/api/v1/projects/{project.id}/jobs/",
        {"kind": "route", "params": {"budget": 0.25, "strategy": "gain", "clusters": 2}},
        format="json",
    )
    job = client.get(f"/api/v1/projects/{project.id}/jobs/{response.json()['id']}/").json()
    assert job["status"] == JobStatus.SUCCEEDED, job["error"]
    assert job["result"]["used"] == "prior"
    assert "routed by the prior" in job["result"]["fallback"]
    human = RoutingDecision.objects.filter(job_id=job["id"], route="human")
    assert human.count() == 3
    # The judge's ties (its orders disagreed) go to humans first.
    assert {d.item.external_id for d in human} <= {"x0", "x3", "x6", "x9"}


def test_sending_ai_routed_items_to_the_judge_is_a_400_naming_the_judge_without_one(
    mtbench_project, alice, api, tiny_embeddings
):
    client = api(alice)
    response = client.post(
        f"/api/v1/projects/{mtbench_project.id}/jobs/",
        {"kind": "route", "params": {**FAST, "strategy": "prior", "judge": "GPT-4"}},
        format="json",
    )
    job_id = response.json()["id"]
    url = f"/api/v1/projects/{mtbench_project.id}/routing/send-to-judge/"
    missing = client.post(url, {"job": job_id}, format="json")
    assert missing.status_code == 400
    assert missing.json()["field"] == "judge"
    bad_route = client.get(f"/api/v1/projects/{mtbench_project.id}/routing/decisions/?route=x")
    assert bad_route.status_code == 400 and bad_route.json()["field"] == "route"


@pytest.mark.slow
def test_the_routing_report_writes_a_table_a_csv_and_a_plot(project, tiny_embeddings, tmp_path):
    from tests.browser.test_workspace_routing import judged_rows

    items_import(project=project, lines=[json.dumps(r) for r in judged_rows(36)], fmt="native")
    out = io.StringIO()
    call_command(
        "routing_report",
        "--project",
        str(project.id),
        "--out",
        str(tmp_path),
        "--mixes",
        "4",
        "--folds",
        "2",
        "--no-reward-model",
        stdout=out,
    )
    rows = list(csv.DictReader((tmp_path / "routing_report.csv").open()))
    assert len(rows) == 15  # one judge × three strategies × five budgets
    at = {(r["strategy"], r["budget"]): float(r["label_accuracy"]) for r in rows}
    # The judge errs on every third item; routing by its error fixes them first.
    assert at[("error", "0.25")] > at[("random", "0.25")]
    assert at[("random", "1.0")] == at[("error", "1.0")] == 1.0
    table = (tmp_path / "routing_report.md").read_text()
    assert "| Alice's project | stub | 36 | (b) error |" in table
    assert "Aim (better strategy" in table
    assert "plotly" in (tmp_path / "routing_report.html").read_text()[:5000].lower()
    assert "aim at 25%" in out.getvalue()
    with pytest.raises(CommandError, match="No project with id"):
        call_command("routing_report", "--project", "999999", "--out", str(tmp_path))


@pytest.mark.slow
def test_the_routing_page_sends_the_ai_routed_items_to_a_judge_in_one_action(
    project, alice, client, tiny_embeddings, settings
):
    from curation.judges.services import judge_create
    from curation.models import Job, JobKind, Route
    from curation.services.jobs import job_create
    from tests.browser.test_workspace_routing import judged_rows
    from tests.judge_stub import JudgeStub

    settings.BALLOT_OUTBOUND_ALLOW_PRIVATE = True
    items_import(project=project, lines=[json.dumps(r) for r in judged_rows(24)], fmt="native")
    routing = job_create(
        project=project,
        kind="route",
        params={"budget": 0.25, "strategy": "prior", "clusters": 2},
        user=alice,
        in_thread=False,
    )
    stub = JudgeStub().start()
    try:
        judge = judge_create(
            project=project,
            user=alice,
            data={"name": "remote", "backend": "openai", "base_url": stub.base_url, "model": "m"},
        )
        client.force_login(alice)
        response = client.post(f"/projects/{project.id}/routing/send/", {"judge": str(judge.id)})
    finally:
        stub.stop()
    labelling = Job.objects.get(project=project, kind=JobKind.LABEL_AI)
    assert response.status_code == 302
    assert response["Location"].endswith(f"/jobs/{labelling.id}/")
    ai_routed = set(
        RoutingDecision.objects.filter(job=routing, route=Route.AI).values_list(
            "item_id", flat=True
        )
    )
    assert set(labelling.params["item_ids"]) == ai_routed and len(ai_routed) == 18
    assert labelling.status == JobStatus.SUCCEEDED, labelling.error
    labelled = set(
        Annotation.objects.filter(project=project, judge_name__startswith="remote").values_list(
            "item_id", flat=True
        )
    )
    assert labelled == ai_routed
