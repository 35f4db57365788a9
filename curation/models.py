"""Work on stored feedback: jobs, their artifacts and per-pair results, dataset versions."""

from __future__ import annotations

from django.conf import settings as django_settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from annotation.models import Item, Project, Response


class JobKind(models.TextChoices):
    EMBED = "embed", "Embed texts"
    REWARD = "reward", "Train a reward model"
    FIFA = "fifa", "FiFA filtering"
    SUSPECTS = "suspects", "Suspect labels"
    EXPORT = "export", "Export a dataset version"
    RELIABILITY = "reliability", "Annotator reliability"
    # Room for what comes next (LM judges and routing, SAE explanations).
    ROUTE = "route", "Hybrid routing"
    LABEL_AI = "label-ai", "Label with an LM judge"
    EXPLAIN = "explain", "SAE explanations"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(models.Model):
    """Every long computation. Claimed by compare-and-set on ``status`` so it runs once."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=JobKind.choices)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    shards_total = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["project", "kind", "status"], name="job_project_kind_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="job_progress_unit"
            )
        ]

    def __str__(self) -> str:
        return f"job {self.pk} {self.kind} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


class JobShard(models.Model):
    """One slice of a sharded job. A shard that finished is never redone, so retries are cheap."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="shards")
    index = models.PositiveIntegerField()
    done = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    artifact_path = models.CharField(max_length=500, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="jobshard_unique_index")
        ]

    def __str__(self) -> str:
        return f"shard {self.index} of job {self.job_id}"


