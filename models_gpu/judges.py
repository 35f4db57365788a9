"""LM judges: prompts, answer parsing, both-order judging and three backends.

Pure Python + torch, no Django. The HTTP transport of the chat-completions judge is
injected (``Transport``), so the web side decides how a request leaves the machine
(address checks, pinned connections) and this module only decides what to ask,
how often to retry and how to read the answer.

A pairwise judgement is always made twice, once in each order of the two
responses. :func:`combine_orders` turns the two verdicts into one: agreement gives
the label, disagreement a tie or an abstention. A verdict that cannot be parsed is
an abstention with its reason, never a guess.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

LABELS = ("A", "B")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
OnDisagreement = Literal["tie", "abstain"]

SYSTEM_PROMPT = (
    "You are an impartial judge of AI assistant responses. Judge helpfulness, "
    "correctness, harmlessness and honesty. Ignore the order in which responses are shown "
    "and their length as such."
)
# Shipped defaults; every project may edit its own copy. Placeholders in braces are the
# only substitutions made (see :func:`render`), so a template cannot reach anything else.
DEFAULT_PROMPTS: dict[str, str] = {
    "pairwise": (
        "[Conversation]\n{prompt}\n\n[Response A]\n{response_a}\n\n[Response B]\n{response_b}\n\n"
        "{instructions}Which response is better? Answer with exactly one letter: "
        "A or B. Answer: "
    ),
    "ranking": (
        "[Conversation]\n{prompt}\n\n{responses}\n\n{instructions}Rank every response from best "
        "to worst. Answer with the letters only, best first, separated by '>' (for example "
        "B > A > C). Answer: "
    ),
    "rating": (
        "[Conversation]\n{prompt}\n\n[Response]\n{response}\n\n{instructions}Rate the response "
        "for {aspect} on a scale from {min} to {max}. Answer with the number only. Answer: "
    ),
}
# Instance tags for routing: one prompt per item, one line per tag in the answer
# (``domain: B``), each option named by its letter. See :func:`parse_tags`.
DEFAULT_TAG_PROMPT = (
    "[Conversation]\n{prompt}\n\nDescribe the user's request above: for each tag below, "
    "choose the one option that fits best.\n\n{tags}\n\nAnswer with one line per tag, in "
    "the order given: the tag's name, a colon and the option's letter (for example "
    "'domain: B'), and nothing else.\n"
)
# Every editable template: the question kinds' and the tagging prompt.
DEFAULT_TEMPLATES: dict[str, str] = {**DEFAULT_PROMPTS, "tagging": DEFAULT_TAG_PROMPT}
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "pairwise": ("prompt", "response_a", "response_b", "instructions"),
    "ranking": ("prompt", "responses", "instructions"),
    "rating": ("prompt", "response", "aspect", "min", "max", "instructions"),
    "tagging": ("prompt", "tags"),
}
REQUIRED_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "pairwise": ("response_a", "response_b"),
    "ranking": ("responses",),
    "rating": ("response",),
    "tagging": ("prompt", "tags"),
}
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def template_problems(kind: str, template: str) -> list[str]:
    """Why ``template`` cannot serve questions of ``kind`` (empty when it can)."""
    if kind not in PLACEHOLDERS:
        return [f"unknown question kind {kind!r}"]
    used = set(_PLACEHOLDER.findall(template))
    problems = [
        f"unknown placeholder {{{name}}}; use {', '.join('{' + p + '}' for p in PLACEHOLDERS[kind])}"
        for name in sorted(used - set(PLACEHOLDERS[kind]))
    ]
    problems += [
        f"missing placeholder {{{name}}}"
        for name in REQUIRED_PLACEHOLDERS[kind]
        if name not in used
    ]
    return problems


def render(template: str, fields: Mapping[str, Any]) -> str:
    """Substitute ``{name}`` for the known fields only (no format-string attribute access)."""
    return _PLACEHOLDER.sub(
        lambda match: str(fields[match.group(1)]) if match.group(1) in fields else match.group(0),
        template,
    )


# --- Verdicts ----------------------------------------------------------------------------


@dataclass
class Verdict:
    """One answer of a judge to one prompt.

    ``choice`` is a label (``"A"``/``"B"``), a ranking (letters, best first), a rating
    (number) or None for an abstention, whose ``reason`` says why. ``probabilities``
    maps each label to the judge's probability when the backend gives them.
    """

    choice: Any
    raw: str = ""
    reason: str = ""
    probabilities: dict[str, float] | None = None

    @property
    def abstained(self) -> bool:
        return self.choice is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "choice": self.choice,
            "raw": self.raw,
            "reason": self.reason,
            "probabilities": self.probabilities,
        }


@dataclass
class PairVerdict:
    """Both orders of one pair combined. ``winner`` is 0 or 1 (the pair's own order) or None.

    ``outcome`` is ``label`` (a winner), ``tie`` or ``abstain``; ``consistent`` says
    whether the two orders agreed (None when either order abstained).
    """

    outcome: Literal["label", "tie", "abstain"]
    winner: int | None
    confidence: float | None
    consistent: bool | None
    reason: str
    orders: list[Verdict]

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "winner": self.winner,
            "confidence": self.confidence,
            "consistent": self.consistent,
            "reason": self.reason,
            "orders": [verdict.as_dict() for verdict in self.orders],
        }


def parse_pairwise(text: str) -> Verdict:
    """Read A or B from a judge's answer; anything else is an abstention with the reason.

    Accepted: the bare letter, ``[[A]]``, ``Response A``, ``Answer: B`` and the like,
    possibly followed by an explanation. An answer naming both letters as its verdict
    (``A or B``) or neither is unparseable.
    """
    cleaned = (text or "").strip()
    if not cleaned:
        return Verdict(None, raw=text or "", reason="empty answer")
    bracketed = re.findall(r"\[\[\s*([AB])\s*\]\]", cleaned)
    if len(set(bracketed)) == 1:
        return Verdict(bracketed[0], raw=text)
    head = re.sub(
        r"^(the\s+)?(final\s+)?(answer|verdict|choice)\s*(is)?\s*[:\-]?\s*", "", cleaned, flags=re.I
    )
    if re.match(r"^[\(\[]?\s*[AB]\s*[\)\]]?\s*(or|and|/|,|vs\.?)\s*[\(\[]?\s*[AB]\b", head):
        return Verdict(None, raw=text, reason=f"both letters named in {_clip(cleaned)!r}")
    match = re.match(
        r"^[\(\[]?\s*(?:(?i:response|output|assistant)\s+)?([AB])(?![A-Za-z0-9])", head
    )
    if match:
        return Verdict(match.group(1), raw=text)
    named = set(re.findall(r"\b(?:response|output|assistant)\s+([AB])\b", cleaned, flags=re.I))
    if len(named) == 1:
        return Verdict(named.pop().upper(), raw=text)
    return Verdict(None, raw=text, reason=f"no single A or B verdict in {_clip(cleaned)!r}")


def parse_ranking(text: str, count: int) -> Verdict:
    """Read a ranking ``B > A > C`` of ``count`` responses (letters, best first)."""
    cleaned = (text or "").strip()
    letters = LETTERS[:count]
    first_line = cleaned.splitlines()[0] if cleaned else ""
    found = re.findall(rf"\b([{letters}])\b", first_line.upper().replace(">", " > "))
    if sorted(found) != sorted(letters) or len(found) != count:
        return Verdict(
            None,
            raw=text,
            reason=f"expected each of {', '.join(letters)} exactly once, got {_clip(first_line)!r}",
        )
    return Verdict(found, raw=text)


def parse_rating(text: str, low: float, high: float) -> Verdict:
    """Read the first number of the answer; outside [low, high] is an abstention."""
    cleaned = (text or "").strip()
    match = re.search(r"-?\d+(?:\.\d+)?", cleaned)
    if not match:
        return Verdict(None, raw=text, reason=f"no number in {_clip(cleaned)!r}")
    value = float(match.group(0))
    if not low <= value <= high:
        return Verdict(None, raw=text, reason=f"{value:g} is outside {low:g}..{high:g}")
    return Verdict(value, raw=text)


TagVocabulary = Mapping[str, Sequence[str]]


def tag_options_text(vocabulary: TagVocabulary) -> str:
    """The ``{tags}`` block: one line per tag, its options lettered (``domain: A) coding, …``)."""
    return "\n".join(
        f"{tag}: " + ", ".join(f"{LETTERS[i]}) {value}" for i, value in enumerate(values))
        for tag, values in vocabulary.items()
    )


def tagging_text(template: str, prompt: str, vocabulary: TagVocabulary) -> str:
    return render(template, {"prompt": prompt, "tags": tag_options_text(vocabulary)})


_TAG_LINE = re.compile(r"^\s*(?:[-*]\s*)?([A-Za-z][A-Za-z _]*?)\s*[:=]\s*(.*?)\s*$")
_TAG_VALUE = re.compile(r"^\(?([A-Z])\)?[.)]?(?:\s+(.+))?$")


def parse_tags(text: str, vocabulary: TagVocabulary) -> Verdict:
    """Read one option per tag from ``tag: letter`` lines; anything else abstains with the reason.

    Strict: every tag of ``vocabulary`` exactly once, each with a letter among its
    options (a letter may carry its option's name, ``B) math``, which must then
    match) or the option's exact name. Blank lines, code fences and a leading
    ``Answer:`` are ignored; any other line, an unknown tag or a letter out of range
    makes the whole answer unparseable (no partial tags).
    """
    cleaned = (text or "").strip()
    if not cleaned:
        return Verdict(None, raw=text or "", reason="empty answer")
    tags: dict[str, str] = {}
    for number, line in enumerate(cleaned.splitlines()):
        line = line.strip().strip("`").strip()
        if number == 0:
            line = re.sub(r"^(answer|tags)\s*:\s*", "", line, flags=re.I)
        if not line:
            continue
        match = _TAG_LINE.match(line)
        if not match:
            return Verdict(None, raw=text, reason=f"not a 'tag: letter' line: {_clip(line)!r}")
        tag = re.sub(r"[\s]+", "_", match.group(1).strip().lower())
        if tag not in vocabulary:
            return Verdict(None, raw=text, reason=f"unknown tag {_clip(tag)!r}")
        if tag in tags:
            return Verdict(None, raw=text, reason=f"tag {tag!r} answered twice")
        options = list(vocabulary[tag])
        value = match.group(2).strip().rstrip(".")
        letter = _TAG_VALUE.match(value)
        if letter:
            index = LETTERS.index(letter.group(1))
            if index >= len(options):
                return Verdict(
                    None,
                    raw=text,
                    reason=f"{tag}: letter {letter.group(1)} is not one of "
                    f"{LETTERS[0]}..{LETTERS[len(options) - 1]}",
                )
            named = (letter.group(2) or "").strip().lower()
            if named and named != options[index].lower():
                return Verdict(
                    None,
                    raw=text,
                    reason=f"{tag}: letter {letter.group(1)} is {options[index]!r}, "
                    f"not {_clip(named)!r}",
                )
            tags[tag] = options[index]
        elif value.lower() in [option.lower() for option in options]:
            tags[tag] = options[[option.lower() for option in options].index(value.lower())]
        else:
            return Verdict(
                None, raw=text, reason=f"{tag}: {_clip(value)!r} is not one of its options"
            )
    missing = [tag for tag in vocabulary if tag not in tags]
    if missing:
        return Verdict(None, raw=text, reason=f"no answer for {', '.join(missing)}")
    return Verdict(tags, raw=text)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def combine_orders(
    first: Verdict, swapped: Verdict, *, on_disagreement: OnDisagreement = "tie"
) -> PairVerdict:
    """One verdict from the pair judged as (r0, r1) and as (r1, r0).

    In ``first`` label A is response 0; in ``swapped`` label A is response 1. Agreeing
    orders give the winner; disagreeing orders (each picked the response in the same
    position: position bias) give a tie or an abstention, as configured. The confidence
    is the mean probability given to the final outcome when both orders carry
    probabilities, else 1.0 for agreement and 0.5 for a tie from disagreement.
    """
    orders = [first, swapped]
    if first.abstained or swapped.abstained:
        reasons = [
            f"{name} order: {v.reason}"
            for name, v in (("first", first), ("swapped", swapped))
            if v.abstained
        ]
        return PairVerdict("abstain", None, None, None, "; ".join(reasons), orders)
    winner_first = LABELS.index(first.choice)
    winner_swapped = 1 - LABELS.index(swapped.choice)
    probabilities = _order_probabilities(first, swapped)
    if winner_first == winner_swapped:
        confidence = (
            (probabilities[0][winner_first] + probabilities[1][winner_first]) / 2
            if probabilities
            else 1.0
        )
        return PairVerdict("label", winner_first, round(confidence, 6), True, "", orders)
    reason = (
        f"the orders disagree (first chose response {winner_first}, swapped chose "
        f"response {winner_swapped}): position bias"
    )
    if on_disagreement == "abstain":
        return PairVerdict("abstain", None, None, False, reason, orders)
    if probabilities:
        # How evenly the judge split its belief over the two orders: 1 when each order
        # leaned the other way equally hard.
        p0 = (probabilities[0][0] + probabilities[1][0]) / 2
        confidence = 1.0 - abs(p0 - 0.5) * 2
    else:
        confidence = 0.5
    return PairVerdict("tie", None, round(confidence, 6), False, reason, orders)


def _order_probabilities(first: Verdict, swapped: Verdict) -> list[list[float]] | None:
    """Per order, [p(response 0 wins), p(response 1 wins)], labels normalised; None if missing."""
    if not first.probabilities or not swapped.probabilities:
        return None
    out = []
    for index, verdict in enumerate((first, swapped)):
        p_a = verdict.probabilities.get("A", 0.0)
        p_b = verdict.probabilities.get("B", 0.0)
        total = p_a + p_b
        if total <= 0:
            return None
        p_a, p_b = p_a / total, p_b / total
        out.append([p_a, p_b] if index == 0 else [p_b, p_a])
    return out


# --- Tasks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairTask:
    """Judge response 0 against response 1 for the conversation ``prompt``."""

    prompt: str
    responses: tuple[str, str]
    instructions: str = ""


@dataclass(frozen=True)
class RankingTask:
    prompt: str
    responses: tuple[str, ...]
    instructions: str = ""


@dataclass(frozen=True)
class RatingTask:
    prompt: str
    response: str
    aspect: str
    low: float
    high: float
    instructions: str = ""


@dataclass(frozen=True)
class TagTask:
    """Tag the conversation ``prompt`` (one option per tag of a vocabulary)."""

    prompt: str


def pairwise_text(template: str, task: PairTask, *, swapped: bool) -> str:
    first, second = task.responses[::-1] if swapped else task.responses
    return render(
        template,
        {
            "prompt": task.prompt,
            "response_a": first,
            "response_b": second,
            "instructions": _instructions(task.instructions),
        },
    )


def ranking_text(template: str, task: RankingTask, order: Sequence[int]) -> str:
    blocks = [f"[Response {LETTERS[i]}]\n{task.responses[index]}" for i, index in enumerate(order)]
    return render(
        template,
        {
            "prompt": task.prompt,
            "responses": "\n\n".join(blocks),
            "instructions": _instructions(task.instructions),
        },
    )


def rating_text(template: str, task: RatingTask) -> str:
    return render(
        template,
        {
            "prompt": task.prompt,
            "response": task.response,
            "aspect": task.aspect,
            "min": f"{task.low:g}",
            "max": f"{task.high:g}",
            "instructions": _instructions(task.instructions),
        },
    )


def _instructions(text: str) -> str:
    return f"[Guidelines]\n{text.strip()}\n\n" if text and text.strip() else ""


def combine_rankings(
    first: Verdict, reversed_: Verdict, count: int, *, on_disagreement: OnDisagreement
) -> tuple[str, list[list[int]] | None, str]:
    """Rankings judged in the shown order and reversed; returns (outcome, groups, reason).

    ``groups`` lists response indices best first. Disagreeing rankings become one
    tie group of every response, or an abstention.
    """
    if first.abstained or reversed_.abstained:
        reasons = [v.reason for v in (first, reversed_) if v.abstained]
        return "abstain", None, "; ".join(reasons)
    order_first = [LETTERS.index(letter) for letter in first.choice]
    backwards = list(range(count))[::-1]
    order_reversed = [backwards[LETTERS.index(letter)] for letter in reversed_.choice]
    if order_first == order_reversed:
        return "label", [[index] for index in order_first], ""
    reason = "the rankings differ between the shown and the reversed order: position bias"
    if on_disagreement == "abstain":
        return "abstain", None, reason
    return "tie", [list(range(count))], reason


# --- The chat-completions backend ------------------------------------------------------------


class TransportFailure(Exception):
    """A request that failed. ``retryable``: 429, 5xx, timeouts; ``retry_after`` in seconds."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class RequestCapReached(Exception):
    """The job's request cap is spent; nothing more is sent."""


