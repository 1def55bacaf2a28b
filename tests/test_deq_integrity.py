"""What the DEQ learner reports can be trusted (issue #11 items 4, 5, 6, 9).

- FLOPs: reported training and inference FLOPs of a small DEQ (implicit, phantom and unrolled
  gradients) and of the ResNet `independent` learner match an analytic count made here from
  the models' layer shapes (never from XLA) within 10 %.
- Non-converged and non-finite adjoint solves and AA scores are counted, not dropped.
- AA does not depend on the evaluation batch size or the device count.
- The DEQ trains on a multi-label task with every gradient mode (one-step together with
  Jacobian regularisation).

The learners run once, in one subprocess with 8 CPU devices (`_main`), called directly on the
session's embedded data: a train event of two steps per configuration, prediction events.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from nevis import parallel
from nevis.budgets import BUDGETS
from nevis.configs import learner_config
from nevis.data import loader
from nevis.data.embedded import embedded_dataset
from nevis.datasets import DataAccess
from nevis.learners import baseline, deq, per_task
from nevis.learners.base import PredictContext, TrainContext
from nevis.models import init_params
from nevis.streams import PredictionEvent, TrainingEvent

FLOPS_RTOL = 0.10
AA_ATOL = 1e-5  # AA of one example, across evaluation batch sizes and device counts
K_FORWARD, K_BACKWARD = 3, 4  # fixed budgets (tolerance 0): the loops run exactly this long
STEPS, BATCH, EVAL_BATCH, IMAGE = 2, 16, 64, 16
ANDERSON_M = 5


# -- the analytic counter: multiply-adds from layer shapes ----------------------------------

def _taps(n: int, k: int, stride: int) -> tuple[int, int]:
    """(output size, in-bounds kernel taps summed over outputs) of a SAME conv along one axis.

    Taps that fall on zero padding multiply nothing, so they are not counted (at 4×4 a 3×3
    kernel has 100 of 144 taps in bounds per axis pair: counting 9 per output overcounts 44 %).
    """
    out = -(-n // stride)
    pad = max((out - 1) * stride + k - n, 0)
    lo = pad // 2
    return out, sum(1 for o in range(out) for t in range(k) if 0 <= o * stride - lo + t < n)


def _conv(size: int, k: int, stride: int, cin: int, cout: int) -> tuple[int, int]:
    """(output size, multiply-adds per example) of a square SAME conv."""
    out, taps = _taps(size, k, stride)
    return out, taps * taps * cin * cout


def _stride(conv) -> int:
    return conv.strides if isinstance(conv.strides, int) else conv.strides[0]


def resnet_convs(resnet, size: int) -> tuple[list[int], int]:
    """Multiply-adds of each conv of a `nevis.models.resnet.ResNet`, in order; final size."""
    def one(conv, n):
        return _conv(n, conv.kernel_size[0], _stride(conv), conv.in_features, conv.out_features)

    size, m = one(resnet.stem, size)
    macs = [m]
    for block in resnet.blocks:
        mid, m1 = one(block.conv1, size)
        out, m2 = one(block.conv2, mid)
        macs += [m1, m2]
        if block.project is not None:
            macs.append(one(block.project, size)[1])
        size = out
    return macs, size


def explicit_macs(convs: list[int], head: int) -> dict[str, float]:
    """Forward and backward multiply-adds of a conv stack + dense head, per example.

    Backward: a kernel gradient (as many multiply-adds as the forward) for every layer and an
    input gradient for every layer but the first (images are not differentiated).
    """
    forward = sum(convs) + head
    return {"forward": forward, "backward": 2 * forward - convs[0]}


def deq_macs(model, size: int, num_classes: int) -> dict[str, float]:
    """Per-example multiply-adds of the DEQ's parts (a cell of one or two convolutions)."""
    convs, s = resnet_convs(model.trunk, size)
    width = model.cell.v1.shape[-1]
    if hasattr(model, "injection"):  # strided conv from the trunk into the cell
        s, m = _conv(s, model.injection.kernel_size[0], _stride(model.injection),
                     model.injection.in_features, width)
        convs.append(m)
    _, c = _conv(s, model.cell.v1.shape[0], 1, width, width)  # each of the cell's convs
    n = model.cell.convs
    d = s * s * width
    head = width * num_classes
    # `nevis.equilibrium.conv2d` forms a kernel gradient as one matrix product per kernel
    # offset over the zero-padded input: every tap, padding included.
    kernel_grad = model.cell.v1.shape[0] ** 2 * d * width
    return {
        "stem": explicit_macs(convs, 0), "conv": c, "cell": n * c, "head": head,
        "kernel_grad": kernel_grad,
        # A VJP through f at fixed z: every kernel's gradient, and the input gradient of
        # each conv after the first (its input depends on the kernels before it).
        "param_vjp": n * kernel_grad + (n - 1) * c,
        # Anderson: an m×m Gram matrix of residuals and an m-term mix of f values per step.
        "mixing": (ANDERSON_M ** 2 + ANDERSON_M) * d,
    }