class Artifact(models.Model):
    """A file a job wrote, under ``BALLOT_STORAGE_ROOT``, with its hash and size."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="artifacts")
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="artifacts"
    )
    kind = models.CharField(max_length=32)
    path = models.CharField(max_length=500, help_text="Relative to the storage root.")
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "kind", "path"], name="artifact_unique_path")
        ]

    def __str__(self) -> str:
        return self.path


class PairScore(models.Model):
    """FiFA and suspect-label results for one preference pair of one job."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="pair_scores")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    pair_key = models.CharField(
        max_length=200, help_text="Identifies the pair within the job's input."
    )
    kind = models.CharField(max_length=16)
    question = models.CharField(max_length=64)
    chosen_response = models.ForeignKey(
        Response, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    rejected_response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    agreement = models.FloatField(default=1.0)
    margin = models.FloatField()
    prob_chosen = models.FloatField()
    quality = models.FloatField()
    diversity = models.FloatField()
    importance = models.FloatField()
    kept = models.BooleanField(default=False)
    kept_rank = models.PositiveIntegerField(null=True, blank=True)
    suspect = models.BooleanField(default=False)
    suspect_confidence = models.FloatField(null=True, blank=True)
    fold = models.SmallIntegerField(default=-1)

    class Meta:
        ordering = ["job_id", "-importance"]
        constraints = [
            models.UniqueConstraint(fields=["job", "pair_key"], name="pairscore_unique_pair")
        ]
        indexes = [
            models.Index(fields=["job", "kept"], name="pairscore_kept_idx"),
            models.Index(
                fields=["job", "suspect", "-suspect_confidence"], name="pairscore_suspect_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pair_key} in job {self.job_id}"


class DatasetVersion(models.Model):
    """An immutable, published export. Rows exist only for exports that finished."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="dataset_versions")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200, blank=True)
    format = models.CharField(max_length=32)
    job = models.OneToOneField(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="dataset_version"
    )
    path = models.CharField(max_length=500, help_text="Folder relative to the storage root.")
    row_counts = models.JSONField(default=dict)
    manifest = models.JSONField(default=dict)
    filters = models.JSONField(default=dict)
    aggregation = models.CharField(max_length=16)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "version"], name="datasetversion_unique_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.project_id} v{self.version} ({self.format})"


class WebhookEvent(models.TextChoices):
    ANNOTATION_CREATED = "annotation.created", "An annotation was stored"
    JOB_FINISHED = "job.finished", "A job succeeded, failed or was cancelled"
    DATASET_VERSION_PUBLISHED = "dataset_version.published", "A dataset version was published"
    ITEMS_IMPORTED = "items.imported", "A file was imported (one summary per import)"


class Webhook(models.Model):
    """A project's subscription: signed events POSTed to ``url`` (Standard Webhooks).

    ``secret`` (``whsec_`` + base64 of 32 random bytes) must be kept to sign each
    delivery; it is shown to people once, when the webhook is created.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, help_text="Event types sent to this URL.")
    secret = models.CharField(max_length=100)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project_id", "id"]
        indexes = [models.Index(fields=["project", "active"], name="webhook_project_active_idx")]

    def __str__(self) -> str:
        return f"webhook {self.pk} → {self.url}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REFUSED = "refused", "Refused (address not allowed)"


class WebhookDelivery(models.Model):
    """One event for one webhook, with its attempts. ``event_id`` is the ``webhook-id`` header:
    the same on every retry, and unique per webhook, so publishing an event twice sends it once."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=64)
    event_id = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    attempts = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["webhook", "event_id"], name="webhookdelivery_unique_event"
            )
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhookdelivery_due_idx")
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} → webhook {self.webhook_id} ({self.status})"


class ReviewSource(models.TextChoices):
    """What put an item in the review queue."""

    SUSPECTS = "suspects", "Suspect-label job"
    AGREEMENT = "agreement", "Agreement under a threshold"
    GOLD = "gold", "Failed gold item"
    EXPLORER = "explorer", "Data explorer (bulk action)"
    # Reserved for the explanation job (an SAE feature that marks items to look at);
    # nothing feeds it yet, but entries of this source are listed and resolved like any.
    EXPLANATION = "explanation", "Explanation job"


class ReviewEntry(models.Model):
    """An item put up for a person to look at again, and why. Resolving it never edits annotations.

    At most one open entry per item and source (a partial unique constraint), so a feed
    that runs twice, or two feeds racing, never queue the same item twice for one reason.
    """

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="review_entries")
    reason = models.CharField(max_length=500, blank=True)
    source = models.CharField(max_length=64, choices=ReviewSource.choices)
    job = models.ForeignKey(
        Job,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="review_entries",
        help_text="The job whose results sent the item here (suspect labels).",
    )
    scores = models.JSONField(
        default=dict, blank=True, help_text="The figures that sent the item here."
    )
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["item", "resolved_at"], name="reviewentry_item_open_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "source"],
                condition=Q(resolved_at__isnull=True),
                name="reviewentry_one_open_per_source",
            )
        ]

    def __str__(self) -> str:
        return f"review of item {self.item_id} ({self.source})"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class Decision(models.TextChoices):
    ACCEPT = "accept", "Accept the aggregate"
    LABEL = "label", "Choose or edit the label"
    DROP = "drop", "Drop the item from exports"
    MORE_VOTES = "more_votes", "Send back for more votes"


class Adjudication(models.Model):
    """How a curator resolved one review entry: a record of its own, never an edit of annotations.

    ``label`` (decision ``label`` only) holds the validated answers, one per question:
    ``[{"question": name, "question_id": id, "kind": kind, "rows": [...]}]`` with the
    rows in the shape of the answer tables (response ids). The ``adjudicated``
    aggregation policy reads the latest adjudication of each item.
    """

    entry = models.OneToOneField(ReviewEntry, on_delete=models.CASCADE, related_name="adjudication")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="adjudications")
    decided_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_at = models.DateTimeField(default=timezone.now)
    decision = models.CharField(max_length=16, choices=Decision.choices)
    label = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    params = models.JSONField(
        default=dict, blank=True, help_text="more_votes: the votes and priority asked for."
    )

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["item", "id"], name="adjudication_item_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(decision="label", label__isnull=False)
                | (~Q(decision="label") & Q(label__isnull=True)),
                name="adjudication_label_iff_decision",
            )
        ]

    def __str__(self) -> str:
        return f"{self.decision} on item {self.item_id}"


class AnnotatorReliability(models.Model):
    """One annotator's fitted reliability on one question (and rating aspect) in a reliability job."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="annotator_reliabilities")
    question = models.CharField(max_length=64)
    aspect = models.CharField(
        max_length=64, blank=True, help_text="Rating aspect; blank: pairwise."
    )
    annotator = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    reliability = models.FloatField(help_text="Expected accuracy under the fit (MACE: competence).")
    votes = models.PositiveIntegerField()
    agreement = models.FloatField(
        null=True,
        blank=True,
        help_text="Share of votes matching the majority of the other votes on the same unit.",
    )
    confusion = models.JSONField(default=list, help_text="K×K: rows the truth, columns the answer.")

    class Meta:
        ordering = ["job_id", "question", "aspect", "-reliability"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "question", "aspect", "annotator"],
                name="annotatorreliability_unique",
            )
        ]

    def __str__(self) -> str:
        return f"annotator {self.annotator_id} on {self.question} in job {self.job_id}"