class Transport(Protocol):
    def __call__(
        self, url: str, payload: dict[str, Any], headers: dict[str, str], timeout: float
    ) -> dict[str, Any]:
        """POST ``payload`` as JSON; the decoded JSON answer, or raise ``TransportFailure``."""


class RequestBudget:
    """A thread-safe count of the requests a job may still send (None: no cap)."""

    def __init__(self, cap: int | None) -> None:
        self.cap = cap
        self.used = 0
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            if self.cap is not None and self.used >= self.cap:
                raise RequestCapReached(f"the cap of {self.cap} requests for this job is spent")
            self.used += 1


@dataclass
class ChatJudgeConfig:
    """Settings of an OpenAI-compatible judge. ``api_key`` never leaves this object."""

    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    timeout: float = 30.0
    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    concurrency: int = 4
    max_tokens: int = 16
    logprobs: bool = False


class ChatJudge:
    """A chat-completions judge: temperature 0, retries with backoff, a concurrency cap.

    ``transport`` sends one request; ``sleep`` waits between attempts (injected so
    tests and benchmarks can observe the waits). Labels come from the text answer;
    when the server returns ``logprobs``, the probabilities of the label tokens at
    the first label position become the verdict's probabilities.
    """

    def __init__(
        self,
        config: ChatJudgeConfig,
        transport: Transport,
        *,
        budget: RequestBudget | None = None,
        sleep: Callable[[float], None] = time.sleep,
        system_prompt: str = SYSTEM_PROMPT,
    ) -> None:
        self.config = config
        self.transport = transport
        self.budget = budget or RequestBudget(None)
        self.sleep = sleep
        self.system_prompt = system_prompt
        self.attempts = 0
        self._attempts_lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.config.base_url.rstrip("/") + "/chat/completions"

    def complete(
        self, text: str, *, max_tokens: int | None = None, logprobs: bool = True
    ) -> tuple[str, dict[str, float] | None]:
        """One answer to ``text``: (content, label probabilities or None)."""
        payload: dict[str, Any] = {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": self.system_prompt},
                {"role": "user", "content": text},
            ],
            "temperature": 0,
            "max_tokens": max_tokens or self.config.max_tokens,
        }
        if self.config.logprobs and logprobs:
            payload.update(logprobs=True, top_logprobs=5)
        headers = {"Content-Type": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        self.budget.take()
        attempt = 0
        while True:
            with self._attempts_lock:
                self.attempts += 1
            try:
                answer = self.transport(self.url, payload, headers, self.config.timeout)
                return _chat_content(answer)
            except TransportFailure as failure:
                if not failure.retryable or attempt >= self.config.max_retries:
                    raise
                wait = failure.retry_after
                if wait is None:
                    wait = self.config.backoff * (2**attempt)
                self.sleep(min(max(wait, 0.0), self.config.max_backoff))
                attempt += 1

    def _verdict(self, text: str, parse: Callable[[str], Verdict]) -> Verdict:
        try:
            content, probabilities = self.complete(text)
        except TransportFailure as failure:
            return Verdict(None, reason=f"request failed: {failure}")
        verdict = parse(content)
        if probabilities and verdict.choice in LABELS:
            verdict.probabilities = probabilities
        return verdict

    def _map(self, function: Callable[[Any], Any], tasks: Sequence[Any]) -> list[Any]:
        """``function`` over ``tasks`` on at most ``concurrency`` threads, order kept.

        A spent request cap stops the remaining tasks: they come back as None.
        """
        stop = threading.Event()

        def guarded(task: Any) -> Any:
            if stop.is_set():
                return None
            try:
                return function(task)
            except RequestCapReached:
                stop.set()
                return None

        workers = max(1, min(self.config.concurrency, len(tasks) or 1))
        if workers == 1:
            return [guarded(task) for task in tasks]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(guarded, tasks))

    def judge_pairs(
        self,
        tasks: Sequence[PairTask],
        *,
        template: str = DEFAULT_PROMPTS["pairwise"],
        on_disagreement: OnDisagreement = "tie",
    ) -> list[PairVerdict | None]:
        """Every pair in both orders; None for pairs the request cap left unjudged."""
        jobs = [(task, swapped) for task in tasks for swapped in (False, True)]

        def one(job: tuple[PairTask, bool]) -> Verdict:
            task, swapped = job
            return self._verdict(pairwise_text(template, task, swapped=swapped), parse_pairwise)

        verdicts = self._map(one, jobs)
        out: list[PairVerdict | None] = []
        for index in range(len(tasks)):
            first, swapped = verdicts[2 * index], verdicts[2 * index + 1]
            if first is None or swapped is None:
                out.append(None)
            else:
                out.append(combine_orders(first, swapped, on_disagreement=on_disagreement))
        return out

    def judge_rankings(
        self,
        tasks: Sequence[RankingTask],
        *,
        template: str = DEFAULT_PROMPTS["ranking"],
        on_disagreement: OnDisagreement = "tie",
    ) -> list[tuple[str, list[list[int]] | None, str, list[Verdict]] | None]:
        jobs = [
            (task, list(range(len(task.responses)))[:: -1 if backwards else 1])
            for task in tasks
            for backwards in (False, True)
        ]

        def one(job: tuple[RankingTask, list[int]]) -> Verdict:
            task, order = job
            return self._verdict(
                ranking_text(template, task, order),
                lambda text: parse_ranking(text, len(task.responses)),
            )

        verdicts = self._map(one, jobs)
        out: list[Any] = []
        for index, task in enumerate(tasks):
            first, backwards = verdicts[2 * index], verdicts[2 * index + 1]
            if first is None or backwards is None:
                out.append(None)
                continue
            outcome, groups, reason = combine_rankings(
                first, backwards, len(task.responses), on_disagreement=on_disagreement
            )
            out.append((outcome, groups, reason, [first, backwards]))
        return out

    def judge_ratings(
        self, tasks: Sequence[RatingTask], *, template: str = DEFAULT_PROMPTS["rating"]
    ) -> list[Verdict | None]:
        def one(task: RatingTask) -> Verdict:
            return self._verdict(
                rating_text(template, task), lambda text: parse_rating(text, task.low, task.high)
            )

        return self._map(one, tasks)

    def judge_tags(
        self,
        tasks: Sequence[TagTask],
        vocabulary: TagVocabulary,
        *,
        template: str = DEFAULT_TAG_PROMPT,
    ) -> list[Verdict | None]:
        """One request per prompt; the answer is read by :func:`parse_tags` (strict).

        A failed request abstains with ``request failed: …``; None where the request
        cap left the prompt untagged.
        """
        # About eight tokens per answer line, and room for a stray word.
        max_tokens = max(self.config.max_tokens, 8 * len(vocabulary) + 16)

        def one(task: TagTask) -> Verdict:
            try:
                content, _ = self.complete(
                    tagging_text(template, task.prompt, vocabulary),
                    max_tokens=max_tokens,
                    logprobs=False,
                )
            except TransportFailure as failure:
                return Verdict(None, reason=f"request failed: {failure}")
            return parse_tags(content, vocabulary)

        return self._map(one, tasks)


