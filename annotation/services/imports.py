"""JSONL import of items, with their existing labels, in five shapes.

All-or-nothing: every line is parsed and validated before anything is written,
then the whole file goes in with a handful of bulk inserts in one transaction.
Bad lines are rejected with their line numbers (or, with ``skip_invalid``, left
out and counted); a preference pair with an empty reply is a bad line.

Items are keyed by ``(project, external_id)``; a line without an id gets one from
its conversation (the k-th distinct line with a given prompt is the k-th item of
that prompt, see ``_derive_ids``). Re-importing an unchanged file changes nothing.
Each item stores a fingerprint of its line (``Item.content_hash``), so a line that
was edited since it was imported is a *conflict*: ``on_conflict`` is ``error``
(default: 409 listing the lines, nothing written), ``skip`` or ``update``.

Shapes (``fmt``):
- ``native``: ``{external_id, conversation | prompt, responses, metadata, tags, is_gold,
  gold_answer, priority, annotations: [{annotator, source, judge, time_spent_ms, answers}]}``
  where answers name questions and refer to responses by position (0-based).
- ``trl``: ``{prompt, chosen, rejected}`` with strings or message lists (explicit or implicit prompt).
- ``hh``: ``{chosen, rejected}`` HH-RLHF transcripts (``\\n\\nHuman: … \\n\\nAssistant: …``).
- ``ranked``: ``{prompt, responses, ranks? | ranking?}``; without either, responses are best first.
- ``ratings``: ``{prompt, responses | response, ratings: [{aspect: value}] | {aspect: value}, scale?}``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.text import slugify

from annotation.errors import Conflict, ValidationFailed
from annotation.models import (
    Annotation,
    Assignment,
    Item,
    Project,
    Question,
    QuestionKind,
    Response,
    Source,
)
from annotation.parsers import json_loads_strict
from annotation.services.projects import question_create
from annotation.services.submissions import (
    MAX_TIME_SPENT_MS,
    answer_rows_build,
    answers_validate,
)

FORMATS = ("auto", "native", "trl", "hh", "ranked", "ratings")
ON_CONFLICT = ("error", "skip", "update")
MAX_REPORTED_ERRORS = 20
BATCH = 2000
ROLES = {"system", "user", "assistant", "tool", "human", "gpt", "prompter"}
ROLE_ALIASES = {"human": "user", "prompter": "user", "gpt": "assistant"}

Progress = Callable[[str, int, int], None]


class LineError(Exception):
    def __init__(self, reason: str, field: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass
class ParsedLabel:
    annotator: str  # handle; "" means the generic imported annotator
    source: str
    judge: str
    time_spent_ms: int | None
    answers: list[dict]  # submission answers with responses referred by position
    line: int = 0


@dataclass
class ParsedItem:
    line: int
    external_id: str
    conversation: list[dict]
    responses: list[dict]  # {text, model_name, metadata}
    metadata: dict = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    is_gold: bool = False
    gold_answer: dict | None = None
    priority: float = 0.0
    labels: list[ParsedLabel] = field(default_factory=list)
    # Lines without an id get one derived from their content; see ``_derive_ids``.
    derived_id: bool = False
    legacy_id: str = ""
    fingerprint: str = ""


@dataclass
class ImportResult:
    format: str
    lines: int = 0
    created: int = 0
    existing: int = 0
    duplicates: int = 0
    responses: int = 0
    annotations: int = 0
    questions_created: list[str] = field(default_factory=list)
    updated: int = 0
    conflicts: int = 0
    conflict_lines: list[int] = field(default_factory=list)
    skipped_invalid: int = 0
    invalid_lines: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "format": self.format,
            "lines": self.lines,
            "created": self.created,
            "existing": self.existing,
            "updated": self.updated,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "conflict_lines": self.conflict_lines,
            "skipped_invalid": self.skipped_invalid,
            "invalid_lines": self.invalid_lines,
            "responses": self.responses,
            "annotations": self.annotations,
            "questions_created": self.questions_created,
        }


# --- parsing -----------------------------------------------------------------


def _messages(value: Any, name: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise LineError(f"{name} must be a string or a non-empty list of messages.", name)
    out = []
    for index, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise LineError("Each message needs a role and a text content.", f"{name}[{index}]")
        role = str(message.get("role", "")).lower()
        if role not in ROLES:
            raise LineError(f"Unknown role {message.get('role')!r}.", f"{name}[{index}].role")
        out.append({"role": ROLE_ALIASES.get(role, role), "content": message["content"]})
    return out


def _response(value: Any, name: str) -> dict:
    if isinstance(value, str):
        if not value.strip():
            raise LineError("A response must not be empty.", name)
        return {"text": value, "model_name": "", "metadata": {}}
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        if not value["text"].strip():
            raise LineError("A response must not be empty.", f"{name}.text")
        meta = value.get("metadata", {})
        if not isinstance(meta, dict):
            raise LineError("metadata must be an object.", f"{name}.metadata")
        return {
            "text": value["text"],
            "model_name": str(value.get("model") or value.get("model_name") or "")[:200],
            "metadata": meta,
        }
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        # A conversational completion: the assistant message(s) after the prompt.
        text = "\n\n".join(str(m.get("content", "")) for m in value)
        if not text.strip():
            raise LineError("A response must not be empty.", name)
        return {"text": text, "model_name": "", "metadata": {}}
    raise LineError("A response must be text, {text, model} or a list of assistant messages.", name)


def _responses_limit(raw: list) -> None:
    limit = int(settings.BALLOT_MAX_RESPONSES_PER_ITEM)
    if len(raw) > limit:
        raise LineError(
            f"An item has at most {limit} responses (BALLOT_MAX_RESPONSES_PER_ITEM); this one has {len(raw)}.",
            "responses",
        )


def _parse_hh_transcript(text: str, name: str) -> list[dict]:
    if not isinstance(text, str) or "\n\nAssistant:" not in text:
        raise LineError("An HH-RLHF transcript must contain '\\n\\nAssistant:' turns.", name)
    messages: list[dict] = []
    rest = text
    markers = {"\n\nHuman:": "user", "\n\nAssistant:": "assistant"}
    while rest:
        positions = [(rest.find(m), m) for m in markers if rest.find(m) != -1]
        if not positions:
            if messages:
                messages[-1]["content"] += rest
            break
        start, marker = min(positions)
        if start > 0 and messages:
            messages[-1]["content"] += rest[:start]
        rest = rest[start + len(marker) :]
        nxt = [rest.find(m) for m in markers if rest.find(m) != -1]
        end = min(nxt) if nxt else len(rest)
        messages.append({"role": markers[marker], "content": rest[:end].strip()})
        rest = rest[end:]
    if not messages or messages[-1]["role"] != "assistant":
        raise LineError("An HH-RLHF transcript must end with an assistant turn.", name)
    return messages


def _split_shared_prefix(chosen: list[dict], rejected: list[dict]) -> tuple[list[dict], str, str]:
    prefix = 0
    while prefix < min(len(chosen), len(rejected)) - 1 and chosen[prefix] == rejected[prefix]:
        prefix += 1
    tail_c, tail_r = chosen[prefix:], rejected[prefix:]
    if not chosen[:prefix] or any(m["role"] != "assistant" for m in tail_c + tail_r):
        raise LineError(
            "chosen and rejected must share a prompt and differ only in the final assistant turn(s)."
        )
    return (
        chosen[:prefix],
        "\n\n".join(m["content"] for m in tail_c),
        "\n\n".join(m["content"] for m in tail_r),
    )


def _content_id(conversation: list[dict], responses: list[dict]) -> str:
    # Responses are sorted so that the same pair with its order swapped is one item.
    payload = json.dumps(
        [conversation, sorted(r["text"] for r in responses)], sort_keys=True, ensure_ascii=False
    )
    return "sha-" + hashlib.sha256(payload.encode()).hexdigest()[:32]


def _order(external_id: str, count: int) -> list[int]:
    # Deterministic shuffle of an imported pair's display order, so annotators
    # who re-label it do not always see the chosen response first.
    digest = hashlib.sha256(external_id.encode()).digest()
    order = list(range(count))
    for i in range(count - 1, 0, -1):
        j = digest[i % len(digest)] % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def _label_meta(row: dict) -> tuple[str, str, str]:
    annotator = row.get("annotator", "")
    if annotator is None:
        annotator = ""
    if not isinstance(annotator, str):
        annotator = str(annotator)
    source = row.get("source", "human")
    if source not in (Source.HUMAN, Source.AI):
        raise LineError("source must be 'human' or 'ai'.", "source")
    judge = str(row.get("judge", "") or "")
    if source == Source.AI and not judge:
        raise LineError("An AI label needs the judge's name.", "judge")
    return annotator, source, judge


def _external_id(row: dict, conversation: list[dict], responses: list[dict]) -> str:
    external = row.get("external_id", row.get("id"))
    if external is None:
        return _content_id(conversation, responses)
    external = str(external)
    if not external or len(external) > 255:
        raise LineError("external_id must be 1-255 characters.", "external_id")
    return external


def _parse_pair(
    row: dict, line: int, conversation: list[dict], chosen: str, rejected: str
) -> ParsedItem:
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            raise LineError(
                f"The {name} reply is empty; a preference pair needs two replies.", name
            )
    texts = [chosen, rejected]
    base = [{"text": t, "model_name": "", "metadata": {}} for t in texts]
    external = _external_id(row, conversation, base)
    order = _order(external, 2)
    responses = [base[i] for i in order]
    chosen_pos, rejected_pos = order.index(0), order.index(1)
    answer: dict[str, Any] = {
        "question": "preference",
        "chosen": chosen_pos,
        "rejected": rejected_pos,
    }
    margin = row.get("margin")
    if margin is not None and not isinstance(margin, (int, float)):
        raise LineError("margin must be a number.", "margin")
    annotator, source, judge = _label_meta(row)
    metadata = dict(row.get("metadata") or {})
    if margin is not None:
        metadata["margin"] = margin
    return ParsedItem(
        line=line,
        external_id=external,
        conversation=conversation,
        responses=responses,
        metadata=metadata,
        tags=list(row.get("tags") or []),
        labels=[ParsedLabel(annotator, source, judge, None, [answer], line)],
    )


def _parse_trl(row: dict, line: int) -> ParsedItem:
    if "chosen" not in row or "rejected" not in row:
        raise LineError("A TRL preference row needs chosen and rejected.", "chosen")
    if "prompt" in row:
        conversation = _messages(row["prompt"], "prompt")
        chosen = _response(row["chosen"], "chosen")["text"]
        rejected = _response(row["rejected"], "rejected")["text"]
    else:
        if not isinstance(row["chosen"], list):
            raise LineError(
                "Without a prompt, chosen and rejected must be full conversations.", "prompt"
            )
        conversation, chosen, rejected = _split_shared_prefix(
            _messages(row["chosen"], "chosen"), _messages(row["rejected"], "rejected")
        )
    return _parse_pair(row, line, conversation, chosen, rejected)


def _parse_hh(row: dict, line: int) -> ParsedItem:
    chosen_msgs = _parse_hh_transcript(row.get("chosen"), "chosen")
    rejected_msgs = _parse_hh_transcript(row.get("rejected"), "rejected")
    conversation, chosen, rejected = _split_shared_prefix(chosen_msgs, rejected_msgs)
    return _parse_pair(row, line, conversation, chosen, rejected)


def _parse_ranked(row: dict, line: int) -> ParsedItem:
    conversation = _messages(row.get("prompt", row.get("conversation")), "prompt")
    raw = row.get("responses")
    if not isinstance(raw, list) or len(raw) < 2:
        raise LineError("A ranked row needs at least two responses.", "responses")
    _responses_limit(raw)
    responses = [_response(r, f"responses[{i}]") for i, r in enumerate(raw)]
    if "ranking" in row:
        groups = row["ranking"]
        if not isinstance(groups, list):
            raise LineError("ranking must list response positions best first.", "ranking")
        ranking = [g if isinstance(g, list) else [g] for g in groups]
    elif "ranks" in row:
        ranks = row["ranks"]
        if (
            not isinstance(ranks, list)
            or len(ranks) != len(responses)
            or not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in ranks)
        ):
            raise LineError("ranks must give one number per response (lower is better).", "ranks")
        ranking = [[i for i, r in enumerate(ranks) if r == value] for value in sorted(set(ranks))]
    else:
        ranking = [[i] for i in range(len(responses))]
    annotator, source, judge = _label_meta(row)
    external = _external_id(row, conversation, responses)
    return ParsedItem(
        line=line,
        external_id=external,
        conversation=conversation,
        responses=responses,
        metadata=dict(row.get("metadata") or {}),
        tags=list(row.get("tags") or []),
        labels=[
            ParsedLabel(
                annotator, source, judge, None, [{"question": "ranking", "ranking": ranking}], line
            )
        ],
    )


def _parse_ratings(row: dict, line: int) -> ParsedItem:
    conversation = _messages(row.get("prompt", row.get("conversation")), "prompt")
    if "responses" in row:
        raw = row["responses"]
        scores = row.get("ratings")
        if (
            not isinstance(raw, list)
            or not raw
            or not isinstance(scores, list)
            or len(scores) != len(raw)
        ):
            raise LineError("responses and ratings must be lists of the same length.", "ratings")
        _responses_limit(raw)
    else:
        raw, scores = [row.get("response")], [row.get("ratings")]
    responses = [_response(r, f"responses[{i}]") for i, r in enumerate(raw)]
    ratings = []
    for position, per_response in enumerate(scores):
        if not isinstance(per_response, dict) or not per_response:
            raise LineError("ratings must map aspects to numbers.", f"ratings[{position}]")
        for aspect, value in per_response.items():
            if value is None:
                continue
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not math.isfinite(value)
            ):
                raise LineError("A rating must be a number.", f"ratings[{position}].{aspect}")
            ratings.append({"response": position, "aspect": str(aspect), "value": float(value)})
    annotator, source, judge = _label_meta(row)
    external = _external_id(row, conversation, responses)
    item = ParsedItem(
        line=line,
        external_id=external,
        conversation=conversation,
        responses=responses,
        metadata=dict(row.get("metadata") or {}),
        tags=list(row.get("tags") or []),
        labels=[
            ParsedLabel(
                annotator, source, judge, None, [{"question": "rating", "ratings": ratings}], line
            )
        ],
    )
    if isinstance(row.get("scale"), (dict, list)):
        item.metadata.setdefault("_scale", row["scale"])
    return item


def _parse_native(row: dict, line: int) -> ParsedItem:
    if "conversation" in row:
        conversation = _messages(row["conversation"], "conversation")
    else:
        conversation = _messages(row.get("prompt"), "prompt")
    raw = row.get("responses")
    if not isinstance(raw, list) or not raw:
        raise LineError("An item needs a non-empty list of responses.", "responses")
    _responses_limit(raw)
    responses = [_response(r, f"responses[{i}]") for i, r in enumerate(raw)]
    external = _external_id(row, conversation, responses)
    metadata = row.get("metadata") or {}
    tags = row.get("tags") or []
    if not isinstance(metadata, dict):
        raise LineError("metadata must be an object.", "metadata")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise LineError("tags must be a list of strings.", "tags")
    priority = row.get("priority", 0.0)
    if not isinstance(priority, (int, float)) or isinstance(priority, bool):
        raise LineError("priority must be a number.", "priority")
    labels = []
    annotations = row.get("annotations") or []
    if not isinstance(annotations, list):
        raise LineError("annotations must be a list.", "annotations")
    for index, entry in enumerate(annotations):
        if not isinstance(entry, dict) or not isinstance(entry.get("answers"), list):
            raise LineError("Each annotation needs a list of answers.", f"annotations[{index}]")
        annotator, source, judge = _label_meta(entry)
        time_spent = entry.get("time_spent_ms")
        if time_spent is not None and (
            not isinstance(time_spent, int)
            or isinstance(time_spent, bool)
            or not 0 <= time_spent <= MAX_TIME_SPENT_MS
        ):
            raise LineError(
                f"time_spent_ms must be an integer from 0 to {MAX_TIME_SPENT_MS}.",
                f"annotations[{index}].time_spent_ms",
            )
        labels.append(ParsedLabel(annotator, source, judge, time_spent, entry["answers"], line))
    gold = row.get("gold_answer")
    if gold is not None and not isinstance(gold, dict):
        raise LineError("gold_answer must be an object with answers.", "gold_answer")
    return ParsedItem(
        line=line,
        external_id=external,
        conversation=conversation,
        responses=responses,
        metadata=metadata,
        tags=tags,
        is_gold=bool(row.get("is_gold", False)),
        gold_answer=gold,
        priority=float(priority),
        labels=labels,
    )


PARSERS = {
    "native": _parse_native,
    "trl": _parse_trl,
    "hh": _parse_hh,
    "ranked": _parse_ranked,
    "ratings": _parse_ratings,
}


def detect_format(row: dict) -> str:
    """Guess a line's shape from its keys (the first line decides for the file)."""
    if "chosen" in row and "rejected" in row:
        if (
            "prompt" not in row
            and isinstance(row["chosen"], str)
            and "\n\nAssistant:" in row["chosen"]
        ):
            return "hh"
        return "trl"
    if "ratings" in row:
        return "ratings"
    if "ranks" in row or "ranking" in row:
        return "ranked"
    if "responses" in row:
        return "native"
    raise LineError("Cannot tell this line's format; pass format explicitly.")


