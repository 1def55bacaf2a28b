"""External anchor: the section 9 conv DEQ cell trained by nevis.equilibrium and by torchdeq
0.1.0 doing the same work, with the work counted on both sides.

Same work: batch 64, 16x16x32 state, cell GroupNorm(relu(conv3x3(z) + inject)), same
weights and data (.npz), plain SGD, implicit (IFT) gradients with the same Anderson
(nevis's definition on both sides: m=6, ridge 1e-4 relative to the history's mean squared
residual; the torch side registers it as torchdeq solver "anderson_rel", because torchdeq's
own `anderson` has an absolute ridge that stalls its adjoint on tiny cotangents) for the
forward and the adjoint solve, budgets in cell evaluations / VJPs as torchdeq counts them.
Two rows: "fixed" (tolerance 0: every solve runs its whole budget, so both sides do exactly
the same number of cell evaluations and VJPs) and "rel" (both stop on relative residual
--tol per solve). Counted on both sides, per training step: cell evaluations (f) and VJPs
through the cell -- on torch by a counting wrapper around the cell, on JAX by
jax.debug.callback counters in a separate, otherwise identical, compiled step (callbacks
would slow the timed one). Also per side: ms per cell evaluation and per VJP in z, each
timed in a loop of --percall calls (a jitted fori_loop on JAX, a Python loop on torch), and
the share of the step those calls account for. Every round, each side trains one chunk
and then times its per-call loops (medians over rounds are reported).

JAX cells: "nnx.Conv" -- the cell as a user writes it first, with flax.nnx.Conv, whose
own conv VJP XLA:CPU runs ~15-20x slower inside the adjoint loop (environment.md section
9); fixed_point's implicit backward rewrites it onto the loop-friendly VJP
(eq.loop_friendly, option loop_friendly=True, the default; --no-loop-friendly measures
JAX's own VJP) -- and "eq.Conv", the same module with nevis.equilibrium.Conv, its drop-in.
Both sides use --threads intra-op threads (default 1: on a shared, oversubscribed CPU
torch's OpenMP threads lose far more to contention than XLA's pool, which would make the
ratio measure the background load; 0 keeps each library's default).
The sides' solves start the adjoint differently: torchdeq from u = 0 (its first VJP just
returns the cotangent g), nevis from u = g, so at equal tolerance torchdeq's adjoint takes
one VJP more; budgets in the "fixed" row are set so the totals are equal. torchdeq returns
f(z) at its lowest-residual iterate, nevis z at its last, so losses agree up to the residual.
Remaining difference by design: torch runs eagerly (torchdeq's solver loops are Python
loops), JAX runs one compiled program per step. JAX and torch chunks alternate (order
rotated) so all sides see the same background load on a shared CPU.

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
import warnings

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import equilibrium_common as C  # noqa: E402

from nevis import equilibrium as eq  # noqa: E402

WORKER = os.path.join(os.path.dirname(__file__), "equilibrium_torchdeq_worker.py")
TORCH = "torchdeq"


class Tally:
    """Host-side counters that jax.debug.callback increments."""

    def __init__(self) -> None:
        self.f = self.vjp = 0

    def add_f(self) -> None:
        self.f += 1

    def add_vjp(self) -> None:
        self.vjp += 1


def counted(f, tally: Tally):
    """f with a callback per evaluation and per VJP through its output."""

    @jax.custom_vjp
    def tap(y):
        return y

    def tap_bwd(_, g):
        jax.debug.callback(tally.add_vjp)
        return (g,)

    tap.defvjp(lambda y: (y, None), tap_bwd)

    def f_counted(p, inject, z):
        jax.debug.callback(tally.add_f)
        return tap(f(p, inject, z))

    return f_counted


def jax_per_call(f, params, x, n: int, loop_friendly: bool = True):
    """A function measuring ms per cell evaluation and per VJP in z inside jitted
    fori_loops of n calls (compiled here, once). The VJP is the one the implicit adjoint
    runs: through eq.loop_friendly(f) unless loop_friendly is off."""
    inject = C.conv2d(x, params["w_in"])
    p = params["cell"]
    f_vjp = eq.loop_friendly(f) if loop_friendly else f

    @jax.jit
    def evals(z):
        return jax.lax.fori_loop(0, n, lambda _, z: f(p, inject, z), z)

    @jax.jit
    def vjps(z, u):
        _, pullback = jax.vjp(lambda v: f_vjp(p, inject, v), z)
        return jax.lax.fori_loop(0, n, lambda _, v: 0.5 * pullback(v)[0] + u, u)

    z = evals(jnp.zeros_like(inject)).block_until_ready()  # compile; z near equilibrium
    u = 1e-3 * jax.random.normal(jax.random.key(0), z.shape)
    vjps(z, u).block_until_ready()

    def measure() -> dict[str, float]:
        t0 = time.perf_counter()
        evals(z).block_until_ready()
        t_f = time.perf_counter() - t0
        t0 = time.perf_counter()
        vjps(z, u).block_until_ready()
        t_v = time.perf_counter() - t0
        return {"f_ms": 1e3 * t_f / n, "vjp_ms": 1e3 * t_v / n}

    return measure


class JaxSide:
    """One JAX cell under one row's options: counted run, timed steps, per-call costs."""

    def __init__(self, conv: str, weights, opts: dict, steps: int, percall: int):
        self.f, self.params0 = C.nnx_model(conv, weights)
        _, self.x, self.y = C.split(weights)
        tally = Tally()
        count_step = C.make_nnx_train_step(counted(self.f, tally), opts)
        params = self.copy()
        self.f_evals, self.vjps, self.counted_loss = [], [], []
        for _ in range(steps):  # the same steps the timed run makes, with counters
            tally.f = tally.vjp = 0
            params, loss = count_step(params, self.x, self.y)
            jax.block_until_ready(params)
            self.f_evals.append(tally.f)
            self.vjps.append(tally.vjp)
            self.counted_loss.append(float(loss))
        self.step = C.make_nnx_train_step(self.f, opts)
        t0 = time.perf_counter()
        jax.block_until_ready(self.step(self.copy(), self.x, self.y))  # compile on a copy
        self.compile_s = time.perf_counter() - t0
        self.params = self.copy()
        self.measure_calls = jax_per_call(self.f, self.params0, self.x, percall,
                                          opts["loop_friendly"])
        self.seconds, self.loss, self.per_call = [], [], []

    def copy(self):
        return jax.tree.map(jnp.copy, self.params0)

    def train(self, n: int) -> None:
        losses = []
        t0 = time.perf_counter()
        for _ in range(n):
            self.params, loss = self.step(self.params, self.x, self.y)
            losses.append(loss)
        jax.block_until_ready(self.params)
        self.seconds.append(time.perf_counter() - t0)
        self.loss += [float(v) for v in losses]
        self.per_call.append(self.measure_calls())


