"""Preference data for the explanation tests: real HH-RLHF pairs, a planted phrase, annotator groups.

Rows are in the native import format, so they go through the real importer: each
pair becomes an item with two responses (the order alternates, so the preferred one
is not always first) and pairwise labels by named annotators, whose profiles put
them in groups (country of residence). A fixed phrase is appended to the chosen
response of every third pair; with ``disagree`` the US annotators prefer the
response with the phrase and the GB annotators the one without, on those pairs.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from annotation.models import AnnotatorProfile
from annotation.services import items_import
from curation.explanations.inputs import explain_inputs
from curation.explanations.services import explanation_store
from curation.models import Job, JobKind, JobStatus
from curation.pairs import Selection
from tests.datasets import dataset

N_ITEMS = 24
PHRASE = "I sincerely hope this answer helps you today."
US = ("us-ann-1", "us-ann-2", "us-ann-3")
GB = ("gb-ann-1", "gb-ann-2", "gb-ann-3")


def hh_pairs(count: int) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) of the first ``count`` usable HH-RLHF harmless pairs."""
    out = []
    path = dataset("hh_rlhf_harmless") / "harmless-base_test.jsonl"
    for line in path.read_text().splitlines():
        row = json.loads(line)
        head_c, _, chosen = row["chosen"].rpartition("\n\nAssistant:")
        head_r, _, rejected = row["rejected"].rpartition("\n\nAssistant:")
        chosen, rejected = chosen.strip(), rejected.strip()
        if head_c != head_r or not chosen or not rejected or chosen == rejected:
            continue
        out.append((head_c.replace("\n\nHuman:", "\n").strip(), chosen, rejected))
        if len(out) == count:
            break
    return out


def planted_rows(count: int, *, disagree: bool = False, plant_every: int = 3) -> list[dict]:
    """Native import rows: two annotators per pair (one US, one GB), the phrase planted."""
    rows = []
    for i, (prompt, chosen, rejected) in enumerate(hh_pairs(count)):
        planted = i % plant_every == 0
        if planted:
            chosen = f"{chosen} {PHRASE}"
        first_is_chosen = i % 2 == 0
        texts = [chosen, rejected] if first_is_chosen else [rejected, chosen]
        chosen_index = 0 if first_is_chosen else 1
        us_choice = chosen_index
        gb_choice = 1 - chosen_index if (planted and disagree) else chosen_index
        rows.append(
            {
                "external_id": f"hh-{i}",
                "prompt": prompt,
                "responses": [{"text": t} for t in texts],
                "annotations": [
                    _label(US[i % 3], us_choice),
                    _label(GB[(i + 1) % 3], gb_choice),
                ],
            }
        )
    return rows


def _label(annotator: str, choice: int) -> dict[str, Any]:
    return {
        "annotator": annotator,
        "answers": [{"question": "preference", "chosen": choice, "rejected": 1 - choice}],
    }


def import_planted(project, count: int, *, disagree: bool = False) -> None:
    """Import the rows and give the annotators profiles (country, age, a stated preference)."""
    from django.contrib.auth import get_user_model

    items_import(
        project=project,
        lines=[json.dumps(r) for r in planted_rows(count, disagree=disagree)],
        fmt="native",
    )
    users = get_user_model().objects.filter(username__startswith="imported-")
    for user in users:
        handle = user.username.removeprefix("imported-")
        country = "US" if handle.startswith("us") else "GB"
        AnnotatorProfile.objects.update_or_create(
            user=user,
            defaults={
                "residence_country": country,
                "age_band": "25-34",
                "languages": [{"language": "en", "proficiency": "native"}],
                "stated_preferences": {"safety": 80 if country == "GB" else 20},
            },
        )


def store_explanation(project) -> Job:
    """An explain job with three features: 0 fires on the planted pairs, 1 weakly on all.

    Stored through the job's own storage service from a report written out by hand
    (the shape of ``Explanation.to_dict()``): it pins the application side without
    training anything.
    """
    import_planted(project, N_ITEMS)
    job = Job.objects.create(project=project, kind=JobKind.EXPLAIN, status=JobStatus.SUCCEEDED)
    inputs = explain_inputs(project=project, selection=Selection(aggregation="all"))
    pair_ids = list(dict.fromkeys(p.pair_id for p in inputs.pairs))
    first = {}
    for p in inputs.pairs:
        first.setdefault(p.pair_id, p)
    activations = np.zeros((len(pair_ids), 3), dtype=np.float32)
    examples = []
    for row, pair_id in enumerate(pair_ids):
        pair = first[pair_id]
        if PHRASE in pair.text_a or PHRASE in pair.text_b:
            sign = 1.0 if PHRASE in pair.text_a else -1.0
            activations[row, 0] = sign * (2.0 + row / 100)
            examples.append(
                {"pair_id": pair_id, "activation": float(activations[row, 0]), "swapped": sign < 0}
            )
        activations[row, 1] = 0.1
    features = [
        {
            "index": 0,
            "coef": 0.9,
            "ci_low": 0.5,
            "ci_high": 1.3,
            "p_value": 1e-5,
            "p_bonferroni": 3e-5,
            "prevalence": 0.33,
            "examples": examples,
            "ngrams_high": [{"ngram": "sincerely hope", "z": 4.0}],
            "ngrams_low": [{"ngram": "sorry", "z": 2.0}],
            "stats": {"high": {"words": 60.0}, "low": {"words": 50.0}},
            "group_effects": [
                {
                    "field": "country",
                    "value": "US",
                    "coef": 1.2,
                    "ci_low": 0.8,
                    "ci_high": 1.6,
                    "n_annotators": 3,
                    "n_judgements": N_ITEMS,
                    "interaction_p": 0.001,
                },
            ],
            "name": None,
            "proposed_name": None,
            "fidelity_r": None,
            "fidelity_p": None,
        },
        {
            "index": 1,
            "coef": -0.2,
            "ci_low": -0.6,
            "ci_high": 0.2,
            "p_value": 0.3,
            "p_bonferroni": 0.9,
            "prevalence": 1.0,
            "name": "hedging",
            "fidelity_r": 0.6,
            "fidelity_p": 0.01,
        },
        {
            "index": 2,
            "coef": float("nan"),
            "ci_low": None,
            "ci_high": None,
            "p_value": None,
            "p_bonferroni": None,
            "prevalence": 0.0,
        },
    ]
    explanation_store(
        job=job,
        pairs=inputs.pairs,
        pair_ids=pair_ids,
        activations=activations,
        report={
            "features": features,
            "probes": {
                "auc_full": 0.7,
                "auc_length_only": 0.55,
                "auc_sparse": {"5": 0.64, "10": 0.66},
                "share_explained": {"5": 0.7, "10": 0.8},
            },
            "groups": [],
            "history": [{"epoch": 1, "train_nmse": 0.9, "held_out_nmse": 0.95}],
            "counts": {"pairs": len(pair_ids), "judgements": len(inputs.pairs)},
        },
        config={"alpha": 0.05},
        weights_path=f"projects/{project.id}/jobs/{job.id}/sae",
    )
    return job
