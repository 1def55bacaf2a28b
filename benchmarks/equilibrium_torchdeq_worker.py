"""torchdeq side of benchmarks/equilibrium_vs_torchdeq.py; runs in the torch venv.

Builds the conv DEQ cell of benchmarks/equilibrium_common.py from the same .npz weights
and data (argv: npz, then a JSON object of settings), then serves commands on stdin so the
parent can alternate JAX and torch runs:
  "train N"   -> N SGD training steps; prints one JSON line with the seconds, and per step
                 the loss, the cell evaluations and the VJPs through the cell (counted)
  "percall N" -> ms per cell evaluation and per VJP in z, each in a loop of N calls
  "reset"     -> back to the initial weights (and a fresh optimiser)
  "quit"
Settings: f_solver, b_solver ("anderson_rel" = nevis's Anderson, registered below, or any
torchdeq solver), f_max_iter, b_max_iter (cell evaluations / VJPs per solve, as torchdeq
counts), f_tol, b_tol (relative), m, lam, threads (intra-op threads; 0 = torch's default).
Not a project dependency: torch 2.13 + torchdeq 0.1.0 live only in .venv-torch.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torchdeq import get_deq
from torchdeq.solver import register_solver
from torchdeq.solver.utils import (
    batch_flatten,
    init_solver_info,
    solver_stat_from_info,
    update_state,
)

GROUPS, LR = 8, 0.05


def anderson_rel(func, x0, max_iter=50, tol=1e-3, stop_mode="abs", indexing=None, m=6,
                 lam=1e-4, tau=1.0, return_final=False, **kwargs):
    """nevis.equilibrium.Anderson in torch, inside torchdeq's solver contract.

    Same update as nevis (history of residuals g = f(x) - x and f(x), ridge RELATIVE to the
    mean squared residual of the history, first step a plain iteration), so both sides of
    the benchmark mix identically; torchdeq's own `anderson` uses an absolute ridge, which
    stalls on tiny adjoint cotangents. f is evaluated at most max_iter times (torchdeq's
    meaning); bookkeeping, early stop (batch max below tol) and the returned lowest-residual
    f(x) are torchdeq's (`update_state`).
    """
    del indexing, kwargs

    def f(x):
        return func(x.view_as(x0)).reshape_as(x)

    x = batch_flatten(x0)
    bsz, dim = x.shape
    gs = torch.zeros(bsz, m, dim, dtype=x.dtype)
    fs = torch.zeros(bsz, m, dim, dtype=x.dtype)
    trace, lowest, lowest_step = init_solver_info(bsz, x.device)
    fx = f(x)
    best = x0
    for k in range(max_iter):
        diff = (fx - x).norm(dim=1)
        best = update_state(best, fx.view_as(x0), k + 1, stop_mode, diff,
                            diff / (fx.norm(dim=1) + 1e-9), trace, lowest, lowest_step,
                            return_final)
        if k == max_iter - 1 or (not return_final and trace[stop_mode][-1].max() < tol):
            break
        slot, n = k % m, min(k + 1, m)
        gs[:, slot], fs[:, slot] = fx - x, fx
        gram = torch.bmm(gs[:, :n], gs[:, :n].transpose(1, 2))
        scale = torch.diagonal(gram, dim1=1, dim2=2).sum(-1) / n + torch.finfo(x.dtype).tiny
        a = gram + (lam * scale)[:, None, None] * torch.eye(n, dtype=x.dtype)
        alpha = torch.linalg.solve(a, torch.ones(bsz, n, 1, dtype=x.dtype))[..., 0]
        alpha = alpha / alpha.sum(-1, keepdim=True)
        mix_f = torch.einsum("bi,bid->bd", alpha, fs[:, :n])
        x = mix_f if tau == 1.0 else tau * mix_f + (1 - tau) * torch.einsum(
            "bi,bid->bd", alpha, fs[:, :n] - gs[:, :n])
        fx = f(x)
    return best, [], solver_stat_from_info(stop_mode, lowest, trace, lowest_step)


register_solver("anderson_rel", anderson_rel)


class _CountVJP(torch.autograd.Function):
    """Identity on the cell's output whose backward counts the VJPs through the cell."""

    @staticmethod
    def forward(ctx, y, counter):
        ctx.counter = counter
        return y.view_as(y)

    @staticmethod
    def backward(ctx, g):
        ctx.counter["vjp"] += 1
        return g, None


