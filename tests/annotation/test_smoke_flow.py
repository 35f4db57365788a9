from __future__ import annotations

from annotation.models import Annotation


def test_an_annotator_can_claim_and_submit_every_kind(project, items, bob, api):
    client = api(bob)
    response = client.get(f"/api/v1/projects/{project.id}/next/")
    assert response.status_code == 200, response.content
    body = response.json()
    r = [resp["id"] for resp in body["item"]["responses"]]
    questions = {q.name: q.id for q in project.questions.all()}
    text = body["item"]["responses"][0]["text"]
    answers = [
        {"question": "preference", "chosen": r[0], "rejected": r[1], "strength": 2},
        {"question": "ranking", "ranking": [[r[1]], [r[0], r[2]]]},
        {
            "question": questions["aspects"],
            "ratings": [
                {"response": x, "aspect": a, "value": 4}
                for x in r
                for a in ("helpfulness", "harmlessness", "honesty")
            ],
        },
        {
            "question": "corrections",
            "corrections": [
                {
                    "response": r[0],
                    "start": 0,
                    "end": 5,
                    "original_text": text[:5],
                    "corrected_text": "Fixed",
                }
            ],
        },
    ]
    submit = client.post(
        f"/api/v1/assignments/{body['id']}/submit/",
        {"answers": answers, "time_spent_ms": 1200},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert submit.status_code == 201, submit.content
    again = client.post(
        f"/api/v1/assignments/{body['id']}/submit/",
        {"answers": answers, "time_spent_ms": 1200},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert again.status_code == 200
    assert again.json()["annotation"] == submit.json()["annotation"]
    assert Annotation.objects.count() == 1
