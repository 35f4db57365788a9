"""Quality summaries kept on write against a full recomputation and against figures computed here.

Labels go in through the real writers (``annotation_submit``, ``items_import``) with
random answers; the summaries they leave must equal what ``quality_summaries_rebuild``
recomputes from the answers, and the chart data read from them must equal alpha,
kappas and the annotator table computed in this file from the stored answers with the
numpy reference in ``curation.agreement`` (never through the summaries).
"""

from __future__ import annotations

import random
import statistics
import threading
from collections import Counter, defaultdict
from datetime import timedelta
from itertools import combinations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.utils import timezone

from annotation.models import (
    Annotation,
    AnnotatorPairVote,
    AnnotatorQuality,
    AnnotatorTime,
    Assignment,
    AssignmentStatus,
    Membership,
    PairwiseAnswer,
    Project,
    QualityAgreementSum,
    RankingAnswer,
    RatingAnswer,
    Role,
    Source,
)
from annotation.pseudonyms import pseudonym
from annotation.services import annotation_submit, items_import, quality_summaries_rebuild
from curation import agreement, charts
from tests.factories import ItemFactory, ProjectFactory, UserFactory, make_questions

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
        "config": {
            "aspects": ["helpfulness", "honesty"],
            "scale": {"min": 1, "max": 5, "step": 0.5},
        },
    },
]


def labelled_world(project: Project, *, annotators: int, items: int) -> dict:
    make_questions(project, QUESTIONS)
    users = []
    for index in range(annotators):
        user = UserFactory(username=f"rater{index}")
        Membership.objects.create(user=user, project=project, role=Role.ANNOTATOR)
        users.append(user)
    made = [
        ItemFactory(project=project, responses=[f"A {n}", f"B {n}", f"C {n}"]) for n in range(items)
    ]
    made.append(
        ItemFactory(
            project=project,
            is_gold=True,
            gold_answer={"answers": [{"question": "preference", "chosen": 1, "rejected": 0}]},
            responses=["Wrong.", "Right."],
        )
    )
    return {"users": users, "items": made}


def random_answers(rng: random.Random, item) -> list[dict]:
    ids = list(item.responses.order_by("position").values_list("id", flat=True))
    chosen, rejected = rng.sample(ids[:2], 2)
    tie = rng.random() < 0.15
    order = ids[:]
    rng.shuffle(order)
    return [
        {
            "question": "preference",
            "chosen": chosen,
            "rejected": rejected,
            "tie": tie,
            "strength": None if tie else rng.randint(1, 3),
        },
        {"question": "ranking", "ranking": order},
        {
            "question": "aspects",
            "ratings": [
                {"response": rid, "aspect": aspect, "value": rng.choice([1, 2, 2.5, 3, 3.5, 4, 5])}
                for rid in ids
                for aspect in ("helpfulness", "honesty")
            ],
        },
    ]


def submit(user, item, answers, spent: int | None) -> None:
    assignment = Assignment.objects.create(
        project_id=item.project_id,
        item=item,
        annotator=user,
        status=AssignmentStatus.ACTIVE,
        leased_until=timezone.now() + timedelta(hours=1),
    )
    annotation_submit(assignment_id=assignment.id, user=user, answers=answers, time_spent_ms=spent)


def snapshot(project: Project) -> dict:
    """Every summary row of the project, keyed by its unique fields."""
    questions = project.questions.values_list("id", flat=True)
    # Summed over the stripes: a rebuild writes one, submits spread over several.
    sums: dict = defaultdict(lambda: [0, 0, 0.0, 0.0, 0.0])
    for r in QualityAgreementSum.objects.filter(question_id__in=questions):
        entry = sums[(r.question_id, r.day, r.unit_votes, r.value)]
        for index, figure in enumerate(
            (r.votes, r.votes_sq, r.value_sum, r.value_sum_sq, r.observed)
        ):
            entry[index] += figure
    units = {
        key: tuple(round(figure, 6) for figure in figures)
        for key, figures in sums.items()
        if any(abs(figure) > 1e-9 for figure in figures)
    }
    pairs = {
        (r.question_id, r.annotator_a_id, r.annotator_b_id, r.value_a, r.value_b): r.units
        for r in AnnotatorPairVote.objects.filter(question_id__in=questions)
        if r.units
    }
    counters = {
        r.annotator_id: (
            r.judgements,
            r.majority_agreed,
            r.majority_units,
            r.gold_correct,
            r.gold_scored,
        )
        for r in AnnotatorQuality.objects.filter(project=project)
    }
    times = {
        (r.annotator_id, r.bucket_ms): r.annotations
        for r in AnnotatorTime.objects.filter(project=project)
    }
    return {"units": units, "pairs": pairs, "counters": counters, "times": times}


def assert_summaries_equal_a_rebuild(project: Project) -> dict:
    kept = snapshot(project)
    quality_summaries_rebuild(project_id=project.id)
    rebuilt = snapshot(project)
    for table in kept:
        assert kept[table] == rebuilt[table], table
    return kept


# --------------------------------------------------------------------------- references