def _decode(raw: bytes | str, line: int) -> dict:
    limit = int(settings.BALLOT_IMPORT_MAX_LINE_BYTES)
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", errors="replace"))
    if size > limit:
        raise LineError(
            f"The line is {size} bytes; a line may hold at most {limit} (BALLOT_IMPORT_MAX_LINE_BYTES)."
        )
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise LineError("The line is not valid UTF-8.")
    try:
        # The same limits as API bodies: no NaN/Infinity, 64-bit integers, bounded nesting, no NUL.
        row = json_loads_strict(text)
    except ValidationFailed as exc:
        raise LineError(exc.detail, None if exc.field == "body" else exc.field)
    if not isinstance(row, dict):
        raise LineError("Each line must be a JSON object.")
    return row


def items_parse(
    lines: Iterable[bytes | str],
    *,
    fmt: str = "auto",
    progress: Progress | None = None,
    skip_invalid: bool = False,
) -> tuple[str, list[ParsedItem], int, list[dict]]:
    """Parse every line into ``(format, items, line count, skipped lines)``.

    Raises ``ValidationFailed`` listing bad lines (up to 20) with their reasons; with
    ``skip_invalid`` bad lines are left out instead and returned as the fourth element.
    """
    if fmt not in FORMATS:
        raise ValidationFailed(f"format must be one of {', '.join(FORMATS)}.", field="format")
    items: list[ParsedItem] = []
    errors: list[dict] = []
    count = 0
    for number, raw in enumerate(lines, start=1):
        if not (raw.strip() if isinstance(raw, (bytes, str)) else raw):
            continue
        count += 1
        try:
            row = _decode(raw, number)
            line_fmt = detect_format(row) if fmt == "auto" else fmt
            parsed = PARSERS[line_fmt](row, number)
            if row.get("external_id", row.get("id")) is None:
                parsed.derived_id, parsed.legacy_id = True, parsed.external_id
            items.append(parsed)
            fmt = line_fmt
        except LineError as exc:
            where = f"line {number}" + (f": {exc.field}" if exc.field else "")
            errors.append({"line": number, "field": where, "detail": exc.reason})
            if len(errors) >= MAX_REPORTED_ERRORS and not skip_invalid:
                break
        if progress and count % 1000 == 0:
            progress("parse", count, 0)
    if errors and not skip_invalid:
        first = errors[0]
        raise ValidationFailed(
            f"line {first['line']}: {first['detail']} ({len(errors)} bad line(s) shown; nothing was imported)",
            field=first["field"],
            errors=errors,
        )
    if count == 0:
        raise ValidationFailed("The file has no lines to import.", field="file")
    return ("native" if fmt == "auto" else fmt), items, count, errors


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _fingerprint(item: ParsedItem) -> str:
    """What a line says about its item: a re-import with another fingerprint is an edit."""
    return hashlib.sha256(
        _canonical(
            {
                "conversation": item.conversation,
                "responses": item.responses,
                "metadata": item.metadata,
                "tags": item.tags,
                "is_gold": item.is_gold,
                "gold_answer": item.gold_answer,
                "priority": item.priority,
                "labels": [
                    [label.annotator, label.source, label.judge, label.time_spent_ms, label.answers]
                    for label in item.labels
                ],
            }
        ).encode()
    ).hexdigest()


