"""The reliability job: Dawid–Skene fits over real and simulated human labels, and its rows."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest
from django.utils.text import slugify

from annotation.adapters import squality, tulu1_pairwise
from annotation.models import Item, Response, Role
from annotation.services import items_import, question_create
from curation.jobs.kinds.reliability import leave_one_out_agreement
from curation.models import (
    AnnotatorReliability,
    DatasetVersion,
    ItemPosterior,
    Job,
    JobKind,
    JobStatus,
)
from curation.pairs import Selection, iter_preference_pairs
from curation.services import job_create
from curation.storage import absolute
from tests.api_mixins import ScopedEndpointTests
from tests.datasets import dataset
from tests.factories import MembershipFactory, ProjectFactory, UserFactory


@pytest.fixture(autouse=True)
def own_storage(settings, tmp_path):
    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    settings.BALLOT_JOBS_IN_THREAD = False


def import_adapted(project, adapted) -> None:
    for spec in adapted.questions:
        question_create(project=project, **spec)
    items_import(project=project, lines=[json.dumps(row) for row in adapted.rows], fmt=adapted.fmt)


def run_reliability(project, user, **params) -> Job:
    job = job_create(project=project, kind=JobKind.RELIABILITY, params=params, user=user)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job


def handle_of(username: str) -> str:
    return username.removeprefix("imported-")


# ------------------------------------------------------------------ real data


def tulu_votes() -> dict[int, dict[str, str]]:
    """Straight from the upstream file: instance -> evaluator -> first / second / tie
    (models ordered by name), an evaluator's first judgement of an instance only."""
    path = dataset("tulu1_human_eval") / "eval_annotations_tulu_1.jsonl"
    votes: dict[int, dict[str, str]] = defaultdict(dict)
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["evaluator"] in votes[row["instance_index"]]:
            continue  # the importer keeps an evaluator's first judgement too
        first = min(row["model_a"], row["model_b"])
        preference = row["preference"]
        if preference == "tie":
            answer = "tie"
        else:
            winner = row["model_a"] if preference.startswith("a-") else row["model_b"]
            answer = "first" if winner == first else "second"
        votes[row["instance_index"]][row["evaluator"]] = answer
    return votes


def tulu_majority_agreement(
    votes: dict[int, dict[str, str]],
) -> tuple[dict[str, float], dict[str, int]]:
    """Per evaluator: the share of their answers that match the strict majority of the
    other evaluators on the same instance; instances where the others split are not
    counted. Independent of the importer and of the job. Also the votes scored."""
    agree: Counter[str] = Counter()
    scored: Counter[str] = Counter()
    for coders in votes.values():
        for who, answer in coders.items():
            others = Counter(a for other, a in coders.items() if other != who).most_common()
            if not others or (len(others) > 1 and others[0][1] == others[1][1]):
                continue
            scored[who] += 1
            agree[who] += others[0][0] == answer
    return (
        {slugify(who): agree[who] / scored[who] for who in scored},
        {slugify(who): scored[who] for who in scored},
    )


@pytest.mark.slow
def test_on_tulu_the_fit_converges_and_reliability_tracks_agreement_with_the_majority(alice):
    project = ProjectFactory(created_by=alice)
    import_adapted(project, tulu1_pairwise(dataset("tulu1_human_eval")))

    job = run_reliability(project, alice)

    (fit,) = job.result["fits"]
    assert fit["question"] == "preference" and fit["converged"]
    assert fit["annotators"] == 16
    votes = tulu_votes()
    assert fit["votes"] == sum(len(coders) for coders in votes.values())
    rows = {
        handle_of(r.annotator.username): r
        for r in AnnotatorReliability.objects.filter(job=job).select_related("annotator")
    }
    assert len(rows) == 16
    expected, scored = tulu_majority_agreement(votes)
    # The job's own agreement column is the same leave-one-out statistic, computed apart.
    for who, share in expected.items():
        assert rows[who].agreement == pytest.approx(share)
    # Only 121 of the 996 comparisons have a second judgement, so most evaluators have a
    # handful of votes that another evaluator can confirm; an agreement share over one or
    # two of them is noise. Over the nine evaluators with at least five: r = 0.49.
    people = sorted(who for who in expected if scored[who] >= 5)
    assert len(people) == 9
    reliability = [rows[who].reliability for who in people]
    agreement = [expected[who] for who in people]
    correlation = float(np.corrcoef(reliability, agreement)[0, 1])
    assert correlation > 0.3, correlation
    multiply = ItemPosterior.objects.filter(job=job, votes__gte=2)
    assert multiply.count() == 121
    assert (
        ItemPosterior.objects.filter(job=job).count()
        == Item.objects.filter(project=project).count()
    )


