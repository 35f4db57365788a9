"""The five import shapes: one JSON object (a line) to one parsed item.

No ORM and no models: a shape parser takes the decoded line and returns plain
dataclasses (``ParsedItem`` with its ``ParsedLabel`` s) or raises ``LineError``
naming the field and the reason; :mod:`~annotation.services.imports.parser`
adds the line number. Responses are referred to by position (0-based), since
they have no ids before the writer stores them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from annotation.services.submissions import MAX_TIME_SPENT_MS

ROLES = {"system", "user", "assistant", "tool", "human", "gpt", "prompter"}
ROLE_ALIASES = {"human": "user", "prompter": "user", "gpt": "assistant"}
# The values of ``annotation.models.Source``, spelled out so parsing needs no models.
HUMAN, AI = "human", "ai"


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
    # Lines without an id get one derived from their content; see ``parser.items_derive_ids``.
    derived_id: bool = False
    legacy_id: str = ""
    fingerprint: str = ""


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


def _reply_text(messages: list[dict]) -> str:
    """The text of a reply given as assistant messages: their contents, a blank line apart."""
    return "\n\n".join(str(m.get("content", "")) for m in messages)


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
        text = _reply_text(value)
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
        _reply_text(tail_c),
        _reply_text(tail_r),
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
    if source not in (HUMAN, AI):
        raise LineError("source must be 'human' or 'ai'.", "source")
    judge = str(row.get("judge", "") or "")
    if source == AI and not judge:
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


def _metadata_and_tags(row: dict) -> tuple[dict, list[str]]:
    """A line's metadata (an object) and tags (strings), as fresh copies; absent ones are empty."""
    metadata = row.get("metadata") or {}
    tags = row.get("tags") or []
    if not isinstance(metadata, dict):
        raise LineError("metadata must be an object.", "metadata")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise LineError("tags must be a list of strings.", "tags")
    return dict(metadata), list(tags)


def _labelled_item(
    row: dict,
    line: int,
    conversation: list[dict],
    responses: list[dict],
    answer: dict,
    *,
    external: str | None = None,
    extra_metadata: dict | None = None,
) -> ParsedItem:
    """The item of a preference, ranked or rated line, with the one label the line carries."""
    annotator, source, judge = _label_meta(row)
    metadata, tags = _metadata_and_tags(row)
    metadata.update(extra_metadata or {})
    return ParsedItem(
        line=line,
        external_id=external or _external_id(row, conversation, responses),
        conversation=conversation,
        responses=responses,
        metadata=metadata,
        tags=tags,
        labels=[ParsedLabel(annotator, source, judge, None, [answer], line)],
    )


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
    return _labelled_item(
        row,
        line,
        conversation,
        responses,
        answer,
        external=external,
        extra_metadata={"margin": margin} if margin is not None else None,
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
    return _labelled_item(
        row, line, conversation, responses, {"question": "ranking", "ranking": ranking}
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
    item = _labelled_item(
        row, line, conversation, responses, {"question": "rating", "ratings": ratings}
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
    metadata, tags = _metadata_and_tags(row)
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
