from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from annotation.models import Item, Membership, Project, Question, Response, Role


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    overlap = 1


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    role = Role.ANNOTATOR


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    external_id = factory.Sequence(lambda n: f"item-{n}")
    conversation = factory.LazyFunction(
        lambda: [{"role": "user", "content": "Say something nice."}]
    )

    @factory.post_generation
    def responses(self, create, extracted, **kwargs):
        texts = extracted if extracted is not None else ["Response A text.", "Response B text."]
        for position, text in enumerate(texts):
            Response.objects.create(
                item=self, text=text, position=position, model_name=f"m{position}"
            )


ALL_KINDS_QUESTIONS = [
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
            "aspects": ["helpfulness", "harmlessness", "honesty"],
            "scale": {"min": 1, "max": 5},
        },
    },
    {"kind": "correction", "name": "corrections", "required": False},
]


def make_questions(project: Project, specs: list[dict] | None = None) -> list[Question]:
    from annotation.services import question_create

    return [
        question_create(project=project, position=i, **spec)
        for i, spec in enumerate(specs or ALL_KINDS_QUESTIONS)
    ]