def whole(value: float) -> int:
    return int(value + 0.5)  # ratings are positive here: halves round up


def reference(project: Project) -> dict:
    """unit -> annotator -> label per question kind, from the stored answers (gold left out)."""
    human = {"annotation__source": Source.HUMAN, "annotation__item__is_gold": False}
    pairwise, rating, ranking = defaultdict(dict), defaultdict(dict), defaultdict(dict)
    for a in PairwiseAnswer.objects.filter(annotation__project=project, **human).select_related(
        "annotation"
    ):
        low, high = sorted((a.chosen_id, a.rejected_id))
        label = "tie" if a.tie else ("lo" if a.chosen_id == low else "hi")
        pairwise[(a.annotation.item_id, low, high)][a.annotation.annotator_id] = label
    for a in RatingAnswer.objects.filter(annotation__project=project, **human).select_related(
        "annotation"
    ):
        rating[(a.annotation.item_id, a.response_id, a.aspect)][a.annotation.annotator_id] = a.value
    for a in RankingAnswer.objects.filter(annotation__project=project, **human).select_related(
        "annotation"
    ):
        ranking[a.annotation.item_id][a.annotation.annotator_id] = str(a.ranking[0][0])
    return {"pairwise": dict(pairwise), "rating": dict(rating), "ranking": dict(ranking)}


def mean_cohen(units: dict, minimum: int) -> tuple[float | None, int]:
    shared: dict[tuple, list[tuple]] = defaultdict(list)
    for coders in units.values():
        for a, b in combinations(sorted(coders), 2):
            shared[(a, b)].append((coders[a], coders[b]))
    kappas = []
    for values in shared.values():
        if len(values) < minimum:
            continue
        left, right = zip(*values, strict=True)
        kappa = agreement.cohen_kappa(list(left), list(right))
        if kappa == kappa:  # not nan
            kappas.append(kappa)
    return (sum(kappas) / len(kappas) if kappas else None), len(kappas)


def fleiss_reference(units: dict) -> float:
    sizes = Counter(len(c) for c in units.values() if len(c) >= 2)
    raters = max(sizes, key=lambda s: (sizes[s], s))
    counts, _ = agreement.fleiss_counts(
        {u: list(c.values()) for u, c in units.items() if len(c) == raters}
    )
    return agreement.fleiss_kappa(counts)


def assert_charts_match_the_answers(project: Project) -> None:
    data = {q["question"]: q for q in charts.agreement_over_time(project=project)["questions"]}
    ref = reference(project)
    nominal_ratings = {
        u: {c: whole(v) for c, v in coders.items()} for u, coders in ref["rating"].items()
    }
    expectations = {
        "preference": (ref["pairwise"], "nominal", ref["pairwise"]),
        "aspects": (ref["rating"], "interval", nominal_ratings),
        "ranking": (ref["ranking"], "nominal", None),
    }
    minimum = charts.kappa_min_shared_units()
    for name, (units, level, nominal) in expectations.items():
        if name not in data:
            continue
        entry = data[name]
        assert entry["units"] == sum(1 for c in units.values() if len(c) >= 2)
        assert entry["krippendorff_alpha"] == pytest.approx(
            agreement.krippendorff_alpha(units, level=level), abs=1e-4
        )
        fleiss_units = nominal if nominal is not None else units
        assert entry["fleiss_kappa"]["kappa"] == pytest.approx(
            fleiss_reference(fleiss_units), abs=1e-4
        )
        if nominal is None:
            assert entry["cohen_kappa"] is None
            continue
        kappa, pairs = mean_cohen(nominal, minimum)
        if not pairs:
            assert entry["cohen_kappa"] is None
            continue
        assert entry["cohen_kappa"]["pairs"] == pairs
        assert entry["cohen_kappa"]["kappa"] == pytest.approx(kappa, abs=1e-4)

    table = charts.annotator_table(project=project)["annotators"]
    rows = {row["annotator"]: row for row in table}
    majority = [
        agreement.annotator_majority_agreement(ref["pairwise"]),
        agreement.annotator_majority_agreement(ref["ranking"]),
    ]
    gold_pairs = PairwiseAnswer.objects.filter(
        annotation__project=project, annotation__item__is_gold=True
    ).select_related("chosen", "rejected", "annotation")
    for who in (
        Annotation.objects.filter(project=project, source=Source.HUMAN)
        .values_list("annotator_id", flat=True)
        .distinct()
    ):
        row = rows[pseudonym(who, str(project.id))]
        mine = Annotation.objects.filter(project=project, annotator_id=who)
        assert row["judgements"] == mine.count()
        counted = sum(m[who].n_units for m in majority if who in m)
        agreed = sum(
            round(m[who].value * m[who].n_units) for m in majority if who in m and m[who].n_units
        )
        assert row["agreement_units"] == counted
        if counted:
            assert row["agreement_with_majority"] == pytest.approx(agreed / counted, abs=1e-4)
        golds = [
            a.chosen.position == 1 and a.rejected.position == 0 and not a.tie
            for a in gold_pairs
            if a.annotation.annotator_id == who
        ]
        assert row["gold_items"] == len(golds)
        if golds:
            assert row["gold_accuracy"] == pytest.approx(sum(golds) / len(golds), abs=1e-4)
        times = [kept(m.time_spent_ms) for m in mine if m.time_spent_ms is not None]
        expected = statistics.median(times) / 1000 if times else None
        assert row["median_seconds"] == (pytest.approx(expected, abs=1e-4) if times else None)


