"""Deep-equilibrium classifier trained to be path independent, scored for it on every task.

    python -m nevis.run --learner=deq

An explicit ResNet trunk, one equilibrium cell (two 3×3 convolutions, GroupNorm, input
injection) solved by Anderson acceleration, implicit-function-theorem gradients, a fresh
model per task; the same step budget as `independent`. Path independence is promoted with
mixed initialisation (half the batch starts from noise) and a random forward budget per
batch. Predictions run 1×, 2× and 4× the training budget and report accuracy and asymptotic
alignment (AA) at each. On the embedded stream this takes about 7 minutes on 2 CPU cores
(measured 6 min 55 s) and reaches a dev_test stream error of about 0.35, every task above
chance, mean AA near 1.
"""

from ml_collections import ConfigDict

from experiments import independent


def get_config() -> ConfigDict:
    config = independent.get_config()
    config.name = "deq"
    config.model = ConfigDict({  # nevis.models.deq.DEQClassifier's arguments
        "width": 32,  # channels of the equilibrium state
        "stem_widths": (16,),  # explicit ResNet stages before the cell (each halves H, W)
        "stem_stride": 2,
        "groups": 8,
        "norm": "group",  # "none" removes the cell's GroupNorm (unstable; for experiments)
        "weight_norm": False,
        "spectral_norm": 0.0,  # > 0: clip each cell kernel's spectral norm to this value
        "init_scale": 1.0,
        "cell_convs": 2,  # 1: the single-convolution cell (half the cost per iteration)
        "injection": "block",  # "conv": a strided conv, not a ResNet block, feeds the cell
    })
    config.image_size = 32
    config.batch_size = 32
    config.eval_batch_size = 128
    # nevis.equilibrium.DEQOptions, passed through under the library's own names.
    config.deq = ConfigDict({
        "solver": "anderson",  # fixed_point | anderson | broyden
        "max_steps": 12,  # the training budget; prediction uses 1x, 2x and 4x of it
        "tol": 1e-2,  # relative residual, per example
        "grad": "implicit",  # implicit | phantom | one_step | unrolled
        "b_tol": 1e-2,
        "b_max_steps": 12,
        "phantom_steps": 5,
        "phantom_tau": 0.5,
    })
    # Each solver's keyword options (nevis.equilibrium.SOLVERS); `deq.solver`'s entry is used.
    config.solver_options = ConfigDict({
        "anderson": {"m": 5, "lam": 1e-4},
        "fixed_point": {"tau": 1.0},
        "broyden": {"memory": 30},
    })
    # Path independence: the start of each training solve (nevis.equilibrium.INITS: zeros |
    # gaussian | mixed_example | mixed_element) and a forward budget drawn per batch from
    # [deq.max_steps - budget_jitter, deq.max_steps].
    config.init = "mixed_example"
    config.budget_jitter = 4
    config.jacobian_reg = ConfigDict({"weight": 0.0})
    # Training aids of nevis.equilibrium, off by default (README, "The DEQ learner"):
    # variational dropout rate on the cell's output (channel-wise, one mask per example for
    # the whole solve); fixed-point correction (supervise `n_states` states of the solve,
    # weights gamma^(n-1-i); needs deq.grad=phantom|one_step and budget_jitter=0); the
    # reversible solve (beta in (0, 1): exact gradients of the truncated solve, O(1) memory).
    config.dropout = 0.0
    config.correction = ConfigDict({"n_states": 0, "gamma": 0.8})
    config.reversible_beta = 0.0
    return config


# Issue #14's levers, one at a time from the defaults above (round 1), on the embedded stream
# at the full budget. `python -m nevis.sweep --learner=deq --sweep=levers`.
LEVERS = {
    "resnet_trunk": {"learner.model.stem_widths": (16, 32), "learner.model.width": 64},
    "one_step": {"learner.deq.grad": "one_step"},
    "phantom": {"learner.deq.grad": "phantom"},
    "batch_64": {"learner.batch_size": 64},
    "zeros_start": {"learner.init": "zeros", "learner.budget_jitter": 0},
    "budget_8": {"learner.deq.max_steps": 8, "learner.deq.b_max_steps": 8},
}
# Round 2: the ResNet trunk (round 1's clear winner) with the levers that cut its compute.
RESNET_TRUNK = LEVERS["resnet_trunk"]
ROUND_2 = {
    "one_step": {**RESNET_TRUNK, "learner.deq.grad": "one_step"},
    "one_conv": {**RESNET_TRUNK, "learner.model.cell_convs": 1},
    "one_conv_one_step": {**RESNET_TRUNK, "learner.model.cell_convs": 1,
                          "learner.deq.grad": "one_step"},
    "zeros_start": {**RESNET_TRUNK, **LEVERS["zeros_start"]},
    "one_conv_one_step_batch_64": {**RESNET_TRUNK, "learner.model.cell_convs": 1,
                                   "learner.deq.grad": "one_step", "learner.batch_size": 64},
    "lr_1e-3": {**RESNET_TRUNK, "learner.optimizer.learning_rate": 1e-3},
}
# Round 3: the single-convolution cell on the ResNet trunk (round 2), made cheaper still.
ONE_CONV = {**RESNET_TRUNK, "learner.model.cell_convs": 1}
CONV_INJECTION = {**ONE_CONV, "learner.model.injection": "conv"}
BUDGET_8 = {"learner.deq.max_steps": 8, "learner.deq.b_max_steps": 8}
ROUND_3 = {
    "conv_injection": CONV_INJECTION,
    "budget_8": {**ONE_CONV, **BUDGET_8},
    "conv_injection_budget_8": {**CONV_INJECTION, **BUDGET_8},
    "conv_injection_lr_5e-3": {**CONV_INJECTION, "learner.optimizer.learning_rate": 5e-3},
}
SWEEPS = ("levers", "round_2", "round_3", "frontier")


def get_sweep(name: str = "") -> dict:
    """A sweep of this learner by name (see the comments above each)."""
    name = name or "levers"
    if name == "levers":
        return {"description": "issue #14 levers, one at a time",
                "trials": list(LEVERS.values())}
    if name == "round_2":
        return {"description": "issue #14 round 2: ResNet trunk + compute levers",
                "trials": list(ROUND_2.values())}
    if name == "frontier":  # the same budgets as independent's `frontier`
        return {"description": "the step budget x 1/4, 1/2, 1, 2: error against FLOPs",
                "trials": independent.frontier_trials(get_config())}
    if name == "round_3":
        return {"description": "issue #14 round 3: one-convolution cell, cheaper still",
                "trials": list(ROUND_3.values())}
    raise ValueError(f"unknown sweep {name!r}; valid choices: {', '.join(SWEEPS)}.")
