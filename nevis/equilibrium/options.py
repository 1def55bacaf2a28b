"""Options of an equilibrium solve, validated once in a frozen dataclass."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .solvers import Solver, make_solver

GRAD_MODES = ("implicit", "phantom", "one_step", "unrolled", "none")
BACKWARD_FAILURE = ("warn", "ignore", "nan")


@dataclasses.dataclass(frozen=True)
class DEQOptions:
    """Forward solver, stopping rule and gradient mode of `fixed_point`.

    Forward: `solver` is a registry name ("fixed_point", "anderson", "broyden") with
    keyword `solver_options` (tau; m, lam, beta; memory) or a solver instance.
    Stopping is per example on `stop_mode` ("rel" or "abs") residual < `tol`, at most
    `max_steps` updates; the final iterate is returned unless `return_best`.

    Gradients (`grad`): "implicit" solves the adjoint u = g + J^T u with `b_solver`
    (default: the forward solver) to relative residual `b_tol` within `b_max_steps`
    (None = forward values); the adjoint always stops on the RELATIVE residual because
    cotangents are often tiny and an absolute test stops after one step.
    "phantom" backpropagates through `phantom_steps` damped steps (`phantom_tau`) from
    the detached z*; "one_step" is phantom with k = 1, tau = 1; "unrolled"
    backpropagates through the forward iterations; "none" stops gradients.
    Phantom and one-step keep the forward value z* (straight-through).

    Backward failures: `on_backward_failure` "warn" (Python warning from a debug
    callback), "ignore", or "nan" (NaN gradient rows for examples whose adjoint did not
    converge). `backward_callback(stats)` receives the adjoint SolverStats every
    backward pass, for logging.

    `loop_friendly` (default on) runs f with every stride-1 convolution rewritten onto
    `layers.conv_general_dilated` (`layers.loop_friendly`): channels-last x HWIO with a
    VJP whose input-gradient is an ordinary HWIO conv. In solver loops (the forward solve,
    the implicit adjoint, unrolled iterations) XLA:CPU runs JAX's own conv VJP 15-20x and
    channels-first convs ~10x slower. Same values and gradients up to float rounding
    (channels-last forward: identical); off keeps f exactly as written.
    """

    solver: str | Solver = "anderson"
    solver_options: dict[str, Any] | None = None
    tol: float = 1e-3
    stop_mode: str = "rel"
    max_steps: int = 30
    return_best: bool = False
    trace: bool = False
    grad: str = "implicit"
    b_solver: str | Solver | None = None
    b_solver_options: dict[str, Any] | None = None
    b_tol: float | None = None
    b_max_steps: int | None = None
    phantom_steps: int = 5
    phantom_tau: float = 0.5
    on_backward_failure: str = "warn"
    backward_callback: Callable[[Any], None] | None = None
    loop_friendly: bool = True

    def __post_init__(self) -> None:
        if self.grad not in GRAD_MODES:
            raise ValueError(f"grad must be one of {GRAD_MODES}, got {self.grad!r}")
        if self.stop_mode not in ("abs", "rel"):
            raise ValueError(f"stop_mode must be 'abs' or 'rel', got {self.stop_mode!r}")
        if self.on_backward_failure not in BACKWARD_FAILURE:
            raise ValueError(f"on_backward_failure must be one of {BACKWARD_FAILURE}")
        # max_steps may be a traced scalar (e.g. a random budget per batch, drawn under jit).
        if (isinstance(self.max_steps, int) and self.max_steps < 0) or self.phantom_steps < 1:
            raise ValueError("max_steps must be >= 0 and phantom_steps >= 1")
        make_solver(self.solver, self.solver_options)  # fail early on bad names/options

    def forward_solver(self) -> Solver:
        return make_solver(self.solver, self.solver_options)

    def backward_solver(self) -> Solver:
        if self.b_solver is None:
            return make_solver(self.solver, self.b_solver_options or self.solver_options)
        return make_solver(self.b_solver, self.b_solver_options)

    @property
    def backward_tol(self) -> float:
        return self.tol if self.b_tol is None else self.b_tol

    @property
    def backward_max_steps(self) -> int:
        return self.max_steps if self.b_max_steps is None else self.b_max_steps


def resolve(options: DEQOptions | None, overrides: dict[str, Any]) -> DEQOptions:
    """Merge keyword overrides into (default) options."""
    base = options or DEQOptions()
    return dataclasses.replace(base, **overrides) if overrides else base
