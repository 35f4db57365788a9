"""Chart data of the quality page: each endpoint's values against the rows written, and who may read them.

The reference values are computed here from the rows the test wrote, through
the numpy implementation in ``curation.agreement`` (itself checked against the
``krippendorff`` package), never through the SQL the charts run.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from annotation.models import (
    Annotation,
    AnnotatorProfile,
    Item,
    Membership,
    PairwiseAnswer,
    Project,
    RankingAnswer,
    RatingAnswer,
    Role,
    Source,
)
from annotation.pseudonyms import pseudonym
from annotation.services import quality_summaries_rebuild
from curation import agreement
from tests.api_mixins import ScopedEndpointTests
from tests.factories import ItemFactory, UserFactory, make_questions

QUESTIONS = [
    {
        "kind": "pairwise",
        "name": "preference",
        "config": {"allow_tie": True, "strength_scale": {"min": 1, "max": 3}},
    },
    {"kind": "ranking", "name": "ranking"},
    {
        "kind": "rating",
        "name": "aspects",
        "config": {"aspects": ["helpfulness", "honesty"], "scale": {"min": 1, "max": 5}},
    },
]
GENDERS = ["woman"] * 5 + ["man"] + [None]


def build_quality_project(
    project: Project, *, annotators: int = 7, items: int = 12, seed: int = 7
) -> dict:
    """Fill ``project`` with labelled data: profiled annotators, items over four days, one gold item.

    Every annotator labels every item (pairwise with ties and strength, a
    ranking, two rating aspects on each response) with answers that mostly
    agree; the last annotator answers at random and misses the gold item.
    An AI judge labels half the items. Returns the users and items written.
    """
    rng = random.Random(seed)
    if not project.questions.exists():
        make_questions(project, QUESTIONS)
    questions = {q.name: q for q in project.questions.all()}
    project.overlap = 3
    project.save(update_fields=["overlap"])
    users = []
    for index in range(annotators):
        user = UserFactory(username=f"labeller{index}")
        Membership.objects.get_or_create(
            user=user, project=project, defaults={"role": Role.ANNOTATOR}
        )
        if index < len(GENDERS) - 1:
            AnnotatorProfile.objects.create(
                user=user, gender=GENDERS[index], age_band="25-34" if index % 2 else None
            )
        users.append(user)
    start = timezone.now() - timedelta(days=4)
    made = [
        ItemFactory(
            project=project,
            conversation=[{"role": "user", "content": f"Question {n}: say something nice."}],
            responses=[f"Alpha answer {n}.", f"Beta answer {n}.", f"Gamma answer {n}."],
        )
        for n in range(items)
    ]
    gold = ItemFactory(
        project=project,
        is_gold=True,
        gold_answer={"answers": [{"question": "preference", "chosen": 0, "rejected": 1}]},
        responses=["Right answer.", "Wrong answer."],
    )
    for number, item in enumerate([*made, gold]):
        responses = list(item.responses.order_by("position"))
        truth = item.is_gold or rng.random() < 0.6  # position 0 wins on this item
        for index, user in enumerate(users):
            careless = index == len(users) - 1
            created = start + timedelta(days=number % 4, minutes=index)
            annotation = Annotation.objects.create(
                project=project,
                item=item,
                annotator=user,
                source=Source.HUMAN,
                time_spent_ms=1000 * (index + 2) + number,
            )
            Annotation.objects.filter(pk=annotation.pk).update(created_at=created)
            first = truth if not careless else rng.random() < 0.5
            if item.is_gold and careless:
                first = False
            tie = not careless and rng.random() < 0.1 and not item.is_gold
            chosen, rejected = (
                (responses[0], responses[1]) if first else (responses[1], responses[0])
            )
            PairwiseAnswer.objects.create(
                annotation=annotation,
                question=questions["preference"],
                chosen=chosen,
                rejected=rejected,
                tie=tie,
                strength=None if tie else rng.choice([1, 2, 3]),
            )
            order = [r.id for r in responses]
            if not first:
                order[0], order[1] = order[1], order[0]
            RankingAnswer.objects.create(
                annotation=annotation,
                question=questions["ranking"],
                ranking=[[rid] for rid in order],
            )
            for response in responses:
                for aspect in ("helpfulness", "honesty"):
                    base = 4 if (response.position == 0) == truth else 2
                    value = rng.randint(1, 5) if careless else base + rng.choice([0, 0, 1])
                    RatingAnswer.objects.create(
                        annotation=annotation,
                        question=questions["aspects"],
                        response=response,
                        aspect=aspect,
                        value=value,
                    )
        if number % 2 == 0 and not item.is_gold:
            judged = Annotation.objects.create(
                project=project, item=item, source=Source.AI, judge_name="judge-1"
            )
            PairwiseAnswer.objects.create(
                annotation=judged,
                question=questions["preference"],
                chosen=responses[0],
                rejected=responses[1],
            )
    # The rows above were written with the ORM, past the answer writers (as a bulk load
    # would be): recount the quality summaries from them, as the rebuild command does.
    quality_summaries_rebuild(project_id=project.id)
    return {"users": users, "items": made, "gold": gold}


# --------------------------------------------------------------------------- references


def reference_units(project: Project, kind: str) -> dict:
    """unit -> annotator -> value from the stored rows, the quality report's unit shapes."""
    units: dict = defaultdict(dict)
    human = {"annotation__source": Source.HUMAN, "annotation__item__is_gold": False}
    if kind == "pairwise":
        for a in PairwiseAnswer.objects.filter(annotation__project=project, **human).select_related(
            "annotation"
        ):
            lo, hi = sorted((a.chosen_id, a.rejected_id))
            value = "tie" if a.tie else ("lo" if a.chosen_id == lo else "hi")
            units[(a.annotation.item_id, lo, hi)][a.annotation.annotator_id] = value
    elif kind == "rating":
        for a in RatingAnswer.objects.filter(annotation__project=project, **human).select_related(
            "annotation"
        ):
            units[(a.annotation.item_id, a.response_id, a.aspect)][a.annotation.annotator_id] = (
                a.value
            )
    else:
        for a in RankingAnswer.objects.filter(annotation__project=project, **human).select_related(
            "annotation"
        ):
            units[a.annotation.item_id][a.annotation.annotator_id] = str(a.ranking[0][0])
    return {unit: dict(coders) for unit, coders in units.items()}


