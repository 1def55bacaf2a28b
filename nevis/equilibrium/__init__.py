"""Deep-equilibrium solvers, gradients and diagnostics over pytrees (pure JAX).

Entry point: `fixed_point(f, params, x, z0, **options) -> (z_star, SolverStats)` with
f(params, x, z) -> z and a leading batch axis on every leaf of z.

Toolbox around it: fixed-point correction (`correction_states`, `correction_loss`),
spectral / target-norm weight normalisation (`spectral_norm`, `weight_norm_target`),
variational dropout (`dropout_mask_1d`, `dropout_mask_2d`) and the reversible solve with
exact O(1)-memory gradients (`reversible_fixed_point`).
"""

from .alignment import (
    asymptotic_alignment,
    cosine,
    derangement,
    detect_limit_cycle,
    fixed_budget,
)
from .core import fixed_point
from .correction import (
    CORRECTION_GRADS,
    correction_loss,
    correction_states,
    correction_weights,
    solve_trajectory,
    uniform_indices,
)
from .dropout import apply_dropout, dropout_mask, dropout_mask_1d, dropout_mask_2d
from .implicit import adjoint_stats
from .inits import INITS, initial_state, register_init
from .layers import (
    Conv,
    SlowAdjointWarning,
    check_cell,
    conv2d,
    conv_general_dilated,
    group_norm,
    loop_friendly,
    slow_convolutions,
)
from .norms import spectral_norm, spectral_norm_estimate, spectral_norm_init, weight_norm_target
from .options import DEQOptions
from .regularizers import jacobian_frobenius, spectral_radius, weight_norm, weight_norm_scale
from .reversible import reversible_fixed_point
from .solvers import SOLVERS, Anderson, Broyden, FixedPoint, Solver, register_solver
from .stats import SolverStats

__all__ = [
    "CORRECTION_GRADS",
    "Conv",
    "SlowAdjointWarning",
    "INITS",
    "SOLVERS",
    "Anderson",
    "Broyden",
    "DEQOptions",
    "FixedPoint",
    "Solver",
    "SolverStats",
    "adjoint_stats",
    "asymptotic_alignment",
    "check_cell",
    "conv2d",
    "conv_general_dilated",
    "slow_convolutions",
    "cosine",
    "derangement",
    "detect_limit_cycle",
    "fixed_budget",
    "fixed_point",
    "group_norm",
    "loop_friendly",
    "initial_state",
    "jacobian_frobenius",
    "register_init",
    "register_solver",
    "spectral_radius",
    "weight_norm",
    "weight_norm_scale",
    "apply_dropout",
    "correction_loss",
    "correction_states",
    "correction_weights",
    "dropout_mask",
    "dropout_mask_1d",
    "dropout_mask_2d",
    "reversible_fixed_point",
    "spectral_norm",
    "spectral_norm_estimate",
    "spectral_norm_init",
    "solve_trajectory",
    "uniform_indices",
    "weight_norm_target",
]