def _chat_content(answer: Mapping[str, Any]) -> tuple[str, dict[str, float] | None]:
    """The first choice's text and, when logprobs came back, the label probabilities."""
    try:
        choice = answer["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise TransportFailure(
            f"the answer is not a chat completion (no choices[0].message.content: {exc!r})",
            retryable=False,
        ) from exc
    if not isinstance(content, str):
        content = ""
    return content, _label_probabilities(choice.get("logprobs"))


def _label_probabilities(logprobs: Any) -> dict[str, float] | None:
    """Probabilities of A and B at the first generated token that is one of them."""
    if not isinstance(logprobs, Mapping) or not isinstance(logprobs.get("content"), list):
        return None
    for position in logprobs["content"]:
        if not isinstance(position, Mapping):
            return None
        if str(position.get("token", "")).strip() not in LABELS:
            continue
        found: dict[str, float] = {}
        for candidate in position.get("top_logprobs") or [position]:
            token = str(candidate.get("token", "")).strip()
            value = candidate.get("logprob")
            if token in LABELS and isinstance(value, (int, float)) and token not in found:
                found[token] = math.exp(value)
        total = sum(found.values())
        if total <= 0:
            return None
        return {label: found.get(label, 0.0) / total for label in LABELS}
    return None


# --- The local causal-LM backend --------------------------------------------------------------