def kept_time(milliseconds: int) -> int:
    """A time spent as the summaries keep it: to 0.1 s under 10 s, 1 s under 10 min, else 1 min."""
    step = 100 if milliseconds < 10_000 else 1000 if milliseconds < 600_000 else 60_000
    return milliseconds // step * step


def by_question(data: dict) -> dict:
    return {q["question"]: q for q in data["questions"]}


@pytest.fixture
def filled(project, alice):
    cache.clear()
    world = build_quality_project(project)
    curator = UserFactory(username="carol")
    Membership.objects.create(user=curator, project=project, role=Role.CURATOR)
    world["curator"] = curator
    return world


def get(api, user, project, name: str, **params):
    response = api(user).get(f"/api/v1/projects/{project.id}/quality/{name}/", params)
    assert response.status_code == 200, response.content
    return response.json()


# --------------------------------------------------------------------------- agreement


def test_agreement_alpha_per_question_matches_the_reference_implementation(
    api, alice, project, filled
):
    data = by_question(get(api, alice, project, "agreement"))
    pairwise = reference_units(project, "pairwise")
    assert data["preference"]["krippendorff_alpha"] == pytest.approx(
        agreement.krippendorff_alpha(pairwise, level="nominal"), abs=1e-4
    )
    assert data["preference"]["units"] == len(pairwise)
    ratings = reference_units(project, "rating")
    assert data["aspects"]["level"] == "interval"
    assert data["aspects"]["krippendorff_alpha"] == pytest.approx(
        agreement.krippendorff_alpha(ratings, level="interval"), abs=1e-4
    )
    ranking = reference_units(project, "ranking")
    assert data["ranking"]["krippendorff_alpha"] == pytest.approx(
        agreement.krippendorff_alpha(ranking, level="nominal"), abs=1e-4
    )


