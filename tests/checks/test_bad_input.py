"""The bad-input check holds on Ballot as it is and catches a parser that lets NaN through."""

from __future__ import annotations

import json

import pytest

from annotation.parsers import StrictJSONParser
from checks import bad_input

pytestmark = pytest.mark.slow


def test_broken_bodies_are_refused_and_write_nothing(check_context):
    check_context.options["schemathesis_seconds"] = 5
    figures = bad_input.run(check_context)
    assert [f.name for f in figures] == [
        "deep nesting, non-finite numbers",
        "NUL bytes, huge integers",
        "encodings, content types, truncated uploads",
        "schemathesis",
    ]
    assert all(f.tried > 0 for f in figures)
    assert [f.failures for f in figures if not f.ok] == []


def test_a_json_parser_that_takes_nan_is_caught(check_context, monkeypatch):
    def lenient(self, stream, media_type=None, parser_context=None):
        # Python's json: NaN and Infinity become floats, 10,000-deep nesting a RecursionError.
        return json.loads(stream.read() or b"{}")

    monkeypatch.setattr(StrictJSONParser, "parse", lenient)
    check_context.options["schemathesis_seconds"] = 1
    refused = bad_input.run(check_context)[0]
    assert refused.lost > 0
    assert any("accepted" in f or "-> 5" in f for f in refused.failures), refused.failures