def deq_train_macs(p: dict, grad: str, kf: int, kb: int, phantom_steps: int) -> float:
    """Per-example multiply-adds of one DEQ training step (f evaluations and their VJPs).

    VJP of f: a kernel gradient for every conv, input gradients for those whose input needs a
    gradient (all but the first always; the first only when z itself is differentiated).
    """
    c, cell, mix, param_vjp = p["conv"], p["cell"], p["mixing"], p["param_vjp"]
    total = p["stem"]["forward"] + p["stem"]["backward"] + 3 * p["head"]
    total += (kf + 1) * cell + kf * mix  # forward solve: f(z0), then kf iterations
    if grad == "implicit":
        total += cell + (kb + 1) * cell + kb * mix  # linearise at z*, adjoint: VJPs in z only
        total += cell + param_vjp  # VJP in (params, x) at z*
    elif grad in ("phantom", "one_step"):
        k = phantom_steps if grad == "phantom" else 1
        # k differentiable steps; the first starts from the detached z* (no input gradient
        # for its first conv).
        total += k * cell + k * param_vjp + (k - 1) * c
    elif grad == "unrolled":
        total += param_vjp  # VJP of f(z0): z0 is random, not differentiated
        # each iteration's VJP in z, in the solver history (Gram and mix) and in the kernels
        total += kf * (param_vjp + c + 2 * mix)
    return total


def deq_inference_macs(p: dict, k: int) -> float:
    """Per-row multiply-adds of a DEQ prediction: pass 1 solves every budget (plus the
    limit-cycle check's two f evaluations and the head), pass 2 re-solves it from partners."""
    total = 2 * p["stem"]["forward"]
    for b in BUDGETS:
        solve = (k * b + 1) * p["cell"] + k * b * p["mixing"]
        total += solve + 2 * p["cell"] + p["head"] + solve
    return total


# -- the learner runs: one subprocess with 8 CPU devices ------------------------------------

def _small(config):
    config.image_size, config.batch_size, config.eval_batch_size = IMAGE, BATCH, EVAL_BATCH
    config.min_steps = config.max_steps = config.eval_every = STEPS
    return config


def deq_config(**options):
    config = _small(learner_config("deq"))
    config.model.width = 32
    config.budget_jitter = 0
    config.solver_options.anderson.m = ANDERSON_M
    config.deq.update({"max_steps": K_FORWARD, "b_max_steps": K_BACKWARD, "tol": 0.0,
                       "b_tol": 0.0, **options})
    return config


def _jacreg_config():
    config = deq_config(grad="one_step")
    config.jacobian_reg.weight = 0.5
    return config


def _two_conv_block_config():
    """The other cell and injection (two convolutions, a ResNet block into the cell)."""
    config = deq_config(grad="phantom")
    config.model.cell_convs, config.model.injection = 2, "block"
    return config


