"""models_gpu as a library: its public names, an import without side effects, the README snippet."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import models_gpu
from models_gpu import BradleyTerryReward

ROOT = Path(__file__).resolve().parents[2]
WEB_PACKAGES = {
    "django",
    "rest_framework",
    "celery",
    "annotation",
    "curation",
    "config",
    "frontend",
}


def run_python(script: str) -> dict:
    """Run ``script`` in a fresh interpreter from the repository root; return its last JSON line."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_configs_load_without_torch_so_a_web_process_can_read_the_defaults() -> None:
    outcome = run_python(
        """
        import json, sys
        from models_gpu import EmbeddingConfig, FiFAConfig, PipelineConfig, RewardConfig
        PipelineConfig(EmbeddingConfig(), RewardConfig(), FiFAConfig())
        print(json.dumps(sorted(m for m in ("torch", "numpy", "sklearn") if m in sys.modules)))
        """
    )
    assert outcome == []


def test_importing_it_sets_no_variable_touches_no_rng_and_loads_no_web_code() -> None:
    outcome = run_python(
        """
        import importlib, json, os, pkgutil, sys
        import numpy as np
        import torch

        environ = dict(os.environ)
        torch_state = torch.get_rng_state().clone()
        numpy_state = np.random.get_state()[1].copy()

        import models_gpu
        missing = [name for name in models_gpu.__all__ if getattr(models_gpu, name, None) is None]
        for module in pkgutil.iter_modules(models_gpu.__path__):
            importlib.import_module(f"models_gpu.{module.name}")

        print(json.dumps({
            "environ_changes": sorted(set(os.environ.items()) ^ set(environ.items())),
            "torch_rng_unchanged": bool(torch.equal(torch.get_rng_state(), torch_state)),
            "numpy_rng_unchanged": bool((np.random.get_state()[1] == numpy_state).all()),
            "modules": sorted(sys.modules),
            "missing": missing,
        }))
        """
    )
    assert outcome["missing"] == []
    assert outcome["environ_changes"] == []
    assert outcome["torch_rng_unchanged"]
    assert outcome["numpy_rng_unchanged"]
    # Python's own `random` is not checked: importing scipy.stats (through scikit-learn)
    # draws from it to build docstrings, which no code of ours can prevent.
    web = [m for m in outcome["modules"] if m.split(".")[0] in WEB_PACKAGES]
    assert web == []


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'embed'"):
        models_gpu.embed  # noqa: B018


def readme_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## The numerical core from Python")
    section = readme[start : readme.index("\n## ", start + 1)]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "the README section has no python block"
    return match.group(1)


@pytest.mark.slow
def test_the_readme_snippet_embeds_trains_and_filters_a_list_of_dicts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the snippet saves reward.safetensors in the working folder
    namespace: dict = {"__name__": "readme"}
    exec(compile(readme_snippet(), "README.md", "exec"), namespace)

    pairs, kept, n = namespace["pairs"], namespace["kept"], namespace["n"]
    assert n == len(pairs) == 10
    assert len(kept) == 5 and all(pair in pairs for pair in kept)
    assert len({pair["prompt"] for pair in kept}) == 5
    assert namespace["held_out"].accuracy >= 0.8  # chosen answers are plainly better
    saved = BradleyTerryReward.load(tmp_path / "reward.safetensors")
    prompt_emb, chosen_emb = namespace["prompt_emb"], namespace["chosen_emb"]
    np.testing.assert_allclose(
        saved.predict(prompt_emb, chosen_emb),
        namespace["reward"].predict(prompt_emb, chosen_emb),
        rtol=1e-5,
        atol=1e-6,
    )
    assert capsys.readouterr().out.strip().endswith("kept 5 of 10 pairs")


def test_a_web_process_and_a_celery_worker_start_without_torch_or_scikit_learn() -> None:
    """Every job kind is registered at start-up; its numerical code is imported when it runs.

    Importing the URL configuration and every Celery task module once pulled torch and
    scikit-learn in through the explain kind: 5.5 s of a worker's 6.7 s start, and ~300 MB
    in each gunicorn worker that never trains anything.
    """
    outcome = run_python(
        """
        import json, os, sys
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
        import django
        django.setup()
        import config.urls, config.wsgi
        from config.celery import app
        app.loader.import_default_modules()
        from curation.jobs.registry import AVAILABLE
        print(json.dumps({
            "heavy": sorted(m for m in ("torch", "sklearn", "transformers") if m in sys.modules),
            "kinds": len(AVAILABLE),
        }))
        """
    )
    assert outcome["heavy"] == []
    assert outcome["kinds"] >= 8
