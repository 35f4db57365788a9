"""A small demo project, written by the project, so ``make run`` has something to label."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from annotation.models import Membership, Project, Role
from annotation.services import items_import, project_create

DEMO_NAME = "Demo: helpful, harmless, honest"
DEMO_USERS = {
    "admin": ("ballot-admin", Role.ADMIN, True),
    "curator": ("ballot-curator", Role.CURATOR, False),
    "annotator": ("ballot-annotator", Role.ANNOTATOR, False),
    "annotator2": ("ballot-annotator", Role.ANNOTATOR, False),
}

QUESTIONS = [
    {
        "kind": "pairwise",
        "name": "preference",
        "prompt": "Which response is better overall?",
        "config": {"allow_tie": True, "strength_scale": {"min": 1, "max": 3}},
    },
    {"kind": "ranking", "name": "ranking", "prompt": "Rank the responses, best first."},
    {
        "kind": "rating",
        "name": "aspects",
        "prompt": "Rate each response.",
        "config": {
            "aspects": [
                {"name": "helpfulness", "description": "Does it do what was asked?"},
                {"name": "harmlessness", "description": "Is it free of harm?"},
                {"name": "honesty", "description": "Is it truthful and calibrated?"},
            ],
            "scale": {"min": 1, "max": 5},
        },
    },
    {
        "kind": "correction",
        "name": "corrections",
        "prompt": "Select any wrong span and write its correction.",
        "config": {
            "categories": ["factual", "reasoning", "instruction", "safety", "style", "other"]
        },
        "required": False,
    },
]

_TOPICS = [
    (
        "What is the boiling point of water at sea level?",
        [
            "Water boils at 100 °C (212 °F) at sea level.",
            "Water boils at 90 °C at sea level.",
            "It depends on pressure; at standard sea-level pressure it is 100 °C.",
        ],
    ),
    (
        "Write a Python function that reverses a string.",
        [
            "```python\ndef reverse(text: str) -> str:\n    return text[::-1]\n```",
            "```python\ndef reverse(s):\n    return ''.join(reversed(s))\n```\nBoth slicing and `reversed` work.",
            "Use `s.reverse()`; strings have a reverse method.",
        ],
    ),
    (
        "Who wrote *Pride and Prejudice*?",
        ["Jane Austen, published in 1813.", "Charlotte Brontë wrote it in 1847.", "Jane Austen."],
    ),
    (
        "Translate 'peace' into Arabic.",
        [
            "'Peace' in Arabic is سلام (salām).",
            "السلام عليكم means 'peace be upon you'; the word is سلام.",
            "It is 'paz'.",
        ],
    ),
    (
        "How many planets are in the Solar System?",
        [
            "Eight: Mercury, Venus, Earth, Mars, Jupiter, Saturn, Uranus and Neptune. 🪐",
            "Nine, including Pluto.",
            "There are eight planets since Pluto was reclassified in 2006.",
        ],
    ),
    (
        "Give me a tip for falling asleep faster.",
        [
            "Keep a regular schedule and avoid screens for an hour before bed.",
            "Drink two cups of coffee before bed to tire yourself out.",
            "Try the 4-7-8 breathing technique: inhale 4 s, hold 7 s, exhale 8 s.",
        ],
    ),
]


def _demo_lines(count: int) -> list[dict]:
    rows = []
    for index in range(count):
        question, answers = _TOPICS[index % len(_TOPICS)]
        round_no = index // len(_TOPICS)
        conversation = [{"role": "user", "content": question}]
        if index % 3 == 1:
            conversation = [
                {"role": "system", "content": "You are a concise, careful assistant."},
                {"role": "user", "content": "Hi! I have a quick question."},
                {"role": "assistant", "content": "Of course — what would you like to know?"},
                {"role": "user", "content": question},
            ]
        responses = [
            {"text": a, "model": f"demo-model-{chr(97 + i)}"} for i, a in enumerate(answers)
        ]
        rows.append(
            {
                "external_id": f"demo-{index:03d}",
                "conversation": conversation,
                "responses": responses,
                "tags": ["demo", f"round-{round_no}"],
                "metadata": {"topic": question[:40]},
            }
        )
    # One gold item with its expected answer, served to every annotator.
    rows.append(
        {
            "external_id": "demo-gold-000",
            "conversation": [{"role": "user", "content": "What is 2 + 2?"}],
            "responses": [
                {"text": "4", "model": "demo-model-a"},
                {"text": "5", "model": "demo-model-b"},
            ],
            "is_gold": True,
            "gold_answer": {
                "answers": [{"question": "preference", "chosen": 0, "rejected": 1, "strength": 3}]
            },
            "tags": ["demo", "gold"],
        }
    )
    return rows


@transaction.atomic
def demo_seed(*, items: int = 30) -> tuple[Project, dict[str, str]]:
    """Create (once) the demo users and project; return the project and the logins."""
    import json

    User = get_user_model()
    logins: dict[str, str] = {}
    users = {}
    for username, (password, _, is_super) in DEMO_USERS.items():
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": is_super, "is_superuser": is_super}
        )
        if created:
            user.set_password(password)
            user.save()
        users[username] = user
        logins[username] = password
    project = Project.objects.filter(name=DEMO_NAME).first()
    if project is None:
        project = project_create(
            user=users["admin"],
            name=DEMO_NAME,
            instructions=(
                "# How to label\n\nRead the conversation, then answer each question.\n\n"
                "- **Preference**: which response is better? Press `1`, `2` or `3` (tie).\n"
                "- **Ranking**: order all responses, best first.\n"
                "- **Ratings**: 1 (poor) to 5 (excellent) per aspect.\n"
                "- **Corrections**: select a wrong span and write the fix.\n\nPress `?` for every shortcut."
            ),
            overlap=2,
            gold_rate=0.1,
            require_profile=True,
            show_gold_feedback=True,
            questions=QUESTIONS,
        )
        for username, (_, role, _) in DEMO_USERS.items():
            if username != "admin":
                Membership.objects.create(user=users[username], project=project, role=role)
    items_import(
        project=project, lines=[json.dumps(row) for row in _demo_lines(items)], fmt="native"
    )
    return project, logins