def test_fleiss_kappa_matches_the_reference_on_units_with_the_modal_rater_count(
    api, alice, project, filled
):
    data = by_question(get(api, alice, project, "agreement"))
    units = reference_units(project, "pairwise")
    sizes = Counter(len(c) for c in units.values())
    raters = max(sizes, key=lambda s: (sizes[s], s))
    counts, _ = agreement.fleiss_counts(
        {u: list(c.values()) for u, c in units.items() if len(c) == raters}
    )
    fleiss = data["preference"]["fleiss_kappa"]
    assert fleiss["raters_per_unit"] == raters
    assert fleiss["kappa"] == pytest.approx(agreement.fleiss_kappa(counts), abs=1e-4)


def test_agreement_over_time_gives_each_day_its_units_and_a_cumulative_alpha(
    api, alice, project, filled
):
    data = get(api, alice, project, "agreement", period="day")
    assert data["period"] == "day"
    series = by_question(data)["preference"]["series"]
    units = reference_units(project, "pairwise")
    # A unit belongs to the day of its last annotation.
    last_day: dict = {}
    for annotation in Annotation.objects.filter(
        project=project, source=Source.HUMAN, item__is_gold=False
    ):
        day = annotation.created_at.date().isoformat()
        last_day[annotation.item_id] = max(last_day.get(annotation.item_id, day), day)
    days = sorted(set(last_day.values()))
    assert [point["period"] for point in series] == days
    for point in series:
        in_day = {u: c for u, c in units.items() if last_day[u[0]] == point["period"]}
        up_to = {u: c for u, c in units.items() if last_day[u[0]] <= point["period"]}
        assert point["units"] == len(in_day)
        assert point["alpha"] == pytest.approx(
            agreement.krippendorff_alpha(in_day, level="nominal"), abs=1e-4
        )
        assert point["alpha_cumulative"] == pytest.approx(
            agreement.krippendorff_alpha(up_to, level="nominal"), abs=1e-4
        )
    assert series[-1]["alpha_cumulative"] == by_question(data)["preference"]["krippendorff_alpha"]


def test_an_unknown_period_is_refused_naming_the_field(api, alice, project, filled):
    response = api(alice).get(f"/api/v1/projects/{project.id}/quality/agreement/?period=year")
    assert response.status_code == 400
    assert response.json()["field"] == "period"


# --------------------------------------------------------------------------- annotators


def test_annotator_table_matches_the_majority_rule_gold_and_median_time(
    api, alice, project, filled
):
    rows = {row["annotator"]: row for row in get(api, alice, project, "annotators")["annotators"]}
    pairwise = reference_units(project, "pairwise")
    ranking = reference_units(project, "ranking")
    majority_pair = agreement.annotator_majority_agreement(pairwise)
    majority_rank = agreement.annotator_majority_agreement(ranking)
    for user in filled["users"]:
        row = rows[pseudonym(user.id, str(project.id))]
        assert row["username"] == user.username  # alice is an admin
        mine = Annotation.objects.filter(project=project, annotator=user)
        assert row["judgements"] == mine.count()
        a, b = majority_pair[user.id], majority_rank[user.id]
        counted = a.n_units + b.n_units
        agreed = round(a.value * a.n_units) + round(b.value * b.n_units)
        assert row["agreement_units"] == counted
        assert row["agreement_with_majority"] == pytest.approx(agreed / counted, abs=1e-4)
        # Times are kept to the tenth of a second under 10 s (see quality_summary.time_bucket).
        times = sorted(kept_time(m.time_spent_ms) for m in mine)
        middle = len(times) // 2
        median = times[middle] if len(times) % 2 else (times[middle - 1] + times[middle]) / 2
        assert row["median_seconds"] == pytest.approx(median / 1000, abs=1e-3)
    careless = rows[pseudonym(filled["users"][-1].id, str(project.id))]
    assert careless["gold_accuracy"] == 0.0 and careless["gold_items"] == 1
    careful = rows[pseudonym(filled["users"][0].id, str(project.id))]
    assert careful["gold_accuracy"] == 1.0


