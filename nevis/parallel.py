"""Data parallelism: one mesh axis over every device, batches sharded, parameters replicated.

This is what `pmap` training has become in current JAX: `jax.jit` over arrays placed with a
`NamedSharding`. XLA inserts the gradient all-reduce, so a step computes exactly the same
function on 1 or N devices (the loss is a mean over the *global* batch).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh over `num_devices` devices (all when None), spanning every process."""
    devices = jax.devices()
    if num_devices is not None:
        if jax.process_count() > 1 and num_devices != len(devices):
            raise ValueError("--num_devices must be left unset in a multi-process run.")
        if not 1 <= num_devices <= len(devices):
            raise ValueError(
                f"--num_devices={num_devices}, but {len(devices)} device(s) are available "
                f"({devices[0].platform}); pick 1..{len(devices)} or leave it unset."
            )
        devices = devices[:num_devices]
    return Mesh(np.array(devices), (AXIS,))


def round_batch_size(batch_size: int, mesh: Mesh) -> int:
    """The smallest multiple of the device count that is at least `batch_size`."""
    n = mesh.size
    return -(-batch_size // n) * n


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Places a host batch (this process's rows) as one global array sharded on axis 0."""
    sharding = NamedSharding(mesh, P(AXIS))
    if jax.process_count() == 1:
        return jax.device_put(batch, sharding)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in batch.items()
    }


def to_host(x: jax.Array) -> np.ndarray:
    """The full global value of an array on every process."""
    if jax.process_count() == 1 or x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def initialize_distributed(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """Starts `jax.distributed` when flags or the usual environment variables ask for it."""
    env = os.environ
    address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and "JAX_NUM_PROCESSES" in env:
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in env:
        process_id = int(env["JAX_PROCESS_ID"])
    if address is None and num_processes is None:
        return  # single process; on TPU pods/SLURM call with explicit flags or env vars
    jax.distributed.initialize(
        coordinator_address=address, num_processes=num_processes, process_id=process_id
    )


def gather_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every process's rows of a host batch, concatenated in process order."""
    if jax.process_count() == 1:
        return batch
    from jax.experimental import multihost_utils

    return {k: np.asarray(multihost_utils.process_allgather(v, tiled=True))
            for k, v in batch.items()}
