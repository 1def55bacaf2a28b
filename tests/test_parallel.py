"""Data parallelism: 8 forced CPU devices and 2 processes give single-device results."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import COMPILATION_CACHE, REPO, run_cli, tiny_run_args

from nevis.checkpointing import Checkpointer

# Plain SGD: Adam's first steps divide by tiny second moments and amplify float reordering
# (single-step gradients agree to 2e-6 either way) into visibly different trajectories.
SGD = (
    "--config.stream.tasks=uci_digits",
    "--config.learner.optimizer.name=sgd",
    "--config.learner.optimizer.learning_rate=0.05",
    "--config.learner.optimizer.warmup_steps=30",
    "--config.learner.max_steps=20",
    "--config.learner.min_steps=20",
    "--config.learner.eval_every=10",
    "--config.learner.eval_batch_size=37",  # odd: every device count pads differently
)
EIGHT = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}


def _run(workdir, data_dir, env=None, *extra):
    return run_cli(*tiny_run_args(workdir, data_dir, *SGD, *extra), env=env)


def _params(workdir):
    state, _ = Checkpointer(workdir / "checkpoints").restore()
    return state["models"]


def _metrics(workdir):
    lines = (workdir / "events.jsonl").read_text().splitlines()
    return [json.loads(line).get("metrics") for line in lines]


@pytest.fixture(scope="module")
def single_device_run(tmp_path_factory, data_dir):
    workdir = tmp_path_factory.mktemp("one_device")
    _run(workdir, data_dir)
    return workdir


def _assert_same_results(a, b):
    pa, pb = _params(a), _params(b)
    assert jax.tree.structure(pa) == jax.tree.structure(pb)
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    for ma, mb in zip(_metrics(a), _metrics(b), strict=True):
        if ma is None:
            continue
        assert ma["num_examples"] == mb["num_examples"]  # padding never counted
        assert ma["top_one_correct"] == mb["top_one_correct"]
        assert ma["cross_entropy"] == pytest.approx(mb["cross_entropy"], rel=1e-5)


def test_eight_devices_match_one(single_device_run, tmp_path, data_dir):
    proc = _run(tmp_path, data_dir, EIGHT)
    assert "devices: 8" in proc.stderr
    _assert_same_results(single_device_run, tmp_path)


def test_num_devices_flag(tmp_path, data_dir):
    proc = run_cli(*tiny_run_args(tmp_path, data_dir, "--num_devices=9"), env=EIGHT, check=False)
    assert proc.returncode == 2 and "8 device(s) are available" in proc.stderr
    proc = run_cli(*tiny_run_args(tmp_path, data_dir, "--num_devices=3"), env=EIGHT, check=False)
    assert proc.returncode == 2 and "not divisible by the 3 devices" in proc.stderr


ODD_BATCH_SCRIPT = """
import sys, numpy as np, jax
from flax import nnx
from nevis import metrics, parallel
from nevis.configs import learner_config
from nevis.data import storage
from nevis.data.embedded import embedded_dataset
from nevis.learners import training
from nevis.learners.finetune import init_task_model
spec = embedded_dataset("uci_digits").spec
source = storage.open_split(spec, "dev_test", sys.argv[1])
config = learner_config("independent")
config.image_size = 16
graphdef, params = init_task_model(config, spec, 3)
out = {}
for devices, batch in ((1, 215), (1, 7), (8, 7), (8, 13)):
    mesh = parallel.make_mesh(devices)
    config.eval_batch_size = batch
    evaluator = training.Evaluator(lambda p, x: nnx.merge(graphdef, p)(x), mesh)
    p = parallel.replicate(params, mesh)
    state = metrics.init(spec.kind, spec.num_classes)
    for b in training.batch_iterator(source, config, mesh, train=False):
        state = metrics.update(state, b["label"], evaluator(p, b), b["mask"], b["index"])
    out[(devices, batch)] = (metrics.result(state), metrics.per_example(state)["index"])
ref, ref_index = out[(1, 215)]
for key, (res, index) in out.items():
    assert sorted(index.tolist()) == list(range(len(source))), key
    assert res["num_examples"] == ref["num_examples"] == len(source), key
    assert res["top_one_correct"] == ref["top_one_correct"], (key, res, ref)
    assert abs(res["cross_entropy"] - ref["cross_entropy"]) < 1e-5 * ref["cross_entropy"], key
print("OK", len(out))
"""


def test_odd_evaluation_batches_give_single_device_metrics(data_dir):
    proc = subprocess.run([sys.executable, "-c", ODD_BATCH_SCRIPT, str(data_dir)],
                          capture_output=True, text=True, cwd=REPO,
                          env={**EIGHT, "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK 4" in proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(single_device_run, tmp_path, data_dir):
    port = _free_port()
    args = [sys.executable, "-m", "nevis.run",
            *tiny_run_args(tmp_path, data_dir, *SGD, f"--coordinator_address=127.0.0.1:{port}",
                           "--num_processes=2")]
    env = {"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu", "NEVIS_CACHE_DIR": COMPILATION_CACHE}
    procs = [subprocess.Popen(args + [f"--process_id={i}"], cwd=REPO, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    outputs = [p.communicate(timeout=400) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert "stream error" in outputs[0][0] and "stream error" not in outputs[1][0]
    _assert_same_results(single_device_run, tmp_path)


def test_deq_eight_devices_match_one(tmp_path, data_dir):
    # Tolerances of 0 run every solve for its full budget: a per-example stopping test is a
    # discrete decision that float reordering between device counts could flip.
    deq = ("--learner=deq", "--config.learner.model.width=16",
           "--config.learner.solver.max_steps=6", "--config.learner.solver.backward_max_steps=6",
           "--config.learner.solver.budget_jitter=2", "--config.learner.solver.tol=0.0",
           "--config.learner.solver.backward_tol=0.0")
    one, eight = tmp_path / "one", tmp_path / "eight"
    _run(one, data_dir, None, *deq)
    proc = _run(eight, data_dir, EIGHT, *deq)
    assert "devices: 8" in proc.stderr
    _assert_same_results(one, eight)
