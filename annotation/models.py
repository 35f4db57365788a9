"""Collected feedback: projects, their questions, items and responses, who annotates, and what they said.

Models hold fields, constraints and small properties. Logic lives in
``services`` (writes) and ``selectors`` (reads).
"""

from __future__ import annotations

from django.conf import settings as django_settings
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import F, Q

from annotation.search import SEARCH_CONFIG


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    CURATOR = "curator", "Curator"
    ANNOTATOR = "annotator", "Annotator"


class QuestionKind(models.TextChoices):
    PAIRWISE = "pairwise", "Pairwise (A vs B)"
    RANKING = "ranking", "Ranking"
    RATING = "rating", "Rating (Likert)"
    CORRECTION = "correction", "Segment correction"


class Source(models.TextChoices):
    HUMAN = "human", "Human"
    AI = "ai", "AI judge"


class Project(models.Model):
    name = models.CharField(max_length=200)
    instructions = models.TextField(blank=True, help_text="Markdown shown to annotators.")
    overlap = models.PositiveSmallIntegerField(
        default=1, help_text="How many distinct annotators label each (non-gold) item."
    )
    gold_rate = models.FloatField(
        default=0.0, help_text="Share of served items that are gold (0-1)."
    )
    require_profile = models.BooleanField(
        default=False,
        help_text="Annotators give consent and fill in their profile before the first item.",
    )
    show_gold_feedback = models.BooleanField(
        default=False, help_text="Show a gold item's expected answer after submission."
    )
    quality_threshold = models.FloatField(
        default=0.5,
        help_text="Annotators whose agreement with the majority falls below this are flagged.",
    )
    lease_seconds = models.PositiveIntegerField(default=30 * 60)
    # Adaptive overlap (models_gpu.overlap): items start at min_annotators and ask for one
    # more vote while their votes disagree, up to max_annotators. Off: ``overlap`` rules.
    adaptive_overlap = models.BooleanField(
        default=False,
        help_text="Ask for more annotators only where the votes disagree (min to max).",
    )
    min_annotators = models.PositiveSmallIntegerField(
        default=3, help_text="Adaptive overlap: annotators every item starts with."
    )
    max_annotators = models.PositiveSmallIntegerField(
        default=5, help_text="Adaptive overlap: most annotators an item is asked of."
    )
    agreement_threshold = models.FloatField(
        default=0.75,
        help_text="Adaptive overlap: an item whose votes agree at least this much closes.",
    )
    confidence_threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="Adaptive overlap: when a reliability fit finishes, items whose label "
        "confidence is under this ask for another vote.",
    )
    settings = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_positive"),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate_unit"
            ),
            models.CheckConstraint(
                condition=Q(min_annotators__gte=1) & Q(max_annotators__gte=F("min_annotators")),
                name="project_annotators_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def base_overlap(self) -> int:
        """Annotators every non-gold item wants before any extra: the minimum when adaptive."""
        return self.min_annotators if self.adaptive_overlap else self.overlap


class Membership(models.Model):
    user = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "project"], name="membership_unique_user_project"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} as {self.role}"


class Question(models.Model):
    """One thing the project asks about each item. ``config`` is validated per kind by services."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="questions")
    kind = models.CharField(max_length=16, choices=QuestionKind.choices)
    name = models.SlugField(max_length=64)
    prompt = models.CharField(max_length=500, blank=True, help_text="The text shown to annotators.")
    position = models.PositiveSmallIntegerField(default=0)
    required = models.BooleanField(default=True)
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["project_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="question_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class ItemSearchDocument(SearchVector):
    """An item's ``to_tsvector`` on PostgreSQL; NULL on SQLite, which searches ``search_text``."""

    def as_sqlite(self, compiler, connection, **extra_context):
        return "NULL", []


