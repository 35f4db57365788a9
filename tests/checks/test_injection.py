"""The injection check holds on Ballot as it is and catches unescaped output, a weak
policy and a formula left in a CSV."""

from __future__ import annotations

import csv

import pytest

from checks import injection
from curation.routing_report import ReportRow, routing_report_write


@pytest.mark.browser
@pytest.mark.slow
def test_stored_payloads_never_run_and_every_page_sends_the_policy(check_context, browser):
    check_context.options["browser"] = browser
    figures = {f.name: f for f in injection.run(check_context)}
    assert set(figures) == {
        "stored XSS",
        "Content-Security-Policy",
        "CSV formula injection",
        "SQL injection in filters",
    }
    assert all(f.tried > 0 for f in figures.values())
    assert [f.failures for f in figures.values() if not f.ok] == []


@pytest.mark.browser
@pytest.mark.slow
def test_a_renderer_that_stops_sanitising_is_caught(check_context, browser, monkeypatch):
    check_context.options["browser"] = browser
    check_context.options["max_pages"] = 1  # the preview's answer is read as sent
    monkeypatch.setattr("frontend.workspace_setup.markdown_to_safe_html", lambda text: text)
    xss = next(f for f in injection.run(check_context) if f.name == "stored XSS")
    assert xss.lost > 0
    assert any("instructions-preview" in failure for failure in xss.failures), xss.failures


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("default-src 'self'; script-src 'self'", None),
        ("default-src 'self'", None),
        ("script-src 'self' 'unsafe-inline'", "script-src allows 'unsafe-inline'"),
        ("default-src 'self' 'unsafe-eval'", "script-src allows 'unsafe-eval'"),
        ("style-src 'self'", "no script-src or default-src"),
        (None, "no Content-Security-Policy"),
    ],
)
def test_a_policy_that_lets_inline_scripts_or_eval_run_is_refused(header, problem):
    assert injection._csp_problem(header) == problem


def test_the_routing_report_csv_keeps_formulas_as_text(tmp_path):
    names = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", "plain"]
    rows = [ReportRow(name, name, "gain", 0.25, 10, -0.5, None) for name in names]
    with routing_report_write(rows, tmp_path)["csv"].open(newline="") as handle:
        cells = [record[:2] for record in list(csv.reader(handle))[1:]]
    assert [c[0] for c in cells] == ["'" + n for n in names[:-1]] + ["plain"]
    assert all(c[0] == c[1] for c in cells)