def _derive_ids(items: Iterable[ParsedItem]) -> None:
    """Give id-less lines an id keyed on their prompt, so an edited line is the same item.

    The k-th distinct line with a given conversation gets ``sha-<conversation hash>``
    (``-k`` appended for k > 1). Editing a line's responses or labels therefore keeps
    its id, and a re-import reports it as a conflict instead of adding a new item
    beside the original. Lines that repeat an earlier line exactly were merged
    before this step, so they do not shift the count. Give lines explicit ids when
    one prompt should get unrelated items in different files.
    """
    seen: dict[str, int] = {}
    for item in items:
        if not item.derived_id:
            continue
        prompt = hashlib.sha256(_canonical(item.conversation).encode()).hexdigest()[:32]
        seen[prompt] = seen.get(prompt, 0) + 1
        item.external_id = f"sha-{prompt}" + (f"-{seen[prompt]}" if seen[prompt] > 1 else "")


# --- writing -------------------------------------------------------------------


def _auto_questions(
    project: Project, fmt: str, items: list[ParsedItem], result: ImportResult
) -> None:
    """Create the question an imported label needs when the project lacks it."""
    names = set(Question.objects.filter(project=project).values_list("name", flat=True))
    if fmt in ("trl", "hh") and "preference" not in names:
        question_create(
            project=project,
            kind=QuestionKind.PAIRWISE,
            name="preference",
            prompt="Which response is better?",
        )
        result.questions_created.append("preference")
    if fmt == "ranked" and "ranking" not in names:
        question_create(
            project=project,
            kind=QuestionKind.RANKING,
            name="ranking",
            prompt="Rank the responses, best first.",
        )
        result.questions_created.append("ranking")
    if fmt == "ratings" and "rating" not in names:
        bounds: dict[str, list[float]] = {}
        declared: dict[str, Any] = {}
        for item in items:
            scale = item.metadata.pop("_scale", None)
            for label in item.labels:
                for rating in label.answers[0]["ratings"]:
                    low_high = bounds.setdefault(rating["aspect"], [math.inf, -math.inf])
                    low_high[0] = min(low_high[0], rating["value"])
                    low_high[1] = max(low_high[1], rating["value"])
            if isinstance(scale, dict):
                declared.update(scale)
        aspects = []
        for aspect, (low, high) in bounds.items():
            scale = declared.get(aspect)
            if isinstance(scale, (list, tuple)) and len(scale) == 2:
                low, high = scale
            elif isinstance(scale, dict):
                low, high = scale.get("min", low), scale.get("max", high)
            else:
                low, high = math.floor(low), math.ceil(high)
                if low == high:
                    high = low + 1
            continuous = any(
                not float(r["value"]).is_integer()
                for item in items
                for label in item.labels
                for r in label.answers[0]["ratings"]
                if r["aspect"] == aspect
            )
            aspects.append(
                {
                    "name": aspect,
                    "scale": {"min": low, "max": high, "step": None if continuous else 1},
                }
            )
        question_create(
            project=project,
            kind=QuestionKind.RATING,
            name="rating",
            prompt="Rate each response.",
            config={
                "aspects": aspects,
                "scale": aspects[0]["scale"] if aspects else {"min": 1, "max": 5},
            },
        )
        result.questions_created.append("rating")
    for item in items:
        item.metadata.pop("_scale", None)