@dataclass
class LocalJudgeConfig:
    path: str
    batch_size: int = 8
    device: str | None = None
    max_length: int = 2048


class LocalLMJudge:
    """A Hugging Face causal LM choosing among label tokens by next-token probability.

    No sampling: the prompt is run once and the logits at the last position are
    compared for the label tokens only (``A``/``B`` for pairs, the scale's digits
    for ratings). Prompts are batched with left padding so that the last position
    is every row's own next token. Runs on CUDA when present.
    """

    def __init__(self, config: LocalJudgeConfig) -> None:
        self.config = config

    def fit(self) -> LocalLMJudge:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.device_ = torch.device(device)
        tokenizer = AutoTokenizer.from_pretrained(self.config.path)
        # Left padding and left truncation: the last position is every prompt's own end,
        # where the answer is asked for.
        tokenizer.padding_side = "left"
        tokenizer.truncation_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self.tokenizer_ = tokenizer
        dtype = torch.float16 if self.device_.type == "cuda" else torch.float32
        self.model_ = (
            AutoModelForCausalLM.from_pretrained(self.config.path, dtype=dtype)
            .to(self.device_)
            .eval()
        )
        positions = getattr(self.model_.config, "max_position_embeddings", None) or getattr(
            self.model_.config, "n_positions", None
        )
        self.max_length_ = min(self.config.max_length, positions or self.config.max_length)
        return self

    def label_token_ids(self, labels: Sequence[str]) -> list[int]:
        """One vocabulary id per label (the label alone, else with a leading space)."""
        ids = []
        for label in labels:
            for candidate in (label, f" {label}", f"▁{label}", f"Ġ{label}"):
                pieces = self.tokenizer_.encode(candidate, add_special_tokens=False)
                if len(pieces) == 1 and pieces[0] != self.tokenizer_.unk_token_id:
                    ids.append(pieces[0])
                    break
            else:
                raise ValueError(
                    f"the label {label!r} is not a single token of this model's tokenizer"
                )
        return ids

    def label_probabilities(self, texts: Sequence[str], labels: Sequence[str]) -> list[list[float]]:
        """For each text, the probability of each label as the next token (renormalised)."""
        import torch

        token_ids = self.label_token_ids(labels)
        out: list[list[float]] = []
        size = max(1, self.config.batch_size)
        for start in range(0, len(texts), size):
            batch = list(texts[start : start + size])
            encoded = self.tokenizer_(
                batch,
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length_,
                add_special_tokens=True,
            ).to(self.device_)
            # Positions count from each row's first real token: with left padding the
            # default positions would shift every shorter prompt (and change its answer).
            mask = encoded["attention_mask"]
            positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self.model_(
                    input_ids=encoded["input_ids"], attention_mask=mask, position_ids=positions
                ).logits[:, -1, :]
            chosen = logits[:, token_ids].float()
            out.extend(torch.softmax(chosen, dim=-1).cpu().tolist())
        return out

    def judge_pairs(
        self,
        tasks: Sequence[PairTask],
        *,
        template: str = DEFAULT_PROMPTS["pairwise"],
        on_disagreement: OnDisagreement = "tie",
    ) -> list[PairVerdict]:
        texts = [
            pairwise_text(template, task, swapped=swapped)
            for task in tasks
            for swapped in (False, True)
        ]
        probabilities = self.label_probabilities(texts, LABELS)
        out = []
        for index in range(len(tasks)):
            pair = []
            for p in probabilities[2 * index : 2 * index + 2]:
                label = LABELS[int(p[1] > p[0])]
                pair.append(
                    Verdict(
                        label,
                        raw=f"p(A)={p[0]:.4f} p(B)={p[1]:.4f}",
                        probabilities={"A": p[0], "B": p[1]},
                    )
                )
            out.append(combine_orders(pair[0], pair[1], on_disagreement=on_disagreement))
        return out

    def judge_ratings(
        self, tasks: Sequence[RatingTask], *, template: str = DEFAULT_PROMPTS["rating"]
    ) -> list[Verdict]:
        """Ratings on integer scales of at most ten steps (one token per value)."""
        out: list[Verdict] = []
        for task in tasks:
            values = [str(v) for v in range(int(math.ceil(task.low)), int(task.high) + 1)]
            if not values or len(values) > 10 or task.low < 0:
                out.append(Verdict(None, reason="the local judge rates integer scales 0..9 only"))
                continue
            (p,) = self.label_probabilities([rating_text(template, task)], values)
            best = max(range(len(values)), key=p.__getitem__)
            out.append(
                Verdict(
                    float(values[best]),
                    raw=" ".join(f"p({v})={q:.4f}" for v, q in zip(values, p, strict=True)),
                )
            )
        return out

    def judge_tags(
        self,
        tasks: Sequence[TagTask],
        vocabulary: TagVocabulary,
        *,
        template: str = DEFAULT_TAG_PROMPT,
    ) -> list[Verdict]:
        """Tags by next-token probabilities of the option letters, one tag after another.

        The answer is written for the model as the chat backend would be asked to write
        it: after the rendered prompt come the lines chosen so far (``domain: B``) and
        the next tag's name, and the most probable option letter is taken (no
        sampling). Batched over the prompts, one pass per tag.
        """
        bases = [tagging_text(template, task.prompt, vocabulary) for task in tasks]
        answers = [""] * len(tasks)
        chosen: list[dict[str, str]] = [{} for _ in tasks]
        probabilities: list[dict[str, float]] = [{} for _ in tasks]
        for tag, values in vocabulary.items():
            letters = list(LETTERS[: len(values)])
            texts = [f"{base}{answer}{tag}: " for base, answer in zip(bases, answers, strict=True)]
            rows = self.label_probabilities(texts, letters) if texts else []
            for index, p in enumerate(rows):
                best = max(range(len(letters)), key=p.__getitem__)
                answers[index] += f"{tag}: {letters[best]}\n"
                chosen[index][tag] = values[best]
                probabilities[index][tag] = round(float(p[best]), 6)
        return [
            Verdict(tags, raw=answer.strip(), probabilities=p)
            for tags, answer, p in zip(chosen, answers, probabilities, strict=True)
        ]


