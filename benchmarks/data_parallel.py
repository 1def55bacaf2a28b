"""Training steps/s of the harness with 1, 2, 4 and 8 devices, one process per count.

    python benchmarks/data_parallel.py [--learner=independent] [--steps=100] [--counts=1,2,4,8]

On CPU each count is forced with XLA_FLAGS=--xla_force_host_platform_device_count=N (on a
GPU/TPU host, pass --real to use the real devices, --num_devices=N each). Batches are sharded
over the devices and the parameters replicated, exactly as in `python -m nevis.run`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learner", default="independent")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--counts", default="1,2,4,8")
    parser.add_argument("--real", action="store_true", help="use real accelerator devices")
    args = parser.parse_args()
    rates = {}
    for n in (int(c) for c in args.counts.split(",")):
        env = dict(os.environ)
        if not args.real:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
            env["JAX_PLATFORMS"] = "cpu"
        cmd = [sys.executable, str(HERE / "harness_throughput.py"), f"--learner={args.learner}",
               f"--steps={args.steps}", "--repeats=1", f"--num_devices={n}"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        rates[n] = float(re.search(r"\(a\) harness ([0-9.]+) steps/s", out).group(1))
        print(f"{n} device(s): {rates[n]:.2f} steps/s ({rates[n] / rates[min(rates)]:.2f}x)",
              flush=True)


if __name__ == "__main__":
    main()
