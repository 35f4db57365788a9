"""The load check's rows: its project, items for the whole run (and more as they run low),
annotators with tokens, and a small labelled project for the FiFA job."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from checks.load.generator import Tally

OVERLAP = 2
# Items seeded up front: enough for this many submissions/s over the whole run (2 cores
# serve well under it). The feeder imports more if the clients still come close to the end.
SEED_RATE_PER_S = 120
FEED_CHECK_S = 5.0
FIFA_PAIRS = 40

# -----------------------------------------------------------------------------


@dataclass
class Seeded:
    project_id: int
    curation_project_id: int
    admin_token: str
    annotators: list[tuple[int, str]]  # (user id, token)
    items: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _item_lines(tag: str, start: int, count: int) -> list[str]:
    return [
        json.dumps(
            {
                "external_id": f"load-{tag}-{n}",
                "prompt": f"Question {n}: which answer explains load test {tag} better?",
                "responses": [f"Answer one to {n}.", f"Answer two to {n}, a little longer."],
            }
        )
        for n in range(start, start + count)
    ]


def _pair_lines(tag: str) -> list[str]:
    # Distinct prompts (folds group near-duplicates) with a clear better answer.
    topics = ["tides", "rust", "bread", "orbits", "vaccines", "taxes", "chess", "glaciers"]
    lines = []
    for n in range(FIFA_PAIRS):
        topic = topics[n % len(topics)]
        lines.append(
            json.dumps(
                {
                    "id": f"pair-{tag}-{n}",
                    "prompt": f"Explain {topic} to a child, version {n} ({tag}).",
                    "chosen": f"{topic.capitalize()} work like this: a clear, kind step {n}.",
                    "rejected": f"No. {n}",
                }
            )
        )
    return lines


def seed(*, tag: str, clients: int, items: int) -> Seeded:
    """The load project (one pairwise question, overlap 2, ``items`` items, ``clients``
    annotators with tokens) and a small labelled project for the FiFA job."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from annotation.models import Membership, Role
    from annotation.services import items_import, project_create, token_create

    users = get_user_model()
    admin = users.objects.create(username=f"load-admin-{tag}", password=make_password(None))
    project = project_create(
        user=admin,
        name=f"Load {tag}",
        overlap=OVERLAP,
        questions=[{"kind": "pairwise", "name": "preference"}],
    )
    items_import(project=project, lines=_item_lines(tag, 0, items), fmt="native")
    # Unusable passwords: the clients use tokens, and hashing 50 passwords costs seconds.
    annotators = users.objects.bulk_create(
        [users(username=f"load-{tag}-{n}", password=make_password(None)) for n in range(clients)]
    )
    Membership.objects.bulk_create(
        [Membership(user=u, project=project, role=Role.ANNOTATOR) for u in annotators]
    )
    curation = project_create(user=admin, name=f"Load curation {tag}")
    items_import(project=curation, lines=_pair_lines(tag), fmt="trl")
    return Seeded(
        project_id=project.id,
        curation_project_id=curation.id,
        admin_token=token_create(user=admin, name="load-admin")[1],
        annotators=[(u.id, token_create(user=u, name="load")[1]) for u in annotators],
        items=items,
    )


def feed(seeded: Seeded, tag: str, tallies: list[Tally], stop: threading.Event) -> None:
    """Import more items whenever fewer than a minute of submissions' worth are left."""
    from django.db import connection

    from annotation.models import Project
    from annotation.services import items_import

    last_count, last_at = 0, time.monotonic()
    try:
        while not stop.wait(FEED_CHECK_S):
            done = sum(len(t.confirmed) for t in tallies)
            now = time.monotonic()
            rate = (done - last_count) / max(now - last_at, 1e-6)
            last_count, last_at = done, now
            left = seeded.items * OVERLAP - done
            if left < max(rate * 60, 20 * len(tallies)):
                batch = int(max(rate * 120, 20 * len(tallies)) / OVERLAP) + 1
                project = Project.objects.get(pk=seeded.project_id)
                items_import(
                    project=project, lines=_item_lines(tag, seeded.items, batch), fmt="native"
                )
                seeded.items += batch
    finally:
        connection.close()
