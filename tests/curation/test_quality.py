"""The quality report: agreement per question against the ``krippendorff`` package, annotator quality, the command."""

from __future__ import annotations

import io
import json
from collections import defaultdict

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from annotation.adapters import TULU_PREFERENCE, squality, tulu1_pairwise
from annotation.services import items_import, question_create
from tests.datasets import dataset

krippendorff = pytest.importorskip("krippendorff", reason="the independent alpha reference")


def load(project, adapted) -> None:
    for spec in adapted.questions:
        question_create(project=project, **spec)
    items_import(project=project, lines=[json.dumps(r) for r in adapted.rows], fmt=adapted.fmt)


def reference_alpha(units: dict, level: str) -> float:
    coders = sorted({c for values in units.values() for c in values})
    labels = {
        v: i for i, v in enumerate(sorted({str(v) for vs in units.values() for v in vs.values()}))
    }
    matrix = np.full((len(coders), len(units)), np.nan)
    for column, values in enumerate(units.values()):
        for coder, value in values.items():
            matrix[coders.index(coder), column] = (
                value if level == "interval" else labels[str(value)]
            )
    return krippendorff.alpha(reliability_data=matrix, level_of_measurement=level)


@pytest.fixture
def empty_project(alice):
    from annotation.models import Membership, Role
    from tests.factories import ProjectFactory

    project = ProjectFactory(created_by=alice)
    Membership.objects.create(user=alice, project=project, role=Role.ADMIN)
    return project


def quality(api, alice, project) -> dict:
    response = api(alice).get(f"/api/v1/projects/{project.id}/quality/")
    assert response.status_code == 200, response.content
    return {q["question"]: q for q in response.json()["questions"]} | {"_report": response.json()}


