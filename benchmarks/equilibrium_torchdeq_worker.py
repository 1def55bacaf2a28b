"""torchdeq side of benchmarks/equilibrium_vs_torchdeq.py; runs in the torch venv.

Builds the conv DEQ cell of benchmarks/equilibrium_common.py from the same .npz weights
and data (argv: npz f_solver b_solver max_iter tol), then serves commands on stdin so
the parent can alternate JAX and torch runs:
  "train N"  -> N SGD training steps; prints one JSON line {"seconds", "fwd_steps", ...}
  "probe S TOL MAX" -> forward solve with solver S ("anderson" | "fixed_point_iter")
  "quit"
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
from torchdeq.solver import get_solver

GROUPS, LR = 8, 0.05


class Model(torch.nn.Module):
    def __init__(self, w: dict[str, np.ndarray], f_solver: str, b_solver: str, max_iter: int,
                 tol: float):
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
        self.head = torch.nn.Linear(ch, w["head_w"].shape[1])
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(w["head_w"].T.copy()))
            self.head.bias.copy_(torch.from_numpy(w["head_b"]))
        self.deq = get_deq(f_solver=f_solver, b_solver=b_solver, f_max_iter=max_iter,
                           b_max_iter=max_iter, f_tol=tol, b_tol=tol, f_stop_mode="rel",
                           b_stop_mode="rel", ift=True)
        self.solver_kwargs = {"m": 6, "lam": 1e-4} if f_solver == "anderson" else {}
        self.bwd_steps: list[float] = []
        self.bwd_rel: list[float] = []

    def cell(self, z, inject):
        return self.gn(F.relu(F.conv2d(z, self.w, padding=1) + inject))

    def _record_backward(self, info) -> None:
        self.bwd_steps.append(float(info["nstep"].max()))
        self.bwd_rel.append(float(info["rel_lowest"].max()))

    def forward(self, x):
        inject = F.conv2d(x, self.w_in, padding=1)
        z0 = torch.zeros_like(inject)
        z_out, info = self.deq(lambda z: self.cell(z, inject), z0,
                               solver_kwargs=self.solver_kwargs,
                               backward_writer=self._record_backward)
        return self.head(z_out[-1].mean(dim=(2, 3))), info


def main() -> None:
    npz, f_solver, b_solver = sys.argv[1:4]
    max_iter, tol = int(sys.argv[4]), float(sys.argv[5])
    w = dict(np.load(npz))
    x = torch.from_numpy(np.ascontiguousarray(w["x"].transpose(0, 3, 1, 2)))
    y = torch.from_numpy(w["y"].astype(np.int64))
    model = Model(w, f_solver, b_solver, max_iter, tol)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    print(json.dumps({"ready": True, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "train":
            model.train()
            fwd = []
            model.bwd_steps.clear()
            model.bwd_rel.clear()
            t0 = time.perf_counter()
            losses = []
            for _ in range(int(cmd[1])):
                logits, info = model(x)
                loss = F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                fwd.append(float(info["nstep"].max()))
                losses.append(float(loss.detach()))
            dt = time.perf_counter() - t0
            print(json.dumps({"seconds": dt, "fwd_steps": float(np.mean(fwd)),
                              "bwd_steps": float(np.mean(model.bwd_steps or [np.nan])),
                              "bwd_rel_max": float(np.max(model.bwd_rel or [np.nan])),
                              "loss": losses[-1]}), flush=True)
        elif cmd[0] == "probe":
            solve = get_solver(cmd[1])
            with torch.no_grad():
                inject = F.conv2d(x, model.w_in, padding=1)
                kw = {"m": 6, "lam": 1e-4} if cmd[1] == "anderson" else {}
                _, _, info = solve(lambda z, inj=inject: model.cell(z, inj),
                                   torch.zeros_like(inject), max_iter=int(cmd[3]),
                                   tol=float(cmd[2]), stop_mode="rel", **kw)
            print(json.dumps({"nstep_mean": float(info["nstep"].float().mean()),
                              "nstep_max": float(info["nstep"].max()),
                              "rel_max": float(info["rel_lowest"].max())}), flush=True)


if __name__ == "__main__":
    main()
