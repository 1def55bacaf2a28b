"""Memory of one training step of the conv DEQ cell: reversible solve vs implicit and unrolled.

Same cell, data and SGD step as `equilibrium_memory.py` (equilibrium_common). Gradient modes:

- implicit:      Anderson (m = 6) for exactly K updates, IFT backward (Anderson adjoint to
                 relative residual 1e-3, <= 29 updates);
- unrolled:      the same forward, backpropagation through its K updates;
- rev-unrolled:  the reversible two-state iteration (K steps, beta 0.5) differentiated by
                 plain backpropagation through a scan (stores every step);
- reversible:    `reversible_fixed_point` (K steps, beta 0.5), whose custom VJP rebuilds
                 the trajectory backwards instead of storing it.

Reports XLA's compiled memory analysis of the jitted step (temp_size_in_bytes: scratch the
step needs beyond its arguments and outputs) at K = 8 and 64, and the cell evaluations per
forward pass (a reversible step evaluates the cell twice). Nothing is executed.

    .venv/bin/python benchmarks/equilibrium_reversible_memory.py
"""

from __future__ import annotations

import functools
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(__file__))
import equilibrium_common as C  # noqa: E402

from nevis.equilibrium import conv2d, reversible_fixed_point  # noqa: E402

DEPTHS = (8, 64)
BETA = 0.5


def fixed_point_options(grad: str, k: int) -> dict:
    return dict(solver="anderson", solver_options={"m": 6}, tol=0.0, max_steps=k, grad=grad,
                b_tol=1e-3, b_max_steps=29, on_backward_failure="ignore")


def head_loss(params: dict, z: jax.Array, y: jax.Array) -> jax.Array:
    logits = z.mean(axis=(1, 2)) @ params["head_w"] + params["head_b"]
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def reversible_loss(params: dict, x: jax.Array, y: jax.Array, k: int) -> jax.Array:
    inject = conv2d(x, params["w_in"])
    z, _ = reversible_fixed_point(C.cell, params, inject, jnp.zeros_like(inject), beta=BETA,
                                  max_steps=k)
    return head_loss(params, z, y)


def reversible_unrolled_loss(params: dict, x: jax.Array, y: jax.Array, k: int) -> jax.Array:
    inject = conv2d(x, params["w_in"])

    def step(carry, _):
        y_state, z_state = carry
        y_new = (1 - BETA) * y_state + BETA * C.cell(params, inject, z_state)
        z_new = (1 - BETA) * z_state + BETA * C.cell(params, inject, y_new)
        return (y_new, z_new), None

    z0 = jnp.zeros_like(inject)
    (_, z), _ = jax.lax.scan(step, (z0, z0), None, length=k)
    return head_loss(params, z, y)


def sgd_step(loss):
    @functools.partial(jax.jit, donate_argnums=0)
    def step(params, x, y):
        value, grads = jax.value_and_grad(loss)(params, x, y)
        return jax.tree.map(lambda p, g: p - C.LR * g, params, grads), value

    return step


MODES = {
    "implicit": (lambda k: C.make_train_step(fixed_point_options("implicit", k)), lambda k: k + 1),
    "unrolled": (lambda k: C.make_train_step(fixed_point_options("unrolled", k)), lambda k: k + 1),
    "rev-unrolled": (lambda k: sgd_step(functools.partial(reversible_unrolled_loss, k=k)),
                     lambda k: 2 * k),
    "reversible": (lambda k: sgd_step(functools.partial(reversible_loss, k=k)),
                   lambda k: 2 * k + 1),
}


def temp_bytes(mode: str, k: int) -> int:
    params, x, y = C.split(C.make_weights())
    step = MODES[mode][0](k)
    return step.lower(params, x, y).compile().memory_analysis().temp_size_in_bytes


def main() -> None:
    mib = 2.0**20
    print(f"conv DEQ cell, batch {C.BATCH}, {C.SIZE}x{C.SIZE}x{C.CH}, backend "
          f"{jax.default_backend()}; XLA temp = compiled memory_analysis().temp_size_in_bytes")
    print("grad         | " + " | ".join(f"K={k} temp MiB" for k in DEPTHS) + " | growth | "
          + " | ".join(f"K={k} cell evals" for k in DEPTHS))
    for mode, (_, evals) in MODES.items():
        temps = [temp_bytes(mode, k) / mib for k in DEPTHS]
        print(f"{mode:12s} | " + " | ".join(f"{t:14.1f}" for t in temps)
              + f" | {temps[1] / temps[0]:5.2f}x | "
              + " | ".join(f"{evals(k):15d}" for k in DEPTHS), flush=True)


if __name__ == "__main__":
    main()
