"""External anchor: training steps/s of the section 9 conv DEQ cell, JAX vs torchdeq 0.1.0.

Both sides: batch 64, 16x16x32 state, 3x3 conv + GroupNorm + input injection, Anderson
(m=6, lam=1e-4) forward, implicit (IFT) backward solved with Anderson, both stopping on
relative residual 1e-3 within 30 function evaluations, same weights/data (.npz), plain SGD.
The torch side runs in a separate venv as a subprocess; JAX and torch chunks alternate so
both see the same background load on the shared CPU.

    .venv/bin/python benchmarks/equilibrium_vs_torchdeq.py \
        --torch-python .venv-torch/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import equilibrium_common as C  # noqa: E402

WORKER = os.path.join(os.path.dirname(__file__), "equilibrium_torchdeq_worker.py")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--torch-python", default=".venv-torch/bin/python")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=5, help="training steps per timed chunk")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--max-evals", type=int, default=30)
    args = ap.parse_args()

    weights = C.make_weights(seed=0)
    npz = os.path.join(tempfile.mkdtemp(), "deq_weights.npz")
    np.savez(npz, **weights)
    # Primary: identical settings (Anderson backward). torchdeq's Anderson ridge is absolute
    # (1e-4), which stalls its adjoint when cotangents are tiny, so also run torchdeq with a
    # fixed-point backward as a second anchor.
    workers = {name: Worker(args.torch_python, npz, "anderson", b, args.max_evals, args.tol)
               for name, b in (("torchdeq", "anderson"), ("torchdeq_fpbwd", "fixed_point_iter"))}

    # JAX counts solver updates; f is evaluated updates + 1 times, as torchdeq's max_iter.
    opts = dict(solver="anderson", solver_options={"m": 6, "lam": 1e-4}, tol=args.tol,
                stop_mode="rel", max_steps=args.max_evals - 1, grad="implicit",
                b_tol=args.tol, b_max_steps=args.max_evals - 1, on_backward_failure="ignore")
    bwd: list[tuple[float, float]] = []
    opts["backward_callback"] = lambda s: bwd.append((float(np.max(s.steps)),
                                                      float(np.max(s.rel_residual))))
    step = C.make_train_step(opts)
    params, x, y = C.split(weights)
    t0 = time.perf_counter()
    params, loss, _ = step(params, x, y)
    jax.block_until_ready(params)
    compile_s = time.perf_counter() - t0
    for w in workers.values():
        w.cmd("train 1")  # warm-up

    sides = ["jax", *workers]
    rows = []
    for r in range(args.rounds):
        res = {}
        for side in sides[r % len(sides):] + sides[: r % len(sides)]:  # rotate the order
            if side == "jax":
                bwd.clear()
                params, dt, fwd = C.time_steps(step, params, x, y, args.chunk)
                b = np.array(bwd or [(np.nan, np.nan)])
                res[side] = (dt / args.chunk, fwd, b[:, 0].mean(), b[:, 1].max())
            else:
                out = workers[side].cmd(f"train {args.chunk}")
                res[side] = (out["seconds"] / args.chunk, out["fwd_steps"], out["bwd_steps"],
                             out["bwd_rel_max"])
        rows.append(res)
    for w in workers.values():
        w.close()

    print(f"torch {workers['torchdeq'].hello['torch']} "
          f"({workers['torchdeq'].hello['threads']} threads), jax {jax.__version__}; "
          f"JAX compile + first step {compile_s:.1f} s; batch {C.BATCH}, "
          f"{args.rounds} rounds x {args.chunk} steps, order rotated each round")
    print("side            | s/step median | steps/s | fwd iters | bwd iters | bwd rel max")
    med = {}
    for side in sides:
        t = np.array([r[side] for r in rows])
        med[side] = np.median(t[:, 0])
        print(f"{side:15s} | {med[side]:13.3f} | {1 / med[side]:7.2f} | {t[:, 1].mean():9.1f} "
              f"| {t[:, 2].mean():9.1f} | {t[:, 3].max():.2e}")
    for side in workers:
        per_round = [r[side][0] / r["jax"][0] for r in rows]
        print(f"JAX speed / {side}: {med[side] / med['jax']:.2f}x "
              f"(per-round ratios {', '.join(f'{v:.2f}' for v in per_round)})")


class Worker:
    """A torchdeq worker process speaking the line protocol of the worker script."""

    def __init__(self, python: str, npz: str, f_solver: str, b_solver: str, max_evals: int,
                 tol: float):
        self.proc = subprocess.Popen(
            [python, WORKER, npz, f_solver, b_solver, str(max_evals), str(tol)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hello = json.loads(self.proc.stdout.readline())

    def cmd(self, line: str) -> dict:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


if __name__ == "__main__":
    main()
