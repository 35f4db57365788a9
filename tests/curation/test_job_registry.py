"""The job-kind registry: every kind declared once, its params typed, listed and documented."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from drf_spectacular.generators import SchemaGenerator

import models_gpu
from curation.jobs.registry import AVAILABLE, NOT_AVAILABLE
from curation.models import Job, JobKind
from curation.pairs import SELECTION_FIELDS, Selection
from models_gpu.config import ExplainConfig, SAEConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def jobs_stay_queued(monkeypatch, settings, tmp_path):
    # These tests are about what is stored and listed, not about running the jobs.
    settings.BALLOT_STORAGE_ROOT = tmp_path / "storage"
    monkeypatch.setattr("curation.services.jobs.job_enqueue", lambda **kwargs: None)


def launch(client, project, kind, params):
    return client.post(
        f"/api/v1/projects/{project.id}/jobs/", {"kind": kind, "params": params}, format="json"
    )


def test_every_job_kind_is_registered_as_available_or_declared_not_available_yet():
    assert set(AVAILABLE) | set(NOT_AVAILABLE) == set(JobKind.values)
    assert not set(AVAILABLE) & set(NOT_AVAILABLE)
    assert {"embed", "reward", "fifa", "suspects", "export"} <= set(AVAILABLE)
    for kind, spec in AVAILABLE.items():
        assert spec.kind == kind and spec.queue in ("gpu", "default") and spec.writes


def test_each_available_kind_has_its_params_as_a_component_of_the_openapi_document(db):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    for spec in AVAILABLE.values():
        name = spec.params.component_name()
        assert name in components, f"{spec.kind}: no component {name}"
        documented = set(components[name]["properties"])
        assert documented == {entry["name"] for entry in spec.params.describe()}, spec.kind
    launch_params = components["JobInRequest"]["properties"]["params"]["allOf"][0]["$ref"]
    # anyOf: the params of one kind may also be valid for another (every key has a default).
    any_of = components[launch_params.rsplit("/", 1)[1]]["anyOf"]
    referenced = {ref["$ref"].rsplit("/", 1)[1] for ref in any_of}
    assert {f"{spec.params.component_name()}Request" for spec in AVAILABLE.values()} == referenced
    assert "/api/v1/job-kinds/" in schema["paths"]


def test_defaults_come_from_the_models_gpu_configs(project, alice, api):
    kinds = {entry["kind"]: entry for entry in api(alice).get("/api/v1/job-kinds/").json()}
    fifa = {p["name"]: p for p in kinds["fifa"]["params"]}
    embed = {p["name"]: p for p in kinds["embed"]["params"]}

    assert fifa["keep_fraction"]["default"] == models_gpu.FiFAConfig().keep_fraction
    assert fifa["k"]["default"] == models_gpu.FiFAConfig().k
    assert fifa["when_short"]["choices"] == list(models_gpu.WHEN_SHORT)
    assert fifa["epochs"]["default"] == models_gpu.RewardConfig().epochs
    assert fifa["suspect_threshold"]["default"] == models_gpu.SuspectConfig().threshold
    assert embed["batch_size"]["default"] == models_gpu.EmbeddingConfig().batch_size
    assert fifa["min_agreement"]["default"] == Selection().min_agreement
    assert fifa["keep_fraction"] | {"default": None} == {
        "name": "keep_fraction",
        "type": "number",
        "format": None,
        "default": None,
        "nullable": False,
        "minimum": 0.0,
        "maximum": 1.0,
        "exclusive_maximum": False,
        "choices": None,
        "help": "Share of pairs to keep when keep_top is null.",
    }


def test_the_job_kinds_are_listed_for_signed_in_users_only(project, alice, charlie, api):
    assert api(None).get("/api/v1/job-kinds/").status_code in (401, 403)
    response = api(charlie).get("/api/v1/job-kinds/")

    assert response.status_code == 200
    listed = {entry["kind"]: entry for entry in response.json()}
    assert set(listed) == set(JobKind.values)
    assert listed["explain"]["available"] is True and listed["explain"]["queue"] == "gpu"
    explain_params = {p["name"]: p for p in listed["explain"]["params"]}
    # Defaults come from the core's configs, never copied.
    assert explain_params["n_features"]["default"] == SAEConfig().n_features
    assert explain_params["k_active"]["default"] == SAEConfig().k_active
    assert explain_params["include_prompt"]["default"] == ExplainConfig().include_prompt
    assert listed["embed"]["sharded"] is True and listed["fifa"]["sharded"] is False
    assert listed["export"]["queue"] == "default" and listed["fifa"]["queue"] == "gpu"


def test_the_curate_command_lists_the_same_kinds_as_the_api(project, alice, api, capsys):
    call_command("curate", "--list", "--json")
    printed = json.loads(capsys.readouterr().out)
    assert printed == api(alice).get("/api/v1/job-kinds/").json()

    call_command("curate", "--list")
    text = capsys.readouterr().out
    assert "keep_fraction=0.5" in text and "number in [0, 1]" in text
    assert "explain" in text and "n_features=" in text
    with pytest.raises(CommandError, match="--list"):
        call_command("curate")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (
            "embed",
            {
                "batch_size": models_gpu.EmbeddingConfig().batch_size,
                "embedding_model": None,
                "shards": 1,
            },
        ),
        (
            "reward",
            {
                "folds": models_gpu.RewardConfig().folds,
                "duplicate_cosine": models_gpu.RewardConfig().duplicate_cosine,
                "epochs": models_gpu.RewardConfig().epochs,
                "hidden": models_gpu.RewardConfig().hidden,
                "seed": models_gpu.RewardConfig().seed,
                "batch_size": models_gpu.EmbeddingConfig().batch_size,
                "embedding_model": None,
            },
        ),
    ],
)
def test_a_job_stores_exactly_its_own_kinds_params_with_defaults(
    project, alice, api, jobs_stay_queued, kind, expected
):
    response = launch(api(alice), project, kind, {})

    assert response.status_code == 202, response.content
    stored = Job.objects.get(pk=response.json()["id"]).params
    selection = {name: stored.pop(name) for name in SELECTION_FIELDS if name in stored}
    assert stored == expected
    assert "alpha" not in stored and "keep_fraction" not in stored
    if kind == "reward":
        assert selection == {
            "source": "human",
            "aggregation": "majority",
            "min_agreement": 0.0,
            "rating_threshold": 0.25,
            "rating_aspect": None,
            "tags": [],
            "created_after": None,
            "created_before": None,
            "annotator_filter": {},
            "questions": [],
            "include_ties": True,
        }
    else:
        assert selection == {}
    assert response.json()["params"] == Job.objects.get(pk=response.json()["id"]).params


def test_given_params_are_stored_as_checked_values(project, alice, api, jobs_stay_queued):
    response = launch(api(alice), project, "fifa", {"k": 7.0, "tags": "a, b,a", "keep_top": None})

    params = Job.objects.get(pk=response.json()["id"]).params
    assert params["k"] == 7 and isinstance(params["k"], int)
    assert params["tags"] == ["a", "b"]
    assert params["keep_top"] is None
    assert params["keep_fraction"] == models_gpu.FiFAConfig().keep_fraction


@pytest.mark.parametrize("kind", sorted(AVAILABLE))
def test_an_unknown_key_is_400_naming_the_key_and_the_kind(project, alice, api, kind):
    response = launch(api(alice), project, kind, {"frobnicate": 1})

    body = response.json()
    assert response.status_code == 400
    assert body["field"] == "params.frobnicate"
    assert "'frobnicate'" in body["detail"] and f"{kind} job" in body["detail"]
    assert not Job.objects.exists()


def test_a_fifa_only_param_is_refused_by_a_reward_job(project, alice, api):
    response = launch(api(alice), project, "reward", {"keep_fraction": 0.3})

    assert response.status_code == 400
    assert response.json()["field"] == "params.keep_fraction"
    assert "reward job" in response.json()["detail"]


def test_a_kind_declared_for_later_is_400_saying_it_is_not_available_yet(
    project, alice, api, monkeypatch
):
    # Every kind is available today: declare one for later, as a new kind starts out.
    kind = "explain"
    monkeypatch.delitem(AVAILABLE, kind)
    monkeypatch.setitem(NOT_AVAILABLE, kind, "Planned.")
    response = launch(api(alice), project, kind, {})

    assert response.status_code == 400
    assert response.json()["field"] == "kind"
    assert "not available yet" in response.json()["detail"]
    assert not Job.objects.exists()


def test_the_stored_params_load_back_as_the_kinds_typed_params(
    project, alice, api, jobs_stay_queued
):
    response = launch(api(alice), project, "fifa", {"keep_fraction": 0.25, "greedy": False})
    job = Job.objects.get(pk=response.json()["id"])

    params = AVAILABLE["fifa"].params.from_job(job)

    assert params.keep_fraction == 0.25 and params.greedy is False
    config = params.pipeline_config()
    assert config.fifa.keep_fraction == 0.25 and config.fifa.greedy is False
    assert config.reward.epochs == models_gpu.RewardConfig().epochs


def _curation_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("curation"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("curation"))
    return found


def test_the_lifecycle_knows_kinds_only_through_the_registry_and_the_task_only_dispatches():
    lifecycle = _curation_imports(ROOT / "curation" / "services" / "jobs.py")
    assert {"curation.jobs", "curation.jobs.base"} <= lifecycle
    # What a kind does (its rows, its maths, its inputs) is the kind module's business.
    assert not {
        module
        for module in lifecycle
        if module.startswith(
            ("curation.jobs.kinds", "curation.pairs", "curation.exports", "curation.tasks")
        )
    }
    assert _curation_imports(ROOT / "curation" / "tasks.py") == {"curation.services"}