# name: (config, task). shapes_multilabel: the DEQ also trains on a multi-label task.
RUNS = {
    "implicit": (lambda: deq_config(grad="implicit"), "shapes_multilabel"),
    "phantom": (_two_conv_block_config, "shapes_multilabel"),
    "one_step_jacobian_reg": (_jacreg_config, "shapes_multilabel"),
    "unrolled": (lambda: deq_config(grad="unrolled"), "shapes_multilabel"),
    "resnet": (lambda: _small(learner_config("independent")), "uci_digits"),
}
# (devices, eval batch size): 32 vs 128 on one device, then 1 vs 8 devices at 128.
AA_SETTINGS = ((1, 32), (1, 128), (8, 128))


def _contexts(data_dir, mesh):
    data = DataAccess(data_dir, show_progress=False)
    train_ctx = TrainContext(data=data.open, mesh=mesh, save_checkpoint=lambda *a: None,
                             restore_checkpoint=lambda template: None,
                             checkpoint_every=10**9, show_progress=False)

    def predict_ctx(task, split, mesh=mesh):
        source = data.open(task, split)

        def batches(batch_size, image_size):
            for b in loader.batches(source, batch_size=batch_size, image_size=image_size,
                                    shuffle=False, seed=0, augment=None, repeat=False):
                yield {"image": b["image"], "index": b["index"], "mask": b["mask"]}

        return PredictContext(batches=batches, num_examples=len(source), mesh=mesh)

    return train_ctx, predict_ctx


def _by_index(predictions, n: int) -> dict[str, np.ndarray]:
    """Per-example scores of a prediction event by example index (each index exactly once)."""
    out: dict[str, np.ndarray] = {}
    seen = np.zeros(n, int)
    for p in predictions:
        index, mask = np.asarray(p.index), np.asarray(p.mask, bool)
        seen[index[mask]] += 1
        for name, value in p.scores.items():
            out.setdefault(name, np.full(n, np.inf))[index[mask]] = np.asarray(value)[mask]
    assert (seen == 1).all(), "predictions must cover every example exactly once"
    return out


def _initial_state(config, task):
    """Learner state holding a freshly initialised DEQ for `task` (no training)."""
    _, params = init_params(lambda: deq.build_model(config, task, 0))
    return per_task.after_training(per_task.init_state(), task, params, ("trunk", "cell"))