def squality_majority_agreement(aspect: str, bins: int = 5) -> dict[str, float]:
    """Per worker and from the upstream file: matches of their binned rating (0–100 cut
    into ``bins`` equal classes) with the strict majority class of the other reviewers."""
    path = dataset("squality_human_eval") / "all-responses.jsonl"
    agree: Counter[str] = Counter()
    scored: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        passage = json.loads(line)
        for systems in passage["questions"].values():
            for entry in systems.values():
                ratings = {
                    r["worker_id"]: min(int(r[f"{aspect}-rating"] / 100 * bins), bins - 1)
                    for r in entry["reviews"]
                    if r.get(f"{aspect}-rating") is not None
                }
                for who, value in ratings.items():
                    others = Counter(v for o, v in ratings.items() if o != who).most_common()
                    if not others or (len(others) > 1 and others[0][1] == others[1][1]):
                        continue
                    scored[who] += 1
                    agree[who] += others[0][0] == value
    return {slugify(who): agree[who] / scored[who] for who in scored}


@pytest.mark.slow
def test_on_squality_every_aspect_converges_and_reliability_tracks_agreement(alice):
    project = ProjectFactory(created_by=alice)
    import_adapted(project, squality(dataset("squality_human_eval")))

    job = run_reliability(project, alice)

    fits = {fit["aspect"]: fit for fit in job.result["fits"]}
    assert set(fits) == {"correctness", "selection", "overall"}
    reliability, agreement = [], []
    for aspect, fit in fits.items():
        assert fit["converged"] and fit["kind"] == "rating" and fit["classes"] == 5, json.dumps(fit)
        assert fit["units"] == 300 and fit["votes"] == 900 and fit["annotators"] == 4
        expected = squality_majority_agreement(aspect)
        for row in AnnotatorReliability.objects.filter(job=job, aspect=aspect).select_related(
            "annotator"
        ):
            who = handle_of(row.annotator.username)
            assert row.agreement == pytest.approx(expected[who])
            reliability.append(row.reliability)
            agreement.append(expected[who])
    # Four workers and three aspects: 12 points. Measured: r = 0.85.
    correlation = float(np.corrcoef(reliability, agreement)[0, 1])
    assert correlation > 0.5, correlation
    values = ItemPosterior.objects.filter(job=job, aspect="overall").values_list("value", flat=True)
    assert set(values) <= {10.0, 30.0, 50.0, 70.0, 90.0}


# ------------------------------------------------------------------ simulated project


