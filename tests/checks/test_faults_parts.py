"""The faults check's own judgement: what counts as a clean error during an outage."""

from __future__ import annotations

import httpx

from checks.faults import _clean_error, _rows


def _response(status: int, body: bytes, content_type: str) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": content_type})


def test_a_json_error_in_the_api_shape_is_clean_and_an_html_page_is_not():
    shaped = b'{"error": "unavailable", "detail": "retry", "field": null, "errors": []}'
    assert _clean_error(_response(503, shaped, "application/json"))
    assert not _clean_error(_response(500, b"<h1>Server Error (500)</h1>", "text/html"))
    assert not _clean_error(_response(502, b'{"message": "bad gateway"}', "application/json"))
    assert not _clean_error(_response(503, b"{not json", "application/json"))


def test_the_fault_projects_rows_give_every_kind_work():
    rows = _rows(12, "t")
    annotators = {a["annotator"] for row in rows for a in row["annotations"]}
    assert len(annotators) == 6  # reliability and explain's groups need several people
    assert all(len(row["annotations"]) == 3 for row in rows)
    assert sum(bool(row.get("is_gold")) for row in rows) == 3
    # The planted disagreement: on some pairs the annotators do not all agree.
    assert any(len({a["answers"][0]["chosen"] for a in row["annotations"]}) > 1 for row in rows)
