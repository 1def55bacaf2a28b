"""(c) Training steps/s of the conv DEQ cell: implicit vs unrolled gradient, equal forward work.

Both run exactly K Anderson forward iterations (tol 0); implicit adds an Anderson adjoint to
relative residual 1e-3 (<= 29 updates), unrolled backpropagates through the K iterations.
Chunks alternate between the two so both see the same background load.

    .venv/bin/python benchmarks/equilibrium_train_speed.py
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import equilibrium_common as C  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=3)
    args = ap.parse_args()
    print(f"conv DEQ cell, batch {C.BATCH}; s/step = median over {args.rounds} alternating "
          f"chunks of {args.chunk} steps")
    print("K  | implicit s/step | unrolled s/step | implicit steps/s | unrolled steps/s | "
          "implicit/unrolled speed")
    for k in args.iters:
        steps, state = {}, {}
        for grad in ("implicit", "unrolled"):
            opts = dict(solver="anderson", solver_options={"m": 6}, tol=0.0, max_steps=k,
                        grad=grad, b_tol=1e-3, b_max_steps=29, on_backward_failure="ignore")
            steps[grad] = C.make_train_step(opts)
            params, x, y = C.split(C.make_weights())
            params, _, _ = steps[grad](params, x, y)  # compile
            state[grad] = params
        times = {g: [] for g in steps}
        for r in range(args.rounds):
            for grad in (("implicit", "unrolled") if r % 2 == 0 else ("unrolled", "implicit")):
                state[grad], dt, _ = C.time_steps(steps[grad], state[grad], x, y, args.chunk)
                times[grad].append(dt / args.chunk)
        ti, tu = np.median(times["implicit"]), np.median(times["unrolled"])
        print(f"{k:2d} | {ti:15.3f} | {tu:15.3f} | {1 / ti:16.2f} | {1 / tu:16.2f} | "
              f"{tu / ti:.2f}x")


if __name__ == "__main__":
    main()