def simulated_rows(seed: int = 0, n_items: int = 240):
    """Pairwise items (two responses) labelled by three of twelve annotators each:
    eight honest (accuracy 0.75–0.9), two spammers (uniform over A, B, tie), two
    adversaries (A and B swapped). Every fourth item is gold with its true answer."""
    rng = np.random.default_rng(seed)
    honest = [f"honest-{i}" for i in range(8)]
    spammers, adversaries = ["spam-0", "spam-1"], ["adversary-0", "adversary-1"]
    everyone = honest + spammers + adversaries
    accuracy = dict(zip(honest, np.linspace(0.75, 0.9, len(honest)), strict=True))
    truth = {}
    rows = []
    for index in range(n_items):
        true = int(rng.choice([0, 1, 2], p=[0.45, 0.45, 0.1]))  # 0: response 0 better; 2: tie
        truth[f"sim-{index}"] = true
        annotations = []
        for who in rng.choice(everyone, 3, replace=False):
            if who in spammers:
                label = int(rng.integers(0, 3))
            elif who in adversaries:
                label = {0: 1, 1: 0, 2: 2}[true]
            elif rng.random() < accuracy[who]:
                label = true
            else:
                label = int(rng.choice([c for c in (0, 1, 2) if c != true]))
            annotations.append({"annotator": who, "answers": [answer_of(label)]})
        row = {
            "external_id": f"sim-{index}",
            "prompt": f"Prompt {index}",
            "responses": [f"first answer {index}", f"second answer {index}"],
            "annotations": annotations,
        }
        if index % 4 == 0:
            row["is_gold"] = True
            row["gold_answer"] = {"answers": [answer_of(true)]}
        rows.append(row)
    return rows, truth, spammers + adversaries


def answer_of(label: int) -> dict:
    if label == 2:
        return {"question": "preference", "chosen": 0, "rejected": 1, "tie": True}
    return {"question": "preference", "chosen": label, "rejected": 1 - label}


@pytest.fixture
def simulated(alice):
    project = ProjectFactory(created_by=alice)
    MembershipFactory(user=alice, project=project, role=Role.ADMIN)
    question_create(project=project, kind="pairwise", name="preference", config={})
    rows, truth, planted = simulated_rows()
    items_import(project=project, lines=[json.dumps(row) for row in rows], fmt="native")
    return project, truth, planted


def posterior_accuracy(job: Job, truth: dict[str, int], *, gold: bool) -> float:
    correct = []
    for row in ItemPosterior.objects.filter(job=job).select_related("item"):
        if row.item.is_gold != gold:
            continue
        low, high = (int(x) for x in row.unit.split("-"))
        first = row.item.responses.order_by("position").first().id
        # the label is oriented by response id; the truth by position
        true = truth[row.item.external_id]
        if true != 2 and first != low:
            true = 1 - true
        correct.append(row.label == true)
    return float(np.mean(correct))


def majority_accuracy(rows: list[dict], truth: dict[str, int]) -> float:
    """Plain vote counting on the non-gold items; a split top is wrong."""
    correct = []
    for row in rows:
        if row.get("is_gold"):
            continue
        counts = Counter()
        for annotation in row["annotations"]:
            answer = annotation["answers"][0]
            counts[2 if answer.get("tie") else answer["chosen"]] += 1
        ranked = counts.most_common()
        won = ranked[0][0] if len(ranked) == 1 or ranked[0][1] > ranked[1][1] else None
        correct.append(won == truth[row["external_id"]])
    return float(np.mean(correct))


@pytest.mark.parametrize("model", ["dawid-skene", "mace"])
def test_planted_spammers_and_adversaries_come_out_least_reliable(simulated, alice, model):
    project, truth, planted = simulated
    job = run_reliability(project, alice, model=model)
    rows = AnnotatorReliability.objects.filter(job=job).select_related("annotator")
    by_name = {handle_of(r.annotator.username): r.reliability for r in rows}
    assert len(by_name) == 12
    lowest = sorted(by_name, key=by_name.get)[: len(planted)]
    assert set(lowest) == set(planted), by_name


def test_posterior_labels_beat_the_majority_vote_on_the_simulated_project(simulated, alice):
    project, truth, _ = simulated
    rows, _, _ = simulated_rows()
    job = run_reliability(project, alice, use_gold=False)
    ours = posterior_accuracy(job, truth, gold=False)
    baseline = majority_accuracy(rows, truth)
    # Measured: 0.93 against 0.67.
    assert ours > baseline + 0.1, (ours, baseline)