class ItemPosterior(models.Model):
    """The fitted label of one unit: a response pair (pairwise) or a response and aspect (rating).

    Pairwise labels are oriented by response id: 0 = the lower id is better, 1 = the
    higher id is better, 2 = tie. A rating's label is its class on the binned scale and
    ``value`` the rating that class stands for.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="item_posteriors")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    question = models.CharField(max_length=64)
    aspect = models.CharField(max_length=64, blank=True)
    unit = models.CharField(
        max_length=100, help_text="'<lower id>-<higher id>' (pairwise) or '<response id>' (rating)."
    )
    label = models.PositiveSmallIntegerField()
    value = models.FloatField(null=True, blank=True)
    confidence = models.FloatField()
    posterior = models.JSONField(default=list)
    votes = models.PositiveIntegerField()

    class Meta:
        ordering = ["job_id", "item_id", "question", "aspect", "unit"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "item", "question", "aspect", "unit"], name="itemposterior_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.question}:{self.unit} of item {self.item_id} in job {self.job_id}"


class JudgeBackend(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible chat completions"
    LOCAL = "local", "Local causal LM"
    REWARD = "reward", "Reward model (Bradley–Terry on embeddings)"


class Judge(models.Model):
    """An LM judge of one project. What it says is versioned: see :class:`JudgeVersion`.

    The API key is either read from the environment variable ``api_key_env`` where the
    job runs, or stored Fernet-encrypted in ``api_key_encrypted``; neither form is ever
    returned by the API. ``name`` is fixed once created (AI annotations carry it).
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judges")
    name = models.CharField(max_length=100)
    backend = models.CharField(max_length=16, choices=JudgeBackend.choices)
    base_url = models.CharField(max_length=2000, blank=True)
    model = models.CharField(
        max_length=500,
        blank=True,
        help_text="The served model's name (openai) or a folder under BALLOT_MODEL_ROOTS (local).",
    )
    api_key_env = models.CharField(max_length=100, blank=True)
    api_key_encrypted = models.TextField(blank=True)
    timeout_seconds = models.FloatField(default=30.0)
    max_retries = models.PositiveSmallIntegerField(default=3)
    concurrency = models.PositiveSmallIntegerField(default=4)
    max_requests_per_job = models.PositiveIntegerField(null=True, blank=True)
    batch_size = models.PositiveSmallIntegerField(default=8)
    logprobs = models.BooleanField(default=False)
    reward_job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    on_disagreement = models.CharField(
        max_length=8, choices=[("tie", "Tie"), ("abstain", "Abstain")], default="tie"
    )
    prompts = models.JSONField(
        default=dict, blank=True, help_text="Question kind -> template; missing kinds use defaults."
    )
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="judge_unique_name")
        ]

    def __str__(self) -> str:
        return f"judge {self.name} ({self.backend})"


class JudgeVersion(models.Model):
    """What a judge said things with: backend, model, URL and prompts, frozen.

    A change to any of them makes a new version; AI annotations name the version
    (``Annotation.judge_name == label``), so earlier labels are never overwritten.
    """

    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    label = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64)
    settings = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["judge_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["judge", "number"], name="judgeversion_unique_number"),
            models.UniqueConstraint(
                fields=["judge", "fingerprint"], name="judgeversion_unique_fingerprint"
            ),
        ]

    def __str__(self) -> str:
        return self.label


class JudgeVerdict(models.Model):
    """One judge version's verdict on one question of one item, kept even when it abstained.

    ``outcome``: label, tie or abstain. ``raw`` holds both orders' outputs and
    probabilities; ``annotation`` is the AI annotation the verdict went into (None for
    an abstention). Unique per (version, item, question): a re-run writes nothing new.
    """

    version = models.ForeignKey(JudgeVersion, on_delete=models.CASCADE, related_name="verdicts")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    question = models.ForeignKey("annotation.Question", on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    annotation = models.ForeignKey(
        "annotation.Annotation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    outcome = models.CharField(max_length=8)
    answer = models.JSONField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    consistent = models.BooleanField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    input_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "item", "question"], name="judgeverdict_unique_item_question"
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} on item {self.item_id}: {self.outcome}"


class JudgeTagging(models.Model):
    """A judge version's instance tags for one item, the routing job's cache.

    ``input_hash`` covers everything the answer depends on (the version's fingerprint,
    the tagging template, the tag vocabulary and the item's conversation), so a re-run
    with the same inputs sends no request and an edited template or a changed
    conversation asks again. ``outcome`` is ``label`` (``tags`` holds one value per tag)
    or ``abstain`` (an unparseable answer; ``reason`` says why, and the built-in tagger
    tags the item). Failed requests are not stored: a later run asks again.
    """

    version = models.ForeignKey(JudgeVersion, on_delete=models.CASCADE, related_name="taggings")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    input_hash = models.CharField(max_length=64)
    outcome = models.CharField(max_length=8)
    tags = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    raw = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "item", "input_hash"], name="judgetagging_unique_input"
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} tags item {self.item_id}: {self.outcome}"


class Route(models.TextChoices):
    HUMAN = "human", "Human"
    AI = "ai", "AI judge"