def test_squality_interval_alpha_matches_the_krippendorff_package(empty_project, api, alice):
    load(empty_project, squality(dataset("squality_human_eval")))
    units: dict[tuple, dict[str, float]] = defaultdict(dict)
    for line in (dataset("squality_human_eval") / "all-responses.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        passage = json.loads(line)
        for qkey, systems in passage["questions"].items():
            for system, entry in systems.items():
                for review in entry["reviews"]:
                    for aspect in ("correctness", "selection", "overall"):
                        value = review.get(f"{aspect}-rating")
                        if value is not None:
                            units[(passage["passage-id"], qkey, system, aspect)][
                                review["worker_id"]
                            ] = float(value)
    report = quality(api, alice, empty_project)
    aspects = report["aspects"]
    assert aspects["level"] == "interval"
    assert aspects["units"] == len(units)
    assert aspects["krippendorff_alpha"] == pytest.approx(
        reference_alpha(units, "interval"), abs=1e-4
    )  # the API rounds to 4 places; the full-precision check is below
    from curation import agreement

    assert agreement.krippendorff_alpha(
        {k: dict(v) for k, v in units.items()}, level="interval"
    ) == pytest.approx(reference_alpha(units, "interval"), abs=1e-6)
    assert aspects["cohen_kappa_mean"] is not None and aspects["cohen_pairs"]
    assert aspects["fleiss_kappa"]["kappa"] is not None
    assert report["critiques"]["note"]


def tulu_units() -> dict[int, dict[str, str]]:
    """Per comparison, each evaluator's label as A (the model first by name), B or tie."""
    units: dict[int, dict[str, str]] = defaultdict(dict)
    path = dataset("tulu1_human_eval") / "eval_annotations_tulu_1.jsonl"
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        unit = units[row["instance_index"]]
        if row["evaluator"] in unit:
            continue
        side, _ = TULU_PREFERENCE[row["preference"]]
        first = min(row["model_a"], row["model_b"])
        winner = row["model_a"] if side == "a" else row["model_b"]
        unit[row["evaluator"]] = "tie" if side == "tie" else ("A" if winner == first else "B")
    return units


def test_tulu_nominal_alpha_after_orientation_matches_the_krippendorff_package(
    empty_project, api, alice
):
    load(empty_project, tulu1_pairwise(dataset("tulu1_human_eval")))
    units = tulu_units()
    report = quality(api, alice, empty_project)
    preference = report["preference"]
    assert preference["level"] == "nominal"
    assert preference["units"] == len(units)
    expected = reference_alpha(units, "nominal")
    assert preference["krippendorff_alpha"] == pytest.approx(expected, abs=1e-4)
    from curation import agreement

    assert agreement.krippendorff_alpha(units, level="nominal") == pytest.approx(expected, abs=1e-6)
    assert {"cohen_kappa_mean", "cohen_pairs", "fleiss_kappa"} <= set(preference)
    assert preference["fleiss_kappa"]["raters_per_unit"] >= 2
    annotators = report["_report"]["annotators"]
    assert len(annotators) == 16
    assert all(a["username"].startswith("imported-") for a in annotators)


GOOD = ("ann-one", "ann-two", "ann-three")
BAD = "ann-contrarian"


def crafted_rows() -> list[dict]:
    rows = []
    for n in range(6):
        annotations = [
            {
                "annotator": who,
                "time_spent_ms": 1000 * (index + 1) * (n + 1),
                "answers": [{"question": "preference", "chosen": 0, "rejected": 1}],
            }
            for index, who in enumerate(GOOD)
        ]
        annotations.append(
            {
                "annotator": BAD,
                "time_spent_ms": 500,
                "answers": [{"question": "preference", "chosen": 1, "rejected": 0}],
            }
        )
        rows.append(
            {
                "external_id": f"item-{n}",
                "prompt": f"Question {n}?",
                "responses": [f"good answer {n}", f"bad answer {n}"],
                "annotations": annotations,
            }
        )
    for n in range(3):
        rows.append(
            {
                "external_id": f"gold-{n}",
                "prompt": f"Gold question {n}?",
                "responses": [f"right {n}", f"wrong {n}"],
                "is_gold": True,
                "gold_answer": {
                    "answers": [{"question": "preference", "chosen": 0, "rejected": 1}]
                },
                "annotations": [
                    {
                        "annotator": who,
                        "answers": [
                            {
                                "question": "preference",
                                "chosen": 1 if who == BAD else 0,
                                "rejected": 0 if who == BAD else 1,
                            }
                        ],
                    }
                    for who in (*GOOD, BAD)
                ],
            }
        )
    return rows


def test_annotator_agreement_gold_accuracy_median_time_and_flags(empty_project, api, alice):
    question_create(project=empty_project, kind="pairwise", name="preference")
    items_import(project=empty_project, lines=[json.dumps(r) for r in crafted_rows()], fmt="native")
    report = quality(api, alice, empty_project)["_report"]
    by_name = {a["username"]: a for a in report["annotators"]}
    assert set(by_name) == {f"imported-{who}" for who in (*GOOD, BAD)}
    for index, who in enumerate(GOOD):
        row = by_name[f"imported-{who}"]
        assert row["agreement_with_majority"] == 1.0
        assert row["agreement_units"] == 6
        assert row["gold_accuracy"] == 1.0 and row["gold_items"] == 3
        # times 1, 2, ..., 6 × (index + 1) seconds: the median is 3.5 × (index + 1)
        assert row["median_seconds_per_item"] == pytest.approx(3.5 * (index + 1))
        assert row["annotations"] == 9
        assert not row["flagged"]
    bad = by_name[f"imported-{BAD}"]
    assert bad["agreement_with_majority"] == 0.0
    assert bad["gold_accuracy"] == 0.0
    assert bad["median_seconds_per_item"] == 0.5
    assert bad["flagged"] and len(bad["reasons"]) == 2
    assert report["flagged"] == [bad["annotator"]]
    assert report["quality_threshold"] == empty_project.quality_threshold


def test_raising_the_threshold_flags_more_and_lowering_it_flags_none(empty_project, api, alice):
    question_create(project=empty_project, kind="pairwise", name="preference")
    items_import(project=empty_project, lines=[json.dumps(r) for r in crafted_rows()], fmt="native")
    empty_project.quality_threshold = 0.0
    empty_project.save(update_fields=["quality_threshold"])
    assert quality(api, alice, empty_project)["_report"]["flagged"] == []


def test_the_quality_command_prints_a_table_and_json(empty_project):
    question_create(project=empty_project, kind="pairwise", name="preference")
    items_import(project=empty_project, lines=[json.dumps(r) for r in crafted_rows()], fmt="native")
    out = io.StringIO()
    call_command("quality", "--project", str(empty_project.id), stdout=out)
    table = out.getvalue()
    assert "Agreement" in table and "Annotators" in table
    assert "preference" in table and "alpha" in table
    assert f"imported-{BAD}" in table and "below" in table
    out = io.StringIO()
    call_command("quality", "--project", str(empty_project.id), "--json", stdout=out)
    assert json.loads(out.getvalue())["project"] == empty_project.id
    with pytest.raises(CommandError, match="No project"):
        call_command("quality", "--project", "999999")