def test_gold_items_anchor_the_fit(simulated, alice):
    project, truth, _ = simulated
    anchored = run_reliability(project, alice)
    free = run_reliability(project, alice, use_gold=False)
    assert anchored.result["fits"][0]["gold_units"] == 60
    assert free.result["fits"][0]["gold_units"] == 0
    # Gold units are clamped to their expected answer, with full confidence.
    assert posterior_accuracy(anchored, truth, gold=True) == 1.0
    gold_rows = ItemPosterior.objects.filter(job=anchored, item__is_gold=True)
    assert all(row.confidence == 1.0 for row in gold_rows)
    assert posterior_accuracy(free, truth, gold=True) < 1.0


def test_a_rerun_replaces_the_rows_instead_of_adding_to_them(simulated, alice):
    from curation.jobs.kinds.reliability import run

    project, _, _ = simulated
    job = run_reliability(project, alice)
    counts = (
        AnnotatorReliability.objects.filter(job=job).count(),
        ItemPosterior.objects.filter(job=job).count(),
    )
    first = list(ItemPosterior.objects.filter(job=job).values_list("unit", "label", "confidence"))
    run(job, lambda fraction, message: None)
    assert counts == (
        AnnotatorReliability.objects.filter(job=job).count(),
        ItemPosterior.objects.filter(job=job).count(),
    )
    assert first == list(
        ItemPosterior.objects.filter(job=job).values_list("unit", "label", "confidence")
    )


def test_the_job_reports_rising_progress_per_fit(simulated, alice):
    from curation.jobs.kinds.reliability import run

    project, _, _ = simulated
    job = run_reliability(project, alice)
    reported: list[tuple[float, str]] = []
    run(job, lambda fraction, message: reported.append((fraction, message)))
    fractions = [fraction for fraction, _ in reported]
    assert fractions == sorted(fractions) and 0 <= fractions[0] < fractions[-1] < 1
    assert [message for _, message in reported] == [
        "reading human labels",
        "fitting preference (720 votes)",  # 240 items, three votes each
        "storing reliabilities and posteriors",
    ]


def test_ratings_become_ordinal_classes_with_the_rating_they_stand_for(alice):
    project = ProjectFactory(created_by=alice)
    question_create(
        project=project,
        kind="rating",
        name="quality",
        config={"aspects": ["overall"], "scale": {"min": 1, "max": 5}},
    )
    rng = np.random.default_rng(1)
    rows, truth = [], {}
    for index in range(60):
        true = int(rng.integers(1, 6))
        truth[f"r-{index}"] = true
        annotations = [
            {
                "annotator": who,
                "answers": [
                    {
                        "question": "quality",
                        "ratings": [
                            {
                                "response": 0,
                                "aspect": "overall",
                                "value": int(np.clip(true + rng.choice([-1, 0, 0, 1]), 1, 5)),
                            }
                        ],
                    }
                ],
            }
            for who in ("ann", "bea", "cal")
        ]
        rows.append(
            {
                "external_id": f"r-{index}",
                "prompt": f"p{index}",
                "responses": [f"answer {index}"],
                "annotations": annotations,
            }
        )
    items_import(project=project, lines=[json.dumps(row) for row in rows], fmt="native")

    job = run_reliability(project, alice)

    (fit,) = job.result["fits"]
    assert fit["kind"] == "rating" and fit["classes"] == 5 and fit["converged"]
    posteriors = ItemPosterior.objects.filter(job=job).select_related("item")
    assert posteriors.count() == 60
    for row in posteriors:
        assert row.value == row.label + 1  # scale 1..5, one class per step
        assert len(row.posterior) == 5
    accuracy = np.mean([row.value == truth[row.item.external_id] for row in posteriors])
    assert accuracy > 0.6
    confusion = np.array(AnnotatorReliability.objects.filter(job=job).first().confusion)
    # the ordinal prior: a rater's answer for true 3 leans on 2 and 4, not on 1 and 5
    assert confusion[2, 1] > confusion[2, 4] and confusion[2, 3] > confusion[2, 0]


