"""(a) Memory of one training step of the conv DEQ cell: implicit vs unrolled gradient.

Forward: Anderson for exactly K iterations (tol 0); implicit backward: Anderson adjoint to
relative residual 1e-3 (<= 29 updates). Measures XLA's compiled memory analysis of the
jitted step (temp buffers, i.e. peak scratch the step needs beyond arguments/outputs), and
the peak RSS of a fresh subprocess running that step twice (--rss).

    .venv/bin/python benchmarks/equilibrium_memory.py [--rss]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

import jax

sys.path.insert(0, os.path.dirname(__file__))
import equilibrium_common as C  # noqa: E402

DEPTHS = (8, 64)


def options(grad: str, k: int) -> dict:
    return dict(solver="anderson", solver_options={"m": 6}, tol=0.0, max_steps=k, grad=grad,
                b_tol=1e-3, b_max_steps=29, on_backward_failure="ignore")


def temp_bytes(grad: str, k: int) -> int:
    params, x, y = C.split(C.make_weights())
    step = C.make_train_step(options(grad, k))
    return step.lower(params, x, y).compile().memory_analysis().temp_size_in_bytes


def child(grad: str, k: int) -> None:
    params, x, y = C.split(C.make_weights())
    step = C.make_train_step(options(grad, k))
    for _ in range(2):
        params, loss, _ = step(params, x, y)
    jax.block_until_ready(params)
    print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rss", action="store_true", help="also peak RSS of fresh subprocesses")
    ap.add_argument("--child", nargs=2)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]))
    mib = 2.0**20
    print(f"conv DEQ cell, batch {C.BATCH}, {C.SIZE}x{C.SIZE}x{C.CH}; XLA temp = compiled "
          "memory_analysis().temp_size_in_bytes" + ("; RSS = ru_maxrss of a fresh process"
                                                    if args.rss else ""))
    print("grad      | " + " | ".join(f"K={k} temp MiB" for k in DEPTHS) + " | growth"
          + (" | " + " | ".join(f"K={k} RSS MiB" for k in DEPTHS) if args.rss else ""))
    for grad in ("implicit", "unrolled"):
        temps = [temp_bytes(grad, k) / mib for k in DEPTHS]
        line = f"{grad:9s} | " + " | ".join(f"{t:14.1f}" for t in temps)
        line += f" | {temps[1] / temps[0]:.2f}x"
        if args.rss:
            rss = []
            for k in DEPTHS:
                out = subprocess.run([sys.executable, __file__, "--child", grad, str(k)],
                                     capture_output=True, text=True, check=True)
                rss.append(json.loads(out.stdout.strip().splitlines()[-1])["rss_mb"])
            line += " | " + " | ".join(f"{r:13.0f}" for r in rss)
        print(line)


if __name__ == "__main__":
    main()