# --- The reward-model backend ------------------------------------------------------------------


def reward_pair_verdicts(
    rewards_first: Sequence[float], rewards_second: Sequence[float], *, tie_margin: float = 0.0
) -> list[PairVerdict]:
    """Verdicts from a reward model's scores of response 0 and response 1 per pair.

    A reward model sees each response alone, so the two orders agree by construction;
    both are still recorded. The confidence is the Bradley–Terry probability
    ``sigmoid(|r0 − r1|)``; a margin within ``tie_margin`` is a tie.
    """
    out = []
    for r0, r1 in zip(rewards_first, rewards_second, strict=True):
        margin = float(r0) - float(r1)
        p0 = 1.0 / (1.0 + math.exp(-margin))
        raw = f"r0={float(r0):.4f} r1={float(r1):.4f}"
        first = Verdict("A" if margin >= 0 else "B", raw=raw, probabilities={"A": p0, "B": 1 - p0})
        swapped = Verdict(
            "B" if margin >= 0 else "A", raw=raw, probabilities={"A": 1 - p0, "B": p0}
        )
        if abs(margin) <= tie_margin:
            out.append(
                PairVerdict(
                    "tie",
                    None,
                    round(1 - abs(p0 - 0.5) * 2, 6),
                    True,
                    "margin within tie_margin",
                    [first, swapped],
                )
            )
        else:
            out.append(combine_orders(first, swapped))
    return out