def test_leave_one_out_agreement_skips_units_without_a_majority_of_others() -> None:
    units = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3])
    labels = np.array([0, 0, 1, 0, 1, 2, 0, 1, 2])
    scored, agrees = leave_one_out_agreement(units, labels, 4, 3)
    # unit 0: the dissenter meets a majority of two and disagrees, each of the two others
    # meets a split; unit 1: each vote meets the other one; unit 2: the others always
    # split; unit 3: a lone vote has no others
    assert scored.tolist() == [False, False, True, True, True, False, False, False, False]
    assert agrees.tolist() == [False] * 9
    scored, agrees = leave_one_out_agreement(np.array([0, 0, 0]), np.array([1, 1, 1]), 1, 2)
    assert scored.all() and agrees.all()


def test_bad_parameters_are_refused_naming_the_field(project, alice, api):
    question_create(project=project, kind="ranking", name="order", config={})
    client = api(alice)
    url = f"/api/v1/projects/{project.id}/jobs/"
    for params, field in (
        ({"questions": ["order"]}, "params.questions"),
        ({"model": "glad"}, "params.model"),
        ({"rating_bins": 1}, "params.rating_bins"),
        ({"smoothing": 0}, "params.smoothing"),
    ):
        response = client.post(url, {"kind": "reliability", "params": params}, format="json")
        assert response.status_code == 400, response.content
        assert field in json.dumps(response.json()), response.json()


def test_a_project_without_human_labels_fails_the_job_with_the_reason(project, alice):
    job = job_create(project=project, kind=JobKind.RELIABILITY, params={}, user=alice)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "No human pairwise or rating labels" in job.error


# ------------------------------------------------------------------ the reliability policy


def test_the_reliability_policy_is_refused_until_a_reliability_job_succeeded(simulated, alice, api):
    project, _, _ = simulated
    client = api(alice)
    body = {"format": "trl_preference", "outputs": ["jsonl"], "aggregation": "reliability"}
    response = client.post(f"/api/v1/projects/{project.id}/datasets/", body, format="json")
    assert response.status_code == 400, response.content
    assert "params.aggregation" in json.dumps(response.json())
    assert "reliability job" in json.dumps(response.json())
    run_reliability(project, alice)
    response = client.post(f"/api/v1/projects/{project.id}/datasets/", body, format="json")
    assert response.status_code == 202, response.content


def test_pairs_under_the_reliability_policy_carry_the_posterior_label_and_confidence(
    simulated, alice
):
    project, truth, _ = simulated
    job = run_reliability(project, alice)
    posteriors = {(row.item_id, row.unit): row for row in ItemPosterior.objects.filter(job=job)}

    pairs = list(
        iter_preference_pairs(project=project, selection=Selection(aggregation="reliability"))
    )
    majority = list(iter_preference_pairs(project=project, selection=Selection()))

    non_gold = Item.objects.filter(project=project, is_gold=False).count()
    assert len(pairs) == non_gold  # a posterior always names a label: no split is dropped
    assert len(majority) < non_gold  # majority drops every 1-1-1 split
    first_position = dict(
        Response.objects.filter(item__project=project, position=0).values_list("item_id", "id")
    )

    def correct(pair) -> bool:
        true = truth[pair.external_id]
        if pair.tie:
            return true == 2
        return true == (0 if pair.chosen_response_id == first_position[pair.item_id] else 1)

    for pair in pairs:
        low, high = sorted((pair.chosen_response_id, pair.rejected_response_id))
        posterior = posteriors[(pair.item_id, f"{low}-{high}")]
        assert pair.agreement == posterior.confidence
        assert pair.tie == (posterior.label == 2)
        if not pair.tie:
            assert pair.chosen_response_id == (low if posterior.label == 0 else high)
    reliability_correct = sum(correct(p) for p in pairs)
    majority_correct = sum(correct(p) for p in majority)
    assert reliability_correct > majority_correct + 0.1 * non_gold