def test_a_curator_sees_pseudonyms_and_no_usernames(api, project, filled):
    rows = get(api, filled["curator"], project, "annotators")["annotators"]
    assert rows and all("username" not in row for row in rows)
    assert all(row["annotator"].startswith("ann-") for row in rows)
    names = {u.username for u in filled["users"]}
    assert not names & {str(value) for row in rows for value in row.values()}


def test_an_annotator_with_low_agreement_is_flagged(api, alice, project, filled):
    project.quality_threshold = 0.99
    project.save(update_fields=["quality_threshold"])
    rows = get(api, alice, project, "annotators")["annotators"]
    careless = next(r for r in rows if r["username"] == filled["users"][-1].username)
    assert careless["flagged"] and "agreement" in careless["reasons"][0]


# --------------------------------------------------------------------------- distributions


def test_label_distributions_count_choices_strength_positions_and_ratings(
    api, alice, project, filled
):
    data = by_question(get(api, alice, project, "label-distributions"))
    answers = PairwiseAnswer.objects.filter(annotation__project=project).select_related(
        "chosen", "annotation"
    )
    expected = Counter(
        ("tie" if a.tie else "AB"[a.chosen.position], a.annotation.source) for a in answers
    )
    assert {(source, label) for label, source in expected} >= {("ai", "A"), ("human", "tie")}
    assert data["preference"]["choice"] == [
        {"label": label, "human": expected[(label, "human")], "ai": expected[(label, "ai")]}
        for label in sorted({label for label, _ in expected}, key=lambda x: (x == "tie", x))
    ]
    strengths = Counter(str(a.strength) for a in answers if a.strength is not None)
    assert {r["value"]: r["count"] for r in data["preference"]["strength"]} == strengths
    positions = Counter("AB"[a.chosen.position] for a in answers if not a.tie)
    assert {r["value"]: r["count"] for r in data["preference"]["chosen_position"]} == positions
    ratings = Counter(
        (a.aspect, a.value) for a in RatingAnswer.objects.filter(annotation__project=project)
    )
    got = {
        (aspect["aspect"], value["value"]): value["count"]
        for aspect in data["aspects"]["aspects"]
        for value in aspect["values"]
    }
    assert got == ratings
    tops = Counter(
        "ABC"[item_position]
        for item_position in (
            Item.objects.get(pk=a.annotation.item_id).responses.get(pk=a.ranking[0][0]).position
            for a in RankingAnswer.objects.filter(annotation__project=project).select_related(
                "annotation"
            )
        )
    )
    assert {r["value"]: r["count"] for r in data["ranking"]["top_position"]} == tops


def test_coverage_counts_items_by_human_annotations_against_the_overlap(
    api, alice, project, filled
):
    extra = ItemFactory(project=project)  # never labelled
    data = get(api, alice, project, "coverage")
    per_item = Counter(
        Annotation.objects.filter(project=project, source=Source.HUMAN, item=item).count()
        for item in Item.objects.filter(project=project, is_gold=False)
    )
    assert {b["annotations"]: b["items"] for b in data["histogram"]} == per_item
    assert data["overlap"] == 3 and data["unlabelled"] == 1 and extra.id
    assert data["complete"] == sum(c for n, c in per_item.items() if n >= 3)


def test_throughput_counts_annotations_per_day_and_source(api, alice, project, filled):
    data = get(api, alice, project, "throughput")
    expected: Counter = Counter(
        (a.created_at.date().isoformat(), a.source)
        for a in Annotation.objects.filter(project=project)
    )
    assert data["days"] == sorted({day for day, _ in expected})
    for index, day in enumerate(data["days"]):
        assert data["human"][index] == expected[(day, Source.HUMAN)]
        assert data["ai"][index] == expected[(day, Source.AI)]