def _annotator_users(handles: set[str]) -> dict[str, Any]:
    User = get_user_model()
    users = {}
    for handle in sorted(handles):
        username = (
            "imported"
            if not handle
            else f"imported-{slugify(handle)[:100] or hashlib.sha1(handle.encode()).hexdigest()[:12]}"
        )
        user, created = User.objects.get_or_create(username=username, defaults={"is_active": False})
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        users[handle] = user
    return users


ITEM_CONTENT_FIELDS = ("conversation", "metadata", "tags", "is_gold", "gold_answer", "priority")


def _item_row(project: Project, item: ParsedItem, pk: int | None = None) -> Item:
    return Item(
        pk=pk,
        project=project,
        external_id=item.external_id,
        conversation=item.conversation,
        metadata=item.metadata,
        tags=item.tags,
        is_gold=item.is_gold,
        gold_answer=item.gold_answer,
        priority=item.priority,
        content_hash=item.fingerprint,
    )


def _legacy_changed(pairs: list[tuple[ParsedItem, int]]) -> list[tuple[ParsedItem, int]]:
    """Of items stored before fingerprints existed, those whose conversation or responses differ."""
    conversations: dict[int, Any] = {}
    texts: dict[int, list[str]] = {}
    ids = [pk for _, pk in pairs]
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        conversations.update(Item.objects.filter(pk__in=chunk).values_list("id", "conversation"))
        for item_id, text in (
            Response.objects.filter(item_id__in=chunk)
            .order_by("item_id", "position")
            .values_list("item_id", "text")
        ):
            texts.setdefault(item_id, []).append(text)
    return [
        (item, pk)
        for item, pk in pairs
        if conversations.get(pk) != item.conversation
        or texts.get(pk, []) != [r["text"] for r in item.responses]
    ]


