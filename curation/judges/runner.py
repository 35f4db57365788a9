"""Asking a judge about items: the backends built from a ``Judge`` row, questions turned into tasks.

The three backends (chat completions over HTTP, a local causal LM, the reward
model) answer the same four calls: ``pairs``, ``rankings``, ``ratings`` and ``tags``
(instance tags for routing; the reward model abstains). Their
numerical and parsing work is in :mod:`models_gpu.judges`; what lives here is how a
backend is built from the database row (the API key, the outbound client, the
model folder, the reward job's artifact) and how an item's questions become tasks
and the verdicts become submission-shaped answers.

Every HTTP request of a judge goes through :mod:`curation.outbound`, which checks
the address at connection time (redirects included); the API key goes into the
``Authorization`` header only and appears in no message or log.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings

import models_gpu
import models_gpu.judges as core
from annotation.errors import ValidationFailed
from annotation.models import Item, Question, QuestionKind, Response
from curation import outbound
from curation import params as check
from curation.conversation import conversation_text
from curation.judges.secrets import api_key_for
from curation.models import Artifact, JudgeBackend, JudgeVersion
from curation.storage import absolute, embedding_cache_dir

if TYPE_CHECKING:
    from curation.models import Judge

JUDGED_KINDS = (QuestionKind.PAIRWISE, QuestionKind.RANKING, QuestionKind.RATING)
MAX_ANSWER_BYTES = 1024 * 1024
_LOCAL_MODELS: dict[tuple[str, int], core.LocalLMJudge] = {}
_LOCAL_LOCK = threading.Lock()


def outbound_transport(
    url: str, payload: dict[str, Any], headers: dict[str, str], timeout: float
) -> dict[str, Any]:
    """POST through the one outbound client; its errors become the core's ``TransportFailure``."""
    try:
        response = outbound.post(
            url,
            body=json.dumps(payload).encode(),
            headers=headers,
            timeout=timeout,
            max_bytes=MAX_ANSWER_BYTES,
        )
    except outbound.TransportError as exc:
        raise core.TransportFailure(
            exc.message, retryable=not exc.permanent, retry_after=exc.retry_after
        ) from None
    try:
        return json.loads(response.body)
    except ValueError:
        raise core.TransportFailure("the answer is not JSON", retryable=False) from None


@dataclass(frozen=True)
class Interactive:
    """Limits of a judge asked while someone waits (the "test on one item" action).

    Whatever the judge's own settings, a request waits at most ``request_timeout``
    seconds, is retried at most ``max_retries`` times with at most ``max_backoff``
    seconds between attempts, and no request is sent or awaited after ``deadline``
    seconds from the start: a slow or dead endpoint costs the web worker that long
    and no more.
    """

    deadline: float = 20.0
    request_timeout: float = 10.0
    max_retries: int = 1
    max_backoff: float = 1.0


