"""Feedback to annotators: a curator's message about an item, and the annotator's inbox.

Curators know annotators by their pseudonym in the project only, so a message names
its recipient by pseudonym, resolved here among the people who annotated the item.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotation.errors import NotFound, ValidationFailed
from annotation.models import Annotation, AnnotatorMessage, Item, Project, Source
from annotation.pseudonyms import pseudonym

MAX_MESSAGE_LENGTH = 2000
INBOX_SHOWN = 10


def item_annotator_pseudonyms(*, item: Item) -> dict[str, int]:
    """Pseudonym -> user id of everyone who annotated ``item`` (people, not judges)."""
    ids = (
        Annotation.objects.filter(item=item, source=Source.HUMAN, annotator__isnull=False)
        .order_by("id")
        .values_list("annotator_id", flat=True)
    )
    return {pseudonym(uid, str(item.project_id)): uid for uid in ids}


@transaction.atomic
def annotator_message_send(
    *, project: Project, sender: AbstractBaseUser, item: Item, annotator: str, body: str
) -> AnnotatorMessage:
    """Store a message to the annotator of ``item`` whose pseudonym is ``annotator``.

    Raises ``ValidationFailed`` naming ``annotator`` (nobody of that name annotated the
    item) or ``body`` (empty or longer than 2000 characters).
    """
    if item.project_id != project.id:
        raise NotFound("No such item.")
    text = (body or "").strip() if isinstance(body, str) else ""
    if not text:
        raise ValidationFailed("Write a message.", field="body")
    if len(text) > MAX_MESSAGE_LENGTH:
        raise ValidationFailed(
            f"At most {MAX_MESSAGE_LENGTH} characters ({len(text)} sent).", field="body"
        )
    user_id = item_annotator_pseudonyms(item=item).get(str(annotator or ""))
    if user_id is None:
        raise ValidationFailed("Nobody of that name annotated this item.", field="annotator")
    return AnnotatorMessage.objects.create(
        project=project, item=item, annotator_id=user_id, sender=sender, body=text
    )


def annotator_messages_for(*, user: AbstractBaseUser, limit: int = INBOX_SHOWN):
    """The latest messages to ``user``, unread first, with their project and item."""
    return list(
        AnnotatorMessage.objects.filter(annotator=user)
        .select_related("project", "item")
        .only("id", "body", "created_at", "read_at", "project__name", "item__title", "item_id")
        .order_by("read_at", "-id")[:limit]
    )


def annotator_messages_sent(*, item: Item) -> QuerySet[AnnotatorMessage]:
    """Messages about ``item``, newest first (the review page lists them by pseudonym)."""
    return AnnotatorMessage.objects.filter(item=item).order_by("-id")


def annotator_message_mark_read(*, user: AbstractBaseUser, message_id: int) -> AnnotatorMessage:
    """Mark one of ``user``'s messages read (once; marking again keeps the first time)."""
    message = AnnotatorMessage.objects.filter(pk=message_id, annotator=user).first()
    if message is None:
        raise NotFound("No such message.")
    if message.read_at is None:
        AnnotatorMessage.objects.filter(pk=message.pk, read_at__isnull=True).update(
            read_at=timezone.now()
        )
        message.refresh_from_db(fields=["read_at"])
    return message
