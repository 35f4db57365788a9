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

from annotation.models import AnnotatorProfile
from annotation.services import items_import
from tests.datasets import dataset

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