class TorchSide:
    """The torchdeq worker process, speaking the worker script's line protocol."""

    def __init__(self, python: str, npz: str, settings: dict, percall: int):
        self.proc = subprocess.Popen([python, WORKER, npz, json.dumps(settings)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hello = json.loads(self.proc.stdout.readline())
        self.percall = percall
        self.cmd("train 1")  # warm-up, then start again from the shared weights
        self.cmd("reset")
        self.seconds, self.loss, self.f_evals, self.vjps, self.per_call = [], [], [], [], []

    def cmd(self, line: str) -> dict:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        if "error" in out:
            raise RuntimeError(f"torch worker: {out['error']}")
        return out

    def train(self, n: int) -> None:
        out = self.cmd(f"train {n}")
        self.seconds.append(out["seconds"])
        self.loss += out["loss"]
        self.f_evals += out["f_evals"]
        self.vjps += out["vjps"]
        self.per_call.append(self.cmd(f"percall {self.percall}"))

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def run_row(name: str, tol: float, args, weights, npz: str) -> list[dict]:
    steps = args.rounds * args.chunk
    opts = dict(solver="anderson", solver_options={"m": args.m, "lam": args.lam}, tol=tol,
                stop_mode="rel", max_steps=args.fwd_evals - 1, grad="implicit", b_tol=tol,
                b_max_steps=args.bwd_vjps - 1, on_backward_failure="ignore",
                loop_friendly=args.loop_friendly)
    settings = dict(f_solver="anderson_rel", b_solver="anderson_rel", f_max_iter=args.fwd_evals,
                    b_max_iter=args.bwd_vjps, f_tol=tol, b_tol=tol, m=args.m, lam=args.lam,
                    threads=args.threads)
    sides = {TORCH: TorchSide(args.torch_python, npz, settings, args.percall)}
    for conv in args.cells.split(","):
        sides[f"jax {conv}"] = JaxSide(conv, weights, opts, steps, args.percall)
    order = list(sides)
    for r in range(args.rounds):
        for side in order[r % len(order):] + order[: r % len(order)]:  # rotate the order
            sides[side].train(args.chunk)
    sides[TORCH].close()
    torch_loss = np.array(sides[TORCH].loss)
    rows = []
    for label, s in sides.items():
        s_step = float(np.median(s.seconds)) / args.chunk
        n_f, n_v = float(np.mean(s.f_evals)), float(np.mean(s.vjps))
        pc = {k: float(np.median([c[k] for c in s.per_call])) for k in ("f_ms", "vjp_ms")}
        row = dict(row=name, side=label, s_step=s_step, steps_per_s=1 / s_step, f_evals=n_f,
                   vjps=n_v, f_ms=pc["f_ms"], vjp_ms=pc["vjp_ms"],
                   accounted=(n_f * pc["f_ms"] + n_v * pc["vjp_ms"]) / 1e3 / s_step,
                   loss_first=s.loss[0], loss_last=s.loss[-1],
                   loss_vs_torch=float(np.max(np.abs(np.array(s.loss) - torch_loss))),
                   chunk_s=[round(t / args.chunk, 4) for t in s.seconds])
        if isinstance(s, JaxSide):
            row["compile_s"] = s.compile_s
            row["counted_vs_timed_loss"] = float(np.max(np.abs(
                np.array(s.counted_loss) - np.array(s.loss))))
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--torch-python", default=".venv-torch/bin/python")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=3, help="training steps per timed chunk")
    ap.add_argument("--fwd-evals", type=int, default=30,
                    help="forward budget: cell evaluations per solve (torchdeq f_max_iter)")
    ap.add_argument("--bwd-vjps", type=int, default=30,
                    help="adjoint budget: VJPs per solve (torchdeq b_max_iter)")
    ap.add_argument("--tol", type=float, default=1e-3, help="relative tolerance, 'rel' row")
    ap.add_argument("--m", type=int, default=6, help="Anderson history")
    ap.add_argument("--lam", type=float, default=1e-4, help="Anderson ridge (relative)")
    ap.add_argument("--percall", type=int, default=20, help="calls per per-call timing loop")
    ap.add_argument("--cells", default="nnx.Conv,eq.Conv",
                    help=f"JAX cells, comma-separated from {sorted(C.CONV_MODULES)}")
    ap.add_argument("--rows", default="fixed,rel", help="fixed (tolerance 0) and/or rel")
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads on both sides (0: each library's default)")
    ap.add_argument("--no-loop-friendly", dest="loop_friendly", action="store_false",
                    help="keep JAX's own conv VJP in the adjoint (fixed_point loop_friendly=False)")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args()
    for conv in args.cells.split(","):
        if conv not in C.CONV_MODULES:
            ap.error(f"--cells: unknown cell {conv!r}; valid: {', '.join(C.CONV_MODULES)}")
    rows_wanted = args.rows.split(",")
    if not set(rows_wanted) <= {"fixed", "rel"}:
        ap.error(f"--rows={args.rows!r}; valid: fixed, rel (comma-separated)")
    if args.fwd_evals < 2 or args.bwd_vjps < 2:
        ap.error("--fwd-evals and --bwd-vjps must be >= 2")
    if not os.path.exists(args.torch_python):
        ap.error(f"--torch-python {args.torch_python} not found; create it with: python3 -m "
                 "venv .venv-torch && .venv-torch/bin/pip install torch==2.13.0 "
                 "torchdeq==0.1.0 numpy")

    if args.threads:  # read when the XLA backend starts, i.e. at the first computation
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_"
                                   f"eigen=false intra_op_parallelism_threads={args.threads}")
    weights = C.make_weights(seed=0)
    npz = os.path.join(tempfile.mkdtemp(), "deq_weights.npz")
    np.savez(npz, **weights)

    print("slow-path check (nevis.equilibrium.check_cell) of each JAX cell's VJP in z:")
    for conv in args.cells.split(","):
        f, params = C.nnx_model(conv, weights)
        z = jax.ShapeDtypeStruct((C.BATCH, C.SIZE, C.SIZE, C.CH), jnp.float32)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found = eq.check_cell(f, params["cell"], z, z)
        left = eq.slow_convolutions(eq.loop_friendly(f), params["cell"], z, z)
        print(f"  {conv:9s}: {len(found)} slow conv(s); warned: "
              f"{any(issubclass(w.category, eq.SlowAdjointWarning) for w in caught)}; "
              f"{len(left)} left after eq.loop_friendly (what the implicit backward runs)")

    rows = []
    for name in rows_wanted:
        tol = 0.0 if name == "fixed" else args.tol
        rows += run_row(name, tol, args, weights, npz)

    steps = args.rounds * args.chunk
    threads = args.threads or "default"
    print(f"\njax {jax.__version__} ({jax.default_backend()}), torch 2.13.0 eager; {threads} "
          f"intra-op thread(s) each; batch "
          f"{C.BATCH}; budgets {args.fwd_evals} f evals / {args.bwd_vjps} VJPs per solve; "
          f"{args.rounds} rounds x {args.chunk} steps, order rotated; s/step = median chunk; "
          f"per-call costs from loops of {args.percall}; counts and losses over the same "
          f"{steps} steps from the same weights")
    print("row   | side         | steps/s | s/step | f evals/step | VJPs/step | ms/f eval "
          "| ms/VJP | calls/step time | loss first -> last | max |loss - torch|")
    for r in rows:
        print(f"{r['row']:5s} | {r['side']:12s} | {r['steps_per_s']:7.2f} | {r['s_step']:6.3f} | "
              f"{r['f_evals']:12.1f} | {r['vjps']:9.1f} | {r['f_ms']:9.2f} | {r['vjp_ms']:6.2f} "
              f"| {r['accounted']:15.2f} | {r['loss_first']:.4f} -> {r['loss_last']:.4f} | "
              f"{r['loss_vs_torch']:.1e}")
    for name in rows_wanted:
        by = {r["side"]: r for r in rows if r["row"] == name}
        for side, r in by.items():
            if side != TORCH:
                print(f"{name}: {side} time per step / torchdeq = "
                      f"{r['s_step'] / by[TORCH]['s_step']:.2f}x (compile {r['compile_s']:.1f} s; "
                      f"counted-run vs timed-run loss {r['counted_vs_timed_loss']:.1e})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