class DeadlineTransport:
    """A transport that gives up when a wall-clock deadline passes.

    Each request runs in a daemon thread and is awaited only for the time left, so
    neither a slow answer nor a slow name lookup keeps the caller past the deadline
    (the abandoned thread ends when its socket timeout, at most the per-request
    timeout, fires). The thread touches no database: only the HTTP request.
    """

    def __init__(
        self,
        transport: core.Transport,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.seconds = seconds
        self.clock = clock
        self.ends_at = clock() + seconds

    def left(self) -> float:
        return self.ends_at - self.clock()

    def __call__(
        self, url: str, payload: dict[str, Any], headers: dict[str, str], timeout: float
    ) -> dict[str, Any]:
        left = self.left()
        if left <= 0:
            raise core.TransportFailure(
                f"timed out: the test's {self.seconds:g} s budget is spent", retryable=False
            )
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["answer"] = self.transport(url, payload, headers, min(timeout, left))
            except BaseException as exc:  # handed to the caller's thread below
                outcome["error"] = exc

        thread = threading.Thread(target=call, daemon=True, name="ballot-judge-test")
        thread.start()
        thread.join(left)
        if thread.is_alive():
            raise core.TransportFailure(
                f"timed out: no answer within the test's {self.seconds:g} s budget",
                retryable=False,
            )
        if "error" in outcome:
            raise outcome["error"]
        return outcome["answer"]


class ChatBackend:
    def __init__(
        self,
        judge: Judge,
        budget: core.RequestBudget,
        transport: core.Transport | None = None,
        interactive: Interactive | None = None,
    ) -> None:
        config = core.ChatJudgeConfig(
            base_url=judge.base_url,
            model=judge.model,
            api_key=api_key_for(
                api_key_env=judge.api_key_env, api_key_encrypted=judge.api_key_encrypted
            ),
            timeout=judge.timeout_seconds,
            max_retries=judge.max_retries,
            concurrency=judge.concurrency,
            logprobs=judge.logprobs,
            backoff=float(getattr(settings, "BALLOT_JUDGE_BACKOFF_SECONDS", 0.5)),
        )
        transport = transport or outbound_transport
        sleep: Callable[[float], None] = time.sleep
        if interactive is not None:
            config.timeout = min(config.timeout, interactive.request_timeout)
            config.max_retries = min(config.max_retries, interactive.max_retries)
            config.max_backoff = interactive.max_backoff
            deadline = DeadlineTransport(transport, interactive.deadline)
            transport = deadline

            def sleep(seconds: float) -> None:
                time.sleep(max(0.0, min(seconds, deadline.left())))

        self.client = core.ChatJudge(config, transport, budget=budget, sleep=sleep)

    @property
    def requests(self) -> int:
        return self.client.attempts

    def pairs(self, tasks, template, on_disagreement):
        return self.client.judge_pairs(tasks, template=template, on_disagreement=on_disagreement)

    def rankings(self, tasks, prompts, on_disagreement):
        return self.client.judge_rankings(
            tasks, template=prompts["ranking"], on_disagreement=on_disagreement
        )

    def ratings(self, tasks, template):
        return self.client.judge_ratings(tasks, template=template)

    def tags(self, tasks, vocabulary, template):
        return self.client.judge_tags(tasks, vocabulary, template=template)


class _PairwiseRanking:
    """Rankings from round-robin pairwise verdicts, for backends that compare two at a time."""

    def pairs(self, tasks, template, on_disagreement):  # pragma: no cover - interface
        raise NotImplementedError

    def rankings(self, tasks, prompts, on_disagreement):
        """Each ranking from its pairs (:func:`models_gpu.judges.comparison_pairs`: every
        pair up to eight responses, a balanced incomplete round robin above), asked with
        the pairwise template in both orders."""
        out = []
        for task in tasks:
            count = len(task.responses)
            couples = core.comparison_pairs(count)
            verdicts = self.pairs(
                [
                    core.PairTask(task.prompt, (task.responses[i], task.responses[j]))
                    for i, j in couples
                ],
                prompts["pairwise"],
                on_disagreement,
            )
            out.append(core.ranking_from_pairs(count, couples, verdicts))
        return out


class LocalBackend(_PairwiseRanking):
    def __init__(self, judge: Judge) -> None:
        folder = check.model_folder(judge.model)
        if folder is None:
            raise ValidationFailed(
                f"model {judge.model!r} is no longer under a configured model root.",
                field="model",
            )
        key = (folder, judge.batch_size)
        with _LOCAL_LOCK:
            if key not in _LOCAL_MODELS:
                _LOCAL_MODELS[key] = core.LocalLMJudge(
                    core.LocalJudgeConfig(path=folder, batch_size=judge.batch_size)
                ).fit()
            self.model = _LOCAL_MODELS[key]
        self.requests = 0

    def pairs(self, tasks, template, on_disagreement):
        return self.model.judge_pairs(tasks, template=template, on_disagreement=on_disagreement)

    def ratings(self, tasks, template):
        return self.model.judge_ratings(tasks, template=template)

    def tags(self, tasks, vocabulary, template):
        return self.model.judge_tags(tasks, vocabulary, template=template)


class RewardBackend(_PairwiseRanking):
    """The Bradley–Terry reward model of a reward job, on the embeddings it was trained with."""

    def __init__(self, version: JudgeVersion) -> None:
        job_id = version.settings.get("reward_job")
        artifact = Artifact.objects.filter(job_id=job_id, kind="reward-model").first()
        if artifact is None:
            raise ValidationFailed(
                "The reward job of this judge wrote no model.", field="reward_job"
            )
        self.model = models_gpu.BradleyTerryReward.load(absolute(artifact.path))
        name = version.settings.get("embedding_model")
        folder = (
            check.model_folder(
                name,
                allowed_ids=(
                    models_gpu.DEFAULT_MODEL,
                    f"sentence-transformers/{models_gpu.DEFAULT_MODEL}",
                ),
            )
            if name
            else settings.BALLOT_EMBEDDING_MODEL or None
        )
        self.embedding = models_gpu.EmbeddingConfig(
            precision=settings.BALLOT_EMBEDDING_PRECISION, **({"model": folder} if folder else {})
        )
        self.requests = 0

    def _rewards(self, prompts: list[str], responses: list[str]) -> Any:
        vectors = models_gpu.embed_texts(
            [*prompts, *responses],
            config=self.embedding,
            cache=models_gpu.EmbeddingCache(embedding_cache_dir()),
        )
        return self.model.predict(vectors[: len(prompts)], vectors[len(prompts) :])

    def pairs(self, tasks, template, on_disagreement):
        if not tasks:
            return []
        prompts = [task.prompt for task in tasks]
        first = self._rewards(prompts, [task.responses[0] for task in tasks])
        second = self._rewards(prompts, [task.responses[1] for task in tasks])
        return core.reward_pair_verdicts(first, second)

    def ratings(self, tasks, template):
        return [
            core.Verdict(None, reason="the reward-model judge compares responses; it does not rate")
            for _ in tasks
        ]

    def tags(self, tasks, vocabulary, template):
        return [
            core.Verdict(None, reason="the reward-model judge compares responses; it does not tag")
            for _ in tasks
        ]


def backend_build(
    *,
    judge: Judge,
    version: JudgeVersion,
    budget: core.RequestBudget | None = None,
    transport: core.Transport | None = None,
    interactive: Interactive | None = None,
):
    """The backend object for ``judge`` (the local model is loaded once per process).

    ``interactive``: someone waits for the answer; the chat backend then keeps to its
    limits instead of the judge's own timeout and retries.
    """
    budget = budget or core.RequestBudget(judge.max_requests_per_job)
    if judge.backend == JudgeBackend.OPENAI:
        return ChatBackend(judge, budget, transport, interactive)
    if judge.backend == JudgeBackend.LOCAL:
        return LocalBackend(judge)
    return RewardBackend(version)


@dataclass
class QuestionResult:
    """One verdict on one question of one item, ready to store or show."""

    item_id: int
    question: Question
    outcome: str  # label | tie | abstain | skipped (request cap)
    answer: dict[str, Any] | None
    confidence: float | None
    consistent: bool | None
    reason: str
    raw: dict[str, Any] = field(default_factory=dict)
    input_hash: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "item": self.item_id,
            "question": self.question.name,
            "kind": self.question.kind,
            "outcome": self.outcome,
            "answer": self.answer,
            "confidence": self.confidence,
            "consistent": self.consistent,
            "reason": self.reason,
            "raw": self.raw,
        }