def test_an_export_with_the_reliability_policy_follows_the_latest_fit(
    simulated, alice, django_capture_on_commit_callbacks
):
    project, _, _ = simulated
    run_reliability(project, alice)
    latest = run_reliability(project, alice, model="mace")
    with django_capture_on_commit_callbacks(execute=True):
        export = job_create(
            project=project,
            kind=JobKind.EXPORT,
            params={
                "format": "trl_preference",
                "outputs": ["jsonl"],
                "aggregation": "reliability",
                "test_fraction": 0,
                "include_ties": False,
            },
            user=alice,
        )
    export.refresh_from_db()
    assert export.status == JobStatus.SUCCEEDED, export.error
    version = DatasetVersion.objects.get(job=export)
    assert version.aggregation == "reliability"
    assert version.manifest["aggregation"]["reliability_job"] == latest.id
    rows = [
        json.loads(line)
        for line in (absolute(version.path) / "jsonl" / "train.jsonl").read_text().splitlines()
    ]
    expected = [
        pair
        for pair in iter_preference_pairs(
            project=project,
            selection=Selection(aggregation="reliability", reliability_job=latest.id),
        )
        if not pair.tie
    ]
    assert len(rows) == len(expected) > 0
    assert [row["chosen"] for row in rows] == [pair.chosen_text for pair in expected]
    texts = dict(Response.objects.filter(item__project=project).values_list("id", "text"))
    for pair in expected:
        assert texts[pair.chosen_response_id] == pair.chosen_text


# ------------------------------------------------------------------ API and quality table


class TestJobReliabilityEndpoint(ScopedEndpointTests):
    def url(self, world):
        job = Job.objects.create(
            project=world.project, kind=JobKind.RELIABILITY, status=JobStatus.SUCCEEDED
        )
        return f"/api/v1/projects/{world.project.id}/jobs/{job.id}/reliability/"


def test_the_reliability_endpoint_serves_the_scatter_data_with_pseudonyms_to_curators(
    simulated, alice, api
):
    project, _, planted = simulated
    carol = UserFactory(username="carol")
    MembershipFactory(user=carol, project=project, role=Role.CURATOR)
    job = run_reliability(project, alice)
    url = f"/api/v1/projects/{project.id}/jobs/{job.id}/reliability/"

    as_curator = api(carol).get(url).json()
    as_admin = api(alice).get(url).json()

    assert as_curator["fitted"] and as_curator["model"] == "dawid-skene"
    (fit,) = as_curator["fits"]
    assert fit["question"] == "preference" and fit["aspect"] is None
    assert len(fit["annotators"]) == 12
    assert all("username" not in a for a in fit["annotators"])
    assert not any("imported" in a["annotator"] for a in fit["annotators"])
    assert fit["correlation"] == pytest.approx(
        job.result["fits"][0]["reliability_agreement_correlation"], abs=1e-4
    )
    rows = {
        r.annotator.username: r
        for r in AnnotatorReliability.objects.filter(job=job).select_related("annotator")
    }
    for entry in as_admin["fits"][0]["annotators"]:
        row = rows[entry["username"]]
        assert entry["reliability"] == pytest.approx(row.reliability, abs=1e-4)
        assert entry["votes"] == row.votes
    # most reliable first: the planted spammers and adversaries come last
    last = {handle_of(a["username"]) for a in as_admin["fits"][0]["annotators"][-len(planted) :]}
    assert last == set(planted)


def test_the_quality_table_shows_each_annotators_latest_reliability(simulated, alice, api):
    project, _, _ = simulated
    url = f"/api/v1/projects/{project.id}/quality/annotators/"
    before = api(alice).get(url).json()
    assert before["reliability_job"] is None
    assert all(row["reliability"] is None for row in before["annotators"])

    job = run_reliability(project, alice)

    after = api(alice).get(url).json()
    assert after["reliability_job"] == job.id
    expected = {
        r.annotator.username: r.reliability
        for r in AnnotatorReliability.objects.filter(job=job).select_related("annotator")
    }
    assert {row["username"]: row["reliability"] for row in after["annotators"]} == pytest.approx(
        expected, abs=1e-4
    )