def _match_stored(
    project: Project, items: list[ParsedItem], result: ImportResult, on_conflict: str
) -> tuple[list[ParsedItem], list[tuple[ParsedItem, int]]]:
    """Split parsed items into new ones and stored ones to update; count the rest.

    Items stored before fingerprints existed (empty ``content_hash``) are compared
    on their conversation and response texts only (their labels and other fields
    cannot be told apart from the stored rows). For ``update`` the stored items'
    responses and imported labels are deleted here, inside the caller's transaction,
    so the write loop recreates them from the file.
    """
    wanted = [item.external_id for item in items] + [
        item.legacy_id for item in items if item.derived_id and item.legacy_id
    ]
    stored: dict[str, tuple[int, str]] = {}
    for start in range(0, len(wanted), 5000):
        for external_id, pk, content_hash in Item.objects.filter(
            project=project, external_id__in=wanted[start : start + 5000]
        ).values_list("external_id", "id", "content_hash"):
            stored[external_id] = (pk, content_hash)
    new_items: list[ParsedItem] = []
    conflicts: list[tuple[ParsedItem, int]] = []
    legacy: list[tuple[ParsedItem, int]] = []
    for item in items:
        match = stored.get(item.external_id)
        if match is None and item.derived_id:
            match = stored.get(item.legacy_id)
            if match is not None:
                item.external_id = item.legacy_id
        if match is None:
            new_items.append(item)
        elif match[1] == item.fingerprint:
            result.existing += 1
        elif match[1] == "":
            legacy.append((item, match[0]))
        else:
            conflicts.append((item, match[0]))
    changed = _legacy_changed(legacy)
    result.existing += len(legacy) - len(changed)
    conflicts.extend(changed)
    if not conflicts:
        return new_items, []
    conflicts.sort(key=lambda pair: pair[0].line)
    result.conflicts = len(conflicts)
    result.conflict_lines = [item.line for item, _ in conflicts[:MAX_REPORTED_ERRORS]]
    if on_conflict == "skip":
        return new_items, []
    if on_conflict == "error":
        errors = [
            {
                "line": item.line,
                "field": f"line {item.line}: external_id",
                "detail": f"{item.external_id!r} was imported before with different content.",
            }
            for item, _ in conflicts[:MAX_REPORTED_ERRORS]
        ]
        raise Conflict(
            f"{len(conflicts)} line(s) change items imported before (first: line {conflicts[0][0].line}); "
            "nothing was imported. Pass on_conflict=update to apply the edits or on_conflict=skip to keep "
            "the stored items.",
            field=errors[0]["field"],
            errors=errors,
        )
    ids = [pk for _, pk in conflicts]
    own_labels = f"import:{project.id}:"
    blocked = set(Assignment.objects.filter(item_id__in=ids).values_list("item_id", flat=True))
    blocked |= set(
        Annotation.objects.filter(item_id__in=ids)
        .exclude(idempotency_key__startswith=own_labels)
        .values_list("item_id", flat=True)
    )
    if blocked:
        errors = [
            {
                "line": item.line,
                "field": f"line {item.line}: external_id",
                "detail": f"{item.external_id!r} already has assignments or labels made in Ballot; "
                "updating it would discard them.",
            }
            for item, pk in conflicts
            if pk in blocked
        ][:MAX_REPORTED_ERRORS]
        raise Conflict(
            f"{len(blocked)} changed item(s) already have work done in Ballot and cannot be updated; "
            "nothing was imported.",
            field=errors[0]["field"],
            errors=errors,
        )
    Annotation.objects.filter(item_id__in=ids).delete()
    Response.objects.filter(item_id__in=ids).delete()
    return new_items, conflicts