def input_hash(version: JudgeVersion, question: Question, prompt: str, responses: Sequence) -> str:
    canonical = json.dumps(
        [version.fingerprint, question.id, question.config, prompt, [r.text for r in responses]],
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def items_judge(
    *,
    judge: Judge,
    version: JudgeVersion,
    items: Sequence[Item],
    backend: Any = None,
    questions: Sequence[Question] | None = None,
    skip: Callable[[int, int], bool] | None = None,
) -> tuple[list[QuestionResult], dict[str, Any]]:
    """Judge the pairwise, ranking and rating questions of ``items``.

    ``skip(item_id, question_id)`` leaves out what was judged before. Returns the
    results (``outcome == "skipped"`` where the request cap stopped the judge) and
    ``{"requests": n}``.
    """
    backend = backend or backend_build(judge=judge, version=version)
    if questions is None:
        questions = list(
            Question.objects.filter(project_id=judge.project_id, kind__in=JUDGED_KINDS).order_by(
                "position", "id"
            )
        )
    responses: dict[int, list[Response]] = {}
    for response in Response.objects.filter(item__in=[i.id for i in items]).order_by(
        "item_id", "position"
    ):
        responses.setdefault(response.item_id, []).append(response)
    prompts = version.settings.get("prompts") or core.DEFAULT_PROMPTS
    on_disagreement = version.settings.get("on_disagreement", "tie")
    pair_jobs: list[tuple[Item, Question, list[Response], str, list[tuple[int, int]]]] = []
    ranking_jobs: list[tuple[Item, Question, list[Response], str]] = []
    rating_jobs: list[tuple[Item, Question, list[Response], str, Response, dict]] = []
    results: list[QuestionResult] = []
    for item in items:
        prompt = conversation_text(item.conversation or [])
        item_responses = responses.get(item.id, [])
        for question in questions:
            if question.kind not in JUDGED_KINDS or (skip and skip(item.id, question.id)):
                continue
            digest = input_hash(version, question, prompt, item_responses)
            if len(item_responses) < 2 and question.kind != QuestionKind.RATING:
                results.append(
                    QuestionResult(
                        item.id,
                        question,
                        "abstain",
                        None,
                        None,
                        None,
                        "fewer than two responses to compare",
                        input_hash=digest,
                    )
                )
                continue
            if question.kind == QuestionKind.PAIRWISE:
                # Every pair needed (a round robin, bounded above eight responses), each in
                # both orders; the best response is chosen over the worst.
                couples = core.comparison_pairs(len(item_responses))
                pair_jobs.append((item, question, item_responses, prompt, couples))
            elif question.kind == QuestionKind.RANKING:
                ranking_jobs.append((item, question, item_responses, prompt))
            else:
                for aspect in question.config.get("aspects") or []:
                    for response in item_responses:
                        rating_jobs.append(
                            (item, question, item_responses, prompt, response, aspect)
                        )

    def instructions(question: Question) -> str:
        return question.prompt or ""

    pair_verdicts = backend.pairs(
        [
            core.PairTask(prompt, (rs[i].text, rs[j].text), instructions(question))
            for _, question, rs, prompt, couples in pair_jobs
            for i, j in couples
        ],
        prompts["pairwise"],
        on_disagreement,
    )
    offset = 0
    for item, question, rs, prompt, couples in pair_jobs:
        verdicts = pair_verdicts[offset : offset + len(couples)]
        offset += len(couples)
        digest = input_hash(version, question, prompt, rs)
        if len(rs) == 2:
            results.append(_pair_result(item.id, question, rs, verdicts[0], digest))
        else:
            results.append(_pairs_result(item.id, question, rs, couples, verdicts, digest))

    ranking_verdicts = backend.rankings(
        [
            core.RankingTask(prompt, tuple(r.text for r in rs), instructions(question))
            for _, question, rs, prompt in ranking_jobs
        ],
        prompts,
        on_disagreement,
    )
    for (item, question, rs, prompt), verdict in zip(ranking_jobs, ranking_verdicts, strict=True):
        results.append(
            _ranking_result(
                item.id, question, rs, verdict, input_hash(version, question, prompt, rs)
            )
        )

    rating_verdicts = backend.ratings(
        [
            core.RatingTask(
                prompt,
                response.text,
                aspect["name"],
                float((aspect.get("scale") or question.config["scale"])["min"]),
                float((aspect.get("scale") or question.config["scale"])["max"]),
                instructions(question),
            )
            for _, question, _, prompt, response, aspect in rating_jobs
        ],
        prompts["rating"],
    )
    grouped: dict[tuple[int, int], list] = {}
    for job, verdict in zip(rating_jobs, rating_verdicts, strict=True):
        grouped.setdefault((job[0].id, job[1].id), []).append((job, verdict))
    for (item_id, _), entries in grouped.items():
        (item, question, rs, prompt, _, _), _ = entries[0]
        results.append(
            _rating_result(item_id, question, entries, input_hash(version, question, prompt, rs))
        )
    return results, {"requests": backend.requests}


def _pair_result(item_id, question, pair, verdict, digest) -> QuestionResult:
    if verdict is None:
        return QuestionResult(
            item_id, question, "skipped", None, None, None, "request cap reached", input_hash=digest
        )
    raw = verdict.as_dict()
    answer = None
    outcome, reason = verdict.outcome, verdict.reason
    if outcome == "label":
        winner, loser = pair[verdict.winner], pair[1 - verdict.winner]
        answer = {"question": question.id, "chosen": winner.id, "rejected": loser.id, "tie": False}
    elif outcome == "tie":
        if question.config.get("allow_tie", True):
            answer = {
                "question": question.id,
                "chosen": pair[0].id,
                "rejected": pair[1].id,
                "tie": True,
            }
        else:
            outcome, reason = "abstain", f"{reason}; this question allows no ties"
    return QuestionResult(
        item_id,
        question,
        outcome,
        answer,
        verdict.confidence,
        verdict.consistent,
        reason,
        raw,
        digest,
    )


def _pairs_result(item_id, question, rs, couples, verdicts, digest) -> QuestionResult:
    """A pairwise question on more than two responses: the best response by wins over the
    judged pairs is chosen over the worst (earlier position first among equals); every
    pair and its both orders stay in ``raw``. Any pair abstaining makes the question
    abstain; all responses level makes a tie."""
    if any(verdict is None for verdict in verdicts):
        return QuestionResult(
            item_id, question, "skipped", None, None, None, "request cap reached", input_hash=digest
        )
    scores = core.pair_scores(len(rs), couples, verdicts)
    raw = {
        "pairs": [
            {"positions": [i, j], "responses": [rs[i].id, rs[j].id], **verdict.as_dict()}
            for (i, j), verdict in zip(couples, verdicts, strict=True)
        ],
        "scores": scores,
    }
    abstained = [
        f"responses {i} and {j}: {verdict.reason}"
        for (i, j), verdict in zip(couples, verdicts, strict=True)
        if verdict.outcome == "abstain"
    ]
    if abstained:
        return QuestionResult(
            item_id, question, "abstain", None, None, None, "; ".join(abstained), raw, digest
        )
    tied = [
        f"responses {i} and {j}"
        for (i, j), verdict in zip(couples, verdicts, strict=True)
        if verdict.outcome == "tie"
    ]
    reason = f"{', '.join(tied)} tied (position bias)" if tied else ""
    consistent = all(verdict.consistent for verdict in verdicts)
    known = [v.confidence for v in verdicts if v.confidence is not None]
    confidence = round(sum(known) / len(known), 6) if known else None
    best = max(range(len(rs)), key=lambda index: (scores[index], -index))
    worst = min(range(len(rs)), key=lambda index: (scores[index], -index))
    if scores[best] > scores[worst]:
        answer = {"question": question.id, "chosen": rs[best].id, "rejected": rs[worst].id}
        return QuestionResult(
            item_id,
            question,
            "label",
            {**answer, "tie": False},
            confidence,
            consistent,
            reason,
            raw,
            digest,
        )
    if not question.config.get("allow_tie", True):
        return QuestionResult(
            item_id,
            question,
            "abstain",
            None,
            None,
            consistent,
            f"{reason}; this question allows no ties",
            raw,
            digest,
        )
    answer = {"question": question.id, "chosen": rs[0].id, "rejected": rs[1].id, "tie": True}
    return QuestionResult(
        item_id, question, "tie", answer, confidence, consistent, reason, raw, digest
    )


def _ranking_result(item_id, question, rs, verdict, digest) -> QuestionResult:
    if verdict is None:
        return QuestionResult(
            item_id, question, "skipped", None, None, None, "request cap reached", input_hash=digest
        )
    outcome, groups, reason, orders = verdict
    raw = {"orders": [v.as_dict() for v in orders]}
    answer = None
    if groups is not None:
        if any(len(group) > 1 for group in groups) and not question.config.get("allow_ties", True):
            outcome, reason = "abstain", f"{reason}; this question allows no ties"
        else:
            answer = {
                "question": question.id,
                "ranking": [[rs[i].id for i in group] for group in groups],
            }
    consistent = None if outcome == "abstain" and not groups else outcome == "label"
    confidence = None if answer is None else (1.0 if outcome == "label" else 0.5)
    return QuestionResult(
        item_id, question, outcome, answer, confidence, consistent, reason, raw, digest
    )


def _rating_result(item_id, question, entries, digest) -> QuestionResult:
    if any(verdict is None for _, verdict in entries):
        return QuestionResult(
            item_id, question, "skipped", None, None, None, "request cap reached", input_hash=digest
        )
    ratings, reasons, raw = [], [], []
    for (_, _, _, _, response, aspect), verdict in entries:
        raw.append({"response": response.id, "aspect": aspect["name"], **verdict.as_dict()})
        if verdict.abstained:
            reasons.append(f"{aspect['name']} of response {response.position}: {verdict.reason}")
        else:
            ratings.append(
                {"response": response.id, "aspect": aspect["name"], "value": verdict.choice}
            )
    if not ratings:
        return QuestionResult(
            item_id,
            question,
            "abstain",
            None,
            None,
            None,
            "; ".join(reasons),
            {"ratings": raw},
            digest,
        )
    answer = {"question": question.id, "ratings": ratings}
    return QuestionResult(
        item_id, question, "label", answer, None, None, "; ".join(reasons), {"ratings": raw}, digest
    )