class Item(models.Model):
    """A conversation (context) and the responses to judge.

    ``slots_taken`` counts live leases plus submissions and is kept in step by
    the assignment services under a row lock, so the queue never reads a count.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    external_id = models.CharField(max_length=255)
    conversation = models.JSONField(default=list)
    metadata = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    is_gold = models.BooleanField(default=False)
    gold_answer = models.JSONField(null=True, blank=True)
    priority = models.FloatField(default=0.0, help_text="Higher is served first (routing sets it).")
    slots_taken = models.PositiveIntegerField(default=0)
    # Annotators wanted beyond the project's base overlap: raised by adaptive overlap when
    # the votes disagree and by a curator asking for more votes (services.overlap).
    overlap_extra = models.PositiveSmallIntegerField(default=0)
    # slots_taken >= base overlap + overlap_extra, kept in the same UPDATE: lets the queue
    # index skip full items.
    is_full = models.BooleanField(default=False)
    content_hash = models.CharField(max_length=64, blank=True)
    # Readable name and search document, kept by the writers (annotation/search.py).
    title = models.CharField(max_length=200, blank=True)
    search_text = models.TextField(blank=True, default="")
    # Computed by PostgreSQL from search_text in the same row write (GIN index added by
    # migration 0014); NULL elsewhere. A generated column, not a second UPDATE: the
    # update rewrote every imported row and its nine index entries, and a plain
    # SearchVectorField (no UNNEST array type) sent bulk inserts back to one
    # placeholder per value.
    search_vector = models.GeneratedField(
        expression=ItemSearchDocument("search_text", config=SEARCH_CONFIG),
        output_field=SearchVectorField(null=True),
        db_persist=True,
    )
    excluded = models.BooleanField(
        default=False, help_text="Left out of exports and curation jobs (explorer bulk action)."
    )
    # Stored so the explorer filters and sorts by it without scanning every answer; kept
    # by the answer writers through annotation.services.agreement.item_agreement_refresh.
    agreement = models.FloatField(
        null=True,
        blank=True,
        editable=False,
        help_text="Share of human pairwise judgements matching each question's majority; "
        "empty under two judgements.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], name="item_unique_external_id"
            )
        ]
        indexes = [
            models.Index(
                fields=["project", "is_gold", "is_full", "-overlap_extra", "-priority", "id"],
                name="item_queue_idx",
            ),
            # Walking a project's items in id order (curation, exports) in chunks.
            models.Index(fields=["project", "id"], name="item_project_id_idx"),
            # The explorer's agreement range filter and sort within a project.
            models.Index(fields=["project", "agreement"], name="item_project_agreement_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.project_id}/{self.external_id}"


class Response(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="responses")
    text = models.TextField()
    model_name = models.CharField(max_length=200, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["item_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["item", "position"], name="response_unique_position")
        ]

    def __str__(self) -> str:
        return f"response {self.position} of {self.item_id}"


class AnnotatorProfile(models.Model):
    """Who an annotator is and what they want from a model (PRISM-style survey).

    Curators only ever see these in aggregate or pseudonymised.
    """

    user = models.OneToOneField(
        django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    # Every survey question is optional: NULL means "not answered", which a
    # curator must be able to tell apart from any real answer.
    age_band = models.CharField(max_length=16, null=True, blank=True)
    gender = models.CharField(max_length=64, null=True, blank=True)
    birth_country = models.CharField(max_length=64, null=True, blank=True)
    residence_country = models.CharField(max_length=64, null=True, blank=True)
    languages = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"language": "en", "proficiency": "native" or null}, ...]',
    )
    education = models.CharField(max_length=64, null=True, blank=True)
    employment = models.CharField(max_length=64, null=True, blank=True)
    expertise = models.JSONField(default=list, blank=True, help_text="Expertise domains.")
    llm_familiarity = models.CharField(max_length=32, null=True, blank=True)
    llm_use_frequency = models.CharField(max_length=32, null=True, blank=True)
    stated_preferences = models.JSONField(
        default=dict, blank=True, help_text="Behaviour -> importance 0-100, or null if unanswered."
    )
    self_description = models.TextField(
        null=True, blank=True, help_text="What the annotator wants from a model."
    )
    consented_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"profile of {self.user}"


class AssignmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


class Assignment(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(
        max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.ACTIVE
    )
    leased_until = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "annotator"], name="assignment_unique_item_annotator"
            )
        ]
        indexes = [
            models.Index(fields=["annotator", "project", "status"], name="assignment_mine_idx"),
            models.Index(fields=["project", "status", "leased_until"], name="assignment_lease_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} -> {self.annotator_id} ({self.status})"


class Annotation(models.Model):
    """One submission for one item, by a person or an LM judge. Typed answers hang off it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="annotations")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations")
    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotation"
    )
    annotator = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="annotations",
    )
    judge_name = models.CharField(
        max_length=200, blank=True, help_text="The LM judge, for AI annotations."
    )
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.HUMAN)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)
    request_hash = models.CharField(
        max_length=64,
        blank=True,
        help_text="sha256 of the canonical submission under idempotency_key; a retry must match it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"], name="annotation_unique_idempotency_key"
            ),
            models.UniqueConstraint(
                fields=["item", "annotator"],
                condition=Q(annotator__isnull=False),
                name="annotation_unique_item_annotator",
            ),
            models.UniqueConstraint(
                fields=["item", "judge_name"],
                condition=Q(source="ai"),
                name="annotation_unique_item_judge",
            ),
            models.CheckConstraint(
                condition=Q(source="ai") | Q(annotator__isnull=False),
                name="annotation_human_has_annotator",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "created_at"], name="annotation_project_time_idx"),
            # The explorer's per-item counts and source filter, answered from the index alone.
            models.Index(fields=["item", "source"], name="annotation_item_source_idx"),
        ]

    def __str__(self) -> str:
        return f"annotation {self.pk} on {self.item_id}"


