"""Per-example solver statistics, a registered pytree so it passes through jit/vmap."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SolverStats:
    """What a solve did, per example (arrays of shape [B]).

    steps: solver updates applied before the example stopped (f is evaluated steps + 1 times).
    abs_residual: ||f(z) - z|| at the returned z.
    rel_residual: abs_residual / (||f(z)|| + 1e-9) at the returned z.
    converged: the residual chosen by stop_mode fell below tol (False for NaN/inf).
    iterations: loop iterations the solve actually ran, one int32 scalar for the whole batch
        (the loop runs until its slowest example stops, so this, not the mean of `steps`, is
        what the solve cost: the cell is evaluated iterations + 1 times per example).
    trace: [B, max_steps + 1] stop_mode residual after each step (NaN after the loop ended),
        or None when not requested. Frozen examples repeat their last value.
    """

    steps: jax.Array
    abs_residual: jax.Array
    rel_residual: jax.Array
    converged: jax.Array
    iterations: jax.Array | None = None
    trace: jax.Array | None = None

    @property
    def nonfinite(self) -> jax.Array:
        """Examples [B] whose returned state (or its residual) is NaN or infinite."""
        return ~jnp.isfinite(self.abs_residual)