class Cell(torch.nn.Module):
    """The benchmark cell z -> GroupNorm(relu(conv3x3(z) + inject)) from the .npz weights,
    counting its evaluations (and, through _CountVJP, the VJPs through it). Shared with
    benchmarks/equilibrium_solver_steps_torch.py so both torch benchmarks run one cell."""

    def __init__(self, w: dict[str, np.ndarray]):
        super().__init__()

        def conv(k):  # HWIO -> OIHW
            return torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(
                k.transpose(3, 2, 0, 1))))

        self.w_in, self.w = conv(w["w_in"]), conv(w["w"])
        ch = w["w"].shape[-1]
        self.gn = torch.nn.GroupNorm(GROUPS, ch, eps=1e-5)
        with torch.no_grad():
            self.gn.weight.copy_(torch.from_numpy(w["gn_scale"]))
            self.gn.bias.copy_(torch.from_numpy(w["gn_bias"]))
        self.count = {"f": 0, "vjp": 0}

    def injection(self, x: torch.Tensor) -> torch.Tensor:
        """conv3x3(image), computed once per step outside the solve."""
        return F.conv2d(x, self.w_in, padding=1)

    def cell(self, z: torch.Tensor, inject: torch.Tensor) -> torch.Tensor:
        self.count["f"] += 1
        return _CountVJP.apply(self.gn(F.relu(F.conv2d(z, self.w, padding=1) + inject)),
                               self.count)


class Model(Cell):
    def __init__(self, w: dict[str, np.ndarray], s: dict):
        super().__init__(w)
        ch = w["w"].shape[-1]
        self.head = torch.nn.Linear(ch, w["head_w"].shape[1])
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(w["head_w"].T.copy()))
            self.head.bias.copy_(torch.from_numpy(w["head_b"]))
        self.deq = get_deq(f_solver=s["f_solver"], b_solver=s["b_solver"],
                           f_max_iter=s["f_max_iter"], b_max_iter=s["b_max_iter"],
                           f_tol=s["f_tol"], b_tol=s["b_tol"], f_stop_mode="rel",
                           b_stop_mode="rel", ift=True)
        self.solver_kwargs = {"m": s["m"], "lam": s["lam"]}

    def forward(self, x):
        inject = self.injection(x)
        z0 = torch.zeros_like(inject)
        z_out, info = self.deq(lambda z: self.cell(z, inject), z0,
                               solver_kwargs=self.solver_kwargs)
        return self.head(z_out[-1].mean(dim=(2, 3))), info


def per_call(model: Model, x: torch.Tensor, n: int) -> dict[str, float]:
    """ms per cell evaluation (no grad, as the forward solver) and per VJP in z (as the
    adjoint solver: autograd.grad through one recorded evaluation), each over n calls."""
    with torch.no_grad():
        inject = model.injection(x)
    z = torch.zeros_like(inject)
    with torch.no_grad():
        for _ in range(2):
            z = model.cell(z, inject)
        t0 = time.perf_counter()
        for _ in range(n):
            z = model.cell(z, inject)
        t_f = time.perf_counter() - t0
    h = z.detach().requires_grad_()
    fz = model.cell(h, inject)
    u = torch.randn_like(fz) * 1e-3
    g = u.clone()
    for _ in range(2):
        u = torch.autograd.grad(fz, h, u, retain_graph=True)[0] + g
    t0 = time.perf_counter()
    for _ in range(n):
        u = 0.5 * torch.autograd.grad(fz, h, u, retain_graph=True)[0] + g
    t_v = time.perf_counter() - t0
    return {"f_ms": 1e3 * t_f / n, "vjp_ms": 1e3 * t_v / n}


def main() -> None:
    npz, settings = sys.argv[1], json.loads(sys.argv[2])
    if settings.get("threads"):
        torch.set_num_threads(settings["threads"])
    w = dict(np.load(npz))
    x = torch.from_numpy(np.ascontiguousarray(w["x"].transpose(0, 3, 1, 2)))
    y = torch.from_numpy(w["y"].astype(np.int64))
    model = Model(w, settings)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    print(json.dumps({"ready": True, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "train":
            model.train()
            losses, f_evals, vjps = [], [], []
            seconds = 0.0
            for _ in range(int(cmd[1])):
                model.count.update(f=0, vjp=0)
                t0 = time.perf_counter()
                logits, _ = model(x)
                loss = F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                seconds += time.perf_counter() - t0
                losses.append(float(loss.detach()))
                f_evals.append(model.count["f"])
                vjps.append(model.count["vjp"])
            print(json.dumps({"seconds": seconds, "loss": losses, "f_evals": f_evals,
                              "vjps": vjps}), flush=True)
        elif cmd[0] == "reset":
            model = Model(w, settings)
            opt = torch.optim.SGD(model.parameters(), lr=LR)
            print(json.dumps({"reset": True}), flush=True)
        elif cmd[0] == "percall":
            print(json.dumps(per_call(model, x, int(cmd[1]))), flush=True)
        else:
            error = f"unknown command {cmd[0]!r}; valid: train, percall, reset, quit"
            print(json.dumps({"error": error}), flush=True)


if __name__ == "__main__":
    main()