def test_profile_breakdown_hides_small_groups_and_shows_unanswered(api, alice, project, filled):
    data = get(api, alice, project, "profile-breakdown")
    gender = {
        v["value"]: v for v in next(f for f in data["fields"] if f["field"] == "gender")["values"]
    }
    assert data["min_group_size"] == 5
    assert gender["woman"]["annotators"] == 5
    assert "man" not in gender and gender["other/hidden"]["annotators"] == 1
    # The last annotator has no profile at all.
    assert gender["unanswered"]["annotators"] == 1
    total = sum(v["annotators"] for v in gender.values())
    assert total == data["annotators"] == len(filled["users"])
    judgements = Annotation.objects.filter(project=project, source=Source.HUMAN).count()
    assert sum(v["judgements"] for v in gender.values()) == judgements


def test_profile_breakdown_minimum_is_a_setting(api, alice, project, filled, settings):
    settings.BALLOT_PROFILE_MIN_GROUP = 1
    data = get(api, alice, project, "profile-breakdown")
    gender = {
        v["value"] for v in next(f for f in data["fields"] if f["field"] == "gender")["values"]
    }
    assert "man" in gender and "other/hidden" not in gender


def test_new_annotations_show_at_once_despite_the_cache(api, alice, project, filled):
    before = get(api, alice, project, "throughput")
    item = ItemFactory(project=project)
    Annotation.objects.create(project=project, item=item, source=Source.AI, judge_name="judge-2")
    after = get(api, alice, project, "throughput")
    assert sum(after["ai"]) == sum(before["ai"]) + 1


def test_an_annotator_of_the_project_gets_403(api, bob, project, filled):
    response = api(bob).get(f"/api/v1/projects/{project.id}/quality/annotators/")
    assert response.status_code == 403


CHART_ENDPOINTS = [
    "agreement",
    "label-distributions",
    "coverage",
    "throughput",
    "annotators",
    "profile-breakdown",
]


@pytest.mark.parametrize("name", CHART_ENDPOINTS)
class TestChartEndpointPermissions(ScopedEndpointTests):
    @pytest.fixture(autouse=True)
    def _name(self, name):
        self.name = name

    def url(self, world):
        return f"/api/v1/projects/{world.project.id}/quality/{self.name}/"

    def test_an_annotator_of_the_project_is_refused(self, world):
        response = self.call(world.api(world.bob), world)
        assert response.status_code == 403, response.content


def test_every_chart_endpoint_is_in_the_openapi_schema_with_a_response_schema(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    if response.status_code != 200:
        response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    import json

    import yaml

    text = response.content.decode()
    schema = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    for name in CHART_ENDPOINTS:
        operation = schema["paths"][f"/api/v1/projects/{{project_id}}/quality/{name}/"]["get"]
        content = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in content, (name, content)
    compare = schema["paths"]["/api/v1/projects/{project_id}/datasets/compare/"]["get"]
    assert "$ref" in compare["responses"]["200"]["content"]["application/json"]["schema"]


def test_a_stale_chart_is_served_at_once_while_one_thread_recomputes_it(
    api, alice, project, filled, settings, monkeypatch
):
    from curation import charts

    settings.BALLOT_JOBS_IN_THREAD = True
    started: list = []

    class RecordingThread:
        def __init__(self, target, args, name, daemon):
            self.target, self.args = target, args

        def start(self):
            started.append(self)

    monkeypatch.setattr(charts.threading, "Thread", RecordingThread)
    monkeypatch.setattr(charts, "close_old_connections", lambda: None)
    before = get(api, alice, project, "throughput")  # nothing cached: computed in the request
    assert not started
    item = ItemFactory(project=project)
    Annotation.objects.create(project=project, item=item, source=Source.AI, judge_name="judge-2")
    stale = get(api, alice, project, "throughput")
    assert stale == before and len(started) == 1
    get(api, alice, project, "throughput")  # a refresh is already running: no second thread
    assert len(started) == 1
    started[0].target(*started[0].args)
    fresh = get(api, alice, project, "throughput")
    assert sum(fresh["ai"]) == sum(before["ai"]) + 1