# A full round robin up to this many responses (28 pairs, 56 requests in both orders);
# above it, a balanced incomplete one (see :func:`comparison_pairs`).
ALL_PAIRS_MAX = 8
NEIGHBOURS = 3


def comparison_pairs(
    count: int, *, all_pairs_max: int = ALL_PAIRS_MAX, neighbours: int = NEIGHBOURS
) -> list[tuple[int, int]]:
    """The pairs of ``count`` responses a pairwise judge compares (positions, lower first).

    Up to ``all_pairs_max`` responses: every pair, ``count·(count−1)/2`` of them. Above it
    the requests are bounded by a balanced incomplete round robin: around a circle of
    the responses, each meets the ``neighbours`` after it, so every response plays
    ``2·neighbours`` games and there are ``count·neighbours`` pairs. Because every
    response plays as often as every other, win counts stay comparable.
    """
    if count < 2:
        return []
    if count <= max(all_pairs_max, 2 * neighbours + 1):
        return [(i, j) for i in range(count) for j in range(i + 1, count)]
    pairs = {
        (min(i, (i + step) % count), max(i, (i + step) % count))
        for i in range(count)
        for step in range(1, neighbours + 1)
    }
    return sorted(pairs)


def pair_scores(
    count: int, couples: Sequence[tuple[int, int]], verdicts: Sequence[PairVerdict]
) -> list[float]:
    """Wins per response over judged pairs (a tie counts half to each; abstentions nothing)."""
    scores = [0.0] * count
    for (i, j), verdict in zip(couples, verdicts, strict=True):
        if verdict.outcome == "tie":
            scores[i] += 0.5
            scores[j] += 0.5
        elif verdict.outcome == "label":
            scores[(i, j)[verdict.winner]] += 1.0  # type: ignore[index]
    return scores