def items_import(
    *,
    project: Project,
    lines: Iterable[bytes | str],
    fmt: str = "auto",
    progress: Progress | None = None,
    on_conflict: str = "error",
    skip_invalid: bool = False,
    derive_ids: str = "prompt",
) -> ImportResult:
    """Import a JSONL file into ``project``; all or nothing.

    Existing labels become annotations by ``imported`` annotators (one user per
    annotator handle in the file, ``imported`` when none is named). They do not
    take queue slots: the queue collects new judgements on top of them.

    A line whose item was imported before with other content (responses, labels,
    metadata…) is a conflict. ``on_conflict`` says what happens: ``error`` (the
    default) raises ``Conflict`` (409) listing the lines and writes nothing;
    ``skip`` leaves those items as stored and counts the lines; ``update``
    replaces the stored items' content and imported labels with the line's,
    refusing (409) items that already have assignments or labels made in Ballot.
    ``skip_invalid`` leaves bad lines out (counted, with their reasons) instead of
    rejecting the file. ``derive_ids`` is how id-less lines are keyed: ``prompt``
    (see ``_derive_ids``) or ``content`` (the whole line; used by the one-item API).
    """
    if on_conflict not in ON_CONFLICT:
        raise ValidationFailed(
            f"on_conflict must be one of {', '.join(ON_CONFLICT)}.", field="on_conflict"
        )
    fmt, items, count, skipped = items_parse(
        lines, fmt=fmt, progress=progress, skip_invalid=skip_invalid
    )
    result = ImportResult(format=fmt, lines=count)
    # Within-file duplicates: one item per external_id; extra labels from new annotators merge in.
    unique: dict[str, ParsedItem] = {}
    for item in items:
        first = unique.get(item.external_id)
        if first is None:
            unique[item.external_id] = item
            continue
        known = {(label.annotator, label.source, label.judge) for label in first.labels}
        fresh = [
            label
            for label in item.labels
            if (label.annotator, label.source, label.judge) not in known
        ]
        if fresh and [r["text"] for r in item.responses] == [r["text"] for r in first.responses]:
            first.labels.extend(fresh)
        else:
            result.duplicates += 1
    if derive_ids == "prompt":
        _derive_ids(unique.values())
        unique = {item.external_id: item for item in unique.values()}
    for item in unique.values():
        item.fingerprint = _fingerprint(item)
    with transaction.atomic():
        _auto_questions(project, fmt, list(unique.values()), result)
        questions = list(Question.objects.filter(project=project).order_by("position", "id"))
        specs_by_item: dict[int, list] = {}
        errors = []
        for item in list(unique.values()):
            keys = {i: r["text"] for i, r in enumerate(item.responses)}
            per_label = []
            item_errors = []
            for index, label in enumerate(item.labels):
                try:
                    per_label.append(
                        answers_validate(
                            questions=questions,
                            responses=keys,
                            answers=label.answers,
                            prefix=f"annotations[{index}].answers",
                            require_all=False,
                        )
                    )
                except ValidationFailed as exc:
                    item_errors.append(
                        {
                            "line": label.line,
                            "field": f"line {label.line}: {exc.field}",
                            "detail": exc.detail,
                        }
                    )
            if item.gold_answer is not None:
                try:
                    answers_validate(
                        questions=questions,
                        responses=keys,
                        answers=item.gold_answer.get("answers"),
                        prefix="gold_answer.answers",
                        require_all=False,
                    )
                except ValidationFailed as exc:
                    item_errors.append(
                        {
                            "line": item.line,
                            "field": f"line {item.line}: {exc.field}",
                            "detail": exc.detail,
                        }
                    )
            if item_errors and skip_invalid:
                skipped.extend(item_errors[:1])
                del unique[item.external_id]
                continue
            errors.extend(item_errors)
            specs_by_item[id(item)] = per_label
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
        if errors:
            first = errors[0]
            raise ValidationFailed(
                f"{first['field']}: {first['detail']} (nothing was imported)",
                field=first["field"],
                errors=errors,
            )
        result.skipped_invalid = len(skipped)
        result.invalid_lines = sorted(skipped, key=lambda e: e["line"])[:MAX_REPORTED_ERRORS]

        new_items, updates = _match_stored(project, list(unique.values()), result, on_conflict)
        to_write: list[tuple[ParsedItem, int | None]] = [(item, None) for item in new_items]
        to_write += updates
        users = _annotator_users(
            {
                label.annotator
                for item, _ in to_write
                for label in item.labels
                if label.source == Source.HUMAN
            }
        )
        done = 0
        for start in range(0, len(to_write), BATCH):
            batch_pairs = to_write[start : start + BATCH]
            batch = [item for item, _ in batch_pairs]
            fresh_rows = Item.objects.bulk_create(
                [_item_row(project, item) for item, stored in batch_pairs if stored is None]
            )
            changed_rows = [
                _item_row(project, item, pk=stored)
                for item, stored in batch_pairs
                if stored is not None
            ]
            if changed_rows:
                Item.objects.bulk_update(changed_rows, [*ITEM_CONTENT_FIELDS, "content_hash"])
            fresh_iter, changed_iter = iter(fresh_rows), iter(changed_rows)
            rows = [
                next(fresh_iter) if stored is None else next(changed_iter)
                for _, stored in batch_pairs
            ]
            response_rows = Response.objects.bulk_create(
                [
                    Response(
                        item_id=row.id,
                        text=r["text"],
                        model_name=r["model_name"],
                        position=position,
                        metadata=r["metadata"],
                    )
                    for row, item in zip(rows, batch, strict=True)
                    for position, r in enumerate(item.responses)
                ]
            )
            response_ids: dict[tuple[int, int], int] = {
                (r.item_id, r.position): r.id for r in response_rows
            }
            annotation_rows = []
            label_specs = []
            for row, item in zip(rows, batch, strict=True):
                for label, specs in zip(item.labels, specs_by_item[id(item)], strict=True):
                    handle = label.annotator if label.source == Source.HUMAN else label.judge
                    annotation_rows.append(
                        Annotation(
                            project=project,
                            item_id=row.id,
                            annotator=users[label.annotator]
                            if label.source == Source.HUMAN
                            else None,
                            judge_name=label.judge if label.source == Source.AI else "",
                            source=label.source,
                            time_spent_ms=label.time_spent_ms,
                            idempotency_key=f"import:{project.id}:{hashlib.sha256(f'{item.external_id}|{label.source}|{handle}'.encode()).hexdigest()[:40]}",
                        )
                    )
                    label_specs.append((row.id, specs))
            created_annotations = Annotation.objects.bulk_create(annotation_rows)
            answers: dict[type, list] = {}
            for annotation, (item_id, specs) in zip(created_annotations, label_specs, strict=True):
                mapping = _PositionMap(response_ids, item_id)
                for model, objs in answer_rows_build(
                    annotation_id=annotation.id, specs=specs, response_ids=mapping
                ).items():
                    answers.setdefault(model, []).extend(objs)
            for model, objs in answers.items():
                if objs:
                    model.objects.bulk_create(objs, batch_size=5000)
            result.created += len(fresh_rows)
            result.updated += len(changed_rows)
            result.responses += len(response_rows)
            result.annotations += len(created_annotations)
            done += len(batch)
            if progress:
                progress("write", done, len(to_write))
    return result


class _PositionMap(dict):
    """Maps a response position to its new id for one item, without building a dict per item."""

    def __init__(self, response_ids: dict[tuple[int, int], int], item_id: int):
        super().__init__()
        self._ids = response_ids
        self._item = item_id

    def __getitem__(self, position: int) -> int:
        return self._ids[(self._item, position)]
