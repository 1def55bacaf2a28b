"""Shared fixtures: embedded datasets built once per session into a temporary directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from nevis.data.embedded import EMBEDDED_TASKS, prepare_embedded

REPO = Path(__file__).resolve().parents[1]
TINY_TASKS = ("uci_digits", "shapes_multilabel")
# Compiled steps are shared by the runs of one session, never with the user's cache.
COMPILATION_CACHE = tempfile.mkdtemp(prefix="nevis_test_cache_")

# A learner small enough that a two-task run takes seconds.
TINY_OVERRIDES = (
    "--config.learner.image_size=16",
    "--config.learner.batch_size=32",
    "--config.learner.eval_batch_size=100",
    "--config.learner.min_steps=40",
    "--config.learner.max_steps=40",
    "--config.learner.eval_every=20",
    "--config.learner.log_every=10",
    "--config.learner.optimizer.warmup_steps=5",
)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("nevis_data")
    for spec in EMBEDDED_TASKS:
        if spec.key in TINY_TASKS:
            prepare_embedded(spec, directory, progress=False)
    return directory


def run_cli(*args: str, env: dict | None = None, check: bool = True, **kwargs):
    """Runs `python -m nevis.run` in a subprocess (as a user would)."""
    full_env = {**os.environ, "JAX_PLATFORMS": "cpu", "NEVIS_CACHE_DIR": COMPILATION_CACHE,
                **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "nevis.run", *args], capture_output=True, text=True, cwd=REPO,
        env=full_env, **kwargs,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return proc


def tiny_run_args(workdir: Path, data_dir: Path, *extra: str) -> list[str]:
    """The tiny run's flags; a flag in `extra` replaces the default of the same name."""
    args = [
        f"--workdir={workdir}", f"--data_dir={data_dir}", "--noprogress", "--learner=independent",
        f"--config.stream.tasks={','.join(TINY_TASKS)}", *TINY_OVERRIDES, *extra,
    ]
    return list({a.split("=", 1)[0]: a for a in args}.values())


def comparable_summary(workdir: Path) -> dict:
    """summary.json without wall-clock timing, the only field allowed to differ."""
    summary = json.loads((workdir / "summary.json").read_text())
    summary.pop("timing")
    return summary