class RoutingDecision(models.Model):
    """Where one item goes in one routing job, and why.

    ``score`` is what the strategy ranked by (``score_kind``: predicted gain of a human
    label, predicted judge error, the prior's score, or a random draw); ``features`` the
    item's instance features and judge signals; ``rank`` its place, 1 first.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="routing_decisions")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    route = models.CharField(max_length=8, choices=Route.choices)
    score = models.FloatField()
    score_kind = models.CharField(max_length=16)
    rank = models.PositiveIntegerField()
    features = models.JSONField(default=dict)

    class Meta:
        ordering = ["job_id", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["job", "item"], name="routingdecision_unique_item")
        ]
        indexes = [
            models.Index(fields=["job", "route", "rank"], name="routingdecision_route_idx"),
        ]

    def __str__(self) -> str:
        return f"item {self.item_id} → {self.route} in job {self.job_id}"


class Explanation(models.Model):
    """What one explanation job found: a sparse dictionary of features over response differences.

    ``probes`` holds the held-out AUCs (length only, full linear, sparse with 5 and 10
    features) and the share of signal the sparse probes explain; ``history`` the
    per-epoch reconstruction error; ``groups`` the per-group sparse probes; ``counts``
    how many pairs, prompts and annotators went in. The SAE weights are an artifact
    of the job (``weights_path``, a folder holding the safetensors file and its config).
    """

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="explanation")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="explanations")
    counts = models.JSONField(default=dict, blank=True)
    probes = models.JSONField(default=dict, blank=True)
    history = models.JSONField(default=list, blank=True)
    groups = models.JSONField(default=list, blank=True)
    config = models.JSONField(default=dict, blank=True, help_text="The SAE and explain settings.")
    weights_path = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"explanation of job {self.job_id}"


class ExplanationFeature(models.Model):
    """One SAE feature: its effect on preference, its description and where groups differ.

    ``rank`` orders features by the size of their standardised coefficient (1 first).
    ``name`` is empty unless a judge proposed one that held up on held-out pairs
    (``fidelity_r``/``fidelity_p`` then say how well). ``examples`` are the
    top-activating pairs in both directions (``swapped`` where the activation is
    negative, so every example reads from the side the feature rewards).
    """

    explanation = models.ForeignKey(Explanation, on_delete=models.CASCADE, related_name="features")
    index = models.PositiveSmallIntegerField()
    rank = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200, blank=True)
    proposed_name = models.CharField(
        max_length=200, blank=True, help_text="What the judge proposed, kept or not."
    )
    coef = models.FloatField(null=True, blank=True)
    ci_low = models.FloatField(null=True, blank=True)
    ci_high = models.FloatField(null=True, blank=True)
    p_value = models.FloatField(null=True, blank=True)
    p_bonferroni = models.FloatField(null=True, blank=True)
    prevalence = models.FloatField(default=0.0)
    fidelity_r = models.FloatField(null=True, blank=True)
    fidelity_p = models.FloatField(null=True, blank=True)
    ngrams_high = models.JSONField(default=list, blank=True)
    ngrams_low = models.JSONField(default=list, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    examples = models.JSONField(default=list, blank=True)
    group_effects = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["explanation_id", "rank"]
        constraints = [
            models.UniqueConstraint(
                fields=["explanation", "index"], name="explanationfeature_unique_index"
            )
        ]

    def __str__(self) -> str:
        return f"feature {self.index} of {self.explanation}"


class ExplanationPair(models.Model):
    """One preference pair an explanation read, oriented A/B by response position.

    ``label`` is 1 when A was preferred, 0 when B was. ``pair_ref`` ignores the
    orientation (item, question and the two responses), which is what the review
    action and the export filter match on.
    """

    explanation = models.ForeignKey(Explanation, on_delete=models.CASCADE, related_name="pairs")
    pair_id = models.CharField(max_length=255)
    pair_ref = models.CharField(max_length=200)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    question = models.CharField(max_length=64)
    response_a = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    response_b = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    label = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["explanation_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["explanation", "pair_id"], name="explanationpair_unique_pair"
            )
        ]

    def __str__(self) -> str:
        return f"pair {self.pair_id} of {self.explanation}"


class ExplanationActivation(models.Model):
    """A nonzero activation of one feature on one pair (zeros are not stored)."""

    explanation = models.ForeignKey(
        Explanation, on_delete=models.CASCADE, related_name="activations"
    )
    pair = models.ForeignKey(ExplanationPair, on_delete=models.CASCADE, related_name="activations")
    feature = models.PositiveSmallIntegerField()
    activation = models.FloatField()
    magnitude = models.FloatField(help_text="abs(activation), for ranking by strength.")

    class Meta:
        ordering = ["explanation_id", "feature", "-magnitude"]
        constraints = [
            models.UniqueConstraint(
                fields=["pair", "feature"], name="explanationactivation_unique_pair_feature"
            )
        ]
        indexes = [
            models.Index(
                fields=["explanation", "feature", "-magnitude"],
                name="explanationact_strength_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.activation:+.3f} on feature {self.feature} of pair {self.pair_id}"
