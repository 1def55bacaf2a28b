"""Deep-equilibrium solvers, gradients and diagnostics over pytrees (pure JAX).

Entry point: `fixed_point(f, params, x, z0, **options) -> (z_star, SolverStats)` with
f(params, x, z) -> z and a leading batch axis on every leaf of z.
"""

from .alignment import (
    asymptotic_alignment,
    cosine,
    derangement,
    detect_limit_cycle,
    fixed_budget,
)
from .core import fixed_point
from .implicit import adjoint_stats
from .inits import INITS, initial_state, register_init
from .layers import (
    Conv,
    SlowAdjointWarning,
    check_cell,
    conv2d,
    conv_general_dilated,
    group_norm,
    slow_convolutions,
)
from .options import DEQOptions
from .regularizers import jacobian_frobenius, spectral_radius, weight_norm, weight_norm_scale
from .solvers import SOLVERS, Anderson, Broyden, FixedPoint, Solver, register_solver
from .stats import SolverStats

__all__ = [
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
    "initial_state",
    "jacobian_frobenius",
    "register_init",
    "register_solver",
    "spectral_radius",
    "weight_norm",
    "weight_norm_scale",
]
