"""Training steps/s of the harness with 1, 2, 4 and 8 devices, one process per count.

    python benchmarks/data_parallel.py [--learner=independent] [--task=mnist_5k] [--steps=100]
        [--counts=1,2,4,8]

On CPU each count is forced with XLA_FLAGS=--xla_force_host_platform_device_count=N (on a
GPU/TPU host, pass --real to use the real devices, --num_devices=N each). Batches are sharded
over the devices and the parameters replicated, exactly as in `python -m nevis.run`.

Forced CPU devices are not extra hardware: every "device" shares the same cores, so without
--real this measures the partitioning overhead of the sharded program (plus whatever XLA
gains by running the per-device shards concurrently on the host's cores), not data-parallel
scaling. The output says so.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learner", default="independent")
    parser.add_argument("--task", default="mnist_5k")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--counts", default="1,2,4,8")
    parser.add_argument("--real", action="store_true", help="use real accelerator devices")
    args = parser.parse_args()
    if not args.real:
        print(f"forced CPU devices sharing {os.cpu_count()} core(s): the rates below measure "
              "partitioning overhead on one host, NOT data-parallel scaling (use --real on a "
              "host with several accelerators for that)", flush=True)
    data_dir = tempfile.mkdtemp(prefix="nevis_bench_")  # prepared once, shared by every count
    rates = {}
    for n in (int(c) for c in args.counts.split(",")):
        env = dict(os.environ)
        if not args.real:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
            env["JAX_PLATFORMS"] = "cpu"
        cmd = [sys.executable, str(HERE / "harness_throughput.py"), f"--learner={args.learner}",
               f"--task={args.task}", f"--data_dir={data_dir}", f"--steps={args.steps}",
               "--repeats=1", f"--num_devices={n}"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        rates[n] = float(re.search(r"\(a\) harness ([0-9.]+) steps/s", out).group(1))
        kind = "" if args.real else " (forced CPU devices: partitioning overhead, not scaling)"
        print(f"{n} device(s): {rates[n]:.2f} steps/s ({rates[n] / rates[min(rates)]:.2f}x)"
              f"{kind}", flush=True)


if __name__ == "__main__":
    main()