def _analytic_flops(config, task, num_examples: int | None) -> dict[str, float]:
    """FLOPs (2 × multiply-adds) the analytic counter expects for one run, from the model's
    layer shapes (an abstract model: no XLA involved)."""
    from flax import nnx

    rows = -(-num_examples // EVAL_BATCH) * EVAL_BATCH if num_examples else 0  # padding runs
    if config.name != "deq":
        model = nnx.eval_shape(lambda: baseline.build_model(config, task, 0))
        convs, _ = resnet_convs(model.backbone, IMAGE)
        macs = explicit_macs(convs, model.backbone.num_features * task.num_classes)
        return {"train": 2 * (macs["forward"] + macs["backward"]) * BATCH * STEPS,
                "inference": 2 * macs["forward"] * rows}
    model = nnx.eval_shape(lambda: deq.build_model(config, task, 0))
    parts = deq_macs(model, IMAGE, task.num_classes)
    grad = config.deq.grad
    out = {
        "train": 2 * deq_train_macs(parts, grad, K_FORWARD, K_BACKWARD,
                                    config.deq.phantom_steps) * BATCH * STEPS,
        "inference": 2 * deq_inference_macs(parts, K_FORWARD) * rows,
        "cell": 2 * parts["cell"] * BATCH * STEPS,  # one f evaluation per example per step
    }
    if config.jacobian_reg.weight:
        del out["train"]  # not modelled: the penalty's second-order pass
        out["train_without_penalty"] = 2 * deq_train_macs(
            parts, grad, K_FORWARD, K_BACKWARD, config.deq.phantom_steps) * BATCH * STEPS
    return out


def _main(data_dir: str, out_path: str) -> None:
    """Runs every learner once and writes what they report (and AA per setting) as JSON."""
    results: dict = {}
    train_ctx, predict_ctx = _contexts(data_dir, parallel.make_mesh(1))
    for name, (make_config, task_key) in RUNS.items():
        config, task = make_config(), embedded_dataset(task_key).spec
        learner = (deq if config.name == "deq" else baseline).make_learner(config)
        out = learner.train(TrainingEvent(task, task.year), learner.init(), train_ctx)
        record = {"train_flops": out.resources.train_flops,
                  "info": {k: v for k, v in out.info.items()
                           if isinstance(v, int | float | type(None))}}
        num_examples = None
        if name in ("implicit", "resnet"):
            ctx = predict_ctx(task, "dev_test")
            used = learner.predict(PredictionEvent(task, "dev_test", task.year), out.state, ctx)
            num_examples = ctx.num_examples
            record["inference_flops"] = used.resources.inference_flops
        record["analytic"] = _analytic_flops(config, task, num_examples)
        results[name] = record

    # AA of one model for several evaluation batch sizes and device counts. One solver step
    # at the training budget leaves the model path dependent (AA well below 1, varying per
    # example), so a changed partner would show.
    config, task = deq_config(max_steps=1), embedded_dataset("shapes_multilabel").spec
    state = _initial_state(config, task)
    aa = {}
    for devices, batch in AA_SETTINGS:
        config.eval_batch_size = batch
        ctx = predict_ctx(task, "dev_test", parallel.make_mesh(devices))
        out = deq.make_learner(config).predict(PredictionEvent(task, "dev_test", task.year),
                                               state, ctx)
        scores = _by_index(out.predictions, ctx.num_examples)
        aa[f"{devices}x{batch}"] = {k: scores[k].tolist() for k in ("aa", "aa_2x", "aa_4x")}
    results["aa"] = aa

    # A cell that overflows within its budgets: what prediction reports for lost states.
    config = deq_config()
    config.model.update(norm="none", init_scale=1e8)
    state = _initial_state(config, task)
    ctx = predict_ctx(task, "dev_test")
    out = deq.make_learner(config).predict(PredictionEvent(task, "dev_test", task.year), state,
                                           ctx)
    scores = _by_index(out.predictions, ctx.num_examples)
    results["overflow"] = {k: [None if np.isnan(v) else float(v) for v in values]
                           for k, values in scores.items()}
    with open(out_path, "w") as f:
        json.dump(results, f)


@pytest.fixture(scope="module")
def reported(data_dir, tmp_path_factory):
    """What the learners report, from one subprocess (8 forced CPU devices).

    XLA backend optimisation is off there: reported FLOPs come from the HLO before
    optimisation anyway, and compiling a DEQ step takes half as long.
    """
    out = tmp_path_factory.mktemp("deq_integrity") / "reported.json"
    env = {"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=8 "
                        "--xla_backend_optimization_level=0"}
    proc = subprocess.run([sys.executable, __file__, str(data_dir), str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def _check(reported: float, analytic: float, what: str) -> None:
    ratio = reported / analytic
    print(f"{what}: reported {reported:.4g}, analytic {analytic:.4g}, ratio {ratio:.3f}")
    assert abs(ratio - 1) <= FLOPS_RTOL, f"{what}: reported/analytic = {ratio:.3f}"


@pytest.mark.parametrize("name", ["implicit", "phantom", "unrolled"])
def test_deq_training_flops_match_an_analytic_count(reported, name):
    run = reported[name]
    info = run["info"]
    assert info["best_dev_error"] is not None and "diverged_at_step" not in info
    _check(run["train_flops"], run["analytic"]["train"], f"DEQ {name} training")
    assert info["forward_iterations_mean"] == K_FORWARD  # tolerance 0: the full budget
    if name == "implicit":
        assert info["backward_iterations_mean"] == K_BACKWARD


def test_deq_inference_flops_match_an_analytic_count(reported):
    run = reported["implicit"]
    _check(run["inference_flops"], run["analytic"]["inference"], "DEQ inference")


def test_resnet_flops_match_an_analytic_count(reported):
    run = reported["resnet"]
    _check(run["train_flops"], run["analytic"]["train"], "ResNet training")
    _check(run["inference_flops"], run["analytic"]["inference"], "ResNet inference")


def test_one_step_gradient_with_jacobian_regularisation_trains(reported):
    run = reported["one_step_jacobian_reg"]
    assert run["info"]["best_dev_error"] is not None and "diverged_at_step" not in run["info"]
    # The penalty linearises f at z* and runs a VJP of it (then differentiates both): at
    # least two more f-sized passes per example than a one-step gradient alone.
    extra = run["train_flops"] - run["analytic"]["train_without_penalty"]
    assert extra >= 2 * run["analytic"]["cell"]


def test_adjoint_solves_are_counted(reported):
    info = reported["implicit"]["info"]
    assert info["backward_solves"] == STEPS * BATCH  # one per example per step
    assert info["backward_not_converged"] == 1.0  # tolerance 0: none converges
    assert info["backward_not_converged_count"] == STEPS * BATCH
    assert info["backward_nonfinite"] == 0


def test_backward_statistics_count_lost_and_unconverged_adjoints():
    from nevis import equilibrium as eq

    stats = deq._BackwardStats()
    for converged, residual, steps in (([True, False, False, True], [1e-3, 0.5, np.nan, 3e-3],
                                        [2, 4, 1, 3]),
                                       ([True] * 4, [2e-3] * 4, [1] * 4)):
        residual = np.asarray(residual, np.float32)
        stats.add(eq.SolverStats(steps=np.asarray(steps), abs_residual=residual,
                                 rel_residual=residual, converged=np.asarray(converged),
                                 iterations=np.int32(max(steps))))
    restored = deq._BackwardStats()
    restored.load(json.loads(json.dumps(stats.state())))  # as checkpointed with the task
    for summary in (stats.summary(), restored.summary()):
        assert summary["backward_solves"] == 8
        assert summary["backward_not_converged"] == 2 / 8  # the lost one included
        assert summary["backward_not_converged_count"] == 2
        assert summary["backward_nonfinite"] == 1
        assert summary["backward_iterations_mean"] == 2.5  # what the loops ran: 4, then 1
        # over the finite residuals of each step, then over steps
        assert summary["backward_residual_mean"] == pytest.approx(
            (np.mean([1e-3, 0.5, 3e-3]) + 2e-3) / 2, rel=1e-6)


def test_alignment_does_not_depend_on_batch_size_or_devices(reported):
    runs = {k: {name: np.asarray(v) for name, v in scores.items()}
            for k, scores in reported["aa"].items()}
    ref = runs["1x32"]
    for values in ref.values():
        assert np.isfinite(values).all()
        assert np.std(values) > 1e-3, "AA must vary across examples for this test to bite"
        assert np.mean(values) < 0.999
    for setting, scores in runs.items():
        for name, values in scores.items():
            np.testing.assert_allclose(values, ref[name], rtol=0, atol=AA_ATOL,
                                       err_msg=f"{name} at {setting} devices x batch")


def test_lost_states_are_counted_in_prediction_scores(reported):
    scores = {k: np.array([np.nan if v is None else v for v in values])
              for k, values in reported["overflow"].items()}
    lost = ~np.isfinite(scores["residual"])  # the budget-1 state overflowed
    assert lost.any()
    np.testing.assert_array_equal(np.isnan(scores["limit_cycle"]), lost)
    for name in ("aa", "aa_2x", "aa_4x"):
        np.testing.assert_array_equal(scores[f"{name}_nonfinite"], ~np.isfinite(scores[name]))
    assert scores["aa_4x_nonfinite"].any()


if __name__ == "__main__":
    _main(*sys.argv[1:])