class PairwiseAnswer(models.Model):
    """A vs B. With ``tie`` the two responses are equally good and their order carries nothing."""

    annotation = models.ForeignKey(
        Annotation, on_delete=models.CASCADE, related_name="pairwise_answers"
    )
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="+")
    chosen = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    rejected = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    tie = models.BooleanField(default=False)
    strength = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["annotation", "question"], name="pairwise_unique_per_question"
            ),
            models.CheckConstraint(
                condition=~Q(chosen=models.F("rejected")), name="pairwise_distinct"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.chosen_id} > {self.rejected_id}" + (" (tie)" if self.tie else "")


class RankingAnswer(models.Model):
    """Responses best first, as groups: ``[[3], [1, 2]]`` ranks 3 above a tie of 1 and 2."""

    annotation = models.ForeignKey(
        Annotation, on_delete=models.CASCADE, related_name="ranking_answers"
    )
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="+")
    ranking = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["annotation", "question"], name="ranking_unique_per_question"
            )
        ]

    def __str__(self) -> str:
        return f"ranking {self.ranking}"


class RatingAnswer(models.Model):
    annotation = models.ForeignKey(
        Annotation, on_delete=models.CASCADE, related_name="rating_answers"
    )
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="+")
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    aspect = models.CharField(max_length=64)
    value = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["annotation", "question", "response", "aspect"], name="rating_unique_cell"
            )
        ]

    def __str__(self) -> str:
        return f"{self.aspect}={self.value} on {self.response_id}"


class CorrectionAnswer(models.Model):
    """A wrong span of a response and its fix. Offsets count Unicode code points in the raw text."""

    annotation = models.ForeignKey(
        Annotation, on_delete=models.CASCADE, related_name="correction_answers"
    )
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="+")
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    original_text = models.TextField()
    corrected_text = models.TextField(blank=True)
    category = models.CharField(max_length=64, blank=True)
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=models.F("start")), name="correction_span_nonempty"
            )
        ]

    def __str__(self) -> str:
        return f"[{self.start}, {self.end}) on {self.response_id}"


class QualityAgreementSum(models.Model):
    """Sums over agreement units for the quality charts, per question, day, unit size and label.

    A unit counts on the UTC day of its last human vote, with its current number of
    votes (two or more); ``annotation.quality_summary.unit_sums`` defines the figures.
    Writers add the difference their new votes make (a unit that gets a vote moves from
    its old day and size to today's), in the submit transaction. Rows are striped over
    ``shard`` (the item id modulo ``QUALITY_SHARDS``) so concurrent submits on different
    items rarely wait on the same row; readers sum over shards. A stripe alone may hold
    negative figures (a unit counted by a rebuild in stripe 0 leaves its own stripe).
    """

    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    unit_votes = models.PositiveIntegerField(help_text="Votes in each of these units (m).")
    value = models.CharField(max_length=32, help_text="lo, hi, tie; a whole point; a response id.")
    shard = models.PositiveSmallIntegerField(default=0)
    votes = models.BigIntegerField(default=0)
    votes_sq = models.BigIntegerField(default=0, help_text="Sum over units of the votes squared.")
    value_sum = models.FloatField(default=0.0, help_text="Sum of the exact rating values.")
    value_sum_sq = models.FloatField(default=0.0)
    observed = models.FloatField(
        default=0.0, help_text="Sum of the units' interval disagreement (on their lowest label)."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["question", "day", "unit_votes", "value", "shard"],
                name="quality_agreement_sum_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.question_id} {self.day} m={self.unit_votes} {self.value}"


class AnnotatorPairVote(models.Model):
    """Shared units of two annotators (a < b) on one question by the labels they gave."""

    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="+")
    annotator_a = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    annotator_b = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    value_a = models.CharField(max_length=32)
    value_b = models.CharField(max_length=32)
    units = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["question", "annotator_a", "annotator_b", "value_a", "value_b"],
                name="annotator_pair_vote_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.annotator_a_id}/{self.annotator_b_id}: {self.units}"


class AnnotatorQuality(models.Model):
    """Counters of the annotator table, per annotator and project, kept on write."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    judgements = models.PositiveIntegerField(default=0)
    majority_agreed = models.IntegerField(default=0)
    majority_units = models.IntegerField(default=0)
    gold_correct = models.PositiveIntegerField(default=0)
    gold_scored = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "annotator"], name="annotator_quality_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id} in {self.project_id}"


class AnnotatorTime(models.Model):
    """How many of an annotator's submissions took a time in one bucket (for the median)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    bucket_ms = models.PositiveIntegerField(
        help_text="Lower bound, see quality_summary.time_bucket."
    )
    annotations = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "annotator", "bucket_ms"], name="annotator_time_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id}: {self.annotations} at {self.bucket_ms} ms"


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the secret is shown once at creation."""

    user = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class AnnotatorMessage(models.Model):
    """A curator's note to one annotator about an item (after resolving its review).

    The curator picked the annotator by pseudonym; the row holds the user so the
    annotator's home page can show it. ``read_at`` is set when the annotator marks it read.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    annotator = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages_received"
    )
    sender = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["annotator", "read_at", "-id"], name="annmessage_inbox_idx")
        ]

    def __str__(self) -> str:
        return f"message {self.pk} to {self.annotator_id}"
