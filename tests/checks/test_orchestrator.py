"""The report of ``make check`` and the orchestrator around the check modules: a module
that is missing, raises or reports nothing is a failing line, never a silent pass."""

from __future__ import annotations

import json
import sys
import types

import pytest

from checks.__main__ import parse_args, run_module, run_modules
from checks.core import Context, Figure, Report


@pytest.fixture
def ctx(tmp_path) -> Context:
    return Context(base_url="http://127.0.0.1:1", world=None, out_dir=tmp_path, fingerprint=dict)


@pytest.fixture
def check_module(monkeypatch):
    """Install ``checks.<name>`` whose ``run`` is the given function."""

    def install(name: str, run) -> str:
        module = types.ModuleType(f"checks.{name}")
        module.run = run
        monkeypatch.setitem(sys.modules, f"checks.{name}", module)
        return name

    return install


def test_a_figure_holds_only_when_everything_tried_held_and_nothing_was_lost():
    assert Figure("s", "n", 3, 3).status == "ok"
    assert Figure("s", "n", 3, 2).status == "FAIL"
    assert Figure("s", "n", 3, 3, lost=1).status == "FAIL"
    assert Figure("s", "n", 0, 0).status == "not run"


def test_the_report_fails_on_one_failing_figure_and_says_so_in_the_table_and_the_json(tmp_path):
    report = Report()
    report.extend(
        [
            Figure("access", "routes x roles", 10, 10, detail="all refused"),
            Figure("faults", "kill -9", 9, 8, lost=1, failures=["embed: duplicate rows"]),
            Figure("deployment", "pip-audit", 0, 0, detail="NOT RUN: unreachable"),
        ]
    )
    assert not report.ok
    table = report.table()
    assert "FAIL" in table and "not run" in table
    assert "faults / kill -9: embed: duplicate rows" in table
    assert "3 figures, 19 tried, 1 failed, 1 not run, rows/leaks lost: 1" in table

    report.write_json(tmp_path / "report.json", timings={"faults": 1.5})
    payload = json.loads((tmp_path / "report.json").read_text())
    assert payload["ok"] is False and payload["lost"] == 1
    assert payload["timings"] == {"faults": 1.5}
    assert [f["status"] for f in payload["figures"]] == ["ok", "FAIL", "not run"]


def test_an_empty_report_is_not_a_pass():
    assert not Report().ok


def test_a_module_that_does_not_exist_is_one_failing_figure(ctx):
    (figure,) = run_module("no_such_check", ctx)
    assert (figure.section, figure.name, figure.ok) == ("no_such_check", "not built", False)


def test_a_module_that_raises_is_one_failing_figure_with_its_traceback(ctx, check_module):
    def run(ctx):
        raise RuntimeError("the stack fell over")

    (figure,) = run_module(check_module("boom", run), ctx)
    assert figure.name == "crashed" and not figure.ok
    assert "RuntimeError: the stack fell over" in figure.detail
    assert "Traceback" in figure.failures[0]


@pytest.mark.parametrize("returned", [[], None, ["not a figure"]], ids=["empty", "none", "junk"])
def test_a_module_that_reports_nothing_usable_fails(ctx, check_module, returned):
    (figure,) = run_module(check_module("quiet", lambda ctx: returned), ctx)
    assert not figure.ok


def test_the_run_goes_on_after_a_crash_and_times_every_module(ctx, check_module):
    def boom(ctx):
        raise ValueError("no")

    check_module("first", boom)
    check_module("second", lambda ctx: [Figure("second", "fine", 1, 1)])
    report, timings, between = Report(), {}, []
    run_modules(["first", "second"], ctx, report, timings, between=lambda: between.append(1))
    assert [(f.section, f.ok) for f in report.figures] == [("first", False), ("second", True)]
    assert set(timings) == {"first", "second"} and len(between) == 2


def test_only_picks_modules_in_the_fixed_order_and_refuses_unknown_names(capsys):
    assert parse_args(["--only", "deployment,access"]).modules == ["access", "deployment"]
    assert parse_args([]).modules[0] == "access"
    with pytest.raises(SystemExit):
        parse_args(["--only", "acess"])
    assert "unknown module(s) acess" in capsys.readouterr().err