def ranking_from_pairs(
    count: int, couples: Sequence[tuple[int, int]], verdicts: Sequence[PairVerdict | None]
) -> tuple[str, list[list[int]] | None, str, list[Verdict]] | None:
    """A ranking from pair verdicts (see :func:`comparison_pairs`): responses ordered by wins
    (a tie counts half).

    Equal scores share a group. Any pair left unjudged (request cap) gives None; any
    abstaining pair makes the ranking abstain. The outcome is ``label`` when every
    pair had a winner, ``tie`` when some pairs tied.
    """
    if any(verdict is None for verdict in verdicts):
        return None
    orders = [order for verdict in verdicts for order in verdict.orders]  # type: ignore[union-attr]
    abstained = [v.reason for v in verdicts if v.outcome == "abstain"]  # type: ignore[union-attr]
    if abstained:
        return "abstain", None, "; ".join(abstained), orders
    scores = pair_scores(count, couples, verdicts)  # type: ignore[arg-type]
    groups: list[list[int]] = []
    for score in sorted(set(scores), reverse=True):
        groups.append([index for index in range(count) if scores[index] == score])
    tied = any(v.outcome == "tie" for v in verdicts)  # type: ignore[union-attr]
    reason = "some pairs tied (position bias)" if tied else ""
    return ("tie" if tied else "label"), groups, reason, orders