def kept(milliseconds: int) -> int:
    step = 100 if milliseconds < 10_000 else 1000 if milliseconds < 600_000 else 60_000
    return milliseconds // step * step


# --------------------------------------------------------------------------- tests


@pytest.fixture
def project(alice):
    return ProjectFactory(name="quality summaries", created_by=alice, overlap=8)


@pytest.mark.parametrize("seed", [1, 2])
def test_summaries_kept_on_submit_equal_a_rebuild_and_the_figures_computed_here(project, seed):
    rng = random.Random(seed)
    world = labelled_world(project, annotators=6, items=9)
    cells = [(user, item) for user in world["users"] for item in world["items"]]
    rng.shuffle(cells)
    for user, item in cells[: int(len(cells) * 0.8)]:
        spent = rng.choice([None, rng.randint(500, 9_999), rng.randint(10_000, 700_000)])
        submit(user, item, random_answers(rng, item), spent)
    # Agreement counts a unit from its second vote on; the writer kept up with every one.
    kept_rows = assert_summaries_equal_a_rebuild(project)
    assert kept_rows["units"] and kept_rows["pairs"] and kept_rows["times"]
    assert_charts_match_the_answers(project)


def test_a_new_label_moves_the_figures_at_once(project):
    rng = random.Random(5)
    world = labelled_world(project, annotators=4, items=6)
    for user in world["users"][:3]:
        for item in world["items"]:
            submit(user, item, random_answers(rng, item), 1200)
    before = charts.annotator_table(project=project)
    last = world["users"][3]
    submit(last, world["items"][0], random_answers(rng, world["items"][0]), 4000)
    after = charts.annotator_table(project=project)
    assert len(after["annotators"]) == len(before["annotators"]) + 1
    assert_charts_match_the_answers(project)


def test_imported_labels_are_counted_and_an_update_recounts(project):
    make_questions(project, QUESTIONS[:1])
    rng = random.Random(3)

    def line(n: int, raters: int) -> str:
        labels = [
            {
                "annotator": f"imp{k}",
                "time_spent_ms": 1000 + 37 * n + k,
                "answers": [{"question": "preference", "chosen": rng.randint(0, 1) and 1 or 0}],
            }
            for k in range(raters)
        ]
        for label in labels:
            chosen = label["answers"][0]["chosen"]
            label["answers"][0]["rejected"] = 1 - chosen
        import json

        return json.dumps(
            {
                "external_id": f"imp-{n}",
                "prompt": f"Question {n}",
                "responses": ["one", "two"],
                "annotations": labels,
            }
        )

    items_import(project=project, lines=[line(n, 3) for n in range(8)], fmt="native")
    assert_summaries_equal_a_rebuild(project)
    assert_charts_match_the_answers(project)
    # Changing an imported item drops its old labels: the summaries are recounted.
    items_import(
        project=project,
        lines=[line(0, 2), *(line(n, 3) for n in range(1, 8))],
        fmt="native",
        on_conflict="update",
    )
    assert_summaries_equal_a_rebuild(project)
    assert_charts_match_the_answers(project)


def test_the_rebuild_command_recounts_and_refuses_an_unknown_project(project, capsys):
    rng = random.Random(9)
    world = labelled_world(project, annotators=3, items=4)
    for user in world["users"]:
        for item in world["items"]:
            submit(user, item, random_answers(rng, item), 2000)
    kept_rows = snapshot(project)
    AnnotatorQuality.objects.filter(project=project).update(judgements=0, majority_units=0)
    QualityAgreementSum.objects.filter(question__project=project).delete()
    call_command("quality_rebuild", project=project.id)
    assert snapshot(project) == kept_rows
    assert f"project {project.id}:" in capsys.readouterr().out
    with pytest.raises(CommandError, match="No project"):
        call_command("quality_rebuild", project=10**9)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_on_the_same_items_are_all_counted():
    project = ProjectFactory(name="concurrent quality", created_by=UserFactory(), overlap=8)
    world = labelled_world(project, annotators=8, items=5)
    rng = random.Random(11)
    plans = {
        user.id: [
            (item, random_answers(rng, item), rng.randint(800, 20_000)) for item in world["items"]
        ]
        for user in world["users"]
    }
    barrier = threading.Barrier(len(world["users"]))
    errors: list = []

    def label(user) -> None:
        try:
            barrier.wait()
            for item, answers, spent in plans[user.id]:
                submit(user, item, answers, spent)
        except Exception as exc:  # reported below with the thread's failure
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=label, args=(user,)) for user in world["users"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert Annotation.objects.filter(project=project).count() == 8 * len(world["items"])
    assert_summaries_equal_a_rebuild(project)
    assert_charts_match_the_answers(project)
