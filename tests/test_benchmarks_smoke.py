"""The benchmark scripts run end to end on tiny settings and measure what they claim."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import COMPILATION_CACHE, REPO

BENCH = REPO / "benchmarks"
TORCH_PYTHON = REPO / ".venv-torch" / "bin" / "python"


def _bench(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "NEVIS_CACHE_DIR": COMPILATION_CACHE}
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def test_harness_throughput_runs_the_deq_learner(data_dir):
    # It used to build every learner's model through the ResNet factory and crash on deq.
    proc = _bench("harness_throughput.py", "--learner=deq", "--task=uci_digits",
                  f"--data_dir={data_dir}", "--steps=11", "--repeats=1",
                  "--set", "image_size=16", "--set", "model.width=16",
                  "--set", "deq.max_steps=4", "--set", "budget_jitter=1")
    m = re.search(r"\(a\) harness ([0-9.]+) steps/s / bare jit ([0-9.]+) steps/s", proc.stdout)
    assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0, proc.stdout
    assert "steps 5..10 timed" in proc.stdout


@pytest.mark.skipif(not TORCH_PYTHON.exists(), reason="needs the torch venv .venv-torch "
                    "(python3 -m venv .venv-torch && .venv-torch/bin/pip install "
                    "torch==2.13.0 torchdeq==0.1.0 numpy)")
def test_torchdeq_comparison_does_the_same_work(tmp_path):
    out = tmp_path / "rows.json"
    _bench("equilibrium_vs_torchdeq.py", f"--torch-python={TORCH_PYTHON}", "--rounds=1",
           "--chunk=2", "--fwd-evals=12", "--bwd-vjps=10", "--percall=2", "--cells=eq.Conv",
           "--rows=fixed", f"--json={out}")
    rows = {r["side"]: r for r in json.loads(out.read_text())}
    torch, ours = rows["torchdeq"], rows["jax eq.Conv"]
    # Tolerance 0: every solve runs its budget. Both sides evaluate the cell 12 times in the
    # forward solve plus twice for the gradient (torchdeq: f(z*) with grad, and again in its
    # backward; nevis: the linearisations for the adjoint and the parameter VJP), and run
    # 10 adjoint VJPs plus one for the parameters.
    assert torch["f_evals"] == ours["f_evals"] == 14
    assert torch["vjps"] == ours["vjps"] == 11
    # Same Anderson, same weights: the losses agree up to the solve's residual (torchdeq
    # outputs f(z) at its lowest-residual iterate, nevis z at its last; 12 evaluations leave
    # a residual near 1e-3; measured loss difference 1.6e-3 with 6 evaluations).
    assert ours["loss_vs_torch"] < 1e-3
    assert ours["counted_vs_timed_loss"] < 1e-5
