"""The judges' core: parsing, both-order combination, the HTTP judge's retries and caps, the local LM.

The HTTP judge talks to a real stub server on loopback through a plain urllib
transport here (``models_gpu`` knows no Django); the outbound client's transport is
tested in ``tests/curation/test_judges.py``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from models_gpu import judges as core
from tests.judge_stub import JudgeStub
from tests.tiny_models import build_tiny_causal_lm


def urllib_transport(url, payload, headers, timeout):
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        retry_after = error.headers.get("Retry-After")
        raise core.TransportFailure(
            f"HTTP {error.code}",
            retryable=error.code == 429 or error.code >= 500,
            retry_after=float(retry_after) if retry_after else None,
        ) from None
    except (TimeoutError, urllib.error.URLError) as error:
        raise core.TransportFailure(f"{error}", retryable=True) from None
    except ValueError:
        raise core.TransportFailure("not JSON", retryable=False) from None


@pytest.fixture
def stub():
    server = JudgeStub().start()
    yield server
    server.stop()


def _tasks(count):
    out = []
    for i in range(count):
        pair = (f"GOOD answer {i}.", f"weak answer {i}.")
        out.append(core.PairTask(f"user: question {i}", pair if i % 2 == 0 else pair[::-1]))
    return out


def _judge(stub, sleeps=None, **config):
    return core.ChatJudge(
        core.ChatJudgeConfig(base_url=stub.base_url, model="stub", **config),
        urllib_transport,
        sleep=(sleeps.append if sleeps is not None else time.sleep),
    )


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("A", "A"),
        ("B.", "B"),
        ("[[B]] because it is shorter", "B"),
        ("Response A is better.", "A"),
        ("The answer is: B", "B"),
        ("A or B", None),
        ("a good one", None),
        ("", None),
        ("I cannot decide.", None),
    ],
)
def test_the_pairwise_parser_reads_a_verdict_or_abstains_with_a_reason(text, choice):
    verdict = core.parse_pairwise(text)
    assert verdict.choice == choice
    assert (verdict.reason != "") == (choice is None)


def test_rankings_and_ratings_parse_or_abstain():
    assert core.parse_ranking("C > A > B", 3).choice == ["C", "A", "B"]
    assert core.parse_ranking("C > A", 3).choice is None
    assert core.parse_ranking("A > A > B", 3).choice is None
    assert core.parse_rating("Rating: 4", 1, 5).choice == 4.0
    assert "outside" in core.parse_rating("7", 1, 5).reason
    assert core.parse_rating("great", 1, 5).choice is None


def test_agreeing_orders_give_the_label_and_disagreeing_ones_a_tie_or_an_abstention():
    agree = core.combine_orders(core.Verdict("B"), core.Verdict("A"))
    assert (agree.outcome, agree.winner, agree.consistent, agree.confidence) == (
        "label",
        1,
        True,
        1.0,
    )
    biased = core.combine_orders(core.Verdict("A"), core.Verdict("A"))
    assert (biased.outcome, biased.winner, biased.consistent) == ("tie", None, False)
    assert "position bias" in biased.reason
    strict = core.combine_orders(core.Verdict("A"), core.Verdict("A"), on_disagreement="abstain")
    assert strict.outcome == "abstain"
    broken = core.combine_orders(core.Verdict(None, reason="empty answer"), core.Verdict("A"))
    assert broken.outcome == "abstain" and "first order: empty answer" in broken.reason
    # Token probabilities make the confidence: mean probability of the winner over both orders.
    sure = core.combine_orders(
        core.Verdict("A", probabilities={"A": 0.9, "B": 0.1}),
        core.Verdict("B", probabilities={"A": 0.3, "B": 0.7}),
    )
    assert sure.winner == 0 and sure.confidence == pytest.approx(0.8)


def test_templates_substitute_known_placeholders_only():
    assert core.template_problems("pairwise", core.DEFAULT_PROMPTS["pairwise"]) == []
    assert core.template_problems("pairwise", "{response_a} {x.__class__}") != []
    text = core.render("{prompt} {response_a.__class__} {{prompt}}", {"prompt": "hi"})
    assert text == "hi {response_a.__class__} {hi}"


def test_a_fair_judge_over_http_labels_by_content_in_both_orders(stub):
    verdicts = _judge(stub).judge_pairs(_tasks(4))
    assert [v.winner for v in verdicts] == [0, 1, 0, 1]
    assert all(v.consistent for v in verdicts)
    assert len(stub.requests) == 8
    request = json.loads(stub.requests[0]["body"])
    assert request["temperature"] == 0 and request["model"] == "stub"


def test_an_order_biased_judge_becomes_ties():
    biased = JudgeStub(mode="first").start()
    try:
        verdicts = _judge(biased).judge_pairs(_tasks(4))
        assert {v.outcome for v in verdicts} == {"tie"}
        assert {v.consistent for v in verdicts} == {False}
    finally:
        biased.stop()


def test_token_probabilities_become_the_confidence():
    server = JudgeStub(logprobs=True).start()
    try:
        (verdict,) = _judge(server, logprobs=True).judge_pairs(_tasks(1))
        # p(label) = e^-0.1 / (e^-0.1 + e^-2.4) in each order.
        assert verdict.confidence == pytest.approx(0.9089, abs=1e-3)
        assert verdict.orders[0].probabilities["A"] == pytest.approx(0.9089, abs=1e-3)
    finally:
        server.stop()


def test_failures_are_retried_with_backoff_and_429_waits_as_told():
    server = JudgeStub(script=[500, 429, 503], retry_after="7").start()
    try:
        sleeps: list[float] = []
        judge = _judge(server, sleeps, max_retries=3, backoff=0.25, concurrency=1)
        content, _ = judge.complete("[Response A]\nGOOD\n\n[Response B]\nbad\n\nA or B?")
        assert content == "A"
        assert server.statuses == [500, 429, 503, 200]
        # 0.25 s after the 500, the 7 s Retry-After of the 429, then 0.25 x 2^2 after the 503.
        assert sleeps == [0.25, 7.0, 1.0]
        assert judge.attempts == 4
    finally:
        server.stop()


def test_retries_stop_at_the_limit_and_the_pair_abstains():
    server = JudgeStub(script=[500] * 10).start()
    try:
        sleeps: list[float] = []
        verdicts = _judge(server, sleeps, max_retries=2, concurrency=1).judge_pairs(_tasks(1))
        assert verdicts[0].outcome == "abstain" and "request failed" in verdicts[0].reason
        assert len(server.requests) == 6  # 1 + 2 retries, in each order
    finally:
        server.stop()


def test_a_slow_server_times_out_and_the_verdict_says_so():
    server = JudgeStub(delay=1.0).start()
    try:
        judge = _judge(server, [], timeout=0.2, max_retries=0, concurrency=1)
        (verdict,) = judge.judge_pairs(_tasks(1))
        assert verdict.outcome == "abstain" and "timed out" in verdict.reason.lower()
    finally:
        server.stop()


def test_the_concurrency_cap_is_observed_by_the_server():
    server = JudgeStub(delay=0.05).start()
    try:
        _judge(server, concurrency=3).judge_pairs(_tasks(8))
        assert server.max_active == 3
        server.max_active = 0
        _judge(server, concurrency=1).judge_pairs(_tasks(2))
        assert server.max_active == 1
    finally:
        server.stop()


def test_the_request_cap_leaves_the_rest_unjudged(stub):
    judge = core.ChatJudge(
        core.ChatJudgeConfig(base_url=stub.base_url, model="stub", concurrency=1),
        urllib_transport,
        budget=core.RequestBudget(5),
    )
    verdicts = judge.judge_pairs(_tasks(4))
    assert len(stub.requests) == 5
    assert [v is None for v in verdicts] == [False, False, True, True]


def test_the_budget_is_thread_safe():
    budget = core.RequestBudget(1000)
    taken = []

    def take():
        for _ in range(400):
            try:
                budget.take()
                taken.append(1)
            except core.RequestCapReached:
                return

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == 1000 == budget.used


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("lm") / "tiny-lm")


def test_the_local_judge_reads_label_token_probabilities_batched(tiny_lm):
    tasks = _tasks(5) + [core.PairTask("user: a much longer question " * 3, ("x", "y"))]
    batched = core.LocalLMJudge(core.LocalJudgeConfig(path=str(tiny_lm), batch_size=4)).fit()
    alone = core.LocalLMJudge(core.LocalJudgeConfig(path=str(tiny_lm), batch_size=1)).fit()
    many = batched.judge_pairs(tasks)
    one = alone.judge_pairs(tasks)
    for a, b in zip(many, one, strict=True):
        for first, second in zip(a.orders, b.orders, strict=True):
            assert sum(first.probabilities.values()) == pytest.approx(1.0)
            # Left padding keeps the last position each prompt's own: batching changes nothing.
            assert first.probabilities["A"] == pytest.approx(second.probabilities["A"], abs=1e-4)
            assert first.choice == ("A" if first.probabilities["A"] > 0.5 else "B")
        assert a.outcome == b.outcome
    # Deterministic: no sampling.
    again = batched.judge_pairs(tasks)
    assert [v.as_dict() for v in again] == [v.as_dict() for v in many]
    (rating,) = batched.judge_ratings([core.RatingTask("p", "r", "helpfulness", 1, 5)])
    assert rating.choice in {1.0, 2.0, 3.0, 4.0, 5.0}


def test_an_untrained_local_model_prefers_a_position_and_both_orders_catch_it(tiny_lm):
    judge = core.LocalLMJudge(core.LocalJudgeConfig(path=str(tiny_lm))).fit()
    verdicts = judge.judge_pairs(_tasks(4))
    # A random tiny model answers from position, not content: every pair is a tie.
    for verdict in verdicts:
        assert verdict.orders[0].choice == verdict.orders[1].choice
        assert verdict.outcome == "tie" and verdict.consistent is False


def test_a_label_missing_from_the_tokenizer_is_refused(tiny_lm):
    judge = core.LocalLMJudge(core.LocalJudgeConfig(path=str(tiny_lm))).fit()
    with pytest.raises(ValueError, match="not a single token"):
        judge.label_token_ids(["Ω"])


def test_reward_verdicts_follow_the_margin():
    verdicts = core.reward_pair_verdicts([2.0, -1.0, 0.0], [0.0, 1.0, 0.0], tie_margin=0.01)
    assert [v.outcome for v in verdicts] == ["label", "label", "tie"]
    assert [v.winner for v in verdicts[:2]] == [0, 1]
    assert verdicts[0].confidence == pytest.approx(1 / (1 + 2.718281828**-2), abs=1e-4)


def test_comparison_pairs_are_a_round_robin_then_a_balanced_bounded_one():
    assert core.comparison_pairs(1) == []
    assert core.comparison_pairs(2) == [(0, 1)]
    assert core.comparison_pairs(4) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert len(core.comparison_pairs(8)) == 28
    many = core.comparison_pairs(20)
    # Above eight responses: 3 pairs per response, each response in exactly six games.
    assert len(many) == 60 == len(set(many))
    games = [sum(index in pair for pair in many) for index in range(20)]
    assert games == [6] * 20
    assert all(i < j for i, j in many)


def test_pair_scores_count_wins_and_half_ties():
    label = core.PairVerdict("label", 1, 1.0, True, "", [])
    tie = core.PairVerdict("tie", None, 0.5, False, "", [])
    assert core.pair_scores(3, [(0, 1), (0, 2), (1, 2)], [label, tie, label]) == [0.5, 1.0, 1.5]


VOCABULARY = {
    "domain": ("coding", "math", "science"),
    "safety_concern": ("none", "moderate", "high"),
    "complexity": ("simple", "complex"),
}


@pytest.mark.parametrize(
    ("text", "tags", "reason"),
    [
        ("domain: B\nsafety_concern: A\ncomplexity: B", ("math", "none", "complex"), ""),
        (
            "Answer: domain: B) math\n\nsafety_concern: none\ncomplexity: A.",
            ("math", "none", "simple"),
            "",
        ),
        (
            "```\ndomain: C\nsafety_concern: C\ncomplexity: A\n```",
            ("science", "high", "simple"),
            "",
        ),
        (
            "- Domain: A\n- Safety concern: B\n- complexity: B",
            ("coding", "moderate", "complex"),
            "",
        ),
        ("domain: D\nsafety_concern: A\ncomplexity: A", None, "letter D is not one of A..C"),
        ("domain: B) coding\nsafety_concern: A\ncomplexity: A", None, "letter B is 'math'"),
        ("domain: B\nsafety_concern: A", None, "no answer for complexity"),
        ("domain: B\ndomain: A\nsafety_concern: A\ncomplexity: A", None, "answered twice"),
        ("mood: A\ndomain: B\nsafety_concern: A\ncomplexity: A", None, "unknown tag 'mood'"),
        ("I think it is about maths.", None, "not a 'tag: letter' line"),
        ("domain: poetry\nsafety_concern: A\ncomplexity: A", None, "is not one of its options"),
        ("", None, "empty answer"),
    ],
)
def test_the_tag_parser_reads_one_option_per_tag_or_abstains_with_a_reason(text, tags, reason):
    verdict = core.parse_tags(text, VOCABULARY)
    if tags is None:
        assert verdict.abstained and reason in verdict.reason
    else:
        assert verdict.choice == dict(zip(VOCABULARY, tags, strict=True))


def test_a_chat_judge_tags_prompts_through_the_stub_and_abstains_on_prose():
    hinted = JudgeStub().start()
    prose = JudgeStub(tag_mode="malformed").start()
    try:
        tasks = [core.TagTask("user: solve x domain=math complexity=complex"), core.TagTask("hi")]
        verdicts = _judge(hinted).judge_tags(tasks, VOCABULARY)
        assert verdicts[0].choice == {
            "domain": "math",
            "safety_concern": "none",
            "complexity": "complex",
        }
        assert verdicts[1].choice == {
            "domain": "coding",
            "safety_concern": "none",
            "complexity": "simple",
        }
        sent = json.loads(hinted.requests[0]["body"])
        assert "domain: A) coding, B) math, C) science" in sent["messages"][-1]["content"]
        assert sent["max_tokens"] >= 8 * len(VOCABULARY)
        (abstained,) = _judge(prose).judge_tags(tasks[:1], VOCABULARY)
        assert abstained.abstained and "not a 'tag: letter' line" in abstained.reason
    finally:
        hinted.stop()
        prose.stop()


def test_the_request_cap_leaves_prompts_untagged(stub):
    judge = core.ChatJudge(
        core.ChatJudgeConfig(base_url=stub.base_url, model="stub"),
        urllib_transport,
        budget=core.RequestBudget(1),
    )
    verdicts = judge.judge_tags([core.TagTask("a"), core.TagTask("b")], VOCABULARY)
    assert sum(v is None for v in verdicts) == 1 and len(stub.requests) == 1


def test_a_local_judge_tags_by_option_letter_probabilities_batched(tiny_lm):
    tasks = [core.TagTask(f"user: question {i} " * (i + 1)) for i in range(5)]
    batched = core.LocalLMJudge(core.LocalJudgeConfig(path=str(tiny_lm), batch_size=4)).fit()
    alone = core.LocalLMJudge(core.LocalJudgeConfig(path=str(tiny_lm), batch_size=1)).fit()
    many = batched.judge_tags(tasks, VOCABULARY)
    one = alone.judge_tags(tasks, VOCABULARY)
    for verdict, single in zip(many, one, strict=True):
        assert set(verdict.choice) == set(VOCABULARY)
        assert all(verdict.choice[tag] in VOCABULARY[tag] for tag in VOCABULARY)
        # Each chosen option is the most probable of its tag's letters: at least 1/options.
        for tag, values in VOCABULARY.items():
            assert 1 / len(values) - 1e-6 <= verdict.probabilities[tag] <= 1.0
        assert verdict.choice == single.choice
        # The answer written for the model is the strict format the parser reads.
        assert core.parse_tags(verdict.raw, VOCABULARY).choice == verdict.choice
    assert [v.as_dict() for v in batched.judge_tags(tasks, VOCABULARY)] == [
        v.as_dict() for v in many
    ]
